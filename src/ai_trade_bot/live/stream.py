"""Features, agents and the meta-agent for one new candle at a time.

The stream reproduces :meth:`ai_trade_bot.bundle.Bundle.predict` over the candles it has
seen: features come from the features code on a trailing window plus the carried state of
what depends on all history (the drawdown peak, the GARCH schedule and filter); each agent
streams through its own ``predict_next`` (the HMM forward filter and the volatility
agent's GARCH filter carry their state); the meta-agent is row by row. Candles whose
features are incomplete are skipped by the agents, as the batch path drops them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents.base import BAR_COLUMNS
from ai_trade_bot.bundle import Bundle
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features.build import FeatureState, build_features_with_state, update_features


@dataclass
class StreamState:
    """What a stream carries from candle to candle (JSON-able through ``to_dict``)."""

    features: FeatureState
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    context: pd.DataFrame | None = None  # the last complete model-input rows

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features.to_dict(), "agents": self.agents}


class ModelStream:
    """See the module docstring."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.columns = list(bundle.feature_columns)
        self.model_columns = [*self.columns, *BAR_COLUMNS]
        self.keep = max(a.min_history for a in bundle.agents.values())
        self.seconds: dict[str, float] = {"features": 0.0, "agents": 0.0}  # the last step

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
        return self._with_agents(features, context)

    def restore(
        self, carry: dict[str, Any], feature_rows: pd.DataFrame, candles: pd.DataFrame
    ) -> StreamState:
        """A state saved by :meth:`StreamState.to_dict`, with the stored feature rows."""
        context = self._model_rows(feature_rows[self.columns], candles)
        return StreamState(
            FeatureState.from_dict(carry["features"]),
            carry["agents"],
            context.iloc[-self.keep :],
        )

    def _with_agents(self, features: FeatureState, context: pd.DataFrame) -> StreamState:
        states = {name: a.start_stream(context) for name, a in self.bundle.agents.items()}
        return StreamState(features, states, context.iloc[-self.keep :])

    def _model_rows(self, features: pd.DataFrame, candles: pd.DataFrame) -> pd.DataFrame:
        bars = candles.reindex(features.index)[["open", "high", "low", "close", "volume"]]
        X = features.join(bars.set_axis(list(BAR_COLUMNS), axis=1))
        return X[X.notna().all(axis=1)]

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
        row = row[self.columns]
        candle = window.iloc[-1]
        values = np.concatenate([row.to_numpy(), candle[list(_OHLCV)].to_numpy()])
        if not np.isfinite(values).all():
            return row, None, StreamState(features, state.agents, state.context)
        new = pd.DataFrame([values], index=window.index[-1:], columns=self.model_columns)
        context = pd.concat([state.context, new]) if state.context is not None else new
        context = context.iloc[-self.keep :]
        parts, agents = [], {}
        for name, agent in bundle.agents.items():
            out, agents[name] = agent.predict_next(context, state.agents[name])
            parts.append(out.add_prefix(f"{name}."))
        outputs = pd.concat(parts, axis=1)
        outputs = outputs.join(bundle.meta.predict(outputs).add_prefix("meta."))
        self.seconds["agents"] = time.perf_counter() - started - self.seconds["features"]
        return row, outputs, StreamState(features, agents, context)


_OHLCV = ("open", "high", "low", "close", "volume")
