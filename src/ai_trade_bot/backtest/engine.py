"""The backtest engine: one numba-compiled pass over the bars (no Python event loop).

Conventions (shared with the live runner):
- ``target[t]`` is the signed fraction of equity wanted, decided at the close of bar t; it
  is filled at the open of bar t+1. NaN means hold: no new entry, the open position kept
  as it is (its stops, targets and the risk limits still act).
- The risk clamp (:func:`clamp_target`) runs on the target before anything is ordered, at
  the close of bar t, in the UTC day bar t+1 is expected on; the fill
  (:func:`fill_bar`) happens at bar t+1's open.
- Fees are charged on traded notional (``fee``); spread and slippage move the fill price
  against the trade (``slip``).
- Stops and targets are checked inside each bar, the stop first when both are touched;
  a gap through the level fills at the open.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd
from numba import njit, prange

from ai_trade_bot.backtest.signals import _crossover_into, _rolling_mean_into
from ai_trade_bot.backtest.state import (
    S_BLOCKED,
    S_CAPPED,
    S_CASH,
    S_COOLOFF_UNTIL,
    S_DAY,
    S_DAY_START,
    S_ENTRY_BAR,
    S_ENTRY_FEES,
    S_ENTRY_PX,
    S_EQUITY,
    S_FORCED,
    S_HALTED,
    S_LAST_CLEAN,
    S_N_TRADES,
    S_NOTIONAL,
    S_PEAK,
    S_PREV_RAW,
    S_PREV_TARGET,
    S_REALIZED,
    S_STOP,
    S_TAKE,
    S_TRADES_TODAY,
    S_UNITS,
    STATE_FIELDS,
    new_state,
    sign,
    start_day,
)
from ai_trade_bot.errors import ConfigError
from ai_trade_bot.strategy.risk import clamp_target

# stops and targets by name in the configuration, by number inside numba
STOPS = {"none": 0, "percent": 1, "atr": 2}
STOP_NONE, STOP_PCT, STOP_ATR = STOPS["none"], STOPS["percent"], STOPS["atr"]
REASONS = ("signal", "stop", "target", "risk", "end")
TRADE_FIELDS = (
    "entry_bar",
    "exit_bar",
    "side",
    "units",
    "entry_price",
    "exit_price",
    "pnl",
    "fees",
    "reason",
)


@dataclass(frozen=True)
class EngineConfig:
    """Execution, stop and risk settings (``params:evaluate.engine``).

    The kernels read these same fields by name (:data:`EngineParams`, derived from this
    dataclass): a new setting is one field here and its use in a kernel.
    """

    initial_cash: float = 100_000.0
    stop: str = "none"  # none | percent (of the entry price) | atr (multiples of ATR)
    stop_value: float = 0.0
    take: str = "none"  # the profit target: none | percent | atr
    take_value: float = 0.0
    trailing: bool = False  # move the stop behind each bar's extreme
    max_position: float = 1.0  # |fraction of equity| per position
    max_exposure: float = 1.0  # |gross exposure| / equity
    max_daily_loss: float = 1.0  # flatten for the rest of the day past this loss
    max_trades_per_day: int = 1_000_000
    dd_reduce_start: float = 0.10  # size scales linearly from 1 here ...
    dd_reduce_end: float = 0.15  # ... to 0 here; then flat for dd_cooloff_bars,
    dd_cooloff_bars: int = 20  # after which the drawdown is measured from a new peak
    rebalance_threshold: float = 0.05  # resize an open position when the target moves more
    integer_units: bool = False
    max_order_notional: float | None = None  # quote currency per order; None: no cap

    def __post_init__(self) -> None:
        for key in ("stop", "take"):
            if getattr(self, key) not in STOPS:
                raise ValueError(f"{key} must be one of {list(STOPS)}, got {getattr(self, key)!r}")
        if not self.dd_reduce_start <= self.dd_reduce_end:
            raise ValueError(
                f"dd_reduce_start ({self.dd_reduce_start}) must not exceed dd_reduce_end "
                f"({self.dd_reduce_end})"
            )
        if self.max_order_notional is not None and not self.max_order_notional > 0:
            raise ValueError(
                f"max_order_notional must be > 0 (quote currency) or null, got "
                f"{self.max_order_notional}"
            )


# what a setting used to be called, and what to write instead
LEGACY_ENGINE_KEYS = {
    "stop_kind": ("stop", {0: "none", 1: "percent", 2: "atr"}),
    "take_kind": ("take", {0: "none", 1: "percent", 2: "atr"}),
}


def check_legacy_engine_keys(block: dict[str, Any], *, name: str) -> None:
    """A ConfigError that says what to write instead of a key this version renamed."""
    for old, (new, values) in LEGACY_ENGINE_KEYS.items():
        if old in block:
            value = block[old]
            hint = values.get(value, "none, percent or atr")
            raise ConfigError(
                f"parameters '{name}': '{old}: {value}' is no longer read; write "
                f"'{new}: {hint}' instead (stops and targets are named: none, percent, atr)."
            )


# The kernels' view of EngineConfig: the same field names (stops as numbers, no cap as
# infinity) and whether the fast paths may run. Numba compiles field access by name.
EngineParams = namedtuple(
    "EngineParams", [f.name for f in dataclasses.fields(EngineConfig)] + ["fast_paths"]
)


def engine_params(config: EngineConfig, fast_paths: bool = True) -> EngineParams:
    """:data:`EngineParams` of ``config``."""
    values = {}
    for f in dataclasses.fields(EngineConfig):
        value = getattr(config, f.name)
        kind = str(f.type)  # one numba type per field, whatever the YAML gave
        if kind == "str":
            values[f.name] = STOPS[value]
        elif kind == "bool":
            values[f.name] = bool(value)
        elif kind == "int":
            values[f.name] = int(value)
        else:
            values[f.name] = np.inf if value is None else float(value)
    return EngineParams(**values, fast_paths=bool(fast_paths))


@njit(cache=True)
def _put(trades, k, entry_bar, exit_bar, side, units, entry_px, exit_px, pnl, fees, reason):
    row = trades[k]
    row[0], row[1], row[2], row[3], row[4] = entry_bar, exit_bar, side, units, entry_px
    row[5], row[6], row[7], row[8] = exit_px, pnl, fees, reason


# fills: (bar, signed units, price, fee, kind)
FILL_FIELDS = ("bar", "units", "price", "fee", "kind")
FILL_KINDS = ("close", "stop", "target", "risk", "end", "open", "resize")
MAX_FILLS_PER_BAR = 3  # a close at the open, an open or resize, a stop or target exit


@njit(cache=True)
def _fill(fills, j, record, bar, units, px, fee_paid, kind):
    if record:
        row = fills[j]
        row[0], row[1], row[2], row[3], row[4] = bar, units, px, fee_paid, kind
    return j + 1


@njit(cache=True)
def _close_position(
    trades, k, record, entry_bar, i, units, entry_px, px, fee_i, realized, entry_fees, reason
):
    """Close ``units`` at ``px``; record the round trip at row ``k``. Returns (cash change,
    traded notional, fee paid)."""
    f = abs(units) * px * fee_i
    if record:
        _put(
            trades,
            k,
            entry_bar,
            i,
            sign(units),
            abs(units),
            entry_px,
            px,
            units * (px - entry_px) + realized - f - entry_fees,
            f + entry_fees,
            reason,
        )
    return units * px - f, abs(units) * px, f


@njit(cache=True)
def fill_bar(
    state, i, o, h, lo, c, want, atr_prev, atr_now, day, fee_i, slip_i, cfg, trades, k0,
    record_trades, fills, record_fills,
):  # fmt: skip
    """Bar ``i``: fill ``want`` (the fraction :func:`clamp_target` returned; NaN: no order
    this bar) at the open ``o`` with fee ``fee_i`` and slippage plus half-spread
    ``slip_i``; then stops and targets inside the bar (stop first, a gap fills at the
    open), the trailing stop, and the mark at the close ``c`` with the daily loss check
    (days are UTC day numbers ``day``).

    Closed round trips go to ``trades[k0], trades[k0 + 1] ...`` and fills to ``fills[0]
    ...`` when recorded. Returns (round trips closed, fills made) on this bar.
    """
    stop_value, take_value, max_dloss = cfg.stop_value, cfg.take_value, cfg.max_daily_loss
    stop_kind, take_kind, rebalance = cfg.stop, cfg.take, cfg.rebalance_threshold
    trailing, integer_units = cfg.trailing, cfg.integer_units
    start_day(state, day)
    cash = state[S_CASH]
    units = state[S_UNITS]
    entry_px = state[S_ENTRY_PX]
    entry_bar = state[S_ENTRY_BAR]
    entry_fees = state[S_ENTRY_FEES]
    realized = state[S_REALIZED]
    stop = state[S_STOP]
    take = state[S_TAKE]
    trades_today = state[S_TRADES_TODAY]
    blocked_side = state[S_BLOCKED]
    traded_notional = state[S_NOTIONAL]
    prev_target = state[S_PREV_TARGET]
    forced = state[S_FORCED] != 0.0
    capped = state[S_CAPPED] != 0.0
    k = k0
    j = 0
    side = sign(units)
    if not np.isnan(want):
        want_side = sign(want)
        eq_open = cash + units * o
        # ---- close at the open when flat or flipping is wanted ----
        if side != 0.0 and want_side != side:
            px = o * (1.0 - side * slip_i)
            reason = 3.0 if forced else 0.0
            dcash, notional, paid = _close_position(
                trades, k, record_trades, entry_bar, i, units, entry_px, px, fee_i, realized,
                entry_fees, reason,
            )  # fmt: skip
            j = _fill(fills, j, record_fills, i, -units, px, paid, reason)
            k += 1
            cash += dcash
            traded_notional += notional
            units = 0.0
            side = 0.0
        # ---- open or resize ----
        if want_side != 0.0:
            px = o * (1.0 + want_side * slip_i)
            desired = want * eq_open / (px * (1.0 + fee_i))
            if integer_units:
                desired = sign(desired) * np.floor(abs(desired))
            if side == 0.0 and desired != 0.0:
                f = abs(desired) * px * fee_i
                cash -= desired * px + f
                traded_notional += abs(desired) * px
                units = desired
                entry_px = px
                entry_bar = i
                entry_fees = f
                realized = 0.0
                trades_today += 1.0
                j = _fill(fills, j, record_fills, i, desired, px, f, 5.0)
                ref = atr_prev if stop_kind == STOP_ATR else px
                stop = (px - want_side * stop_value * ref) if stop_kind != STOP_NONE else np.nan
                ref = atr_prev if take_kind == STOP_ATR else px
                take = (px + want_side * take_value * ref) if take_kind != STOP_NONE else np.nan
            elif side != 0.0 and (capped or abs(want - prev_target) > rebalance):
                delta = desired - units
                if delta != 0.0:
                    dpx = o * (1.0 + sign(delta) * slip_i)
                    f = abs(delta) * dpx * fee_i
                    cash -= delta * dpx + f
                    traded_notional += abs(delta) * dpx
                    if abs(desired) > abs(units):  # average in
                        entry_px = (entry_px * units + dpx * delta) / desired
                    else:  # scale out: book the closed part
                        realized += -delta * (dpx - entry_px)
                    entry_fees += f
                    units = desired
                    j = _fill(fills, j, record_fills, i, delta, dpx, f, 6.0)
        prev_target = want
    # ---- stop / target inside the bar (stop first) ----
    if units != 0.0:
        s = sign(units)
        hit = 0
        level = 0.0
        if not np.isnan(stop) and ((s > 0 and lo <= stop) or (s < 0 and h >= stop)):
            hit = 1
            level = min(o, stop) if s > 0 else max(o, stop)
        elif not np.isnan(take) and ((s > 0 and h >= take) or (s < 0 and lo <= take)):
            hit = 2
            level = max(o, take) if s > 0 else min(o, take)
        if hit:
            px = level * (1.0 - s * slip_i)
            dcash, notional, paid = _close_position(
                trades, k, record_trades, entry_bar, i, units, entry_px, px, fee_i, realized,
                entry_fees, float(hit),
            )  # fmt: skip
            j = _fill(fills, j, record_fills, i, -units, px, paid, float(hit))
            k += 1
            cash += dcash
            traded_notional += notional
            units = 0.0
            blocked_side = s
        elif trailing and not np.isnan(stop):
            if stop_kind == STOP_ATR:
                dist_hi = dist_lo = stop_value * atr_now
            else:
                dist_hi, dist_lo = stop_value * h, stop_value * lo
            stop = max(stop, h - dist_hi) if s > 0 else min(stop, lo + dist_lo)
    eq_prev = cash + units * c
    state[S_PEAK] = max(state[S_PEAK], eq_prev)
    if eq_prev < state[S_DAY_START] * (1.0 - max_dloss):
        state[S_HALTED] = 1.0
    state[S_CASH] = cash
    state[S_UNITS] = units
    state[S_ENTRY_PX] = entry_px
    state[S_ENTRY_BAR] = entry_bar
    state[S_ENTRY_FEES] = entry_fees
    state[S_REALIZED] = realized
    state[S_STOP] = stop
    state[S_TAKE] = take
    state[S_TRADES_TODAY] = trades_today
    state[S_BLOCKED] = blocked_side
    state[S_NOTIONAL] = traded_notional
    state[S_PREV_TARGET] = prev_target
    state[S_EQUITY] = eq_prev
    state[S_N_TRADES] += k - k0
    return k - k0, j


@njit(cache=True)
def step_bar(
    state, i, o, h, lo, c, want, atr_prev, atr_now, day, clamp_day, fee_i, slip_i, cfg, trades,
    k0, record_trades, fills, record_fills,
):  # fmt: skip
    """Every execution rule for bar ``i``: :func:`clamp_target` of ``want`` (decided at
    the close of bar ``i - 1``; ``clamp_day`` is the day bar ``i`` was expected on), then
    :func:`fill_bar`. The backtest loop and the sweep call it; the live runner calls the
    two halves at their own times (the clamp before it orders, the fill when the next
    candle comes), on the same state."""
    clamped, _ = clamp_target(state, i, want, clamp_day, cfg)
    return fill_bar(
        state, i, o, h, lo, c, clamped, atr_prev, atr_now, day, fee_i, slip_i, cfg, trades, k0,
        record_trades, fills, record_fills,
    )  # fmt: skip


@njit(cache=True)
def _simulate(open_, high, low, close, target, atr, day, clamp_day, fee, slip, cfg, record_trades):
    """The batch loop over :func:`step_bar`; see :func:`run_backtest`. ``cfg`` is
    :data:`EngineParams`."""
    cash0 = cfg.initial_cash
    max_pos, max_exp, max_dloss = cfg.max_position, cfg.max_exposure, cfg.max_daily_loss
    dd0, dd1 = cfg.dd_reduce_start, cfg.dd_reduce_end
    fast_paths = cfg.fast_paths
    n = open_.size
    m = n if record_trades else 1  # a sweep keeps only the final equity
    equity = np.empty(m)
    units_out = np.zeros(m)
    trades = np.zeros((n if record_trades else 1, 9))
    no_fills = np.zeros((1, 5))
    state = new_state(cash0, day[0])
    equity[0] = cash0
    lim = min(max_pos, max_exp)
    i = 1
    while i < n:
        # Two tight inner loops settle the common bars with few live variables (measured
        # per bar: flat 0.5 ns against 1.4, holding 1.85 ns against 2.7 in one loop).
        # They only take bars on which step_bar would do exactly the same, and a test runs
        # every bar through step_bar to check it (fast_paths = 0). They read and write the
        # same state array.
        units = state[S_UNITS]
        peak = state[S_PEAK]
        cooloff_until = state[S_COOLOFF_UNTIL]
        if (
            fast_paths
            and units == 0.0
            and peak > 0.0
            and (i < cooloff_until or 1.0 - state[S_CASH] / peak < dd1)
        ):
            # ---- flat, the target stays flat and no breaker starts or ends: no trade ----
            cash = state[S_CASH]
            end = int(cooloff_until) if cooloff_until >= i else n  # the breaker's end resets
            first = i
            while i < end:
                if target[i - 1] != 0.0:  # (a NaN, hold, leaves too: it keeps the blocked side)
                    break
                i += 1
            if i > first:
                # cash is constant here, so only the last day change matters; days never
                # decrease (checked in _arrays), so the ends tell whether one happened
                if day[i - 1] != state[S_DAY]:
                    state[S_DAY_START] = cash
                    state[S_TRADES_TODAY] = 0.0
                    state[S_HALTED] = 0.0
                    state[S_DAY] = day[i - 1]
                if cash < state[S_DAY_START] * (1.0 - max_dloss):
                    state[S_HALTED] = 1.0
                if record_trades:
                    equity[first:i] = cash
                state[S_BLOCKED] = 0.0
                state[S_PREV_TARGET] = 0.0
                state[S_PREV_RAW] = 0.0
                state[S_LAST_CLEAN] = 1.0
                state[S_FORCED] = 0.0
                state[S_CAPPED] = 0.0
                state[S_EQUITY] = cash
        elif (
            fast_paths
            and units != 0.0
            and state[S_LAST_CLEAN] != 0.0
            and state[S_CAPPED] == 0.0
            and state[S_BLOCKED] == 0.0
            and np.isnan(state[S_STOP])
            and np.isnan(state[S_TAKE])
            and i > cooloff_until
            and abs(state[S_PREV_RAW]) <= lim
            and peak > 0.0
        ):
            # ---- holding, the target unchanged and no limit binds: no trade ----
            # Leaving this loop early is always safe: step_bar is the rule. So the
            # drawdown test here is a multiplication with a margin (1e-9, far above
            # rounding) that leaves before step_bar's exact test could fire.
            cash = state[S_CASH]
            prev_raw = state[S_PREV_RAW]
            eq_prev = state[S_EQUITY]
            day_start = state[S_DAY_START]
            halted = state[S_HALTED] != 0.0
            trades_today = state[S_TRADES_TODAY]
            cur_day = state[S_DAY]
            dd_keep = (1.0 - dd0) + 1e-9
            day_floor = day_start * (1.0 - max_dloss)
            while i < n:
                if day[i] != cur_day:  # (repeated harmlessly by step_bar on a break)
                    if clamp_day[i] != day[i]:
                        break  # a day the clamp did not expect: step_bar's clamp decides
                    day_start = eq_prev
                    trades_today = 0.0
                    halted = False
                    day_floor = day_start * (1.0 - max_dloss)
                    cur_day = day[i]
                # a NaN target differs from prev_raw too and leaves for step_bar
                if target[i - 1] != prev_raw or halted or eq_prev < peak * dd_keep:
                    break
                eq_prev = cash + units * close[i]
                if record_trades:
                    equity[i] = eq_prev
                    units_out[i] = units
                peak = max(peak, eq_prev)
                halted = eq_prev < day_floor
                i += 1
            state[S_EQUITY] = eq_prev
            state[S_PEAK] = peak
            state[S_DAY_START] = day_start
            state[S_HALTED] = 1.0 if halted else 0.0
            state[S_TRADES_TODAY] = trades_today
            state[S_DAY] = cur_day
        if i >= n:
            break
        k = int(state[S_N_TRADES])
        step_bar(
            state, i, open_[i], high[i], low[i], close[i], target[i - 1], atr[i - 1], atr[i],
            day[i], clamp_day[i], fee[i], slip[i], cfg, trades, k, record_trades, no_fills,
            False,
        )  # fmt: skip
        if record_trades:
            equity[i] = state[S_EQUITY]
            units_out[i] = state[S_UNITS]
        i += 1
    units = state[S_UNITS]
    n_trades = int(state[S_N_TRADES])
    if units != 0.0 and record_trades:
        s = sign(units)
        entry_px = state[S_ENTRY_PX]
        _put(
            trades,
            n_trades,
            state[S_ENTRY_BAR],
            n - 1,
            s,
            abs(units),
            entry_px,
            close[n - 1],
            units * (close[n - 1] - entry_px) + state[S_REALIZED] - state[S_ENTRY_FEES],
            state[S_ENTRY_FEES],
            4.0,
        )
        n_trades += 1
    if not record_trades:
        equity[0] = state[S_EQUITY]
    trades_out = trades[:n_trades] if record_trades else trades[:0]
    return equity, units_out, trades_out, state[S_NOTIONAL]


class ExecutionCore:
    """The execution rules for one bar at a time: the live paper broker's engine.

    It calls the same :func:`clamp_target` and :func:`fill_bar` the backtest's
    :func:`step_bar` calls, on a state array the caller keeps (and persists): parity with
    the backtest is a property of the code, not of a second implementation. The runner
    clamps at the close (before anything is ordered) and fills when the next candle comes.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.params = engine_params(config, fast_paths=False)
        self._trades = np.zeros((MAX_FILLS_PER_BAR, 9))
        self._fills = np.zeros((MAX_FILLS_PER_BAR, 5))
        self.last_trades: list[dict[str, Any]] = []

    def start(self, day: int) -> np.ndarray:
        """The state of a flat account before its first bar (UTC day number ``day``)."""
        return new_state(self.config.initial_cash, day)

    def clamp(self, state: np.ndarray, bar: int, want: float, *, day: int) -> tuple[float, int]:
        """:func:`clamp_target`: the fraction that may be ordered for bar ``bar`` (expected
        on UTC day ``day``) when ``want`` is wanted; updates ``state`` in place."""
        clamped, code = clamp_target(state, int(bar), float(want), int(day), self.params)
        return float(clamped), int(code)

    def fill(
        self,
        state: np.ndarray,
        bar: int,
        candle: tuple[float, float, float, float],
        want: float,
        *,
        atr_prev: float,
        atr_now: float,
        day: int,
        fee: float,
        slip: float,
    ) -> list[dict[str, float | str]]:
        """:func:`fill_bar`: apply bar ``bar`` (open, high, low, close) to ``state`` in
        place, filling the clamped ``want`` at its open (NaN: no order); returns its fills."""
        o, h, lo, c = (float(x) for x in candle)
        n_trades, n_fills = fill_bar(
            state, int(bar), o, h, lo, c, float(want), float(atr_prev), float(atr_now), int(day),
            float(fee), float(slip), self.params, self._trades, 0, True, self._fills, True,
        )  # fmt: skip
        # the round trips this bar closed, as the backtest records them (TRADE_FIELDS)
        self.last_trades = [
            dict(zip(TRADE_FIELDS, row, strict=True)) | {"reason": REASONS[int(row[8])]}
            for row in self._trades[:n_trades].tolist()
        ]
        return [
            dict(zip(FILL_FIELDS, row, strict=True)) | {"kind": FILL_KINDS[int(row[4])]}
            for row in self._fills[:n_fills].tolist()
        ]


