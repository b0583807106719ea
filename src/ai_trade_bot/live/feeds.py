"""Closed candles for the live runner: a replay of a file or the bundled data, or ccxt.

Every feed yields events: a closed candle (``live`` is False for candles fetched to fill
a gap, which update the state but never trade), or a change of the feed's health
(``stale`` when no new candle came within the timeout, ``recovered`` when one comes).
Feeds pass candles on as they come: the runner checks every one alike
(:class:`ai_trade_bot.live.guard.CandleGuard`), so duplicates, candles out of order, bad
values and gaps are quarantined or reported the same way for a replay as for an exchange.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.data.sources import _with_retries, fetch_ccxt_ohlcv, load_bundled, load_file
from ai_trade_bot.data.timeframes import infer_timeframe, timeframe_to_timedelta
from ai_trade_bot.errors import DataSourceError, DataValidationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedEvent:
    """A closed candle (``kind='candle'``) or a change of the feed's health."""

    kind: str  # candle | stale | recovered
    candle: pd.Series | None = None  # name: the candle's open time; open ... volume
    live: bool = True
    message: str = ""


@runtime_checkable
class Feed(Protocol):
    """Closed candles for one symbol: what the runner starts from and what it trades.
    A new source (another exchange API, a socket) is one class with these members
    (``tests/live/test_contracts.py`` runs every feed through the same checks)."""

    symbol: str
    timeframe: str

    def history(self, rows: int | None = None) -> pd.DataFrame:
        """The last ``rows`` closed candles before the first event, in time order (a UTC
        DatetimeIndex, columns open, high, low, close, volume)."""
        ...

    def events(self, after: pd.Timestamp | None = None) -> Iterator[FeedEvent]:
        """Candles (and health changes) after ``after`` (the last candle the runner
        committed; None: after the history)."""
        ...


