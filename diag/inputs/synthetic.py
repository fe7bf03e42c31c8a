"""The default data set: small RGB "faces", generated in code, seeded, no download.

Images vary in size and aspect ratio (so padding and resizing matter). Each has the 68
landmark points of the iBUG layout face-api.js predicts (jaw 0-16, brows 17-26, nose
27-35, eyes 36-47, mouth 48-67) and an expression label read off the mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXPRESSIONS = ("neutral", "happy", "sad", "surprised")
NUM_POINTS = 68


@dataclass(frozen=True)
class FaceSample:
    """One generated image with its landmarks (pixels, x then y) and expression label."""

    image: np.ndarray
    """RGB uint8, (H, W, 3)."""
    points: np.ndarray
    """float64 (68, 2), (x, y) in pixels of ``image``."""
    label: int
    """Index into ``EXPRESSIONS``."""


def _ellipse_points(cx: float, cy: float, rx: float, ry: float, angles: np.ndarray) -> np.ndarray:
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


# Shape constants, computed once: generating 1,000 faces is dominated by Python overhead.
_JAW_A = np.linspace(np.pi + 0.25, -0.25, 17)
_BROW_X = np.linspace(0.15, 0.75, 5)
_BROW_ARCH = np.sin(np.linspace(0, np.pi, 5))
_BRIDGE_Y = np.linspace(-0.3, 0.1, 4)
_NOSTRIL_X = np.linspace(-0.18, 0.18, 5)
_NOSTRIL_Y = 0.2 + 0.04 * np.array([0, 1, 1.3, 1, 0])
_EYE_A = np.deg2rad([180, 240, 300, 0, 60, 120])
_MOUTH_OUTER_A = np.linspace(np.pi, -np.pi, 12, endpoint=False)
_MOUTH_INNER_A = np.linspace(np.pi, -np.pi, 8, endpoint=False)
_MOUTHS = {0: (0.38, 0.05, 0.0), 1: (0.42, 0.08, 0.14), 2: (0.38, 0.06, -0.14),
           3: (0.2, 0.2, 0.0)}  # label -> (half width, half height, corner bend), face radii


def face_points(cx: float, cy: float, rx: float, ry: float, label: int) -> np.ndarray:
    """The 68 landmarks of a face ellipse centred at (cx, cy) with radii (rx, ry)."""
    jaw = _ellipse_points(cx, cy, rx, ry, _JAW_A)
    bx = _BROW_X
    arch = 0.06 * ry * _BROW_ARCH
    brow_l = np.stack([cx - rx * bx[::-1], cy - 0.45 * ry - arch], axis=1)
    brow_r = np.stack([cx + rx * bx, cy - 0.45 * ry - arch], axis=1)
    bridge = np.stack([np.full(4, cx), cy + ry * _BRIDGE_Y], axis=1)
    nostrils = np.stack([cx + rx * _NOSTRIL_X, cy + ry * _NOSTRIL_Y], axis=1)
    eye_l = _ellipse_points(cx - 0.4 * rx, cy - 0.2 * ry, 0.17 * rx, 0.08 * ry, _EYE_A)
    eye_r = _ellipse_points(cx + 0.4 * rx, cy - 0.2 * ry, 0.17 * rx, 0.08 * ry, _EYE_A)
    mx, my = cx, cy + 0.5 * ry
    mw, mh, bend = _MOUTHS[label]

    def mouth(angles: np.ndarray, shrink: float) -> np.ndarray:
        pts = _ellipse_points(mx, my, mw * rx * shrink, mh * ry * shrink, angles)
        pts[:, 1] -= bend * ry * np.cos(angles) ** 2  # corners up (happy) or down (sad)
        return pts

    return np.concatenate([jaw, brow_l, brow_r, bridge, nostrils, eye_l, eye_r,
                           mouth(_MOUTH_OUTER_A, 1.0), mouth(_MOUTH_INNER_A, 0.6)])


def _stamp_disc(img: np.ndarray, pts: np.ndarray, radius: float, color: np.ndarray) -> None:
    """Paint discs of ``radius`` at every point, inside their bounding box only (fast)."""
    h, w = img.shape[:2]
    x0 = max(int(np.floor(pts[:, 0].min() - radius)), 0)
    x1 = min(int(np.ceil(pts[:, 0].max() + radius)) + 1, w)
    y0 = max(int(np.floor(pts[:, 1].min() - radius)), 0)
    y1 = min(int(np.ceil(pts[:, 1].max() + radius)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    ys = np.arange(y0, y1) + 0.5
    xs = np.arange(x0, x1) + 0.5
    d2 = (xs[None, :, None] - pts[None, None, :, 0]) ** 2 + (
        ys[:, None, None] - pts[None, None, :, 1]) ** 2
    mask = (d2 <= radius * radius).any(axis=2)
    img[y0:y1, x0:x1][mask] = color


def _fill_ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float,
                  color: np.ndarray) -> None:
    h, w = img.shape[:2]
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 2, h)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 2, w)
    if x0 >= x1 or y0 >= y1:
        return
    ys = (np.arange(y0, y1) + 0.5 - cy) / ry
    xs = (np.arange(x0, x1) + 0.5 - cx) / rx
    mask = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0
    img[y0:y1, x0:x1][mask] = color


_SEGMENT_T = np.linspace(0, 1, 4, endpoint=False)[None, :, None]


def _polyline(pts: np.ndarray, closed: bool) -> np.ndarray:
    """Points every quarter segment along a polyline, for stamping a thick line."""
    if closed:
        pts = np.concatenate([pts, pts[:1]])
    t = _SEGMENT_T
    seg = pts[:-1, None, :] + t * (pts[1:, None, :] - pts[:-1, None, :])
    return np.concatenate([seg.reshape(-1, 2), pts[-1:]])


def generate_face(seed: int, index: int, min_side: int = 48, max_side: int = 128) -> FaceSample:
    """Sample ``index`` of the data set for ``seed``: independent of how many are drawn."""
    rng = np.random.default_rng((seed, index))
    aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.67))))  # width / height
    long_side = int(rng.integers(min_side, max_side + 1))
    if aspect >= 1:
        w, h = long_side, max(int(round(long_side / aspect)), min_side // 2)
    else:
        h, w = long_side, max(int(round(long_side * aspect)), min_side // 2)
    # Background: a two-colour gradient plus mild noise.
    c0, c1 = rng.integers(0, 256, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h, dtype=np.float32)
    grad = c0[None, :] + (c1 - c0)[None, :] * ramp[:, None]
    grad = np.minimum(grad, 243.0).astype(np.uint8)  # leaves room for the noise below
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[...] = grad[None, :, :] if len(ramp) == w else grad[:, None, :]
    img += rng.integers(0, 13, size=(h, w, 1), dtype=np.uint8)

    label = int(rng.integers(0, len(EXPRESSIONS)))
    small = min(h, w)
    ry = small * rng.uniform(0.28, 0.42)
    rx = ry * rng.uniform(0.7, 0.9)
    cx = rng.uniform(rx + 1, w - rx - 1) if w > 2 * rx + 2 else w / 2
    cy = rng.uniform(ry + 1, h - ry - 1) if h > 2 * ry + 2 else h / 2
    pts = face_points(cx, cy, rx, ry, label)

    skin = np.array([rng.integers(150, 256), rng.integers(100, 200), rng.integers(60, 160)],
                    dtype=np.uint8)
    dark = np.array(rng.integers(0, 60, size=3), dtype=np.uint8)
    _fill_ellipse(img, cx, cy, rx, ry, skin)
    line = max(small / 90.0, 0.8)
    _stamp_disc(img, _polyline(pts[17:22], False), line, dark)
    _stamp_disc(img, _polyline(pts[22:27], False), line, dark)
    _stamp_disc(img, _polyline(pts[27:31], False), line * 0.8, (skin * 0.7).astype(np.uint8))
    _stamp_disc(img, _polyline(pts[31:36], False), line * 0.8, (skin * 0.6).astype(np.uint8))
    for eye in (pts[36:42], pts[42:48]):
        centre = eye.mean(axis=0)
        _fill_ellipse(img, centre[0], centre[1], 0.17 * rx, 0.08 * ry + 0.5, dark)
    lips = np.array([200, 40, 60], dtype=np.uint8)
    if label == 3:
        mouth_x, mouth_y = pts[48:60].mean(axis=0)
        _fill_ellipse(img, float(mouth_x), float(mouth_y), 0.2 * rx, 0.2 * ry, dark)
    _stamp_disc(img, _polyline(pts[48:60], True), line, lips)
    return FaceSample(img, pts, label)


def generate_faces(n: int, seed: int = 0, min_side: int = 48, max_side: int = 128
                   ) -> list[FaceSample]:
    """``n`` samples; sample i is the same whatever ``n`` is."""
    return [generate_face(seed, i, min_side, max_side) for i in range(n)]
