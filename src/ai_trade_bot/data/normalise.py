"""Map the usual OHLCV spellings onto one frame: UTC `timestamp` index, float64 columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.errors import DataValidationError

OHLCV_COLUMNS = ["open", "high", "low", "close", "volume"]

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


def _rename_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    lookup = {_canonical(c): c for c in frame.columns}
    mapping: dict[object, str] = {}
    for target, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in lookup:
                mapping[lookup[alias]] = target
                break
    missing = [c for c in ["timestamp", *OHLCV_COLUMNS] if c not in mapping.values()]
    if missing:
        raise DataValidationError(
            f"{source}: rule 'required_columns' failed: missing {missing}. "
            f"Found columns {list(frame.columns)}; expected a time column (one of "
            f"{list(_ALIASES['timestamp'])}) and open, high, low, close, volume "
            "(any case)."
        )
    return frame[list(mapping)].rename(columns=mapping)


def _parse_timestamps(values: pd.Series, source: str) -> pd.DatetimeIndex:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_numeric_dtype(values):
        numeric = values.astype("float64")
        magnitude = np.nanmedian(np.abs(numeric.to_numpy())) if len(numeric) else 0.0
        # Epoch seconds are ~1e9 today, milliseconds ~1e12, microseconds ~1e15.
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us"
        parsed = pd.to_datetime(numeric, unit=unit, utc=True, errors="coerce")
    else:
        parsed = pd.to_datetime(values.astype("string"), utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna() | values.isna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError(
            f"{source}: rule 'timestamp_parse' failed for {int(bad.sum())} row(s); first at row "
            f"{position}: {values.iloc[position]!r}. Expected ISO-8601 strings, datetimes, or "
            "epoch seconds/milliseconds."
        )
    return pd.DatetimeIndex(parsed, name="timestamp")


def normalise_ohlcv(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Return ``frame`` with a UTC ``timestamp`` index and float64 OHLCV columns.

    Rows are kept in input order (duplicates and bad values are the validator's job, which
    quarantines them with a reason). Non-numeric values become NaN so that the validator
    rejects them by rule instead of this function failing on them.

    Args:
        frame: Raw candles; the time may be a column or the index.
        source: Where the frame came from (file path, exchange/symbol), for error messages.

    Raises:
        DataValidationError: If the frame is empty, lacks columns or has unparseable times.
    """
    if frame is None or len(frame) == 0:
        raise DataValidationError(
            f"{source}: rule 'not_empty' failed: the input has no rows. Check the file or the "
            "requested date range."
        )
    data = frame
    if not any(_canonical(c) in _ALIASES["timestamp"] for c in data.columns):
        data = data.reset_index()
        if _canonical(data.columns[0]) in {"index", "none"}:
            data = data.rename(columns={data.columns[0]: "timestamp"})
    data = _rename_columns(data, source)
    index = _parse_timestamps(data["timestamp"].reset_index(drop=True), source)
    values = {
        col: pd.to_numeric(data[col].reset_index(drop=True), errors="coerce").astype("float64")
        for col in OHLCV_COLUMNS
    }
    out = pd.DataFrame(values)
    out.index = index
    return out
