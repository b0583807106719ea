"""Portfolio construction: model outputs of many symbols to the book's target fractions.

Every method ends in the same place: target fractions of the book's equity per time and
symbol, which the execution core (:func:`ai_trade_bot.portfolio.core.run_portfolio`)
clamps with the book's limits before anything is ordered. Methods (``params:portfolio``):

- ``strategy``: each symbol's decision through the single-symbol strategy step (its
  thresholds, confidence gate, kill switch and sizing), then the clamp;
- ``topk``: Qlib's top-k with dropout on the expected return net of costs, long only:
  hold the ``top_k`` best; at each time sell at most ``n_drop`` held names that fell to
  the bottom of (held + best candidates), and any whose net expected return turned
  negative; buy the best candidates to refill; ``max_total_exposure / top_k`` each;
- ``equal``: every symbol with an entry signal gets an equal share of
  ``max_total_exposure``;
- ``confidence``: shares in proportion to the decision's confidence;
- ``volatility``: shares in proportion to 1 / the volatility forecast;
- ``risk``: sized by risk to the stop, ``max_risk_per_trade / stop distance`` (units =
  capital x ``max_risk_per_trade`` / |entry - stop|).

**Entry on expected value after costs** (all methods but ``strategy``): the expected return
of the next bar is ``(P(up) - P(down)) x magnitude``, where the magnitude is the model's
own estimate when it has one (the volatility agent's) and otherwise the symbol's trailing
volatility times E|z| = sqrt(2/pi) (past bars only). A symbol is entered when its
expected return clears the round-trip cost plus a ``margin`` chosen on validation rows;
it is held while its expected return keeps its sign, and left when it turns.

**Stops**: ``none``, ``percent``, ``atr`` or ``forecast`` (multiples of the volatility
forecast in price units, through the engine's ATR stop); ``trailing`` trails any of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from ai_trade_bot.backtest.engine import EngineConfig
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
from ai_trade_bot.portfolio.limits import RiskLimits

METHODS = ("strategy", "topk", "equal", "confidence", "volatility", "risk")
STOP_SOURCES = ("none", "percent", "atr", "forecast")


@dataclass(frozen=True)
class PortfolioConfig:
    """``params:portfolio``: the construction methods and entry margins tried on
    validation rows (the best by Sharpe is deployed), top-k settings, the volatility window
    and the book's stop."""

    methods: tuple[str, ...] = METHODS
    margins: tuple[float, ...] = (0.0, 0.0005, 0.001, 0.002)
    top_k: int = 2
    n_drop: int = 1
    vol_window: int = 20
    stop: str = "forecast"
    stop_value: float = 2.0
    trailing: bool = False
    allow_short: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"methods must be a non-empty subset of {list(METHODS)}, got {unknown}"
            )
        if self.stop not in STOP_SOURCES:
            raise ValueError(f"stop must be one of {list(STOP_SOURCES)}, got {self.stop!r}")
        if any(m < 0 for m in self.margins) or not self.margins:
            raise ValueError(f"margins must be >= 0 (fraction of price), got {self.margins}")
        if self.top_k < 1 or self.n_drop < 0:
            raise ValueError(f"need top_k >= 1 and n_drop >= 0, got {self.top_k}, {self.n_drop}")
        if self.vol_window < 2:
            raise ValueError(f"vol_window must be >= 2, got {self.vol_window}")

    def trials(self) -> list[tuple[str, float]]:
        """Every (method, margin) tried; ``strategy`` has no margin."""
        out: list[tuple[str, float]] = []
        for method in self.methods:
            margins = (0.0,) if method == "strategy" else self.margins
            out.extend((method, float(m)) for m in margins)
        return out

    def engine(self, base: EngineConfig) -> EngineConfig:
        """``base`` with the book's stop (``forecast`` runs as the engine's ATR stop on
        the forecast's price units)."""
        stop = "atr" if self.stop == "forecast" else self.stop
        value = 0.0 if self.stop == "none" else self.stop_value
        return dataclasses.replace(base, stop=stop, stop_value=value, trailing=self.trailing)


