"""The portfolio's cross-symbol clamp: each limit binding in a scripted scenario with its
reason recorded, and the numba kernel against a plain-Python reference written from the
documented rules (not from the kernel) on random portfolios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ai_trade_bot.portfolio.limits import (
    RiskLimits,
    allocate,
    correlation_clusters,
    limit_names,
)
from ai_trade_bot.settings import PROJECT_ROOT

LIMITS = RiskLimits()


def reference(want, confidence, stop, sectors, clusters, limits: RiskLimits):
    """The rules of ai_trade_bot.portfolio.limits, one at a time, with plain Python."""
    n = len(want)
    w = [float(x) for x in want]
    why = [set() for _ in range(n)]
    conf = [0.0 if math.isnan(c) else float(c) for c in confidence]
    d = [float(s) if (not math.isnan(s) and s > 0) else None for s in stop]

    def set_size(i, size):
        w[i] = math.copysign(size, w[i]) if w[i] != 0 else 0.0

    for i in range(n):  # 1 and 2: each symbol on its own
        if abs(w[i]) > limits.max_position_size:
            set_size(i, limits.max_position_size)
            why[i].add("max_position_size")
        if d[i] is not None and abs(w[i]) * d[i] > limits.max_risk_per_trade:
            set_size(i, limits.max_risk_per_trade / d[i])
            why[i].add("max_risk_per_trade")

    def cut(members, measure, cap, name):
        excess = sum(abs(w[i]) * measure(i) for i in members) - cap
        if excess <= 1e-12:
            return
        weakest = sorted(
            (i for i in members if abs(w[i]) * measure(i) > 0),
            key=lambda i: (conf[i], -abs(w[i]), -i),
        )
        for i in weakest:
            have = abs(w[i]) * measure(i)
            take = min(have, excess)
            set_size(i, (have - take) / measure(i))
            why[i].add(name)
            excess -= take
            if excess <= 1e-12:
                return

    for group in sorted(set(sectors)):  # 3: sectors
        cut(
            [i for i in range(n) if sectors[i] == group],
            lambda i: 1.0,
            limits.max_single_sector,
            "max_single_sector",
        )
    for group in sorted(set(clusters)):  # 4: correlation clusters
        cut(
            [i for i in range(n) if clusters[i] == group],
            lambda i: 1.0,
            limits.max_correlated_exposure,
            "max_correlated_exposure",
        )
    cut(list(range(n)), lambda i: 1.0, limits.max_total_exposure, "max_total_exposure")
    cut(
        [i for i in range(n) if d[i] is not None],
        lambda i: d[i],
        limits.max_portfolio_risk,
        "max_portfolio_risk",
    )
    return w, why


def _run(want, confidence=None, stop=None, sectors=None, clusters=None, limits=LIMITS):
    n = len(want)
    confidence = np.full(n, 0.5) if confidence is None else np.asarray(confidence, float)
    stop = np.full(n, np.nan) if stop is None else np.asarray(stop, float)
    sectors = np.arange(n) if sectors is None else np.asarray(sectors)
    clusters = np.arange(n) if clusters is None else np.asarray(clusters)
    w, codes = allocate(np.asarray(want, float), confidence, stop, sectors, clusters, limits.caps())
    return w, [limit_names(c) for c in codes]


def test_portfolio_limit_position_size_caps_each_symbol():
    w, why = _run([0.3, -0.25, 0.05])
    assert w.tolist() == [0.1, -0.1, 0.05]
    assert why == [["max_position_size"], ["max_position_size"], []]


def test_portfolio_limit_risk_per_trade_sizes_by_the_stop_distance():
    w, why = _run([0.1, 0.1], stop=[0.5, np.nan])  # 10% at a 50% stop risks 5% > 2%
    assert w[0] == pytest.approx(0.04) and w[1] == 0.1
    assert why == [["max_risk_per_trade"], []]


def test_portfolio_limit_sector_cuts_the_weakest_confidence_first():
    # three technology symbols at 0.1 each: 0.30 > 0.25, the least confident loses 0.05
    w, why = _run([0.1, 0.1, 0.1, 0.1], confidence=[0.9, 0.4, 0.7, 0.1], sectors=[0, 0, 0, 1])
    assert w.tolist() == pytest.approx([0.1, 0.05, 0.1, 0.1])
    assert why[1] == ["max_single_sector"] and why[3] == [] and why[0] == []


def test_portfolio_limit_correlated_cluster_and_total_exposure():
    limits = RiskLimits(max_single_sector=1.0)
    # a cluster of four at 0.1: 0.4 > 0.30; then eight symbols at 0.1 would be 0.8 > 0.5
    conf = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    w, why = _run([0.1] * 8, confidence=conf, clusters=[0, 0, 0, 0, 1, 2, 3, 4], limits=limits)
    # the cluster gives up 0.1 (its weakest, symbol 0); the book then gives up 0.2 more,
    # again from the weakest left (symbols 1 and 2)
    assert w.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert why[0] == ["max_correlated_exposure"]
    assert why[1] == why[2] == ["max_total_exposure"]
    assert why[3] == why[7] == []


def test_portfolio_limit_heat_is_the_open_risk_to_all_stops():
    limits = RiskLimits(max_risk_per_trade=0.05, max_portfolio_risk=0.06)
    # four positions of 0.1 at 20% stops: 4 x 0.02 = 0.08 of equity at risk > 0.06
    w, why = _run(
        [0.1, -0.1, 0.1, 0.1], confidence=[0.9, 0.8, 0.3, 0.7], stop=[0.2] * 4, limits=limits
    )
    assert sum(abs(x) * 0.2 for x in w) == pytest.approx(0.06)
    assert w[2] == pytest.approx(0.0) and why[2] == ["max_portfolio_risk"]
    assert w[1] == pytest.approx(-0.1)  # a short keeps its sign


def test_portfolio_limits_kernel_agrees_with_the_reference_on_random_books():
    rng = np.random.default_rng(0)
    for case in range(300):
        n = int(rng.integers(1, 12))
        limits = RiskLimits(
            max_risk_per_trade=float(rng.uniform(0.005, 0.05)),
            max_position_size=float(rng.uniform(0.05, 0.4)),
            max_total_exposure=float(rng.uniform(0.2, 1.5)),
            max_correlated_exposure=float(rng.uniform(0.1, 0.6)),
            max_single_sector=float(rng.uniform(0.1, 0.6)),
            max_portfolio_risk=float(rng.uniform(0.01, 0.1)),
        )
        want = rng.normal(0, 0.2, n) * (rng.random(n) < 0.8)
        confidence = rng.choice([0.3, 0.5, 0.7, np.nan], n)  # ties and missing ones
        stop = np.where(rng.random(n) < 0.7, rng.uniform(0.005, 0.3, n), np.nan)
        sectors = rng.integers(0, 3, n)
        clusters = rng.integers(0, 4, n)
        w, codes = allocate(want, confidence, stop, sectors, clusters, limits.caps())
        ref, why = reference(want, confidence, stop, sectors, clusters, limits)
        np.testing.assert_allclose(w, ref, rtol=0, atol=1e-12, err_msg=f"case {case}")
        assert [set(limit_names(c)) for c in codes] == why, f"case {case}"
        # every cap holds afterwards
        assert np.all(np.abs(w) <= limits.max_position_size + 1e-12)
        assert np.abs(w).sum() <= limits.max_total_exposure + 1e-12


def test_portfolio_correlation_clusters_join_only_correlated_symbols():
    rng = np.random.default_rng(1)
    common = rng.normal(size=200)
    returns = np.column_stack(
        [
            common + 0.1 * rng.normal(size=200),
            common + 0.1 * rng.normal(size=200),
            rng.normal(size=200),
            -common,
        ]
    )
    ids = correlation_clusters(returns, 0.7)
    assert ids[0] == ids[1] and len({ids[0], ids[2], ids[3]}) == 3  # a hedge is no cluster
    returns[:150, 2] = np.nan  # too few shared values still works
    assert len(correlation_clusters(returns, 0.7)) == 4


def test_portfolio_limits_in_conf_base_are_the_systems():
    import yaml

    block = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_risk.yml").read_text())["risk"]
    limits = RiskLimits(**block)
    assert (limits.max_total_exposure, limits.max_correlated_exposure) == (0.5, 0.3)
    assert (limits.max_single_sector, limits.max_risk_per_trade) == (0.25, 0.02)
    assert limits.sectors["AAPL"] == limits.sectors["MSFT"] == "technology"


def test_portfolio_correlation_clusters_lookahead_cut_at_random_times():
    import pandas as pd

    from ai_trade_bot.portfolio.limits import rolling_clusters

    rng = np.random.default_rng(3)
    common = rng.normal(size=300)
    regime = np.r_[np.zeros(150), np.ones(150)]  # B follows A only in the second half
    returns = pd.DataFrame(
        {
            "A": common,
            "B": np.where(regime == 1, common, 0) + 0.2 * rng.normal(size=300),
            "C": rng.normal(size=300),
        },
        index=pd.date_range("2021-01-01", periods=300, freq="1D", tz="UTC"),
    )
    full = rolling_clusters(returns, window=40, threshold=0.7, every=5)
    for cut in rng.choice(np.arange(40, 300), 8, replace=False):
        past = rolling_clusters(returns.iloc[: cut + 1], window=40, threshold=0.7, every=5)
        pd.testing.assert_frame_equal(past, full.iloc[: cut + 1])
    assert full.iloc[100]["A"] != full.iloc[100]["B"]  # not correlated yet
    assert full.iloc[-1]["A"] == full.iloc[-1]["B"] != full.iloc[-1]["C"]


def test_portfolio_correlation_clusters_see_a_joint_move_only_from_its_bar_on():
    import pandas as pd

    from ai_trade_bot.portfolio.limits import rolling_clusters

    rng = np.random.default_rng(4)
    returns = pd.DataFrame(rng.normal(size=(200, 2)), columns=["A", "B"])
    returns.iloc[120] = [100.0, 100.0]  # one joint move dominates any window holding it
    ids = rolling_clusters(returns, window=40, threshold=0.7)
    assert ids.loc[119, "A"] != ids.loc[119, "B"]  # the bar before it cannot know
    assert ids.loc[120, "A"] == ids.loc[120, "B"]
