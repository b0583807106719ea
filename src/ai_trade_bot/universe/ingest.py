"""Load and validate a universe of symbols: every symbol on its own, dropped by name.

Sources (``params:ingestion``; ``symbols`` and a folder or glob ``path`` switch a source to
many symbols):

- ``bundled``: a named basket of real daily candles inside installed packages
  (:data:`BASKETS`); ``symbols`` picks a subset;
- ``file``: ``path`` is a folder (every CSV/Parquet/Feather file in it) or a glob; the
  symbol is the file name without its suffix;
- ``ccxt``: ``symbols`` lists the exchange's symbols (one fetch each, one cache file each);
- ``yfinance``: ``symbols`` lists tickers.

Each symbol goes through the same validation as a single symbol
(:func:`ai_trade_bot.data.validation.validate_ohlcv`). A symbol that cannot be read or
breaks a rule is dropped with a message naming it and the rule; the run stops only when
fewer than ``min_symbols`` remain.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.data import sources
from ai_trade_bot.data.ingest import (
    CcxtConfig,
    IngestionConfig,
    YfinanceConfig,
    load_from_source,
)
from ai_trade_bot.data.normalise import normalise_ohlcv
from ai_trade_bot.data.timeframes import infer_timeframe
from ai_trade_bot.data.validation import ValidationConfig, validate_ohlcv
from ai_trade_bot.errors import AiTradeBotError, ConfigError, DataValidationError

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".feather", ".ftr")

# Baskets of real daily candles that ship inside installed packages (no network).
# ``basket``: bokeh_sampledata's stocks (Quandl WIKI prices, public domain) AAPL, GOOG, IBM
# and MSFT, and arch's S&P 500 and NASDAQ Composite, on the days all six traded
# (2004-08-19 to 2013-03-01). WIKI's open/high/low/close are unadjusted: they are scaled by
# adj_close / close, so splits (AAPL 7:1 in 2014 and 2:1 in 2005) are no fake crashes.
BASKETS: dict[str, tuple[str, ...]] = {
    "basket": ("AAPL", "GOOG", "IBM", "MSFT", "SPX", "NDX"),
}
SECTORS = {  # the bundled basket's sector map (used by the portfolio limits)
    "AAPL": "technology",
    "GOOG": "communication",
    "IBM": "technology",
    "MSFT": "technology",
    "SPX": "index",
    "NDX": "index",
}


@dataclasses.dataclass
class Universe:
    """What ingestion produced for many symbols."""

    clean: dict[str, pd.DataFrame]  # symbol -> validated candles
    rejected: pd.DataFrame  # every rejected row, with ``symbol``, ``rule``, ``source_row``
    summary: dict[str, Any]  # JSON-able: per-symbol quality, dropped symbols and why
    timeframe: str


def _bokeh_stock(ticker: str) -> pd.DataFrame:
    from bokeh_sampledata import stocks

    raw = pd.DataFrame(getattr(stocks, ticker))
    scale = raw["adj_close"] / raw["close"]
    adjusted = raw[["open", "high", "low", "close"]].mul(scale, axis=0)
    # volume in shares: more shares after a split, so divide by the same factor
    volume = raw["volume"] / scale
    return normalise_ohlcv(
        adjusted.assign(volume=volume, date=raw["date"]), source=f"bokeh_sampledata:{ticker}"
    )


def _arch_index(name: str) -> pd.DataFrame:
    from arch.data import nasdaq, sp500

    module = {"SPX": sp500, "NDX": nasdaq}[name]
    return normalise_ohlcv(module.load().drop(columns=["Adj Close"]), source=f"arch:{name}")


def load_basket(name: str, symbols: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """A bundled basket (normalised, not yet validated), cut to the days all its symbols
    traded; ``symbols`` picks a subset (unknown names are an error naming the basket)."""
    if name not in BASKETS:
        raise ConfigError(
            f"ingestion.bundled={name!r} is not a multi-symbol basket; valid names: "
            f"{sorted(BASKETS)} (single-symbol sets: {sorted(sources.BUNDLED)})"
        )
    wanted = list(symbols or BASKETS[name])
    unknown = sorted(set(wanted) - set(BASKETS[name]))
    if unknown:
        raise ConfigError(
            f"ingestion.symbols: {unknown} are not in the bundled basket {name!r} "
            f"({list(BASKETS[name])})"
        )
    full = {s: _arch_index(s) if s in ("SPX", "NDX") else _bokeh_stock(s) for s in BASKETS[name]}
    common = None
    for frame in full.values():
        common = frame.index if common is None else common.intersection(frame.index)
    return {s: full[s].loc[full[s].index.isin(common)] for s in wanted}


def symbol_files(path: str) -> dict[str, Path]:
    """``path`` as a folder or a glob: symbol (the file stem) -> file."""
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.suffix.lower() in FILE_SUFFIXES)
    else:
        files = sorted(Path(p) for p in glob.glob(path))
    if not files:
        raise ConfigError(
            f"ingestion.path={path!r}: no candle files ({', '.join(FILE_SUFFIXES)}) found"
        )
    out: dict[str, Path] = {}
    for file in files:
        symbol = file.stem
        if symbol in out:
            raise ConfigError(
                f"ingestion.path={path!r}: two files give the symbol {symbol!r}: "
                f"{out[symbol].name} and {file.name}"
            )
        out[symbol] = file
    return out


def is_universe(config: IngestionConfig) -> bool:
    """Whether this ingestion config names many symbols."""
    if config.symbols:
        return True
    if config.source == "bundled":
        return config.bundled in BASKETS
    if config.source == "file" and config.path:
        return Path(config.path).is_dir() or glob.has_magic(config.path)
    return False


def _load_one(config: IngestionConfig, symbol: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """One symbol through the single-symbol loader (ccxt and yfinance)."""
    if config.source == "ccxt":
        parse_config(CcxtConfig, config.ccxt, name="ingestion.ccxt")
        single = dataclasses.replace(
            config, symbols=None, symbol=None, ccxt={**config.ccxt, "symbol": symbol}
        )
    elif config.source == "yfinance":
        parse_config(YfinanceConfig, config.yfinance, name="ingestion.yfinance")
        single = dataclasses.replace(
            config, symbols=None, symbol=None, yfinance={**config.yfinance, "ticker": symbol}
        )
    else:
        raise ConfigError(f"source {config.source!r} has no per-symbol loader")
    return load_from_source(single)


def load_universe(config: IngestionConfig) -> Universe:
    """Load, validate and quarantine every symbol of the universe on its own.

    Raises:
        DataValidationError: When fewer than ``config.min_symbols`` symbols survive; the
            message lists every dropped symbol and why.
    """
    validation = parse_config(ValidationConfig, config.validation, name="ingestion.validation")
    raw: dict[str, tuple[pd.DataFrame | None, str, str | None]] = {}  # frame, origin, error
    timeframe = config.timeframe
    if config.source == "bundled":
        for symbol, frame in load_basket(config.bundled, config.symbols).items():
            raw[symbol] = (frame, f"bundled:{config.bundled}:{symbol}", None)
        timeframe = timeframe or "1d"
    elif config.source == "file":
        if config.path and (Path(config.path).is_dir() or glob.has_magic(config.path)):
            files = symbol_files(config.path)
            if config.symbols:
                missing = sorted(set(config.symbols) - set(files))
                if missing:
                    raise ConfigError(
                        f"ingestion.symbols: no file for {missing} in ingestion.path="
                        f"{config.path!r} (found {sorted(files)})"
                    )
                files = {s: files[s] for s in config.symbols}
        else:
            raise ConfigError(
                "ingestion.source=file with many symbols needs ingestion.path to be a folder "
                f"or a glob of files, one per symbol; got {config.path!r}"
            )
        for symbol, file in files.items():
            try:
                raw[symbol] = (sources.load_file(file), str(file), None)
            except AiTradeBotError as exc:
                raw[symbol] = (None, str(file), str(exc))
    else:
        if not config.symbols:
            raise ConfigError(
                f"ingestion.source={config.source} for many symbols needs ingestion.symbols"
            )
        for symbol in config.symbols:
            try:
                frame, meta = _load_one(config, symbol)
                raw[symbol] = (frame, meta["source"], None)
                timeframe = timeframe or meta["timeframe"]
            except AiTradeBotError as exc:
                raw[symbol] = (None, f"{config.source}:{symbol}", str(exc))

    clean: dict[str, pd.DataFrame] = {}
    rejected_parts: list[pd.DataFrame] = []
    per_symbol: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for symbol, (frame, origin, error) in raw.items():
        if error is None:
            tf = timeframe or infer_timeframe(frame.index.sort_values().unique())
            try:
                kept, rejected, summary = validate_ohlcv(
                    frame, timeframe=tf, config=validation, source=origin
                )
            except AiTradeBotError as exc:
                error = str(exc)
            else:
                if len(kept) == 0:
                    error = f"{origin}: rule 'not_empty' failed: no valid candle"
        if error is not None:
            message = f"symbol {symbol} dropped: {error}"
            logger.warning(message)
            dropped[symbol] = error
            continue
        timeframe = timeframe or tf
        if tf != timeframe:
            dropped[symbol] = (
                f"{origin}: rule 'one_timeframe' failed: its bars are {tf}, the universe's "
                f"are {timeframe}"
            )
            logger.warning("symbol %s dropped: %s", symbol, dropped[symbol])
            continue
        clean[symbol] = kept
        rejected_parts.append(rejected.assign(symbol=symbol))
        per_symbol[symbol] = summary
    if len(clean) < config.min_symbols:
        reasons = "; ".join(f"{s}: {e}" for s, e in dropped.items()) or "none dropped"
        raise DataValidationError(
            f"ingestion: {len(clean)} valid symbol(s) {sorted(clean)} of {len(raw)}, fewer "
            f"than ingestion.min_symbols={config.min_symbols}. Dropped: {reasons}"
        )
    rows_in = sum(s["rows_in"] for s in per_symbol.values())
    kept_rows = sum(s["rows_kept"] for s in per_symbol.values())
    rejected_rows = sum(s["rows_rejected"] for s in per_symbol.values())
    assert rows_in == kept_rows + rejected_rows
    summary = {
        "symbols": sorted(clean),
        "dropped": dropped,
        "timeframe": timeframe,
        "source": config.source,
        "rows_in": rows_in,
        "rows_kept": kept_rows,
        "rows_rejected": rejected_rows,
        "per_symbol": per_symbol,
    }
    rejected_all = (
        pd.concat(rejected_parts) if rejected_parts else pd.DataFrame(columns=["symbol", "rule"])
    )
    logger.info(
        "universe: %d symbols kept %s, %d dropped %s; %d rows in, %d kept, %d rejected",
        len(clean),
        sorted(clean),
        len(dropped),
        sorted(dropped),
        rows_in,
        kept_rows,
        rejected_rows,
    )
    return Universe(clean, rejected_all, summary, str(timeframe))
