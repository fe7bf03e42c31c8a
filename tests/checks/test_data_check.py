"""data: each planted data bug is found and named next to its correct twin, which passes;
and the order, alignment and value checks agree with what is known about five tables that
ship inside scikit-learn (labelled from their documentation before diag ran on them)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from diag import checks
from diag.cli import app
from diag.result import ExitCode, Severity, Status

import data_cases as d

data = checks.data


def _messages(r: Any, *severities: Severity) -> list[str]:
    return [f.message for f in r.findings if f.severity in severities]


# --- planted bugs and their twins ------------------------------------------------------------
def test_sorted_data_without_shuffle_fails_with_the_first_batches_class_counts() -> None:
    r = data(loader=d.unshuffled_loader)
    assert r.status == Status.FAIL
    assert r.summary.startswith("the batches are not shuffled")
    assert "batch 1: {0: 8}" in r.summary
    assert r.metrics["order_z"] > 5 and r.metrics["same_order_each_epoch"] is True


def test_the_same_data_shuffled_passes() -> None:
    r = data(loader=d.shuffled_loader)
    assert r.status == Status.PASS, r.summary
    assert r.metrics["same_order_each_epoch"] is False and r.metrics["order_z"] < 5


def test_the_same_order_every_epoch_is_found_even_when_shuffled_once() -> None:
    r = data(loader=d.once_shuffled_loader)
    assert r.status == Status.WARN
    assert _messages(r, Severity.WARN) == [
        "the same order every epoch: the first 96 samples of epoch 2 come exactly as in "
        "epoch 1"]
    assert r.metrics["order_z"] < 5  # the order itself looks random


def test_labels_permuted_against_the_inputs_carry_no_signal() -> None:
    r = data(data=d.permuted_labels())
    assert r.status == Status.WARN
    assert "no signal this probe can find" in r.summary
    assert r.metrics["alignment_ratio"] > 0.7


def test_aligned_labels_are_found_aligned() -> None:
    r = data(data=d.table())
    assert r.status == Status.PASS, r.summary
    assert r.metrics["alignment_ratio"] < 0.7


def test_inputs_in_0_to_255_are_found() -> None:
    r = data(data=d.raw_pixels())
    assert r.status == Status.WARN
    assert _messages(r, Severity.WARN) == [
        "inputs look like raw 0-255 pixels (min 0, max 255, 100% whole numbers)"]


def test_the_same_images_divided_by_255_pass() -> None:
    r = data(data=d.pixels())
    assert r.status == Status.PASS, r.summary


def test_images_divided_by_255_twice_or_standardised_twice_are_found() -> None:
    x, y = d.pixels()
    assert any("divided by 255 twice" in m for m in
               _messages(data(data=(x / 255, y)), Severity.WARN))
    mean, std = 0.45, 0.25
    twice = ((x - mean) / std - mean) / std
    assert any("standardised twice" in m for m in
               _messages(data(data=(twice, y)), Severity.WARN))
    assert not _messages(data(data=((x - mean) / std, y)), Severity.WARN)


def test_a_nan_in_sample_17_is_named() -> None:
    r = data(loader=d.nan_loader)  # batch 8, unshuffled: sample 17 is batch 3, row 1
    assert r.status == Status.FAIL
    assert r.summary == "inputs hold NaN or Inf in 1 sample: 17 (batch 3, row 1)"
    assert r.metrics["nonfinite_samples"] == 1
    r = data(data=d.nan_at_17())  # diag batches it: the data set's index
    assert r.summary == "inputs hold NaN or Inf in 1 sample: 17"


def test_a_nan_in_data_other_checks_train_on_is_a_usage_error_naming_it(tmp_path: Any
                                                                       ) -> None:
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["init", "--model", "tests/init_nets.py:small_logits",
                                 "--data", "tests/data_cases.py:nan_at_17", "--out",
                                 str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR
    assert "x holds NaN or Inf in 1 sample (index 17)" in r.stderr


def test_the_clean_loader_passes() -> None:
    r = data(loader=d.clean_loader)
    assert r.status == Status.PASS, r.summary


def test_duplicates_with_conflicting_labels_are_found() -> None:
    r = data(data=d.conflicting_duplicates())
    assert r.status == Status.WARN
    assert r.metrics["conflicting_duplicates"] == 5
    assert "5 groups of identical inputs carry different labels" in r.summary


def test_duplicates_with_the_same_labels_are_only_info() -> None:
    r = data(data=d.agreeing_duplicates())
    assert r.status == Status.PASS, r.summary
    assert r.metrics["duplicate_samples"] == 5 and r.metrics["conflicting_duplicates"] == 0


def test_class_imbalance_warns_at_10_to_1() -> None:
    x, y = d.table()
    y = torch.zeros(len(y), dtype=torch.long)
    y[:8] = 1  # 88 : 8
    r = data(data=(x, y), probe=False)
    assert any("class imbalance" in m for m in _messages(r, Severity.WARN))


def test_targets_the_output_layer_cannot_produce() -> None:
    x = torch.randn(64, 8)
    y = torch.rand(64, 2) * 1.5  # some above 1

    def sigmoid_net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(8, 2), torch.nn.Sigmoid())

    r = data(data=(x, y), model=sigmoid_net, probe=False)
    assert r.status == Status.FAIL
    assert "outside what the output layer (sigmoid) can produce (0..1)" in r.summary
    r = data(data=(x, y / 1.5), model=sigmoid_net, probe=False)
    assert r.status == Status.PASS, r.summary


def test_soft_targets_that_do_not_sum_to_1() -> None:
    x = torch.randn(64, 8)
    y = torch.softmax(torch.randn(64, 3), 1)

    def net() -> torch.nn.Module:
        return torch.nn.Linear(8, 3)

    bad = y.clone()
    bad[5] *= 2
    r = data(data=(x, bad), model=net, loss="torch.nn.functional:cross_entropy", probe=False)
    assert r.status == Status.FAIL
    assert "do not sum to 1 in 1 samples" in r.summary and ": 5" in r.summary
    r = data(data=(x, y), model=net, loss="torch.nn.functional:cross_entropy", probe=False)
    assert r.status == Status.PASS, r.summary


def test_landmarks_outside_the_image() -> None:
    import dataclasses

    from diag.checks.data import DataOptions
    from diag.checks.data.check import run
    from diag.inputs import Inputs
    from diag.inputs.data import TensorData
    from diag.inputs.target import build_target

    target = build_target(task="landmarks")  # the generated faces: every point inside
    assert run(Inputs(target=target), DataOptions(probe=False)).status == Status.PASS
    y = target.data.y.clone()
    y[3, 0] = 1.2  # sample 3's first point is off the right edge
    moved = dataclasses.replace(target, data=TensorData(target.data.x, y, "moved"))
    r = run(Inputs(target=moved), DataOptions(probe=False))
    assert r.status == Status.WARN
    assert r.summary.startswith("points outside the image") and r.summary.endswith(": 3")


def test_a_loader_that_raises_is_exit_3_with_its_line(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["data", "--loader", "tests/data_cases.py:raising_loader",
                                 "--out", str(tmp_path)])
    assert r.exit_code == ExitCode.CHECK_ERROR
    assert "corrupt record 3" in r.stderr and "data_cases.py:" in r.stderr


def test_a_loader_with_the_wrong_structure_is_exit_2(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["data", "--loader",
                                 "tests/data_cases.py:wrong_structure_loader", "--out",
                                 str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR
    assert "yields a Tensor, not an (inputs, targets) batch" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_loader_factory_returning_no_iterable_is_exit_2(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["data", "--loader", "tests/data_cases.py:N", "--out",
                                 str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR and "is a int" not in r.stderr
    assert "--loader tests/data_cases.py:N is an int" in r.stderr


def test_the_data_checks_config_table_is_data_check(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    cfg = tmp_path / "diag.toml"
    cfg.write_text('[tool.diag]\nselect = ["data"]\n[tool.diag.data]\nmax_batches = 4\n')
    r = CliRunner().invoke(app, ["check", "--config", str(cfg), "--out", str(tmp_path)])
    assert r.exit_code == ExitCode.USAGE_ERROR
    assert "put the data check's options in [tool.diag.data-check]" in r.stderr
    cfg.write_text('[tool.diag]\nselect = ["data"]\n[tool.diag.data-check]\n'
                   'max_batches = 2\nloader = "data_cases.py:cached_loader_for_config"\n')
    (tmp_path / "data_cases.py").write_text(
        "import torch\n\ndef cached_loader_for_config():\n"
        "    x = torch.randn(32, 4)\n    return [(x[i:i + 8], x[i:i + 8, 0] > 0) for i in "
        "range(0, 32, 8)]\n")
    r = CliRunner().invoke(app, ["check", "--config", str(cfg), "--out", str(tmp_path),
                                 "--format", "json"])
    doc = json.loads(r.stdout)["checks"][0]
    assert doc["metrics"]["batches_seen"] == 2  # the table's max_batches, its loader


def test_same_seed_same_numbers() -> None:
    a = data(loader=d.shuffled_loader, seed=4).to_dict()
    b = data(loader=d.shuffled_loader, seed=4).to_dict()
    assert a["metrics"] == b["metrics"] and a["findings"] == b["findings"]


# --- real tables shipped inside scikit-learn -------------------------------------------------
sklearn = pytest.importorskip("sklearn.datasets")

# Labelled from the scikit-learn documentation before diag ran on them:
# - iris: 150 samples stored in class order (50 setosa, 50 versicolor, 50 virginica); two
#   rows are identical with the same class (Fisher's samples 102 and 143).
# - wine: 178 samples stored in class order (59, 71, 48).
# - breast_cancer: 569 samples, not sorted by class (212 malignant, 357 benign). First
#   labelled "not shuffled: no", which diag contradicted. Counted with numpy on the raw
#   target array, not with diag: its first 19 rows are all malignant and its labels come in
#   214 runs, where random orders give about 267. The stored order is clustered, so batches
#   taken in that order are biased: the label is corrected to "not shuffled: yes".
# - digits: 1797 8x8 images, values 0..16, stored roughly cycling 0..9; corner pixels are
#   always 0 (constant features).
# - diabetes: 442 samples, a regression target stored in no particular order.
TABLES = {"iris": (sklearn.load_iris, True), "wine": (sklearn.load_wine, True),
          "breast_cancer": (sklearn.load_breast_cancer, True),
          "digits": (sklearn.load_digits, False), "diabetes": (sklearn.load_diabetes, False)}


def _table(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    bunch = TABLES[name][0]()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(bunch.target)
    return x, (y.float() if name == "diabetes" else y.long())


def _loader(name: str, shuffle: bool, sort: bool = False) -> Any:
    x, y = _table(name)
    if sort:
        order = torch.argsort(y, stable=True)
        x, y = x[order], y[order]

    def make() -> DataLoader:
        return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(0))

    return make


@pytest.mark.parametrize("name", list(TABLES))
def test_real_tables_in_their_stored_order_without_shuffle(name: str) -> None:
    r = data(loader=_loader(name, shuffle=False), max_batches=64)
    stored_by_class = TABLES[name][1]
    not_shuffled = any(m.startswith("the batches are not shuffled")
                       for m in _messages(r, Severity.FAIL))
    assert not_shuffled == stored_by_class, (name, r.summary)
    assert r.metrics["same_order_each_epoch"] is True


@pytest.mark.parametrize("name", list(TABLES))
def test_real_tables_shuffled_are_aligned_and_shuffled(name: str) -> None:
    r = data(loader=_loader(name, shuffle=True), max_batches=64)
    assert r.metrics["order_z"] < 5 and r.metrics["same_order_each_epoch"] is False
    assert r.metrics["alignment_ratio"] < 0.7, (name, r.metrics)
    assert r.metrics["conflicting_duplicates"] == 0
    assert not any("0-255" in m for m in _messages(r, Severity.WARN))


@pytest.mark.parametrize("name", list(TABLES))
def test_real_tables_with_permuted_targets_carry_no_signal(name: str) -> None:
    x, y = _table(name)
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(7))]
    r = data(data=(x, y))
    assert r.metrics["alignment_ratio"] > 0.7, (name, r.metrics)


def test_diabetes_sorted_by_its_target_is_not_shuffled() -> None:
    r = data(loader=_loader("diabetes", shuffle=False, sort=True))
    assert r.status == Status.FAIL and "neighbouring targets are correlated" in r.summary


def test_iris_duplicates_and_stored_order_and_digits_constant_pixels() -> None:
    r = data(data=_table("iris"))
    assert r.metrics["duplicate_samples"] >= 1 and r.metrics["conflicting_duplicates"] == 0
    assert any("stored in class order" in m for m in _messages(r, Severity.INFO))
    r = data(data=_table("digits"))
    assert any("input features are constant" in m for m in _messages(r, Severity.INFO))


# --- inputs far from standardised (labelled before diag ran on them) --------------------------
# - wine, iris, breast_cancer as shipped: raw units (wine's proline ~750, iris's sepal length
#   5.8 cm with std 0.8, breast cancer's areas in the hundreds beside ratios of 0.06): warn.
# - the same tables after StandardScaler: pass.
# - digits divided by 16 (pixels in [0, 1], many near-constant border pixels): no warn; it is
#   how scikit-learn's examples feed digits to an MLP.
# - images of floats around 134 with std 29 (the held-out case): warn; standardised per
#   channel: no warn; uniform [0, 1] images: no warn.
# - a standardised table with one column left in raw units (x1000): warn naming it.
# - token ids (int64): never judged.
def _std(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0).clamp_min(1e-12)


@pytest.mark.parametrize("name", ["wine", "iris", "breast_cancer"])
def test_raw_tables_are_not_standardised_and_their_scaled_twins_are(name: str) -> None:
    x, y = _table(name)
    raw = data(data=(x, y))
    assert any(m.startswith("inputs are not standardised") for m in
               _messages(raw, Severity.WARN)), (name, raw.findings)
    scaled = data(data=(_std(x), y))
    assert not any("standardised" in m for m in _messages(scaled, Severity.WARN)), name


def test_digits_in_0_to_1_and_uniform_images_are_not_flagged() -> None:
    x, y = _table("digits")
    assert not any("standardised" in m for m in _messages(data(data=(x / 16, y)),
                                                          Severity.WARN))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, 16, 16, generator=g)
    labels = torch.randint(0, 3, (64,), generator=g)
    assert not any("standardised" in m for m in _messages(data(data=(images, labels)),
                                                          Severity.WARN))


def test_float_images_around_134_warn_and_their_standardised_twin_passes() -> None:
    g = torch.Generator().manual_seed(0)
    images = 134 + 29 * torch.randn(64, 3, 16, 16, generator=g)  # floats, not whole numbers
    labels = torch.randint(0, 3, (64,), generator=g)
    warns = _messages(data(data=(images, labels)), Severity.WARN)
    assert any(m.startswith("inputs are not standardised: the typical channel has a mean 4.6")
               and "channel 0 (mean 134" in m.replace("channel 1", "channel 0")
               for m in warns), warns
    assert not any("standardised" in m for m in _messages(
        data(data=((images - 134) / 29, labels)), Severity.WARN))


def test_one_raw_column_among_standardised_ones_is_named() -> None:
    x, y = _table("wine")
    x = _std(x)
    x[:, 12] *= 1000
    warns = _messages(data(data=(x, y)), Severity.WARN)
    assert any("1 feature has a std over 10x" in m and "feature 12" in m for m in warns), warns


def test_token_ids_are_not_judged_for_standardisation() -> None:
    from diag.checks.data.check import _unstandardised

    ids = torch.randint(0, 5000, (32, 16), generator=torch.Generator().manual_seed(0))
    assert _unstandardised(ids) is None
    assert _unstandardised(ids.float()) is not None  # the same numbers as floats would warn
