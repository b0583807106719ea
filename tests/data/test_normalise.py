"""Column spellings, timestamp formats and unreadable input."""

from __future__ import annotations

import pandas as pd
import pytest

from ai_trade_bot.data.normalise import normalise_ohlcv
from ai_trade_bot.data.sources import load_bundled, load_file
from ai_trade_bot.errors import DataSourceError, DataValidationError
from tests.conftest import make_ohlcv


def _as_table(frame: pd.DataFrame, time_col: str, case=str.title) -> pd.DataFrame:
    table = frame.reset_index().rename(columns={"timestamp": time_col})
    return table.rename(columns={c: case(c) for c in frame.columns})


@pytest.mark.parametrize("time_col", ["date", "Timestamp", "time", "Datetime"])
def test_usual_spellings_are_recognised(time_col: str) -> None:
    frame = make_ohlcv(20)
    out = normalise_ohlcv(_as_table(frame, time_col), source="t")
    pd.testing.assert_frame_equal(out, frame, check_freq=False)
    assert out.index.name == "timestamp" and str(out.index.tz) == "UTC"


@pytest.mark.parametrize("unit,factor", [("s", 10**9), ("ms", 10**6)])
def test_epoch_seconds_and_milliseconds(unit: str, factor: int) -> None:
    frame = make_ohlcv(20)
    table = _as_table(frame, "timestamp", str.lower)
    table["timestamp"] = frame.index.asi8 // factor
    out = normalise_ohlcv(table, source="t")
    assert (out.index == frame.index).all()


def test_string_timestamps_with_offsets_become_utc() -> None:
    table = pd.DataFrame(
        {
            "date": ["2024-01-01 01:00:00+01:00", "2024-01-01T01:00:00Z"],
            "open": [1, 1],
            "high": [2, 2],
            "low": [0.5, 0.5],
            "close": [1.5, 1.5],
            "volume": [10, 10],
        }
    )
    out = normalise_ohlcv(table, source="t")
    assert list(out.index.strftime("%H:%M")) == ["00:00", "01:00"]
    assert list(out.dtypes) == ["float64"] * 5


def test_missing_columns_name_the_source_and_the_rule() -> None:
    table = _as_table(make_ohlcv(5), "date").drop(columns=["Volume"])
    with pytest.raises(DataValidationError, match=r"my\.csv: rule 'required_columns'.*volume"):
        normalise_ohlcv(table, source="my.csv")


def test_unparseable_timestamps_name_the_row() -> None:
    table = _as_table(make_ohlcv(5), "date")
    table["date"] = table["date"].astype(str)
    table.loc[3, "date"] = "not a date"
    with pytest.raises(DataValidationError, match=r"rule 'timestamp_parse'.*row 3: 'not a date'"):
        normalise_ohlcv(table, source="x.csv")


def test_empty_input_is_an_error() -> None:
    with pytest.raises(DataValidationError, match=r"e\.csv: rule 'not_empty'"):
        normalise_ohlcv(pd.DataFrame(columns=["date", "open"]), source="e.csv")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".feather"])
def test_load_file_reads_each_format(tmp_path, suffix: str) -> None:
    frame = make_ohlcv(30)
    table = _as_table(frame, "date")
    path = tmp_path / f"candles{suffix}"
    {
        ".csv": lambda: table.to_csv(path, index=False),
        ".parquet": lambda: table.to_parquet(path),
        ".feather": lambda: table.to_feather(path),
    }[suffix]()
    out = load_file(path)
    pd.testing.assert_frame_equal(out, frame, check_freq=False, rtol=1e-12)


def test_load_file_errors(tmp_path) -> None:
    with pytest.raises(DataSourceError, match=r"unsupported file type '\.xlsx'"):
        load_file(tmp_path / "a.xlsx")
    with pytest.raises(DataSourceError, match="file not found"):
        load_file(tmp_path / "a.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataValidationError, match=r"empty\.csv: rule 'not_empty'"):
        load_file(tmp_path / "empty.csv")


@pytest.mark.parametrize("name,timeframe,rows", [("sp500", "1d", 5031), ("eurusd", "1h", 5000)])
def test_bundled_data_loads_offline(name: str, timeframe: str, rows: int) -> None:
    frame, _, tf = load_bundled(name)
    assert tf == timeframe and len(frame) == rows
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]


def test_a_to_csv_date_index_without_a_name_is_read_as_dates(tmp_path) -> None:
    from ai_trade_bot.data.ingest import load_from_source, parse_ingestion_config

    daily, _, _ = load_bundled("sp500")
    path = tmp_path / "stock.csv"
    daily.rename_axis(None).rename(columns=str.title).to_csv(path)
    assert path.read_text().startswith(",Open,High,Low,Close,Volume")
    frame, meta = load_from_source(parse_ingestion_config({"source": "file", "path": str(path)}))
    assert meta["timeframe"] == "1d"
    assert frame.index[0] == pd.Timestamp("1999-01-04", tz="UTC")
    pd.testing.assert_index_equal(frame.index, daily.index)


def test_row_numbers_are_never_taken_for_times(tmp_path) -> None:
    table = make_ohlcv(50).reset_index(drop=True)
    path = tmp_path / "no_time.csv"
    table.to_csv(path)  # an unnamed column of row numbers 0..49
    with pytest.raises(DataValidationError) as err:
        load_file(path)
    message = str(err.value)
    assert "rule 'required_columns'" in message
    assert "'Unnamed: 0' holds times before 1990" in message
    assert "first values [0, 1, 2]" in message
    with pytest.raises(DataValidationError, match="rule 'required_columns'"):
        normalise_ohlcv(table, source="t")  # a RangeIndex is row numbers, never times


def test_implausible_times_in_a_named_column_are_an_error() -> None:
    table = _as_table(make_ohlcv(20), "timestamp", str.lower)
    table["timestamp"] = range(20)  # row numbers read as epoch seconds: 1970
    plausible = r"'timestamp_plausible'.*'timestamp'.*\[0, 1, 2\]"
    with pytest.raises(DataValidationError, match=plausible):
        normalise_ohlcv(table, source="t")
    table["timestamp"] = pd.date_range("2024-01-01", periods=20, freq="10ms", tz="UTC")
    with pytest.raises(DataValidationError, match="under one second"):
        normalise_ohlcv(table, source="t")
