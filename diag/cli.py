"""The ``diag`` command line. Thin: options -> the plan (``diag.run.plan``) -> the session,
which runs the jobs and renders. No wiring of its own: every command builds its work through
the same plan as `diag check` and the Python API.

Nothing here imports torch at module level, so ``diag --help`` stays fast.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from diag import __version__
from diag.result import ExitCode

if TYPE_CHECKING:
    from diag.run.plan import Sources
    from diag.run.session import RunOptions

app = typer.Typer(
    name="diag",
    help="A command-line doctor for neural-network training.\n\n"
    "Runs the checks of a careful practitioner (overfit a tiny subset, count live tensors, "
    "read the loss curve, test custom losses, round-trip preprocessing) on the built-in "
    "browser model or on your own model, data and loss.\n\n"
    "Exit codes: 0 passed, 1 a check failed, 2 usage error, 3 a check could not run, "
    "130 interrupted.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, enum.Enum):
    """What goes to stdout."""

    text = "text"
    json = "json"
    sarif = "sarif"


class Task(str, enum.Enum):
    """Which head of the browser model the default target trains."""

    landmarks = "landmarks"
    classify = "classify"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"diag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """A command-line doctor for neural-network training."""


# Common options --------------------------------------------------------------------------
Seed = Annotated[int, typer.Option("--seed", help="Seed for everything random, an integer "
                                   "from 0 to 2**63-1; the same seed gives the same numbers in "
                                   "the JSON report.")]
Out = Annotated[Path, typer.Option("--out", help="Folder for report files (JSON, PNG, "
                                   "summary.md).")]
Format = Annotated[OutputFormat, typer.Option("--format", help="text: a table on stdout; "
                                              "json or sarif (SARIF 2.1.0, for code "
                                              "scanning): the report on stdout and nothing "
                                              "else.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress; one line per check.")]
NoPlots = Annotated[bool, typer.Option("--no-plots", help="Do not write PNG plots.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show info findings too.")]
ModelSpec = Annotated[str | None, typer.Option(
    "--model", metavar="SPEC",
    help="A torch.nn.Module, or a zero-argument callable returning one: "
    "'pkg.mod:attr' or 'path/to/file.py:attr'. Default: the tiny browser net.")]
DataSpec = Annotated[str | None, typer.Option(
    "--data", metavar="SPEC|FILE",
    help="A .npz with arrays x and y, or a SPEC giving a Dataset or a tuple (x, y). "
    "Default: the generated faces.")]
LossSpec = Annotated[str | None, typer.Option(
    "--loss", metavar="SPEC",
    help="A callable loss(pred, target) -> scalar tensor. Default: MSE for float targets, "
    "cross-entropy for class indices.")]
TaskOpt = Annotated[Task, typer.Option("--task", help="Head of the default browser model: "
                                       "landmarks (68 points) or classify (expressions).")]
InputSize = Annotated[int, typer.Option("--input-size", min=8, help="Input size in pixels "
                                        "for the default data (the browser uses 112).")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, metavar="N", help="Intra-op threads for diag's own runs (default: "
    "OMP_NUM_THREADS or your torch.set_num_threads, else 1 for small ops and every core for "
    "large ones; the JSON says which).")]


def _run_guarded(body: Callable[[], int]) -> NoReturn:
    """Map DiagError to one stderr line and its exit code; Ctrl-C to 130."""
    from diag.errors import DiagError

    try:
        code = body()
    except DiagError as exc:
        typer.echo(f"diag: error: {exc.one_line()}", err=True)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        typer.echo("diag: interrupted", err=True)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    raise typer.Exit(code)


def _run_options(out: Path, fmt: OutputFormat, quiet: bool, no_plots: bool,
                 verbose: bool) -> RunOptions:
    from diag.run.session import RunOptions

    return RunOptions(out=out, fmt=fmt.value, quiet=quiet, plots=not no_plots, verbose=verbose)


def _one_check(name: str, sources: Sources, options: dict[str, Any], run: RunOptions, *,
               seed: int, task: Task | None = None, input_size: int = 48,
               threads: int | None = None) -> int:
    """A single command: its options validated by the check's own rules, then the plan."""
    from diag.checks.base import validate_options
    from diag.checks.registry import get
    from diag.run.plan import Settings, build

    check = get(name)
    opts = validate_options(check, options, "",
                            key_name=lambda k: "--" + k.replace("_", "-"))
    settings = Settings(seed=seed, task=task.value if task else "landmarks",
                        input_size=input_size, threads=threads)
    return _execute(lambda: build(sources, settings, [name], {name: opts}), run)


