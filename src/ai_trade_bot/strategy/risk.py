"""The risk clamp: one function every order passes, in the backtest, the sweep and the live
runner, paper or real (the engine's :func:`ai_trade_bot.backtest.engine.step_bar` and the
runner call it before anything is ordered; a portfolio core will too)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ai_trade_bot.backtest.state import (
    S_BLOCKED,
    S_CAPPED,
    S_CASH,
    S_COOLOFF_UNTIL,
    S_EQUITY,
    S_FORCED,
    S_HALTED,
    S_LAST_CLEAN,
    S_PEAK,
    S_PREV_RAW,
    S_PREV_TARGET,
    S_TRADES_TODAY,
    S_UNITS,
    sign,
    start_day,
)

# ---- clamp reasons (bits of the code clamp_target returns) ----
CLAMP_BLOCKED_SIDE = 1  # the side a stop closed, until the signal changes
CLAMP_MAX_POSITION = 2  # |fraction| above max_position / max_exposure
CLAMP_BREAKER = 4  # drawdown past dd_reduce_end: flat for dd_cooloff_bars
CLAMP_DRAWDOWN = 8  # size scaled down between dd_reduce_start and dd_reduce_end
CLAMP_DAILY_LOSS = 16  # the day's loss passed max_daily_loss: flat until the next day
CLAMP_TRADES_PER_DAY = 32  # no new entry past max_trades_per_day
CLAMP_ORDER_NOTIONAL = 64  # the order cut to max_order_notional
CLAMP_REASONS = (
    (CLAMP_BLOCKED_SIDE, "blocked_side"),
    (CLAMP_MAX_POSITION, "max_position"),
    (CLAMP_BREAKER, "drawdown_breaker"),
    (CLAMP_DRAWDOWN, "drawdown_scaling"),
    (CLAMP_DAILY_LOSS, "daily_loss"),
    (CLAMP_TRADES_PER_DAY, "trades_per_day"),
    (CLAMP_ORDER_NOTIONAL, "max_order_notional"),
)


def clamp_reasons(code: int) -> list[str]:
    """The names of the limits set in a :func:`clamp_target` code."""
    return [name for bit, name in CLAMP_REASONS if int(code) & bit]


@njit(cache=True)
def clamp_target(state, i, want, day, cfg):
    """The risk clamp: the position that may be ordered for bar ``i`` when ``want`` (a
    signed fraction of equity; NaN: hold, no new entries) is wanted at the close before it.

    Every limit is applied here, before anything is ordered, on paper or on an exchange:
    the side blocked after a stop, ``max_position``/``max_exposure``, the drawdown breaker
    and scaling, the daily loss halt, the trades-per-day cap and ``max_order_notional``.
    ``day`` is the UTC day bar ``i`` is expected on (the decision's time plus one bar):
    the backtest and the live runner both pass it, so both clamp alike.

    The state is updated with what the clamp decides (blocked side, breaker, the raw and
    clamped wants); :func:`fill_bar` then fills the returned fraction at bar ``i``'s open.
    Returns (the clamped fraction, a code of the limits that bound: ``CLAMP_*`` bits).
    """
    max_pos, max_exp = cfg.max_position, cfg.max_exposure
    dd0, dd1 = cfg.dd_reduce_start, cfg.dd_reduce_end
    rebalance, max_notional = cfg.rebalance_threshold, cfg.max_order_notional
    max_trades, cooloff = cfg.max_trades_per_day, cfg.dd_cooloff_bars
    start_day(state, day)
    units = state[S_UNITS]
    cash = state[S_CASH]
    eq_prev = state[S_EQUITY]
    prev_target = state[S_PREV_TARGET]
    blocked_side = state[S_BLOCKED]
    cooloff_until = state[S_COOLOFF_UNTIL]
    peak = state[S_PEAK]
    code = 0
    lim = min(max_pos, max_exp)
    hold = np.isnan(want)
    raw = want
    if hold:  # keep the open position as it is (it still meets the breaker and halt)
        want = prev_target if units != 0.0 else 0.0
    else:
        if blocked_side != 0.0 and sign(want) == blocked_side:
            want = 0.0
            code |= CLAMP_BLOCKED_SIDE
        elif sign(want) != blocked_side:
            blocked_side = 0.0
        if abs(want) > lim:
            want = lim * sign(want)
            code |= CLAMP_MAX_POSITION
    forced = False
    if i == cooloff_until:  # the circuit breaker ends: measure drawdown afresh
        peak = eq_prev
    dd = 1.0 - eq_prev / peak
    if i < cooloff_until:
        if want != 0.0:
            forced = True
            code |= CLAMP_BREAKER
        want = 0.0
    elif dd >= dd1:
        if want != 0.0:
            forced = True
            code |= CLAMP_BREAKER
        want = 0.0
        cooloff_until = i + cooloff
    elif dd > dd0 and not hold:
        want *= (dd1 - dd) / (dd1 - dd0)
        code |= CLAMP_DRAWDOWN
    if state[S_HALTED] != 0.0:
        if want != 0.0:
            forced = True
            code |= CLAMP_DAILY_LOSS
        want = 0.0
    side = sign(units)
    want_side = sign(want)
    if want_side != 0.0 and want_side != side and state[S_TRADES_TODAY] >= max_trades:
        want = 0.0
        want_side = 0.0
        code |= CLAMP_TRADES_PER_DAY
    # the order the fill will make (a close, an entry, a resize past the threshold or the
    # next step of a position the cap is building), valued at the last close: held at
    # max_order_notional. S_CAPPED: 1 the cap bound (more steps to come), 2 the last step.
    capped = 0.0
    if max_notional < np.inf:
        building = state[S_CAPPED] == 1.0
        trades = want_side != side or (
            side != 0.0 and (building or abs(want - prev_target) > rebalance)
        )
        held = eq_prev - cash  # units * close
        order = want * eq_prev - held
        if trades and abs(order) > max_notional:
            want = (held + sign(order) * max_notional) / eq_prev if eq_prev > 0.0 else 0.0
            capped = 1.0
            code |= CLAMP_ORDER_NOTIONAL
        elif trades and building:
            capped = 2.0
    state[S_BLOCKED] = blocked_side
    state[S_COOLOFF_UNTIL] = cooloff_until
    state[S_PEAK] = peak
    state[S_FORCED] = 1.0 if forced else 0.0
    state[S_CAPPED] = capped
    state[S_PREV_RAW] = raw
    state[S_LAST_CLEAN] = 1.0 if want == raw else 0.0
    return want, code
