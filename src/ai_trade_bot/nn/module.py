"""The single LightningModule that trains every torch agent (one ``model_step``)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from ai_trade_bot.modeling.scoring import qlike_terms

TASKS = ("direction", "volatility", "regime")


def qlike(pred_log_var: torch.Tensor, target_var: torch.Tensor) -> torch.Tensor:
    """QLIKE (:func:`ai_trade_bot.modeling.scoring.qlike_terms`) with pred given as log
    variance."""
    return qlike_terms((target_var * torch.exp(-pred_log_var)).clamp_min(1e-12)).mean()


class AgentModule(pl.LightningModule):
    """Wraps a plain ``nn.Module`` and trains it for one of three tasks.

    - ``direction``: the net returns ``(logits[B,3], confidence_logit[B])``; loss is
      cross-entropy plus ``confidence_weight`` times BCE of the confidence head against
      "the signal head's arg-max is correct" (detached).
    - ``volatility``: the net returns a log-variance correction; targets are
      ``(log_var_baseline, realized_var)`` and the loss is MSE in logs or QLIKE.
    - ``regime``: the net returns logits; targets are class indices.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        task: str,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        confidence_weight: float = 0.5,
        vol_loss: str = "log_mse",
        class_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.net = net
        self.task = task
        self.lr, self.weight_decay = lr, weight_decay
        self.confidence_weight = confidence_weight
        self.vol_loss = vol_loss
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, x: torch.Tensor):
        return self.net(x)

    def model_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Loss and metrics for one batch; shared by training, validation and test."""
        x, y = batch
        out: dict[str, torch.Tensor] = {}
        if self.task == "direction":
            logits, conf_logit = self.net(x)
            target = y.long()
            ce = F.cross_entropy(logits.float(), target, weight=self.class_weights)
            correct = (logits.argmax(dim=-1) == target).float()
            bce = F.binary_cross_entropy_with_logits(conf_logit.float(), correct)
            out["loss"] = ce + self.confidence_weight * bce
            out["ce"] = ce
            out["acc"] = correct.mean()
        elif self.task == "volatility":
            pred = self.net(x).float() + y[:, 0]  # baseline log-variance + correction
            target_var = y[:, 1]
            if self.vol_loss == "qlike":
                out["loss"] = qlike(pred, target_var)
            else:
                out["loss"] = F.mse_loss(pred, torch.log(target_var.clamp_min(1e-12)))
        else:
            logits = self.net(x).float()
            target = y.long()
            out["loss"] = F.cross_entropy(logits, target)
            out["acc"] = (logits.argmax(dim=-1) == target).float().mean()
        return out

    def _log_step(self, stage: str, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        out = self.model_step(batch)
        for key, value in out.items():
            self.log(
                f"{stage}/{key}",
                value,
                prog_bar=key == "loss",
                batch_size=len(batch[0]),
                on_step=False,
                on_epoch=True,
            )
        return out["loss"]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._log_step("train", batch)

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._log_step("val", batch)

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._log_step("test", batch)

    def predict_step(self, batch, batch_idx: int):
        return self.net(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