def _run_one(name: str, options: dict[str, Any], run: RunOptions, *, seed: int,
             task: Task | None = None, input_size: int = 48, threads: int | None = None,
             **sources: Any) -> NoReturn:
    """A single command whose options need no checks of their own: the plan, guarded.
    ``sources``: the Sources fields the command takes (model, data, loss, step ...)."""

    def body() -> int:
        from diag.run.plan import Sources

        return _one_check(name, Sources(**sources), options, run, seed=seed, task=task,
                          input_size=input_size, threads=threads)

    _run_guarded(body)


def _execute(plan: Callable[[], list[Any]], run: RunOptions) -> int:
    """Plan, then run. With --format json, anything user code prints while the plan tries
    it (a forward pass, an import) goes to stderr too: stdout is for the report alone."""
    from contextlib import redirect_stdout

    from diag.report.worker import take_early
    from diag.run.session import execute

    worker = take_early(run.plots)
    try:
        if run.fmt == "text":
            jobs = plan()
        else:
            with redirect_stdout(sys.stderr):
                jobs = plan()
    except BaseException:
        if worker is not None:
            worker.close()
        raise
    return execute(jobs, run, worker)


# Commands --------------------------------------------------------------------------------
@app.command("data")
def data_cmd(
    *,
    data: DataSpec = None,
    loader: Annotated[str | None, typer.Option(
        "--loader", metavar="SPEC", help="A zero-argument factory returning an iterable of "
        "(inputs, targets) batches, e.g. your DataLoader (default: diag's trainer batches "
        "--data).")] = None,
    model: ModelSpec = None,
    loss: LossSpec = None,
    task: TaskOpt = Task.landmarks,
    max_batches: Annotated[int, typer.Option("--max-batches", min=2, help="Batches read per "
                                             "epoch (two epochs are read).")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size of "
                                            "diag's trainer when there is no loader.")] = 12,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Fit a tiny model on "
                                        "real against shuffled labels.")] = True,
    input_size: InputSize = 48,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Is the data what the training loop thinks it is? Reads two epochs, batch by batch.

    Order: shuffled (label runs and per-batch class counts, or the targets' autocorrelation, against random orders), reshuffled every epoch. Alignment: a tiny model fits the real pairing faster than shuffled labels. Values: NaN/Inf with indices, 0-255 pixels, double normalisation, constant channels, duplicates with conflicting labels, class imbalance, targets the output layer cannot produce.
    """

    _run_one("data", {"loader": loader, "max_batches": max_batches, "batch_size": batch_size,
                      "probe": probe}, _run_options(out, fmt, quiet, no_plots, verbose),
             seed=seed, task=task, input_size=input_size, threads=threads, model=model,
             data=data, loss=loss)


@app.command("init")
def init_cmd(
    *,
    model: ModelSpec = None,
    data: DataSpec = None,
    loss: LossSpec = None,
    task: TaskOpt = Task.landmarks,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Samples in the "
                                            "batch the pass runs on.")] = 32,
    max_signal_change: Annotated[float, typer.Option(
        "--max-signal-change", help="Largest accepted change of the output std from the "
        "first layer to the last (a factor).")] = 10.0,
    max_grad_ratio: Annotated[float, typer.Option(
        "--max-grad-ratio", help="Largest accepted ratio between the first and the last "
        "layer's relative gradient (a factor).")] = 1000.0,
    input_size: InputSize = 48,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Is the network healthy at step 0? One seeded forward and backward pass at init.

    Per layer: the output's mean and std, the dead (ReLU) or saturated (ReLU-6, sigmoid, tanh) units after it, the weight std next to Glorot's and He's, and the gradient norm next to the weight norm. Findings: vanishing or exploding gradients and signal (residual and dense connections credited), dead or saturated layers, a loss at init far above ln(C) or the loss of predicting zeros, weights far from any init scheme.
    """

    _run_one("init", {"batch_size": batch_size, "max_signal_change": max_signal_change,
                      "max_grad_ratio": max_grad_ratio},
             _run_options(out, fmt, quiet, no_plots, verbose), seed=seed, task=task,
             input_size=input_size, threads=threads, model=model, data=data, loss=loss)


@app.command()
def overfit(
    *,
    model: ModelSpec = None,
    data: DataSpec = None,
    loss: LossSpec = None,
    task: TaskOpt = Task.landmarks,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Subset size to memorise "
                                         "(the article: 10-20).")] = 16,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Step budget; stops "
                                           "as soon as the target is reached.")] = 500,
    lr: Annotated[float, typer.Option("--lr", min=1e-12,
                                      help="Adam learning rate.")] = 1e-3,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help="Minibatch size (default: the whole subset).")] = None,
    target_loss: Annotated[float | None, typer.Option(
        "--target-loss", min=0.0, help="Absolute loss to reach (default 1e-3 for regression, "
        "0.05 for classification); it must also fall 100x.")] = None,
    no_confirm: Annotated[bool, typer.Option(
        "--no-confirm", help="On failure, report the evidence only; do not rerun with each "
        "suspected cause's fix to confirm it.")] = False,
    input_size: InputSize = 48,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Can the model drive the loss to ~0 on a tiny subset? If not, why.

    The article's first rule: before training for real, make the model memorise 10-20 samples. Reports steps, initial and final loss, and every cause it can find: parameters that never get a gradient or never change, NaN/Inf, an output range that cannot reach the targets, dead ReLUs, the loss at init against ln(C), gradient norms per layer.
    """

    _run_one("overfit", {"samples": samples, "max_steps": max_steps, "lr": lr,
                         "batch_size": batch_size, "target_loss": target_loss,
                         "confirm": not no_confirm},
             _run_options(out, fmt, quiet, no_plots, verbose), seed=seed, task=task,
             input_size=input_size, threads=threads, model=model, data=data, loss=loss)


@app.command()
def leaks(
    *,
    step: Annotated[str | None, typer.Option(
        "--step", metavar="SPEC", help="A zero-argument factory returning step(), a "
        "zero-argument function that runs one training iteration.")] = None,
    model: ModelSpec = None,
    data: DataSpec = None,
    loss: LossSpec = None,
    task: TaskOpt = Task.landmarks,
    iterations: Annotated[int, typer.Option("--iterations", min=5,
                                            help="Calls to step(), warm-up included.")] = 30,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Iterations whose growth is "
                                        "expected (lazy optimizer state, caches).")] = 5,
    input_size: InputSize = 48,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Do live tensors, bytes or autograd graphs grow per iteration? Where were they made?

    A tf.memory() for PyTorch: after every step() it counts live tensors, storages and bytes (tensors held only inside autograd graphs included) and the graph nodes they keep alive. Growth that persists after warm-up fails, with the file:line in your code where the leaked tensors were created and a hint per pattern.
    """

    def body() -> int:
        from diag.errors import UsageError
        from diag.run.plan import Sources

        if step is not None and (model or data or loss):
            raise UsageError("--step runs your own iteration; it cannot be combined with "
                             "--model/--data/--loss", hint="pass either --step or those")
        return _one_check("leaks", Sources(step=step, model=model, data=data, loss=loss),
                          {"iterations": iterations, "warmup": warmup},
                          _run_options(out, fmt, quiet, no_plots, verbose), seed=seed,
                          task=task, input_size=input_size, threads=threads)

    _run_guarded(body)


