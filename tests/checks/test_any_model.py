"""Models nobody here wrote the checks for: token-id language models (a GPT with a tied head,
an LSTM that carries its state), a Transformer encoder classifier and a ResNet, built in
tests/architectures.py; size that counts what is saved; and each family's planted bug next
to its healthy twin."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from diag import checks
from diag.result import Severity, Status

import architectures as a
from clirun import diag

ARCH = Path(a.__file__).resolve()


def _warn(r: object) -> list[str]:
    return [f.message for f in r.findings  # type: ignore[attr-defined]
            if f.severity in (Severity.WARN, Severity.FAIL)]


# --- size: what is saved ----------------------------------------------------------------------
def _payload(path: Path) -> int:
    raw = path.read_bytes()
    return len(raw) - 8 - int.from_bytes(raw[:8], "little")


@pytest.mark.parametrize("make", [a.TinyGPT, a.untied_gpt, a.BufferedModel],
                         ids=["tied-gpt", "untied-gpt", "buffered"])
def test_size_reports_the_bytes_the_safetensors_file_holds(make: object,
                                                           tmp_path: Path) -> None:
    data = a.table_data() if make is a.BufferedModel else a.sequence_data(16)
    r = checks.size(model=make, data=data, max_size="64MB", export=str(tmp_path / "w"))
    assert r.metrics["fp32_bytes"] == _payload(tmp_path / "w" / "model.safetensors")
    assert r.metrics["safetensors_bitwise_equal"] and r.metrics["tfjs_fp32_bitwise_equal"]
    model = make()  # type: ignore[operator]
    assert r.metrics["params"] == sum(p.numel() for p in model.parameters())  # unique


def test_tied_weights_are_counted_once_and_an_untied_head_is_named() -> None:
    tied = checks.size(model=a.TinyGPT, data=a.sequence_data(16), max_size="64MB")
    untied = checks.size(model=a.untied_gpt, data=a.sequence_data(16), max_size="64MB")
    assert untied.metrics["params"] - tied.metrics["params"] == a.VOCAB * 128
    assert any("shared weights counted once: head uses tok's" in f.message
               for f in tied.findings)
    assert any(f.message.startswith("head has the shape of the embedding tok")
               for f in untied.findings)
    assert not any("has the shape of the embedding" in f.message for f in tied.findings)


def test_persistent_buffers_count_and_non_persistent_ones_are_listed() -> None:
    r = checks.size(model=a.BufferedModel, data=a.table_data(), max_size="64MB")
    assert r.metrics["buffer_bytes"] == 1024 * 1024 * 4
    assert r.metrics["fp32_bytes"] == 4 * (16 * 4 + 4) + 1024 * 1024 * 4
    assert r.metrics["non_persistent_buffer_bytes"] == 256 * 256 * 4
    assert any("not saved (persistent=False): cache" in f.message for f in r.findings)


def test_size_compares_a_stateful_model_from_the_same_start(tmp_path: Path) -> None:
    """An LSTM LM that keeps its hidden state on self: each forward starts where the last
    ended. Compared call after call, uint16 seemed to flip 7% of its tokens (it was the
    carried state); from one copy of the model as built it flips none, and the export
    loads back bitwise."""
    r = checks.size(model=a.LSTMLM, data=a.sequence_data(), max_size="8MB",
                    export=str(tmp_path / "w"))
    assert r.metrics["stateful_forward"] is True
    assert r.metrics["uint16_error"] == 0.0
    assert r.status != Status.FAIL, r.summary
    assert r.metrics["safetensors_bitwise_equal"] and r.metrics["tfjs_fp32_bitwise_equal"]
    assert any("keeps state between calls" in f.message for f in r.findings)
    plain = checks.size(model=a.TinyGPT, data=a.sequence_data(), max_size="8MB")
    assert plain.metrics["stateful_forward"] is False
    assert not any("keeps state" in f.message for f in plain.findings)


def test_init_fails_batchnorm_frozen_in_train_mode_and_passes_the_twin() -> None:
    """The planted bug: BatchNorm frozen by requires_grad only and kept in train mode under
    model.eval(); one image at inference is normalised by its own statistics."""
    bug = checks.init(model=a.frozen_bn_resnet_bug, data=a.image_class_data())
    assert bug.status == Status.FAIL
    assert bug.metrics["eval_batch_independent"] is False
    assert "depends on its batch" in bug.summary and "stem.1" in bug.summary
    assert "bn.eval()" in bug.findings[0].hint and bug.findings[0].location == "stem.1"
    twin = checks.init(model=a.FrozenBNResNet, data=a.image_class_data())
    assert twin.status == Status.PASS, twin.summary
    assert twin.metrics["eval_batch_independent"] is True


class _Squeezer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x).squeeze()  # a batch of 1 loses its batch axis


class _Similarity(nn.Module):
    """(N, N) scores of each sample against each: batch-wide by design."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)

    def forward(self, x: Tensor) -> Tensor:
        z = self.fc(x)
        return z @ z.T


