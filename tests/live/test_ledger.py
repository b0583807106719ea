"""The prediction ledger and the explained decisions: every forecast stored with its target
time and scored when that candle closes, by the numbers the kill switch reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.features.labels import label_arrays
from ai_trade_bot.live.ledger import ledger_health, oof_reference, score
from ai_trade_bot.live.store import ts_of
from ai_trade_bot.modeling.meta import MetaAgent
from tests.live.conftest import ScriptedFeed, make_runner, split


@pytest.fixture(scope="module")
def replayed(tiny_run, tmp_path_factory):
    history, candles = split(tiny_run, 60)
    path = tmp_path_factory.mktemp("ledger") / "state.db"
    runner, store = make_runner(path, ScriptedFeed(history, candles), str(tiny_run["bundle_path"]))
    runner.start()
    runner.run()
    return runner, store, tiny_run["ohlcv_clean"]


def test_ledger_stores_every_agent_and_meta_with_its_target_time(replayed) -> None:
    runner, store, _ = replayed
    ledger = store.ledger("EURUSD")
    decisions = store.decisions("EURUSD", 1000)
    agents = [a for a in runner.bundle.agents if f"{a}.up" in runner.model.stream.output_columns]
    assert set(ledger["agent"]) == {*agents, "meta"}
    modelled = decisions[decisions["up"].notna()]
    assert len(ledger) == len(modelled) * (len(agents) + 1)
    horizon = runner.bundle.labels.horizon
    hour = pd.Timedelta("1h").value
    assert (ledger["target_ts"] - ledger["ts"] == horizon * hour).all()
    meta = ledger[ledger["agent"] == "meta"].set_index("ts")
    np.testing.assert_allclose(meta["up"], modelled.set_index("ts")["up"], rtol=0, atol=0)


def test_ledger_scores_each_prediction_when_its_candle_closes(replayed) -> None:
    runner, store, ohlcv = replayed
    ledger = store.ledger("EURUSD")
    labels = runner.bundle.labels
    truth = label_arrays(
        ohlcv["close"].to_numpy(dtype=np.float64),
        horizon=labels.horizon,
        flat_band_sigmas=labels.flat_band_sigmas,
        band_window=labels.band_window,
    )["direction"]
    truth = pd.Series(truth, index=ohlcv.index.asi8)
    times = ohlcv.index.asi8
    last = int(np.searchsorted(times, store.candles("EURUSD", 1).index.asi8[-1]))
    pos = np.searchsorted(times, ledger["ts"].to_numpy())
    h = labels.horizon
    # known: every prediction whose target candle (h candles on) has closed
    due = pos + h <= last
    assert ledger.loc[due, "outcome"].notna().all() and due.sum() > 0
    assert ledger.loc[~due, "outcome"].isna().all() and (~due).sum() > 0
    scored, at = ledger[due], pos[due]
    np.testing.assert_array_equal(scored["outcome"], truth.loc[scored["ts"]].to_numpy())
    hit, loss = score(scored[["down", "flat", "up"]].to_numpy(), scored["outcome"].to_numpy())
    np.testing.assert_array_equal(scored["hit"].astype(bool), hit)
    np.testing.assert_allclose(scored["log_loss"], loss, rtol=1e-12)
    closes = ohlcv["close"].to_numpy()
    np.testing.assert_allclose(
        scored["realised_return"], np.log(closes[at + h] / closes[at]), rtol=1e-12
    )
    np.testing.assert_array_equal(scored["scored_ts"], times[at + h])
    # the target time is the nominal one (h bars on); a weekend moves the scoring candle
    assert (scored["scored_ts"] >= scored["target_ts"]).all()


def test_ledger_hits_are_the_kill_switch_numbers(replayed) -> None:
    """The rolling accuracy the kill switch and the adaptive thresholds read counts the
    meta-agent's arg-max against the realised label: the ledger's meta hits."""
    from ai_trade_bot.strategy.decision import _rolling_accuracy

    runner, store, _ = replayed
    meta = store.ledger("EURUSD", agent="meta")
    window = runner.settings.decision.accuracy_window
    predicted = meta[["down", "flat", "up"]].to_numpy().argmax(axis=1).astype(float)
    realized = meta["outcome"].to_numpy(dtype=np.float64)
    acc = _rolling_accuracy(predicted, realized, window, 1)
    hits = meta["hit"].to_numpy(dtype=np.float64)
    for i in range(1, len(meta)):
        recent = hits[max(i - window, 0) : i]  # the last window rows, those scored
        known = recent[~np.isnan(recent)]
        if len(known):
            assert acc[i] == pytest.approx(known.mean(), abs=1e-12)
    health = {h["agent"]: h for h in ledger_health(store.ledger("EURUSD"), window)}
    scored = meta[meta["outcome"].notna()].tail(window)
    assert health["meta"]["accuracy"] == pytest.approx(scored["hit"].mean(), abs=1e-12)
    assert health["meta"]["pending"] == int(meta["outcome"].isna().sum())


def test_ledger_health_reads_live_figures_against_the_out_of_fold_ones() -> None:
    rows = []
    for i, (probs, outcome) in enumerate(
        [((0.2, 0.2, 0.6), 2), ((0.6, 0.2, 0.2), 2), ((0.1, 0.1, 0.8), 2), ((0.5, 0.3, 0.2), 0)]
    ):
        hit, loss = score(np.array([probs]), np.array([outcome]))
        rows.append({"symbol": "A", "ts": i, "agent": "trend", "target_ts": i + 1, "horizon": 1,
                     "model_version": "1", "down": probs[0], "flat": probs[1], "up": probs[2],
                     "confidence": max(probs), "expected_return": 0.001, "outcome": outcome,
                     "realised_return": 0.002, "hit": int(hit[0]), "log_loss": float(loss[0]),
                     "scored_ts": i + 1})  # fmt: skip
    rows.append(rows[-1] | {"ts": 9, "outcome": None, "hit": None, "log_loss": None})
    ref = {"trend": {"accuracy": 0.5, "log_loss": 1.0, "rows": 100,
                     "predicted_shares": [0.0, 0.0, 1.0]}}  # fmt: skip
    (health,) = ledger_health(pd.DataFrame(rows), 10, reference=ref)
    assert health["accuracy"] == 0.75 and health["pending"] == 1 and health["scored"] == 4
    assert health["log_loss"] == pytest.approx(-np.mean(np.log([0.6, 0.2, 0.8, 0.5])), rel=1e-12)
    assert health["confidence"] == pytest.approx(np.mean([0.6, 0.6, 0.8, 0.5]))
    assert health["overconfidence"] == pytest.approx(0.625 - 0.75)
    assert health["predicted_shares"] == [0.5, 0.0, 0.5]
    assert health["prediction_drift"] == pytest.approx(0.5)
    assert health["oof_accuracy"] == 0.5
    assert sum(b["n"] for b in health["reliability"]) == 4


def test_ledger_oof_reference_scores_each_agent() -> None:
    index = pd.RangeIndex(4)
    oof = pd.DataFrame(
        {"a.down": [0.6, 0.1, 0.2, 0.2], "a.flat": [0.2, 0.1, 0.2, 0.2],
         "a.up": [0.2, 0.8, 0.6, 0.6]}, index=index,
    )  # fmt: skip
    ref = oof_reference(oof, pd.Series([0, 2, 0, np.nan], index=index))
    assert ref["a"]["rows"] == 3 and ref["a"]["accuracy"] == pytest.approx(2 / 3)
    assert ref["a"]["predicted_shares"] == pytest.approx([1 / 3, 0, 2 / 3])


def test_explained_decisions_carry_rule_expected_return_risk_and_contributions(replayed) -> None:
    runner, store, _ = replayed
    decisions = store.decisions("EURUSD", 1000)
    modelled = decisions[decisions["up"].notna()]
    assert len(modelled) > 0
    for _, row in modelled.iterrows():
        assert row["rule"].split(":")[0] == row["reason"].split(";")[0]
        contributions = json.loads(row["contributions"])
        assert set(contributions) <= set(runner.bundle.agents)
        assert row["expected_return"] is not None and np.isfinite(row["expected_return"])
        assert row["risk_score"] == pytest.approx(abs(row["target"]) * _sigma(store, row), rel=1e-9)
    unavailable = decisions[decisions["up"].isna()]
    assert all(json.loads(c) == {} for c in unavailable["contributions"])


def _sigma(store, row) -> float:
    votes = json.loads(row["votes"])
    if "volatility" in votes and votes["volatility"].get("pred_vol"):
        return votes["volatility"]["pred_vol"]
    from ai_trade_bot.modeling.meta import ABS_PER_SIGMA

    return row["magnitude"] / ABS_PER_SIGMA


def test_ledger_contributions_of_a_plain_average_are_each_agents_share() -> None:
    """For the plain average the edge is the mean of the agents' edges: an agent's
    contribution is its edge minus the prior's, over the number of agents."""
    rng = np.random.default_rng(0)
    n = 200
    cols = {}
    for agent in ("a", "b", "c"):
        p = rng.dirichlet([2, 2, 2], size=n)
        cols |= {f"{agent}.down": p[:, 0], f"{agent}.flat": p[:, 1], f"{agent}.up": p[:, 2],
                 f"{agent}.confidence": p.max(axis=1)}  # fmt: skip
    oof = pd.DataFrame(cols)
    meta = MetaAgent(method="plain_average").fit(oof, pd.Series(rng.integers(0, 3, n)))
    row = oof.iloc[[7]]
    got = meta.contributions(row.to_numpy()[0], oof.columns)
    prior_edge = meta.prior_[2] - meta.prior_[0]
    for agent in ("a", "b", "c"):
        edge = row[f"{agent}.up"].iloc[0] - row[f"{agent}.down"].iloc[0]
        assert got[agent] == pytest.approx((edge - prior_edge) / 3, abs=1e-12)


def test_ledger_command_prints_and_exports(replayed, tmp_path) -> None:
    from click.testing import CliRunner

    from ai_trade_bot.commands import main

    _, store, _ = replayed
    ledger = store.ledger("EURUSD")
    since = ts_of(int(ledger["ts"].iloc[len(ledger) // 2]))
    out = tmp_path / "ledger.csv"
    result = CliRunner().invoke(
        main, ["ledger", "--state", str(store.path), "--since", str(since), "--csv", str(out)]
    )
    assert result.exit_code == 0, result.output
    exported = pd.read_csv(out)
    assert len(exported) == (ledger["ts"] >= since.value).sum()
    assert {"agent", "target_time", "outcome", "hit", "log_loss"} <= set(exported.columns)
    shown = CliRunner().invoke(main, ["ledger", "--state", str(store.path), "--agent", "meta"])
    assert shown.exit_code == 0 and "meta" in shown.output and "accuracy" in shown.output
