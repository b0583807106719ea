"""The one home of returns, Sharpe, Sortino and drawdown, against numbers worked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.backtest.metrics import (
    drawdown,
    equity_returns,
    max_drawdown,
    return_metrics,
    sharpe,
    sharpe_columns,
    sortino,
)
from ai_trade_bot.backtest.statistics import sharpe_per_period

EQUITY = pd.Series([100.0, 110.0, 99.0, 108.9, 130.68])  # +10%, -10%, +10%, +20%


def test_returns_keep_the_first_bar_as_zero() -> None:
    np.testing.assert_allclose(equity_returns(EQUITY), [0.0, 0.1, -0.1, 0.1, 0.2], rtol=1e-12)
    assert equity_returns(np.array([5.0])).tolist() == [0.0]


def test_sharpe_and_sortino_by_hand() -> None:
    r = np.array([0.0, 0.1, -0.1, 0.1, 0.2])
    mean, sd = 0.06, np.sqrt(((r - 0.06) ** 2).sum() / 4)  # ddof 1
    assert sharpe(r) == pytest.approx(mean / sd)
    assert sharpe(r, 252) == pytest.approx(mean / sd * np.sqrt(252))
    down = np.sqrt(0.01 / 5)  # one losing bar of five
    assert sortino(r, 252) == pytest.approx(mean / down * np.sqrt(252))
    assert sharpe(np.zeros(10)) == 0.0 and sortino(np.full(4, 0.01)) == 0.0
    assert sharpe_per_period(r) == sharpe(r)
    matrix = np.column_stack([r, np.zeros(5), -r])
    np.testing.assert_allclose(sharpe_columns(matrix), [sharpe(r), 0.0, -sharpe(r)])


def test_drawdown_from_the_running_peak() -> None:
    np.testing.assert_allclose(drawdown(EQUITY), [0.0, 0.0, -0.1, -0.01, 0.0], atol=1e-12)
    assert max_drawdown(EQUITY) == pytest.approx(0.1)
    metrics = return_metrics(EQUITY, ppy=252)
    assert metrics["max_drawdown"] == pytest.approx(0.1)
    assert metrics["total_return"] == pytest.approx(0.3068)
    assert metrics["sharpe"] == pytest.approx(sharpe(equity_returns(EQUITY), 252))
    assert metrics["sortino"] == pytest.approx(sortino(equity_returns(EQUITY), 252))