def test_init_eval_batch_check_says_what_it_cannot_tell() -> None:
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    sq = checks.init(model=_Squeezer, data=(x, torch.randn(32)), loss=nn.MSELoss())
    assert sq.status == Status.WARN and "squeeze()" in sq.summary
    sim = checks.init(model=_Similarity, data=(x, torch.randn(32)),
                      loss=lambda pred, target: pred.pow(2).mean())
    assert sim.metrics["eval_batch_independent"] is None
    assert not any("batch" in f.message for f in sim.findings if f.severity != Severity.INFO)
    lstm = checks.init(model=a.LSTMLM, data=a.sequence_data())  # state carried: cannot tell
    assert lstm.metrics["eval_batch_independent"] is None and lstm.status == Status.PASS


def test_the_browser_nets_size_is_still_their_safetensors_payload(tmp_path: Path) -> None:
    r = checks.size(export=str(tmp_path / "w"))
    assert r.metrics["fp32_bytes"] == 308_896 == _payload(tmp_path / "w" / "model.safetensors")


# --- token ids through every check -------------------------------------------------------------
FAMILIES = {
    "gpt": ("TinyGPT", "sequence_data"),
    "lstm-lm": ("LSTMLM", "sequence_data"),
    "encoder-classifier": ("EncoderClassifier", "token_class_data"),
    "resnet": ("ResNet", "image_class_data"),
    "bert": ("tiny_bert", "DictSamples"),
    "mobilenet-v3-small": ("MobileNetV3Small", "image_class_data"),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_check_passes_on_each_healthy_family(family: str, tmp_path: Path) -> None:
    """`diag check` (every check but preprocess, which needs a pipeline) on each real
    architecture: nothing fails or errors. The data check may warn that its linear probe
    cannot see a signal (the encoder's class is the first token's residue), never more."""
    if family == "bert":
        pytest.importorskip("transformers")
    model, data = FAMILIES[family]
    cfg = tmp_path / "diag.toml"
    cfg.write_text(f'[tool.diag]\nmodel = "{ARCH}:{model}"\ndata = "{ARCH}:{data}"\n'
                   'skip = ["preprocess"]\n[tool.diag.size]\nmax_size = "8MB"\n'
                   "[tool.diag.lr-schedule]\nepochs = 10\n[tool.diag.speed]\nmax_batch = 8\n"
                   "[tool.diag.overfit]\nlr = 0.003\n")
    r = diag("check", "--config", str(cfg), "--format", "json", "--no-plots", "--out",
             str(tmp_path / "o"))
    by_name = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    bad = {n: c["summary"] for n, c in by_name.items() if c["status"] in ("fail", "error")}
    assert not bad and r.returncode == 0, (bad, r.stderr)
    if family in ("gpt", "lstm-lm"):
        assert by_name["speed"]["metrics"]["tokens_per_sample"] == a.CONTEXT
        assert by_name["speed"]["metrics"]["best_tokens_per_s"] > 0


def test_loss_at_init_is_compared_with_ln_v() -> None:
    r = checks.init(model=a.TinyGPT, data=a.sequence_data())
    assert r.status == Status.PASS, r.summary
    assert r.metrics["expected_loss"] == pytest.approx(math.log(a.VOCAB), rel=0.01)
    o = checks.overfit(model=a.TinyGPT, data=a.sequence_data(), max_steps=200)
    assert o.status == Status.PASS, o.summary
    assert o.metrics["expected_initial_loss"] == pytest.approx(math.log(a.VOCAB), rel=1e-3)


def test_token_data_is_aligned_by_its_token_counts() -> None:
    r = checks.data(data=a.sequence_data())
    assert r.metrics["alignment_ratio"] < 0.7 and r.status == Status.PASS, r.summary
    x, y = a.sequence_data()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))]
    assert checks.data(data=(x, shuffled)).metrics["alignment_ratio"] > 0.7


