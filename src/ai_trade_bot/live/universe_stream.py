"""A universe's model rows and the deployed model's outputs, one time step at a time.

Reproduces :meth:`ai_trade_bot.registry.universe_bundle.UniverseBundle.outputs` over the
candles it has seen: each symbol's own features come from the features code on its
trailing window plus carried state (:func:`ai_trade_bot.features.build.update_features`,
what the one-symbol runner streams with); the cross-sectional columns from the panel's
trailing window (every input is a trailing window of each symbol's own bars); then the
rows go to the deployed model (and its scope's meta-agent) as the batch path does.

State is rebuilt from the stored candles on a resume (the features' state after the last
candle is what a batch build over the same history ends with), so nothing but candles
needs to be persisted for it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.errors import ConfigError, DataValidationError
from ai_trade_bot.features.build import (
    FeatureState,
    build_features_with_state,
    feature_config,
    prefit_features,
    stream_rows,
    update_features,
)
from ai_trade_bot.features.cross_section import (
    CROSS_COLUMNS,
    CrossSectionConfig,
    cross_section_last,
)
from ai_trade_bot.features.frame import BAR_COLUMNS
from ai_trade_bot.registry.universe_bundle import UniverseBundle


def unsupported(bundle: UniverseBundle) -> str | None:
    """Why the book cannot stream ``bundle`` (None: it can). The book predicts each
    step's rows alone, as a row-local agent reads them; an agent that reads a window of
    rows or filters over all of them (a per-symbol sequence network, GARCH, HMM) would
    need its symbol's history, which the batch path gives it and the step does not."""
    for scope in bundle.scopes:
        agent = bundle.models.get(scope, {}).get(bundle.agent)
        if agent is not None and not agent.row_local:
            return (
                f"the deployed agent {bundle.agent!r} ({scope}) reads windows of rows or "
                "filters over all of them; the universe book runs row-local agents only "
                "(train.universe_agents, e.g. gbm)"
            )
    return None


