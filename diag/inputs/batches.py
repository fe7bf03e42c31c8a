"""Batches and outputs as models take and give them, mapped onto the (inputs, targets) every
check works with.

- Dict samples (Hugging Face style: ``input_ids``, ``attention_mask``, ``labels``): the
  model inputs are packed side by side into one integer tensor (B, F, T), so that every
  check can index, slice and batch it like any input; the model is called as
  ``model(**fields)`` when its ``forward`` takes those names. Fields that cannot be packed
  (different dtypes or shapes) are a usage error naming them.
- Outputs: a tensor, a ``.logits`` (``ModelOutput``), a dict (``logits`` or its first
  tensor) or a tuple (its first tensor) are all read as the prediction.
- A model that computes its own loss when given ``labels`` (``output.loss``) is used as it
  is: the check's loss is the model's own loss for that forward.

The model instance's ``forward`` is adapted in place (its modules, parameters and names are
unchanged, so every layer keeps the name the user gave it).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from diag.errors import UsageError

X_KEYS = ("input_ids", "x", "input", "inputs", "image", "images", "pixel_values", "data",
          "features")
Y_KEYS = ("labels", "label", "y", "target", "targets")
LABEL_KEY = "labels"
OWN_LOSS = "the model's own loss"
"""The loss name of a model that computes its own (its labels' meaning, e.g. shifted for a
causal LM, is the model's: diag computes no accuracy of its own against them)."""


def prediction(out: Any) -> Any:
    """The prediction tensor of a model's output (a tensor passes through)."""
    if isinstance(out, Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), Tensor):
            return out["logits"]
        return next((v for v in out.values() if isinstance(v, Tensor)), out)
    if isinstance(out, tuple | list):
        return next((v for v in out if isinstance(v, Tensor)), out)
    return out


def own_loss(out: Any) -> Tensor | None:
    loss = getattr(out, "loss", None)
    if loss is None and isinstance(out, Mapping):
        loss = out.get("loss")
    return loss if isinstance(loss, Tensor) and loss.numel() == 1 else None


class _Last:
    """The last forward's logits and the model's own loss for them (one slot: nothing
    accumulates, so the leak census sees no growth of diag's own)."""

    logits: weakref.ReferenceType[Tensor] | None = None
    loss: Tensor | None = None


LAST = _Last()


def pack(samples: Sequence[Mapping[str, Any]], source: str) -> tuple[Tensor, Tensor,
                                                                     tuple[str, ...]]:
    """Dict samples as (packed inputs, targets, field names). Inputs of one integer dtype
    and shape pack into (N, F, ...); ``labels`` is also passed to the model when it takes
    it (then the model's own loss is used)."""
    first = samples[0]
    y_key = next((k for k in Y_KEYS if k in first), None)
    if y_key is None:
        raise UsageError(f"{source} yields dicts with keys {sorted(map(str, first))} and no "
                         "target", hint=f"name the targets one of {', '.join(Y_KEYS)}")
    names = tuple(k for k, v in first.items()
                  if k != y_key and isinstance(v, Tensor | int | float | list)
                  or (k == y_key and k == LABEL_KEY))
    tensors = {k: torch.stack([torch.as_tensor(s[k]) for s in samples]) for k in names}
    y = torch.stack([torch.as_tensor(s[y_key]) for s in samples])
    others = [t for k, t in tensors.items() if k != LABEL_KEY]
    if LABEL_KEY in tensors and others and tensors[LABEL_KEY].shape != others[0].shape:
        del tensors[LABEL_KEY]  # per-sample labels beside per-token ids: diag's own loss
        names = tuple(k for k in names if k != LABEL_KEY)
    if len(tensors) == 1 and next(iter(tensors)) != LABEL_KEY:
        return next(iter(tensors.values())), y, ()
    shapes = {k: (t.dtype, tuple(t.shape)) for k, t in tensors.items()}
    if len(set(shapes.values())) != 1 or torch.is_floating_point(
            next(iter(tensors.values()))):
        found = ", ".join(f"{k} {d} {list(s)}" for k, (d, s) in shapes.items())
        raise UsageError(f"{source}: the inputs {found} cannot be packed side by side",
                         hint="diag maps dicts of integer fields of one shape (input_ids, "
                              "attention_mask, labels); give (inputs, targets) pairs instead")
    return torch.stack(list(tensors.values()), dim=1), y, names


_ADAPTED: dict[type, type] = {}


def adapt(model: nn.Module, fields: tuple[str, ...] = ()) -> nn.Module:
    """``model`` with its forward taking diag's inputs (packed fields or a tensor) and
    giving the prediction tensor; its own loss, when it computes one, is kept in ``LAST``.

    Done by a subclass of the model's own class with the same name (so copies, hooks,
    named_modules and isinstance behave as before), never by patching the instance."""
    cls = type(model)
    if fields:
        try:
            params = inspect.signature(cls.forward).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
        missing = [f for f in fields if f not in params and not takes_kwargs]
        if missing:
            taken = [n for n in params if n != "self"]
            raise UsageError(f"the model's forward takes no {', '.join(missing)} (it takes "
                             f"{', '.join(taken) or 'nothing by name'})",
                             hint="name the batch's fields as forward's arguments, or give "
                                  "(inputs, targets) pairs")
    if getattr(cls, "_diag_adapted", False):
        model._diag_fields = fields  # type: ignore[assignment]
        return model
    adapted = _ADAPTED.get(cls)
    if adapted is None:
        base_forward = cls.forward

        def forward(self: nn.Module, x: Any, *args: Any, **kwargs: Any) -> Any:
            names: tuple[str, ...] = getattr(self, "_diag_fields", ())
            out = (base_forward(self, **{f: x[:, i] for i, f in enumerate(names)}) if names
                   else base_forward(self, x, *args, **kwargs))
            pred = prediction(out)
            loss = own_loss(out)
            if loss is not None and isinstance(pred, Tensor):
                LAST.logits, LAST.loss = weakref.ref(pred), loss
            return pred

        adapted = type(cls.__name__, (cls,), {"forward": forward, "_diag_adapted": True,
                                             "__module__": cls.__module__,
                                             "__qualname__": cls.__qualname__})
        _ADAPTED[cls] = adapted
    model.__class__ = adapted
    model._diag_fields = fields  # type: ignore[assignment]
    return model


def loss_or_own(fallback: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor],
                                                                          Tensor]:
    """The check's loss: the model's own loss for the logits it just returned, else
    ``fallback`` (a baseline on other logits: zeros for "the loss of an uninformed guess")."""

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        if LAST.logits is not None and LAST.logits() is pred and LAST.loss is not None:
            return LAST.loss
        return fallback(pred, target)

    loss.__name__ = OWN_LOSS
    return loss
