"""One symbol's model rows for the universe, as a task a worker process can run.

Kept apart from the pipeline's nodes so that a worker imports only the feature code:
the nodes (and ``ai_trade_bot.registry``, ``ai_trade_bot.agents``) import torch and MLflow,
about 0.7 GB per worker process that building features never uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.features.build import build_features, feature_config
from ai_trade_bot.features.frame import model_frame
from ai_trade_bot.training.fanout import one_thread


@dataclass(frozen=True)
class SymbolTask:
    """One symbol's feature build: everything it needs, so it can run in a worker."""

    symbol: str
    code: int  # its symbol_id
    bars: pd.DataFrame  # its own bars (no missing ones)
    cross: pd.DataFrame  # its cross-sectional columns
    targets: pd.DataFrame  # its labels
    excess: pd.DataFrame  # its cross-sectional labels
    features: dict[str, Any]  # params:features without the cross_section block
    timeframe: str
    unlabeled: bool = False  # keep complete feature rows whose label is not known yet


def symbol_rows(task: SymbolTask) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`_symbol_rows` on one thread (see :func:`ai_trade_bot.training.fanout.one_thread`)."""
    with one_thread():
        return _symbol_rows(task)


def _symbol_rows(task: SymbolTask) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One symbol's complete model rows and their labels.

    The rows are what :func:`ai_trade_bot.registry.bundle.model_frame` gives agents (the
    features with the raw bar columns, complete rows only) joined with the cross-sectional
    columns, for rows whose direction and next return are known (all complete feature
    rows with ``unlabeled``), in float32 (half the
    memory of a universe; LightGBM bins its inputs and torch trains in float32 anyway),
    with ``symbol_id``.
    """
    bars = task.bars
    config = feature_config(task.features).resolve(task.timeframe, bars.index[-1] - bars.index[0])
    own = build_features(bars, timeframe=task.timeframe, config=config).join(task.cross)
    X = model_frame(own, bars)
    y = task.targets.join(task.excess).reindex(X.index)
    keep = y[["direction", "next_return"]].notna().all(axis=1).to_numpy() | task.unlabeled
    X = X[keep].astype(np.float32)
    X["symbol_id"] = np.float32(task.code)
    return X, y[keep]
