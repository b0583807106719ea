"""Bad input to the train and evaluate nodes fails by name, before any work."""

from __future__ import annotations

import pandas as pd
import pytest

from ai_trade_bot.errors import ConfigError, DataValidationError
from ai_trade_bot.pipelines.evaluate.nodes import predict_test_span, select_meta_config
from ai_trade_bot.pipelines.train.nodes import build_model_input, fit_meta_agents, train_agent
from tests.conftest import make_ohlcv


def test_train_nodes_reject_bad_input() -> None:
    ohlcv = make_ohlcv(50)
    features = pd.DataFrame({"x": 1.0}, index=ohlcv.index)
    labels = pd.DataFrame({"direction": 1.0}, index=ohlcv.index[::-1])
    with pytest.raises(DataValidationError, match="features and labels must share one index"):
        build_model_input(features, labels, ohlcv, {})
    with pytest.raises(ConfigError, match=r"'train.walk_forward': unknown key\(s\) \['folds'\]"):
        build_model_input(features, labels.sort_index(), ohlcv, {"folds": 3})
    with pytest.raises(ConfigError, match="unknown agent 'lstm'"):
        train_agent(features, labels, {}, {"name": "lstm", "params": {}}, {})
    with pytest.raises(ConfigError, match="test_fraction must be 0"):
        fit_meta_agents(
            pd.DataFrame({"fold": [0.0]}),
            labels,
            {"methods": ["logistic"], "walk_forward": {"test_fraction": 0.2}},
        )


def test_evaluate_nodes_reject_bad_parameters() -> None:
    ohlcv = make_ohlcv(50)
    with pytest.raises(ConfigError, match=r"'evaluate': unknown key\(s\) \['cost'\]"):
        select_meta_config(pd.DataFrame(index=ohlcv.index), pd.DataFrame(), ohlcv, {"cost": {}})
    with pytest.raises(ConfigError, match="mode must be 'expanding' or 'rolling'"):
        predict_test_span(pd.DataFrame(index=ohlcv.index), ohlcv, ohlcv, {"mode": "sliding"})