@app.command("lr-schedule")
def lr_schedule(
    *,
    history: Annotated[str | None, typer.Option(
        "--history", metavar="FILE|DIR", help="A training log, or a run folder holding one: "
        "CSV (Keras, Lightning metrics.csv, Ultralytics, a W&B export), JSON (a list, Hugging "
        "Face's trainer_state.json, wandb-history.jsonl), TensorBoard event files, an MLflow "
        "run or its database (mlflow.db), or a text log. Without it, diag trains the model and "
        "reads that curve.")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", help="Column or key to analyse (default loss). Give it twice for a "
        "training and a validation column (default: val_<metric> when the file has it).")
    ] = None,
    lr_column: Annotated[str | None, typer.Option(
        "--lr-column", metavar="NAME", help="The LR column (default: lr, learning_rate, or "
        "the first lr-*, lr/* column).")] = None,
    run: Annotated[str | None, typer.Option(
        "--run", metavar="NAME", help="With --history a folder of several runs, an MLflow "
        "database or a W&B export of several runs: the run to read (its folder name, or its "
        "name or id in the store; default: the newest, or the export's first).")] = None,
    pattern: Annotated[str | None, typer.Option(
        "--pattern", metavar="REGEX", help="With --history a text log: its line shape, a regex "
        "with named groups step or epoch, loss, and optional lr and val_loss.")] = None,
    kind: Annotated[str, typer.Option(
        "--kind", metavar="auto|train|val", help="What the metric is: a validation curve is "
        "judged for overfitting (best epoch, stop there), never told to lower the LR; auto: "
        "val*, valid*, eval*, test* names are validation.")] = "auto",
    model: ModelSpec = None,
    data: DataSpec = None,
    loss: LossSpec = None,
    task: TaskOpt = Task.landmarks,
    epochs: Annotated[int, typer.Option("--epochs", min=10, help="Training mode: epochs to "
                                        "train.")] = 30,
    lr: Annotated[float | None, typer.Option("--lr", min=1e-12, help="The current learning "
                                             "rate (training mode default 1e-3; with "
                                             "--history, used when the file has no lr "
                                             "column).")] = None,
    range_test: Annotated[bool, typer.Option("--range-test", help="Also run the LR range "
                                             "test and suggest an initial LR.")] = False,
    range_steps: Annotated[int, typer.Option(
        "--range-steps", min=20, max=100000, help="Steps of each range-test sweep (two "
        "averaged): more when the loss never fell in the sweep but the model does learn, "
        "as a Transformer's often learns too slowly for 100.")] = 100,
    verify: Annotated[bool, typer.Option("--verify", help="Resume from the detected point "
                                         "with the recommended LR and compare.")] = False,
    input_size: InputSize = 48,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Plateau, oscillation and divergence in a loss curve, and which learning rate to use.

    Reads a history file, or trains the model and reads its per-epoch loss. Reports where each condition starts, recommends an LR (the current one / 10 at that point), shows where torch's ReduceLROnPlateau would have cut, and with --verify measures what the recommended drop buys.
    """

    def body() -> int:
        from diag.errors import UsageError
        from diag.run.plan import Sources

        if history is not None and (range_test or verify or model or data or loss
                                    or range_steps != 100):
            raise UsageError("--history analyses a file; --range-test, --range-steps, "
                             "--verify, --model, --data and --loss need training mode",
                             hint="drop --history to train, or drop those options")
        if range_steps != 100 and not range_test:
            raise UsageError("--range-steps sets the range test's sweep, and no range test "
                             "was asked for", hint="add --range-test")
        metrics = list(metric or ["loss"])
        if len(metrics) > 2:
            raise UsageError(f"--metric given {len(metrics)} times",
                             hint="give a training metric, and optionally a validation one")
        options = {"epochs": epochs, "lr": lr, "range_test": range_test,
                   "range_steps": range_steps, "verify": verify,
                   "metric": metrics[0], "val_metric": metrics[1] if len(metrics) == 2
                   else None, "lr_column": lr_column, "run": run, "pattern": pattern,
                   "kind": kind}
        return _one_check("lr-schedule", Sources(history=history, model=model, data=data,
                                                 loss=loss), options,
                          _run_options(out, fmt, quiet, no_plots, verbose), seed=seed,
                          task=task, input_size=input_size, threads=threads)

    _run_guarded(body)


@app.command("loss-grad")
def loss_grad(
    spec: Annotated[str | None, typer.Argument(
        metavar="SPEC", help="The loss, loss(pred, target) -> scalar tensor. Omit to check the "
        "browser model's own losses (landmark MSE, softmax cross-entropy).")] = None,
    *,
    pred_shape: Annotated[str, typer.Option("--pred-shape", metavar="N,C",
                                            help="Shape of the prediction.")] = "8,10",
    target: Annotated[str | None, typer.Option(
        "--target", metavar="index|like|binary|SPEC",
        help="index: class indices for (N, C) logits; like: floats of pred's shape; binary: "
        "0/1 floats of pred's shape; a SPEC: (pred_shape) -> target. Default: index when "
        "--data holds class indices (or --task classify), else like.")] = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", metavar="SPEC", help="A trusted loss the value and gradient must "
        "agree with.")] = None,
    data: Annotated[str | None, typer.Option(
        "--data", metavar="SPEC|FILE", help="Your data, to pick the default --target (class "
        "indices or not).")] = None,
    task: TaskOpt = Task.landmarks,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Is a custom loss's gradient right, finite at edge inputs, and batch-correct?

    Checks, each on its own: the gradient against finite differences in float64 (skipping kinks, so L1 or hinge pass), that it reaches pred at all, finite value and gradient at edge inputs in float32 and float64, that samples of a batch do not mix, the reduction and invariances, and agreement with --reference.
    """

    def body() -> int:
        from diag.run.plan import Sources

        options = {"pred_shape": _parse_shape(pred_shape), "target": target,
                   "reference": reference}
        return _one_check("loss-grad", Sources(loss=spec, data=data), options,
                          _run_options(out, fmt, quiet, no_plots, verbose), seed=seed,
                          task=task, threads=threads)

    _run_guarded(body)


