"""The engine against trades computed by hand: fills, fees, slippage, stops and limits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.backtest.engine import (
    EngineConfig,
    run_backtest,
    run_many,
    sweep_crossovers,
)
from ai_trade_bot.backtest.signals import crossover_positions, rolling_mean


def bars(opens, highs, lows, closes, freq="1D") -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=len(opens), freq=freq, tz="UTC")
    return pd.DataFrame({"open": opens, "high": highs, "low": lows, "close": closes}, index=idx)


def test_long_round_trip_with_fees_fills_at_next_open() -> None:
    ohlc = bars(
        [100, 101, 103, 104],
        [101, 102.5, 104, 105.5],
        [99, 100.5, 102, 103.5],
        [100.5, 102, 103.5, 105],
    )
    result = run_backtest(ohlc, [1.0, 1.0, 0.0, 0.0], EngineConfig(initial_cash=10_000), fee=0.001)
    units = 10_000 / (101 * 1.001)
    assert result.units.iloc[1] == pytest.approx(units)
    assert result.equity.iloc[1] == pytest.approx(units * 102)  # cash spent exactly
    assert result.equity.iloc[2] == pytest.approx(units * 103.5)
    assert result.equity.iloc[3] == pytest.approx(units * 104 * 0.999)
    (trade,) = result.trades.itertuples()
    assert (trade.entry_bar, trade.exit_bar, trade.side, trade.reason) == (1, 3, 1.0, "signal")
    assert trade.pnl == pytest.approx(units * 104 * 0.999 - 10_000)
    assert trade.fees == pytest.approx(units * 101 * 0.001 + units * 104 * 0.001)


def test_stop_is_taken_before_target_when_both_are_inside_one_bar() -> None:
    ohlc = bars([100, 100, 100], [100, 104, 100], [100, 97, 100], [100, 101, 100])
    config = EngineConfig(
        initial_cash=1_000, stop="percent", stop_value=0.02, take="percent", take_value=0.03
    )
    result = run_backtest(ohlc, [1.0, 1.0, 1.0], config)
    (trade,) = result.trades.itertuples()
    assert trade.reason == "stop" and trade.exit_price == pytest.approx(98.0)
    assert result.equity.iloc[1] == pytest.approx(10 * 98.0)
    # the stop blocks re-entering the same side until the signal changes
    assert result.units.iloc[2] == 0.0


def test_a_gap_through_the_stop_fills_at_the_open_and_slippage_applies() -> None:
    ohlc = bars([100, 100, 95, 95], [100, 101, 96, 96], [100, 99.5, 94, 94], [100, 100, 95, 95])
    config = EngineConfig(initial_cash=1_000, stop="percent", stop_value=0.02)
    result = run_backtest(ohlc, [1.0, 1.0, 1.0, 1.0], config, slip=0.001)
    units = 1_000 / (100 * 1.001)
    (trade,) = result.trades.itertuples()
    assert trade.entry_price == pytest.approx(100.1)
    assert trade.exit_bar == 2 and trade.exit_price == pytest.approx(95 * 0.999)
    assert result.equity.iloc[-1] == pytest.approx(units * 95 * 0.999)


def test_short_with_atr_target_and_trailing_stop() -> None:
    ohlc = bars(
        [50, 50, 49, 47, 48],
        [50, 50.5, 49.2, 47.5, 49.5],
        [50, 49, 47.8, 46, 47.5],
        [50, 49.5, 48, 46.5, 49],
    )
    atr = np.full(5, 1.0)
    config = EngineConfig(initial_cash=1_000, stop="atr", stop_value=1.5, trailing=True)
    result = run_backtest(ohlc, [-0.5] * 5, config, atr=atr)
    units = -0.5 * 1_000 / 50
    # entry 50, stop 51.5; after bar 1 low 49 -> 50.5; bar 2 low 47.8 -> 49.3;
    # bar 3 low 46 -> 47.5; bar 4 high 49.5 >= 47.5 but opens at 48 above it: fill at the open
    (trade,) = result.trades.itertuples()
    assert trade.reason == "stop" and trade.exit_bar == 4
    assert trade.exit_price == pytest.approx(48.0)
    assert trade.pnl == pytest.approx(units * (48.0 - 50.0))
    assert result.equity.iloc[-1] == pytest.approx(1_000 + units * (48.0 - 50.0))


def test_drawdown_scales_size_linearly_and_trades_per_day_are_capped() -> None:
    # bar 1: long at 100, closes 88 (-12% equity); bar 2 decision keeps 1.0 -> scaled to 0.6
    ohlc = bars([100, 100, 88, 88], [100, 100, 88, 88], [100, 88, 88, 88], [100, 88, 88, 88])
    config = EngineConfig(initial_cash=1_000, rebalance_threshold=0.0)
    result = run_backtest(ohlc, [1.0, 1.0, 1.0, 1.0], config)
    equity = 1_000 * 0.88
    assert result.units.iloc[2] == pytest.approx(0.6 * equity / 88)
    hourly = bars([10] * 6, [10] * 6, [10] * 6, [10] * 6, freq="1h")
    flips = run_backtest(hourly, [1, -1, 1, -1, 1, -1], EngineConfig(max_trades_per_day=2))
    assert len(flips.trades) == 2  # the third entry of the day is refused


def test_many_parameter_sets_match_single_runs() -> None:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    ohlc = bars(np.r_[100, close[:-1]], close * 1.01, close * 0.99, close)
    targets = np.sign(rng.normal(size=(4, 500)))
    finals = run_many(ohlc, targets, EngineConfig(), fee=0.0005)
    for row, final in zip(targets, finals, strict=True):
        single = run_backtest(ohlc, row, EngineConfig(), fee=0.0005)
        assert final == pytest.approx(single.equity.iloc[-1], rel=1e-12)


def test_crossover_sweep_matches_single_runs_and_rolling_mean_matches_pandas() -> None:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 800)))
    ohlc = bars(np.r_[100, close[:-1]], close * 1.01, close * 0.99, close)
    np.testing.assert_allclose(
        rolling_mean(close, 7), pd.Series(close).rolling(7).mean(), rtol=1e-12
    )
    grid = [(5, 20), (8, 30), (3, 50)]
    finals = sweep_crossovers(ohlc, grid, EngineConfig(), size=1.0, fee=0.001)
    for (fast, slow), final in zip(grid, finals, strict=True):
        target = crossover_positions(rolling_mean(close, fast), rolling_mean(close, slow), 1.0)
        single = run_backtest(ohlc, target, EngineConfig(), fee=0.001)
        assert final == pytest.approx(single.equity.iloc[-1], rel=1e-12)


def test_drawdown_breaker_goes_flat_then_resumes_from_a_new_peak() -> None:
    # long from bar 1; bar 1 closes -20% -> dd >= 15%: flat at bar 2's open for 2 bars
    ohlc = bars([100, 100, 80, 80, 80, 80], [100] * 6, [80] * 6, [100, 80, 80, 80, 80, 80])
    config = EngineConfig(initial_cash=1_000, dd_cooloff_bars=2)
    result = run_backtest(ohlc, [1.0] * 6, config)
    assert result.units.iloc[2] == 0.0 and result.units.iloc[3] == 0.0
    assert result.trades["reason"].iloc[0] == "risk"
    assert result.units.iloc[4] == pytest.approx(800 / 80)  # full size again from the new peak


def _random_case(seed: int):
    """Hourly bars with big moves and gaps (some across days), a target made of runs (NaN
    holds and flips included) and a random mix of stops, targets, risk limits and an
    order cap."""
    rng = np.random.default_rng(seed)
    n = 600
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n))
    ohlc = bars(open_, high, low, close, freq="1h")
    gaps = rng.choice(n - 1, size=int(rng.integers(0, 80)), replace=False) + 1  # hours missing
    shift = np.zeros(n, dtype=np.int64)
    for at in gaps:
        shift[at:] += int(rng.integers(2, 30))
    ohlc.index = ohlc.index + pd.to_timedelta(shift, unit="h")
    levels = np.array([-1.0, -0.5, 0.0, 0.0, 0.3, 1.0, 1.5, np.nan])
    runs = rng.integers(1, 40, size=n)
    target = np.repeat(rng.choice(levels, size=n), runs)[:n]
    stop_kind = str(rng.choice(["none", "percent", "atr"]))
    take_kind = str(rng.choice(["none", "percent", "atr"]))
    dd = [(0.10, 0.15), (0.02, 0.04), (1.0, 1.0)][rng.integers(3)]
    config = EngineConfig(
        initial_cash=10_000.0,
        stop=stop_kind,
        stop_value=float(rng.choice([0.02, 1.5])),
        take=take_kind,
        take_value=float(rng.choice([0.03, 2.0])),
        trailing=bool(rng.integers(2)),
        max_position=float(rng.choice([1.0, 0.5])),
        max_daily_loss=float(rng.choice([1.0, 0.03, 0.01])),
        max_trades_per_day=int(rng.choice([1_000_000, 2])),
        dd_reduce_start=dd[0],
        dd_reduce_end=dd[1],
        dd_cooloff_bars=int(rng.choice([3, 20])),
        rebalance_threshold=float(rng.choice([0.0, 0.05])),
        integer_units=bool(rng.integers(2)),
        max_order_notional=[None, 3_000.0][rng.integers(2)],
    )
    atr = (high - low) * 1.2
    return ohlc, target, config, atr


def test_fast_paths_change_nothing_against_the_full_rules_on_every_bar() -> None:
    reasons: set[str] = set()
    for seed in range(60):
        ohlc, target, config, atr = _random_case(seed)
        kwargs = {"fee": 0.001, "slip": 0.0005, "atr": atr}
        fast = run_backtest(ohlc, target, config, **kwargs)
        full = run_backtest(ohlc, target, config, fast_paths=False, **kwargs)
        assert np.array_equal(fast.equity.to_numpy(), full.equity.to_numpy()), seed
        assert np.array_equal(fast.units.to_numpy(), full.units.to_numpy()), seed
        pd.testing.assert_frame_equal(fast.trades, full.trades, check_exact=True)
        assert fast.traded_notional == full.traded_notional
        reasons.update(fast.trades["reason"])
    # the cases reach every exit rule, so the comparison is not vacuous
    assert reasons == {"signal", "stop", "target", "risk", "end"}


def test_breaker_starts_even_when_flat_and_restarts_on_its_last_bar() -> None:
    # long at bar 1's open (100); the 20% stop fills at 80 inside bar 1: drawdown 20%.
    # Bar 2 wants flat, yet the breaker starts there (2 bars), so bar 3's long is
    # refused and bar 4, the breaker's last bar, measures from the new peak and buys.
    ohlc = bars([100, 100, 80, 80, 80, 80], [100, 100, 80, 80, 80, 80], [100, 79, 80, 80, 80, 80],
                [100, 80, 80, 80, 80, 80])  # fmt: skip
    config = EngineConfig(initial_cash=1_000, stop="percent", stop_value=0.2, dd_cooloff_bars=2)
    result = run_backtest(ohlc, [1.0, 0.0, 1.0, 1.0, 1.0, 1.0], config)
    assert result.trades["reason"].iloc[0] == "stop"
    assert result.units.iloc[3] == 0.0
    assert result.units.iloc[4] == pytest.approx(800 / 80)


def test_bars_out_of_time_order_and_bad_windows_are_refused_with_the_row() -> None:
    ohlc = bars([10] * 4, [10] * 4, [10] * 4, [10] * 4)
    shuffled = ohlc.iloc[[0, 2, 1, 3]]
    with pytest.raises(ValueError, match=r"row 2 \(2024-01-02"):
        run_backtest(shuffled, [0.0] * 4, EngineConfig())
    with pytest.raises(ValueError, match="windows must be >= 1"):
        sweep_crossovers(ohlc, [(0, 3)], EngineConfig())
    with pytest.raises(ValueError, match="must not exceed"):
        run_backtest(ohlc, [0.0] * 4, EngineConfig(dd_reduce_start=0.2, dd_reduce_end=0.1))
    with pytest.raises(ValueError, match="stop must be one of"):
        EngineConfig(stop="trailing")


@pytest.mark.parametrize("fast_paths", [True, False])
def test_the_daily_halt_holds_across_a_gap_the_clamp_did_not_expect(fast_paths) -> None:
    # Friday 20:00 and 21:00, then Sunday 22:00 (a weekend the hourly clamp cannot know
    # of). Long at Friday 21:00's open, which closes 3% down: past the 2% daily loss. The
    # clamp at that close counts the next order in Friday (the bar it expects next), so
    # the position is closed at Sunday's open for the risk limit, as the live runner does.
    index = pd.DatetimeIndex(["2024-01-05 20:00", "2024-01-05 21:00", "2024-01-07 22:00",
                              "2024-01-07 23:00"], tz="UTC")  # fmt: skip
    ohlc = pd.DataFrame(
        {"open": [100, 100, 97, 97], "high": [100, 100, 97, 97], "low": [100, 97, 97, 97],
         "close": [100, 97, 97, 97]}, index=index,
    )  # fmt: skip
    config = EngineConfig(initial_cash=1_000, max_daily_loss=0.02)
    result = run_backtest(ohlc, [1.0] * 4, config, fast_paths=fast_paths)
    assert result.trades["reason"].iloc[0] == "risk" and result.trades["exit_bar"].iloc[0] == 2
    # Sunday is a new day: the next decision may trade again
    assert result.units.iloc[3] > 0


def test_an_order_cap_builds_a_position_in_steps_and_a_nan_target_holds() -> None:
    flat = bars([100.0] * 8, [100.0] * 8, [100.0] * 8, [100.0] * 8, freq="1h")
    config = EngineConfig(initial_cash=10_000, max_order_notional=3_000.0, rebalance_threshold=0.5)
    result = run_backtest(flat, [1.0] * 8, config)
    # each order is at most 3,000 of notional (a resize below the rebalance threshold is
    # still made when the cap bound): 30, 60, 90, then the remaining 10 units
    np.testing.assert_allclose(result.units.to_numpy()[:6], [0, 30, 60, 90, 100, 100], rtol=1e-12)
    held = run_backtest(flat, [1.0, 1.0, np.nan, np.nan, 0.0, np.nan, np.nan, np.nan],
                        EngineConfig(initial_cash=10_000))  # fmt: skip
    units = held.units.to_numpy()
    assert units[1] == units[2] == units[3] == 100 and units[5] == units[6] == 0.0
