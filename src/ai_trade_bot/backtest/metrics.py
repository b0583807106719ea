"""Return, risk and trade metrics of a backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.engine import BacktestResult


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year estimated from the index (252 for daily equities, ~6000 for FX hours)."""
    if len(index) < 2:
        return 252.0
    years = (index[-1] - index[0]).total_seconds() / (365.25 * 86400)
    return float(len(index) / years) if years > 0 else 252.0


def return_metrics(equity: pd.Series, ppy: float) -> dict[str, float]:
    """Total and annual return, volatility, Sharpe, Sortino, Calmar, maximum drawdown."""
    r = equity.pct_change().fillna(0.0).to_numpy()
    total = float(equity.iloc[-1] / equity.iloc[0] - 1.0)
    years = len(r) / ppy
    annual = float((1 + total) ** (1 / years) - 1) if years > 0 and total > -1 else -1.0
    vol = float(r.std(ddof=1) * np.sqrt(ppy)) if len(r) > 1 else 0.0
    downside = r[r < 0]
    down_dev = float(np.sqrt((downside**2).sum() / max(len(r), 1)) * np.sqrt(ppy))
    drawdown = equity / equity.cummax() - 1.0
    max_dd = float(-drawdown.min())
    mean = float(r.mean() * ppy)
    return {
        "total_return": total,
        "annual_return": annual,
        "volatility": vol,
        "sharpe": mean / vol if vol > 0 else 0.0,
        "sortino": mean / down_dev if down_dev > 0 else 0.0,
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