class UniverseStream:
    """See the module docstring."""

    def __init__(self, bundle: UniverseBundle) -> None:
        reason = unsupported(bundle)
        if reason is not None:
            raise ConfigError(f"live universe: {reason}")
        self.bundle = bundle
        block = dict(bundle.features)
        self.cross = parse_config(
            CrossSectionConfig, block.pop("cross_section", {}), name="features.cross_section"
        )
        self.config = feature_config(block)
        self.timeframe = bundle.timeframe
        self.rows = stream_rows(self.config, self.timeframe)
        self.cross_rows = 2 * self.cross.warmup + 2  # panel times the cross section reads
        self.codes = {s: i for i, s in enumerate(sorted(bundle.symbols))}
        self.states: dict[str, FeatureState] = {}
        self.windows: dict[str, pd.DataFrame] = {}
        self.panel: dict[str, pd.DataFrame] = {}
        self.columns: pd.Index | None = None
        self.model_columns: pd.Index | None = None
        self._positions: tuple[pd.Index, np.ndarray] | None = None
        self.seconds = {"features": 0.0, "model": 0.0}

    @property
    def warmup_rows(self) -> int:
        return max(self.rows, self.config.warmup) + 1

    def start(self, candles: pd.DataFrame) -> None:
        """The state after ``candles`` (long: ``timestamp, symbol, OHLCV, missing``)."""
        from ai_trade_bot.universe.panel import from_long, symbol_frame

        panel = from_long(candles)
        for symbol in self.bundle.symbols:
            bars = symbol_frame(panel, symbol)[list(OHLCV_COLUMNS)]
            if len(bars) < self.config.warmup + 1:
                raise DataValidationError(
                    f"live universe: {symbol} has {len(bars)} candles of history; its "
                    f"features need {self.config.warmup + 1}"
                )
            features, state = build_features_with_state(
                bars, timeframe=self.timeframe, config=self.config
            )
            self.states[symbol] = state
            self.windows[symbol] = bars.iloc[-self.rows :]
            if self.columns is None:
                self.columns = features.columns
                self.model_columns = pd.Index(
                    [*features.columns, *CROSS_COLUMNS, *BAR_COLUMNS, "symbol_id"]
                )
        self.panel = {k: v.iloc[-self.cross_rows :] for k, v in panel.items()}

    def step(self, ts: pd.Timestamp, candles: dict[str, np.ndarray | None]) -> pd.DataFrame:
        """Time ``ts`` with each symbol's candle (OHLCV; None: no candle at ``ts``): the
        deployed model's outputs (long rows) for the symbols with complete rows.

        A row is what the batch path stacks (:func:`ai_trade_bot.universe.rows._symbol_rows`:
        the symbol's features, the cross-sectional columns, the bar, ``symbol_id``; kept
        when no value is NaN), built on arrays for every symbol at once."""
        started = time.perf_counter()
        own_rows = {}
        for symbol in self.bundle.symbols:
            values = candles.get(symbol)
            if values is None:
                continue
            window = self.windows[symbol]
            block = np.vstack([window.to_numpy(dtype=np.float64)[1 - self.rows :], values])
            index = window.index[1 - self.rows :].append(pd.DatetimeIndex([ts]))
            window = pd.DataFrame(block, index=index, columns=window.columns)
            row, self.states[symbol] = update_features(
                window, self.states[symbol], timeframe=self.timeframe, config=self.config
            )
            self.windows[symbol] = window
            if self._positions is None or self._positions[0] is not row.index:
                self._positions = (row.index, row.index.get_indexer(self.columns))
            own_rows[symbol] = row.to_numpy()[self._positions[1]]
        self._extend_panel(ts, candles)
        cross = cross_section_last(self.panel, self.cross)
        rows, keys = [], []
        for symbol, features in own_rows.items():
            if symbol not in cross:
                continue
            bar = np.asarray(candles[symbol], dtype=np.float64)
            full = np.concatenate([features, cross[symbol], bar])
            if np.isnan(full).any():
                continue
            rows.append(np.append(full, self.codes[symbol]))
            keys.append((ts, symbol))
        self.seconds["features"] = time.perf_counter() - started
        if not rows:
            return pd.DataFrame()
        from ai_trade_bot.evaluation.universe import predict_scopes

        X = pd.DataFrame(
            np.vstack(rows).astype(np.float32),
            index=pd.MultiIndex.from_tuples(keys, names=["timestamp", "symbol"]),
            columns=self.model_columns,
        )
        out = predict_scopes(X, self.bundle.models, ts, self.bundle.scopes)
        out = out[out["agent"] == self.bundle.agent].reset_index(drop=True)
        self.seconds["model"] = time.perf_counter() - started - self.seconds["features"]
        return out

    def prefit(self) -> None:
        """Between steps: each symbol's next GARCH refit made ahead, when its next candle
        is a refit point (:func:`ai_trade_bot.features.build.prefit_features`; the next
        step gives the same values, sooner)."""
        for symbol, window in self.windows.items():
            self.states[symbol] = prefit_features(
                window, self.states[symbol], timeframe=self.timeframe, config=self.config
            )

    def _extend_panel(self, ts: pd.Timestamp, candles: dict[str, np.ndarray | None]) -> None:
        """One more time in the trailing panel (a symbol without a candle: missing); the
        frames are rebuilt from their arrays (a ``pd.concat`` per field cost ~0.3 ms)."""
        close = self.panel["close"]
        symbols = list(close.columns)
        index = close.index.append(pd.DatetimeIndex([ts], name=close.index.name))
        index = index[-self.cross_rows :]
        for k, field in enumerate(OHLCV_COLUMNS):
            row = [np.nan if candles.get(s) is None else float(candles[s][k]) for s in symbols]
            self.panel[field] = self._appended(self.panel[field], np.array(row), index)
        missing = np.array([candles.get(s) is None for s in symbols])
        self.panel["missing"] = self._appended(self.panel["missing"], missing, index)

    def _appended(self, frame: pd.DataFrame, row: np.ndarray, index: pd.Index) -> pd.DataFrame:
        values = np.concatenate([frame.to_numpy(), row[None, :]])[-self.cross_rows :]
        return pd.DataFrame(values, index=index, columns=frame.columns)
