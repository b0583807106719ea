"""Map the usual OHLCV spellings onto one frame: UTC `timestamp` index, float64 columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.errors import DataValidationError

# The candle columns, in this order, everywhere (ingestion, features, the bundle, the
# live runner and its state file).
OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")

_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "date", "datetime", "time", "open_time", "opentime", "ts", "dt"),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last", "adj close", "adj_close", "adjclose"),
    "volume": ("volume", "vol", "v", "base_volume", "volume_base"),
}


def _canonical(name: object) -> str:
    return str(name).strip().lower().replace("-", "_")


# Market data is never older than this; an earlier reading is a misread column (row numbers
# taken for epoch seconds, say), not a candle.
EARLIEST_PLAUSIBLE = pd.Timestamp("1990-01-01", tz="UTC")
MIN_SPACING = pd.Timedelta(seconds=1)


def _is_unnamed(name: object) -> bool:
    """Headers that ``to_csv()``/``reset_index()`` give an index without a name."""
    text = _canonical(name)
    return text in {"", "index", "none", "level_0"} or text.startswith("unnamed:")


def _rename_columns(frame: pd.DataFrame, source: str, time_column: object) -> pd.DataFrame:
    lookup = {_canonical(c): c for c in frame.columns}
    mapping: dict[object, str] = {time_column: "timestamp"}
    for target, aliases in _ALIASES.items():
        if target == "timestamp":
            continue
        for alias in aliases:
            if alias in lookup and lookup[alias] != time_column:
                mapping[lookup[alias]] = target
                break
    missing = [c for c in OHLCV_COLUMNS if c not in mapping.values()]
    if missing:
        raise DataValidationError(
            f"{source}: rule 'required_columns' failed: missing {missing}. "
            f"Found columns {list(frame.columns)}; expected a time column and open, high, low, "
            "close, volume (any case)."
        )
    return frame[list(mapping)].rename(columns=mapping)


def _parse_timestamps(values: pd.Series, source: str, column: object) -> pd.DatetimeIndex:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numeric = values.astype("float64")
        magnitude = np.nanmedian(np.abs(numeric.to_numpy())) if len(numeric) else 0.0
        # Epoch seconds are ~1e9 today, milliseconds ~1e12, microseconds ~1e15, ns ~1e18.
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us"
        unit = "ns" if magnitude >= 1e17 else unit
        parsed = pd.to_datetime(numeric, unit=unit, utc=True, errors="coerce")
    else:
        parsed = pd.to_datetime(values.astype("string"), utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna() | values.isna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError(
            f"{source}: rule 'timestamp_parse' failed in column {column!r} for "
            f"{int(bad.sum())} row(s); first at row {position}: {values.iloc[position]!r}. "
            "Expected ISO-8601 strings, datetimes, or epoch seconds/milliseconds."
        )
    return pd.DatetimeIndex(parsed, name="timestamp")


def _implausible(index: pd.DatetimeIndex) -> str | None:
    """Why ``index`` cannot be the times of market candles, or None if it can."""
    if index.min() < EARLIEST_PLAUSIBLE:
        return f"times before {EARLIEST_PLAUSIBLE.date()} (earliest {index.min()})"
    spacing = np.diff(np.unique(index.asi8))
    if spacing.size and np.median(spacing) < MIN_SPACING.value:
        return f"a typical spacing of {pd.Timedelta(int(np.median(spacing)))}, under one second"
    return None


def _first_values(values: pd.Series) -> list[object]:
    return values.head(3).tolist()


def _find_time(data: pd.DataFrame, source: str) -> tuple[object, pd.DatetimeIndex]:
    """The time column of ``data`` and its parsed values.

    A column named like a time (``date``, ``timestamp``, ...) must parse and be plausible,
    or the error names it. Otherwise columns under an empty or unnamed header (what
    ``to_csv()`` writes for an index) are tried in order, and the first one that parses as
    plausible times is taken. Row positions are never read as times.
    """
    named = [c for c in data.columns if _canonical(c) in _ALIASES["timestamp"]]
    if named:
        column = min(named, key=lambda c: _ALIASES["timestamp"].index(_canonical(c)))
        values = data[column].reset_index(drop=True)
        index = _parse_timestamps(values, source, column)
        why = _implausible(index)
        if why:
            raise DataValidationError(
                f"{source}: rule 'timestamp_plausible' failed: column {column!r} holds {why}; "
                f"first values {_first_values(values)}. Market candles start after "
                f"{EARLIEST_PLAUSIBLE.year} and are at least one second apart: check that "
                "this column holds times (epoch seconds or milliseconds, or date strings)."
            )
        return column, index
    rejected = []
    for column in [c for c in data.columns if _is_unnamed(c)]:
        values = data[column].reset_index(drop=True)
        try:
            index = _parse_timestamps(values, source, column)
        except DataValidationError:
            rejected.append(f"{column!r} does not parse as times")
            continue
        why = _implausible(index)
        if why is None:
            return column, index
        rejected.append(f"{column!r} holds {why}, first values {_first_values(values)}")
    detail = f" ({'; '.join(rejected)})" if rejected else ""
    raise DataValidationError(
        f"{source}: rule 'required_columns' failed: missing ['timestamp']: no column parses as "
        f"candle times{detail}. Found columns {list(data.columns)}; expected a time column "
        f"(one of {list(_ALIASES['timestamp'])}, or a date index written without a name). "
        "Row numbers are never taken for times."
    )


def normalise_ohlcv(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Return ``frame`` with a UTC ``timestamp`` index and float64 OHLCV columns.

    Rows are kept in input order (duplicates and bad values are the validator's job, which
    quarantines them with a reason). Non-numeric values become NaN so that the validator
    rejects them by rule instead of this function failing on them.

    Args:
        frame: Raw candles; the time may be a column or the index.
        source: Where the frame came from (file path, exchange/symbol), for error messages.

    Raises:
        DataValidationError: If the frame is empty, lacks columns, or has no column of
            parseable, plausible times (see :func:`_find_time`).
    """
    if frame is None or len(frame) == 0:
        raise DataValidationError(
            f"{source}: rule 'not_empty' failed: the input has no rows. Check the file or the "
            "requested date range."
        )
    data = frame
    if not isinstance(frame.index, pd.RangeIndex):
        # an index (a time index, named or not) becomes a column; a RangeIndex is only row
        # numbers and is dropped
        data = frame.reset_index()
    time_column, index = _find_time(data, source)
    data = _rename_columns(data, source, time_column)
    values = {
        col: pd.to_numeric(data[col].reset_index(drop=True), errors="coerce").astype("float64")
        for col in OHLCV_COLUMNS
    }
    out = pd.DataFrame(values)
    out.index = index
    return out
