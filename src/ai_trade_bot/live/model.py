"""The runner's model: where it comes from, whether it may trade this feed, its state, and
its outputs for one candle."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import AiTradeBotError
from ai_trade_bot.features.build import LabelConfig
from ai_trade_bot.live.alerts import Alerts
from ai_trade_bot.live.config import RunnerConfig
from ai_trade_bot.live.stream import ModelStream, StreamState
from ai_trade_bot.registry.bundle import Bundle, load_bundle
from ai_trade_bot.strategy.config import StrategyConfig
from ai_trade_bot.strategy.step import DIRECTION

logger = logging.getLogger(__name__)

FALLBACK_HISTORY = 200  # candles the runner keeps without a model


class ModelUnavailableError(AiTradeBotError):
    """The model could not be resolved or loaded; the runner makes no new entries."""


class ModelSource:
    """A bundle from a local directory or an MLflow model URI (``models:/name@alias``);
    the alias is resolved at start and re-checked between candles."""

    def __init__(self, uri: str, tracking_uri: str | None = None) -> None:
        self.uri, self.tracking_uri = uri, tracking_uri

    def _client(self) -> Any:
        import mlflow

        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
        return mlflow.MlflowClient()

    def version(self) -> str:
        """The version the URI points at now (raises ModelUnavailableError)."""
        if not self.uri.startswith("models:/"):
            return f"local:{self.uri}"
        from mlflow.exceptions import MlflowException

        name, _, ref = self.uri[len("models:/") :].partition("@")
        try:
            if ref:
                return str(self._client().get_model_version_by_alias(name, ref).version)
            name, _, number = name.partition("/")
            return str(self._client().get_model_version(name, number).version)
        except (MlflowException, OSError) as exc:
            raise ModelUnavailableError(f"{self.uri}: {exc}") from exc

    def load(self) -> tuple[Bundle, str]:

        version = self.version()
        uri = self.uri
        if uri.startswith("models:/") and "@" in uri:
            uri = f"models:/{uri[len('models:/') :].partition('@')[0]}/{version}"
        try:
            return load_bundle(uri), version
        except Exception as exc:  # a corrupt or unreadable model must not stop the runner
            raise ModelUnavailableError(f"{uri}: cannot load: {type(exc).__name__}: {exc}") from exc


def same_symbol(a: str, b: str) -> bool:
    """Whether two spellings name one market (case and separators aside: ``BTC/USDT``,
    ``btcusdt`` and ``BTC-USDT`` agree)."""
    return re.sub(r"[^A-Z0-9]", "", a.upper()) == re.sub(r"[^A-Z0-9]", "", b.upper())


class ModelKeeper:
    """The model a runner trades: loaded from its source, refused when it was trained for
    another symbol or timeframe, and its state (``ok``, ``none``, ``refused``, ``failing``)
    with one alert when it drops out and one when it comes back (not one per candle or
    per restart: the state is kept with the runner's)."""

    def __init__(
        self,
        source: ModelSource,
        config: RunnerConfig,
        alerts: Alerts,
        *,
        stored_state: str | None,
    ) -> None:
        self.source, self.config, self.alerts = source, config, alerts
        self.bar_length = timeframe_to_timedelta(config.timeframe)
        self.bundle: Bundle | None = None
        self.stream: ModelStream | None = None
        self.version = "none"
        self.state, self.note = stored_state or "new", ""
        self._settings: tuple[Any, StrategyConfig] | None = None
        self._meta_positions: tuple[pd.Index, np.ndarray] | None = None

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model and check it was trained for this feed; any failure means no
        model (no new entries, or the fallback when asked)."""
        self.bundle, self.stream = None, None
        try:
            bundle, version = self.source.load()
        except ModelUnavailableError as exc:
            self.version = "none"
            self.set_state("none", f"no model ({exc})")
            return
        why = self.mismatch(bundle)
        if why:
            self.version = f"refused:{version}"
            self.set_state("refused", f"model {version} refused: {why}")
            return
        self.bundle, self.version = bundle, version
        self.stream = ModelStream(bundle, runtime=self.config.inference)
        self.set_state("ok", "")
        logger.info("model %s loaded: %s, gate %s", version, bundle.method, bundle.gate)

    def mismatch(self, bundle: Bundle) -> str:
        """Why ``bundle`` cannot trade this feed ('' when it can)."""
        mapped = self.config.symbol_map.get(bundle.symbol, bundle.symbol)
        problems = []
        if not same_symbol(mapped, self.config.symbol):
            problems.append(f"trained on {bundle.symbol}, the feed is {self.config.symbol}")
        if timeframe_to_timedelta(bundle.timeframe) != self.bar_length:
            problems.append(
                f"trained on {bundle.timeframe} candles, the feed gives {self.config.timeframe}"
            )
        return "; ".join(problems)

    def moved(self) -> bool:
        """Whether the source points at another version than the one loaded (or refused)
        now; False while it cannot be resolved."""
        try:
            version = self.source.version()
        except ModelUnavailableError:
            return False
        return self.version not in (version, f"refused:{version}")

    # -- state ---------------------------------------------------------------------------------
    def set_state(self, state: str, note: str) -> None:
        """Record the model's state; an alert on each change."""
        previous = self.state
        self.state, self.note = state, note
        if state == previous:
            return
        if state == "ok":
            if previous not in ("new", "ok"):
                self.alerts.send("model_back", f"model {self.version} trading again")
        else:
            self.alerts.send("fallback", f"{note}; trading: {self.trading}")

    @property
    def trading(self) -> str:
        """What decides the targets now."""
        if self.bundle is not None and self.state == "ok":
            return f"model {self.version}"
        if self.config.use_fallback:
            return f"RSI fallback (at most {self.settings.fallback.max_position:g} of equity)"
        return "no new entries (open positions keep their stops and targets)"

    @property
    def settings(self) -> StrategyConfig:
        """The bundle's settings (the configured ones without a model), with the order cap
        tightened to ``max_order_notional`` when that is lower."""
        if self._settings is None or self._settings[0] is not self.bundle:
            settings = self.bundle.strategy if self.bundle is not None else None
            settings = settings or self.config.settings or StrategyConfig()
            cap, engine = self.config.max_order_notional, settings.engine
            if cap is not None and (
                engine.max_order_notional is None or cap < engine.max_order_notional
            ):
                engine = dataclasses.replace(engine, max_order_notional=cap)
                settings = dataclasses.replace(settings, engine=engine)
            self._settings = (self.bundle, settings)
        return self._settings[1]

    @property
    def history_rows(self) -> int:
        """Candles the runner needs before its first decision."""
        return self.bundle.warmup_rows if self.bundle is not None else FALLBACK_HISTORY

    @property
    def window_rows(self) -> int:
        """Candles the runner keeps in its trailing window."""
        return (self.bundle.feature_rows if self.bundle else FALLBACK_HISTORY) + 2

    @property
    def labels(self) -> LabelConfig:
        return self.bundle.labels if self.bundle else LabelConfig()

    # -- one candle ----------------------------------------------------------------------------
    def outputs(
        self, window: pd.DataFrame, carried: StreamState | None, ts: pd.Timestamp
    ) -> tuple[pd.DataFrame | None, pd.Series | None, StreamState | None]:
        """This candle's agent and meta outputs (None: no usable model output), its feature
        row and the stream state after it; the state follows (failing on a NaN, ok after)."""
        if self.stream is None or carried is None:
            return None, None, carried
        return self.judge(*self.stream.step(window, carried), ts)

    def judge(
        self,
        feature_row: pd.Series,
        outputs: pd.DataFrame | None,
        carried: StreamState,
        ts: pd.Timestamp,
    ) -> tuple[pd.DataFrame | None, pd.Series | None, StreamState | None]:
        """:meth:`outputs` after the stream's step (which may run on another thread: the
        state and its alerts change here, on the runner's)."""
        if outputs is None or not np.isfinite(self.meta_values(outputs)[:3]).all():
            self.set_state("failing", f"model {self.version} gave no usable output at {ts}")
            return None, feature_row, carried
        self.set_state("ok", "")
        return outputs, feature_row, carried

    def meta_values(self, outputs: pd.DataFrame | None) -> np.ndarray:
        """The meta-agent's :data:`DIRECTION` outputs of this candle (NaN: none)."""
        if outputs is None:
            return np.full(len(DIRECTION), np.nan)
        cached = self._meta_positions
        if cached is None or cached[0] is not outputs.columns:
            positions = outputs.columns.get_indexer([f"meta.{k}" for k in DIRECTION])
            if (positions < 0).any():
                raise KeyError(f"model outputs lack meta columns {list(DIRECTION)}")
            cached = self._meta_positions = (outputs.columns, positions)
        return outputs.to_numpy(dtype=np.float64)[0, cached[1]]

    @staticmethod
    def votes(outputs: pd.DataFrame | None) -> dict[str, dict[str, float | None]]:
        """Every agent's outputs of this candle, by agent."""
        if outputs is None:
            return {}
        votes: dict[str, dict[str, float | None]] = {}
        for column, value in zip(outputs.columns, outputs.to_numpy()[0], strict=True):
            agent, _, field_name = str(column).partition(".")
            if agent != "meta":
                number = float(value)
                votes.setdefault(agent, {})[field_name] = number if np.isfinite(number) else None
        return votes
