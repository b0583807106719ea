"""The execution core over N symbols with shared cash: one step per bar for the whole book.

The single-symbol rules are not written twice. Each symbol keeps the single-symbol state
array (:mod:`ai_trade_bot.backtest.state`) for its position, stops and blocked side; the
account is one more state array of the same layout whose cash, equity, peak, day, daily
loss, trade count and breaker are the book's. A step for bar ``i`` is:

1. **The clamp** (at the close of bar ``i - 1``, before anything is ordered), in this order:
   - each symbol through :func:`ai_trade_bot.strategy.risk.clamp_target` (blocked side
     after a stop, ``max_position_size``, the drawdown scaling and breaker, the daily loss
     halt, ``max_daily_trades``) with the account's equity, peak, day, halt and trade
     count: the drawdown and daily loss are the book's. Symbols are clamped strongest
     confidence first, and each new entry counts against the day's trades at once, so
     when the cap binds the weakest new entries are the ones refused;
   - then the cross-symbol :func:`ai_trade_bot.portfolio.limits.allocate`: position size,
     risk to the stop, sector, correlated cluster (ids from past bars only), total
     exposure and heat, weakest confidence cut first. A held position it shrinks is
     resized; one it zeroes is closed as a risk exit.
2. **The fill** at bar ``i``'s open, symbol by symbol, with each symbol's fee and slippage,
   through :func:`ai_trade_bot.backtest.engine.fill_bar`: every symbol is sized on the
   book's equity at the open (valued before any of this bar's fills), then its stop and
   target inside the bar. A symbol without a candle at ``i`` (NaN open) neither fills nor
   checks its stops; its order is dropped and it is valued at its last close.
3. **The mark** at the closes: the book's equity, peak and the daily loss halt.

``max_order_notional`` (a per-order cap of one symbol's runner) is not applied here.

The backtest (:func:`run_portfolio`) and the live runner call these same two kernels,
:func:`portfolio_clamp` and :func:`portfolio_fill`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from ai_trade_bot.backtest.engine import (
    DAY_NS,
    MAX_FILLS_PER_BAR,
    REASONS,
    STOP_ATR,
    STOP_PCT,
    TRADE_FIELDS,
    EngineConfig,
    _put,
    bar_length,
    engine_params,
    expected_day,
    fill_bar,
)
from ai_trade_bot.backtest.state import (
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
    S_REALIZED,
    S_STOP,
    S_TRADES_TODAY,
    S_UNITS,
    STATE_SIZE,
    new_state,
    sign,
    start_day,
)
from ai_trade_bot.portfolio.limits import RiskLimits, allocate, limit_names, rolling_clusters
from ai_trade_bot.strategy.risk import clamp_reasons, clamp_target

_SYNCED = (S_EQUITY, S_PEAK, S_DAY_START, S_TRADES_TODAY, S_HALTED, S_COOLOFF_UNTIL, S_DAY)


def portfolio_config(engine: EngineConfig, limits: RiskLimits) -> EngineConfig:
    """The engine settings of a book: stops, targets and the initial cash from
    ``engine``; position size, daily loss, daily trades and the drawdown scaling from
    ``limits`` (the gross limits are :func:`allocate`'s); no per-order notional cap."""
    return dataclasses.replace(
        engine,
        max_position=limits.max_position_size,
        max_exposure=1.0,
        max_daily_loss=limits.max_daily_loss,
        max_trades_per_day=limits.max_daily_trades,
        dd_reduce_start=limits.dd_reduce_start,
        dd_reduce_end=limits.dd_reduce_end,
        max_order_notional=None,
    )


@njit(cache=True)
def new_book(n_symbols: int, initial_cash: float, day: int):
    """The account and the symbols' states of a flat book before its first bar."""
    account = new_state(initial_cash, day)
    states = np.empty((n_symbols, STATE_SIZE))
    for s in range(n_symbols):
        states[s] = new_state(0.0, day)
    return account, states


@njit(cache=True)
def stop_distances(states, close, atr, cfg):
    """Each symbol's risk to its stop as a fraction of its price: the open position's
    distance from the last close to its stop, or for a new entry the configured stop's
    (``percent``: its value; ``atr``: its multiple of ATR over the close); NaN without a
    stop."""
    n = states.shape[0]
    out = np.full(n, np.nan)
    for s in range(n):
        units, stop, c = states[s, S_UNITS], states[s, S_STOP], close[s]
        if not c > 0.0:
            continue
        if units != 0.0 and not np.isnan(stop):
            out[s] = abs(c - stop) / c
        elif cfg.stop == STOP_PCT:
            out[s] = cfg.stop_value
        elif cfg.stop == STOP_ATR and atr[s] > 0.0:
            out[s] = cfg.stop_value * atr[s] / c
    return out


@njit(cache=True)
def portfolio_clamp(
    account, states, i, want, confidence, stop_distance, clamp_day, sector_ids, cluster_ids,
    caps, cfg,
):  # fmt: skip
    """Step 1 (module docstring) for bar ``i``: the fractions that may be ordered. Updates
    the account and the states in place (as :func:`clamp_target` does). Returns (the
    fractions, each symbol's ``CLAMP_*`` code, each symbol's ``PORTFOLIO_*`` code)."""
    n = states.shape[0]
    start_day(account, clamp_day)
    conf = np.where(np.isnan(confidence), 0.0, confidence)
    order = np.argsort(-conf, kind="mergesort")  # strongest first; ties: symbol order
    clamped = np.zeros(n)
    codes = np.zeros(n, dtype=np.int64)
    entries = 0.0
    for s in order:
        st = states[s]
        for f in _SYNCED:
            st[f] = account[f]
        st[S_TRADES_TODAY] = account[S_TRADES_TODAY] + entries
        w, code = clamp_target(st, i, want[s], clamp_day, cfg)
        side = sign(st[S_UNITS])
        if sign(w) != 0.0 and sign(w) != side:
            entries += 1.0
        clamped[s] = w
        codes[s] = code
    if n > 0:  # the breaker's start and its new peak are the book's (equal for all)
        account[S_PEAK] = states[order[0], S_PEAK]
        account[S_COOLOFF_UNTIL] = states[order[0], S_COOLOFF_UNTIL]
    allowed, limit_codes = allocate(
        clamped, confidence, stop_distance, sector_ids, cluster_ids, caps
    )
    for s in range(n):
        if limit_codes[s] != 0:
            states[s, S_LAST_CLEAN] = 0.0
            if allowed[s] == 0.0 and clamped[s] != 0.0 and states[s, S_UNITS] != 0.0:
                states[s, S_FORCED] = 1.0  # a position the book's limits close: a risk exit
    return allowed, codes, limit_codes


@njit(cache=True)
def portfolio_fill(
    account, states, i, o, h, lo, c, want, atr_prev, atr_now, day, fee, slip, last_close,
    cfg, trades, trade_symbol, k0, record, fills, fill_symbol, j0, record_fills,
):  # fmt: skip
    """Steps 2 and 3 (module docstring) for bar ``i``: fill ``want`` (the clamped
    fractions; NaN: no order) at the opens ``o`` and mark the book at the closes ``c``.
    ``last_close`` (each symbol's last known close) is updated in place. Returns the
    number of round trips closed and fills recorded (``fills`` needs room for
    :data:`MAX_FILLS_PER_BAR` per symbol)."""
    n = states.shape[0]
    start_day(account, day)
    eq_open = account[S_CASH]
    for s in range(n):
        if states[s, S_UNITS] != 0.0:  # (a symbol never traded may have no price yet)
            px = o[s] if not np.isnan(o[s]) else last_close[s]
            eq_open += states[s, S_UNITS] * px
    k = k0
    j = j0
    for s in range(n):
        if np.isnan(o[s]):
            continue
        st = states[s]
        for f in _SYNCED:
            st[f] = account[f]
        st[S_CASH] = eq_open - st[S_UNITS] * o[s]  # sized on the book's equity at the open
        cash0 = st[S_CASH]
        trades0 = st[S_TRADES_TODAY]
        notional0 = st[S_NOTIONAL]
        closed, made = fill_bar(
            st, i, o[s], h[s], lo[s], c[s], want[s], atr_prev[s], atr_now[s], day, fee[s],
            slip[s], cfg, trades, k, record, fills[j:], record_fills,
        )  # fmt: skip
        for r in range(k, k + closed):
            trade_symbol[r] = s
        if record_fills:
            for r in range(j, j + made):
                fill_symbol[r] = s
            j += made
        k += closed
        account[S_CASH] += st[S_CASH] - cash0
        account[S_TRADES_TODAY] += st[S_TRADES_TODAY] - trades0
        account[S_NOTIONAL] += st[S_NOTIONAL] - notional0
        last_close[s] = c[s]
    equity = account[S_CASH]
    for s in range(n):
        if states[s, S_UNITS] != 0.0:
            equity += states[s, S_UNITS] * last_close[s]
    account[S_EQUITY] = equity
    account[S_PEAK] = max(account[S_PEAK], equity)
    if equity < account[S_DAY_START] * (1.0 - cfg.max_daily_loss):
        account[S_HALTED] = 1.0
    account[S_N_TRADES] += k - k0
    return k - k0, j - j0


@njit(cache=True)
def _simulate_portfolio(
    open_, high, low, close, want, confidence, atr, day, clamp_day, fee, slip, sector_ids,
    clusters, caps, cfg, trades, trade_symbol, record,
):  # fmt: skip
    """The batch loop; see :func:`run_portfolio`. Returns (equity, units, clamp codes,
    limit codes, round trips closed, traded notional, complete): ``complete`` is False
    when ``trades`` was too small (the caller retries with more room)."""
    n_bars, n = open_.shape
    account, states = new_book(n, cfg.initial_cash, day[0])
    equity = np.empty(n_bars)
    units = np.zeros((n_bars, n))
    clamp_codes = np.zeros((n_bars, n), dtype=np.int64)
    limit_codes = np.zeros((n_bars, n), dtype=np.int64)
    last_close = close[0].copy()
    equity[0] = cfg.initial_cash
    no_fills = np.zeros((1, 5))
    no_fill_symbol = np.zeros(1, dtype=np.int64)
    k = 0
    for i in range(1, n_bars):
        if record and k + 2 * n > trades.shape[0]:
            return equity, units, clamp_codes, limit_codes, k, 0.0, False
        risk = stop_distances(states, last_close, atr[i - 1], cfg)
        allowed, codes, lcodes = portfolio_clamp(
            account, states, i, want[i - 1], confidence[i - 1], risk, clamp_day[i],
            sector_ids, clusters[i - 1], caps, cfg,
        )  # fmt: skip
        clamp_codes[i] = codes
        limit_codes[i] = lcodes
        closed, _ = portfolio_fill(
            account, states, i, open_[i], high[i], low[i], close[i], allowed, atr[i - 1],
            atr[i], day[i], fee[i], slip[i], last_close, cfg, trades, trade_symbol, k,
            record, no_fills, no_fill_symbol, 0, False,
        )  # fmt: skip
        k += closed
        equity[i] = account[S_EQUITY]
        units[i] = states[:, S_UNITS]
    if record:  # open positions are closed at the last close, as the single run does
        for s in range(n):
            u = states[s, S_UNITS]
            if u != 0.0:
                if k >= trades.shape[0]:
                    return equity, units, clamp_codes, limit_codes, k, 0.0, False
                px = last_close[s]
                entry_px = states[s, S_ENTRY_PX]
                _put(
                    trades, k, states[s, S_ENTRY_BAR], n_bars - 1, sign(u), abs(u), entry_px,
                    px, u * (px - entry_px) + states[s, S_REALIZED] - states[s, S_ENTRY_FEES],
                    states[s, S_ENTRY_FEES], 4.0,
                )  # fmt: skip
                trade_symbol[k] = s
                k += 1
    return equity, units, clamp_codes, limit_codes, k, account[S_NOTIONAL], True


class PortfolioCore:
    """The book's execution rules one bar at a time: the N-symbol live runner's engine.

    It calls the same :func:`portfolio_clamp` and :func:`portfolio_fill` the backtest's
    loop calls, on an account and states the caller keeps (and persists).
    """

    def __init__(self, engine: EngineConfig, limits: RiskLimits, symbols: list[str]) -> None:
        self.symbols = list(symbols)
        self.limits = limits
        self.params = engine_params(portfolio_config(engine, limits), fast_paths=False)
        self.sector_ids = limits.sector_ids(self.symbols)
        self.caps = limits.caps()
        n = len(self.symbols)
        self._trades = np.zeros((MAX_FILLS_PER_BAR * n, len(TRADE_FIELDS)))
        self._trade_symbol = np.zeros(MAX_FILLS_PER_BAR * n, dtype=np.int64)
        self._fills = np.zeros((MAX_FILLS_PER_BAR * n, 5))
        self._fill_symbol = np.zeros(MAX_FILLS_PER_BAR * n, dtype=np.int64)

    def start(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """The account and the states of a flat book (UTC day number ``day``)."""
        return new_book(len(self.symbols), self.params.initial_cash, int(day))

    def clamp(
        self,
        account: np.ndarray,
        states: np.ndarray,
        bar: int,
        want: np.ndarray,
        confidence: np.ndarray,
        *,
        last_close: np.ndarray,
        atr: np.ndarray,
        clusters: np.ndarray,
        day: int,
    ) -> tuple[np.ndarray, list[list[str]]]:
        """The fractions that may be ordered for bar ``bar`` (expected on UTC day
        ``day``); the account and states are updated in place. Returns them with each
        symbol's reasons (its own clamp's and the book's limits' names)."""
        f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        risk = stop_distances(states, f64(last_close), f64(atr), self.params)
        allowed, codes, limit_codes = portfolio_clamp(
            account, states, int(bar), f64(want), f64(confidence), risk, int(day),
            self.sector_ids, np.array(clusters, dtype=np.int64), self.caps, self.params,
        )  # fmt: skip
        reasons = [
            clamp_reasons(c) + limit_names(lc)
            for c, lc in zip(codes.tolist(), limit_codes.tolist(), strict=True)
        ]
        return allowed, reasons

    def fill(
        self,
        account: np.ndarray,
        states: np.ndarray,
        bar: int,
        candles: np.ndarray,
        allowed: np.ndarray,
        *,
        atr_prev: np.ndarray,
        atr_now: np.ndarray,
        day: int,
        fee: np.ndarray,
        slip: np.ndarray,
        last_close: np.ndarray,
        record_trades: bool = True,
    ) -> tuple[list[dict[str, float | str]], list[dict[str, float | str]]]:
        """Apply bar ``bar``'s candles ((symbols, 4): open, high, low, close; a row of
        NaN: no candle) to the book, filling ``allowed`` at the opens; returns the fills
        and the round trips closed, by symbol. ``last_close`` is updated in place."""
        from ai_trade_bot.backtest.engine import FILL_FIELDS, FILL_KINDS

        f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        candles = f64(candles)
        closed, made = portfolio_fill(
            account, states, int(bar), candles[:, 0].copy(), candles[:, 1].copy(),
            candles[:, 2].copy(), candles[:, 3].copy(), f64(allowed), f64(atr_prev),
            f64(atr_now), int(day), f64(fee), f64(slip), last_close, self.params, self._trades,
            self._trade_symbol, 0, record_trades, self._fills, self._fill_symbol, 0, True,
        )  # fmt: skip
        fills = [
            {"symbol": self.symbols[int(self._fill_symbol[r])]}
            | dict(zip(FILL_FIELDS, self._fills[r].tolist(), strict=True))
            | {"kind": FILL_KINDS[int(self._fills[r, 4])]}
            for r in range(made)
        ]
        trades = [
            {"symbol": self.symbols[int(self._trade_symbol[r])]}
            | dict(zip(TRADE_FIELDS, self._trades[r].tolist(), strict=True))
            | {"reason": REASONS[int(self._trades[r, 8])]}
            for r in range(closed if record_trades else 0)
        ]
        return fills, trades


@dataclass
class PortfolioResult:
    """A book's bar-by-bar equity, units and weights per symbol, its closed trades (with
    a ``symbol`` column), and per bar and symbol the limits that bound."""

    equity: pd.Series
    units: pd.DataFrame
    weights: pd.DataFrame  # signed fraction of the book's equity held, at each close
    trades: pd.DataFrame
    clamp_codes: pd.DataFrame  # CLAMP_* bits of each symbol's own clamp
    limit_codes: pd.DataFrame  # PORTFOLIO_* bits of the cross-symbol clamp
    clusters: pd.DataFrame
    traded_notional: float

    @property
    def returns(self) -> pd.Series:
        from ai_trade_bot.backtest.metrics import equity_returns

        return pd.Series(equity_returns(self.equity), index=self.equity.index)

    def limit_counts(self) -> dict[str, int]:
        """How many (bar, symbol) decisions each limit bound on."""
        counts: dict[str, int] = {}
        for frame, names in ((self.clamp_codes, clamp_reasons), (self.limit_codes, limit_names)):
            values, freq = np.unique(frame.to_numpy(), return_counts=True)
            for value, count in zip(values.tolist(), freq.tolist(), strict=True):
                for name in names(value):
                    counts[name] = counts.get(name, 0) + int(count)
        return dict(sorted(counts.items()))

    def exposure_by(self, groups: dict[str, str] | pd.DataFrame) -> pd.DataFrame:
        """Gross exposure over time per group: a fixed map symbol -> group (sectors) or a
        frame of group ids per time and symbol (correlation clusters)."""
        gross = self.weights.abs()
        if isinstance(groups, dict):
            return gross.T.groupby(pd.Series(groups)).sum().T
        ids = groups.reindex(index=gross.index, columns=gross.columns).to_numpy()
        values = gross.to_numpy()
        out = np.zeros_like(values)  # each time's largest cluster, then the next ...
        for t in range(values.shape[0]):
            sums = np.bincount(ids[t], weights=values[t], minlength=values.shape[1])
            out[t] = np.sort(sums)[::-1]
        names = [f"cluster_{k + 1}" for k in range(values.shape[1])]
        return pd.DataFrame(out, index=gross.index, columns=names).loc[:, lambda f: f.sum() > 0]


def _matrix(value, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(shape, float(arr))
    if arr.ndim == 1 and arr.shape == (shape[1],):
        return np.ascontiguousarray(np.broadcast_to(arr, shape))
    if arr.shape != shape:
        raise ValueError(f"portfolio: {name} must be a scalar, one per symbol or {shape}")
    return np.ascontiguousarray(arr)


def run_portfolio(
    bars: dict[str, pd.DataFrame] | pd.DataFrame,
    want: pd.DataFrame,
    engine: EngineConfig,
    limits: RiskLimits,
    *,
    confidence: pd.DataFrame | None = None,
    atr: pd.DataFrame | None = None,
    fee: float | np.ndarray | pd.Series = 0.0,
    slip: float | np.ndarray | pd.Series = 0.0,
    clusters: pd.DataFrame | None = None,
    bar: pd.Timedelta | None = None,
) -> PortfolioResult:
    """Trade ``want`` (signed fractions of the book's equity, decided at each close;
    NaN: hold) over every symbol's candles with shared cash and the book's limits.

    Args:
        bars: Per symbol candles (``open, high, low, close``), or one frame with a
            (symbol, field) column MultiIndex; aligned on the union of their times (a
            symbol without a candle at a time is NaN there).
        want: Target fractions per time (rows) and symbol (columns).
        engine: Stops, targets and initial cash (:func:`portfolio_config` takes the rest
            from ``limits``).
        limits: The book's limits (``params:risk``).
        confidence: Each decision's confidence (who is cut first); default 0.
        atr: ATR per time and symbol (ATR stops and targets, and their risk).
        fee, slip: One-way fee and half-spread plus slippage: scalars, per symbol (a
            Series by symbol) or per time and symbol.
        clusters: Correlation cluster ids per time and symbol (default: computed from
            past close-to-close returns, :func:`rolling_clusters`).
        bar: The timeframe (default: the most common spacing of the times).
    """
    if isinstance(bars, pd.DataFrame):
        bars = {s: bars[s] for s in bars.columns.get_level_values(0).unique()}
    symbols = list(want.columns)
    missing = [s for s in symbols if s not in bars]
    if missing:
        raise ValueError(f"portfolio: no candles for symbols {missing}")
    index = want.index
    fields = {
        key: np.ascontiguousarray(
            pd.concat({s: bars[s][key] for s in symbols}, axis=1)
            .reindex(index)
            .to_numpy(np.float64)
        )
        for key in ("open", "high", "low", "close")
    }
    shape = fields["close"].shape
    if not isinstance(index, pd.DatetimeIndex) or not index.is_monotonic_increasing:
        raise ValueError("portfolio: the times must be a DatetimeIndex in time order")
    if "atr" in (engine.stop, engine.take) and atr is None:
        raise ValueError("portfolio: ATR stops or targets need the atr frame")
    times = index.asi8
    day = times // DAY_NS
    clamp_day = day.copy()
    if len(times) > 1:
        expected = expected_day(times[:-1], bar_length(index) if bar is None else bar)
        clamp_day[1:] = np.clip(expected, day[:-1], day[1:])
    if clusters is None:
        returns = pd.DataFrame(fields["close"], index=index, columns=symbols).pct_change(
            fill_method=None
        )
        clusters = rolling_clusters(
            returns, limits.correlation_window, limits.correlation_threshold, every=1
        )
    cluster_ids = np.ascontiguousarray(
        clusters.reindex(index=index, columns=symbols).to_numpy(np.int64)
    )
    per_symbol = lambda v: v.reindex(symbols).to_numpy() if isinstance(v, pd.Series) else v  # noqa: E731
    conf = _matrix(
        0.0 if confidence is None else confidence.reindex(index=index, columns=symbols),
        shape,
        "confidence",
    )
    atr_m = _matrix(
        np.nan if atr is None else atr.reindex(index=index, columns=symbols), shape, "atr"
    )
    cfg = engine_params(portfolio_config(engine, limits), fast_paths=False)
    capacity = max(64, 4 * shape[1] + shape[0] // 4)
    while True:
        trades = np.zeros((capacity, len(TRADE_FIELDS)))
        trade_symbol = np.zeros(capacity, dtype=np.int64)
        equity, units, ccodes, lcodes, k, notional, complete = _simulate_portfolio(
            fields["open"], fields["high"], fields["low"], fields["close"],
            _matrix(want, shape, "want"), conf, atr_m, np.asarray(day, np.int64),
            np.asarray(clamp_day, np.int64), _matrix(per_symbol(fee), shape, "fee"),
            _matrix(per_symbol(slip), shape, "slip"), limits.sector_ids(symbols), cluster_ids,
            limits.caps(), cfg, trades, trade_symbol, True,
        )  # fmt: skip
        if complete:
            break
        capacity *= 4
    frame = pd.DataFrame(trades[:k], columns=list(TRADE_FIELDS))
    for col in ("entry_bar", "exit_bar"):
        frame[col] = frame[col].astype(np.int64)
    frame.insert(0, "symbol", np.asarray(symbols, dtype=object)[trade_symbol[:k]])
    frame["reason"] = np.asarray(REASONS, dtype=object)[frame["reason"].to_numpy(np.int64)]
    frame["entry_time"] = index[frame["entry_bar"].to_numpy()]
    frame["exit_time"] = index[frame["exit_bar"].to_numpy()]
    frame["return"] = frame["pnl"] / (frame["units"] * frame["entry_price"])
    frame = frame.sort_values(["exit_bar", "symbol"], kind="stable").reset_index(drop=True)
    marks = pd.DataFrame(fields["close"], index=index, columns=symbols).ffill().to_numpy()
    eq = pd.Series(equity, index=index, name="equity")
    units_df = pd.DataFrame(units, index=index, columns=symbols)
    weights = pd.DataFrame(
        np.nan_to_num(units * marks) / equity[:, None], index=index, columns=symbols
    )
    return PortfolioResult(
        equity=eq,
        units=units_df,
        weights=weights,
        trades=frame,
        clamp_codes=pd.DataFrame(ccodes, index=index, columns=symbols),
        limit_codes=pd.DataFrame(lcodes, index=index, columns=symbols),
        clusters=pd.DataFrame(cluster_ids, index=index, columns=symbols),
        traded_notional=notional,
    )
