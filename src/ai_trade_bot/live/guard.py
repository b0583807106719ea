"""Every candle is checked before it touches the account, whatever feed it came from.

The ingestion rules (:func:`ai_trade_bot.data.validation.candle_rule`: finite positive
prices, high and low bracketing open and close, a finite non-negative volume) and a
strictly later time than the last candle the runner committed: an equal time is a
``duplicate``, an earlier one ``out_of_order``. A candle that breaks one is quarantined
with the rule's name and never reaches the features, the model or the execution core.

A candle after a gap (more of the market's usual trading bars missing than the tolerance,
judged against the weekly calendar the history shows, as ingestion does) is kept and
reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ai_trade_bot.data.calendar import WeeklyCalendar, infer_calendar, missing_bars
from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.data.validation import candle_rule


@dataclass(frozen=True)
class CandleGuard:
    """The checks for one market (its bar length and trading calendar)."""

    bar: pd.Timedelta
    calendar: WeeklyCalendar | None = None
    gap_tolerance_bars: float = 1.0

    @classmethod
    def from_history(
        cls, history: pd.DataFrame, bar: pd.Timedelta, gap_tolerance_bars: float = 1.0
    ) -> CandleGuard:
        index = history.index
        calendar = infer_calendar(index, bar) if len(index) > 1 else None
        return cls(bar, calendar, gap_tolerance_bars)

    def rule(self, ts: int, values: np.ndarray, last_ts: int | None) -> tuple[str | None, str]:
        """The rule a candle at epoch-ns ``ts`` with open, high, low, close, volume
        ``values`` breaks (None when it is fine), and a message naming it."""
        broken = candle_rule(*(float(v) for v in values[:5]))
        if broken is not None:
            shown = ", ".join(f"{k} {v:.10g}" for k, v in zip(OHLCV_COLUMNS, values, strict=False))
            return broken, f"breaks {broken} ({shown})"
        if last_ts is not None and ts <= last_ts:
            rule = "duplicate" if ts == last_ts else "out_of_order"
            last = pd.Timestamp(int(last_ts), tz="UTC")
            return rule, f"{rule}: not later than the last candle ({last})"
        return None, ""

    def clean(
        self, candles: pd.DataFrame
    ) -> tuple[pd.DataFrame, list[tuple[int, str, np.ndarray, str]]]:
        """The candles that pass, in the order given, and each refused one as (epoch ns,
        rule, values, message)."""
        keep, refused, last = [], [], None
        values = candles[list(OHLCV_COLUMNS)].to_numpy(dtype=np.float64)
        for position, ts in enumerate(candles.index.asi8):
            rule, message = self.rule(int(ts), values[position], last)
            if rule is None:
                keep.append(position)
                last = int(ts)
            else:
                refused.append((int(ts), rule, values[position], message))
        return candles.iloc[keep], refused

    def missing(self, last_ts: int | None, ts: int) -> int:
        """How many of the market's usual trading bars lie strictly between the last
        candle and this one (0: no gap worth reporting)."""
        if last_ts is None or int(ts) - int(last_ts) <= self.bar.value:
            return 0  # the next bar (nothing lies between): no calendar to consult
        index = pd.DatetimeIndex([int(last_ts), int(ts)], tz="UTC")
        missing = int(missing_bars(index, self.bar, self.calendar)[0])
        return missing if missing > self.gap_tolerance_bars else 0
