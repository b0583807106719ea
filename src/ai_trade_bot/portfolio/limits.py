"""The portfolio's risk limits (``params:risk``) and the cross-symbol allocation clamp.

The single-symbol clamp (:func:`ai_trade_bot.strategy.risk.clamp_target`) keeps each
symbol's own limits (position, blocked side, daily loss, trades per day, drawdown, order
notional). Across symbols, every target fraction of the shared equity then passes
:func:`allocate`, in this order:

1. ``max_position_size``: ``|w| <= max_position_size`` per symbol;
2. ``max_risk_per_trade``: the equity lost if the stop is hit, ``|w| * d``, where ``d`` is
   the stop's distance as a fraction of the price (a symbol with no stop skips this one);
3. ``max_single_sector``: the gross exposure of each sector (``risk.sectors``);
4. ``max_correlated_exposure``: the gross exposure of each correlation cluster (symbols
   joined when their trailing correlation exceeds ``correlation_threshold``, computed from
   past bars only, :func:`correlation_clusters`);
5. ``max_total_exposure``: the gross exposure of the book;
6. ``max_portfolio_risk`` ("heat"): the open risk to all stops, ``sum |w| * d``.

When a group is over its cap, its members are cut weakest first: lowest confidence first
(ties: the larger position first, then the later symbol), each down to what the cap still
leaves, possibly to zero, until the group fits. Every step only shrinks positions, so a
later step never breaks an earlier one. Each symbol's code records which limits cut it
(``PORTFOLIO_*`` bits; :func:`limit_names`).

Written with numba because it runs once per bar for every symbol in the backtest (50
symbols x 100,000 bars); a plain-Python reference of the same rules lives in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

PORTFOLIO_POSITION = 1
PORTFOLIO_RISK_PER_TRADE = 2
PORTFOLIO_SECTOR = 4
PORTFOLIO_CLUSTER = 8
PORTFOLIO_TOTAL = 16
PORTFOLIO_HEAT = 32
PORTFOLIO_LIMITS = (
    (PORTFOLIO_POSITION, "max_position_size"),
    (PORTFOLIO_RISK_PER_TRADE, "max_risk_per_trade"),
    (PORTFOLIO_SECTOR, "max_single_sector"),
    (PORTFOLIO_CLUSTER, "max_correlated_exposure"),
    (PORTFOLIO_TOTAL, "max_total_exposure"),
    (PORTFOLIO_HEAT, "max_portfolio_risk"),
)


def limit_names(code: int) -> list[str]:
    """The names of the limits set in an :func:`allocate` code."""
    return [name for bit, name in PORTFOLIO_LIMITS if int(code) & bit]


@dataclass(frozen=True)
class RiskLimits:
    """``params:risk``: the portfolio's limits, as fractions of equity (the system's
    defaults). ``sectors`` maps a symbol to its sector; a symbol not in it is its own."""

    max_risk_per_trade: float = 0.02
    max_position_size: float = 0.10
    max_total_exposure: float = 0.50
    max_correlated_exposure: float = 0.30
    max_single_sector: float = 0.25
    max_portfolio_risk: float = 0.06
    max_daily_loss: float = 0.05
    max_daily_trades: int = 20
    dd_reduce_start: float = 0.10
    dd_reduce_end: float = 0.15
    correlation_threshold: float = 0.7
    correlation_window: int = 60
    sectors: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in (
            "max_risk_per_trade",
            "max_position_size",
            "max_total_exposure",
            "max_correlated_exposure",
            "max_single_sector",
            "max_portfolio_risk",
            "max_daily_loss",
        ):
            value = getattr(self, name)
            if not 0 < value <= 10:
                raise ValueError(f"{name} must be a fraction of equity in (0, 10], got {value}")
        if self.max_daily_trades < 1:
            raise ValueError(f"max_daily_trades must be >= 1, got {self.max_daily_trades}")
        if not 0 <= self.dd_reduce_start <= self.dd_reduce_end <= 1:
            raise ValueError(
                f"need 0 <= dd_reduce_start ({self.dd_reduce_start}) <= dd_reduce_end "
                f"({self.dd_reduce_end}) <= 1"
            )
        if not -1 <= self.correlation_threshold <= 1:
            raise ValueError(
                f"correlation_threshold must be in [-1, 1], got {self.correlation_threshold}"
            )
        if self.correlation_window < 3:
            raise ValueError(f"correlation_window must be >= 3, got {self.correlation_window}")

    def caps(self) -> np.ndarray:
        """The caps :func:`allocate` reads, in its order."""
        return np.array(
            [
                self.max_position_size,
                self.max_risk_per_trade,
                self.max_single_sector,
                self.max_correlated_exposure,
                self.max_total_exposure,
                self.max_portfolio_risk,
            ],
            dtype=np.float64,
        )

    def sector_ids(self, symbols: list[str]) -> np.ndarray:
        """One integer per symbol: equal for symbols of one sector."""
        names = [self.sectors.get(s, f"__own__{s}") for s in symbols]
        codes = {name: k for k, name in enumerate(dict.fromkeys(names))}
        return np.array([codes[n] for n in names], dtype=np.int64)


def parse_risk_limits(block: dict | None) -> RiskLimits:
    """``params:risk`` as :class:`RiskLimits`; a misspelt key or a value out of range is
    a ConfigError that names it."""
    from ai_trade_bot.config import parse_config

    block = dict(block or {})
    block["sectors"] = dict(block.get("sectors") or {})
    return parse_config(RiskLimits, block, name="risk")


def correlation_clusters(returns: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster ids of symbols from a (bars, symbols) window of past returns: two symbols
    are joined when their correlation over the window exceeds ``threshold``, and clusters
    are the connected groups (single linkage). A symbol with too few valid returns (fewer
    than 3 shared with another) or none that vary joins no one."""
    from scipy.sparse.csgraph import connected_components

    n = returns.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.isfinite(returns).all():  # one matrix product; NaN where a column is constant
            corr = np.corrcoef(returns, rowvar=False) if n > 1 else np.ones((1, 1))
        else:  # pairwise-complete, at least 3 shared values
            corr = pd.DataFrame(returns).corr(min_periods=3).to_numpy()
    joined = np.nan_to_num(np.atleast_2d(corr), nan=-np.inf) > threshold
    _, labels = connected_components(joined, directed=False)
    codes = {r: k for k, r in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([codes[r] for r in labels.tolist()], dtype=np.int64)


def clusters_at(returns: pd.DataFrame, window: int, threshold: float) -> np.ndarray:
    """The ids :func:`rolling_clusters` (recomputed every bar) gives the last row of
    ``returns``: from its last ``window`` rows, or every symbol its own cluster before a
    full window (what the live book runner asks at each step)."""
    values = returns.to_numpy(dtype=np.float64)
    if len(values) < window:
        return np.arange(values.shape[1], dtype=np.int64)
    return correlation_clusters(values[len(values) - window :], threshold)


def rolling_clusters(
    returns: pd.DataFrame, window: int, threshold: float, every: int = 1
) -> pd.DataFrame:
    """Correlation cluster ids per time and symbol, from past bars only.

    The ids at time t come from the ``window`` returns up to and including t (returns
    that had closed by t: the clamp at t's close may use them, never a later bar), and are
    recomputed every ``every`` rows (between, the last ids are carried; before the first
    full window every symbol is its own cluster). Ids are comparable within a row only.
    """
    values = returns.to_numpy(dtype=np.float64)
    n, k = values.shape
    out = np.tile(np.arange(k, dtype=np.int64), (n, 1))
    last = np.arange(k, dtype=np.int64)
    for t in range(n):
        if t + 1 >= window and (t + 1 - window) % every == 0:
            last = correlation_clusters(values[t + 1 - window : t + 1], threshold)
        out[t] = last if t + 1 >= window else np.arange(k)
    return pd.DataFrame(out, index=returns.index, columns=returns.columns)


@njit(cache=True)
def _cut_group(w, members, weight, cap, confidence, codes, bit):
    """Shrink ``|w|`` of ``members`` (weakest first) until ``sum |w| * weight <= cap``."""
    total = 0.0
    for i in members:
        total += abs(w[i]) * weight[i]
    excess = total - cap
    if excess <= 1e-12:
        return
    # weakest first: lowest confidence, then the larger position, then the later symbol
    order = sorted([(confidence[i], -abs(w[i]), -i) for i in members if abs(w[i]) * weight[i] > 0])
    for _, _, neg_i in order:
        i = -neg_i
        exposure = abs(w[i]) * weight[i]
        cut = min(exposure, excess)
        new = (exposure - cut) / weight[i]
        w[i] = np.sign(w[i]) * new
        codes[i] |= bit
        excess -= cut
        if excess <= 1e-12:
            return


@njit(cache=True)
def _cut_groups(w, ids, weight, cap, confidence, codes, bit):
    """:func:`_cut_group` for each group of ``ids`` (sectors or clusters)."""
    for g in np.unique(ids):
        members = [i for i in range(w.shape[0]) if ids[i] == g]
        _cut_group(w, members, weight, cap, confidence, codes, bit)


@njit(cache=True)
def allocate(want, confidence, stop_distance, sector_ids, cluster_ids, caps):
    """The cross-symbol clamp (module docstring): returns the allowed fractions and a code
    of the limits that cut each symbol.

    Args:
        want: Signed target fractions of equity per symbol (after the per-symbol clamp).
        confidence: The decision's confidence per symbol (who is cut first; NaN: 0).
        stop_distance: ``|entry - stop| / entry`` per symbol (NaN: no stop).
        sector_ids, cluster_ids: Group ids per symbol.
        caps: :meth:`RiskLimits.caps`.
    """
    n = want.shape[0]
    w = want.copy()
    codes = np.zeros(n, dtype=np.int64)
    conf = np.where(np.isnan(confidence), 0.0, confidence)
    ones = np.ones(n)
    has_stop = np.isfinite(stop_distance) & (stop_distance > 0)
    risk = np.where(has_stop, stop_distance, 0.0)
    max_pos, max_risk, max_sector, max_cluster, max_total, max_heat = (
        caps[0],
        caps[1],
        caps[2],
        caps[3],
        caps[4],
        caps[5],
    )
    for i in range(n):
        if abs(w[i]) > max_pos:
            w[i] = np.sign(w[i]) * max_pos
            codes[i] |= PORTFOLIO_POSITION
        if has_stop[i] and abs(w[i]) * risk[i] > max_risk:
            w[i] = np.sign(w[i]) * max_risk / risk[i]
            codes[i] |= PORTFOLIO_RISK_PER_TRADE
    _cut_groups(w, sector_ids, ones, max_sector, conf, codes, PORTFOLIO_SECTOR)
    _cut_groups(w, cluster_ids, ones, max_cluster, conf, codes, PORTFOLIO_CLUSTER)
    everyone = [i for i in range(n)]
    _cut_group(w, everyone, ones, max_total, conf, codes, PORTFOLIO_TOTAL)
    stopped = [i for i in range(n) if has_stop[i]]
    if len(stopped) > 0:
        _cut_group(w, stopped, risk, max_heat, conf, codes, PORTFOLIO_HEAT)
    return w, codes