def _parse_shape(text: str) -> tuple[int, ...]:
    from diag.errors import UsageError

    try:  # "8,10" or "8x10": every part a number, none missing
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise UsageError(f"--pred-shape {text!r} is not a shape", hint="write it as N,C, e.g. 8,10")
    return shape


@app.command()
def preprocess(
    *,
    pipeline: Annotated[str | None, typer.Option(
        "--pipeline", metavar="SPEC", help="An object (or a zero-argument callable returning "
        "one) with preprocess(image, points) -> (tensor, model_points) and "
        "postprocess(model_points, image_size) -> points. Default: the browser model's "
        "pipeline.")] = None,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Do preprocessing and postprocessing round-trip exactly? What does the network see?

    diag draws probe images (portrait, landscape, square, odd sizes) with markers at known points and checks: the output contract, channel order, that markers are not scrambled, flipped or transposed, that markers sit at model_points, the points' round trip (0.5 px), intensity (uint8 wrap-around, double normalisation) and determinism.
    """

    _run_one("preprocess", {}, _run_options(out, fmt, quiet, no_plots, verbose), seed=seed,
             threads=threads, pipeline=pipeline)


@app.command()
def size(
    *,
    model: ModelSpec = None,
    data: DataSpec = None,
    task: TaskOpt = Task.landmarks,
    max_size: Annotated[str, typer.Option("--max-size", metavar="SIZE", help="Budget for the "
                                          "fp32 weights (2MB, 500KB, 1.5MiB).")] = "2MB",
    max_error: Annotated[float | None, typer.Option(
        "--max-error", help="Largest accepted error at --precision (default: 0.5 px for "
        "landmark nets, 0.01 = 99% top-1 agreement for classifiers, 1% relative change "
        "otherwise).")] = None,
    precision: Annotated[str, typer.Option("--precision", metavar="uint8|uint16",
                                           help="The precision you plan to ship.")] = "uint8",
    export: Annotated[str | None, typer.Option(
        "--export", metavar="DIR", help="Write safetensors and tfjs (model.json + shards) "
        "weights there, and prove they load back.")] = None,
    input_size: InputSize = 48,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """How big is the model, what does uint8 / uint16 quantization cost, do weights round-trip?

    A table per layer (parameters, fp32 / uint16 / uint8 bytes, share), what depthwise-separable convolutions would save, quantization measured on the data (pixels for landmark nets, top-1 agreement for classifiers), the layer that hurts most, and with --export weight files (safetensors, tfjs) loaded back and compared.
    """

    _run_one("size", {"max_size": max_size, "max_error": max_error, "precision": precision,
                      "export": export}, _run_options(out, fmt, quiet, no_plots, verbose),
             seed=seed, task=task, input_size=input_size, threads=threads, model=model,
             data=data)


@app.command("speed")
def speed_cmd(
    *,
    model: ModelSpec = None,
    data: DataSpec = None,
    loss: LossSpec = None,
    loader: Annotated[str | None, typer.Option(
        "--loader", metavar="SPEC", help="A zero-argument factory returning an iterable of "
        "(inputs, targets) batches: its data-loading wait is measured.")] = None,
    step: Annotated[str | None, typer.Option(
        "--step", metavar="SPEC", help="A zero-argument factory returning step(): its host "
        "syncs (.item(), .cpu(), print(tensor) ...) are counted with their lines.")] = None,
    device: Annotated[str, typer.Option("--device", metavar="cpu|cuda",
                                        help="Where to time the steps.")] = "cpu",
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Largest batch size "
                                           "the sweep tries.")] = 256,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help="The batch size you train with: warned about when its "
        "throughput is under half the knee's.")] = None,
    timed_steps: Annotated[int, typer.Option("--timed-steps", min=5, help="Timed steps per "
                                             "size (median).")] = 5,
    budget: Annotated[float, typer.Option(
        "--budget", min=0.001, metavar="SECONDS", help="Time the timing may take: the sweep "
        "stops before a size that would pass it; probes that would are skipped.")] = 40.0,
    task: TaskOpt = Task.landmarks,
    input_size: InputSize = 48,
    seed: Seed = 0,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Where does a training step's time go? Batch size, input size, data loading, host syncs.

    A batch-size sweep (1, 2, 4 ... until memory runs out, --max-batch, or throughput stops improving for two sizes): samples/s, time per step and activation memory; the best size, the knee (smallest within 10% of the best) and the largest that fits. With --loader, the fraction of step time spent waiting for data and its cause. With --step, the host-sync calls per step with their lines. Inputs the model shrinks right away (a 512x512 image resized to 32x32 on the device). Timings vary from run to run.
    """

    _run_one("speed", {"loader": loader, "device": device, "max_batch": max_batch,
                       "batch_size": batch_size, "timed_steps": timed_steps,
                       "budget_s": budget},
             _run_options(out, fmt, quiet, no_plots, verbose), seed=seed, task=task,
             input_size=input_size, threads=threads, model=model, data=data, loss=loss,
             step=step)


@app.command("ddp")
def ddp_cmd(
    *,
    model: ModelSpec = None,
    data: DataSpec = None,
    loss: LossSpec = None,
    step: Annotated[str | None, typer.Option(
        "--step", metavar="SPEC", help="A zero-argument factory returning step(), called on "
        "every rank once the process group is up: your DDP wrap, loader and epochs.")] = None,
    loader: Annotated[str | None, typer.Option(
        "--loader", metavar="SPEC", help="A zero-argument factory returning your DataLoader "
        "(called on every rank), for diag's loop.")] = None,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Processes to launch under "
                                       "torchrun (ignored under torchrun).")] = 2,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Training steps per "
                                       "rank.")] = 10,
    find_unused: Annotated[bool, typer.Option(
        "--find-unused", help="Wrap with find_unused_parameters=True (diag's loop).")] = False,
    backend: Annotated[str, typer.Option("--backend", metavar="auto|gloo|nccl",
                                         help="Process group backend.")] = "auto",
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1.0, metavar="SECONDS", help="For the whole run: a hung rank is "
        "reported where it hangs, and every rank is stopped.")] = 120.0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size per rank "
                                            "in diag's loop.")] = 8,
    task: TaskOpt = Task.landmarks,
    input_size: InputSize = 48,
    seed: Seed = 0,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Does DistributedDataParallel training stay in sync across ranks, without hangs?

    Relaunches itself under torchrun (--nproc processes; gloo on CPU, NCCL on GPUs), or joins the group when already run by torchrun (`torchrun ... -m diag ddp`; rank 0 writes the report). Each rank runs --steps steps; then: replicas in sync (the first parameter or buffer that differs, and why), unused parameters by name and by rank (found before DDP hangs), the samples each rank drew (overlap, set_epoch, uneven batch counts), identical dropout draws across ranks, and live tensors per rank. Nothing outlives --timeout.
    """
    import os

    out_dir = out
    quiet_rank = False
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and os.environ["RANK"] != "0":
        import tempfile

        out_dir, quiet_rank = Path(tempfile.mkdtemp(prefix="diag-ddp-rank-")), True
    _run_one("ddp", {"nproc": nproc, "steps": steps, "find_unused": find_unused,
                     "backend": backend, "timeout": timeout, "batch_size": batch_size,
                     "step": step, "loader": loader},
             _run_options(out_dir, fmt, quiet or quiet_rank, no_plots or quiet_rank, verbose),
             seed=seed, task=task, input_size=input_size, model=model, data=data, loss=loss)


class _RegistryHelp(typer.core.TyperCommand):
    """A command whose option help names the checks: ``{checks}`` is filled from the
    registry when the help is shown (so ``diag --help`` never imports it)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from diag.checks.registry import NAMES

        for param in self.params:
            text = getattr(param, "help", None)
            if text and "{checks}" in text:
                param.help = text.replace("{checks}", ", ".join(NAMES))  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