def test_token_ids_are_not_judged_as_unstandardised_inputs() -> None:
    r = checks.data(data=a.token_class_data())
    assert not any("standardised" in m for m in _warn(r))


# --- planted bugs and their twins -------------------------------------------------------------
def test_padding_trained_on_as_a_token_is_found_and_ignore_index_passes() -> None:
    bad = checks.data(data=a.zero_padded_sequence_data())
    assert any(m.startswith("sequence targets end in runs of id 0 in 100% of sequences")
               for m in _warn(bad)), bad.findings
    good = checks.data(data=a.padded_sequence_data())
    assert not any("padding" in m for m in _warn(good))
    o = checks.overfit(model=a.TinyGPT, data=a.padded_sequence_data(), max_steps=200)
    assert o.status == Status.PASS, o.summary  # -100 targets are ignored by the default loss


def test_an_lstm_carrying_its_graph_across_batches_leaks_and_detach_fixes_it() -> None:
    leak = checks.leaks(a.lstm_carries_graph, iterations=12)
    assert leak.status == Status.FAIL, leak.summary
    clean = checks.leaks(a.lstm_detached, iterations=12)
    assert clean.status == Status.PASS, clean.summary


def test_an_encoder_classifier_and_a_resnet_pass() -> None:
    for model, data in ((a.EncoderClassifier, a.token_class_data()),
                        (a.ResNet, a.image_class_data())):
        for r in (checks.init(model=model, data=data),
                  checks.overfit(model=model, data=data, max_steps=300),
                  checks.data(data=data, model=model),
                  checks.size(model=model, data=data, max_size="8MB")):
            assert r.status in (Status.PASS, Status.WARN), (model.__name__, r.name, r.summary)
            assert not [m for m in _warn(r) if "fail" in m.lower()], (r.name, _warn(r))


def test_a_regression_target_of_shape_n_1_is_not_landmark_points() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 8, generator=g)
    y = 5 + 3 * x[:, :1]  # (N, 1), far outside 0..1

    def loader() -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]

    r = checks.data(loader=loader)
    assert not any("points outside the image" in m for m in _warn(r))


# --- dict batches and model outputs -------------------------------------------------------------
def test_a_hugging_face_bert_on_dict_samples_passes_and_uses_its_own_loss(tmp_path: Path
                                                                           ) -> None:
    pytest.importorskip("transformers")
    cfg = tmp_path / "diag.toml"
    cfg.write_text(f'[tool.diag]\nmodel = "{ARCH}:tiny_bert"\ndata = "{ARCH}:DictSamples"\n'
                   'select = ["init", "overfit", "size", "leaks"]\n'
                   '[tool.diag.size]\nmax_size = "8MB"\n[tool.diag.overfit]\nlr = 0.003\n')
    r = diag("check", "--config", str(cfg), "--format", "json", "--no-plots", "--out",
             str(tmp_path / "o"))
    doc = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert r.returncode == 0, {n: c["summary"] for n, c in doc.items()}
    assert doc["init"]["metrics"]["expected_loss"] == pytest.approx(math.log(4), rel=0.01)


