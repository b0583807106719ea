"""Choose and run a source from an ingestion config (used by the ingestion pipeline)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.data import sources
from ai_trade_bot.data.timeframes import infer_timeframe, timeframe_to_timedelta
from ai_trade_bot.data.validation import ValidationConfig
from ai_trade_bot.errors import ConfigError

logger = logging.getLogger(__name__)

SOURCES = ("bundled", "file", "ccxt", "yfinance")


@dataclass(frozen=True)
class CcxtConfig:
    """``params:ingestion.ccxt``."""

    exchange: str = "binance"
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    since: str = "2024-01-01"
    until: str | None = None
    limit: int = 1000
    max_retries: int = 5
    backoff_seconds: float = 1.0
    timeout_ms: int = 10_000
    api_host: str | None = None
    # Candles already fetched; the next run resumes after the last one.
    cache_dir: str = "data/01_raw/ccxt"


@dataclass(frozen=True)
class YfinanceConfig:
    """``params:ingestion.yfinance``."""

    ticker: str = "SPY"
    interval: str = "1d"
    start: str | None = "2015-01-01"
    end: str | None = None


@dataclass(frozen=True)
class IngestionConfig:
    """``params:ingestion``."""

    source: str = "bundled"
    bundled: str = "sp500"
    path: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    # many symbols (see ai_trade_bot.universe.ingest): a list of symbols of the source (or
    # one string of names separated by spaces), and the fewest that must pass validation
    symbols: list[str] | str | None = None
    min_symbols: int = 2
    ccxt: dict[str, Any] = field(default_factory=dict)
    yfinance: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {list(SOURCES)}, got {self.source!r}")
        if self.source == "file" and not self.path:
            raise ValueError(
                "source 'file' needs a path, e.g. "
                '--params "ingestion.source=file,ingestion.path=data/01_raw/my.csv"'
            )
        if self.timeframe is not None:
            timeframe_to_timedelta(self.timeframe)
        if isinstance(self.symbols, str):
            # Kedro's --params splits on commas, so a list cannot be typed there: names
            # separated by spaces work instead (--params "ingestion.symbols=AAA BBB CCC")
            object.__setattr__(self, "symbols", self.symbols.split() or None)
        if self.symbols is not None:
            if not all(isinstance(x, str) for x in self.symbols):
                raise ValueError(f"symbols must be a list of names, got {self.symbols!r}")
            if len(set(self.symbols)) != len(self.symbols):
                raise ValueError(f"symbols lists a name twice: {self.symbols}")
        if self.min_symbols < 1:
            raise ValueError(f"min_symbols must be >= 1, got {self.min_symbols}")


def parse_ingestion_config(block: dict[str, Any]) -> IngestionConfig:
    """Validate the whole ``ingestion`` block, sub-blocks included."""
    config = parse_config(IngestionConfig, block, name="ingestion")
    parse_config(CcxtConfig, config.ccxt, name="ingestion.ccxt")
    parse_config(YfinanceConfig, config.yfinance, name="ingestion.yfinance")
    parse_config(ValidationConfig, config.validation, name="ingestion.validation")
    return config


def _ccxt_cache_path(cfg: CcxtConfig) -> Path:
    name = f"{cfg.exchange}_{cfg.symbol.replace('/', '-')}_{cfg.timeframe}.parquet"
    return Path(cfg.cache_dir) / name


def load_from_source(config: IngestionConfig) -> tuple[pd.DataFrame, dict[str, str]]:
    """Load candles from the configured source.

    Returns:
        The normalised (not yet validated) frame and its metadata (source, symbol, timeframe).
    """
    if config.source == "bundled":
        frame, symbol, timeframe = sources.load_bundled(config.bundled)
        origin = f"bundled:{config.bundled}"
    elif config.source == "file":
        frame = sources.load_file(config.path)
        symbol = config.symbol or Path(config.path).stem
        timeframe = config.timeframe or infer_timeframe(frame.index.sort_values().unique())
        origin = str(config.path)
    elif config.source == "ccxt":
        cfg = parse_config(CcxtConfig, config.ccxt, name="ingestion.ccxt")
        cache = _ccxt_cache_path(cfg)
        existing = pd.read_parquet(cache) if cache.exists() else None
        exchange = sources.make_exchange(
            cfg.exchange, timeout_ms=cfg.timeout_ms, api_host=cfg.api_host
        )
        frame = sources.fetch_ccxt_ohlcv(
            exchange,
            cfg.symbol,
            cfg.timeframe,
            since=pd.Timestamp(cfg.since, tz="UTC"),
            until=pd.Timestamp(cfg.until, tz="UTC") if cfg.until else None,
            limit=cfg.limit,
            max_retries=cfg.max_retries,
            backoff_seconds=cfg.backoff_seconds,
            existing=existing,
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(cache)
        symbol, timeframe = cfg.symbol, cfg.timeframe
        origin = f"ccxt:{cfg.exchange}"
    else:
        cfg_yf = parse_config(YfinanceConfig, config.yfinance, name="ingestion.yfinance")
        frame = sources.fetch_yfinance_ohlcv(
            cfg_yf.ticker, interval=cfg_yf.interval, start=cfg_yf.start, end=cfg_yf.end
        )
        symbol, timeframe, origin = cfg_yf.ticker, cfg_yf.interval, "yfinance"
    if config.timeframe and config.timeframe != timeframe:
        raise ConfigError(
            f"ingestion.timeframe={config.timeframe!r} but the {config.source} source gives "
            f"{timeframe!r}; drop ingestion.timeframe or make them agree."
        )
    meta = {"source": origin, "symbol": config.symbol or symbol, "timeframe": timeframe}
    logger.info("loaded %d candles from %s (%s, %s)", len(frame), origin, symbol, timeframe)
    return frame, meta
