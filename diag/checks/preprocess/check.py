"""`diag preprocess`: do preprocessing and postprocessing round-trip exactly?

The article's "garbage in, garbage out": check what the network really sees. diag draws its
own probe images (portrait, landscape, square, odd sizes) with markers at known points and
checks the output contract, channel order, spatial integrity, that image and points agree,
the points' round trip, intensity (wrap-around, double normalisation) and determinism.
Pipelines follow the contract: ``preprocess(image, points) -> (tensor, model_points)``,
``postprocess(model_points, image_size) -> points``, optional ``channel_order`` and
``points_unit`` ("relative": [0, 1] of the tensor, the default; or "pixels" of the tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from diag.checks.preprocess import PreprocessOptions
from diag.errors import USER_ERRORS, UsageError, a_type, user_code_error
from diag.inputs import Inputs
from diag.result import CheckResult, Finding, Severity, Status

NAME = "preprocess"
MARKERS = ((0.25, 0.3), (0.75, 0.3), (0.3, 0.75))
"""Marker centres as fractions of (x, y): top-left, top-right, bottom-left."""
PROPERTIES = ("output_contract", "channel_order", "spatial_integrity", "points_agree",
              "round_trip", "intensity", "determinism")


class _BadOutput(Exception):
    """The pipeline returned something that breaks the contract: a finding (fail), not an
    error of diag's."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint



_LAYOUTS = {
    # (top-right marker's direction from top-left, bottom-left marker's direction)
    (("x", 1), ("y", -1)): ("flipped vertically (upside down)",
                            "an image read bottom-up or a flip(0) / cv2.flip(img, 0) left in "
                            "the pipeline; flip the points with it or not at all"),
    (("x", -1), ("y", 1)): ("flipped horizontally (mirrored left to right)",
                            "a horizontal-flip augmentation left on for evaluation, or "
                            "cv2.flip(img, 1) / x -> W - x on one side only"),
    (("x", -1), ("y", -1)): ("rotated 180 degrees", "both axes reversed: an extra flip on "
                             "each axis, or a rotate(180) left in the pipeline"),
    (("y", 1), ("x", 1)): ("transposed (height and width swapped)",
                           "HWC to CHW takes permute(2, 0, 1); permute(2, 1, 0) or "
                           "transpose(0, 1) swaps the axes (and a view/reshape scrambles "
                           "them); or the points swap x and y"),
    (("y", 1), ("x", -1)): ("rotated 90 degrees clockwise", "an EXIF orientation or a "
                            "rot90 applied to the image and not to the points"),
    (("y", -1), ("x", 1)): ("rotated 90 degrees counter-clockwise", "an EXIF orientation or "
                            "a rot90 applied to the image and not to the points"),
    (("y", -1), ("x", -1)): ("transposed across the other diagonal (axes swapped and "
                             "reversed)", "HWC to CHW takes permute(2, 0, 1); check the "
                             "axis order and any flips"),
}


def _layout(right: tuple[float, float], down: tuple[float, float]) -> tuple[str, str]:
    """Which of the flips, transposes and rotations maps the probe's top-right and
    bottom-left markers (seen from its top-left one) where the tensor has them."""
    def axis(v: tuple[float, float]) -> tuple[str, int]:
        dx, dy = v
        return ("x", 1 if dx > 0 else -1) if abs(dx) >= abs(dy) else ("y", 1 if dy > 0 else -1)

    found = _LAYOUTS.get((axis(right), axis(down)))
    if found is None:
        return ("scrambled (the markers keep no consistent layout)",
                "convert HWC to CHW with permute(2, 0, 1), not view/reshape; check flips")
    return found

def _points(value: Any, what: str) -> np.ndarray:
    """Points (N, 2) of floats, or _BadOutput naming what came back."""
    try:
        arr = np.asarray(_to_numpy(value), dtype=np.float64)
        return arr.reshape(-1, 2)
    except (TypeError, ValueError):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise _BadOutput(f"{what} returned {shown}, not points (N, 2) of numbers",
                         f"return an array of (x, y) rows from {what}") from None