def trailing_sigma(close: pd.DataFrame, window: int) -> pd.DataFrame:
    """Each symbol's standard deviation (ddof 1) of log returns over its last ``window``
    bars (its own bars; known at each close, never later). Window-local (each window
    summed afresh), so the live book's value from its last ``window + 1`` closes is the
    batch value bit for bit."""
    from ai_trade_bot.features import rolling

    out = {}
    for symbol in close.columns:
        own = close[symbol].dropna()
        r = np.diff(np.log(own.to_numpy(dtype=np.float64)), prepend=np.nan)
        out[symbol] = pd.Series(rolling.mean_std(r, window)[1], index=own.index)
    return pd.DataFrame(out).reindex(close.index)


def side_step(side: float, e: float, threshold: float, allow_short: bool) -> float:
    """One time of the entry rule (:func:`_ev_sides`, one symbol): the side after expected
    return ``e`` against ``threshold``; NaN ``e`` keeps the side."""
    if np.isnan(e):
        return side
    if e > threshold:
        return 1.0
    if allow_short and e < -threshold:
        return -1.0
    if (e > 0.0 and side < 0.0) or (e < 0.0 and side > 0.0) or e == 0.0:
        return 0.0
    return side


def topk_step(held: list[int], score: np.ndarray, k: int, n_drop: int) -> list[int]:
    """One time of Qlib's top-k with dropout on ``score`` (expected return after costs,
    one value per symbol): the holdings after it (see the module docstring)."""
    valid = np.isfinite(score)
    ranked = [int(i) for i in np.argsort(-np.where(valid, score, -np.inf)) if valid[i]]
    held = [i for i in held if not (valid[i] and score[i] < 0.0)]  # the edge is gone
    fresh = [i for i in ranked if i not in held and score[i] > 0.0]
    pool = fresh[: max(0, n_drop + k - len(held))]
    comb = sorted(held + pool, key=lambda i: -score[i] if valid[i] else np.inf)
    sell = [i for i in comb[len(comb) - n_drop :] if i in held] if n_drop else []
    if len(held) - len(sell) >= k:
        sell = []  # nothing better to buy: keep
    keep = [i for i in held if i not in sell]
    buy = [i for i in fresh if i not in keep][: k - len(keep)]
    return keep + buy


def expected_return(
    down: pd.DataFrame, up: pd.DataFrame, magnitude: pd.DataFrame | None, sigma: pd.DataFrame
) -> pd.DataFrame:
    """``(P(up) - P(down)) x magnitude`` per time and symbol: the model's magnitude where it
    has one, else ``sqrt(2/pi) x`` the trailing sigma."""
    fallback = ABS_PER_SIGMA * sigma
    mag = fallback if magnitude is None else magnitude.where(np.isfinite(magnitude), fallback)
    return (up - down) * mag


@njit(cache=True)
def _ev_sides(ev, threshold, allow_short):
    """Enter when |EV| clears ``threshold``; hold while EV keeps the side; leave when it
    turns; NaN (no output): hold."""
    n_t, n = ev.shape
    side = np.zeros(n)
    out = np.full((n_t, n), np.nan)
    for t in range(n_t):
        for s in range(n):
            e = ev[t, s]
            if np.isnan(e):
                continue
            if e > threshold[t, s]:
                side[s] = 1.0
            elif allow_short and e < -threshold[t, s]:
                side[s] = -1.0
            elif (e > 0.0 and side[s] < 0.0) or (e < 0.0 and side[s] > 0.0) or e == 0.0:
                side[s] = 0.0
            out[t, s] = side[s]
    return out


def ev_sides(
    ev: pd.DataFrame, cost: pd.DataFrame | float, margin: float, allow_short: bool = True
) -> pd.DataFrame:
    """The side per time and symbol from the expected return ``ev`` against the round-trip
    ``cost`` plus ``margin`` (module docstring)."""
    threshold = np.broadcast_to(np.asarray(cost, dtype=np.float64) + margin, ev.shape)
    sides = _ev_sides(
        ev.to_numpy(np.float64), np.ascontiguousarray(threshold, dtype=np.float64), allow_short
    )
    return pd.DataFrame(sides, index=ev.index, columns=ev.columns)


