"""The verdict of `diag ddp`: a pure function of the ranks' records (``worker.Recorder``).

Each rank recorded digests of every parameter and buffer (as built, after wrapping, after
the first and the last step), the parameters autograd gave no gradient per step, the
sample order of each epoch, the generator state each dropout mask was drawn from, a census
of live tensors per step, and its error or where it was stuck. Comparing them across ranks
names the first tensor that differs and its likely cause, the parameters that hang or
desync DDP, overlapping or uneven data, identical random draws, and per-rank leaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diag.checks.leaks.detect import persistent_growth
from diag.result import CheckResult, Finding, Severity, Status

NAME = "ddp"
UNFINISHED_REDUCTION = "Expected to have finished reduction"
"""DDP's error at the step after parameters got no gradient (find_unused_parameters off)."""

FIX_UNUSED = ("remove or freeze (requires_grad_(False)) parameters the forward does not use, "
              "or wrap with DistributedDataParallel(..., find_unused_parameters=True)")
FIX_SEED = ("seed the same on every rank before building the model; after wrapping it in "
            "DDP, seed by rank (torch.manual_seed(seed + rank)) so dropout and augmentation "
            "draws differ")


def _short(names: Sequence[str], n: int = 4) -> str:
    names = list(names)
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def judge(records: Sequence[dict[str, Any] | None], world: int, log_tail: str = "",
          find_unused: bool | None = None) -> CheckResult:
    """``records[r]`` is rank r's record (None: the rank left none)."""
    findings: list[Finding] = []
    metrics: dict[str, Any] = {"world_size": world}
    series: dict[str, list[float]] = {}
    present = [r for r in records if r is not None]
    if not present:
        message = "no rank started" + (f": {_last_line(log_tail)}" if _last_line(log_tail)
                                       else "")
        return CheckResult(NAME, Status.ERROR, message, metrics={**metrics,
                                                                 "error_type": "launch"},
                           findings=(Finding(Severity.ERROR, message,
                                             "run with DIAG_DEBUG=1 to see torchrun's log"),))
    first = present[0]
    metrics.update(backend=first.get("backend", ""), mode=first.get("mode", ""),
                   steps_run=min(int(r.get("steps_done", 0)) for r in present),
                   find_unused_parameters=first.get("find_unused", find_unused),
                   ddp_wrapped=bool(first.get("ddp", False)))
    unused = _unused(present, findings, metrics)
    explained = _failures(records, findings, metrics, log_tail, unused)
    _sync(present, findings, metrics, unused)
    _data(present, findings, metrics)
    _seeds(present, findings, metrics)
    _census(present, findings, metrics, series)

    status = _status(findings, explained)
    summary = _summary(status, findings, metrics)
    return CheckResult(NAME, status, summary, metrics=metrics, findings=tuple(findings),
                       series=series)


def _status(findings: list[Finding], explained: bool) -> Status:
    severities = {f.severity for f in findings}
    if Severity.ERROR in severities and not explained:
        return Status.ERROR
    if Severity.FAIL in severities or Severity.ERROR in severities:
        return Status.FAIL
    if Severity.WARN in severities:
        return Status.WARN
    return Status.PASS


def _summary(status: Status, findings: list[Finding], metrics: dict[str, Any]) -> str:
    rank = {Severity.ERROR: 0, Severity.FAIL: 1, Severity.WARN: 2, Severity.INFO: 3}
    worst = sorted((f for f in findings if f.severity != Severity.INFO),
                   key=lambda f: rank[f.severity])
    if worst:
        return worst[0].message
    if metrics["world_size"] == 1:
        return (f"1 rank ran {metrics['steps_run']} steps: nothing to compare across ranks "
                "(run with --nproc 2 or more)")
    return (f"{metrics['world_size']} ranks in sync after {metrics['steps_run']} steps; no "
            "unused parameters, overlapping data or identical draws")


