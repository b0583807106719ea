"""One time axis for many symbols.

The panel is a wide frame per field (time x symbol) on the union of every symbol's bar
times. A symbol with no bar at a time has NaN there and ``missing`` True: a missing bar is
never forward-filled into a price anything could trade at.

Calendars (a 24/7 coin beside a weekday stock): every symbol is traded on its own bars, and
its own features are computed on its own bars only. Cross-sectional features exist only at
times when at least ``features.cross_section.min_symbols`` symbols have a closed bar
(:mod:`ai_trade_bot.features.cross_section`).
"""

from __future__ import annotations

import pandas as pd

from ai_trade_bot.data.normalise import OHLCV_COLUMNS


def align(clean: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Wide frames ``open`` ... ``volume`` and ``missing`` on the union calendar.

    Columns are the symbols in sorted order; no value is filled.
    """
    symbols = sorted(clean)
    calendar = None
    for frame in clean.values():
        calendar = frame.index if calendar is None else calendar.union(frame.index)
    calendar = pd.DatetimeIndex(calendar).sort_values()
    panel = {
        field: pd.DataFrame({s: clean[s][field].reindex(calendar) for s in symbols}, index=calendar)
        for field in OHLCV_COLUMNS
    }
    panel["missing"] = panel["close"].isna()
    return panel


def to_long(panel: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The panel as rows (timestamp, symbol) with the OHLCV columns and ``missing``."""
    parts = {field: frame.stack(future_stack=True) for field, frame in panel.items()}
    long = pd.DataFrame(parts)
    long.index = long.index.set_names(["timestamp", "symbol"])
    return long.reset_index()


def from_long(long: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Inverse of :func:`to_long` (for the parquet dataset between nodes)."""
    wide = long.set_index(["timestamp", "symbol"])
    return {
        field: wide[field].unstack("symbol").sort_index(axis=1)
        for field in (*OHLCV_COLUMNS, "missing")
    }


def symbol_frame(panel: dict[str, pd.DataFrame], symbol: str) -> pd.DataFrame:
    """One symbol's own bars (its missing times dropped), as the single-symbol code reads."""
    frame = pd.DataFrame({field: panel[field][symbol] for field in OHLCV_COLUMNS})
    return frame[~panel["missing"][symbol]]
