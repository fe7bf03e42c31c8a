"""``diag.watch`` as a Hugging Face ``TrainerCallback``:

    trainer = Trainer(..., callbacks=[DiagCallback(out="reports")])

The watch starts at ``on_train_begin`` on the model and the Trainer's optimizer, takes each
optimizer step at ``on_step_end`` (the census, gradients and LR), the training and
evaluation losses the Trainer logs at ``on_log`` (``loss``, ``eval_loss``, at their global
step), and writes its report at ``on_train_end``.
"""

from __future__ import annotations

from typing import Any

from diag.errors import UsageError

try:
    import transformers
except ImportError:  # pragma: no cover - the extra is installed in the tests
    raise UsageError("diag.integrations.transformers needs Hugging Face transformers",
                     hint="pip install 'diag[transformers]'") from None


class DiagCallback(transformers.TrainerCallback):
    """Watch a ``Trainer.train()``; ``watch`` holds the ``diag.watching.Watch``. Options are
    ``diag.watch``'s: out, every, raise_on, warmup, plots."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.watch: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       optimizer: Any = None, **kwargs: Any) -> None:
        from diag.watching import Watch

        self.watch = Watch(model, optimizer, **self.options)
        self.watch.__enter__()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch is not None:
            self.watch.step(None)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
               **kwargs: Any) -> None:
        if self.watch is None or not logs:
            return
        if "loss" in logs:
            self.watch.record_loss(float(logs["loss"]), step=state.global_step)
        if "eval_loss" in logs:
            self.watch.val(float(logs["eval_loss"]), step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.watch is not None:
            self.watch.close()