def test_the_model_is_called_with_the_fields_by_name() -> None:
    from diag.inputs.target import build_target

    target = build_target(model=a.tiny_bert if _has_transformers() else a.TinyGPT,
                          data=a.DictSamples() if _has_transformers() else a.sequence_data())
    if not _has_transformers():
        pytest.skip("transformers is not installed")
    # per-sample labels beside per-token ids are not packed: diag's own cross-entropy
    assert target.data.fields == ("input_ids", "attention_mask")
    assert target.data.x.shape == (64, 2, a.CONTEXT) and target.loss_name == "cross_entropy"
    model = target.make_model()
    pred = model(target.data.x[:2])
    assert pred.shape == (2, 4)  # the logits of SequenceClassifierOutput
    assert type(model).__name__ == "BertForSequenceClassification"


def test_a_model_that_computes_its_own_loss_is_used_as_it_is() -> None:
    """A causal LM whose loss shifts the labels itself (as Hugging Face's do): diag's loss
    must be the model's, not a cross-entropy of unshifted labels."""
    from diag.inputs.target import build_target

    target = build_target(model=a.OwnLossLM, data=a.LMSamples())
    assert target.data.fields == ("input_ids", "labels")
    assert target.loss_name == "the model's own loss"
    model = target.make_model()
    pred = model(target.data.x[:4])
    loss = target.loss_fn(pred, target.data.y[:4])
    x, y = target.data.x[:4, 0], target.data.y[:4]
    shifted = torch.nn.functional.cross_entropy(pred[:, :-1].reshape(-1, a.VOCAB),
                                                y[:, 1:].reshape(-1))
    assert torch.allclose(loss, shifted) and x.shape == (4, a.CONTEXT)
    r = checks.overfit(model=a.OwnLossLM, data=a.LMSamples(), max_steps=300)
    assert r.status == Status.PASS, r.summary


def _has_transformers() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("model", [a.DictOutputClassifier, a.TupleOutputClassifier],
                         ids=["dict", "tuple"])
def test_dict_and_tuple_outputs_are_read(model: object) -> None:
    r = checks.overfit(model=model, data=a.token_class_data(), max_steps=300, lr=0.01)
    assert r.status == Status.PASS, r.summary
    assert checks.init(model=model, data=a.token_class_data()).status == Status.PASS


def test_dict_samples_diag_cannot_pack_are_one_line(tmp_path: Path) -> None:
    r = diag("overfit", "--model", f"{ARCH}:DictOutputClassifier", "--data",
             f"{ARCH}:MixedSamples", "--out", str(tmp_path))
    assert r.returncode == 2
    assert "cannot be packed side by side" in r.stderr and "extra" in r.stderr


def test_a_loader_of_hugging_face_dicts_is_read() -> None:
    def loader() -> object:
        return torch.utils.data.DataLoader(a.DictSamples(), batch_size=8, shuffle=True,
                                           generator=torch.Generator().manual_seed(0))

    r = checks.data(loader=loader)
    assert r.status in (Status.PASS, Status.WARN) and r.metrics["classes"] == 4, r.summary


def test_mobilenet_v3_small_as_torchvision_builds_it_memorises_the_subset() -> None:
    """torchvision's mobilenet_v3_small layout (2,542,856 parameters with 1,000 classes,
    as torchvision counts them). Its BatchNorm momentum of 0.01 left the running statistics
    hundreds of steps behind the weights: overfit judged a model that had memorised the
    subset in train mode as "unexplained" until it recomputed them before judging."""
    assert sum(p.numel() for p in a.MobileNetV3Small(1000).parameters()) == 2_542_856
    data = a.image_class_data()
    o = checks.overfit(model=a.MobileNetV3Small, data=data, max_steps=300)
    assert o.status == Status.PASS, o.summary
    # every other check: the family test above (`diag check` on it)
