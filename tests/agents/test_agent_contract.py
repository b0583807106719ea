"""One contract that every registered agent must pass."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.agents import AGENTS, Agent, make_agent
from ai_trade_bot.errors import ConfigError, DataValidationError, ModelNotFittedError
from tests.agents.conftest import tiny_params


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_agent_contract(name: str, tiny_xy, tmp_path) -> None:
    X, y = tiny_xy
    agent = make_agent(name, **tiny_params(name, tmp_path, X.index))
    # __init__ stores hyperparameters only
    assert not agent.is_fitted()
    assert set(agent.get_params()) >= set(tiny_params(name, tmp_path, X.index))
    # predicting before fit is a clear error
    with pytest.raises(ModelNotFittedError, match=f"agent '{name}' is not fitted"):
        agent.predict(X)

    train, test = X.iloc[:350], X.iloc[350:]
    fitted = agent.fit(train, y.iloc[:350], val_size=60, gap=3)
    assert fitted is agent and agent.is_fitted()

    out = agent.predict(test)
    assert list(out.columns) == list(type(agent).output_columns)
    assert out.index.equals(test.index[agent.min_history - 1 :])
    assert np.isfinite(out.to_numpy()).all()
    if agent.output_kind == "direction":
        probs = agent.predict_proba(test)
        np.testing.assert_allclose(probs[["down", "flat", "up"]].sum(axis=1), 1.0, atol=1e-6)
        assert probs["confidence"].between(0, 1).all()
    elif agent.output_kind == "regime":
        np.testing.assert_allclose(out.filter(like="p_").sum(axis=1), 1.0, atol=1e-6)
        with pytest.raises(TypeError, match="not direction probabilities"):
            agent.predict_proba(test)
    else:
        assert (out["pred_vol"] > 0).all() and (out["pred_range"] > out["pred_vol"]).all()

    # save / load round-trips exactly
    agent.save(tmp_path / "saved")
    loaded = Agent.load(tmp_path / "saved")
    assert type(loaded) is type(agent) and loaded.get_params() == agent.get_params()
    pd.testing.assert_frame_equal(loaded.predict(test), out, check_exact=True)

    # streaming one row at a time (the live runner) gives predict's output on the span,
    # the state surviving a JSON round trip (the runner's SQLite store)
    first = agent.min_history - 1
    state = json.loads(json.dumps(loaded.start_stream(test.iloc[:first])))
    streamed = []
    for t in range(first, len(test)):
        row, state = loaded.predict_next(
            test.iloc[max(0, t + 1 - agent.min_history) : t + 1], state
        )
        state = json.loads(json.dumps(state))
        streamed.append(row)
    np.testing.assert_allclose(pd.concat(streamed).to_numpy(), out.to_numpy(), rtol=1e-6, atol=1e-7)

    # too short a history and NaN inputs name the agent and the window
    short = test.iloc[: agent.min_history - 1] if agent.min_history > 1 else test.iloc[:0]
    with pytest.raises(DataValidationError, match=f"agent '{name}' needs a history of at least"):
        agent.predict(short)
    broken = test.copy()
    column = agent.columns_[0] if agent.columns_ else None
    if column is not None:
        broken.iloc[5, broken.columns.get_loc(column)] = np.nan
        with pytest.raises(DataValidationError, match=f"agent '{name}': input has NaN"):
            agent.predict(broken)


def test_registry_lists_valid_names_on_a_typo() -> None:
    with pytest.raises(ConfigError, match=r"unknown agent 'trend_lstn'; valid agents: \['gbm'"):
        make_agent("trend_lstn")
    with pytest.raises(ConfigError, match=r"agents\.gbm: .*unexpected keyword argument 'depth'"):
        make_agent("gbm", depth=3)


def test_sentiment_is_disabled_without_configuration(tiny_xy) -> None:
    X, y = tiny_xy
    with pytest.raises(ConfigError, match="agent 'sentiment' is disabled"):
        make_agent("sentiment").fit(X, y)