def topk_dropout(net: pd.DataFrame, k: int, n_drop: int) -> pd.DataFrame:
    """Holdings (1/0; NaN before any score) of Qlib's top-k with dropout on scores ``net``
    (expected return after costs), long only; see the module docstring."""
    values = net.to_numpy(np.float64)
    out = np.zeros(values.shape)
    held: list[int] = []
    for t in range(values.shape[0]):
        held = topk_step(held, values[t], k, n_drop)
        out[t, held] = 1.0
    return pd.DataFrame(out, index=net.index, columns=net.columns)


def book_targets(
    method: str,
    margin: float,
    *,
    ev: pd.DataFrame,
    confidence: pd.DataFrame,
    sigma: pd.DataFrame,
    cost: pd.DataFrame | float,
    limits: RiskLimits,
    config: PortfolioConfig,
    stop_distance: pd.DataFrame,
    strategy_targets: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Target fractions per time and symbol for one (method, margin); NaN: hold."""
    gross = limits.max_total_exposure
    if method == "strategy":
        if strategy_targets is None:
            raise ValueError("the strategy method needs each symbol's strategy-step targets")
        return strategy_targets
    if method == "topk":
        held = topk_dropout(ev - cost - margin, config.top_k, config.n_drop)
        return held * (gross / config.top_k)
    sides = ev_sides(ev, cost, margin, config.allow_short)
    active = sides.abs().fillna(0.0)
    if method == "equal":
        score = active
    elif method == "confidence":
        score = active * confidence.fillna(0.0)
    elif method == "volatility":
        score = active / sigma.where(sigma > 0)
    elif method == "risk":
        d = stop_distance.where(stop_distance > 0, sigma)  # no stop: one sigma at risk
        return sides * (limits.max_risk_per_trade / d)
    else:
        raise ValueError(f"unknown method {method!r}; one of {list(METHODS)}")
    score = score.fillna(0.0)
    total = score.sum(axis=1).replace(0.0, np.nan)
    weights = score.div(total, axis=0).fillna(0.0) * gross
    return sides * weights.where(sides.notna())


@dataclass
class ConstructionState:
    """What :func:`targets_step` carries from one time to the next: each symbol's side
    (the entry rule's hysteresis) and the top-k holdings (symbol positions)."""

    sides: list[float]
    held: list[int] = dataclasses.field(default_factory=list)

    @classmethod
    def start(cls, n_symbols: int) -> ConstructionState:
        return cls([0.0] * n_symbols, [])

    def to_dict(self) -> dict:
        return {"sides": self.sides, "held": self.held}


def targets_step(
    method: str,
    margin: float,
    state: ConstructionState,
    *,
    ev: np.ndarray,
    confidence: np.ndarray,
    sigma: np.ndarray,
    cost: np.ndarray,
    stop_distance: np.ndarray,
    limits: RiskLimits,
    config: PortfolioConfig,
) -> np.ndarray:
    """:func:`book_targets` for one time (every argument one value per symbol), with the
    carried ``state`` (updated in place): the live book's path, O(1) per time. The
    ``strategy`` method reads the recent decisions' outcomes and is not stepped here."""
    gross = limits.max_total_exposure
    if method == "topk":
        state.held = topk_step(state.held, ev - cost - margin, config.top_k, config.n_drop)
        out = np.zeros(len(ev))
        out[state.held] = gross / config.top_k
        return out
    if method not in ("equal", "confidence", "volatility", "risk"):
        raise ValueError(f"{method!r} is not stepped; one of equal, confidence, volatility, "
                         "risk, topk")  # fmt: skip
    threshold = cost + margin
    for k in range(len(ev)):
        state.sides[k] = side_step(state.sides[k], float(ev[k]), float(threshold[k]),
                                   config.allow_short)  # fmt: skip
    sides = np.array(state.sides)
    sides = np.where(np.isnan(ev), np.nan, sides)  # no output: hold (as the batch rows)
    if method == "risk":
        d = np.where(stop_distance > 0, stop_distance, sigma)
        return sides * (limits.max_risk_per_trade / d)
    active = np.nan_to_num(np.abs(sides))
    if method == "equal":
        score = active
    elif method == "confidence":
        score = active * np.nan_to_num(confidence)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            score = active / np.where(sigma > 0, sigma, np.nan)
    score = np.nan_to_num(score)
    total = score.sum()
    weights = score / total * gross if total != 0 else np.zeros(len(ev))
    return np.where(np.isnan(sides), np.nan, sides * weights)