# --- failures: errors, hangs, ranks that left nothing ------------------------------------
def _failures(records: Sequence[dict[str, Any] | None], findings: list[Finding],
              metrics: dict[str, Any], log_tail: str, unused: dict[str, Any]) -> bool:
    """Findings for ranks that raised, hung or left no record. True when every error is
    explained by a finding of its own (DDP's unused-parameter error)."""
    explained = True
    culprits: list[int] = []
    failed = [r for r in records if r is not None and (r.get("error") or r.get("stuck"))]
    # ranks torchrun stopped (SIGTERM) after another failed: consequences, like a rank whose
    # collective lost its peers; one waiting in a collective may be stopped before that
    # collective raises, so it leaves no error of its own
    stopped = [r for r in records if r is not None and r.get("terminated")
               and not r.get("error") and not r.get("stuck")]
    # a rank in user code that raised or hung is a cause; a rank whose collective lost its
    # peers, or that waits inside torch for them, is a consequence
    causes = [r for r in failed if (r.get("error") and not r["error"].get("collective"))
              or (r.get("stuck") and r["stuck"].get("in_user_code"))]
    if not causes:
        # a rank that did not finish and left neither an error, a hang nor a stop behind
        # died (killed, os._exit, a crash in native code); a run with one never passes
        died = [r for r in records if r is not None and not r.get("error")
                and not r.get("stuck") and not r.get("terminated")
                and r.get("phase") != "done"]
        for dead in died:
            findings.append(Finding(
                Severity.ERROR, f"rank {dead['rank']} died at step {dead.get('step')} "
                f"({dead.get('phase')}) without a Python error: killed (out of memory?), "
                "os._exit, or a crash in native code", "look at that rank's own log and the "
                "kernel log (dmesg) for the signal", rule="rank-died"))
            culprits.append(int(dead["rank"]))
            explained = False
        causes = died
    for rank, rec in enumerate(records):
        if rec is None:
            if causes:  # torchrun stopped it, after another rank failed, before it began
                findings.append(Finding(
                    Severity.INFO, f"rank {rank} was stopped before diag started in it, "
                    f"after rank {causes[0]['rank']} failed", "it was waiting for that rank",
                    rule="rank-stopped"))
                continue
            tail = _last_line(log_tail)
            findings.append(Finding(Severity.ERROR, f"rank {rank} left no record (it died "
                                    "before diag could start in it)" + (f": {tail}" if tail
                                                                       else ""),
                                    "run with DIAG_DEBUG=1 to see torchrun's log",
                                    rule="rank-no-record"))
            explained = False
            continue
        err, stuck = rec.get("error"), rec.get("stuck")
        consequence = bool(causes) and rec not in causes
        if err:
            if UNFINISHED_REDUCTION in err.get("message", "") and unused.get("any"):
                continue  # the unused-parameter finding explains it
            where = err.get("where") or err.get("innermost") or ""
            if consequence:
                findings.append(Finding(
                    Severity.INFO, f"rank {rank} stopped at step {err['step']}: its "
                    f"collective failed ({err['message'][:120]})", "it lost the rank that "
                    "failed", where, rule="rank-stopped"))
                continue
            culprits.append(rank)
            findings.append(Finding(
                Severity.ERROR, f"rank {rank} raised {err['type']} at step {err['step']} "
                f"({err['phase']}): {err['message']}", _hint(err), where, rule="rank-error"))
            explained = False
        elif stuck:
            where = stuck.get("where") or ""
            if consequence:
                findings.append(Finding(
                    Severity.INFO, f"rank {rank} waited at step {stuck['step']} in "
                    f"{stuck.get('innermost') or 'a collective'}"
                    + (f" (called from {where})" if where else ""),
                    "it waited for the rank that hung", where, rule="rank-stopped"))
                continue
            culprits.append(rank)
            in_user = bool(stuck.get("in_user_code"))
            findings.append(Finding(
                Severity.ERROR, f"rank {rank} hung in {stuck['phase']} at step {stuck['step']}"
                + (f" at {where}" if in_user else
                   f", waiting in {stuck.get('innermost') or 'a collective'}"
                   + (f" (called from {where})" if where else "")),
                "that line never returned within --timeout" if in_user else
                "every rank waits in a collective: one of them never reached it",
                where, rule="rank-hang"))
            explained = False
    for rank, other in enumerate(records):
        if other is None or other.get("error") or other.get("stuck") or \
                not (failed or stopped or culprits) or rank in culprits:
            continue
        if other.get("phase") != "done":
            findings.append(Finding(
                Severity.INFO, f"rank {rank} was stopped at step {other.get('step')} "
                f"({other.get('phase')}) after rank {culprits[0] if culprits else '?'} failed",
                "it was waiting for that rank", rule="rank-stopped"))
    metrics["failed_ranks"] = ",".join(str(r) for r in culprits)
    return explained


