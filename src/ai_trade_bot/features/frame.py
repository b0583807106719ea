"""What agents read: the features joined with the raw bar columns, complete rows only.

Kept apart from ``ai_trade_bot.agents`` and ``ai_trade_bot.registry`` (which import torch
and MLflow) so that a worker building a universe's features imports only feature code.
"""

from __future__ import annotations

import pandas as pd

from ai_trade_bot.data.normalise import OHLCV_COLUMNS

BAR_COLUMNS = tuple(f"bar_{c}" for c in OHLCV_COLUMNS)


def model_frame(features: pd.DataFrame, ohlcv: pd.DataFrame) -> pd.DataFrame:
    """Features joined with the raw candle columns, complete rows only: what agents read."""
    bars = ohlcv.reindex(features.index)[list(OHLCV_COLUMNS)]
    X = features.join(bars.set_axis(list(BAR_COLUMNS), axis=1))
    return X[X.notna().all(axis=1)]
