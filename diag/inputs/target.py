"""What a check runs against: a model factory, data and a loss, the user's or the defaults."""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diag.errors import (
    USER_ERRORS,
    DiagError,
    UsageError,
    UserCodeError,
    a_type,
    user_code_error,
)
from diag.inputs.data import TensorData, load_data
from diag.inputs.spec import resolve
from diag.rng import isolated_rng

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Target:
    """A model factory (a fresh model per call), data, and a loss."""

    make_model: Callable[[], nn.Module]
    model_name: str
    data: TensorData
    loss_fn: LossFn
    loss_name: str
    task: str
    """``landmarks`` or ``classify`` (the generated data's tasks), or ``regression``."""
    default_model: bool = False

    @property
    def is_classification(self) -> bool:
        return self.data.is_classification


def landmark_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error on normalised landmark coordinates (the browser model's loss)."""
    return F.mse_loss(pred, target)


def classify_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Softmax cross-entropy (softmax lives inside the loss, as in the browser model)."""
    return F.cross_entropy(pred, target)


IGNORE_INDEX = -100
"""Targets of this value are padding (cross-entropy's default ignore_index)."""


def sequence_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Token cross-entropy: logits (B, T, V) against ids (B, T), padding (-100) ignored."""
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def model_factory(spec: str, seed: int) -> Callable[[], nn.Module]:
    """``--model``: a Module instance (deep-copied per use) or a zero-argument factory."""
    obj = resolve(spec, "--model")
    if isinstance(obj, nn.Module):
        original = obj

        def copy_instance() -> nn.Module:
            return _deepcopy(original)

        return copy_instance
    if not callable(obj):
        raise UsageError(f"--model {spec} is a {type(obj).__name__}",
                         hint="give a torch.nn.Module or a zero-argument callable returning one")

    def build() -> nn.Module:
        try:
            with isolated_rng(seed):
                model = obj()
        except TypeError as exc:
            if _needs_arguments(obj):
                raise UsageError(f"--model {spec} needs arguments ({exc})",
                                 hint="give a zero-argument callable") from None
            raise user_code_error(exc, f"--model {spec}") from None
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"--model {spec}") from None
        if not isinstance(model, nn.Module):
            raise UsageError(f"--model {spec} returned a {type(model).__name__}",
                             hint="the callable must return a torch.nn.Module")
        return model

    return build


def _needs_arguments(fn: Callable[..., object]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                   p.KEYWORD_ONLY)
               for p in sig.parameters.values())


def load_loss(spec: str) -> LossFn:
    obj = resolve(spec, "--loss")
    if not callable(obj):
        raise UsageError(f"--loss {spec} is a {type(obj).__name__}",
                         hint="give a callable loss(pred, target) -> scalar tensor")
    if isinstance(obj, type):
        try:
            obj = obj()
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"--loss {spec}") from None
    return obj  # type: ignore[no-any-return]


def _model_factory(model: Any, seed: int, input_size: int = 112
                   ) -> tuple[Callable[[], nn.Module], str]:
    """A factory of fresh models from a SPEC, a Module instance (deep-copied per use, so the
    caller's weights never change) or a zero-argument callable."""
    if isinstance(model, str) and os.path.isdir(model):  # weights diag size exported

        def from_folder() -> nn.Module:
            from diag.checks.size.export import load_folder

            return load_folder(model, input_size)

        return from_folder, model
    if isinstance(model, str):
        return model_factory(model, seed), model
    if isinstance(model, nn.Module):
        instance = model

        def copy_instance() -> nn.Module:
            return _deepcopy(instance)

        return copy_instance, type(model).__name__
    if callable(model):
        maker = model

        def build() -> nn.Module:
            try:
                with isolated_rng(seed):
                    built = maker()
            except DiagError:
                raise
            except USER_ERRORS as exc:
                raise user_code_error(exc, "the model factory") from None
            if not isinstance(built, nn.Module):
                raise UsageError(f"the model factory returned a {type(built).__name__}",
                                 hint="return a torch.nn.Module")
            return built

        return build, getattr(model, "__name__", type(model).__name__)
    raise UsageError(f"model is a {type(model).__name__}",
                     hint="give a torch.nn.Module or a zero-argument callable returning one")


def _deepcopy(module: nn.Module) -> nn.Module:
    try:
        return copy.deepcopy(module)
    except USER_ERRORS as exc:
        raise UsageError(f"the model cannot be copied ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})",
                         hint="diag trains copies, never your model: pass a zero-argument "
                              "factory that builds it instead of the instance") from None


def to_data(data: Any, task: str, input_size: int, samples: int, seed: int,
            check_finite: bool = True) -> TensorData:
    """``--data`` as tensors: None (generated), a .npz path or SPEC, a tuple (x, y), a torch
    Dataset or a TensorData."""
    from diag.inputs.data import _dataset_to_data, arrays_to_data

    if data is None or isinstance(data, str):
        return load_data(data, task=task, size=input_size, n=samples, seed=seed,
                         check_finite=check_finite)
    if isinstance(data, TensorData):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return arrays_to_data(data[0], data[1], source="(x, y)", check_finite=check_finite)
    if isinstance(data, torch.utils.data.Dataset):
        return _dataset_to_data(data, type(data).__name__, check_finite)
    raise UsageError(f"data is a {type(data).__name__}",
                     hint="give a tuple (x, y) of tensors, a torch Dataset or a .npz file")


def to_loss(loss: Any) -> tuple[LossFn, str]:
    """``--loss`` as a callable and a name: a SPEC or a callable."""
    if isinstance(loss, str):
        return load_loss(loss), loss.rsplit(":", 1)[-1]
    if not callable(loss):
        raise UsageError(f"loss is a {type(loss).__name__}",
                         hint="give a callable loss(pred, target) -> scalar tensor")
    return loss, getattr(loss, "__name__", type(loss).__name__)


def build_target(
    *,
    model: Any = None,
    data: Any = None,
    loss: Any = None,
    task: str = "landmarks",
    input_size: int = 48,
    samples: int = 48,
    seed: int = 0,
) -> Target:
    """Resolve the user's specs or objects (or the defaults) into a Target. Bad input raises
    DiagError."""
    from diag.model import tiny_classifier, tiny_landmark_net

    if task not in ("landmarks", "classify"):
        raise UsageError(f"--task {task!r} is not known", hint="use landmarks or classify")
    tensor_data = to_data(data, task, input_size, samples, seed)
    if data is not None:
        task = "classify" if tensor_data.is_classification else "regression"

    if model is None:
        if data is not None:
            raise UsageError("--data given without --model",
                             hint="pass --model SPEC for your data (the default net only "
                                  "fits the generated faces)")
        if task == "classify":
            classes = int(tensor_data.y.max()) + 1

            def make() -> nn.Module:
                return tiny_classifier(max(classes, 4), input_size=input_size, seed=seed)

            model_name = "tiny browser classifier (default)"
        else:

            def make() -> nn.Module:
                return tiny_landmark_net(input_size=input_size, seed=seed)

            model_name = "tiny browser landmark net (default)"
        factory: Callable[[], nn.Module] = make
        default_model = True
    else:
        factory, model_name = _model_factory(model, seed, input_size)
        default_model = False
        factory = _adapting(factory, tensor_data.fields)

    loss_fn: LossFn
    if loss is not None:
        loss_fn, loss_name = to_loss(loss)
        if isinstance(loss, str):
            loss_name = loss
    elif tensor_data.is_classification:
        loss_fn, loss_name = classify_loss, "cross_entropy"
    elif tensor_data.is_sequence:
        loss_fn, loss_name = sequence_loss, "token_cross_entropy"
    else:
        loss_fn, loss_name = landmark_loss, "mse"
    if "labels" in tensor_data.fields and loss is None:  # the model computes its own loss
        from diag.inputs.batches import OWN_LOSS, loss_or_own

        loss_fn, loss_name = loss_or_own(loss_fn), OWN_LOSS
    return Target(factory, model_name, tensor_data, loss_fn, loss_name, task, default_model)


def _adapting(factory: Callable[[], nn.Module], fields: tuple[str, ...]
              ) -> Callable[[], nn.Module]:
    """Models that take dict fields, or give a ModelOutput, a dict or a tuple: adapted so
    every check calls ``model(x)`` and gets the prediction (``diag.inputs.batches``)."""
    from diag.inputs.batches import adapt

    def make() -> nn.Module:
        return adapt(factory(), fields)

    return make


_SHAPE_WORDS = ("shape", "size", "dimension", "match", "expected", "target", "broadcast")


_MODULE_STATE = frozenset(vars(nn.Module()))
"""The attributes nn.Module itself keeps (``_modules``, ``_parameters``, ``_buffers``, hooks,
``training``): never the user's own."""


def user_attributes(module: nn.Module) -> list[tuple[str, Any]]:
    """The attributes the user's own code set on ``module`` (not nn.Module's state)."""
    return [(k, v) for k, v in vars(module).items() if k not in _MODULE_STATE]


def check_shadowing(model: nn.Module) -> None:
    """A UsageError when an attribute of the user's hides an nn.Module method that diag (and
    torch) call: ``self.to = 16`` breaks ``model.to(device)``."""
    for path, module in model.named_modules():
        for attr, value in user_attributes(module):
            if callable(getattr(nn.Module, attr, None)) and not callable(value):
                where = f"{path}.{attr}" if path else attr
                raise UsageError(f"the model's attribute {where!r} ({a_type(value)}, "
                                 f"set in {type(module).__name__}) hides nn.Module.{attr}(), "
                                 "which diag and torch call",
                                 hint=f"rename the attribute (e.g. self.{attr}_value)")


def check_fit(target: Target, seed: int = 0) -> None:
    """Run one forward and loss on two samples; shape problems raise UsageError (exit 2).

    The model is a fresh copy, so nothing of the user's changes.
    """
    with isolated_rng(seed):
        model = target.make_model()
        check_shadowing(model)
        xb, yb = target.data.x[:2], target.data.y[:2]
        try:
            with torch.no_grad():
                pred = model(xb)
        except USER_ERRORS as exc:
            err = user_code_error(exc, "the model's forward")
            raise _as_fit_error(err, exc, f"input of shape {tuple(xb.shape)}") from None
        if not isinstance(pred, Tensor):
            raise UsageError(f"the model returned a {type(pred).__name__}, not a tensor",
                             hint="return the prediction tensor from forward()")
        if target.loss_name in ("mse", "cross_entropy"):
            _check_default_loss_shapes(target, pred, yb)
        try:
            value = target.loss_fn(pred, yb)
        except USER_ERRORS as exc:
            err = user_code_error(exc, f"the loss ({target.loss_name})")
            raise _as_fit_error(err, exc, f"output {tuple(pred.shape)} and target "
                                          f"{tuple(yb.shape)}") from None
        if not isinstance(value, Tensor) or value.numel() != 1:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise UsageError(f"the loss returned {got}, not a scalar tensor",
                             hint="reduce the loss to one number (e.g. .mean())")


def _as_fit_error(err: UserCodeError, exc: BaseException, what: str) -> Exception:
    text = str(exc).lower()
    if any(w in text for w in _SHAPE_WORDS):
        return UsageError(f"the model's output does not fit the loss for {what}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                          hint="make the model's output match the data (or pass --loss)",
                          location=err.location)
    return err


def _check_default_loss_shapes(target: Target, pred: Tensor, yb: Tensor) -> None:
    if target.loss_name == "mse" and tuple(pred.shape) != tuple(yb.shape):
        raise UsageError(
            f"the model's output {tuple(pred.shape)} does not fit targets {tuple(yb.shape)} "
            "for the MSE loss",
            hint="make the last layer output one value per target (or pass --loss)")
    if target.loss_name == "token_cross_entropy":
        if pred.dim() != yb.dim() + 1 or tuple(pred.shape[:-1]) != tuple(yb.shape):
            raise UsageError(
                f"the model's output {tuple(pred.shape)} does not fit token targets "
                f"{tuple(yb.shape)}", hint="output (B, T, V) logits for (B, T) target ids")
        y = target.data.y
        vocab = int(pred.shape[-1])
        bad = ((y < 0) & (y != IGNORE_INDEX) | (y >= vocab)).nonzero()
        if bad.numel():
            where = tuple(int(v) for v in bad[0])
            raise UsageError(
                f"target id {int(y[where])} at {where} is outside 0..{vocab - 1} (the model "
                f"outputs {vocab} logits per token)",
                hint=f"target ids must be 0..V-1, or {IGNORE_INDEX} for padding")
    if target.loss_name == "cross_entropy":
        classes = int(pred.shape[1]) if pred.dim() == 2 else 0
        if pred.dim() != 2:
            raise UsageError(
                f"the model's output {tuple(pred.shape)} does not fit class targets for "
                "cross-entropy", hint="output (N, C) logits")
        y = target.data.y
        bad = ((y < 0) | (y >= classes)).nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            raise UsageError(
                f"label {int(y[i])} at index {i} is outside 0..{classes - 1} (the model "
                f"outputs {classes} classes; {bad.shape[0]} labels are outside)",
                hint="class labels must be 0..C-1: fix the labels, or widen the last layer")


def expected_initial_ce(classes: int) -> float:
    """Karpathy's check: with an uninformed init, cross-entropy starts at ln(C)."""
    return math.log(classes)
