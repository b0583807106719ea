"""Features, agents and the meta-agent for one new candle at a time.

The stream reproduces :meth:`ai_trade_bot.registry.bundle.Bundle.predict` over the candles it has
seen: features come from the features code on a trailing window plus the carried state of
what depends on all history (the drawdown peak, the GARCH schedule and filter); each agent
streams through its own ``predict_next`` (the HMM forward filter and the volatility
agent's GARCH filter carry their state); the meta-agent is row by row. Candles whose
features are incomplete are skipped by the agents, as the batch path drops them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents.base import BAR_COLUMNS
from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features.build import (
    FeatureState,
    build_features_with_state,
    prefit_features,
    update_features,
)
from ai_trade_bot.modeling.meta import OUTPUT_COLUMNS as META_COLUMNS
from ai_trade_bot.registry.bundle import Bundle


@dataclass
class StreamState:
    """What a stream carries from candle to candle (JSON-able through ``to_dict``)."""

    features: FeatureState
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the last complete model-input rows (feature columns, then the candle's), newest last
    values: np.ndarray | None = None
    index: pd.Index | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features.to_dict(), "agents": self.agents}


class ModelStream:
    """See the module docstring."""

    def __init__(self, bundle: Bundle, runtime: str = "torch") -> None:
        self.bundle = bundle
        # the networks' runtime: onnx (ONNX Runtime, where the bundle has an export) or
        # torch (the backtest's float64 path: exact parity)
        self.runtimes = {
            name: agent.use_runtime(runtime) if hasattr(agent, "use_runtime") else "native"
            for name, agent in bundle.agents.items()
        }
        self.columns = list(bundle.feature_columns)
        # one Index object for every call: agents keep their column positions
        self.model_columns = pd.Index([*self.columns, *BAR_COLUMNS])
        self._column_index = pd.Index(self.columns)
        self.keep = max(a.min_history for a in bundle.agents.values())
        self.seconds: dict[str, float] = {"features": 0.0, "agents": 0.0}  # the last step
        self._positions: tuple[pd.Index, np.ndarray] | None = None
        # where each agent's outputs go in the one output row, then the meta-agent's
        slots, names, start = [], [], 0
        for name, agent in bundle.agents.items():
            width = len(agent.output_columns)
            slots.append((name, agent, slice(start, start + width)))
            names += [f"{name}.{column}" for column in agent.output_columns]
            start += width
        self._slots = slots
        self._agent_columns = pd.Index(names)
        self.output_columns = pd.Index([*names, *(f"meta.{c}" for c in META_COLUMNS)])

    # -- start, restore ---------------------------------------------------------------
    def start(self, history: pd.DataFrame) -> StreamState:
        """State after ``history`` (the candles before the first streamed one)."""
        bundle = self.bundle
        if len(history) < bundle.warmup_rows:
            raise DataValidationError(
                f"live: {len(history)} candles of history; the bundle needs "
                f"{bundle.warmup_rows} before its first decision."
            )
        frame, features = build_features_with_state(
            history, timeframe=bundle.timeframe, config=bundle.features
        )
        context = self._model_rows(frame[self.columns], history)
        states = {name: a.start_stream(context) for name, a in bundle.agents.items()}
        return self._state(features, states, context)

    def restore(
        self, carry: dict[str, Any], feature_rows: pd.DataFrame, candles: pd.DataFrame
    ) -> StreamState:
        """A state saved by :meth:`StreamState.to_dict`, with the stored feature rows."""
        context = self._model_rows(feature_rows[self.columns], candles)
        return self._state(FeatureState.from_dict(carry["features"]), carry["agents"], context)

    def _state(
        self, features: FeatureState, agents: dict[str, Any], context: pd.DataFrame
    ) -> StreamState:
        kept = context.iloc[-self.keep :]
        return StreamState(features, agents, kept.to_numpy(dtype=np.float64), kept.index)

    def context(self, state: StreamState) -> pd.DataFrame:
        """The model-input rows a state keeps, as a frame."""
        return pd.DataFrame(state.values, index=state.index, columns=self.model_columns)

    def _append(
        self, state: StreamState, values: np.ndarray, at: pd.Index
    ) -> tuple[np.ndarray, pd.Index]:
        """The last ``keep`` model-input rows after appending one."""
        earlier = 0 if state.values is None else min(len(state.values), self.keep - 1)
        if earlier == 0:
            return values[None, :], at
        block = np.concatenate([state.values[len(state.values) - earlier :], values[None, :]])
        return block, state.index[len(state.index) - earlier :].append(at)

    def _model_rows(self, features: pd.DataFrame, candles: pd.DataFrame) -> pd.DataFrame:
        bars = candles.reindex(features.index)[list(OHLCV_COLUMNS)]
        X = features.join(bars.set_axis(list(BAR_COLUMNS), axis=1))
        return X[X.notna().all(axis=1)].set_axis(self.model_columns, axis=1)

    def prefit(self, window: pd.DataFrame, state: StreamState) -> StreamState:
        """After the newest candle of ``window`` is done: the next candle's GARCH refit,
        made now (the next :meth:`step` gives the same values, sooner)."""
        features = prefit_features(
            window, state.features, timeframe=self.bundle.timeframe, config=self.bundle.features
        )
        if features is state.features:
            return state
        return dataclasses.replace(state, features=features)

    def contributions(self, outputs: pd.DataFrame) -> dict[str, float]:
        """Each direction agent's contribution to this candle's meta edge (see
        :meth:`ai_trade_bot.modeling.meta.MetaAgent.contributions`)."""
        n = len(self._agent_columns)
        values = outputs.to_numpy(dtype=np.float64)[0, :n]
        return self.bundle.meta.contributions(values, self._agent_columns)

    # -- one candle ----------------------------------------------------------------------
    def step(
        self, window: pd.DataFrame, state: StreamState
    ) -> tuple[pd.Series, pd.DataFrame | None, StreamState]:
        """The newest candle of ``window``: its feature row, the agents' and meta-agent's
        outputs (None when its features are incomplete) and the state after it."""
        bundle = self.bundle
        started = time.perf_counter()
        row, features = update_features(
            window, state.features, timeframe=bundle.timeframe, config=bundle.features
        )
        self.seconds["features"] = time.perf_counter() - started
        if self._positions is None or self._positions[0] is not row.index:
            self._positions = (row.index, row.index.get_indexer(self.columns))
        row = pd.Series(row.to_numpy()[self._positions[1]], index=self._column_index, name=row.name)
        candle = window.iloc[-1:, window.columns.get_indexer(OHLCV_COLUMNS)].to_numpy(
            dtype=np.float64
        )
        values = np.concatenate([row.to_numpy(), candle[0]])
        if not np.isfinite(values).all():
            return row, None, dataclasses.replace(state, features=features)
        at = window.index[-1:]
        context, index = self._append(state, values, at)
        out = np.empty(len(self.output_columns))
        agents = {}
        for name, agent, slot in self._slots:
            out[slot], agents[name] = agent.predict_next_values(
                context, self.model_columns, index, state.agents[name]
            )
        n = len(self._agent_columns)
        out[n:] = bundle.meta.predict_values(out[None, :n], self._agent_columns)[0]
        outputs = pd.DataFrame(out[None, :], index=at, columns=self.output_columns)
        self.seconds["agents"] = time.perf_counter() - started - self.seconds["features"]
        return row, outputs, StreamState(features, agents, context, index)
