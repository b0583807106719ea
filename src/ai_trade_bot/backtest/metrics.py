"""Return, risk and trade metrics: the one home of the returns of an equity curve, the
Sharpe and Sortino ratios and the drawdown, for the backtest, the statistics, the report
and the runner's performance rules alike.

Conventions: simple returns of an equity curve, the first bar's return 0 (a curve of n
bars gives n returns); Sharpe is mean over sample standard deviation (ddof 1), Sortino
mean over the root mean square of the losing returns (over all bars), both times
``sqrt(periods_per_year)`` when annualised; drawdown is equity over its running peak,
minus one (0 or negative).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ai_trade_bot.backtest.engine import BacktestResult


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year estimated from the index (252 for daily equities, ~6000 for FX hours)."""
    if len(index) < 2:
        return 252.0
    years = (index[-1] - index[0]).total_seconds() / (365.25 * 86400)
    return float(len(index) / years) if years > 0 else 252.0


def equity_returns(equity: pd.Series | np.ndarray) -> np.ndarray:
    """Simple returns of an equity curve; the first bar's return is 0."""
    values = np.asarray(equity, dtype=np.float64)
    out = np.zeros(values.size)
    if values.size > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[1:] = values[1:] / values[:-1] - 1.0
    return np.where(np.isfinite(out), out, 0.0)


def sharpe(returns: np.ndarray, periods_per_year: float = 1.0) -> float:
    """Mean over standard deviation (ddof 1) of per-period returns, times
    ``sqrt(periods_per_year)`` (1: per period, not annualised); 0 without variation."""
    r = np.asarray(returns, dtype=np.float64)
    sd = r.std(ddof=1) if r.size > 1 else 0.0
    return float(r.mean() / sd * np.sqrt(periods_per_year)) if sd > 0 else 0.0


def sharpe_columns(returns: np.ndarray) -> np.ndarray:
    """:func:`sharpe` (per period) of each column of a (bars, configurations) matrix."""
    sd = returns.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, returns.mean(axis=0) / sd, 0.0)


def sortino(returns: np.ndarray, periods_per_year: float = 1.0) -> float:
    """Mean over the downside deviation (root mean square of the losing returns, over every
    bar), times ``sqrt(periods_per_year)``; 0 without losses."""
    r = np.asarray(returns, dtype=np.float64)
    down = np.sqrt((r[r < 0] ** 2).sum() / max(r.size, 1))
    return float(r.mean() / down * np.sqrt(periods_per_year)) if down > 0 else 0.0


def drawdown(equity: pd.Series) -> pd.Series:
    """Equity over its running peak, minus one (0 at a new high, negative below it)."""
    return equity / equity.cummax() - 1.0


def max_drawdown(equity: pd.Series) -> float:
    """The deepest drawdown as a positive fraction (0.2: 20% below the peak)."""
    return float(-drawdown(equity).min()) if len(equity) else 0.0


def return_metrics(equity: pd.Series, ppy: float) -> dict[str, float]:
    """Total and annual return, volatility, Sharpe, Sortino, Calmar, maximum drawdown."""
    r = equity_returns(equity)
    total = float(equity.iloc[-1] / equity.iloc[0] - 1.0)
    years = len(r) / ppy
    annual = float((1 + total) ** (1 / years) - 1) if years > 0 and total > -1 else -1.0
    vol = float(r.std(ddof=1) * np.sqrt(ppy)) if len(r) > 1 else 0.0
    max_dd = max_drawdown(equity)
    return {
        "total_return": total,
        "annual_return": annual,
        "volatility": vol,
        "sharpe": sharpe(r, ppy),
        "sortino": sortino(r, ppy),
        "calmar": annual / max_dd if max_dd > 0 else 0.0,
        "max_drawdown": max_dd,
    }


def trade_metrics(result: BacktestResult, ppy: float | None = None) -> dict[str, float]:
    """Win rate, profit factor, average trade/win/loss, exposure, turnover, trade count
    (``ppy``: bars per year of the data's calendar; estimated from the equity if None)."""
    trades = result.trades
    pnl = trades["pnl"].to_numpy() if len(trades) else np.zeros(0)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    mean_equity = float(result.equity.mean())
    ppy = periods_per_year(result.equity.index) if ppy is None else ppy
    years = max(len(result.equity) / ppy, 1e-9)
    return {
        "n_trades": float(len(trades)),
        "win_rate": float(len(wins) / len(pnl)) if len(pnl) else 0.0,
        "profit_factor": float(wins.sum() / -losses.sum())
        if len(losses)
        else float("inf")
        if len(wins)
        else 0.0,
        "avg_trade_return": float(trades["return"].mean()) if len(trades) else 0.0,
        "avg_win": float(wins.mean()) if len(wins) else 0.0,
        "avg_loss": float(losses.mean()) if len(losses) else 0.0,
        "exposure": float(result.exposure.mean()),
        "turnover_per_year": float(result.traded_notional / mean_equity / years),
    }
