"""Lightning callbacks of the shared training loop."""

from __future__ import annotations

import copy

import pytorch_lightning as pl
import torch


class BestWeights(pl.Callback):
    """Keep the weights of the epoch with the lowest ``val/loss`` (in memory)."""

    def __init__(self) -> None:
        self.best = float("inf")
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch = -1

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule):
        if trainer.sanity_checking:
            return
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and float(loss) < self.best:
            self.best = float(loss)
            self.epoch = trainer.current_epoch
            self.state = copy.deepcopy(pl_module.net.state_dict())
