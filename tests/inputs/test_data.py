"""Generated faces and the browser preprocessing / postprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diag.errors import DataError
from diag.inputs.data import EXPRESSIONS, default_data, generate_faces, load_npz
from diag.model.pipeline import MEAN_RGB, BrowserPipeline, square_padding


def test_generation_is_seeded_and_prefix_stable() -> None:
    a, b = generate_faces(20, seed=3), generate_faces(40, seed=3)
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.points, y.points)
               for x, y in zip(a, b[:20], strict=True))
    assert not np.array_equal(generate_faces(1, seed=4)[0].image, a[0].image)


def test_samples_vary_and_points_lie_inside_images() -> None:
    samples = generate_faces(200, seed=0)
    shapes = {s.image.shape[:2] for s in samples}
    aspects = [s.image.shape[1] / s.image.shape[0] for s in samples]
    assert len(shapes) > 100
    assert min(aspects) < 0.8 and max(aspects) > 1.25  # portrait and landscape
    assert {s.label for s in samples} == set(range(len(EXPRESSIONS)))
    for s in samples:
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.points.shape == (68, 2)
        assert (s.points[:, 0] > -1).all() and (s.points[:, 0] < w + 1).all()
        assert (s.points[:, 1] > -1).all() and (s.points[:, 1] < h + 1).all()


def test_default_data_shapes_and_tasks() -> None:
    d = default_data("landmarks", n=10, size=48)
    assert d.x.shape == (10, 3, 48, 48) and d.y.shape == (10, 136) and d.x.dtype == torch.float32
    assert 0 <= float(d.y.min()) and float(d.y.max()) <= 1
    c = default_data("classify", n=10, size=48)
    assert c.y.dtype == torch.int64 and c.is_classification


def test_square_padding_odd_remainder_goes_to_the_trailing_side_as_face_api_js() -> None:
    """face-api.js's padToSquare appends Math.round(diff / 2) and prepends the rest."""
    assert square_padding(10, 10) == (10, 0, 0)
    assert square_padding(7, 10) == (10, 1, 0)  # 3 rows: 1 on top, 2 at the bottom
    assert square_padding(10, 5) == (10, 0, 2)  # 5 columns: 2 left, 3 right
    assert square_padding(100, 95) == (100, 0, 2)  # the 100x95 image: 2 on the left


def test_odd_padding_lands_on_the_right_and_points_round_trip() -> None:
    pipe = BrowserPipeline(size=112)
    image = np.full((100, 95, 3), 200, dtype=np.uint8)
    square = pipe.pad_square(image)
    assert square.shape == (100, 100, 3)
    cols = square[:, :, 0].max(axis=0)
    assert (cols[:2] == 0).all() and cols[2] == 200  # 2 zero columns on the left
    assert (cols[-3:] == 0).all() and cols[-4] == 200  # 3 on the right
    points = np.array([[0.0, 0.0], [94.0, 99.0], [47.5, 50.25]])
    tensor, model_points = pipe.preprocess(image, points)
    assert np.allclose(model_points[0], [2 / 100, 0.0])
    assert np.allclose(pipe.postprocess(model_points, (100, 95)), points, atol=1e-9)


def test_preprocess_normalisation_and_layout() -> None:
    pipe = BrowserPipeline(size=16)
    image = np.full((16, 16, 3), 200, dtype=np.uint8)
    image[..., 1] = 10
    t, _ = pipe.preprocess(image, np.zeros((1, 2)))
    assert t.shape == (3, 16, 16) and t.dtype == torch.float32
    assert float(t[0, 5, 5]) == pytest.approx((200 - MEAN_RGB[0]) / 255, abs=1e-5)
    assert float(t[1, 5, 5]) == pytest.approx((10 - MEAN_RGB[1]) / 255, abs=1e-5)


def test_padding_is_zero_pixels_before_normalisation() -> None:
    pipe = BrowserPipeline(size=20)
    t, _ = pipe.preprocess(np.full((10, 20, 3), 255, dtype=np.uint8), np.zeros((1, 2)))
    assert float(t[0, 0, 10]) == pytest.approx(-MEAN_RGB[0] / 255, abs=1e-5)  # top band
    assert float(t[0, 10, 10]) == pytest.approx((255 - MEAN_RGB[0]) / 255, abs=1e-5)


@settings(max_examples=50, deadline=None)
@given(st.integers(5, 300), st.integers(5, 300), st.integers(8, 128))
def test_points_round_trip_exactly(h: int, w: int, size: int) -> None:
    pipe = BrowserPipeline(size=size)
    pts = np.random.default_rng(h * 1000 + w).uniform(0, 1, (7, 2)) * [w, h]
    rel = pipe.points_to_model(pts, (h, w))
    assert np.allclose(pipe.postprocess(rel, (h, w)), pts, atol=1e-9)
    assert (rel >= 0).all() and (rel <= 1).all()


def test_marker_lands_where_its_point_says() -> None:
    pipe = BrowserPipeline(size=64)
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[20:24, 60:64] = 255  # a white square centred at (62, 22)
    t, rel = pipe.preprocess(image, np.array([[62.0, 22.0]]))
    weight = (t.sum(dim=0) - t.sum(dim=0).min()).numpy()
    ys, xs = np.mgrid[0:64, 0:64] + 0.5  # pixel centres
    cx, cy = (weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()
    assert abs(cx - rel[0, 0] * 64) <= 0.1 and abs(cy - rel[0, 1] * 64) <= 0.1


def test_npz_refuses_object_arrays(tmp_path: object) -> None:
    path = f"{tmp_path}/obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match="object arrays"):
        load_npz(path)


def test_npz_uint8_nhwc_becomes_float_nchw(tmp_path: object) -> None:
    path = f"{tmp_path}/img.npz"
    np.savez(path, x=np.full((4, 8, 8, 3), 255, dtype=np.uint8), y=np.arange(4))
    d = load_npz(path)
    assert d.x.shape == (4, 3, 8, 8) and float(d.x.max()) == 1.0 and d.is_classification


@pytest.mark.parametrize(("arrays", "match"), [
    ({"x": np.zeros((4, 3))}, "expected 'x' and 'y'"),
    ({"x": np.zeros((4, 3)), "y": np.zeros(5)}, "4 samples"),
    ({"x": np.zeros((4, 3)) * np.nan, "y": np.zeros(4)}, "NaN"),
    ({"x": np.zeros((4, 8, 8, 3), np.uint8)[..., :2], "y": np.zeros(4)}, r"\(N, H, W, C\)"),
], ids=["missing-y", "length", "nan", "uint8-layout"])
def test_npz_malformed(tmp_path: object, arrays: dict[str, np.ndarray], match: str) -> None:
    path = f"{tmp_path}/bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match):
        load_npz(path)


def test_npz_not_a_zip(tmp_path: object) -> None:
    path = f"{tmp_path}/junk.npz"
    with open(path, "w") as fh:
        fh.write("not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(path)