def state_dict(state: np.ndarray) -> dict[str, float]:
    """A state array by field name (for the status API and the logs)."""
    return dict(zip(STATE_FIELDS, state.tolist(), strict=True))


@dataclass
class BacktestResult:
    """Bar-by-bar equity and position, and the closed trades."""

    equity: pd.Series
    units: pd.Series
    trades: pd.DataFrame
    traded_notional: float

    @property
    def returns(self) -> pd.Series:
        from ai_trade_bot.backtest.metrics import equity_returns

        return pd.Series(equity_returns(self.equity), index=self.equity.index)

    @property
    def exposure(self) -> pd.Series:
        """Fraction of bars with a position."""
        return (self.units != 0).astype(float)


def _column(ohlc: pd.DataFrame, name: str) -> np.ndarray:
    """``name`` or ``Name`` (backtesting.py spelling) as float64, without a copy if possible."""
    col = name if name in ohlc.columns else name.capitalize()
    return ohlc[col].to_numpy(np.float64)


def _per_bar(value, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"expected {n} values per bar, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


DAY_NS = 86_400_000_000_000


def expected_day(ts_ns: int | np.ndarray, bar: pd.Timedelta) -> int | np.ndarray:
    """The UTC day number of the bar expected after the one at ``ts_ns`` (epoch ns): the
    day the risk clamp counts a decision's order in, in the backtest and the live runner."""
    return (ts_ns + bar.value) // DAY_NS


def bar_length(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The most common spacing of ``index`` (how the timeframe is inferred elsewhere)."""
    spacing = np.diff(index.asi8)
    if spacing.size == 0:
        return pd.Timedelta(days=1)
    values, counts = np.unique(spacing, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]))


def _arrays(ohlc: pd.DataFrame, target, atr, fee, slip, bar: pd.Timedelta | None = None):
    n = len(ohlc)
    # UTC calendar day of each bar (integer division of epoch nanoseconds: no datetime work)
    if isinstance(ohlc.index, pd.DatetimeIndex):
        if not ohlc.index.is_monotonic_increasing:
            broken = int(np.flatnonzero(np.diff(ohlc.index.asi8) < 0)[0]) + 1
            raise ValueError(
                f"backtest: bars must be in time order; row {broken} "
                f"({ohlc.index[broken]}) comes before the row above it"
            )
        times = ohlc.index.asi8
        day = times // DAY_NS
        # the clamp of bar i's order runs at bar i-1's close, in the day bar i is expected
        # on (what the live runner knows then); never past the day it actually came on
        clamp_day = day.copy()
        expected = expected_day(times[:-1], bar_length(ohlc.index) if bar is None else bar)
        clamp_day[1:] = np.clip(expected, day[:-1], day[1:])
    else:
        day = np.zeros(n, dtype=np.int64)
        clamp_day = day
    return (
        _column(ohlc, "open"),
        _column(ohlc, "high"),
        _column(ohlc, "low"),
        _column(ohlc, "close"),
        _per_bar(target, n),
        _per_bar(np.nan if atr is None else atr, n),
        np.asarray(day, dtype=np.int64),
        np.asarray(clamp_day, dtype=np.int64),
        _per_bar(fee, n),
        _per_bar(slip, n),
    )


def run_backtest(
    ohlc: pd.DataFrame,
    target: pd.Series | np.ndarray,
    config: EngineConfig,
    *,
    fee: float | np.ndarray = 0.0,
    slip: float | np.ndarray = 0.0,
    atr: np.ndarray | None = None,
    fast_paths: bool = True,
    bar: pd.Timedelta | None = None,
) -> BacktestResult:
    """Simulate ``target`` positions over ``ohlc`` bars.

    Args:
        ohlc: Candles with ``open, high, low, close`` (or ``Open`` ...; a DatetimeIndex for
            the daily limits).
        target: Signed fraction of equity wanted after each bar's close.
        config: Execution, stop and risk settings.
        fee: One-way fee as a fraction of notional (scalar or per bar).
        slip: Half-spread plus slippage as a fraction of price (scalar or per bar).
        atr: ATR per bar, in price units (needed for ATR stops and targets).
        fast_paths: False sends every bar through the full rules; slower, same result
            (the tests use it to check the fast paths).
        bar: The timeframe (default: the most common spacing of the bars); the risk
            clamp counts an order in the UTC day the next bar is expected on.
    """
    if "atr" in (config.stop, config.take) and atr is None:
        raise ValueError("ATR stops or targets need the atr array")
    equity, units, trades, notional = _simulate(
        *_arrays(ohlc, target, atr, fee, slip, bar), engine_params(config, fast_paths), True
    )
    frame = pd.DataFrame(trades, columns=list(TRADE_FIELDS))
    for col in ("entry_bar", "exit_bar"):
        frame[col] = frame[col].astype(np.int64)
    frame["reason"] = np.asarray(REASONS, dtype=object)[frame["reason"].to_numpy(np.int64)]
    frame["entry_time"] = ohlc.index[frame["entry_bar"].to_numpy()]
    frame["exit_time"] = ohlc.index[frame["exit_bar"].to_numpy()]
    frame["return"] = frame["pnl"] / (frame["units"] * frame["entry_price"])
    return BacktestResult(
        pd.Series(equity, index=ohlc.index, name="equity"),
        pd.Series(units, index=ohlc.index, name="units"),
        frame,
        notional,
    )


@njit(cache=True, parallel=True)
def _simulate_many(open_, high, low, close, targets, atr, day, clamp_day, fee, slip, cfg):
    finals = np.empty(targets.shape[0])
    for p in prange(targets.shape[0]):
        equity, _, _, _ = _simulate(
            open_, high, low, close, targets[p], atr, day, clamp_day, fee, slip, cfg, False
        )
        finals[p] = equity[-1]
    return finals


@njit(cache=True, parallel=True)
def _simulate_crossovers(open_, high, low, close, windows, pairs, size, atr, day, clamp_day,
                         fee, slip, cfg):  # fmt: skip
    """Each distinct window's mean once, then every (fast, slow) set: its positions into
    a fresh buffer (never a sets x bars matrix), simulated by the same :func:`_simulate`
    a single run uses. Sets are handed to threads one at a time (see the caller)."""
    means = np.full((windows.size, close.size), np.nan)
    for w in prange(windows.size):  # each distinct window once, in parallel
        _rolling_mean_into(close, windows[w], means[w])
    n_sets = pairs.shape[0]
    finals = np.empty(n_sets)
    for p in prange(n_sets):
        target = np.empty(close.size)
        _crossover_into(means[pairs[p, 0]], means[pairs[p, 1]], size, target)
        equity, _, _, _ = _simulate(
            open_, high, low, close, target, atr, day, clamp_day, fee, slip, cfg, False
        )
        finals[p] = equity[0]
    return finals


def sweep_crossovers(
    ohlc: pd.DataFrame,
    windows: list[tuple[int, int]],
    config: EngineConfig,
    *,
    size: float = 1.0,
    fee: float = 0.0,
    slip: float = 0.0,
) -> np.ndarray:
    """Final equity of moving-average crossover strategies, one per (fast, slow) pair,
    in one compiled, parallel call. Each final equity is exactly what
    :func:`run_backtest` gives for that pair's :func:`crossover_positions`."""
    bad = [pair for pair in windows if min(pair) < 1]
    if bad:
        raise ValueError(f"sweep_crossovers: windows must be >= 1, got {bad[:3]}")
    o, h, lo, c, _, a, d, cd, f, s = _arrays(ohlc, np.zeros(len(ohlc)), None, fee, slip)
    distinct = sorted({w for pair in windows for w in pair})
    position = {w: k for k, w in enumerate(distinct)}
    pairs = np.array([(position[fa], position[sl]) for fa, sl in windows], dtype=np.int64)
    cfg = engine_params(config)
    # sets with short windows trade more: one at a time keeps both threads busy to the end
    with numba.parallel_chunksize(1):
        return _simulate_crossovers(
            o,
            h,
            lo,
            c,
            np.array(distinct, dtype=np.int64),
            pairs.reshape(-1, 2),
            size,
            a,
            d,
            cd,
            f,
            s,
            cfg,
        )


def run_many(
    ohlc: pd.DataFrame,
    targets: np.ndarray,
    config: EngineConfig,
    *,
    fee: float = 0.0,
    slip: float = 0.0,
    atr: np.ndarray | None = None,
) -> np.ndarray:
    """Final equity of many target series (rows of ``targets``) in one compiled call."""
    o, h, lo, c, _, a, d, cd, f, s = _arrays(ohlc, np.zeros(len(ohlc)), atr, fee, slip)
    targets = np.ascontiguousarray(targets, dtype=np.float64)
    return _simulate_many(o, h, lo, c, targets, a, d, cd, f, s, engine_params(config))
