"""preprocess: each classic bug planted in a pipeline fails with the right finding; correct
twins pass (an honest BGR pipeline included)."""

from __future__ import annotations

import pytest

from diag import checks
from diag.checks.preprocess.check import PROPERTIES, load_pipeline
from diag.model.pipeline import BrowserPipeline
from diag.result import Status

import pipelines


@pytest.mark.parametrize("pipe", [BrowserPipeline(), BrowserPipeline(size=56),
                                  pipelines.BGRHonest(size=64), pipelines.clean()],
                         ids=["browser-112", "browser-56", "bgr-honest", "clean-64"])
def test_correct_pipelines_pass(pipe: object) -> None:
    r = checks.preprocess(pipe)
    assert r.status == Status.PASS, (r.summary, r.findings)
    assert all(r.metrics[p] is True for p in PROPERTIES)
    assert r.metrics["max_round_trip_error_px"] <= 0.5
    assert r.metrics["max_point_error_px"] <= 1.0


PLANTED = [
    ("BGRUndeclared", "channel_order", "wrong channels"),
    ("ViewNotPermute", "spatial_integrity", "permute(2, 0, 1)"),
    ("DoubleNormalised", "intensity", "applied twice"),
    ("Uint8Wrap", "intensity", "not monotone"),
    ("PointsPaddedTopLeft", "points_agree", "from model_points"),
    ("PostprocessForgetsPadding", "round_trip", "padding offset"),
    ("SwappedXY", "points_agree", "x then y"),
    ("Flipped", "spatial_integrity", "flipped horizontally"),
    ("Transposed", "spatial_integrity", "transposed (height and width swapped)"),
    ("UpsideDown", "spatial_integrity", "flipped vertically"),
    ("RandomJitter", "determinism", "different outputs"),
]


@pytest.mark.parametrize(("name", "prop", "needle"), PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_bug_fails_its_property(name: str, prop: str, needle: str) -> None:
    r = checks.preprocess(getattr(pipelines, name)(size=64))
    assert r.status == Status.FAIL, r.summary
    assert r.metrics[prop] is False, r.metrics
    text = " ".join(f.message + " " + f.hint for f in r.findings)
    assert needle in text, text


def test_pipeline_that_raises_is_an_error_with_location() -> None:
    r = checks.preprocess(pipelines.Raises())
    assert r.status == Status.ERROR
    assert r.findings[0].location.startswith("pipelines.py:")


def test_not_a_pipeline_is_a_usage_error_with_the_protocol() -> None:
    from diag.errors import UsageError

    with pytest.raises(UsageError, match="no preprocess") as exc:
        checks.preprocess(object())
    assert "postprocess(model_points, image_size" in exc.value.hint


def test_round_trip_error_is_reported_in_pixels() -> None:
    r = checks.preprocess(pipelines.PostprocessForgetsPadding(size=64))
    # 120x71: 49 columns of padding, 24 on the left (face-api.js puts the odd one on the right)
    assert r.metrics["max_round_trip_error_px"] == pytest.approx(24.0, abs=0.5)


def test_plot_data_has_a_panel_per_probe_size() -> None:
    from diag.report.figures import figures_for

    r = checks.preprocess(BrowserPipeline(size=48))
    figs = figures_for(r)
    assert len(figs) == r.metrics["probes"]
    for fig in figs.values():
        assert fig._suptitle is not None and all(ax.get_xlabel() for ax in fig.axes)


def test_load_pipeline_default_and_class_spec(planted_path: str) -> None:
    obj, source = load_pipeline(None)
    assert isinstance(obj, BrowserPipeline) and "default" in source
    obj, _ = load_pipeline(planted_path.replace("planted.py", "pipelines.py") + ":Clean")
    assert type(obj).__name__ == "Clean" and obj.size == 112  # loaded as a file: its own module


@pytest.mark.parametrize(("name", "says", "not_says"), [
    ("Flipped", "flipped horizontally", "transposed"),
    ("Transposed", "transposed", "flipped"),
    ("UpsideDown", "flipped vertically", "horizontally"),
])
def test_a_flip_and_a_transpose_are_named_apart(name: str, says: str, not_says: str) -> None:
    r = checks.preprocess(getattr(pipelines, name)(size=64))
    f = next(f for f in r.findings if f.message.startswith("the image is"))
    assert says in f.message and not_says not in f.message, f.message
