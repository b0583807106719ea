"""PSR/DSR, PBO and bootstrap intervals against known behaviour and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from ai_trade_bot.backtest.statistics import (
    block_bootstrap_ci,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    probability_of_backtest_overfitting,
    sharpe_per_period,
)


def test_expected_max_sharpe_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    simulated = rng.standard_normal((20_000, 100)).max(axis=1).mean()  # about 2.508
    assert expected_max_sharpe(100, 1.0) == pytest.approx(simulated, rel=0.05)
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_psr_and_dsr_behave() -> None:
    rng = np.random.default_rng(1)
    skilled = rng.normal(0.002, 0.01, 1000)  # per-period Sharpe 0.2 over 1000 periods
    noise = rng.normal(0.0, 0.01, 1000)
    assert probabilistic_sharpe(skilled) > 0.99
    assert 0.05 < probabilistic_sharpe(noise) < 0.95
    few = deflated_sharpe(skilled, n_trials=2)
    many = deflated_sharpe(skilled, n_trials=1000, trial_sharpes=rng.normal(0, 0.1, 50))
    assert many["dsr"] < few["dsr"] <= few["psr"]
    assert many["sr_threshold"] > few["sr_threshold"] > 0
    assert sharpe_per_period(skilled) == pytest.approx(skilled.mean() / skilled.std(ddof=1))
    flat = deflated_sharpe(np.zeros(100), n_trials=10)
    assert flat["psr"] == 0.5 and flat["dsr"] == 0.0


def test_pbo_is_low_for_a_persistent_winner_and_high_for_noise() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.01, (1000, 20))
    persistent = noise.copy()
    persistent[:, 0] += 0.003  # one configuration is better in every period
    assert probability_of_backtest_overfitting(persistent, 10)["pbo"] < 0.05
    assert 0.2 < probability_of_backtest_overfitting(noise, 10)["pbo"] < 0.8
    with pytest.raises(ValueError, match="n_blocks must be even"):
        probability_of_backtest_overfitting(noise, 7)


def test_block_bootstrap_interval_covers_the_true_mean() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 1.0, 500)
    lo, hi = block_bootstrap_ci(x, np.mean, n_boot=500, seed=1)
    assert lo < 0.5 < hi and hi - lo < 0.4


def test_pbo_is_undefined_when_the_configurations_do_not_differ() -> None:
    # None traded: every configuration returned 0 on every bar. The old CSCV put each
    # winner exactly at the median (logit 0) and read PBO 1.0, "overfit".
    flat = np.zeros((500, 12))
    result = probability_of_backtest_overfitting(flat, 10)
    assert np.isnan(result["pbo"]) and result["n_distinct"] == 1
    assert result["n_configurations"] == 12 and result["n_splits"] == 0
    # Copies of a configuration are one choice: adding them changes nothing.
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, (1000, 6))
    copies = np.column_stack([noise, noise[:, [0, 0, 2]], np.zeros((1000, 2))])
    alone = probability_of_backtest_overfitting(np.column_stack([noise, np.zeros(1000)]), 10)
    with_copies = probability_of_backtest_overfitting(copies, 10)
    assert with_copies["n_distinct"] == 7 and with_copies["n_configurations"] == 11
    assert with_copies["pbo"] == alone["pbo"]
