"""Pattern agent: a CNN over 64x64 candlestick images of the last N candles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from ai_trade_bot.agents.base import BAR_COLUMNS, DIRECTION_COLUMNS, check_hyperparameter
from ai_trade_bot.agents.trend import _DirectionTorchAgent
from ai_trade_bot.nn.networks import CandleCNN

IMAGE_SIZE = 64


def render_candles(ohlc: np.ndarray, window: int, ends: np.ndarray) -> np.ndarray:
    """Rasterise the ``window`` candles ending at each of ``ends`` into 64x64 uint8 images.

    Vectorised over all images at once (no per-image plotting). Each candle gets
    ``64 // window`` columns: the first is the wick (low..high), the rest the body
    (open..close), 255 for a rising candle and 128 for a falling one. Prices are scaled to
    the window's own low..high, so the image is scale-free.

    Args:
        ohlc: (T, 4) open, high, low, close.
        window: Candles per image (at most 64; 32 gives 2 columns per candle).
        ends: Row positions of each image's last candle.

    Returns:
        (len(ends), 64, 64) uint8, row 0 at the top (highest price).
    """
    width = IMAGE_SIZE // window
    idx = ends[:, None] - window + 1 + np.arange(window)[None, :]  # (B, window)
    o, h, lo, c = (ohlc[idx, k] for k in range(4))
    top = h.max(axis=1, keepdims=True)
    bottom = lo.min(axis=1, keepdims=True)
    span = np.where(top > bottom, top - bottom, 1.0)

    def to_row(price: np.ndarray) -> np.ndarray:
        return np.clip(((top - price) / span * (IMAGE_SIZE - 1)).round(), 0, IMAGE_SIZE - 1)

    rows = np.arange(IMAGE_SIZE)[None, :, None]  # (1, 64, 1)
    wick = (rows >= to_row(h)[:, None, :]) & (rows <= to_row(lo)[:, None, :])  # (B, 64, w)
    body_top = to_row(np.maximum(o, c))[:, None, :]
    body_bottom = to_row(np.minimum(o, c))[:, None, :]
    body = (rows >= body_top) & (rows <= body_bottom)
    shade = np.where(c >= o, 255, 128).astype(np.uint8)[:, None, :]
    images = np.zeros((len(ends), IMAGE_SIZE, window, width), dtype=np.uint8)
    images[..., 0] = np.where(wick, shade, 0)
    for k in range(1, width):
        images[..., k] = np.where(body, shade, 0)
    out = np.zeros((len(ends), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    out[:, :, : window * width] = images.reshape(len(ends), IMAGE_SIZE, window * width)
    return out


class PatternCNNAgent(_DirectionTorchAgent):
    """3-class direction from candlestick chart images, with a confidence head."""

    training_defaults = {**_DirectionTorchAgent.training_defaults, "max_epochs": 20}

    name = "pattern"
    output_columns = DIRECTION_COLUMNS
    squeeze = True

    def __init__(
        self,
        window: int = 32,
        channels: int = 16,
        dropout: float = 0.1,
        confidence_weight: float = 0.5,
        class_weight: str = "balanced",
        **training: Any,
    ) -> None:
        check_hyperparameter(
            self.name,
            "window",
            window,
            2 <= window <= IMAGE_SIZE,
            f"must be in [2, {IMAGE_SIZE}] (candles per 64-pixel image)",
        )
        self.channels, self.dropout = channels, dropout
        self.confidence_weight = confidence_weight
        self.class_weight = class_weight
        self._check_class_weight()
        self._init_training(window, training)

    def _select_columns(self, X: pd.DataFrame) -> list[str]:
        missing = [c for c in BAR_COLUMNS[:4] if c not in X.columns]
        if missing:
            raise ValueError(f"agent '{self.name}' needs candle columns {missing}")
        return list(BAR_COLUMNS[:4])

    def _fit_scaler(self, X: pd.DataFrame) -> None:
        # Images are scaled per window by construction; keep identity stats for the record.
        self.mean_ = np.zeros(4, dtype=np.float32)
        self.scale_ = np.ones(4, dtype=np.float32)

    def _input_array(self, ohlc: np.ndarray) -> np.ndarray:
        """(T, 64, 64) float32 images in [0, 1]; rows before the first window are blank."""
        images = np.zeros((len(ohlc), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        ends = np.arange(self.window - 1, len(ohlc))
        images[ends] = render_candles(ohlc, self.window, ends) / np.float32(255.0)
        return images

    def _stream_inputs(self, ohlc: np.ndarray) -> np.ndarray:
        """The last window's image only (the blank rows before it are never read)."""
        image = render_candles(ohlc, self.window, np.array([len(ohlc) - 1]))
        return image / np.float32(255.0)

    def _build_net(self, n_inputs: int) -> nn.Module:
        return CandleCNN(self.channels, self.dropout)

    def onnx_example(self, n: int) -> np.ndarray:
        """Chart images in [0, 1] (the network's input) for the ONNX export check."""
        return np.random.default_rng(20_240_601).random((n, IMAGE_SIZE, IMAGE_SIZE))
