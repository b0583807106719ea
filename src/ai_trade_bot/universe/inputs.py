"""A universe's model rows from its aligned candles: what the pipeline trains on and what
a universe bundle recomputes to predict (one function, so both see the same rows)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features.build import LabelConfig, labels_for
from ai_trade_bot.features.cross_section import (
    CROSS_COLUMNS,
    CrossSectionConfig,
    cross_section_features,
    cross_section_labels,
)
from ai_trade_bot.training.fanout import ExecutorConfig, iter_tasks
from ai_trade_bot.training.pooled import Stacker
from ai_trade_bot.universe.panel import from_long, symbol_frame
from ai_trade_bot.universe.rows import SymbolTask, symbol_rows

logger = logging.getLogger(__name__)


def universe_inputs(
    candles: pd.DataFrame,
    features: dict[str, Any],
    labels: dict[str, Any],
    timeframe: str,
    *,
    executor: ExecutorConfig | None = None,
    unlabeled: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Each symbol's own features on its own bars, the cross-sectional columns, labels
    (direction and next return per symbol; the excess over the basket and its rank).

    The symbols' features are built on ``executor`` (default: in this process), one task
    per symbol; each symbol's rows are placed in the stacked frame as they arrive.
    ``unlabeled`` keeps the complete feature rows whose label is not known yet (the last
    bars: what a live bundle predicts on).

    Returns:
        the stacked model input and labels, indexed by (timestamp, symbol), and the
        feature manifest.
    """
    block = dict(features)
    cross = parse_config(
        CrossSectionConfig, block.pop("cross_section", {}), name="features.cross_section"
    )
    label_config = parse_config(LabelConfig, labels, name="labels")
    panel = from_long(candles)
    cs = cross_section_features(panel, cross)
    symbols = sorted(panel["close"].columns)
    codes = {s: i for i, s in enumerate(symbols)}
    bars = {s: symbol_frame(panel, s) for s in symbols}
    targets = {s: labels_for(bars[s], label_config) for s in symbols}
    excess = cross_section_labels({s: t["next_return"] for s, t in targets.items()}, panel, cross)
    tasks = [
        SymbolTask(
            s, codes[s], bars[s], cs.pop(s), targets.pop(s), excess.pop(s), block, timeframe,
            unlabeled,
        )
        for s in symbols
    ]  # fmt: skip
    # the first symbol is built here: its columns lay out the stacked frames
    probe = symbol_rows(tasks[0])
    indexes = {s: bars[s].index for s in symbols}
    del bars
    # float32: half the memory of a universe (LightGBM bins its inputs and torch trains in
    # float32 anyway)
    inputs = Stacker(indexes, probe[0].columns, np.float32)
    outputs = Stacker(indexes, probe[1].columns, np.float64)
    rows_per_symbol = {}
    results = iter_tasks(symbol_rows, tasks[1:], executor or ExecutorConfig(None, 1))
    for symbol, (X, y) in zip(symbols, itertools.chain([probe], results), strict=True):
        inputs.put(symbol, X)
        outputs.put(symbol, y)
        rows_per_symbol[symbol] = len(X)
        del X, y  # placed: the next symbol's rows may arrive
    X = inputs.frame()
    y = outputs.frame()
    del inputs, outputs
    if X.empty:
        raise DataValidationError("universe: no complete feature rows with labels")
    manifest = {
        "symbols": sorted(codes),
        "symbol_ids": codes,
        "rows": len(X),
        "rows_per_symbol": rows_per_symbol,
        "n_features": X.shape[1],
        "cross_section_columns": list(CROSS_COLUMNS),
        "cross_section": dataclasses.asdict(cross),
    }
    logger.info("universe features: %d rows x %d columns over %d symbols", *X.shape, len(codes))
    return X, y, manifest
