"""Typed configuration where users write keys: stops by name (the old numbers say what to
write), agent blocks, the tuning search space, and the engine's one mapping into numba."""

from __future__ import annotations

import dataclasses

import pytest

from ai_trade_bot.agents import parse_agent_block
from ai_trade_bot.backtest.engine import EngineConfig, EngineParams, engine_params
from ai_trade_bot.errors import ConfigError
from ai_trade_bot.evaluation.settings import parse_evaluate_config
from ai_trade_bot.training.tuning import parse_search_space


def test_stops_are_named_and_the_old_numbers_say_what_to_write() -> None:
    config = parse_evaluate_config({"engine": {"stop": "atr", "stop_value": 2.0}})
    assert config.engine.stop == "atr"
    with pytest.raises(ConfigError, match=r"'stop_kind: 2' is no longer read; write 'stop: atr'"):
        parse_evaluate_config({"engine": {"stop_kind": 2}})
    with pytest.raises(ConfigError, match=r"'take_kind: 1' .* write 'take: percent'"):
        parse_evaluate_config({"engine": {"take_kind": 1}})
    with pytest.raises(ConfigError, match="stop must be one of"):
        parse_evaluate_config({"engine": {"stop": "trailing"}})


def test_a_misspelt_agent_key_or_hyperparameter_fails_by_name() -> None:
    block = parse_agent_block({"name": "gbm", "use_tuned": False, "params": {}}, name="gbm")
    assert block.use_tuned is False
    with pytest.raises(ConfigError, match=r"'agents.gbm': unknown key\(s\) \['use_tunned'\]"):
        parse_agent_block({"name": "gbm", "use_tunned": False}, name="gbm")
    with pytest.raises(ConfigError, match=r"agents\.gbm: .*num_leafs"):
        parse_agent_block({"name": "gbm", "params": {"num_leafs": 7}}, name="gbm")


def test_the_search_space_is_typed() -> None:
    space = parse_search_space({"gbm": {"num_leaves": {"type": "int", "low": 7, "high": 63}}})
    assert space["gbm"]["num_leaves"].high == 63
    bad = {
        "tune.search_space.gbm.num_leaves": {"type": "int", "low": 63, "high": 7},
        "tune.search_space.gbm.learning_rate": {"type": "float", "lo": 0.1, "high": 1},
    }
    for path, spec in bad.items():
        with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
            parse_search_space({"gbm": {path.rsplit(".", 1)[1]: spec}})
    with pytest.raises(ConfigError, match=r"agents\.gbm: .*num_leafs"):
        parse_search_space({"gbm": {"num_leafs": {"type": "int", "low": 7, "high": 63}}})


def test_the_engine_reaches_numba_through_one_mapping_from_the_dataclass() -> None:
    names = [f.name for f in dataclasses.fields(EngineConfig)]
    assert list(EngineParams._fields) == [*names, "fast_paths"]
    params = engine_params(EngineConfig(stop="percent", initial_cash=1_000))
    assert params.stop == 1 and isinstance(params.initial_cash, float)
    assert params.max_order_notional == float("inf")