class _Pipe:
    """The user's pipeline, with errors turned into UserCodeError pointing at their code."""

    def __init__(self, obj: Any) -> None:
        for attr in ("preprocess", "postprocess"):
            if not callable(getattr(obj, attr, None)):
                raise UsageError(f"the pipeline has no {attr}() method",
                                 hint="a pipeline has preprocess(image: uint8 (H, W, 3), "
                                      "points: float (N, 2) of x, y pixels) -> (tensor "
                                      "float32 (C, S, S), model_points) and "
                                      "postprocess(model_points, image_size: (H, W)) -> points")
        self.obj = obj
        order = str(getattr(obj, "channel_order", "RGB")).upper()
        if order not in ("RGB", "BGR"):
            raise UsageError(f"channel_order {order!r} is not RGB or BGR",
                             hint="set channel_order = 'RGB' or 'BGR'")
        self.channel_order = order
        unit = str(getattr(obj, "points_unit", "relative")).lower()
        if unit not in ("relative", "pixels"):
            raise UsageError(f"points_unit {unit!r} is not 'relative' or 'pixels'",
                             hint="set points_unit to 'relative' ([0, 1]) or 'pixels'")
        self.points_unit = unit

    def pre(self, image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            out = self.obj.preprocess(image.copy(), points.copy())
        except USER_ERRORS as exc:
            raise user_code_error(exc, "preprocess()") from None
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise _BadOutput(f"preprocess() returned a {type(out).__name__}, not a pair "
                             "(tensor, model_points)", "return (tensor, model_points)")
        tensor, mp = out
        try:
            if isinstance(tensor, str | bytes):
                raise TypeError
            t = _to_numpy(tensor)
            if t.dtype.kind not in "biuf":  # object arrays, strings, complex numbers
                raise TypeError
        except (TypeError, ValueError, RuntimeError):
            raise _BadOutput(f"preprocess() returned {a_type(tensor)}, not a tensor",
                             "return a float32 tensor (C, S, S)") from None
        return t, _points(mp, "preprocess()")

    def post(self, model_points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        try:
            out = self.obj.postprocess(model_points.copy(), size)
        except USER_ERRORS as exc:
            raise user_code_error(exc, "postprocess()") from None
        return _points(out, "postprocess()")


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()  # type: ignore[no-any-return]
    return np.asarray(x)


def _probe(h: int, w: int, rng: np.random.Generator, background: int = 96
           ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """A gray image, one copy per marker with that marker drawn, and the marker centres."""
    base = np.full((h, w, 3), background, dtype=np.uint8)
    m = max(3, min(h, w) // 12)
    centres, images = [], []
    for fx, fy in MARKERS:
        x0 = int(round(fx * w - m / 2))
        y0 = int(round(fy * h - m / 2))
        img = base.copy()
        img[y0 : y0 + m, x0 : x0 + m] = 255
        images.append(img)
        centres.append((x0 + m / 2, y0 + m / 2))
    del rng
    return base, images, np.array(centres, dtype=np.float64)


def _blob(diff: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) in continuous tensor pixels and the share of mass near it."""
    mass = np.abs(diff).sum(axis=0)
    total = float(mass.sum())
    if total <= 0:
        return math.nan, math.nan, 0.0
    ys, xs = np.mgrid[0 : mass.shape[0], 0 : mass.shape[1]] + 0.5
    cx, cy = float((mass * xs).sum() / total), float((mass * ys).sum() / total)
    r = max(3.0, 0.08 * mass.shape[0])
    near = mass[(xs - cx) ** 2 + (ys - cy) ** 2 <= r * r].sum() / total
    return cx, cy, float(near)


def run(inputs: Inputs, options: PreprocessOptions,
        progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Probe the pipeline with marked images and check every property."""
    try:
        return _run(inputs.pipeline, options, progress, inputs.pipeline_source)
    except _BadOutput as exc:
        finding = Finding(Severity.FAIL, exc.message, exc.hint, "output")
        return _finish([finding], {}, {"output_contract"}, {}, inputs.pipeline_source,
                       skipped=True)


def _run(pipeline: Any, options: PreprocessOptions, progress: Callable[[int, int], None] | None,
         source: str) -> CheckResult:
    pipe = _Pipe(pipeline)
    rng = np.random.default_rng(options.seed)
    findings: list[Finding] = []
    metrics: dict[str, Any] = {"declared_channel_order": pipe.channel_order,
                               "points_unit": pipe.points_unit, "probes": len(options.sizes)}
    failed: set[str] = set()

    def fail(prop: str, message: str, hint: str, location: str = "") -> None:
        failed.add(prop)
        findings.append(Finding(Severity.FAIL, message, hint, location))

    # 1. output contract, on every probe size
    sides = set()
    outputs: dict[tuple[int, int], tuple[np.ndarray, list[np.ndarray], np.ndarray]] = {}
    for h, w in options.sizes:
        base, marked, centres = _probe(h, w, rng)
        t, _ = pipe.pre(base, centres)
        problems = []
        if t.dtype != np.float32:
            problems.append(f"dtype {t.dtype} (expected float32)")
        if t.size == 0:
            problems.append(f"no values (shape {tuple(t.shape)})")
        elif t.ndim != 3 or t.shape[1] != t.shape[2]:
            problems.append(f"shape {tuple(t.shape)} (expected (C, S, S))")
        elif t.shape[0] not in (1, 3):
            problems.append(f"{t.shape[0]} channels (expected 3, channels first)")
        if not np.isfinite(t).all():
            problems.append("NaN/Inf values")
        if problems:
            fail("output_contract", f"for a {h}x{w} image the output has " + ", ".join(problems),
                 "return a float32 tensor (C, S, S), channels first, finite",
                 location=f"{h}x{w}")
        if t.ndim == 3:
            sides.add(t.shape[-1])
        outputs[(h, w)] = (base, marked, centres)
    if len(sides) > 1:
        fail("output_contract", f"the output size depends on the input size: {sorted(sides)}",
             "resize every image to one size S")
    if "output_contract" in failed:
        return _finish(findings, metrics, failed, {}, source, skipped=True)
    size = sides.pop()
    metrics["output_size"] = size

    # determinism first: the marker probes compare outputs of separate calls
    base, _, centres = outputs[options.sizes[0]]
    t1, m1 = pipe.pre(base, centres)
    t2, m2 = pipe.pre(base, centres)
    if not (np.array_equal(t1, t2) and np.array_equal(m1, m2)):
        fail("determinism", "the same input gave different outputs",
             "turn random augmentation off in the pipeline used for evaluation")
        findings.append(Finding(Severity.INFO, "channel order, markers, round trip and "
                                "intensity were not checked: they compare separate calls",
                                "make the pipeline deterministic, then run again"))
        return _finish(findings, metrics, failed, {}, source, skipped=True)

    # 3-5. markers: spatial integrity, image/points agreement, round trip
    worst_agree = worst_rt = 0.0
    worst_agree_at = worst_rt_at = ""
    spread = 1.0
    panels: list[dict[str, Any]] = []
    for (h, w), (base, marked, centres) in outputs.items():
        extra = np.array([[0.0, 0.0], [w, h], [w / 2, h / 2], [w * 0.9, h * 0.1]])
        points = np.concatenate([centres, extra])
        t_base, mp = pipe.pre(base, points)
        if mp.shape != points.shape:
            fail("points_agree", f"preprocess returned {mp.shape[0]} model points for "
                 f"{points.shape[0]} points", "transform every point")
            continue
        scale = (size if pipe.points_unit == "relative" else 1.0)
        side = max(h, w)
        px = side / size  # original pixels per tensor pixel (for reporting)
        found = []
        compact = 1.0
        seen = t_base.copy()  # every marker at once, for the picture
        for k, img in enumerate(marked):
            t, _ = pipe.pre(img, points)
            seen += t - t_base
            cx, cy, near = _blob(t - t_base)
            compact = min(compact, near)
            found.append((cx, cy))
            ex, ey = mp[k] * scale
            err = math.hypot(cx - ex, cy - ey) * px
            if err > worst_agree:
                worst_agree, worst_agree_at = err, f"{h}x{w} marker {k}"
        spread = min(spread, compact)
        (ax, ay), (bx, by), (lx, ly) = found
        ordered = ax < bx and ay < ly  # left stays left, top stays top
        upright = abs(ay - by) <= abs(bx - ax) and abs(ax - lx) <= abs(ly - ay)  # no transpose
        if compact >= 0.6 and not (ordered and upright):
            what, fix = _layout((bx - ax, by - ay), (lx - ax, ly - ay))
            fail("spatial_integrity", f"the image is {what} in the {h}x{w} probe: top-left "
                 f"marker at ({ax:.1f}, {ay:.1f}), top-right at ({bx:.1f}, {by:.1f}), "
                 f"bottom-left at ({lx:.1f}, {ly:.1f}) in the tensor", fix,
                 location=f"{h}x{w}")
        back = pipe.post(mp, (h, w))
        if back.shape == points.shape:
            errs = np.hypot(*(back - points).T)
            k = int(np.argmax(errs))
            if errs[k] > worst_rt:
                worst_rt, worst_rt_at = float(errs[k]), f"{h}x{w} point {points[k].tolist()}"
        else:
            fail("round_trip", f"postprocess returned {back.shape[0]} points for "
                 f"{points.shape[0]}", "return one point per model point")
        panels.append({"image": marked[0] | marked[1] | marked[2], "points": centres,
                       "tensor": seen,
                       "model_points": mp[: len(centres)] * scale, "size": (h, w)})
    metrics["marker_compactness_min"] = round(spread, 3)
    if spread < 0.6:
        fail("spatial_integrity", f"markers are scrambled in the tensor: at worst only "
             f"{spread:.0%} of a marker's signal stays in one place",
             "convert HWC to CHW with permute(2, 0, 1), not view()/reshape()")
    metrics["max_point_error_px"] = round(worst_agree, 3)
    # a marker blurs over ~1 tensor pixel when resized: allow that much, in image pixels
    agree_tol = max(1.0, max(max(h, w) for h, w in options.sizes) / size)
    if worst_agree > agree_tol and "spatial_integrity" not in failed:
        fail("points_agree", f"markers seen in the tensor sit up to {worst_agree:.1f} px "
             f"(original image) from model_points ({worst_agree_at})",
             "pad and resize points exactly as the image (same offsets, same scale, x then y)",
             location=worst_agree_at)
    metrics["max_round_trip_error_px"] = round(worst_rt, 4)
    if worst_rt > options.point_tolerance_px:
        fail("round_trip", f"postprocess(preprocess(points)) is off by up to {worst_rt:.2f} px "
             f"({worst_rt_at})",
             "postprocess must undo exactly what preprocess did: the padding offset too",
             location=worst_rt_at)

    # 2. channel order: pure red, green, blue patches on black
    expected = {"red": 0, "green": 1, "blue": 2} if pipe.channel_order == "RGB" else {
        "red": 2, "green": 1, "blue": 0}
    h, w = options.sizes[0]
    black = np.zeros((h, w, 3), dtype=np.uint8)
    t_black, _ = pipe.pre(black, np.zeros((1, 2)))
    landed = {}
    for c, name in enumerate(("red", "green", "blue")):
        img = black.copy()
        img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4, c] = 255
        t, _ = pipe.pre(img, np.zeros((1, 2)))
        response = np.abs(t - t_black).reshape(t.shape[0], -1).sum(axis=1)
        landed[name] = int(np.argmax(response)) if t.shape[0] > 1 else 0
    if t_black.shape[0] == 3 and landed != expected:
        fail("channel_order", f"colours land in the wrong channels: red->{landed['red']}, "
             f"green->{landed['green']}, blue->{landed['blue']} but channel_order is "
             f"{pipe.channel_order}",
             "swap the channels (image[..., ::-1]) or declare channel_order honestly")

    # 6. intensity: monotone, and a plausible range between black and white
    levels = list(range(0, 256, 16)) + [255]
    h, w = options.sizes[1]
    means = []
    for v in levels:
        t, _ = pipe.pre(np.full((h, w, 3), v, dtype=np.uint8), np.zeros((1, 2)))
        means.append(float(t.mean()))
    drops = [(levels[i], levels[i + 1]) for i in range(len(means) - 1)
             if means[i + 1] < means[i] - 1e-6]
    dyn = means[-1] - means[0]
    metrics["dynamic_range"] = float(f"{dyn:.4g}")
    if drops:
        fail("intensity", f"output is not monotone in input intensity: brighter input "
             f"{drops[0][1]} gives a lower output than {drops[0][0]}",
             "uint8 arithmetic wraps at 255: convert to float before adding or scaling")
    elif abs(dyn) < 0.05:
        fail("intensity", f"black to white spans only {dyn:.3g} in the output: normalisation "
             "applied twice?", "normalise once (e.g. (x / 255 - mean) / std)")
    elif abs(dyn) > 300:
        findings.append(Finding(Severity.WARN, f"black to white spans {dyn:.3g}: the input is "
                                "not normalised", "scale pixels to about [0, 1] or [-1, 1]"))

    if progress is not None:
        progress(1, 1)
    return _finish(findings, metrics, failed, {"panels": panels,
                                               "channel_order": pipe.channel_order}, source)


def _finish(findings: list[Finding], metrics: dict[str, Any], failed: set[str],
            plot_data: dict[str, Any], source: str, skipped: bool = False) -> CheckResult:
    for prop in PROPERTIES:
        checked = not skipped or prop in failed or prop == "output_contract"
        metrics[prop] = (prop not in failed) if checked else None
    if source:
        metrics["pipeline"] = source
    if failed:
        status = Status.FAIL
        summary = findings[0].message if findings else "failed"
    else:
        status = Status.WARN if findings else Status.PASS
        summary = (f"pre- and postprocessing agree on {metrics.get('probes')} probe sizes: "
                   f"points round-trip within {metrics.get('max_round_trip_error_px', 0):.2g} "
                   f"px, markers within {metrics.get('max_point_error_px', 0):.2g} px")
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       plot_data=plot_data)


def load_pipeline(spec: Any, size: int = 112) -> tuple[Any, str]:
    """``--pipeline``: a SPEC or an object (or a zero-argument callable returning one);
    None: the browser model's own pipeline. Its contract is checked here, before any check
    runs, so a pipeline without ``postprocess`` is a usage error (exit 2)."""
    if spec is None:
        from diag.model.pipeline import default_pipeline

        return default_pipeline(size), "browser pipeline (default)"
    if isinstance(spec, str):
        from diag.inputs.spec import resolve

        obj, source = resolve(spec, "--pipeline"), spec
    else:
        obj, source = spec, type(spec).__name__
    if isinstance(obj, type) or (not hasattr(obj, "preprocess") and callable(obj)):
        try:
            obj = obj()
        except USER_ERRORS as exc:
            raise user_code_error(exc, f"--pipeline {source}") from None
    _Pipe(obj)
    return obj, source
