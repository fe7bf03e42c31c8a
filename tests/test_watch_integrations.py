"""diag.watch's adapters with the real libraries: a 2-epoch Lightning Trainer.fit on CPU with
a planted leak and its twin, and a Hugging Face Trainer on a tiny model built from a config
with an LR that collapses and its twin."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from diag.result import Status


def _lightning_fit(tmp_path: Path, leak: bool) -> Any:
    L = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    from diag.integrations.lightning import DiagCallback

    class Net(L.LightningModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                                          torch.nn.Linear(16, 1))
            self.history: list[torch.Tensor] = []

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _i: int
                          ) -> torch.Tensor:
            x, y = batch
            loss = F.mse_loss(self.fc(x), y)
            if leak:
                self.history.append(loss)  # LEAK: the loss and its graph, every step
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _i: int) -> None:
            x, y = batch
            self.log("val_loss", F.mse_loss(self.fc(x), y))

        def configure_optimizers(self) -> object:
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    torch.manual_seed(0)
    callback = DiagCallback(out=tmp_path / "reports")
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1, callbacks=[callback])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Net(), loader, loader)
    return callback.watch


@pytest.mark.parametrize("leak", [True, False])
def test_lightning_callback_finds_a_leak_in_training_step(tmp_path: Path, leak: bool) -> None:
    w = _lightning_fit(tmp_path, leak)
    assert w.result.metrics["steps"] == 64 and w.result.metrics["optimizer_steps"] == 64
    assert w.result.metrics["val_points"] == 2
    found = [f for f in w.findings if f.message.startswith("leak")]
    assert bool(found) is leak, [f.message for f in w.findings]
    if leak:
        assert found[0].location.startswith("test_watch_integrations.py:")
        assert w.result.status == Status.FAIL
    assert (tmp_path / "reports" / "watch.json").exists()


def _hf_train(tmp_path: Path, collapse: bool) -> Any:
    pytest.importorskip("transformers")
    from transformers import Trainer, TrainingArguments

    from diag.integrations.transformers import DiagCallback

    import architectures as a

    class Samples(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.ids, self.labels = a.token_class_data(64)

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    model = a.tiny_bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # StepLR(step_size=1, gamma=0.5) meant per epoch; the Trainer steps it per optimizer step
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1 if collapse else 10_000,
                                            gamma=0.5)
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), num_train_epochs=8,
                             per_device_train_batch_size=8, logging_steps=1, report_to=[],
                             save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    callback = DiagCallback(out=tmp_path / "reports", every=20)
    trainer = Trainer(model=model, args=args, train_dataset=Samples(),
                      optimizers=(opt, sched), callbacks=[callback])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return callback.watch


@pytest.mark.parametrize("collapse", [True, False])
def test_transformers_callback_finds_an_lr_that_collapses(tmp_path: Path,
                                                          collapse: bool) -> None:
    w = _hf_train(tmp_path, collapse)
    assert w.result.metrics["steps"] == 64  # 8 batches x 8 epochs, one per optimizer step
    assert w.result.metrics["loss_points"] == 64
    found = [f for f in w.findings if f.message.startswith("LR collapse")]
    assert bool(found) is collapse, [f.message for f in w.findings]
    assert not any(f.message.startswith("leak") for f in w.findings)
    assert (tmp_path / "reports" / "summary.md").exists()
