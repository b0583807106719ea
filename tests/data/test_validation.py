"""Each validation rule quarantines its rows with the rule's name; thresholds stop runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.config import parse_config
from ai_trade_bot.data.validation import ValidationConfig, validate_ohlcv
from ai_trade_bot.errors import ConfigError, DataValidationError
from tests.conftest import make_ohlcv

LENIENT = ValidationConfig(max_rejected_fraction=0.5)


def _validate(frame: pd.DataFrame, config: ValidationConfig = LENIENT):
    return validate_ohlcv(frame, timeframe="1h", config=config, source="candles.csv")


def _break(frame: pd.DataFrame, row: int, **values: float) -> pd.DataFrame:
    out = frame.copy()
    for col, value in values.items():
        out.iloc[row, out.columns.get_loc(col)] = value
    return out


@pytest.mark.parametrize(
    "change,rule",
    [
        ({"close": -1.0}, "prices_finite_positive"),
        ({"open": np.nan}, "prices_finite_positive"),
        ({"low": np.inf}, "prices_finite_positive"),
        ({"volume": -5.0}, "volume_finite_non_negative"),
        ({"volume": np.nan}, "volume_finite_non_negative"),
        ({"high": 1e-3}, "high_ge_max_open_close"),
        ({"low": 1e6}, "low_le_min_open_close"),
    ],
)
def test_each_row_rule_quarantines_with_its_name(change: dict, rule: str) -> None:
    frame = make_ohlcv(100)
    clean, rejected, summary = _validate(_break(frame, 10, **change))
    assert list(rejected["rule"]) == [rule]
    assert rejected.index[0] == frame.index[10]
    assert int(rejected["source_row"].iloc[0]) == 10
    assert len(clean) + len(rejected) == len(frame) == summary["rows_in"]
    assert summary["rejected_by_rule"][rule] == 1


def test_duplicates_are_rejected_and_the_rest_sorted() -> None:
    frame = make_ohlcv(50)
    shuffled = pd.concat([frame.iloc[::-1], frame.iloc[[5, 7]]])
    clean, rejected, summary = _validate(shuffled)
    assert clean.index.is_monotonic_increasing and clean.index.is_unique
    assert list(rejected["rule"]) == ["duplicate_timestamp"] * 2
    assert len(clean) == 50 and summary["rows_in"] == 52
    pd.testing.assert_frame_equal(clean, frame, check_freq=False)


def test_a_bad_first_copy_loses_to_a_good_duplicate() -> None:
    frame = make_ohlcv(20)
    bad = _break(frame.iloc[[3]], 0, close=-1.0)
    clean, rejected, _ = _validate(pd.concat([bad, frame]))
    assert clean.loc[frame.index[3], "close"] == frame["close"].iloc[3]
    assert list(rejected["rule"]) == ["prices_finite_positive"]


def test_gaps_are_detected_against_the_timeframe() -> None:
    frame = make_ohlcv(100).drop(make_ohlcv(100).index[40:43])
    _, _, summary = _validate(frame, ValidationConfig())
    assert summary["gaps"]["count"] == 1
    assert summary["gaps"]["missing_bars"] == 3
    assert summary["gaps"]["first"][0]["after"].startswith("2024-01-02 15:00")


def test_return_outliers_are_flagged_and_optionally_rejected() -> None:
    frame = make_ohlcv(300)
    frame.iloc[150:, :4] *= 1.5  # a 40% jump on an hourly series
    _, rejected, summary = _validate(frame, ValidationConfig(outlier_sigmas=10))
    assert summary["return_outliers"]["first"] == [str(frame.index[150])]
    assert len(rejected) == 0
    _, rejected, _ = _validate(frame, ValidationConfig(outlier_sigmas=10, reject_outliers=True))
    assert list(rejected["rule"]) == ["return_outlier"]


def test_too_many_rejections_stop_with_file_rule_and_example() -> None:
    frame = make_ohlcv(100)
    frame.iloc[20:40, frame.columns.get_loc("volume")] = -1.0
    with pytest.raises(DataValidationError) as info:
        _validate(frame, ValidationConfig(max_rejected_fraction=0.05))
    message = str(info.value)
    assert "candles.csv" in message
    assert "'volume_finite_non_negative' (20 rows)" in message
    assert "'row': 20" in message and "'volume': -1.0" in message


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['max_rejected'\]"):
        parse_config(ValidationConfig, {"max_rejected": 0.1}, name="ingestion.validation")
    with pytest.raises(ConfigError, match="max_rejected_fraction must be in"):
        parse_config(ValidationConfig, {"max_rejected_fraction": 2}, name="v")


def test_gaps_follow_the_markets_own_calendar() -> None:
    from tests.synthetic import make_market

    config = ValidationConfig()
    # equity days: weekends and single holidays are the calendar, not gaps
    days = make_market("equity", "1d", 800, seed=1)
    _, _, summary = validate_ohlcv(days, timeframe="1d", config=config, source="t")
    assert summary["gaps"]["count"] == 0
    assert summary["gaps"]["calendar"]["trading_days"] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    # a closed week (9/11 style) is
    closed = days.drop(days.index[400:405])
    _, _, summary = validate_ohlcv(closed, timeframe="1d", config=config, source="t")
    assert summary["gaps"]["count"] == 1 and summary["gaps"]["first"][0]["missing_bars"] == 5
    # FX: Friday 21:00 to Sunday 22:00 is the weekend
    fx = make_market("fx", "1h", 1500, seed=2)
    _, _, summary = validate_ohlcv(fx, timeframe="1h", config=config, source="t")
    assert summary["gaps"]["count"] == 0
    # crypto trades every hour: two missing hours are a gap
    crypto = make_market("crypto", "1h", 1500, seed=3)
    holed = crypto.drop(crypto.index[700:702])
    _, _, summary = validate_ohlcv(holed, timeframe="1h", config=config, source="t")
    assert summary["gaps"]["count"] == 1 and summary["gaps"]["missing_bars"] == 2
    assert summary["gaps"]["calendar"]["trading_slots_per_week"] == 168