def _last_line(log: str) -> str:
    """The last line of torchrun's log that says something (not a rule of ===)."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip().strip("=-*")]
    return lines[-1][:300] if lines else ""


def _hint(err: dict[str, Any]) -> str:
    message = err.get("message", "")
    if "invalid device ordinal" in message:
        return ("with NCCL each rank takes its own GPU (LOCAL_RANK): --nproc / "
                "--nproc-per-node must not exceed the GPUs on the node")
    if "SyncBatchNorm" in message and ("GPU" in message or "gpu" in message):
        return ("torch's SyncBatchNorm runs on GPUs only: test it with NCCL, or keep plain "
                "BatchNorm on CPU")
    return ("fix the error on that rank; the other ranks wait for it at the next collective, "
            "so torchrun stops them")


# --- replicas in sync ------------------------------------------------------------------------
def _differs(present: list[dict[str, Any]], key: str) -> int | None:
    """Index of the first tensor whose digest differs across ranks at checkpoint ``key``
    (None: equal, or fewer than two ranks recorded it)."""
    have = [r["digests"][key] for r in present if key in r.get("digests", {})]
    if len(have) < 2 or len({len(h) for h in have}) != 1:
        return None
    for i, values in enumerate(zip(*have, strict=True)):
        if len(set(values)) > 1:
            return i
    return None


def _sync(present: list[dict[str, Any]], findings: list[Finding], metrics: dict[str, Any],
          unused: dict[str, Any]) -> None:
    rec = present[0]
    names = list(rec.get("names", [])) + list(rec.get("buffer_names", []))
    n_params = len(rec.get("names", []))
    metrics["first_differing"] = ""
    if len(present) < 2 or not names:
        return
    last = str(max((int(k) for r in present for k in r.get("digests", {}) if k.isdigit()),
                   default=0))
    built = _differs(present, "built")
    at0 = _differs(present, "0")
    if built is not None and at0 is None and "0" in rec.get("digests", {}):
        findings.append(Finding(
            Severity.WARN, f"the model differs across ranks as built (first: "
            f"{names[built]}); DDP's broadcast from rank 0 at wrap hides it, but a copy taken "
            "before wrapping (an EMA, a checkpoint, optimizer state) differs by rank",
            FIX_SEED.split(";")[0] + " (a rank-dependent seed such as torch.manual_seed(rank) "
            "before the model is built is the usual cause)", names[built],
            rule="rank-dependent-init"))
    if at0 is not None:
        metrics["first_differing"] = names[at0]
        findings.append(Finding(
            Severity.FAIL, f"replicas differ at step 0, before any training: {names[at0]} "
            "(an init that depends on the rank, and a wrapper that does not broadcast rank "
            "0's weights)", FIX_SEED.split(";")[0] + ", or wrap with DDP (it broadcasts "
            "rank 0's parameters and buffers)", names[at0], rule="replicas-differ-at-init"))
        return
    for key in ("1", last):
        idx = _differs(present, key)
        if idx is None:
            continue
        name = names[idx]
        metrics["first_differing"] = name
        when = "after the first step" if key == "1" else f"after step {key}"
        if idx >= n_params:
            if name in rec.get("bn_buffers", []):
                findings.append(Finding(
                    Severity.WARN, f"buffer {name} differs across ranks {when}: BatchNorm "
                    "running statistics without SyncBatchNorm (each rank keeps its own "
                    "batches' statistics, so evaluation depends on the rank that saved)",
                    "convert with torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) before "
                    "wrapping (GPU), or all-reduce the running statistics before you "
                    "evaluate or save", name, rule="batchnorm-not-synced"))
            else:
                findings.append(Finding(
                    Severity.WARN, f"buffer {name} differs across ranks {when}",
                    "DDP broadcasts buffers from rank 0 only at each forward "
                    "(broadcast_buffers=True); a buffer updated after the forward stays "
                    "per-rank", name, rule="buffer-differs"))
            return
        if unused.get("all_ranks") and metrics.get("find_unused_parameters") is False:
            cause = (f"parameters unused on every rank ({_short(unused['all_ranks'])}) with "
                     "find_unused_parameters=False: DDP never all-reduced the gradient bucket "
                     "that holds them, so its other parameters trained on each rank's own "
                     "gradients (pytorch#128949)")
            fix = FIX_UNUSED
        else:
            cause = ("gradients were not averaged across ranks (a model not wrapped in DDP, "
                     "an optimizer step inside no_sync(), or gradients changed after the "
                     "all-reduce)")
            fix = "wrap the model with DDP and step the optimizer after a synchronised backward"
        findings.append(Finding(Severity.FAIL, f"parameter {name} differs across ranks {when}:"
                                f" {cause}", fix, name, rule="replicas-out-of-sync"))
        return


# --- unused parameters ---------------------------------------------------------------------
def _unused(present: list[dict[str, Any]], findings: list[Finding],
            metrics: dict[str, Any]) -> dict[str, Any]:
    """Parameters without a gradient, by rank and step, and the probe before wrapping."""
    find_unused = present[0].get("find_unused")
    out: dict[str, Any] = {"any": False, "all_ranks": []}
    probe = present[0].get("probe_unused")
    if probe is not None:
        sets = [set(p) for p in probe]
        if any(s != sets[0] for s in sets):
            detail = "; ".join(f"rank {r} skips {_short(sorted(s)) or 'none'}"
                               for r, s in enumerate(sets))
            metrics["unused_params"] = len(set().union(*sets))
            out["any"] = True
            if not find_unused:
                findings.append(Finding(
                    Severity.FAIL, f"ranks skip different parameters ({detail}): with "
                    "find_unused_parameters=False DDP hangs on them (pytorch#68803); found "
                    "before wrapping, so diag ran no DDP step", "run the same branches on "
                    "every rank, or wrap with find_unused_parameters=True",
                    sorted(set().union(*sets) - set.intersection(*sets))[0],
                    rule="ranks-skip-different-parameters"))
                return out
    steps = [r.get("unused", []) for r in present]
    stuck = [r["stuck"] for r in present if r.get("stuck")]
    # every rank waiting inside torch (none in user code): what each used so far is real
    stuck_used = [set(s.get("used_so_far", [])) for s in stuck
                  if s.get("phase") == "step"] if stuck and not any(
        s.get("in_user_code") for s in stuck) else []
    per_rank = [set().union(*map(set, s)) if s else set() for s in steps]
    common = set.intersection(*per_rank) if per_rank else set()
    # parameters every rank skipped at the same step, on every step it ran
    always = set.intersection(*[set.intersection(*map(set, s)) if s else set()
                                for s in steps]) if all(steps) else set()
    names = present[0].get("names", [])
    metrics["unused_params"] = max(metrics.get("unused_params", 0), len(set().union(*per_rank)))
    disagree = [i for i in range(min(len(s) for s in steps))
                if len({frozenset(s[i]) for s in steps}) > 1] if all(steps) else []
    if disagree:
        i = disagree[0]
        detail = "; ".join(f"rank {r} skips {_short(sorted(s[i])) or 'none'}"
                           for r, s in enumerate(steps))
        out["any"] = True
        findings.append(Finding(
            Severity.INFO if find_unused else Severity.FAIL,
            f"ranks skip different parameters at step {i + 1} ({detail})"
            + ("; find_unused_parameters=True copes with it" if find_unused else
               ": with find_unused_parameters=False DDP hangs (pytorch#68803)"),
            "run the same branches on every rank" + ("" if find_unused else
                                                     ", or find_unused_parameters=True"),
            rule="ranks-skip-different-parameters"))
    elif stuck_used and names:
        skipped = [sorted(set(names) - u) for u in stuck_used]
        if len({tuple(s) for s in skipped}) > 1:
            out["any"] = True
            findings.append(Finding(
                Severity.FAIL, "ranks hung in a step after using different parameters ("
                + "; ".join(f"skipped {_short(s) or 'none'}" for s in skipped)
                + "): the hang of pytorch#68803", "run the same branches on every rank, or "
                "find_unused_parameters=True", rule="ranks-skip-different-parameters"))
    if always or common:
        unused_everywhere = sorted(always or common, key=lambda n: names.index(n)
                                   if n in names else 0)
        out["any"] = True
        out["all_ranks"] = unused_everywhere
        if find_unused is False:
            findings.append(Finding(
                Severity.FAIL, f"{len(unused_everywhere)} parameter(s) get no gradient on any "
                f"rank ({_short(unused_everywhere)}) and find_unused_parameters=False: DDP "
                "skips the all-reduce of their bucket (replicas drift apart, pytorch#128949) "
                "and raises at the next step", FIX_UNUSED, unused_everywhere[0],
                rule="unused-parameters"))
        else:
            findings.append(Finding(
                Severity.INFO, f"{len(unused_everywhere)} parameter(s) get no gradient on any "
                f"rank ({_short(unused_everywhere)}); find_unused_parameters=True copes, at "
                "the cost of a graph traversal every step", "remove or freeze them",
                unused_everywhere[0], rule="unused-parameters"))
    return out


# --- data ----------------------------------------------------------------------------------
def _data(present: list[dict[str, Any]], findings: list[Finding],
          metrics: dict[str, Any]) -> None:
    epochs = [r.get("epochs", []) for r in present]
    metrics["sampler"] = present[0].get("sampler") or ""
    if not all(epochs):
        if not any(r.get("recorded") for r in present):
            findings.append(Finding(
                Severity.INFO, "no sampler to record: the data checks (overlap, set_epoch, "
                "batch counts) did not run", "give step a .loader attribute, or build the "
                "DataLoader inside the step factory", rule="data-not-recorded"))
        return
    world = len(present)
    firsts = [set(e[0]["indices"]) for e in epochs]
    seen: dict[int, int] = {}
    for s in firsts:
        for i in s:
            seen[i] = seen.get(i, 0) + 1
    overlap = sum(1 for c in seen.values() if c > 1)
    metrics["overlap_samples"] = overlap
    metrics["samples_seen"] = len(seen)
    # DistributedSampler pads the last round with up to world - 1 repeated samples
    if world > 1 and overlap > world - 1:
        findings.append(Finding(
            Severity.FAIL, f"ranks draw the same samples: {overlap} of {len(seen)} samples in "
            f"epoch 1 were drawn by more than one rank (sampler: {metrics['sampler']}); each "
            "rank trains on the whole data set, so an epoch is worth one rank's",
            "use torch.utils.data.distributed.DistributedSampler(dataset) as the loader's "
            "sampler (and call sampler.set_epoch(epoch) each epoch)", rule="ranks-overlap"))
    counts = [e[0]["batches"] for e in epochs]
    metrics["batches_per_rank"] = counts[0] if len(set(counts)) == 1 else "/".join(
        map(str, counts))
    if len(set(counts)) > 1:
        most = max(range(world), key=counts.__getitem__)
        findings.append(Finding(
            Severity.FAIL, "uneven batch counts per epoch: " + ", ".join(
                f"rank {r}: {c}" for r, c in enumerate(counts)) + f"; rank {most}'s last "
            "batches wait for an all-reduce the others never start (a hang at the end of the "
            "epoch)", "give every rank the same number of batches (DistributedSampler pads to "
            "equal shares; or drop_last), or wrap the loop in model.join()",
            rule="uneven-batches"))
    shuffled = [e for e in epochs if len(e) >= 2 and e[0].get("shuffle")]
    same = [e for e in shuffled if e[0]["order"] == e[1]["order"]]
    metrics["same_order_each_epoch"] = (bool(same) if shuffled else None)
    if same:
        findings.append(Finding(
            Severity.WARN, "the sampler shuffles, yet epochs 1 and 2 drew the same order on "
            f"{len(same)} of {world} ranks: DistributedSampler.set_epoch(epoch) is never "
            "called (pytorch#31771)", "call loader.sampler.set_epoch(epoch) at the start of "
            "every epoch", rule="set-epoch-missing"))
    elif metrics.get("mode") == "step" and any(e[0].get("shuffle") for e in epochs) \
            and not shuffled:
        findings.append(Finding(
            Severity.INFO, f"one epoch is longer than the {metrics['steps_run']} steps run: "
            "set_epoch() was not checked", "raise --steps past one epoch, or use fewer "
            "samples", rule="set-epoch-unchecked"))


# --- seeds ---------------------------------------------------------------------------------
def _seeds(present: list[dict[str, Any]], findings: list[Finding],
           metrics: dict[str, Any]) -> None:
    if len(present) < 2:
        return
    drops = [r.get("dropout", []) for r in present]
    n = min(len(d) for d in drops)
    pairs = [[d[i] for d in drops] for i in range(n) if all(d[i] for d in drops)]
    if pairs:
        same = sum(1 for p in pairs if len(set(p)) == 1)
        metrics["dropout_identical_steps"] = same
        if same == len(pairs):
            findings.append(Finding(
                Severity.WARN, f"dropout masks are identical on every rank ({same} of "
                f"{len(pairs)} steps): every rank's generator is in the same state, so its "
                "random draws (dropout, augmentation) repeat across ranks", FIX_SEED,
                rule="identical-random-draws"))
        return
    rngs = [r.get("rng", []) for r in present]
    if all(rngs) and len({r[0] for r in rngs}) == 1:
        metrics["rng_identical"] = True
        findings.append(Finding(
            Severity.INFO, "torch's generator is in the same state on every rank: random "
            "augmentation drawn in the main process repeats across ranks (no dropout in the "
            "model)", FIX_SEED, rule="identical-random-draws"))


# --- census --------------------------------------------------------------------------------
CENSUS = ("tensors", "storages", "bytes", "graph_nodes")
"""The census's quantities per step, in the record's order (as `diag leaks` counts them)."""


def _census(present: list[dict[str, Any]], findings: list[Finding], metrics: dict[str, Any],
            series: dict[str, list[float]]) -> None:
    leaking = []
    for rec in present:
        rows = rec.get("census", [])
        if not rows:
            continue
        series[f"tensors_rank{rec['rank']}"] = [float(r[0]) for r in rows]
        warmup = max(1, min(3, len(rows) // 3))
        grown = []
        for q, name in enumerate(CENSUS):
            g = persistent_growth([float(r[q] or 0) for r in rows], warmup)
            if g.growing:
                grown.append(f"{name} +{g.per_iter:.3g}/step")
        if grown:
            leaking.append((rec["rank"], grown))
    metrics["leaking_ranks"] = ",".join(str(r) for r, _ in leaking)
    for rank, grown in leaking:
        findings.append(Finding(
            Severity.FAIL, f"rank {rank} leaks: {', '.join(grown)} after warm-up",
            "run `diag leaks --step` on that rank's loop for the file:line that keeps them "
            "(a loss summed without .item() keeps every step's graph)", rule="rank-leak"))