class ReplayFeed:
    """The candles of a frame in the frame's own order, from position ``start`` on;
    everything before is history. Nothing is sorted or dropped here: the runner's checks
    see the file as it is.

    ``speed`` is candles per second (0: as fast as possible).
    """

    def __init__(
        self,
        candles: pd.DataFrame,
        *,
        symbol: str,
        timeframe: str,
        start: pd.Timestamp | int | str | None = None,
        speed: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.candles = candles
        self.symbol, self.timeframe = symbol, timeframe
        times = candles.index
        if start is None:
            self.first = 0
        elif isinstance(start, int):
            self.first = start if start >= 0 else len(candles) + start
        else:
            stamp = pd.Timestamp(start)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
            later = np.flatnonzero(times >= stamp)
            self.first = int(later[0]) if later.size else len(candles)
        self.speed = speed
        self._sleep = sleep

    @property
    def start(self) -> pd.Timestamp | None:
        return self.candles.index[self.first] if self.first < len(self.candles) else None

    def history(self, rows: int | None = None) -> pd.DataFrame:
        """The candles before the replay starts (the last ``rows`` of them), in time
        order (the runner quarantines the ones that break a rule)."""
        before = self.candles.iloc[: self.first]
        before = before.iloc[np.argsort(before.index.asi8, kind="stable")]
        return before if rows is None else before.iloc[-rows:]

    def events(self, after: pd.Timestamp | None = None) -> Iterator[FeedEvent]:
        """Candles from the start on; after a restart, those after the first one at
        ``after`` (the last the runner committed)."""
        first = self.first
        if after is not None:
            seen = np.flatnonzero(self.candles.index.asi8 == after.value)
            seen = seen[seen >= first - 1]
            first = int(seen[0]) + 1 if seen.size else first
        for position in range(first, len(self.candles)):
            if self.speed > 0:
                self._sleep(1.0 / self.speed)
            row = self.candles.iloc[position]
            yield FeedEvent("candle", row.rename(self.candles.index[position]))


def replay_source(
    name_or_path: str, *, start: int | str | None = None, speed: float = 0.0
) -> ReplayFeed:
    """A replay of a bundled dataset (``sp500``, ``eurusd``) or a candle file; by default
    it starts after the first 80% of the candles (the rest is history)."""
    if name_or_path in ("sp500", "eurusd"):
        candles, symbol, timeframe = load_bundled(name_or_path)
    else:
        candles = load_file(name_or_path)
        symbol = Path(name_or_path).stem
        timeframe = infer_timeframe(candles.index.sort_values().unique())
    first = int(len(candles) * 0.8) if start is None else start
    if isinstance(first, str) and first.lstrip("-").isdigit():
        first = int(first)
    return ReplayFeed(candles, symbol=symbol, timeframe=timeframe, start=first, speed=speed)


class CcxtFeed:
    """Closed candles polled from an exchange with ccxt's ``fetch_ohlcv``.

    - A candle is closed when its open time plus the timeframe has passed (``clock``).
    - Pages are sorted; candles at or before the last yielded one are dropped and logged.
    - A gap (a new candle more than one timeframe after the last) is filled through the
      REST API first (:func:`ai_trade_bot.data.sources.fetch_ccxt_ohlcv`), those candles
      marked ``live=False``.
    - 429s, timeouts and disconnects are retried with backoff; a poll that still fails
      counts as no new candle.
    - No new candle within ``stale_after`` seconds past the expected close: ``stale``
      (the runner halts new entries) until one comes (``recovered``).
    """

    def __init__(
        self,
        exchange: Any,
        *,
        symbol: str,
        timeframe: str,
        poll_seconds: float = 5.0,
        stale_after: float = 60.0,
        limit: int = 500,
        max_retries: int = 3,
        backoff_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_polls: int | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbol, self.timeframe = symbol, timeframe
        self.bar = timeframe_to_timedelta(timeframe)
        self.poll_seconds, self.stale_after = poll_seconds, stale_after
        self.limit, self.max_retries, self.backoff = limit, max_retries, backoff_seconds
        self._clock, self._sleep = clock, sleep
        self.max_polls = max_polls
        self.not_later = 0
        self.backfilled = 0

    def _now(self) -> pd.Timestamp:
        return pd.Timestamp(self._clock(), unit="s", tz="UTC")

    def _closed(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[frame.index + self.bar <= self._now()]

    def history(self, rows: int | None) -> pd.DataFrame:
        """The last ``rows`` closed candles (default 5,000), through the REST API."""
        rows = 5000 if rows is None else rows
        since = self._now() - self.bar * (rows + 2)
        frame = fetch_ccxt_ohlcv(
            self.exchange,
            self.symbol,
            self.timeframe,
            since=since,
            until=self._now(),
            limit=self.limit,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff,
        )
        return self._closed(frame).iloc[-rows:]

    def _poll(self, since: pd.Timestamp) -> pd.DataFrame | None:
        what = f"ccxt:{self.exchange.id}:{self.symbol}:{self.timeframe}"
        try:
            page = _with_retries(
                lambda: self.exchange.fetch_ohlcv(
                    self.symbol,
                    self.timeframe,
                    since=int(since.value // 1_000_000),
                    limit=self.limit,
                ),
                what=what,
                max_retries=self.max_retries,
                backoff=self.backoff,
            )
        except DataSourceError as exc:
            logger.warning("%s: poll failed: %s", what, exc)
            return None
        frame = pd.DataFrame(page, columns=["timestamp", *OHLCV_COLUMNS])
        frame.index = pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True)
        return self._closed(frame.astype("float64").sort_index(kind="stable"))

    def events(self, after: pd.Timestamp | None = None) -> Iterator[FeedEvent]:
        last = after
        stale = False
        polls = 0
        while self.max_polls is None or polls < self.max_polls:
            polls += 1
            since = last + self.bar if last is not None else self._now() - self.bar * 2
            frame = self._poll(since)
            fresh: list[FeedEvent] = []  # in the order the runner must see them
            if frame is not None:
                for ts, row in frame.iterrows():
                    if last is not None and ts <= last:
                        self.not_later += 1
                    else:
                        if last is not None and ts > last + self.bar:
                            fresh.extend(self._backfill(last, ts))
                        last = ts
                    fresh.append(FeedEvent("candle", row.rename(ts)))
            if fresh and stale:
                stale = False
                yield FeedEvent("recovered", message=f"new candle {fresh[0].candle.name}")
            yield from fresh
            expected = (last + 2 * self.bar) if last is not None else self._now()
            late = (self._now() - expected).total_seconds()
            if not fresh and not stale and late > self.stale_after:
                stale = True
                yield FeedEvent(
                    "stale", message=f"no candle after {last} for {late:.0f}s past its close"
                )
            self._sleep(self.poll_seconds)

    def _backfill(self, last: pd.Timestamp, upto: pd.Timestamp) -> Iterator[FeedEvent]:
        """The candles strictly between ``last`` and ``upto``, through the REST API (none
        when the exchange has none: a real gap in its data)."""
        try:
            missing = fetch_ccxt_ohlcv(
                self.exchange,
                self.symbol,
                self.timeframe,
                since=last + self.bar,
                until=upto - self.bar,
                limit=self.limit,
                max_retries=self.max_retries,
                backoff_seconds=self.backoff,
            )
        except DataValidationError:
            missing = pd.DataFrame(
                columns=list(OHLCV_COLUMNS), index=pd.DatetimeIndex([], tz="UTC")
            )
        missing = missing.loc[(missing.index > last) & (missing.index < upto)]
        self.backfilled += len(missing)
        logger.warning(
            "%s: gap %s .. %s: backfilled %d candle(s)", self.symbol, last, upto, len(missing)
        )
        for ts, row in missing.iterrows():
            yield FeedEvent("candle", row.rename(ts), live=False)
