"""The explicit state of one strategy: a float64 array, so numba, the sweep and the live
runner's state file all hold the same thing. Fields by name (:data:`STATE_FIELDS`); the
live store keeps it by name with :data:`STATE_VERSION`, and reads an older layout by
:func:`state_from_record`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from ai_trade_bot.errors import AiTradeBotError

S_CASH = 0
S_UNITS = 1
S_ENTRY_PX = 2
S_ENTRY_BAR = 3
S_ENTRY_FEES = 4
S_REALIZED = 5  # booked P&L of scaled-out parts of the open position
S_STOP = 6
S_TAKE = 7
S_PEAK = 8
S_DAY_START = 9  # equity at the start of the current UTC day
S_TRADES_TODAY = 10
S_HALTED = 11  # 1 after the daily loss limit, until the day changes
S_BLOCKED = 12  # side blocked after a stop, until the signal changes
S_NOTIONAL = 13  # traded notional so far
S_PREV_TARGET = 14
S_EQUITY = 15  # equity at the last close
S_COOLOFF_UNTIL = 16
S_PREV_RAW = 17
S_LAST_CLEAN = 18
S_DAY = 19  # UTC day of the last bar
S_N_TRADES = 20  # round trips closed so far
S_FORCED = 21  # 1 when the clamp zeroed a wanted position (breaker, daily loss): a risk exit
S_CAPPED = 22  # the order cap is building the position: resize however small the step
STATE_SIZE = 23
STATE_FIELDS = (
    "cash",
    "units",
    "entry_px",
    "entry_bar",
    "entry_fees",
    "realized",
    "stop",
    "take",
    "peak",
    "day_start",
    "trades_today",
    "halted",
    "blocked_side",
    "traded_notional",
    "prev_target",
    "equity",
    "cooloff_until",
    "prev_raw",
    "last_clean",
    "day",
    "n_trades",
    "forced",
    "capped",
)
# the layouts this version reads: 1 had the first 21 fields (no forced, no capped)
STATE_VERSION = 2
_LAYOUTS = {1: STATE_FIELDS[:21], 2: STATE_FIELDS}


@njit(cache=True)
def sign(x: float) -> float:
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


@njit(cache=True)
def new_state(initial_cash: float, day: int) -> np.ndarray:
    """A flat strategy with ``initial_cash`` before its first bar (UTC day ``day``)."""
    state = np.zeros(STATE_SIZE)
    state[S_CASH] = initial_cash
    state[S_ENTRY_BAR] = -1.0
    state[S_STOP] = np.nan
    state[S_TAKE] = np.nan
    state[S_PEAK] = initial_cash
    state[S_DAY_START] = initial_cash
    state[S_EQUITY] = initial_cash
    state[S_COOLOFF_UNTIL] = -1.0
    state[S_PREV_RAW] = np.nan
    state[S_DAY] = day
    return state


@njit(cache=True)
def start_day(state, day):
    """Start UTC day ``day`` when it is not the state's day: the loss and trade counters
    restart from the equity at the last close."""
    if day != state[S_DAY]:
        state[S_DAY_START] = state[S_EQUITY]
        state[S_TRADES_TODAY] = 0.0
        state[S_HALTED] = 0.0
        state[S_DAY] = day


def state_record(state: np.ndarray) -> dict[str, Any]:
    """The state by field name, with its layout's version (what the live store keeps)."""
    fields = dict(zip(STATE_FIELDS, state.tolist(), strict=True))
    return {"version": STATE_VERSION, "fields": fields}


def state_from_record(record: dict[str, Any] | list[float], *, where: str = "state") -> np.ndarray:
    """A state array from :func:`state_record`'s dict, or from an older file's list by
    position (version 1). Fields a layout did not have start at their flat values (0).
    Another version is refused, naming both."""
    if isinstance(record, list):  # older files kept the array by position
        versions = {len(layout): v for v, layout in _LAYOUTS.items()}
        if len(record) not in versions:
            raise AiTradeBotError(
                f"{where}: an execution state of {len(record)} values by position matches no "
                f"layout this version reads ({sorted(versions)} values); start a new state "
                "file (--state)"
            )
        version = versions[len(record)]
        record = {"version": version, "fields": dict(zip(_LAYOUTS[version], record, strict=True))}
    version = record.get("version")
    if version not in _LAYOUTS:
        raise AiTradeBotError(
            f"{where}: execution state version {version} is not one this version reads "
            f"(it writes version {STATE_VERSION} and reads {sorted(_LAYOUTS)}); run the "
            "version that wrote it, or start a new state file (--state)"
        )
    fields = record["fields"]
    unknown = set(fields) - set(_LAYOUTS[version])
    if unknown:
        raise AiTradeBotError(f"{where}: unknown execution state fields {sorted(unknown)}")
    state = np.zeros(STATE_SIZE)
    for position, name in enumerate(STATE_FIELDS):
        value = fields.get(name)
        state[position] = np.nan if value is None else float(value)
        if name not in fields:
            state[position] = 0.0
    return state