@app.command(cls=_RegistryHelp)
def check(
    *,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="A TOML file with a \\[tool.diag] table (default: "
        "./pyproject.toml's, if any).")] = None,
    select: Annotated[list[str] | None, typer.Option(
        "--select", metavar="NAMES", help="Only these checks (comma-separated or repeated): "
        "{checks}.")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", metavar="NAMES",
                                                   help="Leave these checks out: any of "
                                                   "{checks}.")] = None,
    junit: Annotated[Path | None, typer.Option(
        "--junit", metavar="FILE", help="Also write JUnit XML (one testcase per check).")] = None,
    sarif: Annotated[Path | None, typer.Option(
        "--sarif", metavar="FILE", help="Also write SARIF 2.1.0 (GitHub code scanning: one "
        "rule per kind of finding, at your file and line).")] = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", metavar="FILE", help="Fail only on findings not in this baseline, or "
        "key metrics worse than it beyond their tolerance; fixed ones are reported.")] = None,
    update_baseline: Annotated[bool, typer.Option(
        "--update-baseline", help="Write --baseline FILE from this run.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.0, metavar="SECONDS", help="Per check: over budget is an error "
        "(timed out), the other checks go on.")] = None,
    model: ModelSpec = None,
    data: DataSpec = None,
    loss: LossSpec = None,
    step: Annotated[str | None, typer.Option("--step", metavar="SPEC",
                                             help="Factory returning step(), for leaks.")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", metavar="SPEC",
                                                 help="Pipeline, for preprocess.")] = None,
    history: Annotated[str | None, typer.Option("--history", metavar="FILE",
                                                help="Loss history, for lr-schedule.")] = None,
    task: Annotated[Task | None, typer.Option("--task", help="Head of the default browser "
                                              "model.")] = None,
    input_size: Annotated[int | None, typer.Option("--input-size", min=8, help="Input size "
                                                   "of the default data.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed, an integer from 0 to "
                                             "2**63-1 (default: the config's, else 0).")] = None,
    threads: ThreadsOpt = None,
    out: Out = Path("reports"),
    fmt: Format = OutputFormat.text,
    quiet: Quiet = False,
    no_plots: NoPlots = False,
    verbose: Verbose = False,
) -> None:
    """Run every check as one CI health check: one exit code, JSON, JUnit and summary.md.

    Configured by \\[tool.diag] in pyproject.toml (or --config): model, data, loss, step, pipeline, history, seed, select, skip, timeout, and a sub-table per check for its options. With no configuration, every check runs on the built-in defaults, except ddp (it starts processes: set \\[tool.diag.ddp] to run it). An errored check (exit 3) wins over a failed one (exit 1). summary.md is appended to $GITHUB_STEP_SUMMARY when that is set.
    """

    def body() -> int:
        from diag.errors import UsageError
        from diag.inputs.config import load_config
        from diag.run.plan import Overrides, plan_check
        from diag.run.session import RunOptions

        if timeout is not None and not 0 < timeout < float("inf"):
            raise UsageError(f"--timeout {timeout:g} is not a positive number",
                             hint="give seconds > 0, or leave --timeout out for no limit")
        cfg = load_config(str(config) if config else None)
        cli = Overrides(model=model, data=data, loss=loss, step=step, pipeline=pipeline,
                        history=history, seed=seed, task=task.value if task else None,
                        input_size=input_size, threads=threads, select=tuple(select or ()),
                        skip=tuple(skip or ()))
        limit = timeout if timeout is not None else cfg.get("timeout")
        if update_baseline and baseline is None:
            raise UsageError("--update-baseline needs --baseline FILE",
                             hint="e.g. --baseline .diag-baseline.json --update-baseline")
        opts = RunOptions(out=out, fmt=fmt.value, quiet=quiet, plots=not no_plots,
                          verbose=verbose, timeout=limit, junit=junit, sarif=sarif,
                          baseline=baseline, update_baseline=update_baseline)
        return _execute(lambda: plan_check(cfg, cli, limit), opts)

    _run_guarded(body)


