"""Plain ``nn.Module`` networks; training lives in :class:`ai_trade_bot.nn.module.AgentModule`."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class TwoHeads(nn.Module):
    """Signal head (3-class logits) and confidence head (logit of "the signal is right")."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.signal = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 3))
        self.confidence = nn.Sequential(
            nn.Linear(width + 3, width // 2 or 1), nn.GELU(), nn.Linear(width // 2 or 1, 1)
        )

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.signal(h)
        conf = self.confidence(torch.cat([h, logits.detach().softmax(-1)], dim=-1))
        return logits, conf.squeeze(-1)


class LSTMNet(nn.Module):
    """LSTM over (B, window, features); the last hidden state feeds both heads."""

    def __init__(self, n_features: int, hidden: int = 64, layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.heads = TwoHeads(hidden, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.lstm(x)
        return self.heads(out[:, -1])


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal positional encoding (Vaswani et al., 2017)."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.size(1)]


class TransformerNet(nn.Module):
    """Transformer encoder over (B, window, features); the last position feeds both heads."""

    def __init__(
        self,
        n_features: int,
        window: int,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(n_features, d_model)
        self.pos = PositionalEncoding(d_model, window)
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=2 * d_model,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.heads = TwoHeads(d_model, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(self.pos(self.proj(x)))
        return self.heads(h[:, -1])


class MLP(nn.Module):
    """A small MLP from (B, 1, features) or (B, features) to ``out`` values."""

    def __init__(self, n_features: int, hidden: int = 32, out: int = 1, dropout: float = 0.1):
        super().__init__()
        self.out = out
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.size(0), -1)
        # the float64 CPU path is prediction (see TorchAgent._forward_windows); training and
        # Lightning's validation steps run in float32 or lower, on any device
        predicting = not self.training and x.dtype == torch.float64 and x.device.type == "cpu"
        y = rowwise_forward(self.body, x) if predicting else self.body(x)
        return y.squeeze(-1) if self.out == 1 else y


def rowwise_forward(body: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``body(x)`` for a stack of Linear, GELU and Dropout layers at inference, computed so
    that one row's output does not depend on the rows computed with it.

    Written by hand because torch does not promise it: a matrix product picks its kernel
    (and its rounding) by the number of rows, and GELU's vectorised loop rounds
    differently from its scalar tail, so a row scored alone (the live runner) and the same
    row in a batch (the backtest) differed in the last bits, which a stacking meta-agent
    then carried into its own outputs. Here each Linear is an elementwise product summed
    over the inputs and GELU is the exact erf form, both in numpy, row by row in effect."""
    from scipy.special import erf

    h = x.detach().cpu().numpy().astype(np.float64, copy=False)
    for layer in body:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().cpu().numpy().astype(np.float64, copy=False)
            h = (h[:, None, :] * weight[None, :, :]).sum(axis=2)
            if layer.bias is not None:
                h = h + layer.bias.detach().cpu().numpy()
        elif isinstance(layer, nn.GELU) and layer.approximate == "none":
            h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
        elif not isinstance(layer, nn.Dropout):  # (Dropout is the identity at inference)
            raise TypeError(f"rowwise_forward: no row-invariant form of {layer!r}")
    return torch.from_numpy(h)


class CandleCNN(nn.Module):
    """A small CNN over (B, 64, 64) candlestick images, with the two heads.

    The convolutions end on a 4 x 4 map, not a global average: where a pattern sits
    matters (the right edge holds the latest candles), and averaging it away left the
    network nothing to tell the classes apart by, so it predicted one class.
    """

    def __init__(self, channels: int = 16, dropout: float = 0.1, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * channels, 2 * channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d((4, 4)),
            nn.Flatten(),
            nn.Dropout(max(dropout, 0.3)),
            nn.Linear(2 * channels * 16, hidden),
            nn.GELU(),
        )
        self.heads = TwoHeads(hidden, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.body(x.to(self.body[0].weight.dtype).unsqueeze(1)))
