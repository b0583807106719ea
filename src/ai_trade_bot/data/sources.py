"""OHLCV sources: bundled package data, local files, ccxt exchanges and yfinance."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from ai_trade_bot.data.normalise import OHLCV_COLUMNS, normalise_ohlcv
from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import ConfigError, DataSourceError, DataValidationError

logger = logging.getLogger(__name__)

BUNDLED = {
    # name: (loader, symbol, timeframe)
    "sp500": ("arch.data.sp500", "SPX", "1d"),
    "eurusd": ("backtesting.test.EURUSD", "EURUSD", "1h"),
}


def load_bundled(name: str = "sp500") -> tuple[pd.DataFrame, str, str]:
    """Load real OHLCV that ships inside an installed package (no network).

    Returns:
        The normalised frame, its symbol and its timeframe.
    """
    if name not in BUNDLED:
        raise ConfigError(f"unknown bundled dataset {name!r}; valid names: {sorted(BUNDLED)}")
    origin, symbol, timeframe = BUNDLED[name]
    if name == "sp500":
        from arch.data import sp500

        raw = sp500.load().drop(columns=["Adj Close"])
    else:
        from backtesting.test import EURUSD

        raw = EURUSD.copy()
    return normalise_ohlcv(raw, source=f"bundled:{origin}"), symbol, timeframe


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
    ".feather": pd.read_feather,
    ".ftr": pd.read_feather,
}


def load_file(path: str | Path) -> pd.DataFrame:
    """Read a CSV, Parquet or Feather file of candles and normalise it.

    Raises:
        DataSourceError: If the file is missing, of an unknown type, or unreadable.
        DataValidationError: If the content is empty or malformed.
    """
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataSourceError(
            f"{path}: unsupported file type {path.suffix!r}; use one of {sorted(_READERS)}."
        )
    if not path.exists():
        raise DataSourceError(f"{path}: file not found (check ingestion.path).")
    try:
        raw = reader(path)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(f"{path}: rule 'not_empty' failed: the file is empty.") from exc
    except Exception as exc:
        raise DataSourceError(f"{path}: could not be read as {path.suffix}: {exc}") from exc
    return normalise_ohlcv(raw, source=str(path))


def _rewrite_host(urls: Any, base: str) -> Any:
    """Point every URL in ccxt's nested ``urls['api']`` at ``base`` (scheme://host:port)."""
    if isinstance(urls, dict):
        return {k: _rewrite_host(v, base) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        parts = urlsplit(urls)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls


def make_exchange(
    exchange_id: str,
    *,
    timeout_ms: int = 10_000,
    api_host: str | None = None,
    options: dict[str, Any] | None = None,
    credentials: dict[str, str] | None = None,
) -> Any:
    """Create a ccxt exchange with its rate limiter on.

    Args:
        exchange_id: ccxt id such as ``"binance"``.
        timeout_ms: HTTP timeout.
        api_host: If set, every API URL is pointed at this host (a testnet, proxy or the
            test suite's local server).
        options: Extra ccxt ``options``.
        credentials: ``apiKey``/``secret`` for private endpoints (never logged).
    """
    import ccxt

    if not hasattr(ccxt, exchange_id):
        raise ConfigError(f"unknown ccxt exchange {exchange_id!r}; see ccxt.exchanges for ids.")
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(timeout_ms),
        # spot candles and orders only: no currency list, no margin pairs (an
        # authenticated binance client fetches those at every start otherwise)
        "options": {"fetchCurrencies": False, "fetchMargins": False, **(options or {})},
    }
    config.update(credentials or {})
    exchange = getattr(ccxt, exchange_id)(config)
    if api_host:
        exchange.urls["api"] = _rewrite_host(exchange.urls["api"], api_host)
    return exchange


