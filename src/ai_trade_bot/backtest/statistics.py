"""Honest statistics: probabilistic and deflated Sharpe, PBO by CSCV, bootstrap intervals.

References: Bailey & Lopez de Prado (2012, 2014) for PSR/DSR; Bailey, Borwein, Lopez de
Prado & Zhu (2017) for the probability of backtest overfitting by combinatorially
symmetric cross-validation (CSCV).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.stats import kurtosis, norm, skew

from ai_trade_bot.backtest.metrics import sharpe, sharpe_columns

EULER_GAMMA = 0.5772156649015329


def sharpe_per_period(returns: np.ndarray) -> float:
    """:func:`ai_trade_bot.backtest.metrics.sharpe` per period (not annualised)."""
    return sharpe(returns)


def sharpe_std_error(sr: float, n: int, skewness: float, kurt: float) -> float:
    """Standard error of a per-period Sharpe estimate under non-normal returns."""
    return float(np.sqrt(max(1e-12, (1 - skewness * sr + (kurt - 1) / 4 * sr**2) / max(n - 1, 1))))


def probabilistic_sharpe(returns: np.ndarray, benchmark_sr: float = 0.0) -> float:
    """P(true Sharpe > benchmark_sr) given the sample's length, skew and kurtosis."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3 or r.std() == 0:  # no variation (e.g. no trades): no evidence of skill
        return 0.5 if benchmark_sr == 0 else float(benchmark_sr < 0)
    sr = sharpe_per_period(r)
    se = sharpe_std_error(sr, r.size, float(skew(r)), float(kurtosis(r, fisher=False)))
    return float(norm.cdf((sr - benchmark_sr) / se))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum per-period Sharpe of ``n_trials`` skill-less configurations."""
    if n_trials <= 1:
        return 0.0
    sd = np.sqrt(max(sr_variance, 0.0))
    return float(
        sd
        * (
            (1 - EULER_GAMMA) * norm.ppf(1 - 1 / n_trials)
            + EULER_GAMMA * norm.ppf(1 - 1 / (n_trials * np.e))
        )
    )


def deflated_sharpe(
    returns: np.ndarray, n_trials: int, trial_sharpes: np.ndarray | None = None
) -> dict[str, float]:
    """Deflated Sharpe ratio: PSR against the Sharpe the best of ``n_trials`` would show
    by luck. The variance of Sharpe across trials comes from ``trial_sharpes`` when given
    (at least 2), otherwise from the estimation error of this Sharpe."""
    r = np.asarray(returns, dtype=np.float64)
    sr = sharpe_per_period(r)
    sk = float(skew(r)) if r.size > 2 else 0.0
    ku = float(kurtosis(r, fisher=False)) if r.size > 3 else 3.0
    if trial_sharpes is not None and len(trial_sharpes) >= 2:
        variance = float(np.var(trial_sharpes, ddof=1))
    else:
        variance = sharpe_std_error(sr, r.size, sk, ku) ** 2
    threshold = expected_max_sharpe(n_trials, variance)
    return {
        "sharpe_per_period": sr,
        "sr_threshold": threshold,
        "n_trials": float(n_trials),
        "psr": probabilistic_sharpe(r, 0.0),
        "dsr": probabilistic_sharpe(r, threshold),
    }


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = 10) -> dict:
    """PBO by CSCV over a (T, N) matrix of per-period returns of N configurations.

    For every split of the T rows into equal halves of ``n_blocks`` blocks, the best
    in-sample configuration's out-of-sample rank gives a logit; PBO is the share of
    splits where that logit is <= 0 (the in-sample winner is below the OOS median).

    Configurations with identical returns on every row are one configuration: choosing
    among copies is no choice, and their ties would put every winner exactly at the
    median (logit 0, counted as overfit). With fewer than 2 distinct configurations
    (e.g. none of them traded) PBO is undefined: NaN, with ``n_distinct`` saying why.
    """
    m = np.asarray(returns, dtype=np.float64)
    t, n = m.shape
    if n < 2:
        raise ValueError("PBO needs at least 2 configurations")
    if n_blocks % 2 or n_blocks < 2:
        raise ValueError(f"n_blocks must be even and >= 2, got {n_blocks}")
    tried = n
    m = np.unique(m, axis=1)
    distinct = m.shape[1]
    if distinct < 2:
        return {
            "pbo": float("nan"),
            "n_splits": 0,
            "n_configurations": tried,
            "n_distinct": distinct,
            "median_logit": float("nan"),
        }
    n = distinct
    blocks = np.array_split(np.arange(t), n_blocks)

    logits = []
    for chosen in combinations(range(n_blocks), n_blocks // 2):
        is_rows = np.concatenate([blocks[b] for b in chosen])
        oos_rows = np.concatenate([blocks[b] for b in range(n_blocks) if b not in chosen])
        best = int(np.argmax(sharpe_columns(m[is_rows])))
        oos = sharpe_columns(m[oos_rows])
        rank = (oos < oos[best]).sum() + 0.5 * ((oos == oos[best]).sum() - 1) + 1
        omega = rank / (n + 1)
        logits.append(np.log(omega / (1 - omega)))
    logits = np.array(logits)
    return {
        "pbo": float(np.mean(logits <= 0)),
        "n_splits": len(logits),
        "n_configurations": tried,
        "n_distinct": distinct,
        "median_logit": float(np.median(logits)),
    }


def block_bootstrap_ci(
    values: np.ndarray,
    statistic,
    *,
    n_boot: int = 1000,
    block: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` under a circular block bootstrap (keeps serial
    dependence within blocks of length ~ sqrt(n))."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2:
        return float("nan"), float("nan")
    block = block or max(1, int(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block))
    stats = np.empty(n_boot)
    offsets = np.arange(block)
    for b in range(n_boot):
        starts = rng.integers(0, n, n_blocks)
        idx = ((starts[:, None] + offsets[None, :]) % n).ravel()[:n]
        stats[b] = statistic(x[idx])
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
