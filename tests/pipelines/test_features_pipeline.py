"""The features pipeline on in-memory data."""

from __future__ import annotations

import numpy as np
import pytest

from ai_trade_bot.errors import ConfigError, DataValidationError
from ai_trade_bot.pipelines.features import create_pipeline
from ai_trade_bot.pipelines.features.nodes import compute_features, compute_labels

META = {"source": "bundled:sp500", "symbol": "SPX", "timeframe": "1d"}


def test_pipeline_builds_features_and_labels(run, sp500) -> None:
    out = run(
        create_pipeline(),
        {
            "ohlcv_clean": sp500,
            "ohlcv_metadata": META,
            "params:features": {},
            "params:labels": {"horizon": 5},
        },
    )
    features, labels, manifest = out["features"], out["labels"], out["feature_manifest"]
    assert features.index.equals(sp500.index) and labels.index.equals(sp500.index)
    assert manifest["n_features"] == features.shape[1] >= 80
    assert manifest["complete_rows"] == len(features.dropna()) > 4000
    assert not set(features.columns) & set(labels.columns)
    assert set(labels["direction"].dropna().unique()) == {0.0, 1.0, 2.0}


def test_features_are_scale_free(sp500) -> None:
    base, _ = compute_features(sp500, META, {})
    scaled, _ = compute_features(
        sp500.assign(**{c: sp500[c] * 1000 for c in ["open", "high", "low", "close"]}), META, {}
    )
    np.testing.assert_allclose(scaled.to_numpy(), base.to_numpy(), rtol=1e-6, atol=1e-6)


def test_bad_inputs_are_clear_errors(sp500) -> None:
    with pytest.raises(ConfigError, match=r"'features': unknown key\(s\) \['sma'\]"):
        compute_features(sp500, META, {"sma": [5]})
    with pytest.raises(DataValidationError, match="need at least 201 candles"):
        compute_features(sp500.iloc[:100], META, {})
    with pytest.raises(DataValidationError, match="sorted and unique"):
        compute_features(sp500.iloc[::-1], META, {})
    with pytest.raises(ConfigError, match="horizon must be >= 1"):
        compute_labels(sp500, {"horizon": 0})
