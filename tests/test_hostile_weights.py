"""A hostile weight folder (``--model DIR``) and a hostile ``--export`` folder: diag reads only
regular files inside the folder it was given, writes only inside ``--export``, and every
malformed file is one line and exit 2, never a traceback, a hang or a partial load.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diag.checks.size.export import load_folder, save_tfjs
from diag.errors import DataError
from diag.model import tiny_landmark_net

from clirun import diag, one_line

FUZZ_EXAMPLES = int(os.environ.get("DIAG_FUZZ_EXAMPLES", "60"))
"""Examples per fuzz test; raise it (e.g. 2000) for a long hunt."""

# --- an audit hook that sees every file the process opens -----------------------------------
_OPENED: list[str] = []
_WATCH = threading.local()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and getattr(_WATCH, "on", False) and isinstance(args[0], str | bytes):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # cannot be removed; it records only inside watched()


@contextmanager
def watched() -> Iterator[list[str]]:
    """The paths opened (``open``/``os.open``) in this thread meanwhile, resolved."""
    _OPENED.clear()
    _WATCH.on = True
    try:
        yield _OPENED
    finally:
        _WATCH.on = False


def _resolved(paths: list[str]) -> list[str]:
    return [os.path.realpath(p) for p in paths]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tfjs fp32 export of the tiny browser net (the folder ``--model DIR`` takes)."""
    folder = tmp_path_factory.mktemp("export")
    save_tfjs(tiny_landmark_net(input_size=48), folder, None)
    return folder


