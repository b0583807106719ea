"""A market's weekly trading calendar, inferred from its own candles.

Equity and FX data skip nights, weekends and holidays; crypto trades every bar. A spacing
between two candles is only a gap when it hides bars the market usually trades, so gaps
are counted against the weekly calendar the data itself shows: a slot of the week (for
example "Monday 14:00" on hourly bars) is a trading slot when candles appear in it in at
least half of the weeks the history spans.

Written by hand because no library infers a calendar from data (exchange_calendars and
pandas_market_calendars need the exchange's name and ship fixed holiday lists).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WEEK = pd.Timedelta(days=7)
# 1970-01-05 was a Monday: weekly slots count from Monday 00:00 UTC.
_ORIGIN_NS = pd.Timestamp("1970-01-05", tz="UTC").value


@dataclass(frozen=True)
class WeeklyCalendar:
    """Which slots of the week (bars since Monday 00:00 UTC) the market trades."""

    bar: pd.Timedelta
    active: np.ndarray  # bool, one per slot of the week

    @property
    def slots_per_week(self) -> int:
        return int(self.active.size)

    def trading_days(self) -> list[str]:
        """Weekdays with at least one trading slot."""
        per_day = self.active.reshape(7, -1).any(axis=1) if self.slots_per_week % 7 == 0 else []
        names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        return [n for n, on in zip(names, per_day, strict=False) if on]

    def describe(self) -> dict[str, object]:
        return {
            "bar": str(self.bar),
            "slots_per_week": self.slots_per_week,
            "trading_slots_per_week": int(self.active.sum()),
            "trading_days": self.trading_days(),
        }


def _slots(index: pd.DatetimeIndex, bar: pd.Timedelta) -> np.ndarray:
    """Absolute slot number of each timestamp (bars since the Monday origin, floored)."""
    return (index.asi8 - _ORIGIN_NS) // bar.value


def infer_calendar(
    index: pd.DatetimeIndex, bar: pd.Timedelta, *, min_share: float = 0.5
) -> WeeklyCalendar | None:
    """The weekly calendar of sorted, unique ``index``; None when a week is not a whole
    number of bars or the history is shorter than two weeks (then every slot counts)."""
    if bar.value <= 0 or WEEK.value % bar.value or len(index) < 2:
        return None
    per_week = WEEK.value // bar.value
    weeks = (index[-1] - index[0]) / WEEK
    if weeks < 2:
        return None
    slots = _slots(index, bar)
    counts = np.bincount(np.unique(slots) % per_week, minlength=per_week)
    return WeeklyCalendar(bar, counts >= min_share * weeks)


def missing_bars(index: pd.DatetimeIndex, bar: pd.Timedelta, calendar: WeeklyCalendar | None):
    """Trading slots strictly between each pair of consecutive candles (length n - 1).

    Without a calendar, every slot counts: a spacing of k bars hides k - 1 bars.
    """
    slots = _slots(index, bar)
    if calendar is None:
        return np.maximum(np.diff(slots) - 1, 0)
    per_week = calendar.slots_per_week
    prefix = np.concatenate([[0], np.cumsum(calendar.active)])
    n_active = int(prefix[-1])

    def active_before(x: np.ndarray) -> np.ndarray:  # trading slots in [0, x)
        return (x // per_week) * n_active + prefix[x % per_week]

    return np.maximum(active_before(slots[1:]) - active_before(slots[:-1] + 1), 0)
