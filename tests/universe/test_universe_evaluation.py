"""The universe's held-out evaluation: a real edge is found, a prior-only model does not
trade, the placebo refuses the edge's timing, and the basket is the mean of its sleeves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from ai_trade_bot.evaluation.settings import parse_evaluate_config
from ai_trade_bot.evaluation.universe import evaluate_universe, render_universe_report
from ai_trade_bot.settings import PROJECT_ROOT
from tests.conftest import make_ohlcv


def _config():
    block = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_evaluate.yml").read_text())
    return parse_evaluate_config(block["evaluate"] | {"bootstrap": 50})


def _universe(n: int = 300):
    frames = {
        s: make_ohlcv(n, seed=i, freq="1D", start="2021-01-01")
        for i, s in enumerate(["AAA", "BBB", "CCC"])
    }
    frames["CCC"] = frames["CCC"].drop(frames["CCC"].index[[150, 151, 200]])  # missing bars
    candles, labels, oracle, prior = [], [], [], []
    for symbol, bars in frames.items():
        up = (bars["close"].shift(-1) > bars["close"]).to_numpy()
        known = bars["close"].shift(-1).notna().to_numpy()
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
        test = bars.index[100:-1]
        p_up = np.where(up[100:-1], 0.9, 0.05)
        oracle.append(
            pd.DataFrame(
                {
                    "timestamp": test,
                    "symbol": symbol,
                    "down": 0.95 - p_up,
                    "flat": 0.05,
                    "up": p_up,
                    "confidence": 0.9,
                    "informative": True,
                    "scope": "pooled",
                    "agent": "oracle",
                }
            )
        )
        prior.append(
            pd.DataFrame(
                {
                    "timestamp": test,
                    "symbol": symbol,
                    "down": 0.33,
                    "flat": 0.34,
                    "up": 0.33,
                    "confidence": 0.34,
                    "informative": False,
                    "scope": symbol,
                    "agent": "prior",
                }
            )
        )
    return (
        pd.concat(oracle + prior, ignore_index=True),
        pd.concat(candles, ignore_index=True),
        pd.concat(labels, ignore_index=True),
    )


def test_universe_evaluation_finds_a_real_edge_and_refuses_its_placebo():
    outputs, candles, labels = _universe()
    evaluation, curves = evaluate_universe(outputs, candles, labels, _config())
    baskets, stats = evaluation["baskets"], evaluation["statistics"]
    # a model that knows tomorrow's direction trades every symbol and shows it
    assert baskets["oracle:pooled"]["n_trades"] > 30
    assert baskets["oracle:pooled"]["sharpe"] > 3
    assert stats["oracle:pooled"]["dsr"] > 0.95
    assert evaluation["verdicts"]["oracle:pooled"].startswith("evidence of an edge")
    # the same outputs in a shuffled order of time have no edge
    assert baskets["placebo:oracle:pooled"]["sharpe"] < 1.5
    # a model at its prior does not trade, and is told so
    assert baskets["prior:per_symbol"]["n_trades"] == 0
    assert evaluation["verdicts"]["prior:per_symbol"].startswith("no trades")
    assert set(evaluation["per_symbol"]["oracle:pooled"]) == {"AAA", "BBB", "CCC"}
    assert "Research software" in evaluation["disclaimer"]
    # the basket is the mean of its sleeves' values, each carried over its missing bars
    sleeves = []
    for symbol in ("AAA", "BBB", "CCC"):
        bah = evaluation["per_symbol"]["baseline:buy_and_hold"][symbol]["total_return"]
        sleeves.append(1 + bah)
    basket = curves["baseline:buy_and_hold"]
    assert np.isclose(basket.iloc[-1] / 100_000.0, np.mean(sleeves), rtol=1e-9)
    assert curves.notna().all().all()


def test_universe_report_shows_the_disclaimer_and_both_tables():
    outputs, candles, labels = _universe(220)
    evaluation, curves = evaluate_universe(outputs, candles, labels, _config())
    scores = {
        "rows": 10,
        "log_loss": 1.0,
        "prior_log_loss": 1.1,
        "beats_prior": True,
        "rank_ic": 0.05,
        "icir": 0.3,
        "times": 9,
        "times_with_equal_scores": 0,
        "per_symbol": {"AAA": {"log_loss": 1.0, "prior_log_loss": 1.1, "beats_prior": True}},
    }
    summary = {
        "agents": {
            "gbm": {
                "pooled": scores,
                "per_symbol": scores,
                "winner": {
                    "log_loss": "pooled",
                    "rank_ic": "pooled",
                    "per_symbol": {"AAA": "pooled"},
                },
            }
        }
    }
    html = render_universe_report(evaluation, curves, summary, {"dropped": {"BAD": "rule x"}})
    assert "Research software" in html
    assert "rank IC" in html and "deflated Sharpe" in html
    assert "BAD: rule x" in html
    assert "oracle:pooled" in html
