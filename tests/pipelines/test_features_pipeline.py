"""The features pipeline on in-memory data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.errors import ConfigError, DataValidationError
from ai_trade_bot.features.build import FeatureConfig
from ai_trade_bot.pipelines.features import create_pipeline
from ai_trade_bot.pipelines.features.nodes import compute_features, compute_labels

META = {"source": "bundled:sp500", "symbol": "SPX", "timeframe": "1d"}
LABELS = {"horizon": 5}
WALK_FORWARD = {"n_folds": 5, "min_train_fraction": 0.4, "test_fraction": 0.2}


def test_pipeline_builds_features_and_labels(run, sp500) -> None:
    out = run(
        create_pipeline(),
        {
            "ohlcv_clean": sp500,
            "ohlcv_metadata": META,
            "params:features": {},
            "params:labels": LABELS,
            "params:train.walk_forward": WALK_FORWARD,
        },
    )
    features, labels, manifest = out["features"], out["labels"], out["feature_manifest"]
    assert features.index.equals(sp500.index) and labels.index.equals(sp500.index)
    assert manifest["n_features"] == features.shape[1] >= 80
    assert manifest["complete_rows"] == len(features.dropna()) > 4000
    assert not set(features.columns) & set(labels.columns)
    assert set(labels["direction"].dropna().unique()) == {0.0, 1.0, 2.0}
    # daily bars: the auto higher timeframes and VWAP anchor, recorded in the manifest
    assert manifest["resolved"] == {"multi_timeframe": ["1w", "4w"], "vwap_anchor": "W"}


def test_features_are_scale_free(sp500) -> None:
    base, _ = compute_features(sp500, META, {}, LABELS, WALK_FORWARD)
    scaled, _ = compute_features(
        sp500.assign(**{c: sp500[c] * 1000 for c in ["open", "high", "low", "close"]}),
        META,
        {},
        LABELS,
        WALK_FORWARD,
    )
    np.testing.assert_allclose(scaled.to_numpy(), base.to_numpy(), rtol=1e-6, atol=1e-6)


def test_bad_inputs_are_clear_errors(sp500) -> None:
    with pytest.raises(ConfigError, match=r"'features': unknown key\(s\) \['sma'\]"):
        compute_features(sp500, META, {"sma": [5]}, LABELS, WALK_FORWARD)
    with pytest.raises(DataValidationError, match="need at least 201 candles"):
        compute_features(sp500.iloc[:100], META, {}, LABELS, WALK_FORWARD)
    with pytest.raises(DataValidationError, match="sorted and unique"):
        compute_features(sp500.iloc[::-1], META, {}, LABELS, WALK_FORWARD)
    with pytest.raises(ConfigError, match="horizon must be >= 1"):
        compute_labels(sp500, {"horizon": 0})


def test_a_column_nan_on_every_row_names_its_parameter_and_the_fix(sp500) -> None:
    # six years of daily candles hold 12 half-year bars: too few for their RSI(14)
    years = sp500.iloc[-1500:]
    with pytest.raises(DataValidationError) as err:
        compute_features(years, META, {"multi_timeframe": ["26w"]}, LABELS, WALK_FORWARD)
    message = str(err.value)
    assert "NaN on every row" in message and "features.multi_timeframe" in message
    assert "htf_26w_rsi" in message and "longer history" in message


def test_auto_settings_follow_the_timeframe_and_the_history() -> None:
    config = FeatureConfig()
    assert config.resolve("5m").multi_timeframe == ("1h", "4h")
    assert config.resolve("5m").vwap_anchor == "D"
    assert config.resolve("1h").multi_timeframe == ("4h", "1d")
    assert config.resolve("1h").vwap_anchor == "W"
    assert config.resolve("1d").multi_timeframe == ("1w", "4w")
    assert config.resolve("2h").multi_timeframe == ("1d", "1w")  # off the table: >= 4 bars
    # 'auto' leaves out a higher timeframe the history cannot fill 45 times
    assert config.resolve("1d", pd.Timedelta(days=3 * 365)).multi_timeframe == ("1w",)
    assert config.resolve("5m", pd.Timedelta(days=21)).multi_timeframe == ("1h", "4h")
    # explicit values are kept
    assert FeatureConfig(multi_timeframe=["4h"]).resolve("1h").multi_timeframe == ("4h",)
    with pytest.raises(ValueError, match="multi_timeframe must be 'auto' or a list"):
        FeatureConfig(multi_timeframe="4h")


def test_too_few_complete_rows_name_the_warm_up_and_what_train_needs(sp500) -> None:
    with pytest.raises(DataValidationError) as err:
        compute_features(sp500.iloc[:800], META, {}, LABELS, WALK_FORWARD)
    message = str(err.value)
    assert re.search(r"\d+ of 800 1d rows are complete", message)
    assert "warm-up takes the first 500 rows" in message and "garch_min_obs" in message
    assert re.search(r"train needs at least \d+ complete rows", message)