def _copy(src: Path, tmp: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A fresh copy of the export in ``tmp/model`` beside ``tmp/outside``: (folder, outside
    folder, the parsed model.json)."""
    folder = tmp / "model"
    shutil.copytree(src, folder)
    outside = tmp / "outside"
    outside.mkdir()
    doc = json.loads((folder / "model.json").read_text())
    return folder, outside, doc


def _save(folder: Path, doc: Any) -> None:
    (folder / "model.json").write_text(json.dumps(doc) if not isinstance(doc, str) else doc)


def test_a_clean_export_loads_back(exported: Path, tmp_path: Path) -> None:
    folder, _, _ = _copy(exported, tmp_path)
    with watched() as opened:
        model = load_folder(str(folder), 48)
    assert sum(p.numel() for p in model.parameters()) == 77_224
    assert all(p.startswith(str(folder.resolve())) for p in _resolved(opened)
               if "model" in p and str(tmp_path) in p)


# --- security -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../outside/shard.bin", "{outside}/shard.bin", "sub/shard.bin",
                                  "..", "", 7])
def test_a_shard_name_that_is_not_a_plain_file_name_is_refused(exported: Path, tmp_path: Path,
                                                               name: Any) -> None:
    folder, outside, doc = _copy(exported, tmp_path)
    shard = folder / doc["weightsManifest"][0]["paths"][0]
    shutil.copy(shard, outside / "shard.bin")
    if isinstance(name, str):
        name = name.format(outside=outside)
    doc["weightsManifest"][0]["paths"][0] = name
    _save(folder, doc)
    with watched() as opened:
        r = diag("size", "--model", str(folder), "--no-plots", "--out", str(tmp_path / "r"))
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert "paths[0]" in line and "model.json" in line
    assert not any(p.startswith(str(outside.resolve())) for p in _resolved(opened))


def test_a_shard_that_is_a_symlink_out_of_the_folder_is_refused(exported: Path,
                                                                tmp_path: Path) -> None:
    folder, outside, doc = _copy(exported, tmp_path)
    shard = folder / doc["weightsManifest"][0]["paths"][0]
    shutil.move(shard, outside / "shard.bin")
    shard.symlink_to(outside / "shard.bin")
    with watched() as opened:
        with pytest.raises(DataError, match="resolves outside"):
            load_folder(str(folder), 48)
    assert not any(p.startswith(str(outside.resolve())) for p in _resolved(opened))


def test_model_json_that_is_a_symlink_out_of_the_folder_is_refused(exported: Path,
                                                                   tmp_path: Path) -> None:
    folder, outside, _ = _copy(exported, tmp_path)
    shutil.move(folder / "model.json", outside / "model.json")
    (folder / "model.json").symlink_to(outside / "model.json")
    with pytest.raises(DataError, match="resolves outside"):
        load_folder(str(folder), 48)


def test_a_symlink_inside_the_folder_is_fine(exported: Path, tmp_path: Path) -> None:
    folder, _, doc = _copy(exported, tmp_path)
    shard = folder / doc["weightsManifest"][0]["paths"][0]
    shutil.move(shard, folder / "real.bin")
    shard.symlink_to(folder / "real.bin")
    assert sum(p.numel() for p in load_folder(str(folder), 48).parameters()) == 77_224


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_shard_is_refused_at_once(exported: Path, tmp_path: Path) -> None:
    folder, _, doc = _copy(exported, tmp_path)
    shard = folder / doc["weightsManifest"][0]["paths"][0]
    shard.unlink()
    os.mkfifo(shard)
    # A subprocess bounded by its own timeout: a hang must fail this test, not the suite.
    r = subprocess.run([sys.executable, "-c", "from diag.cli import main; main()", "size",
                        "--model", str(folder), "--no-plots", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "not a regular file" in one_line(r.stderr)


def test_export_replaces_a_planted_symlink_and_writes_nothing_outside(tmp_path: Path) -> None:
    out = tmp_path / "export"
    (out / "tfjs-uint8").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "tfjs-uint8" / "group1-shard1of1.bin").symlink_to(victim)
    (out / "model.safetensors").symlink_to(victim)
    r = diag("size", "--export", str(out), "--no-plots", "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious"
    shard = out / "tfjs-uint8" / "group1-shard1of1.bin"
    assert not shard.is_symlink() and shard.stat().st_size == 77_224
    assert not (out / "model.safetensors").is_symlink()


def test_export_into_a_subfolder_that_links_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "tfjs-float32").symlink_to(tmp_path / "elsewhere")
    r = diag("size", "--export", str(out), "--no-plots", "--out", str(tmp_path / "r"))
    assert r.returncode == 2, r.stderr
    assert "tfjs-float32" in one_line(r.stderr)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["tfjs-float32"]  # nothing partial


# --- corrupt folders: one line naming the field and the file, exit 2 ------------------------
def _entry(doc: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return doc["weightsManifest"][0]["weights"][i]  # type: ignore[no-any-return]


CORRUPT = {
    "shape overflows int64": (lambda d: _entry(d).__setitem__("shape", [2**62, 2**62, 8]),
                              "shape"),
    "negative dimension": (lambda d: _entry(d).__setitem__("shape", [3, -3, 3, 32]), "shape"),
    "string dimension": (lambda d: _entry(d).__setitem__("shape", [3, "3", 3, 32]), "shape"),
    "diagNet is a list": (lambda d: d.__setitem__("diagNet", ["tiny-landmark"]), "diagNet"),
    "weightsManifest is an object": (lambda d: d.__setitem__("weightsManifest", {"a": 1}),
                                     "weightsManifest"),
    "scale is a string": (lambda d: _entry(d).__setitem__(
        "quantization", {"dtype": "uint8", "scale": "0.1", "min": 0}), "scale"),
    "scale is missing": (lambda d: _entry(d).__setitem__(
        "quantization", {"dtype": "uint8", "min": 0}), "scale"),
    "scale is NaN": (lambda d: _entry(d).__setitem__(
        "quantization", {"dtype": "uint8", "scale": float("nan"), "min": 0}), "scale"),
    "weights is not a list": (lambda d: d["weightsManifest"][0].__setitem__("weights", 3),
                              "weights"),
    "an entry is a number": (lambda d: d["weightsManifest"][0]["weights"].__setitem__(0, 1),
                             "weights[0]"),
    "the document is a list": (lambda d: None, "document"),
    "dtype is a list (found by the fuzz)": (lambda d: _entry(d).__setitem__("dtype", []),
                                            "dtype"),
    "quantization dtype is a list": (lambda d: _entry(d).__setitem__(
        "quantization", {"dtype": ["uint8"], "scale": 1, "min": 0}), "quantization"),
}


@pytest.mark.parametrize("case", list(CORRUPT), ids=list(CORRUPT))
def test_a_corrupt_model_json_is_one_line_naming_the_field(exported: Path, tmp_path: Path,
                                                           case: str) -> None:
    folder, _, doc = _copy(exported, tmp_path)
    mutate, field = CORRUPT[case]
    mutate(doc)
    _save(folder, [doc] if case == "the document is a list" else doc)
    r = diag("size", "--model", str(folder), "--no-plots", "--out", str(tmp_path / "r"))
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert field in line and "model.json" in line, line


def test_json_nested_100000_deep_is_one_line(exported: Path, tmp_path: Path) -> None:
    folder, _, _ = _copy(exported, tmp_path)
    _save(folder, "[" * 100_000 + "]" * 100_000)
    r = diag("size", "--model", str(folder), "--no-plots", "--out", str(tmp_path / "r"))
    assert r.returncode == 2, r.stderr
    assert "nested too deeply" in one_line(r.stderr)


# --- the fuzz: any mutation of model.json is a clean load or one DataError ------------------
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["../x.bin", "/etc/passwd", "..", "a/b", "uint8", "uint16",
                                     "float32", "tiny-landmark", "group1-shard1of1.bin"]))
_VALUES = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8)
_PATHS = st.sampled_from([("diagNet",), ("weightsManifest",), ("weightsManifest", 0),
                          ("weightsManifest", 0, "paths"), ("weightsManifest", 0, "paths", 0),
                          ("weightsManifest", 0, "weights"),
                          ("weightsManifest", 0, "weights", 0),
                          ("weightsManifest", 0, "weights", 0, "shape"),
                          ("weightsManifest", 0, "weights", 0, "shape", 1),
                          ("weightsManifest", 0, "weights", 0, "dtype"),
                          ("weightsManifest", 0, "weights", 0, "name"),
                          ("weightsManifest", 0, "weights", 3, "quantization"),
                          ("weightsManifest", 0, "weights", 5)])


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(_PATHS, _VALUES), min_size=1, max_size=3))
def test_fuzzed_model_json_loads_or_is_one_clean_error(exported: Path, tmp_path: Path,
                                                       mutations: list[Any]) -> None:
    base = json.loads((exported / "model.json").read_text())
    doc: Any = copy.deepcopy(base)
    for path, value in mutations:
        # an earlier mutation may have changed the document's shape: keep the rest
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _set(doc, path, value)
    root = tmp_path / "fuzz"
    shutil.rmtree(root, ignore_errors=True)
    folder = root / "model"
    shutil.copytree(exported, folder)
    (root / "x.bin").write_bytes(b"\0" * 1024)
    (folder / "model.json").write_text(json.dumps(doc))
    with watched() as opened:
        try:
            model = load_folder(str(folder), 48)
        except DataError as exc:
            assert exc.exit_code == 2
            assert "\n" not in exc.one_line()
        else:
            assert sum(p.numel() for p in model.parameters()) == 77_224
    escaped = [p for p in _resolved(opened) if p.startswith(str(root.resolve()))
               and not p.startswith(str(folder.resolve()) + os.sep)]
    assert escaped == [], escaped
    assert not any(p.startswith("/etc/") for p in _resolved(opened))
