"""The live runner: one closed candle at a time, from a feed to durable state.

Per closed candle, in one SQLite transaction:

1. the execution core (:class:`ai_trade_bot.backtest.engine.ExecutionCore`, the rules
   the backtest runs) fills the target decided at the previous close at this candle's
   open, with the backtest's costs, stops and limits;
2. features, agents and the meta-agent (:class:`ai_trade_bot.live.stream.ModelStream`,
   the features code with carried state) give this candle's outputs;
3. the decision layer (:func:`ai_trade_bot.decision.decide_arrays`, the one ``evaluate``
   backtests) and the sizing turn them into the next target;
4. orders for the change (deterministic client ids, UNIQUE), fills, position, cash and
   equity, the decision with every agent's vote, and the state to resume from.

Without a model (no registry, no champion, a load failure) the decision layer's RSI
fallback trades, with an alert; a NaN output never trades. Between candles the runner
obeys pause, resume and flatten commands and reloads the model when its alias moves.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.costs import size_positions
from ai_trade_bot.backtest.engine import (
    S_CASH,
    S_ENTRY_PX,
    S_EQUITY,
    S_PEAK,
    S_UNITS,
    ExecutionCore,
)
from ai_trade_bot.bundle import Bundle
from ai_trade_bot.decision import decide_arrays
from ai_trade_bot.errors import AiTradeBotError
from ai_trade_bot.evaluation import EvaluateConfig, atr_and_rsi, decision_settings
from ai_trade_bot.features.build import LabelConfig
from ai_trade_bot.features.labels import label_arrays
from ai_trade_bot.live.alerts import Alerts
from ai_trade_bot.live.broker import CcxtBroker, client_order_id
from ai_trade_bot.live.feeds import FeedEvent
from ai_trade_bot.live.store import StateStore, ts_int, ts_of
from ai_trade_bot.live.stream import ModelStream, StreamState
from ai_trade_bot.meta import ABS_PER_SIGMA

logger = logging.getLogger(__name__)

DIRECTION = ("down", "flat", "up", "confidence", "disagreement", "informative", "magnitude")
_DAY_NS = 86_400_000_000_000
FALLBACK_HISTORY = 200  # candles the RSI fallback keeps without a model


class ModelUnavailableError(AiTradeBotError):
    """The model could not be resolved or loaded; the runner falls back to RSI."""


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
        from ai_trade_bot.deploy import load_bundle

        version = self.version()
        uri = self.uri
        if uri.startswith("models:/") and "@" in uri:
            uri = f"models:/{uri[len('models:/') :].partition('@')[0]}/{version}"
        try:
            return load_bundle(uri), version
        except Exception as exc:  # a corrupt or unreadable model must not stop trading
            raise ModelUnavailableError(f"{uri}: cannot load: {type(exc).__name__}: {exc}") from exc


@dataclass
class RunnerConfig:
    """How the runner runs (from the command line)."""

    symbol: str
    timeframe: str
    mode: str = "paper"  # paper | live
    reload_check_seconds: float = 30.0
    fallback: EvaluateConfig | None = None  # settings when no model can be loaded
    # candles of history to start from (None: all the feed has). Features that depend on
    # all history (GARCH, drawdown) are those of the candles the runner has seen.
    history_rows: int | None = None


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
        self.bundle: Bundle | None = None
        self.version = "fallback"
        self.stream: ModelStream | None = None
        self.stream_state: StreamState | None = None
        self.latencies: list[float] = []
        self.stage_ms: dict[str, list[float]] = {}  # features, agents (and meta), rest
        self._last_check = 0.0
        self.processed = 0
        self.window: pd.DataFrame | None = None
        self._recent: tuple[np.ndarray, np.ndarray] | None = None  # see _recent_meta
        self._last_reason = ""

    # -- model ---------------------------------------------------------------------------
    def _load_model(self) -> None:
        try:
            bundle, version = self.source.load()
        except ModelUnavailableError as exc:
            self.bundle, self.version, self.stream = None, "fallback", None
            self.alerts.send("fallback", f"no model ({exc}); trading the RSI fallback")
            return
        if bundle.symbol != self.symbol or bundle.timeframe != self.config.timeframe:
            logger.warning(
                "model trained on %s %s, fed %s %s",
                bundle.symbol,
                bundle.timeframe,
                self.symbol,
                self.config.timeframe,
            )
        self.bundle, self.version = bundle, version
        self.stream = ModelStream(bundle)
        logger.info("model %s loaded: %s, gate %s", version, bundle.method, bundle.gate)

    @property
    def settings(self) -> EvaluateConfig:
        if self.bundle is not None:
            return self.bundle.evaluate
        return self.config.fallback or EvaluateConfig()

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
        if version != self.version:
            previous = self.version
            self._load_model()
            self.window = None
            if self.bundle is not None:
                self.stream_state = self.stream.start(self.store.candles(self.symbol))
                self.alerts.send("model_change", f"model {previous} -> {self.version}")
                with self.store.transaction() as db:
                    self.store.save_runner(
                        db,
                        self.symbol,
                        timeframe=self.config.timeframe,
                        mode=self.config.mode,
                        model_version=self.version,
                        carry=self.stream_state.to_dict(),
                    )

    # -- start / resume ------------------------------------------------------------------
    def start(self) -> None:
        """Load the model; resume from the store, or start from the feed's history."""
        self._load_model()
        self._last_check = time.monotonic()
        saved = self.store.runner(self.symbol)
        if saved is None or saved["last_ts"] is None:
            rows = self.config.history_rows
            history = self.feed.history(None if rows is None else max(rows, self.history_rows))
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
                    last_ts=ts_int(history.index[-1]),
                    bar=-1,
                    carry=self.stream_state.to_dict() if self.stream_state else None,
                )
            self.state = self.store.runner(self.symbol)
            logger.info("started %s with %d candles of history", self.symbol, len(history))
            return
        self.state = saved
        if saved["model_version"] != self.version and self.bundle is not None:
            # the model changed while the runner was down: start its stream afresh
            self.stream_state = self.stream.start(self.store.candles(self.symbol))
        elif self.bundle is not None and saved["carry"]:
            keep = max(a.min_history for a in self.bundle.agents.values())
            rows = self.store.feature_rows(self.symbol, self.bundle.feature_columns, keep + 8)
            self.stream_state = self.stream.restore(
                json.loads(saved["carry"]), rows, self.store.candles(self.symbol, keep + 8)
            )
        if self.config.mode == "live":
            self._reconcile()
        logger.info(
            "resumed %s after %s (bar %d)", self.symbol, ts_of(saved["last_ts"]), saved["bar"]
        )

    def _reconcile(self) -> None:
        """Stored orders against the exchange: send what never arrived, record the rest."""
        assert self.broker is not None
        known = {o["client_order_id"]: o for o in self.store.orders(self.symbol)}
        for order in self.broker.open_orders():
            cid = order.get("clientOrderId")
            if cid not in known:
                self.alerts.send("order", f"open order {cid} on the exchange is not ours")
        for cid, order in known.items():
            if order["status"] not in ("new", "submitted") or order["mode"] != "live":
                continue
            found = self.broker.lookup(cid)
            if found is None and order["status"] == "new":
                self._send(order)
            elif found is not None:
                with self.store.transaction() as db:
                    self.store.update_order(
                        db,
                        cid,
                        status=str(found.get("status", "open")),
                        exchange_id=found.get("id"),
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

    def _set_feed_state(self, state: str, message: str) -> None:
        if state == "stale":
            self.alerts.send("stale_feed", f"{message}; new entries halted")
        with self.store.transaction() as db:
            self.store.save_runner(
                db,
                self.symbol,
                timeframe=self.config.timeframe,
                mode=self.config.mode,
                feed_state=state,
            )
        self.state = self.store.runner(self.symbol)

    def process(self, event: FeedEvent) -> None:
        """One closed candle (see the module docstring)."""
        started = time.perf_counter()
        candle = event.candle
        ts = candle.name
        settings = self.settings
        window = self.window = self._with_candle(candle)
        bar = int(self.state["bar"]) + 1
        day = int(ts.value // _DAY_NS)
        atr, rsi = atr_and_rsi(window, settings)  # the backtest's very values
        atr_now = float(atr[-1])
        atr_prev = float(atr[-2]) if len(atr) > 1 else atr_now
        rsi_now = float(rsi[-1])
        core = ExecutionCore(settings.engine)
        commands = self.store.pending_commands(self.symbol)
        paused = bool(self.state["paused"])
        flatten = False
        for command in commands:
            paused = {"pause": True, "resume": False}.get(command["command"], paused)
            flatten = flatten or command["command"] == "flatten"

        # 1. the execution core: the previous close's target fills at this open
        if bar == 0:
            engine = core.start(day)
            fills = []
        else:
            engine = np.asarray(json.loads(self.state["engine_state"]), dtype=np.float64)
            want = self.state["pending_target"]
            fee = settings.costs.fee()
            per_bar = settings.costs.slip(np.array([atr_now / float(candle["close"])]))
            slip = float(np.asarray(per_bar).reshape(-1)[0])
            fills = core.step(
                engine,
                bar,
                (candle["open"], candle["high"], candle["low"], candle["close"]),
                np.nan if want is None else want,
                atr_prev=atr_prev,
                atr_now=atr_now,
                day=day,
                fee=fee,
                slip=slip,
            )

        # 2. the model's outputs for this candle
        outputs, feature_row = None, None
        if self.stream is not None and self.stream_state is not None:
            feature_row, outputs, self.stream_state = self.stream.step(window, self.stream_state)
        meta = self._meta_values(outputs)  # DIRECTION's values; NaN without a model output
        if outputs is not None and not np.isfinite(meta[:3]).all():
            self.alerts.send("fallback", f"NaN model output at {ts}: RSI fallback this candle")
            meta[:] = np.nan

        # 3. the decision layer and the sizing, on the recent decisions (arrays: a frame per
        # candle cost more than the rules)
        at = ts_int(ts)
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
        realized = _aligned(window.index.asi8[-tail:], direction, times)
        column = dict(zip(DIRECTION, rows.T, strict=True))
        decided = decide_arrays(
            column["down"],
            column["flat"],
            column["up"],
            column["confidence"],
            decision_settings(settings, self.bundle.gate if self.bundle else None),
            disagreement=column["disagreement"],
            informative=column["informative"],
            realized=realized,
            rsi=np.full(len(rows), rsi_now),
        )
        signal = float(decided["signal"][-1])
        # no model at all: every candle is the RSI fallback
        reason = "fallback_rsi" if self.bundle is None else str(decided["reason"][-1])
        target = float(
            size_positions(
                np.array([signal]),
                settings.sizing,
                p_win=column["confidence"][-1:],
                pred_vol=column["magnitude"][-1:] / ABS_PER_SIGMA,
            )[0]
        )
        if reason == "kill_switch" and self._last_reason != "kill_switch":
            self.alerts.send("kill_switch", f"rolling accuracy below the kill level at {ts}")
        self._last_reason = reason
        halted = self._entries_halted(event, paused)
        if flatten:
            target, reason = 0.0, "flatten"
        elif halted:
            target = self._no_new_entries(target, engine, float(candle["close"]))
            reason = f"{reason}; entries halted: {halted}"

        # 4. orders, fills, position and state, in one transaction
        orders = self._orders(bar, ts, target, engine, float(candle["close"]))
        pending = [o["client_order_id"] for o in self.store.orders(self.symbol, "submitted")]
        latency_ms = (time.perf_counter() - started) * 1000.0
        with self.store.transaction() as db:
            self.store.add_candle(db, self.symbol, at, window.to_numpy(dtype=np.float64)[-1])
            if feature_row is not None:
                self.store.add_feature_row(db, self.symbol, ts, feature_row.to_numpy())
            self.store.add_decision(
                db,
                self.symbol,
                ts=at,
                model_version=self.version,
                signal=signal,
                target=target,
                reason=reason,
                **{k: _num(v) for k, v in zip(DIRECTION, meta, strict=True)},
                votes=self._votes(outputs),
                rsi=_num(rsi_now),
                latency_ms=latency_ms,
            )
            for seq, fill in enumerate(fills):
                cid = self._fill_order_id(fill, ts, pending)
                self.store.add_fill(
                    db,
                    self.symbol,
                    ts=ts_int(ts),
                    bar=bar,
                    seq=seq,
                    client_order_id=cid,
                    units=fill["units"],
                    price=fill["price"],
                    fee=fill["fee"],
                    kind=fill["kind"],
                )
            self._close_paper_orders(db, pending, fills)
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
                price=float(candle["close"]),
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
                first_ts=self.state["first_ts"] if bar else ts_int(ts),
                last_ts=ts_int(ts),
                bar=bar,
                engine_state=engine.tolist(),
                carry=self.stream_state.to_dict() if self.stream_state else None,
                pending_target=target,
                paused=int(paused),
                halted_reason=halted or None,
            )
        self._remember(times, rows, settings.decision.accuracy_window + 2)
        for fill in fills:
            if fill["kind"] in ("stop", "target", "risk"):
                self.alerts.send(
                    "limit_breach", f"{fill['kind']} exit at {ts}: {fill['units']:+.6g}"
                )
        if self.config.mode == "live":
            for order in orders:
                self._send(order)
        self.state = self.store.runner(self.symbol)
        # arrival to persisted decision (the stored latency_ms stops before the commit)
        self.latencies.append((time.perf_counter() - started) * 1000.0)
        stages = self.stream.seconds if self.stream is not None else {}
        model = sum(stages.values())
        for stage, seconds in {**stages, "rest": self.latencies[-1] / 1000.0 - model}.items():
            self.stage_ms.setdefault(stage, []).append(seconds * 1000.0)
        if self.stream is not None and self.stream_state is not None:
            # between candles: a refit the next candle needs, made while waiting for it
            self.stream_state = self.stream.prefit(window, self.stream_state)

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
            agent, _, field = str(column).partition(".")
            if agent != "meta":
                votes.setdefault(agent, {})[field] = _num(value)
        return votes

    def _entries_halted(self, event: FeedEvent, paused: bool) -> str:
        if paused:
            return "paused"
        if not event.live:
            return "catching up (backfilled candle)"
        if self.state.get("feed_state") == "stale":
            return "stale feed"
        return ""

    @staticmethod
    def _no_new_entries(target: float, engine: np.ndarray, close: float) -> float:
        """Keep or reduce the open position; never open, add or flip."""
        units, equity = float(engine[S_UNITS]), float(engine[S_EQUITY])
        if units == 0.0 or np.sign(target) != np.sign(units) or equity <= 0:
            return 0.0
        held = abs(units) * close / equity
        return float(np.sign(units) * min(abs(target), held))

    def _orders(
        self, bar: int, ts: pd.Timestamp, target: float, engine: np.ndarray, close: float
    ) -> list[dict[str, Any]]:
        """An order when a new target changes the position; it fills at the next open
        (the execution core decides how much, under the limits)."""
        units, equity = float(engine[S_UNITS]), float(engine[S_EQUITY])
        wanted = target * equity / close if close > 0 else 0.0
        delta = wanted - units
        previous = self.state["pending_target"] if bar else 0.0
        if previous is not None and abs(target - previous) < 1e-12:
            return []
        if abs(delta) * close < 1e-9 * max(equity, 1.0):
            return []
        side = "buy" if delta > 0 else "sell"
        cid = client_order_id(self.version, self.symbol, ts_int(ts), side)
        return [
            {
                "client_order_id": cid,
                "symbol": self.symbol,
                "ts": ts_int(ts),
                "side": side,
                "target": target,
                "amount": abs(delta),
                "status": "new" if self.config.mode == "live" else "submitted",
                "mode": self.config.mode,
            }
        ]

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

    def _send(self, order: dict[str, Any]) -> None:
        assert self.broker is not None
        try:
            result = self.broker.submit(order["client_order_id"], order["side"], order["amount"])
        except Exception as exc:  # recorded and alerted; the next start reconciles it
            self.alerts.send("order", f"order {order['client_order_id']} failed: {exc}")
            return
        status = str(result.get("status", "submitted"))
        logger.info(
            "order %s: %s %.8g %s -> %s (exchange id %s)",
            order["client_order_id"],
            order["side"],
            order["amount"],
            self.symbol,
            status,
            result.get("id"),
        )
        with self.store.transaction() as db:
            self.store.update_order(
                db, order["client_order_id"], status=status, exchange_id=str(result.get("id"))
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