def _with_retries(call: Callable[[], Any], *, what: str, max_retries: int, backoff: float) -> Any:
    import ccxt

    for attempt in range(max_retries + 1):
        try:
            return call()
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.NetworkError) as exc:
            if attempt == max_retries:
                raise DataSourceError(
                    f"{what}: gave up after {max_retries} retries: {type(exc).__name__}: {exc}"
                ) from exc
            delay = backoff * 2**attempt
            logger.warning(
                "%s: %s (attempt %d/%d), retrying in %.2fs",
                what,
                type(exc).__name__,
                attempt + 1,
                max_retries,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def fetch_ccxt_ohlcv(
    exchange: Any,
    symbol: str,
    timeframe: str,
    *,
    since: pd.Timestamp,
    until: pd.Timestamp | None = None,
    limit: int = 1000,
    max_retries: int = 5,
    backoff_seconds: float = 1.0,
    existing: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fetch candles page by page with ``fetch_ohlcv``, resuming after ``existing``.

    Pages may overlap or repeat candles; the result is de-duplicated (last write wins)
    and sorted. The exchange's own rate limiter spaces the requests; 429s and timeouts are
    retried with exponential backoff.

    Args:
        exchange: A ccxt exchange (see :func:`make_exchange`).
        symbol: Market symbol, e.g. ``"BTC/USDT"``.
        timeframe: ccxt timeframe, e.g. ``"1h"``.
        since: First candle wanted (UTC).
        until: Stop after this time (default: now).
        limit: Candles per request.
        max_retries: Retries per request on rate limits and network errors.
        backoff_seconds: First retry delay; doubles each retry.
        existing: Candles already stored; fetching resumes after the last one.

    Returns:
        The stored plus new candles, normalised.
    """
    step_ms = int(timeframe_to_timedelta(timeframe).total_seconds() * 1000)
    start_ms = int(pd.Timestamp(since).tz_convert("UTC").value // 1_000_000)
    if existing is not None and len(existing):
        start_ms = max(start_ms, int(existing.index.max().value // 1_000_000) + step_ms)
    end_ms = int(pd.Timestamp(until or pd.Timestamp.now(tz="UTC")).value // 1_000_000)
    what = f"ccxt:{exchange.id}:{symbol}:{timeframe}"
    _with_retries(
        exchange.load_markets, what=what, max_retries=max_retries, backoff=backoff_seconds
    )
    rows: list[list[float]] = []
    cursor = start_ms
    pages = 0
    while cursor <= end_ms:
        page = _with_retries(
            lambda c=cursor: exchange.fetch_ohlcv(symbol, timeframe, since=c, limit=limit),
            what=what,
            max_retries=max_retries,
            backoff=backoff_seconds,
        )
        pages += 1
        page = [r for r in page if cursor <= r[0] <= end_ms]
        if not page:
            break
        rows.extend(page)
        last = max(r[0] for r in page)
        cursor = last + step_ms
    logger.info("%s: fetched %d candles in %d page(s)", what, len(rows), pages)
    fresh = pd.DataFrame(rows, columns=["timestamp", *OHLCV_COLUMNS])
    parts = [existing] if existing is not None and len(existing) else []
    if len(fresh):
        parts.append(normalise_ohlcv(fresh, source=what))
    if not parts:
        raise DataValidationError(
            f"{what}: rule 'not_empty' failed: no candles between "
            f"{pd.Timestamp(start_ms, unit='ms', tz='UTC')} and "
            f"{pd.Timestamp(end_ms, unit='ms', tz='UTC')}."
        )
    merged = pd.concat(parts)
    return merged[~merged.index.duplicated(keep="last")].sort_index()


def fetch_yfinance_ohlcv(
    ticker: str, *, interval: str = "1d", start: str | None = None, end: str | None = None
) -> pd.DataFrame:
    """Download candles with yfinance and normalise them."""
    import yfinance as yf

    try:
        raw = yf.Ticker(ticker).history(
            interval=interval, start=start, end=end, auto_adjust=False, raise_errors=True
        )
    except Exception as exc:
        raise DataSourceError(f"yfinance:{ticker}: download failed: {exc}") from exc
    return normalise_ohlcv(
        raw.drop(columns=["Adj Close"], errors="ignore"), source=f"yfinance:{ticker}"
    )
