"""The volatility agent's fallback: where the MLP has nothing to add, it returns GARCH."""

from __future__ import annotations

import numpy as np

from ai_trade_bot.modeling.scoring import qlike_loss
from ai_trade_bot.training.folds import WalkForwardConfig
from ai_trade_bot.training.walk_forward import run_walk_forward
from tests.agents.conftest import FAST, model_input
from tests.synthetic import garch_only


def test_volatility_agent_returns_garch_when_the_mlp_has_nothing_to_add() -> None:
    X, y = model_input(garch_only(2500, seed=4))
    params = {"horizon": 3, "burn_in": 10, "hidden": 16, **FAST, "max_epochs": 5}
    result = run_walk_forward(
        "volatility", params, X, y, WalkForwardConfig(n_folds=3, purge=3, embargo=3)
    )
    # every fold and the deployment model chose plain GARCH ...
    for record in result.calibration:
        assert record["plain_garch"], record
    # ... so its forecast is GARCH's, exactly, out of fold and from the deployed model
    oof = result.oof
    np.testing.assert_array_equal(oof["pred_vol"].to_numpy(), oof["garch_vol"].to_numpy())
    deployed = result.final_agent.predict(X.iloc[-300:])
    np.testing.assert_array_equal(deployed["pred_vol"], deployed["garch_vol"])
    # and is therefore never worse than GARCH out of fold
    realized = y["fwd_realized_vol_3"].reindex(oof.index).to_numpy() ** 2 / 3
    agent = qlike_loss(oof["pred_vol"].to_numpy() ** 2, realized)
    garch = qlike_loss(oof["garch_vol"].to_numpy() ** 2, realized)
    assert agent <= garch
