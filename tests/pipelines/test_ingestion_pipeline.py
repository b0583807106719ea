"""The ingestion pipeline on in-memory data."""

from __future__ import annotations

import pytest

from ai_trade_bot.errors import ConfigError, DataValidationError
from ai_trade_bot.pipelines.ingestion import create_pipeline
from ai_trade_bot.pipelines.ingestion.nodes import load_ohlcv, validate_candles
from tests.conftest import make_ohlcv

VALIDATION = {"max_rejected_fraction": 0.05, "gap_tolerance_bars": 4.0}


def test_pipeline_on_bundled_default(run) -> None:
    out = run(
        create_pipeline(),
        {
            "params:ingestion": {"source": "bundled", "validation": VALIDATION},
            "params:ingestion.validation": VALIDATION,
        },
    )
    clean, rejected, summary = (
        out["ohlcv_clean"],
        out["ohlcv_rejected"],
        out["data_quality_summary"],
    )
    assert len(clean) == 5031 and len(rejected) == 0
    assert summary["symbol"] == "SPX" and summary["timeframe"] == "1d"
    assert out["data_quality_metrics"]["dq.rows_in"] == {"value": 5031.0, "step": 0}


def test_pipeline_on_a_file_with_bad_rows(run, tmp_path) -> None:
    frame = make_ohlcv(200)
    frame.iloc[5, frame.columns.get_loc("high")] = 0.01
    path = tmp_path / "btc.csv"
    frame.reset_index().rename(columns={"timestamp": "Date"}).to_csv(path, index=False)
    out = run(
        create_pipeline(),
        {
            "params:ingestion": {"source": "file", "path": str(path)},
            "params:ingestion.validation": VALIDATION,
        },
    )
    summary = out["data_quality_summary"]
    assert (summary["source"], summary["symbol"], summary["timeframe"]) == (str(path), "btc", "1h")
    assert len(out["ohlcv_clean"]) == 199
    assert list(out["ohlcv_rejected"]["rule"]) == ["high_ge_max_open_close"]


def test_load_ohlcv_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="source must be one of"):
        load_ohlcv({"source": "ftp"})
    with pytest.raises(ConfigError, match="source 'file' needs a path"):
        load_ohlcv({"source": "file"})
    with pytest.raises(ConfigError, match=r"ingestion.ccxt': unknown key\(s\) \['exchnage'\]"):
        load_ohlcv({"source": "bundled", "ccxt": {"exchnage": "binance"}})


def test_validate_candles_stops_above_threshold() -> None:
    frame = make_ohlcv(100)
    frame.iloc[:10, frame.columns.get_loc("close")] = -1.0
    meta = {"source": "f.csv", "symbol": "X", "timeframe": "1h"}
    with pytest.raises(DataValidationError, match=r"f\.csv: 10 of 100 rows .*prices_finite"):
        validate_candles(frame, meta, VALIDATION)
