"""The live runner: one closed candle at a time, from a feed to durable state.

Per closed candle, in one SQLite transaction:

0. the candle is checked (:class:`ai_trade_bot.live.guard.CandleGuard`: the ingestion
   rules and a strictly later time); a bad one is quarantined with the rule's name and an
   alert, and touches nothing else;
1. the execution core (:class:`ai_trade_bot.backtest.engine.ExecutionCore`, the rules
   the backtest runs) fills the position clamped at the previous close at this candle's
   open, with the backtest's costs, stops and targets; a step that would leave the state
   non-finite is not committed (the candle is quarantined and new entries halt);
2. features, agents and the meta-agent (:class:`ai_trade_bot.live.stream.ModelStream`,
   the features code with carried state) give this candle's outputs;
3. the strategy step (:func:`ai_trade_bot.strategy.step.decide_targets`, the one
   ``evaluate`` backtests) turns them into a target, which the risk clamp
   (:func:`ai_trade_bot.backtest.engine.clamp_target`) limits before anything is ordered;
4. the order for the change (deterministic client ids, UNIQUE, written before it is
   sent), fills, position, cash and equity, the decision with every agent's vote, and the
   state to resume from.

Without a usable model (no champion, a load failure, a bundle trained on another symbol
or timeframe, a NaN output) the runner makes no new entries: an open position keeps its
stops and targets. The RSI fallback trades only when asked (``use_fallback``), at most
``fallback.max_position``. Each drop-out and each return of the model raises one alert.

With real orders (``mode='live'``) the order goes to the exchange after the commit and is
sized toward the clamped target from the position the exchange reported, never from the
paper shadow; the shadow books a fill only for an order the exchange reported filled. At
start the runner reconciles: orders that never reached the exchange are cancelled and
marked, open ones are cancelled, the position is the sum of the exchange's fills, and at
most one order goes out toward the current clamped target.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.engine import (
    S_CASH,
    S_ENTRY_PX,
    S_EQUITY,
    S_PEAK,
    S_UNITS,
    STATE_SIZE,
    ExecutionCore,
    clamp_reasons,
    expected_day,
)
from ai_trade_bot.config import parse_config
from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import AiTradeBotError, ConfigError
from ai_trade_bot.features.build import LabelConfig
from ai_trade_bot.features.labels import label_arrays
from ai_trade_bot.live.alerts import Alerts
from ai_trade_bot.live.broker import CcxtBroker, client_order_id, signed_filled
from ai_trade_bot.live.feeds import FeedEvent
from ai_trade_bot.live.guard import CandleGuard
from ai_trade_bot.live.store import StateStore, ts_int, ts_of
from ai_trade_bot.live.stream import ModelStream, StreamState
from ai_trade_bot.registry.bundle import Bundle, load_bundle
from ai_trade_bot.strategy.config import StrategyConfig
from ai_trade_bot.strategy.step import DIRECTION, atr_and_rsi, decide_targets

logger = logging.getLogger(__name__)

_DAY_NS = 86_400_000_000_000
_OHLCV = ("open", "high", "low", "close", "volume")
FALLBACK_HISTORY = 200  # candles the RSI fallback keeps without a model
# limits whose binding an operator hears of (the others shape sizes every day)
_ALERTED_LIMITS = ("drawdown_breaker", "daily_loss", "trades_per_day", "max_order_notional")
# exchange order states that mean the order reached the exchange
_SENT = ("open", "closed", "canceled", "cancelled", "expired", "rejected")


class ModelUnavailableError(AiTradeBotError):
    """The model could not be resolved or loaded; the runner makes no new entries."""


class NonFiniteStateError(AiTradeBotError):
    """An execution step would leave cash, units or equity non-finite."""


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


@dataclass(frozen=True)
class LiveConfig:
    """``params:live`` (conf/base/parameters_live.yml, conf/local over it): what the live
    command adds to a bundle's own settings. The command line overrides each key."""

    max_order_notional: float | None = None  # quote currency; required with --live
    fallback: str = "none"  # none | rsi: what trades where no model output is usable
    symbol_map: dict[str, str] = field(default_factory=dict)  # model symbol -> market
    api_hosts: list[str] = field(default_factory=list)  # Host names the API answers too

    def __post_init__(self) -> None:
        if self.fallback not in ("none", "rsi"):
            raise ValueError(f"fallback must be none or rsi, got {self.fallback!r}")
        if self.max_order_notional is not None and not self.max_order_notional > 0:
            raise ValueError(
                f"max_order_notional must be > 0 (quote currency) or null, got "
                f"{self.max_order_notional}"
            )

    @classmethod
    def parse(cls, block: dict[str, Any] | None) -> LiveConfig:
        return parse_config(cls, block, name="live")


