"""The universe traded as one book: construction rules scripted, and the whole evaluation
on a planted edge (found, traded within the limits, its placebo refused) and on a model
at its prior (no trades, and told so)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from ai_trade_bot.evaluation.portfolio import evaluate_portfolio
from ai_trade_bot.evaluation.settings import parse_evaluate_config
from ai_trade_bot.portfolio.construct import PortfolioConfig, ev_sides, topk_dropout
from ai_trade_bot.portfolio.limits import RiskLimits
from ai_trade_bot.settings import PROJECT_ROOT
from tests.synthetic import planted_trend

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
# tighter than conf/base's, so that the sector and total limits bind on four names
LIMITS = RiskLimits(
    max_single_sector=0.15,
    max_total_exposure=0.28,
    sectors={"AAA": "tech", "BBB": "tech", "CCC": "energy", "DDD": "energy"},
)
# The long/short methods: a long-only top-k of 4 names earns half the planted edge, and the
# deflated Sharpe reads the spread of Sharpe across traded trials as luck (as Bailey and
# Lopez de Prado define it), so on 2 distinct trials that spread alone would decide it.
SMALL = PortfolioConfig(methods=("strategy", "equal", "risk"), margins=(0.0, 0.001))


def _config():
    block = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_evaluate.yml").read_text())
    return parse_evaluate_config(block["evaluate"] | {"bootstrap": 50})


def test_portfolio_limit_entry_on_expected_value_after_costs() -> None:
    ev = pd.DataFrame({"A": [0.001, 0.004, 0.001, np.nan, -0.001, -0.005, 0.0]})
    sides = ev_sides(ev, cost=0.0026, margin=0.0005)["A"].tolist()
    # below cost + margin: no entry; above: long; weaker but same sign: held; NaN: hold;
    # turned: out; far below: short; zero: out
    assert sides[:3] == [0.0, 1.0, 1.0]
    assert np.isnan(sides[3])
    assert sides[4:] == [0.0, -1.0, 0.0]
    assert ev_sides(ev, 0.0026, 0.0005, allow_short=False)["A"].tolist()[5] == 0.0


def test_portfolio_topk_dropout_replaces_at_most_n_drop_per_bar() -> None:
    scores = pd.DataFrame(
        [
            [0.05, 0.04, 0.03, 0.02],  # buy the best two
            [0.01, 0.02, 0.06, 0.05],  # both fell behind: only the worst (A) goes this bar
            [0.01, 0.02, 0.06, 0.05],  # then B, for the best candidate left (D)
            [0.01, -0.02, 0.06, 0.05],  # unchanged holdings
            [0.01, 0.02, -0.06, 0.05],  # an edge gone negative is sold at once
        ],
        columns=list("ABCD"),
    )
    held = topk_dropout(scores, k=2, n_drop=1).astype(int).to_numpy().tolist()
    assert held == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 1, 1], [0, 1, 0, 1]]


def _market(n: int = 520):
    candles, labels, outputs = [], [], []
    for k, symbol in enumerate(SYMBOLS):
        bars = planted_trend(n, seed=k + 1, drift=0.2)
        nxt = bars["close"].shift(-1)
        up = (nxt > bars["close"]).to_numpy()
        known = nxt.notna().to_numpy()
        candles.append(bars.reset_index().assign(symbol=symbol, missing=False))
        labels.append(
            pd.DataFrame(
                {
                    "timestamp": bars.index,
                    "symbol": symbol,
                    "direction": np.where(known, np.where(up, 2.0, 0.0), np.nan),
                }
            ).dropna()
        )
        rows = bars.index[60:-1]
        p_up = np.where(up[60:-1], 0.85, 0.05)  # knows tomorrow: an edge far above costs
        for agent, scope, probs in (
            ("oracle", "pooled", (0.9 - p_up, 0.1, p_up)),
            ("prior", symbol, (0.33, 0.34, 0.33)),
        ):
            outputs.append(
                pd.DataFrame(
                    {
                        "timestamp": rows,
                        "symbol": symbol,
                        "down": probs[0],
                        "flat": probs[1],
                        "up": probs[2],
                        "confidence": np.max(np.broadcast_arrays(*probs), axis=0),
                        "informative": agent == "oracle",
                        "scope": scope,
                        "agent": agent,
                    }
                )
            )
    outputs = pd.concat(outputs, ignore_index=True)
    cut = outputs["timestamp"].sort_values().unique()[300]
    oof = outputs[outputs["timestamp"] < cut].assign(fold=0)
    test = outputs[outputs["timestamp"] >= cut]
    return test, oof, pd.concat(candles, ignore_index=True), pd.concat(labels, ignore_index=True)


SUMMARY = {"agents": {"oracle": {"winner": {"per_symbol": dict.fromkeys(SYMBOLS, "pooled")}}}}


@pytest.fixture(scope="module")
def planted():
    test, oof, candles, labels = _market()
    return evaluate_portfolio(test, oof, candles, labels, SUMMARY, _config(), LIMITS, SMALL)


def test_portfolio_book_finds_a_planted_edge_and_refuses_its_placebo(planted) -> None:
    block, curves, _exposure = planted
    assert block["deployed"]["model"] == "oracle:pooled"  # chosen on the out-of-fold rows
    m = block["metrics"]
    assert m["n_trades"] > 50 and m["sharpe"] > 3
    assert block["statistics"]["dsr"] > 0.95
    assert block["verdict"].startswith("evidence of an edge"), block["verdict"]
    assert block["placebo"]["sharpe"] < 1.0  # the same outputs without their timing
    # every trial counted: symbols x models x (methods x margins, strategy without margin)
    assert block["n_trials"] == len(SYMBOLS) * 2 * len(SMALL.trials())
    assert np.isfinite(block["statistics"]["pbo"])
    # the skill that survives costs is reported, and costs were paid
    assert m["cost_paid"] > 0 and m["expected_edge"] > m["expected_edge_after_costs"]
    assert "baseline:buy_and_hold" in block["baselines"]
    assert "baseline:best_single_agent" in block["baselines"]
    assert set(block["per_sector"]) == {"tech", "energy"}
    assert {c.split(":")[0] for c in curves.columns} == {"book"}
    assert "Research software" in block["disclaimer"]


def test_portfolio_limit_book_holds_its_exposure_limits_on_a_planted_edge() -> None:
    # the strategy step sizes each name at the whole fraction: only the clamp holds it
    test, oof, candles, labels = _market(420)
    strategy = PortfolioConfig(methods=("strategy",), margins=(0.0,))
    block, _, exposure = evaluate_portfolio(
        test, oof, candles, labels, SUMMARY, _config(), LIMITS, strategy
    )
    # decided fractions are clamped; held positions drift with one bar's prices at most
    drift = 1.06
    assert block["metrics"]["max_gross_exposure"] <= LIMITS.max_total_exposure * drift
    assert exposure["sector"].max().max() <= LIMITS.max_single_sector * drift
    assert exposure["cluster"].max().max() <= LIMITS.max_correlated_exposure * drift
    bound = block["metrics"]["limits_bound"]
    assert bound.get("max_single_sector", 0) > 10 and bound.get("max_total_exposure", 0) > 10


def test_portfolio_book_of_a_model_at_its_prior_does_not_trade() -> None:
    test, oof, candles, labels = _market(420)
    prior_only = lambda f: f[f["agent"] == "prior"]  # noqa: E731
    block, _, _ = evaluate_portfolio(
        prior_only(test), prior_only(oof), candles, labels, {}, _config(), LIMITS, SMALL
    )
    assert block["metrics"]["n_trades"] == 0
    assert block["verdict"].startswith("no trades")
    assert "baseline:best_single_agent" not in block["baselines"]


@pytest.mark.parametrize("method", ["topk", "equal", "confidence", "volatility", "risk"])
def test_portfolio_parity_stepped_construction_is_the_batch_one(method) -> None:
    """The live book's O(1) step (:func:`targets_step`, carried state) gives the batch
    construction's targets row for row."""
    from ai_trade_bot.portfolio.construct import ConstructionState, book_targets, targets_step

    rng = np.random.default_rng(5)
    shape = (300, 6)
    index = pd.date_range("2022-01-01", periods=shape[0], freq="1D", tz="UTC")
    frame = lambda values: pd.DataFrame(values, index=index, columns=list("ABCDEF"))  # noqa: E731
    ev = frame(np.where(rng.random(shape) < 0.1, np.nan, rng.normal(0, 0.004, shape)))
    confidence = frame(rng.uniform(0.3, 0.9, shape))
    sigma = frame(np.where(rng.random(shape) < 0.05, np.nan, rng.uniform(0.005, 0.03, shape)))
    cost = frame(np.full(shape, 0.0026))
    stop = frame(np.where(rng.random(shape) < 0.3, np.nan, 2 * rng.uniform(0.005, 0.03, shape)))
    config = PortfolioConfig(top_k=2, n_drop=1)
    batch = book_targets(
        method, 0.0005, ev=ev, confidence=confidence, sigma=sigma, cost=cost, limits=LIMITS,
        config=config, stop_distance=stop,
    ).to_numpy()  # fmt: skip
    state = ConstructionState.start(shape[1])
    for t in range(shape[0]):
        row = targets_step(
            method, 0.0005, state, ev=ev.iloc[t].to_numpy(),
            confidence=confidence.iloc[t].to_numpy(), sigma=sigma.iloc[t].to_numpy(),
            cost=cost.iloc[t].to_numpy(),
            stop_distance=stop.iloc[t].to_numpy(), limits=LIMITS, config=config,
        )  # fmt: skip
        np.testing.assert_allclose(row, batch[t], rtol=1e-12, atol=0, err_msg=f"row {t}")
    assert np.nansum(np.abs(batch)) > 0  # the case traded
