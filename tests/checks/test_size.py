"""size: byte counts pinned for the browser nets, what quantization costs measured on data,
the planted huge layer and outlier layer named, weight files that round-trip or fail
clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diag import checks
from diag.checks.size import parse_size
from diag.checks.size.check import layer_table, separable_savings
from diag.checks.size.export import load_into, load_tfjs, save_tfjs
from diag.errors import DataError
from diag.model import expression_net, landmark_net, tiny_landmark_net
from diag.result import Status

import planted

size = checks.size


@pytest.mark.parametrize(("make", "params"), [(tiny_landmark_net, 77_224),
                                              (landmark_net, 356_840),
                                              (expression_net, 323_687)],
                         ids=["tiny-landmark", "landmark", "expression"])
def test_byte_counts_of_the_browser_nets(make: object, params: int) -> None:
    rows = layer_table(make())  # type: ignore[operator]
    assert sum(r["params"] for r in rows) == params
    assert sum(r["fp32_bytes"] for r in rows) == 4 * params
    tensors = sum(r["tensors"] for r in rows)
    assert sum(r["uint8_bytes"] for r in rows) == params + 8 * tensors


def test_the_tiny_net_is_308896_bytes_fp32_and_about_77kb_uint8() -> None:
    r = size()
    assert r.status == Status.PASS, r.summary  # type: ignore[attr-defined]
    m = r.metrics  # type: ignore[attr-defined]
    assert m["params"] == 77_224 and m["fp32_bytes"] == 308_896
    assert 77_224 < m["uint8_bytes"] < 77_224 + 8 * 40


def test_separable_convs_are_never_suggested_where_the_layer_already_is_one() -> None:
    assert separable_savings(tiny_landmark_net()) == []
    assert separable_savings(landmark_net()) == []


def test_a_huge_layer_is_named_with_its_saving() -> None:
    model = planted.HugeLayer()
    savings = separable_savings(model)
    assert [s["layer"] for s in savings] == ["big"]  # not the first conv (stem)
    assert savings[0]["separable_params"] == 9 * 256 + 256 * 256 + 256
    r = size(planted.HugeLayer, (torch.randn(8, 3, 16, 16), torch.randn(8, 4)),
             max_size="1MB")
    assert r.status == Status.FAIL  # type: ignore[attr-defined]
    top = r.findings[0]  # type: ignore[attr-defined]
    assert "over the 1 MB budget" in top.message and top.location == "big"
    assert any("depthwise-separable" in f.message and "big" in f.message
               for f in r.findings)  # type: ignore[attr-defined]


def test_an_outlier_weight_makes_uint8_fail_and_names_its_layer() -> None:
    data = planted.regression_data()
    bad = size(planted.outlier_layer, data)
    assert bad.status in (Status.FAIL, Status.WARN), bad.summary  # type: ignore[attr-defined]
    assert bad.metrics["worst_layer"] == "body"  # type: ignore[attr-defined]
    f = next(f for f in bad.findings if "quantization costs" in f.message)  # type: ignore[attr-defined]
    assert "keep body at higher precision" in f.hint and f.location == "body"
    good = size(planted.clean_mlp, data)
    assert good.status == Status.PASS, good.summary  # type: ignore[attr-defined]
    assert good.metrics["uint8_error"] < 0.01  # type: ignore[attr-defined]


def test_export_round_trips_safetensors_and_tfjs(tmp_path: Path) -> None:
    r = size(export=str(tmp_path / "w"))
    m = r.metrics  # type: ignore[attr-defined]
    assert m["safetensors_bitwise_equal"] and m["tfjs_fp32_bitwise_equal"]
    assert m["tfjs_quantized_equal"] and m["tfjs_uint8_bytes"] == 77_224
    doc = json.loads((tmp_path / "w" / "tfjs-uint8" / "model.json").read_text())
    entry = doc["weightsManifest"][0]["weights"][0]
    assert set(entry["quantization"]) == {"dtype", "scale", "min"}
    # safetensors is a plain header + bytes: nothing to unpickle
    assert b"pickle" not in (tmp_path / "w" / "model.safetensors").read_bytes()[:4096]


def test_a_truncated_shard_and_a_wrong_shape_are_clear_errors(tmp_path: Path) -> None:
    model = tiny_landmark_net()
    path = save_tfjs(model, tmp_path, "uint8")
    shard = tmp_path / "group1-shard1of1.bin"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated"):
        load_tfjs(path)
    path = save_tfjs(model, tmp_path, None)
    doc = json.loads(path.read_text())
    doc["weightsManifest"][0]["weights"][-1]["shape"] = [7]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError):
        load_into(model, load_tfjs(path), "model.json")


def test_sizes_parse_and_bad_ones_are_usage_errors() -> None:
    assert parse_size("2MB") == 2_000_000 and parse_size("1.5MiB") == 1_572_864
    assert parse_size("500KB") == 500_000 and parse_size("123") == 123
    with pytest.raises(ValueError):
        parse_size("big")


def test_uint16_export_follows_the_precision(tmp_path: Path) -> None:
    r = size(export=str(tmp_path / "w"), precision="uint16")
    m = r.metrics  # type: ignore[attr-defined]
    assert m["tfjs_quantized_equal"] and m["tfjs_uint16_bytes"] == 2 * 77_224
    assert size(str(tmp_path / "w" / "tfjs-uint16")).status == Status.PASS  # type: ignore[attr-defined]


def test_exported_weights_load_back_through_model_folder(tmp_path: Path) -> None:
    size(export=str(tmp_path / "w"))
    for folder in ("w", "w/tfjs-uint8", "w/tfjs-float32"):
        r = size(str(tmp_path / folder))
        assert r.status == Status.PASS, r.summary  # type: ignore[attr-defined]
        assert r.metrics["params"] == 77_224  # type: ignore[attr-defined]


def test_a_broken_folder_is_exit_2_never_a_partly_loaded_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from diag.cli import app

    size(export=str(tmp_path / "w"))
    shard = tmp_path / "w" / "tfjs-float32" / "group1-shard1of1.bin"
    shard.write_bytes(shard.read_bytes()[:1000])
    r = CliRunner().invoke(app, ["size", "--model", str(tmp_path / "w" / "tfjs-float32"),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "truncated" in r.stderr, r.output
    manifest = tmp_path / "w" / "tfjs-uint8" / "model.json"
    doc = json.loads(manifest.read_text())
    doc["weightsManifest"][0]["weights"][0]["shape"] = [3, 3, 3, 32]  # HWIO, not OIHW
    manifest.write_text(json.dumps(doc))
    r = CliRunner().invoke(app, ["size", "--model", str(tmp_path / "w" / "tfjs-uint8"),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "has shape" in r.stderr, r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(app, ["size", "--model", str(tmp_path / "empty"),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no model.json" in r.stderr, r.output


def test_plots_have_titles_and_labelled_axes() -> None:
    from diag.report.figures import figures_for

    figs = figures_for(size())  # type: ignore[arg-type]
    assert set(figs) == {"bytes", "weights", "landmarks"}
    for fig in figs.values():
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
        assert fig._suptitle is not None or all(ax.get_title() for ax in fig.axes)