@dataclass
class RunnerConfig:
    """How the runner runs (from the command line)."""

    symbol: str
    timeframe: str
    mode: str = "paper"  # paper | live
    reload_check_seconds: float = 30.0
    settings: StrategyConfig | None = None  # costs, limits and fallback without a model
    # candles of history to start from (None: all the feed has). Features that depend on
    # all history (GARCH, drawdown) are those of the candles the runner has seen.
    history_rows: int | None = None
    use_fallback: bool = False  # trade the RSI fallback where no model output is usable
    allow_ungated_live: bool = False  # with mode 'live': trade the fallback without a model
    symbol_map: dict[str, str] = field(default_factory=dict)  # model symbol -> feed symbol
    max_order_notional: float | None = None  # quote currency; tightens the bundle's cap
    max_consecutive_errors: int = 5


class Runner:
    """See the module docstring."""

    def __init__(
        self,
        feed: Any,
        store: StateStore,
        source: ModelSource,
        config: RunnerConfig,
        *,
        alerts: Alerts | None = None,
        broker: CcxtBroker | None = None,
    ) -> None:
        self.feed, self.store, self.source, self.config = feed, store, source, config
        self.symbol = config.symbol
        self.alerts = alerts or Alerts(store, self.symbol)
        self.broker = broker
        if config.mode == "live" and broker is None:
            raise AiTradeBotError("live mode needs a broker (ccxt, with credentials)")
        self.bar_length = timeframe_to_timedelta(config.timeframe)
        self.bundle: Bundle | None = None
        self.version = "none"
        self.model_state, self.model_note = "none", ""
        self._model_state_known = False
        self._settings: tuple[Any, StrategyConfig] | None = None
        self.stream: ModelStream | None = None
        self.stream_state: StreamState | None = None
        self.latencies: list[float] = []
        self.stage_ms: dict[str, list[float]] = {}  # features, agents (and meta), rest
        self._last_check = 0.0
        self.processed = 0
        self.window: pd.DataFrame | None = None
        self._recent: tuple[np.ndarray, np.ndarray] | None = None  # see _recent_meta
        self._last_reason = ""
        self._last_limits: tuple[str, ...] = ()
        self._errors = 0
        self._core: tuple[Any, ExecutionCore] | None = None
        self.guard: CandleGuard | None = None

    # -- model ---------------------------------------------------------------------------
    def _load_model(self) -> None:
        """Load the model and check it was trained for this feed; any failure means no
        model (no new entries, or the fallback when asked)."""
        self.bundle, self.stream = None, None
        try:
            bundle, version = self.source.load()
        except ModelUnavailableError as exc:
            self.version = "none"
            self._model_state("none", f"no model ({exc})")
            return
        why = self._mismatch(bundle)
        if why:
            self.version = f"refused:{version}"
            self._model_state("refused", f"model {version} refused: {why}")
            return
        self.bundle, self.version = bundle, version
        self.stream = ModelStream(bundle)
        logger.info("model %s loaded: %s, gate %s", version, bundle.method, bundle.gate)

    def _mismatch(self, bundle: Bundle) -> str:
        """Why ``bundle`` cannot trade this feed ('' when it can)."""
        mapped = self.config.symbol_map.get(bundle.symbol, bundle.symbol)
        problems = []
        if not same_symbol(mapped, self.symbol):
            problems.append(f"trained on {bundle.symbol}, the feed is {self.symbol}")
        if timeframe_to_timedelta(bundle.timeframe) != self.bar_length:
            problems.append(
                f"trained on {bundle.timeframe} candles, the feed gives {self.config.timeframe}"
            )
        return "; ".join(problems)

    @property
    def trading(self) -> str:
        """What decides the targets now."""
        if self.bundle is not None and self.model_state == "ok":
            return f"model {self.version}"
        if self.config.use_fallback:
            return f"RSI fallback (at most {self.settings.fallback.max_position:g} of equity)"
        return "no new entries (open positions keep their stops and targets)"

    def _model_state(self, state: str, note: str) -> None:
        """Record the model's state; an alert on each change (not on each candle or each
        restart): one when it drops out, one when it comes back."""
        previous = self.model_state
        if not self._model_state_known:  # the episode a restart continues
            stored = getattr(self, "state", None) or {}
            previous = stored.get("model_state") or "new"
            self._model_state_known = True
        self.model_state, self.model_note = state, note
        if state == previous:
            return
        if state == "ok":
            if previous not in ("new", "ok"):
                self.alerts.send("model_back", f"model {self.version} trading again")
        else:
            self.alerts.send("fallback", f"{note}; trading: {self.trading}")

    @property
    def settings(self) -> StrategyConfig:
        """The bundle's settings (the configured ones without a model), with the order cap
        tightened to ``max_order_notional`` when that is lower."""
        if self._settings is None or self._settings[0] is not self.bundle:
            self._settings = (self.bundle, self._resolve_settings())
        return self._settings[1]

    def _resolve_settings(self) -> StrategyConfig:
        settings = self.bundle.strategy if self.bundle is not None else None
        settings = settings or self.config.settings or StrategyConfig()
        cap = self.config.max_order_notional
        engine = settings.engine
        if cap is not None and (
            engine.max_order_notional is None or cap < engine.max_order_notional
        ):
            settings = dataclasses.replace(
                settings, engine=dataclasses.replace(engine, max_order_notional=cap)
            )
        return settings

    def _execution(self, settings: StrategyConfig) -> ExecutionCore:
        if self._core is None or self._core[0] is not settings.engine:
            self._core = (settings.engine, ExecutionCore(settings.engine))
        return self._core[1]

    @property
    def history_rows(self) -> int:
        return self.bundle.warmup_rows if self.bundle is not None else FALLBACK_HISTORY

    def _check_model(self) -> None:
        """Between candles: hot-reload when the alias moved (or the registry came back)."""
        now = time.monotonic()
        if now - self._last_check < self.config.reload_check_seconds:
            return
        self._last_check = now
        try:
            version = self.source.version()
        except ModelUnavailableError:
            return
        if self.version in (version, f"refused:{version}"):
            return
        previous = self.version
        self._load_model()
        self.window = None
        if self.bundle is None:
            self._save_state(model_version=self.version)
            return
        self.stream_state = self.stream.start(self.store.candles(self.symbol))
        self.alerts.send("model_change", f"model {previous} -> {self.version}")
        self._model_state("ok", "")
        self._save_state(model_version=self.version, carry=self.stream_state.to_dict())

    def _save_state(self, **values: Any) -> None:
        with self.store.transaction() as db:
            self.store.save_runner(
                db,
                self.symbol,
                timeframe=self.config.timeframe,
                mode=self.config.mode,
                model_state=self.model_state,
                model_note=self.model_note,
                trading=self.trading,
                **values,
            )
        self.state = self.store.runner(self.symbol)

    # -- start / resume ------------------------------------------------------------------
    def start(self) -> None:
        """Load the model; resume from the store, or start from the feed's history."""
        self.state = self.store.runner(self.symbol)
        self._load_model()
        if self.bundle is not None:
            self._model_state("ok", "")
        self._check_live_start()
        self._last_check = time.monotonic()
        saved = self.state
        run = {"pid": os.getpid(), "started_at": time.time(), "stopped_at": None}
        if saved is None or saved["last_ts"] is None:
            rows = self.config.history_rows
            history = self.feed.history(None if rows is None else max(rows, self.history_rows))
            history = self._clean_history(history)
            if history.empty:
                raise AiTradeBotError(
                    f"{self.symbol}: the feed gave no usable candles of history to start from"
                )
            with self.store.transaction() as db:
                self.store.add_candles(db, self.symbol, history)
                self.stream_state = self.stream.start(history) if self.stream else None
                if self.stream_state is not None:  # the agents' first windows, for a resume
                    n = len(self.bundle.feature_columns)
                    state = self.stream_state
                    for ts, row in zip(state.index, state.values, strict=True):
                        self.store.add_feature_row(db, self.symbol, ts, row[:n])
                self.store.save_runner(
                    db,
                    self.symbol,
                    timeframe=self.config.timeframe,
                    mode=self.config.mode,
                    model_version=self.version,
                    model_state=self.model_state,
                    model_note=self.model_note,
                    trading=self.trading,
                    last_ts=ts_int(history.index[-1]),
                    bar=-1,
                    carry=self.stream_state.to_dict() if self.stream_state else None,
                    exchange_units=0.0,
                    **run,
                )
            self.state = self.store.runner(self.symbol)
            self.guard = CandleGuard.from_history(history, self.bar_length)
            logger.info("started %s with %d candles of history", self.symbol, len(history))
        else:
            if saved["model_version"] != self.version and self.bundle is not None:
                # the model changed while the runner was down: start its stream afresh
                self.stream_state = self.stream.start(self.store.candles(self.symbol))
            elif self.bundle is not None and saved["carry"]:
                keep = max(a.min_history for a in self.bundle.agents.values())
                rows = self.store.feature_rows(self.symbol, self.bundle.feature_columns, keep + 8)
                self.stream_state = self.stream.restore(
                    json.loads(saved["carry"]), rows, self.store.candles(self.symbol, keep + 8)
                )
            self._save_state(model_version=self.version, **run)
            self.guard = CandleGuard.from_history(self.store.candles(self.symbol), self.bar_length)
            logger.info(
                "resumed %s after %s (bar %d)", self.symbol, ts_of(saved["last_ts"]), saved["bar"]
            )
        if self.config.mode == "live":
            self._reconcile()

    def _check_live_start(self) -> None:
        """Real orders need a model that passed the gate, or an explicit, confirmed
        fallback, and a cap on every order."""
        if self.config.mode != "live":
            return
        if self.model_state == "refused":
            raise ConfigError(
                f"--live refuses: {self.model_note}. Trade the market the model was trained "
                "on, or say which market it is with --map-symbol MODEL=EXCHANGE."
            )
        if self.bundle is None and not (
            self.config.use_fallback and self.config.allow_ungated_live
        ):
            raise ConfigError(
                f"--live refuses to trade {self.symbol} without a model: {self.model_note}. "
                "Deploy a champion, or pass both --fallback rsi and --confirm-ungated to trade "
                f"the ungated RSI fallback at most {self.settings.fallback.max_position:g} of "
                "equity."
            )
        if self.settings.engine.max_order_notional is None:
            raise ConfigError(
                "--live needs a cap on every order: set live.max_order_notional (quote "
                "currency) in conf/local/parameters_live.yml or pass --max-order-notional."
            )

    def _clean_history(self, history: pd.DataFrame) -> pd.DataFrame:
        """History candles that pass the candle rules, in time order; the others are
        quarantined with their rule (one alert sums them up)."""
        if history.empty:
            return history
        guard = CandleGuard(self.bar_length)
        keep, last, refused = [], None, {}
        with self.store.transaction() as db:
            values = history[list(_OHLCV)].to_numpy(dtype=np.float64)
            for position, (ts, row) in enumerate(zip(history.index, values, strict=True)):
                at = ts_int(ts)
                rule, message = guard.rule(at, row, last)
                if rule is None:
                    keep.append(position)
                    last = at
                    continue
                self.store.add_quarantine(db, self.symbol, at, rule, row, message)
                refused[rule] = refused.get(rule, 0) + 1
        if refused:
            self.alerts.send(
                "bad_candle",
                f"history: {sum(refused.values())} candle(s) quarantined before trading "
                f"started ({', '.join(f'{k}: {v}' for k, v in refused.items())})",
            )
        return history.iloc[keep]

    def _reconcile(self) -> None:
        """After a restart with real orders: every stored order against the exchange's
        record; then the position from the exchange, and at most one order toward the
        current clamped target."""
        assert self.broker is not None
        known = {o["client_order_id"]: o for o in self.store.orders(self.symbol)}
        for order in self.broker.open_orders():
            cid = order.get("clientOrderId")
            if cid not in known:
                self.alerts.send("order", f"open order {cid} on the exchange is not ours")
        self._settle()
        self._save_state(exchange_units=self._exchange_units())
        target = self.state.get("decided_target")
        if self.state["bar"] is None or self.state["bar"] < 0 or target is None:
            return
        last = self.store.candles(self.symbol, 1)
        if last.empty:
            return
        engine = np.asarray(json.loads(self.state["engine_state"]), dtype=np.float64)
        order = self._live_order(
            ts_of(self.state["last_ts"]), float(target), engine, float(last["close"].iloc[-1]),
            reconcile=True,
        )  # fmt: skip
        if order is None:
            return
        with self.store.transaction() as db:
            self.store.add_order(db, **order)
        self.alerts.send(
            "order",
            f"reconciled: the exchange holds {self.state['exchange_units']:+.8g}, the target "
            f"{float(target):+.4g} of equity: one order {order['side']} {order['amount']:.8g}",
        )
        self._send(order, target=float(target))

    def _settle(self) -> None:
        """Orders whose fate is not recorded yet, looked up on the exchange by client id:
        what it filled is recorded, an order still open is cancelled (a market order open
        a candle later is stale), one it never received is marked cancelled."""
        assert self.broker is not None
        for order in self.store.orders(self.symbol):
            if order["mode"] != "live" or order["status"] not in ("new", "failed", "open"):
                continue
            cid = order["client_order_id"]
            try:
                found = self.broker.lookup(cid)
                if found is not None and str(found.get("status")) == "open":
                    found = self.broker.cancel(cid) or found
            except Exception as exc:  # the exchange is still down: try again later
                logger.warning("order %s: lookup failed: %s", cid, exc)
                continue
            if found is None:
                self._record(cid, status="cancelled", note="never reached the exchange")
            else:
                self._record(cid, found=found, side=order["side"])

    def _record(
        self,
        cid: str,
        *,
        found: dict[str, Any] | None = None,
        side: str = "",
        status: str | None = None,
        note: str | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if found is not None:
            values = {
                "status": str(found.get("status") or "open"),
                "exchange_id": None if found.get("id") is None else str(found.get("id")),
                "filled": signed_filled(found, side),
                "average": found.get("average"),
                "sent": 1,
            }
        if status is not None:
            values["status"] = status
        if note is not None:
            values["note"] = note
        with self.store.transaction() as db:
            self.store.update_order(db, cid, **values)

    def _exchange_units(self) -> float:
        """The position the exchange reported filling for this runner's orders."""
        return float(
            sum(
                o["filled"] or 0.0
                for o in self.store.orders(self.symbol)
                if o["mode"] == "live" and o["sent"]
            )
        )

    # -- the loop -----------------------------------------------------------------------
    def run(self, max_candles: int | None = None) -> None:
        """Process the feed's events until it ends (a replay) or ``max_candles``."""
        after = ts_of(self.state["last_ts"])
        for event in self.feed.events(after=after):
            self._check_model()
            if event.kind == "stale":
                self._set_feed_state("stale", event.message)
                continue
            if event.kind == "recovered":
                self._set_feed_state("ok", event.message)
                continue
            self.process(event)
            self.processed += 1
            if max_candles is not None and self.processed >= max_candles:
                break

    def stop(self, reason: str) -> None:
        """Record a clean stop (the status API then shows the runner stopped)."""
        self._save_state(stopped_at=time.time(), stop_reason=reason)

    def _set_feed_state(self, state: str, message: str) -> None:
        if state == "stale":
            self.alerts.send("stale_feed", f"{message}; new entries halted")
        self._save_state(feed_state=state)

    def process(self, event: FeedEvent) -> None:
        """One closed candle (see the module docstring): checked, then decided."""
        candle = event.candle
        ts = candle.name
        at = ts_int(ts)
        values = np.array([float(candle[c]) for c in _OHLCV], dtype=np.float64)
        if self.guard is None:
            self.guard = CandleGuard(self.bar_length)
        rule, message = self.guard.rule(at, values, self.state["last_ts"])
        if rule is not None:
            self._quarantine(at, values, rule, message)
            return
        missing = self.guard.missing(self.state["last_ts"], at)
        if missing:
            self.alerts.send(
                "gap",
                f"{missing} candle(s) missing between {ts_of(self.state['last_ts'])} and {ts} "
                "(judged against the market's usual trading hours)",
            )
        carried = self.stream_state
        try:
            step = self._decide(event, values)
        except NonFiniteStateError as exc:
            self.stream_state = carried
            self._quarantine(at, values, "non_finite_state", str(exc))
            self._save_state(halted_reason="non-finite execution state (resume to clear)")
        except Exception as exc:  # nothing was committed: the candle is kept aside
            self.stream_state = carried
            self._errors += 1
            logger.exception("%s: candle %s failed", self.symbol, ts)
            self._quarantine(at, values, "processing_error", f"{type(exc).__name__}: {exc}")
            if self._errors >= self.config.max_consecutive_errors:
                raise
        else:
            self._errors = 0
            self._after_commit(step)

    def _quarantine(self, at: int, values: np.ndarray, rule: str, message: str) -> None:
        with self.store.transaction() as db:
            new = self.store.add_quarantine(db, self.symbol, at, rule, values, message)
        if new:
            self.alerts.send(
                "bad_candle", f"candle {ts_of(at)} quarantined: {message}; nothing traded on it"
            )

    def _decide(self, event: FeedEvent, values: np.ndarray) -> dict[str, Any]:
        """Steps 1 to 4 of the module docstring, up to the commit; returns what
        :meth:`_after_commit` needs. Raises before the commit, or commits everything."""
        started = time.perf_counter()
        if self.config.mode == "live" and any(
            o["status"] in ("new", "failed", "open") for o in self.store.orders(self.symbol)
        ):
            self._settle()  # an earlier order's fate first: the position depends on it
            self._save_state(exchange_units=self._exchange_units())
        candle = event.candle
        ts = candle.name
        at = ts_int(ts)
        settings = self.settings
        core = self._execution(settings)
        window = self._with_candle(candle)
        bar = int(self.state["bar"]) + 1
        day = at // _DAY_NS
        atr, rsi = atr_and_rsi(window, settings)  # the backtest's very values
        atr_now = float(atr[-1])
        atr_prev = float(atr[-2]) if len(atr) > 1 else atr_now
        rsi_now = float(rsi[-1])
        close = float(values[3])
        commands = self.store.pending_commands(self.symbol)
        paused = bool(self.state["paused"])
        halted_reason = self.state["halted_reason"]
        flatten = False
        for command in commands:
            name = command["command"]
            paused = {"pause": True, "resume": False}.get(name, paused)
            if name == "resume":
                halted_reason = None
            flatten = flatten or name == "flatten"

        # 1. the execution core: the position clamped at the previous close fills at this
        # open (NaN: nothing to fill, e.g. an order the exchange did not fill)
        if bar == 0:
            engine = core.start(day)
            fills = []
        else:
            engine = np.asarray(json.loads(self.state["engine_state"]), dtype=np.float64)
            if engine.size != STATE_SIZE:
                raise AiTradeBotError(
                    f"{self.store.path}: the stored execution state has {engine.size} fields, "
                    f"this version keeps {STATE_SIZE}; finish or flatten with the version "
                    "that wrote it, or start a new state file (--state)"
                )
            want = self.state["pending_target"]
            slip = settings.costs.slip(np.array([atr_now / close]))
            fills = core.fill(
                engine,
                bar,
                (values[0], values[1], values[2], close),
                np.nan if want is None else want,
                atr_prev=atr_prev,
                atr_now=atr_now,
                day=day,
                fee=settings.costs.fee(),
                slip=float(np.asarray(slip).reshape(-1)[0]),
            )
        _check_finite(engine, ts)

        # 2. the model's outputs for this candle
        outputs, feature_row = None, None
        if self.stream is not None and self.stream_state is not None:
            feature_row, outputs, self.stream_state = self.stream.step(window, self.stream_state)
        meta = self._meta_values(outputs)  # DIRECTION's values; NaN without a model output
        if self.bundle is not None:
            if outputs is None or not np.isfinite(meta[:3]).all():
                meta[:] = np.nan
                self._model_state("failing", f"model {self.version} gave no usable output at {ts}")
            else:
                self._model_state("ok", "")

        # 3. the strategy step on the recent decisions (arrays: a frame per candle cost
        # more than the rules), then the risk clamp before anything is ordered
        times, rows = self._recent_meta(settings.decision.accuracy_window + 2)
        earlier = times < at
        times, rows = np.append(times[earlier], at), np.vstack([rows[earlier], meta[None, :]])
        label_config = self.bundle.labels if self.bundle else LabelConfig()
        # a label reads band_window returns before its row and one after: label the rows
        # decided on only, not the whole window
        tail = len(rows) + label_config.band_window + 2
        direction = label_arrays(
            window["close"].to_numpy(dtype=np.float64)[-tail:],
            horizon=label_config.horizon,
            flat_band_sigmas=label_config.flat_band_sigmas,
            band_window=label_config.band_window,
        )["direction"]
        decided = decide_targets(
            dict(zip(DIRECTION, rows.T, strict=True)),
            decision=settings.decision,
            sizing=settings.sizing,
            fallback=settings.fallback,
            gate=self.bundle.gate if self.bundle else None,
            realized=_aligned(window.index.asi8[-tail:], direction, times),
            rsi=np.full(len(rows), rsi_now),
            use_fallback=self.config.use_fallback,
        )
        signal = float(decided["signal"][-1])
        target = float(decided["target"][-1])
        reason = str(decided["reason"][-1])
        if reason == "kill_switch" and self._last_reason != "kill_switch":
            self.alerts.send("kill_switch", f"rolling accuracy below the kill level at {ts}")
        self._last_reason = reason
        halted = self._entries_halted(event, paused, halted_reason)
        if flatten:
            target, reason = 0.0, "flatten"
        elif halted:
            target = self._no_new_entries(target, engine, close)
            reason = f"{reason}; entries halted: {halted}"
        clamped, code = core.clamp(engine, bar + 1, target, day=expected_day(at, self.bar_length))
        limits = tuple(clamp_reasons(code))
        if limits:
            reason = f"{reason}; clamped: {', '.join(limits)}"
        _check_finite(engine, ts)

        # 4. orders, fills, position and state, in one transaction
        if self.config.mode == "live":
            order = self._live_order(ts, clamped, engine, close)
            orders = [] if order is None else [order]
            # the shadow books only what the exchange reports filled (set after the send)
            pending = clamped if order is None else None
        else:
            orders = self._paper_orders(bar, ts, clamped, engine, close)
            pending = clamped
        submitted = [o["client_order_id"] for o in self.store.orders(self.symbol, "submitted")]
        latency_ms = (time.perf_counter() - started) * 1000.0
        with self.store.transaction() as db:
            self.store.add_candle(db, self.symbol, at, values)
            if feature_row is not None:
                self.store.add_feature_row(db, self.symbol, ts, feature_row.to_numpy())
            self.store.add_decision(
                db,
                self.symbol,
                ts=at,
                model_version=self.version,
                signal=_num(signal),
                target=clamped,
                reason=reason,
                **{k: _num(v) for k, v in zip(DIRECTION, meta, strict=True)},
                votes=self._votes(outputs),
                rsi=_num(rsi_now),
                latency_ms=latency_ms,
            )
            for seq, fill in enumerate(fills):
                cid = self._fill_order_id(fill, ts, submitted)
                self.store.add_fill(
                    db,
                    self.symbol,
                    ts=at,
                    bar=bar,
                    seq=seq,
                    client_order_id=cid,
                    units=fill["units"],
                    price=fill["price"],
                    fee=fill["fee"],
                    kind=fill["kind"],
                )
            self._close_paper_orders(db, submitted, fills)
            for order in orders:
                self.store.add_order(db, **order)
            equity = float(engine[S_EQUITY])
            self.store.add_equity(
                db,
                self.symbol,
                ts,
                equity=equity,
                cash=float(engine[S_CASH]),
                units=float(engine[S_UNITS]),
                price=close,
                drawdown=1.0 - equity / float(engine[S_PEAK]) if engine[S_PEAK] > 0 else 0.0,
                entry_price=float(engine[S_ENTRY_PX]),
            )
            for command in commands:
                self.store.apply_command(db, command["id"], ts)
            self.store.save_runner(
                db,
                self.symbol,
                timeframe=self.config.timeframe,
                mode=self.config.mode,
                model_version=self.version,
                model_state=self.model_state,
                model_note=self.model_note,
                trading=self.trading,
                first_ts=self.state["first_ts"] if bar else at,
                last_ts=at,
                bar=bar,
                engine_state=engine.tolist(),
                carry=self.stream_state.to_dict() if self.stream_state else None,
                pending_target=pending,
                decided_target=clamped,
                paused=int(paused),
                halted_reason=halted_reason,
            )
        self.window = window
        self._remember(times, rows, settings.decision.accuracy_window + 2)
        self.state = self.store.runner(self.symbol)
        return {
            "ts": ts, "started": started, "window": window, "orders": orders,
            "target": clamped, "fills": fills, "commands": commands, "limits": limits,
            "reason": reason,
        }  # fmt: skip

    def _after_commit(self, step: dict[str, Any]) -> None:
        """What follows a committed candle: its alerts, the latency, the real order (sent
        only now, after it is on disk under its client id) and the next GARCH refit."""
        ts = step["ts"]
        for command in step["commands"]:
            self.alerts.send(
                "command",
                f"{command['command']} (asked by {command['requested_by']}) applied at {ts}",
            )
        for fill in step["fills"]:
            if fill["kind"] in ("stop", "target", "risk"):
                self.alerts.send(
                    "limit_breach", f"{fill['kind']} exit at {ts}: {fill['units']:+.6g}"
                )
        bound = tuple(k for k in step["limits"] if k in _ALERTED_LIMITS)
        if bound and bound != self._last_limits:
            self.alerts.send("limit_breach", f"{', '.join(bound)} bound at {ts}: {step['reason']}")
        self._last_limits = bound
        # arrival to persisted decision (the stored latency_ms stops before the commit)
        self.latencies.append((time.perf_counter() - step["started"]) * 1000.0)
        stages = self.stream.seconds if self.stream is not None else {}
        model = sum(stages.values())
        for stage, seconds in {**stages, "rest": self.latencies[-1] / 1000.0 - model}.items():
            self.stage_ms.setdefault(stage, []).append(seconds * 1000.0)
        if self.config.mode == "live":
            for order in step["orders"]:
                self._send(order, target=step["target"])
        if self.stream is not None and self.stream_state is not None:
            # between candles: a refit the next candle needs, made while waiting for it
            self.stream_state = self.stream.prefit(step["window"], self.stream_state)

    # -- helpers ------------------------------------------------------------------------
    def _window(self) -> pd.DataFrame:
        if getattr(self, "window", None) is None:
            self.window = self.store.candles(self.symbol, self._window_rows())
        return self.window

    def _with_candle(self, candle: pd.Series) -> pd.DataFrame:
        """The trailing window with ``candle`` appended (one array, one frame)."""
        window = self._window()
        keep = self._window_rows() - 1
        values = np.array([[float(candle[c]) for c in window.columns]])
        block = np.concatenate([window.to_numpy(dtype=np.float64)[-keep:], values])
        at = pd.DatetimeIndex([candle.name], name=window.index.name)
        return pd.DataFrame(block, index=window.index[-keep:].append(at), columns=window.columns)

    def _window_rows(self) -> int:
        return (self.bundle.feature_rows if self.bundle else FALLBACK_HISTORY) + 2

    def _meta_values(self, outputs: pd.DataFrame | None) -> np.ndarray:
        """The meta-agent's :data:`DIRECTION` outputs of this candle (NaN: none)."""
        if outputs is None:
            return np.full(len(DIRECTION), np.nan)
        cached = getattr(self, "_meta_positions", None)
        if cached is None or cached[0] is not outputs.columns:
            positions = outputs.columns.get_indexer([f"meta.{k}" for k in DIRECTION])
            if (positions < 0).any():
                raise KeyError(f"model outputs lack meta columns {list(DIRECTION)}")
            cached = self._meta_positions = (outputs.columns, positions)
        return outputs.to_numpy(dtype=np.float64)[0, cached[1]]

    def _recent_meta(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``rows`` decisions' candle times (int64 ns) and model outputs
        (:data:`DIRECTION`): read from the state file once, then kept in memory as each
        candle's decision is committed (see :meth:`_remember`)."""
        if self._recent is None:
            self._recent = self.store.decision_arrays(self.symbol, rows, DIRECTION)
        times, values = self._recent
        return times[-rows:], values[-rows:]

    def _remember(self, times: np.ndarray, rows: np.ndarray, keep: int) -> None:
        """After the commit: the rows just decided on (the recent ones and this candle's)
        are the recent decisions, as the file holds them (non-finite: NaN)."""
        rows = rows[-keep:]
        self._recent = (times[-keep:], np.where(np.isfinite(rows), rows, np.nan))

    def _votes(self, outputs: pd.DataFrame | None) -> dict[str, dict[str, float]]:
        if outputs is None:
            return {}
        votes: dict[str, dict[str, float]] = {}
        for column, value in zip(outputs.columns, outputs.to_numpy()[0], strict=True):
            agent, _, field_name = str(column).partition(".")
            if agent != "meta":
                votes.setdefault(agent, {})[field_name] = _num(value)
        return votes

    def _entries_halted(self, event: FeedEvent, paused: bool, halted_reason: str | None) -> str:
        if paused:
            return "paused"
        if halted_reason:
            return halted_reason
        if not event.live:
            return "catching up (backfilled candle)"
        if self.state.get("feed_state") == "stale":
            return "stale feed"
        return ""

    @staticmethod
    def _no_new_entries(target: float, engine: np.ndarray, close: float) -> float:
        """Keep or reduce the open position; never open, add or flip (a hold stays one)."""
        if np.isnan(target):
            return target
        units, equity = float(engine[S_UNITS]), float(engine[S_EQUITY])
        if units == 0.0 or np.sign(target) != np.sign(units) or equity <= 0:
            return 0.0
        held = abs(units) * close / equity
        return float(np.sign(units) * min(abs(target), held))

    def _paper_orders(
        self, bar: int, ts: pd.Timestamp, target: float, engine: np.ndarray, close: float
    ) -> list[dict[str, Any]]:
        """A paper order when the clamped target changes the position; it fills at the
        next open (the execution core decides how much, under the limits)."""
        units, equity = float(engine[S_UNITS]), float(engine[S_EQUITY])
        previous = self.state["decided_target"] if bar else 0.0
        if previous is not None and abs(target - previous) < 1e-12:
            return []
        delta = target * equity / close - units
        if abs(delta) * close < 1e-9 * max(equity, 1.0):
            return []
        side = "buy" if delta > 0 else "sell"
        return [self._order_row(ts, side, target, abs(delta), "submitted")]

    def _live_order(
        self,
        ts: pd.Timestamp,
        target: float,
        engine: np.ndarray,
        close: float,
        *,
        reconcile: bool = False,
    ) -> dict[str, Any] | None:
        """The one order that moves the position the exchange reported toward the clamped
        ``target`` (a fraction of the shadow's equity), at most ``max_order_notional``.

        As the paper engine resizes a position only past ``rebalance_threshold``, a
        position of the wanted side is left alone while it is within that much of equity
        (or of the cap, when that is smaller); a change of side, or a close, always goes."""
        equity = float(engine[S_EQUITY])
        held = float(self.state.get("exchange_units") or 0.0)
        desired = target * equity / close if equity > 0 else 0.0
        delta = desired - held
        engine_config = self.settings.engine
        cap = engine_config.max_order_notional
        step = engine_config.rebalance_threshold * max(equity, 0.0)
        if cap is not None:
            step = min(step, cap)
            if abs(delta) * close > cap:
                delta = np.sign(delta) * cap / close
        notional = abs(delta) * close
        if notional < 1e-6 * max(equity, 1.0):  # dust: less than the exchange's lot
            return None
        if np.sign(desired) == np.sign(held) and notional <= step:
            return None
        side = "buy" if delta > 0 else "sell"
        kind = side
        if reconcile:
            done = sum(
                1 for o in self.store.orders(self.symbol) if "reconcile" in (o["note"] or "")
            )
            kind = f"{side}|reconcile|{done}"
        row = self._order_row(ts, kind, target, abs(float(delta)), "new")
        return row | {"side": side, "price": close, "note": "reconcile" if reconcile else None}

    def _order_row(
        self, ts: pd.Timestamp, kind: str, target: float, amount: float, status: str
    ) -> dict[str, Any]:
        return {
            "client_order_id": client_order_id(self.version, self.symbol, ts_int(ts), kind),
            "symbol": self.symbol,
            "ts": ts_int(ts),
            "side": kind,
            "target": target,
            "amount": amount,
            "status": status,
            "mode": self.config.mode,
        }

    def _fill_order_id(self, fill: dict[str, Any], ts: pd.Timestamp, pending: list[str]) -> str:
        """The order a fill belongs to: the pending one for a fill at the open, an id of its
        own (deterministic) for a stop, target or risk exit."""
        if fill["kind"] in ("stop", "target") or not pending:
            return client_order_id(self.version, self.symbol, ts_int(ts), fill["kind"])
        return pending[-1]

    def _close_paper_orders(self, db: Any, pending: list[str], fills: list[dict[str, Any]]) -> None:
        """Paper orders from the previous close are filled at this open, or cancelled when
        the rules (limits, the blocked side) filled nothing."""
        if self.config.mode != "paper":
            return
        filled = any(f["kind"] in ("close", "open", "resize", "risk") for f in fills)
        for cid in pending:
            self.store.update_order(db, cid, status="filled" if filled else "cancelled")

    def _send(self, order: dict[str, Any], *, target: float) -> None:
        """Send one real order; record what the exchange reports, and let the shadow book
        the fill at the next open only when the exchange filled it."""
        assert self.broker is not None
        cid = order["client_order_id"]
        try:
            result = self.broker.submit(cid, order["side"], order["amount"])
        except Exception as exc:  # recorded and alerted; settled against the exchange later
            self._record(cid, status="failed", note=f"{type(exc).__name__}: {exc}"[:500])
            self.alerts.send(
                "order", f"order {cid} failed: {exc}; new entries wait for the exchange"
            )
            return
        self._record(cid, found=result, side=order["side"])
        status = str(result.get("status", "open"))
        logger.info(
            "order %s: %s %.8g %s -> %s (exchange id %s)",
            cid,
            order["side"],
            order["amount"],
            self.symbol,
            status,
            result.get("id"),
        )
        filled = status == "closed"
        self._save_state(
            exchange_units=self._exchange_units(), pending_target=target if filled else None
        )


def _check_finite(engine: np.ndarray, ts: pd.Timestamp) -> None:
    """Cash, units, equity and the counters must stay finite (stops and targets may be
    NaN: none set)."""
    fields = engine[[S_CASH, S_UNITS, S_EQUITY, S_PEAK]]
    if not np.isfinite(fields).all():
        raise NonFiniteStateError(
            f"the execution step at {ts} would make cash, units or equity non-finite "
            f"({fields.tolist()}); not committed"
        )


def _aligned(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values`` (at sorted ``times``) read at the times ``at``; NaN where absent (a
    reindex on int64 times)."""
    out = np.full(len(at), np.nan)
    if len(times):
        pos = np.minimum(np.searchsorted(times, at), len(times) - 1)
        found = times[pos] == at
        out[found] = values[pos[found]]
    return out


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None
