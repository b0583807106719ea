"""The live runner: one closed candle at a time, from a feed to durable state.

Per closed candle, committed as one transaction (:meth:`StateStore.commit_step`):

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
   (:func:`ai_trade_bot.strategy.risk.clamp_target`) limits before anything is ordered;
4. the order desk (:class:`ai_trade_bot.live.orders.OrderDesk`) makes the one order
   toward it; the candle's fills, decision, account and resume state are committed, and
   only then the order goes to the venue (:class:`ai_trade_bot.live.broker.Broker`).

Without a usable model (no champion, a load failure, a bundle trained on another symbol
or timeframe, a NaN output) the runner makes no new entries: an open position keeps its
stops and targets. The RSI fallback trades only when asked (``use_fallback``), at most
``fallback.max_position``. Each drop-out and each return of the model raises one alert.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.engine import ExecutionCore, expected_day
from ai_trade_bot.backtest.state import (
    S_CASH,
    S_ENTRY_PX,
    S_EQUITY,
    S_PEAK,
    S_STOP,
    S_TAKE,
    S_UNITS,
)
from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import AiTradeBotError, ConfigError
from ai_trade_bot.features.labels import label_arrays
from ai_trade_bot.live.alerts import Alerts
from ai_trade_bot.live.broker import Broker, PaperBroker, client_order_id
from ai_trade_bot.live.config import RunnerConfig
from ai_trade_bot.live.explain import (
    forecast_sigma,
    risk_fields,
    rule_text,
    stop_distance,
    top_contributions,
)
from ai_trade_bot.live.feeds import Feed, FeedEvent
from ai_trade_bot.live.guard import CandleGuard
from ai_trade_bot.live.ledger import outcomes_known, predictions_of
from ai_trade_bot.live.model import ModelKeeper, ModelSource
from ai_trade_bot.live.orders import OrderDesk
from ai_trade_bot.live.store import Account, Decision, Fill, StateStore, Step, ts_int, ts_of
from ai_trade_bot.live.stream import StreamState
from ai_trade_bot.registry.bundle import Bundle
from ai_trade_bot.strategy.config import StrategyConfig
from ai_trade_bot.strategy.risk import clamp_reasons
from ai_trade_bot.strategy.step import DIRECTION, atr_and_rsi, decide_targets

logger = logging.getLogger(__name__)

_DAY_NS = 86_400_000_000_000
# limits whose binding an operator hears of (the others shape sizes every day)
_ALERTED_LIMITS = ("drawdown_breaker", "daily_loss", "trades_per_day", "max_order_notional")


class NonFiniteStateError(AiTradeBotError):
    """An execution step would leave cash, units or equity non-finite."""


class MemoryCapError(AiTradeBotError):
    """The runner grew past ``live.memory_cap_mb``: it stops cleanly, resumable."""


class Runner:
    """See the module docstring."""

    def __init__(
        self,
        feed: Feed,
        store: StateStore,
        source: ModelSource,
        config: RunnerConfig,
        *,
        alerts: Alerts | None = None,
        broker: Broker | None = None,
    ) -> None:
        self.feed, self.store, self.source, self.config = feed, store, source, config
        self.symbol = config.symbol
        self.alerts = alerts or Alerts(store, self.symbol)
        if config.mode == "live" and (broker is None or broker.paper):
            raise AiTradeBotError("live mode needs a broker (ccxt, with credentials)")
        self.broker = broker or PaperBroker(store, self.symbol)
        self.desk = OrderDesk(store, self.broker, self.symbol, self.alerts)
        self.bar_length = timeframe_to_timedelta(config.timeframe)
        stored = (store.runner(self.symbol) or {}).get("model_state")
        self.model = ModelKeeper(source, config, self.alerts, stored_state=stored)
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
        self._late: Future | None = None  # a model run that overran live.inference_timeout
        self._worker: ThreadPoolExecutor | None = None
        self._summary_day: int | None = None

    # -- the model (see ModelKeeper) ------------------------------------------------------
    @property
    def bundle(self) -> Bundle | None:
        return self.model.bundle

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def model_state(self) -> str:
        return self.model.state

    @property
    def settings(self) -> StrategyConfig:
        return self.model.settings

    def _execution(self, settings: StrategyConfig) -> ExecutionCore:
        if self._core is None or self._core[0] is not settings.engine:
            self._core = (settings.engine, ExecutionCore(settings.engine))
        return self._core[1]

    def _check_model(self) -> None:
        """Between candles: hot-reload when the alias moved (or the registry came back)."""
        now = time.monotonic()
        if now - self._last_check < self.config.reload_check_seconds:
            return
        self._last_check = now
        if not self.model.moved():
            return
        previous = self.version
        self.model.load()
        self.window = None
        if self.bundle is None:
            self._save_state(model_version=self.version)
            return
        self.stream_state = self.model.stream.start(self.store.candles(self.symbol))
        self.alerts.send("model_change", f"model {previous} -> {self.version}")
        self._save_state(
            model_version=self.version,
            carry=self.stream_state.to_dict(),
            model_info=self._model_info(),
        )

    def _identity(self) -> dict[str, Any]:
        """The runner row's fields that say what runs and how."""
        return {
            "timeframe": self.config.timeframe,
            "mode": self.config.mode,
            "model_state": self.model.state,
            "model_note": self.model.note,
            "trading": self.model.trading,
        }

    def _model_info(self) -> dict[str, Any] | None:
        """What the health panel reads the live ledger against: the bundle's training
        window, when it was packaged and its out-of-fold figures per agent."""
        if self.bundle is None:
            return None
        return {"method": self.bundle.method, **self.bundle.training}

    def _save_state(self, **values: Any) -> None:
        self.store.save_runner(self.symbol, **self._identity(), **values)
        self.state = self.store.runner(self.symbol)

    # -- start / resume ------------------------------------------------------------------
    def start(self) -> None:
        """Load the model; resume from the store, or start from the feed's history."""
        self.state = self.store.runner(self.symbol)
        self.model.load()
        self._check_live_start()
        self._last_check = time.monotonic()
        saved = self.state
        run = {"pid": os.getpid(), "started_at": time.time(), "stopped_at": None}
        if saved is None or saved["last_ts"] is None:
            rows = self.config.history_rows
            history = self.feed.history(
                None if rows is None else max(rows, self.model.history_rows)
            )
            history = self._clean_history(history)
            if history.empty:
                raise AiTradeBotError(
                    f"{self.symbol}: the feed gave no usable candles of history to start from"
                )
            self.stream_state = self.model.stream.start(history) if self.model.stream else None
            first_rows = []
            if self.stream_state is not None:  # the agents' first windows, for a resume
                n = len(self.bundle.feature_columns)
                state = self.stream_state
                first_rows = [(ts, row[:n]) for ts, row in zip(state.index, state.values,
                                                                strict=True)]  # fmt: skip
            runner = self._identity() | run | {
                "model_version": self.version,
                "last_ts": ts_int(history.index[-1]),
                "bar": -1,
                "carry": self.stream_state.to_dict() if self.stream_state else None,
                "exchange_units": 0.0,
                "model_info": self._model_info(),
            }  # fmt: skip
            self.store.start(self.symbol, history, first_rows, runner)
            self.state = self.store.runner(self.symbol)
            self.guard = CandleGuard.from_history(history, self.bar_length)
            logger.info("started %s with %d candles of history", self.symbol, len(history))
        else:
            if self.bundle is not None and (
                saved["model_version"] != self.version or not saved["carry"]
            ):
                # the model changed while the runner was down, or the last candle's model
                # run overran its timeout (no carried state): start its stream afresh
                self.stream_state = self.model.stream.start(self.store.candles(self.symbol))
            elif self.bundle is not None and saved["carry"]:
                keep = max(a.min_history for a in self.bundle.agents.values())
                rows = self.store.feature_rows(self.symbol, self.bundle.feature_columns, keep + 8)
                self.stream_state = self.model.stream.restore(
                    json.loads(saved["carry"]), rows, self.store.candles(self.symbol, keep + 8)
                )
            self._save_state(model_version=self.version, model_info=self._model_info(), **run)
            self.guard = CandleGuard.from_history(self.store.candles(self.symbol), self.bar_length)
            logger.info(
                "resumed %s after %s (bar %d)", self.symbol, ts_of(saved["last_ts"]), saved["bar"]
            )
        self._reconcile()

    def _check_live_start(self) -> None:
        """Real orders need a model that passed the gate, or an explicit, confirmed
        fallback, and a cap on every order."""
        if self.config.mode != "live":
            return
        if self.model.state == "refused":
            raise ConfigError(
                f"--live refuses: {self.model.note}. Trade the market the model was trained "
                "on, or say which market it is with --map-symbol MODEL=EXCHANGE."
            )
        if self.bundle is None and not (
            self.config.use_fallback and self.config.allow_ungated_live
        ):
            raise ConfigError(
                f"--live refuses to trade {self.symbol} without a model: {self.model.note}. "
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
        kept, refused = CandleGuard(self.bar_length).clean(history)
        for at, rule, row, message in refused:
            self.store.quarantine(self.symbol, at, rule, row, message)
        if refused:
            counts = pd.Series([rule for _, rule, _, _ in refused]).value_counts()
            self.alerts.send(
                "bad_candle",
                f"history: {len(refused)} candle(s) quarantined before trading started "
                f"({', '.join(f'{k}: {v}' for k, v in counts.items())})",
            )
        return kept

    def _reconcile(self) -> None:
        """At start: every order whose fate is not recorded, against the venue; with real
        orders, the position from the exchange and at most one order toward the current
        clamped target."""
        if self.desk.paper:
            self.desk.settle()
            return
        self.desk.strangers()
        self.desk.settle()
        self._save_state(exchange_units=self.desk.exchange_units())
        target = self.state.get("decided_target")
        engine = self.store.engine_state(self.symbol)
        last = self.store.candles(self.symbol, 1)
        if target is None or engine is None or last.empty:
            return
        order = self.desk.order_for(
            self.version,
            ts_of(self.state["last_ts"]),
            float(target),
            engine,
            float(last["close"].iloc[-1]),
            previous=None,
            held=float(self.state["exchange_units"] or 0.0),
            config=self.settings.engine,
            note="reconcile",
        )
        if order is None:
            return
        self.store.add_order(order)
        self.alerts.send(
            "order",
            f"reconciled: the exchange holds {self.state['exchange_units']:+.8g}, the target "
            f"{float(target):+.4g} of equity: one order {order.side} {order.amount:.8g}",
        )
        self._after_send(order, float(target))

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
            self._check_memory()
            if max_candles is not None and self.processed >= max_candles:
                break

    def stop(self, reason: str) -> None:
        """Record a clean stop (the status API then shows the runner stopped)."""
        self._save_state(stopped_at=time.time(), stop_reason=reason)
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)

    def _check_memory(self) -> None:
        """Above ``memory_cap_mb`` of resident memory: one alert and a clean stop (the
        state is committed; a supervisor restarts the runner and it resumes)."""
        cap = self.config.memory_cap_mb
        if cap is None:
            return
        import psutil

        rss = psutil.Process().memory_info().rss / 2**20
        if rss > cap:
            message = f"resident memory {rss:.0f} MB above live.memory_cap_mb {cap:g} MB"
            self.alerts.send("memory_cap", f"{message}; stopping cleanly (resume to continue)")
            raise MemoryCapError(message)

    def _infer(
        self, window: pd.DataFrame, ts: pd.Timestamp
    ) -> tuple[pd.DataFrame | None, pd.Series | None, StreamState | None]:
        """The model's outputs of this candle (:meth:`ModelKeeper.outputs`), bounded by
        ``inference_timeout``: the stream steps on a worker thread; when it overruns, this
        candle has no model output (the fallback decides, one alert) and the stream starts
        afresh from the stored candles once the overrunning run has ended (the candles it
        missed are in the store). While it still runs, each candle falls back."""
        timeout = self.config.inference_timeout
        if timeout is None or self.model.stream is None:
            return self.model.outputs(window, self.stream_state, ts)
        if self._late is not None:
            if not self._late.done():
                self.alerts.send(
                    "inference_timeout",
                    f"the model is still on an earlier candle at {ts}; fallback for this one",
                )
                return None, None, None
            self._late = None
            self.stream_state = self.model.stream.start(self.store.candles(self.symbol))
        if self.stream_state is None:
            return None, None, None
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="inference")
        job = self._worker.submit(self.model.stream.step, window, self.stream_state)
        try:
            step = job.result(timeout=timeout)
        except FuturesTimeout:
            self._late = job
            self.alerts.send(
                "inference_timeout",
                f"the model took over live.inference_timeout {timeout:g} s at {ts}; "
                f"{self.model.trading if self.config.use_fallback else 'no new entries'} "
                "for this candle",
            )
            return None, None, None
        return self.model.judge(*step, ts)

    def _set_feed_state(self, state: str, message: str) -> None:
        if state == "stale":
            self.alerts.send("stale_feed", f"{message}; new entries halted")
        self._save_state(feed_state=state)

    def process(self, event: FeedEvent) -> None:
        """One closed candle (see the module docstring): checked, then decided."""
        candle = event.candle
        ts = candle.name
        at = ts_int(ts)
        values = np.array([float(candle[c]) for c in OHLCV_COLUMNS], dtype=np.float64)
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
            step, after = self._decide(event, values)
            self.store.commit_step(step)
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
            self._after_commit(step, after)

    def _quarantine(self, at: int, values: np.ndarray, rule: str, message: str) -> None:
        if self.store.quarantine(self.symbol, at, rule, values, message):
            self.alerts.send(
                "bad_candle", f"candle {ts_of(at)} quarantined: {message}; nothing traded on it"
            )

    def _decide(self, event: FeedEvent, values: np.ndarray) -> tuple[Step, dict[str, Any]]:
        """Steps 1 to 4 of the module docstring, up to the commit: the candle's
        :class:`Step`, and what follows the commit."""
        started = time.perf_counter()
        if self.desk.unsettled():
            self.desk.settle()  # an earlier order's fate first: the position depends on it
            self._save_state(exchange_units=self.desk.exchange_units())
        ts = event.candle.name
        at = ts_int(ts)
        settings = self.settings
        core = self._execution(settings)
        window = self._with_candle(event.candle)
        bar = int(self.state["bar"]) + 1
        atr, rsi = atr_and_rsi(window, settings)  # the backtest's very values
        atr_now = float(atr[-1])
        atr_prev = float(atr[-2]) if len(atr) > 1 else atr_now
        close = float(values[3])
        commands = self.store.pending_commands(self.symbol)
        paused, halted_reason, flatten = self._apply_commands(commands)

        # 1. the execution core: the position clamped at the previous close fills at this
        # open (NaN: nothing to fill, e.g. an order the exchange did not fill)
        core.last_trades = []
        if bar == 0:
            engine, fills = core.start(at // _DAY_NS), []
        else:
            engine = self.store.engine_state(self.symbol)
            want = self.state["pending_target"]
            slip = settings.costs.slip(np.array([atr_now / close]))
            fills = core.fill(
                engine,
                bar,
                (values[0], values[1], values[2], close),
                np.nan if want is None else want,
                atr_prev=atr_prev,
                atr_now=atr_now,
                day=at // _DAY_NS,
                fee=settings.costs.fee(),
                slip=float(np.asarray(slip).reshape(-1)[0]),
            )
        _check_finite(engine, ts)

        # 2. the model's outputs for this candle
        outputs, feature_row, self.stream_state = self._infer(window, ts)
        meta = self.model.meta_values(outputs)  # DIRECTION's values; NaN without an output

        # 3. the strategy step on the recent decisions (arrays: a frame per candle cost
        # more than the rules), then the risk clamp before anything is ordered
        times, rows = self._recent_meta(settings.decision.accuracy_window + 2)
        earlier = times < at
        times, rows = np.append(times[earlier], at), np.vstack([rows[earlier], meta[None, :]])
        realized = self._realized(window, times, len(rows))
        decided = decide_targets(
            dict(zip(DIRECTION, rows.T, strict=True)),
            decision=settings.decision,
            sizing=settings.sizing,
            fallback=settings.fallback,
            gate=self.bundle.gate if self.bundle else None,
            realized=realized,
            rsi=np.full(len(rows), float(rsi[-1])),
            use_fallback=self.config.use_fallback,
        )
        target, reason = float(decided["target"][-1]), str(decided["reason"][-1])
        explained = self._explain(outputs, decided, meta, float(rsi[-1]), settings)
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
        explained["risk_score"], explained["stop_sigmas"] = risk_fields(
            clamped, explained.pop("sigma"), stop_distance(engine, close, atr_now, settings)
        )

        # 4. the order toward the clamped target; the shadow fills it at the next open
        # (with real orders only once the exchange reports it filled: set after the send)
        order = self.desk.order_for(
            self.version,
            ts,
            clamped,
            engine,
            close,
            previous=self.state["decided_target"] if bar else 0.0,
            held=float(self.state.get("exchange_units") or 0.0),
            config=settings.engine,
        )
        submitted = [o["client_order_id"] for o in self.store.orders(self.symbol, "open")]
        equity = float(engine[S_EQUITY])
        step = Step(
            symbol=self.symbol,
            ts=at,
            candle=values,
            features=None if feature_row is None else feature_row.to_numpy(),
            decision=Decision(
                ts=at,
                model_version=self.version,
                signal=_num(decided["signal"][-1]),
                target=clamped,
                reason=reason,
                **{k: _num(v) for k, v in zip(DIRECTION, meta, strict=True)},
                votes=self.model.votes(outputs),
                rsi=_num(rsi[-1]),
                latency_ms=(time.perf_counter() - started) * 1000.0,
                **explained,
            ),
            fills=[
                Fill(
                    bar,
                    seq,
                    self._fill_order_id(f, ts, submitted),
                    f["units"],
                    f["price"],
                    f["fee"],
                    f["kind"],
                )
                for seq, f in enumerate(fills)
            ],
            trades=core.last_trades,
            predictions=predictions_of(outputs),
            target_ts=at + self.model.labels.horizon * self.bar_length.value,
            horizon=self.model.labels.horizon,
            outcomes=outcomes_known(
                window.index.asi8,
                window["close"].to_numpy(dtype=np.float64),
                times,
                realized,
                self.model.labels.horizon,
                self._scored(),
            ),
            orders=[] if order is None else [order],
            order_updates=self.desk.paper_fills(fills),
            account=Account(
                equity=equity,
                cash=float(engine[S_CASH]),
                units=float(engine[S_UNITS]),
                price=close,
                drawdown=1.0 - equity / float(engine[S_PEAK]) if engine[S_PEAK] > 0 else 0.0,
                entry_price=float(engine[S_ENTRY_PX]),
                stop=float(engine[S_STOP]),
                take=float(engine[S_TAKE]),
            ),
            commands=[c["id"] for c in commands],
            runner=self._identity()
            | {
                "model_version": self.version,
                "first_ts": self.state["first_ts"] if bar else at,
                "last_ts": at,
                "bar": bar,
                "engine_state": engine,
                "carry": self.stream_state.to_dict() if self.stream_state else None,
                "pending_target": clamped if self.desk.paper or order is None else None,
                "decided_target": clamped,
                "paused": int(paused),
                "halted_reason": halted_reason,
            },
        )
        after = {"started": started, "window": window, "times": times, "rows": rows,
                 "commands": commands, "limits": limits, "reason": reason}  # fmt: skip
        return step, after

    def _explain(
        self,
        outputs: pd.DataFrame | None,
        decided: dict[str, np.ndarray],
        meta: np.ndarray,
        rsi: float,
        settings: StrategyConfig,
    ) -> dict[str, Any]:
        """The decision's explanation (:mod:`ai_trade_bot.live.explain`) but the risk
        figures, which wait for the clamped target (``sigma`` carries the forecast)."""
        row = (
            {}
            if outputs is None
            else dict(zip(outputs.columns, outputs.to_numpy(dtype=np.float64)[0], strict=True))
        )
        meta_row = {k: float(v) for k, v in zip(DIRECTION, meta, strict=True)}
        contributions = (
            self.model.stream.contributions(outputs)
            if outputs is not None and self.model.stream is not None
            else {}
        )
        return {
            "expected_return": _num(row.get("meta.expected_return", np.nan)),
            "contributions": top_contributions(contributions),
            "rule": rule_text(
                decided, meta_row, rsi, settings, self.bundle.gate if self.bundle else None
            ),
            "sigma": forecast_sigma(row) if row else np.nan,
        }

    def _scored(self) -> int | None:
        """The latest candle whose predictions are scored (read once, then kept)."""
        if not hasattr(self, "_scored_upto"):
            self._scored_upto = self.store.scored_upto(self.symbol)
        return self._scored_upto

    def _after_commit(self, step: Step, after: dict[str, Any]) -> None:
        """What follows a committed candle: the latency, its alerts, the order (sent only
        now, after it is on disk under its client id) and the next GARCH refit."""
        # arrival to persisted decision (the stored latency_ms stops before the commit); the
        # alerts and the daily summary below come after the decision and are not counted
        self.latencies.append((time.perf_counter() - after["started"]) * 1000.0)
        stages = self.model.stream.seconds if self.model.stream is not None else {}
        model = sum(stages.values())
        for stage, seconds in {**stages, "rest": self.latencies[-1] / 1000.0 - model}.items():
            self.stage_ms.setdefault(stage, []).append(seconds * 1000.0)
        self.state = self.store.runner(self.symbol)
        ts = ts_of(step.ts)
        if step.outcomes:
            self._scored_upto = max(o.ts for o in step.outcomes)
        self._daily_summary(step.ts)
        self.window = after["window"]
        self._remember(after["times"], after["rows"], self.settings.decision.accuracy_window + 2)
        for command in after["commands"]:
            self.alerts.send(
                "command",
                f"{command['command']} (asked by {command['requested_by']}) applied at {ts}",
            )
        for fill in step.fills:
            if fill.kind in ("stop", "target", "risk"):
                self.alerts.send("limit_breach", f"{fill.kind} exit at {ts}: {fill.units:+.6g}")
        bound = tuple(k for k in after["limits"] if k in _ALERTED_LIMITS)
        if bound and bound != self._last_limits:
            self.alerts.send("limit_breach", f"{', '.join(bound)} bound at {ts}: {after['reason']}")
        self._last_limits = bound
        for order in step.orders:
            self._after_send(order, step.decision.target)
        if self.model.stream is not None and self.stream_state is not None:
            # between candles: a refit the next candle needs, made while waiting for it
            self.stream_state = self.model.stream.prefit(after["window"], self.stream_state)

    def _daily_summary(self, at: int) -> None:
        """At the first candle of a UTC day: the day before in one alert (equity, round
        trips and their P&L, the meta-agent's live accuracy on the predictions scored)."""
        day = at // _DAY_NS
        previous, self._summary_day = self._summary_day, day
        if not self.config.daily_summary or previous is None or day == previous:
            return
        s = self.store.day_summary(self.symbol, previous * _DAY_NS, day * _DAY_NS)
        change = (
            f"equity {s['equity_start']:.2f} -> {s['equity_end']:.2f}"
            if s["equity_start"] is not None and s["equity_end"] is not None
            else f"equity {s['equity_end']}"
        )
        accuracy = (
            f"meta accuracy {s['accuracy']:.2f} on {s['scored']} scored"
            if s["scored"]
            else "no prediction scored"
        )
        self.alerts.send(
            "daily_summary",
            f"{pd.Timestamp(previous * _DAY_NS, tz='UTC').date()}: {change}; {s['trades']} "
            f"round trip(s), P&L {s['pnl']:+.2f}; {accuracy}; position {s['units']}",
        )

    def _after_send(self, order: Any, target: float) -> None:
        filled = self.desk.send(order)
        if not self.desk.paper:
            self._save_state(
                exchange_units=self.desk.exchange_units(),
                pending_target=target if filled else None,
            )

    # -- helpers ------------------------------------------------------------------------
    def _apply_commands(self, commands: list[dict[str, Any]]) -> tuple[bool, str | None, bool]:
        """Pause, resume and flatten asked since the last candle: (paused, the halt that
        stays, flatten now)."""
        paused = bool(self.state["paused"])
        halted_reason = self.state["halted_reason"]
        flatten = False
        for command in commands:
            name = command["command"]
            paused = {"pause": True, "resume": False}.get(name, paused)
            if name == "resume":
                halted_reason = None
            flatten = flatten or name == "flatten"
        return paused, halted_reason, flatten

    def _realized(self, window: pd.DataFrame, times: np.ndarray, n_rows: int) -> np.ndarray:
        """The direction labels of the decided rows (for the rolling accuracy). A label
        reads band_window returns before its row and one after: label the rows decided on
        only, not the whole window."""
        labels = self.model.labels
        tail = n_rows + labels.band_window + 2
        direction = label_arrays(
            window["close"].to_numpy(dtype=np.float64)[-tail:],
            horizon=labels.horizon,
            flat_band_sigmas=labels.flat_band_sigmas,
            band_window=labels.band_window,
        )["direction"]
        return _aligned(window.index.asi8[-tail:], direction, times)

    def _window(self) -> pd.DataFrame:
        if getattr(self, "window", None) is None:
            self.window = self.store.candles(self.symbol, self.model.window_rows)
        return self.window

    def _with_candle(self, candle: pd.Series) -> pd.DataFrame:
        """The trailing window with ``candle`` appended (one array, one frame)."""
        window = self._window()
        keep = self.model.window_rows - 1
        values = np.array([[float(candle[c]) for c in window.columns]])
        block = np.concatenate([window.to_numpy(dtype=np.float64)[-keep:], values])
        at = pd.DatetimeIndex([candle.name], name=window.index.name)
        return pd.DataFrame(block, index=window.index[-keep:].append(at), columns=window.columns)

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

    def _fill_order_id(self, fill: dict[str, Any], ts: pd.Timestamp, pending: list[str]) -> str:
        """The order a fill belongs to: the pending one for a fill at the open, an id of its
        own (deterministic) for a stop, target or risk exit."""
        if fill["kind"] in ("stop", "target") or not pending:
            return client_order_id(self.version, self.symbol, ts_int(ts), fill["kind"])
        return pending[-1]


def _check_finite(engine: np.ndarray, ts: pd.Timestamp) -> None:
    """Cash, units, equity and the peak must stay finite (stops and targets may be NaN:
    none set)."""
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
