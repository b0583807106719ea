"""Trend agents: an LSTM and a Transformer over windows of candles x features."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ai_trade_bot.agents.base import (
    DIRECTION_COLUMNS,
    check_hyperparameter,
    direction_frame,
    feature_columns,
)
from ai_trade_bot.agents.torch_agent import TorchAgent
from ai_trade_bot.nn.networks import LSTMNet, TransformerNet


class _DirectionTorchAgent(TorchAgent):
    """Direction agents: target ``direction``; outputs softmax probs and the confidence."""

    output_kind = "direction"
    output_columns = DIRECTION_COLUMNS
    task = "direction"

    def _select_columns(self, X: pd.DataFrame) -> list[str]:
        return feature_columns(X)

    def _targets(self, X: pd.DataFrame, y: pd.DataFrame) -> np.ndarray:
        return self._check_labels(y, "direction").astype(np.int64)

    def _check_class_weight(self) -> None:
        check_hyperparameter(
            self.name,
            "class_weight",
            self.class_weight,
            self.class_weight in ("none", "balanced"),
            "must be 'none' or 'balanced' (inverse class frequency of the fit rows)",
        )

    def _prepare(self, X: pd.DataFrame, y: pd.DataFrame, fit_rows: int) -> None:
        """Class weights from the fit rows when ``class_weight='balanced'`` (a network that
        sees one class far more often otherwise learns to predict only that class)."""
        self._loss_weights: list[float] | None = None
        if self.class_weight == "balanced":
            labels = self._check_labels(y, "direction")[:fit_rows].astype(int)
            counts = np.bincount(labels, minlength=3)
            self._loss_weights = (len(labels) / (3.0 * np.maximum(counts, 1))).tolist()

    def _module_kwargs(self) -> dict[str, Any]:
        return {
            "confidence_weight": self.confidence_weight,
            "class_weights": getattr(self, "_loss_weights", None),
        }

    def _outputs(self, raw: Any, X: pd.DataFrame) -> pd.DataFrame:
        return direction_frame(*self._direction(raw))

    @staticmethod
    def _direction(raw: Any) -> tuple[np.ndarray, np.ndarray]:
        """Softmax probabilities and the sigmoid confidence of the two heads' outputs."""
        logits, conf = raw
        probs = torch.from_numpy(logits).double().softmax(-1).numpy()
        return probs, 1.0 / (1.0 + np.exp(-conf.astype(np.float64)))

    def predict_next_values(
        self, values: np.ndarray, columns: pd.Index, index: pd.Index, state: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        selected = self._stream_rows(values, columns, index, self.window)
        raw = self._forward_last(self._stream_inputs(selected))
        return self._calibrated(*self._direction(raw))[-1], state


class TrendLSTMAgent(_DirectionTorchAgent):
    """LSTM with a signal head (3 classes) and a confidence head."""

    name = "trend_lstm"

    def __init__(
        self,
        window: int = 64,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.1,
        confidence_weight: float = 0.5,
        class_weight: str = "none",
        **training: Any,
    ) -> None:
        self.hidden, self.layers, self.dropout = hidden, layers, dropout
        self.confidence_weight = confidence_weight
        self.class_weight = class_weight
        self._check_class_weight()
        self._init_training(window, training)

    def _build_net(self, n_inputs: int) -> nn.Module:
        return LSTMNet(n_inputs, self.hidden, self.layers, self.dropout)


class TrendTransformerAgent(_DirectionTorchAgent):
    """Transformer encoder (positional encoding, multi-head attention) with the two heads."""

    training_defaults = {**_DirectionTorchAgent.training_defaults, "lr": 5e-4}

    name = "trend_transformer"

    def __init__(
        self,
        window: int = 64,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
        confidence_weight: float = 0.5,
        class_weight: str = "none",
        **training: Any,
    ) -> None:
        self.d_model, self.heads, self.layers, self.dropout = d_model, heads, layers, dropout
        self.confidence_weight = confidence_weight
        self.class_weight = class_weight
        self._check_class_weight()
        self._init_training(window, training)

    def _build_net(self, n_inputs: int) -> nn.Module:
        return TransformerNet(
            n_inputs, self.window, self.d_model, self.heads, self.layers, self.dropout
        )
