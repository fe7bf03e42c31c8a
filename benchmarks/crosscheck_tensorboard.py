"""Cross-check diag's TensorBoard reader on published event files against the tensorboard
package's own EventAccumulator (the reader TensorBoard's UI uses): every scalar tag, every
step and value, file by file. diag walks the record framing itself (to read up to a
truncated or corrupt record and say so) and decodes records with tensorboard's protobuf; this
checks that walk on files nobody here wrote.

Published event files are binary and may not be committed here (tests/data/logs/SOURCES.md);
run this on a clone of a public repository that has them, e.g. CooperBigFoot/CAMELS-CH
(lightning_logs/version_*/events.out.tfevents.*).

Run: python benchmarks/crosscheck_tensorboard.py FOLDER
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def reference(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        ev = acc.Scalars(tag)
        out[tag] = (np.array([e.step for e in ev], float), np.array([e.value for e in ev]))
    from tensorboard.util import tensor_util

    for tag in acc.Tags()["tensors"]:  # TF2 writers: scalars as rank-0 tensors
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue  # histograms, images, text, graphs: not scalar series
        ev = acc.Tensors(tag)
        vals = [float(tensor_util.make_ndarray(e.tensor_proto)) for e in ev]
        out[tag] = (np.array([e.step for e in ev], float), np.array(vals))
    return out


def main(root: Path) -> int:
    from diag.inputs.history import tensorboard

    files = sorted(root.rglob("events.out.tfevents.*"))
    same = differ = points = 0
    ours_s = theirs_s = 0.0
    for f in files:
        t0 = time.perf_counter()
        ours = tensorboard.read([f], str(f)).series
        t1 = time.perf_counter()
        theirs = reference(f)
        t2 = time.perf_counter()
        ours_s += t1 - t0
        theirs_s += t2 - t1
        bad = []
        for tag in sorted(set(ours) | set(theirs)):
            if tag not in ours or tag not in theirs:
                bad.append(f"{tag}: only in {'diag' if tag in ours else 'EventAccumulator'}")
                continue
            (ox, oy), (rx, ry) = ours[tag], theirs[tag]
            # EventAccumulator keeps the last value of a repeated step; diag keeps all
            if not (np.array_equal(ox, rx) and np.allclose(oy, ry, rtol=1e-7, equal_nan=True)):
                bad.append(f"{tag}: {len(oy)} vs {len(ry)} points")
            points += len(oy)
        same += not bad
        differ += bool(bad)
        if bad:
            print(f"{f.relative_to(root)}: {'; '.join(bad)}")
    print(f"{len(files)} event files, {points} scalar points: {same} read alike, {differ} "
          f"differ; diag {ours_s:.2f} s, EventAccumulator {theirs_s:.2f} s")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