@app.command("model")
def model_cmd(
    name: Annotated[str | None, typer.Argument(help="A reference net; omit to list them.")] = None,
    *,
    input_size: Annotated[int, typer.Option("--input-size", min=8,
                                            help="Input size for output shapes.")] = 112,
    fmt: Format = OutputFormat.text,
) -> None:
    """List the reference browser nets, or show one layer by layer with its sizes."""

    def body() -> int:
        from diag.model.info import describe, list_nets, render_list, render_net

        if name is None:
            nets = list_nets()
            if fmt == OutputFormat.json:
                _print_json(nets)
            else:
                render_list(nets)
            return 0
        info = describe(name, input_size)
        if fmt == OutputFormat.json:
            _print_json(info)
        else:
            render_net(info)
        return 0

    _run_guarded(body)


def _print_json(obj: Any) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def _click_exceptions() -> Any:
    """Recent typer vendors click as typer._click; older typer uses click itself."""
    import importlib

    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:  # pragma: no cover
        return importlib.import_module("click.exceptions")


def main() -> None:
    """The console script: like ``app()``, but a bad option is one line on stderr, exit 2."""
    from diag.report import worker

    worker.start_early(sys.argv[1:])
    try:
        _main()
    finally:  # after a usage error before the plan, the head start was never taken
        worker.drop_early()


def _main() -> None:
    ex = _click_exceptions()
    no_args = getattr(ex, "NoArgsIsHelpError", ())
    try:
        code = app(standalone_mode=False, prog_name="diag")
    except no_args as exc:  # `diag` alone shows the help, as usual
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(0)
    except ex.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "diag"
        message = " ".join(exc.format_message().split()).replace("Value error, ", "")
        typer.echo(f"diag: error: {message.rstrip('.')}; see '{where} --help'", err=True)
        sys.exit(int(ExitCode.USAGE_ERROR))
    except ex.ClickException as exc:
        typer.echo(f"diag: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("diag: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
