"""``diag.watch`` as a Lightning callback:

    trainer = Trainer(callbacks=[DiagCallback(out="reports")])

The watch starts at ``on_fit_start`` on the LightningModule and its first optimizer, takes
each optimizer step at ``on_train_batch_end`` (counting ``accumulate_grad_batches``), each
validation loss (``val_loss`` in ``callback_metrics``) at ``on_validation_epoch_end``, and
writes its report at ``on_fit_end`` (or when the fit raises).
"""

from __future__ import annotations

from typing import Any

from diag.errors import UsageError

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - the extra is installed in the tests
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError:
        raise UsageError("diag.integrations.lightning needs Lightning",
                         hint="pip install 'diag[lightning]'") from None


class DiagCallback(pl.Callback):
    """Watch a Lightning fit; ``watch`` holds the ``diag.watching.Watch`` (its ``findings``
    and ``result``). Options are ``diag.watch``'s: out, every, raise_on, warmup, plots."""

    def __init__(self, val_metric: str = "val_loss", **options: Any) -> None:
        super().__init__()
        self.options = options
        self.val_metric = val_metric
        self.watch: Any = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        from diag.watching import Watch

        optimizers = list(getattr(trainer, "optimizers", []) or [])
        self.watch = Watch(pl_module, optimizers[0] if optimizers else None, **self.options)
        self.watch.__enter__()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.watch is None:
            return
        every = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        if (batch_idx + 1) % every:
            return  # a micro-batch: the optimizer has not stepped
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.watch.step(loss)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.watch is None or getattr(trainer, "sanity_checking", False):
            return
        value = trainer.callback_metrics.get(self.val_metric)
        if value is not None:
            self.watch.val(value)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.watch is not None:
            self.watch.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.watch is not None and self.watch._open:
            self.watch.close()
