"""Feature values checked against hand computations and reference formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from ai_trade_bot.errors import ConfigError
from ai_trade_bot.features._numba_kernels import rolling_hurst
from ai_trade_bot.features.labels import DOWN, FLAT, UP, build_labels
from ai_trade_bot.features.microstructure import microstructure_features, tick_rule_sign
from ai_trade_bot.features.multitimeframe import higher_timeframe_features
from ai_trade_bot.features.statistics import statistical_features
from ai_trade_bot.features.technical import anchored_vwap, directional_movement
from ai_trade_bot.features.volatility import (
    garch_volatility,
    parkinson_volatility,
    realized_volatility,
)
from tests.conftest import make_ohlcv


def test_realized_and_parkinson_volatility_by_hand() -> None:
    r = pd.Series([0.0, 0.01, -0.02, 0.03])
    assert realized_volatility(r, 3).iloc[-1] == pytest.approx(np.sqrt(0.0001 + 0.0004 + 0.0009))
    high, low = pd.Series([11.0, 12.0]), pd.Series([10.0, 10.0])
    expected = np.sqrt((np.log(1.1) ** 2 + np.log(1.2) ** 2) / 2 / (4 * np.log(2)))
    assert parkinson_volatility(high, low, 2).iloc[-1] == pytest.approx(expected)


def test_tick_rule_carries_the_last_sign_on_no_change() -> None:
    close = pd.Series([10.0, 11.0, 11.0, 10.5, 10.5, 12.0])
    assert tick_rule_sign(close).tolist() == [0.0, 1.0, 1.0, -1.0, -1.0, 1.0]


def test_volume_imbalance_and_roll_spread_by_hand() -> None:
    close = pd.Series([10.0, 11.0, 10.0, 11.0, 10.0])
    volume = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0])
    log_ret = np.log(close).diff()
    out = microstructure_features(close, log_ret, volume, window=3, norm_window=3)
    # signs +1, -1, +1, -1 at rows 1..4 -> last 3 rows: (-3 + 4 - 5) / 12
    assert out["volume_imbalance_3"].iloc[-1] == pytest.approx(-4 / 12)
    # perfectly alternating returns: Roll spread = 2 sqrt(-cov(r_t, r_t-1)) > 0
    r = log_ret.to_numpy()
    cov = np.cov(r[2:5], r[1:4])[0, 1]
    assert out["roll_spread_3"].iloc[-1] == pytest.approx(2 * np.sqrt(-cov))


def test_autocorrelation_and_drawdown_match_numpy() -> None:
    frame = make_ohlcv(300, seed=3)
    log_ret = np.log(frame["close"]).diff()
    out = statistical_features(
        frame["close"],
        log_ret,
        frame["volume"],
        windows=(20,),
        rank_window=50,
        autocorr_window=100,
        autocorr_lags=3,
        hurst_window=64,
        sharpe_window=60,
    )
    r = log_ret.to_numpy()
    expected = np.corrcoef(r[-100:], r[-102:-2])[0, 1]
    assert out["autocorr_2"].iloc[-1] == pytest.approx(expected)
    hurst = out["hurst_64"].dropna()
    assert 0.2 < hurst.median() < 0.8  # a random walk's returns: H near 0.5


def test_garch_uses_the_schedule_and_matches_arch_on_the_first_fit() -> None:
    rng = np.random.default_rng(0)
    r = pd.Series(rng.standard_t(5, 1200) * 0.01)
    out, state = garch_volatility(r, fit_window=600, refit_every=300, min_obs=600)
    assert state.position == 1200
    assert out["garch_vol"].iloc[:600].isna().all() and out["garch_vol"].iloc[600:].notna().all()
    window = r.iloc[:600].to_numpy()
    scale = 1 / window.std()
    res = arch_model(window * scale, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(
        disp="off"
    )
    persistence = res.params["alpha[1]"] + res.params["beta[1]"]
    assert out["garch_persistence"].iloc[600] == pytest.approx(persistence, rel=1e-6)
    # filtered by hand for two steps from the initial variance
    omega = res.params["omega"] / scale**2
    var = omega + res.params["alpha[1]"] * r[600] ** 2 + res.params["beta[1]"] * window.var()
    assert out["garch_vol"].iloc[600] == pytest.approx(np.sqrt(var), rel=1e-6)
    var = omega + res.params["alpha[1]"] * r[601] ** 2 + res.params["beta[1]"] * var
    assert out["garch_vol"].iloc[601] == pytest.approx(np.sqrt(var), rel=1e-6)


def test_higher_timeframe_uses_only_closed_bars() -> None:
    frame = make_ohlcv(48, freq="1h", start="2024-01-01")
    out = higher_timeframe_features(frame, base_timeframe="1h", higher=("4h",))
    # The 00:00-04:00 bar closes at 04:00, i.e. with the 03:00 hourly bar.
    c = frame["close"]
    first_4h_ret = np.log(c.iloc[7] / c.iloc[3])  # second 4h bar vs the first
    assert out["htf_4h_ret"].iloc[:7].isna().all()
    assert out["htf_4h_ret"].iloc[7] == pytest.approx(first_4h_ret)
    assert out["htf_4h_ret"].iloc[8:11].eq(out["htf_4h_ret"].iloc[7]).all()
    with pytest.raises(ConfigError, match="'1h' is not above the base timeframe '1h'"):
        higher_timeframe_features(frame, base_timeframe="1h", higher=("1h",))


def test_labels_by_hand() -> None:
    close = pd.Series(np.exp(np.cumsum([0.0, 0.01, -0.01, 0.01, -0.01, 0.02, -0.03, 0.001])))
    labels = build_labels(close, horizon=2, flat_band_sigmas=0.5, band_window=4)
    r = np.log(close).diff()
    band_at_4 = 0.5 * r.iloc[1:5].std()
    assert labels["flat_band"].iloc[4] == pytest.approx(band_at_4)
    assert labels["next_return"].iloc[4] == pytest.approx(0.02)
    assert labels["direction"].iloc[4] == UP
    assert labels["direction"].iloc[5] == DOWN
    assert labels["direction"].iloc[6] == FLAT  # 0.001 is inside the band
    assert labels["fwd_realized_vol_2"].iloc[4] == pytest.approx(np.sqrt(0.02**2 + 0.03**2))
    assert np.isnan(labels["direction"].iloc[-1])


@pytest.mark.parametrize("name,anchor", [("sp500", "W"), ("sp500", "M"), ("eurusd", "D")])
def test_anchored_vwap_equals_pandas_ta(name: str, anchor: str) -> None:
    import pandas_ta as ta

    from ai_trade_bot.data.sources import load_bundled

    frame, _, _ = load_bundled(name)
    h, lo, c, v = frame["high"], frame["low"], frame["close"], frame["volume"]
    expected = ta.vwap(h, lo, c, v, anchor=anchor)
    np.testing.assert_allclose(anchored_vwap(h, lo, c, v, anchor), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["sp500", "eurusd"])
def test_directional_movement_equals_pandas_ta_adx(name: str) -> None:
    import pandas_ta as ta

    from ai_trade_bot.data.sources import load_bundled

    frame, _, _ = load_bundled(name)
    frame = frame.iloc[:3000].copy()
    frame.iloc[100:110, :4] = frame["close"].iloc[99]  # flat bars: zero moves
    h, lo, c = frame["high"], frame["low"], frame["close"]
    expected = ta.adx(h, lo, c, length=14)
    for got, column in zip(
        directional_movement(h, lo, c, 14), ("ADX_14", "DMP_14", "DMN_14"), strict=True
    ):
        pd.testing.assert_series_equal(got, expected[column], check_names=False, rtol=1e-12)


def _hurst_by_definition(x: np.ndarray, window: int, min_chunk: int) -> np.ndarray:
    """Rescaled-range Hurst of each trailing window, written out plainly."""
    out = np.full(x.size, np.nan)
    sizes = [min_chunk * 2**j for j in range(20) if min_chunk * 2**j <= window]
    for t in range(window - 1, x.size):
        seg = x[t - window + 1 : t + 1]
        if np.isnan(seg).any():
            continue
        means = []
        for size in sizes:
            rs = []
            for c in range(window // size):
                chunk = seg[window - (c + 1) * size : window - c * size]
                dev = np.cumsum(chunk - chunk.mean())
                spread = max(dev.max(), 0.0) - min(dev.min(), 0.0)
                rs.append(spread / chunk.std() if chunk.std() > 0 else np.nan)
            means.append(np.mean(rs))
        if np.all(np.asarray(means) > 0):
            out[t] = np.polyfit(np.log(sizes), np.log(means), 1)[0]
    return out


@pytest.mark.parametrize("window", [64, 100])
def test_rolling_hurst_equals_its_definition(window: int) -> None:
    x = np.random.default_rng(3).normal(0.0, 1e-3, 600)
    x[[0, 250]] = np.nan
    x[400:420] = 0.0  # flat chunks: R/S undefined, no value
    got, expected = rolling_hurst(x, window, 8), _hurst_by_definition(x, window, 8)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_vwap_before_any_volume_is_the_mean_typical_price() -> None:
    idx = pd.date_range("2024-01-01", periods=4, freq="6h", tz="UTC")
    bar = pd.Series([10.0, 13.0, 16.0, 10.0], index=idx)
    volume = pd.Series([0.0, 0.0, 2.0, 1.0], index=idx)
    out = anchored_vwap(bar, bar, bar, volume, "D")
    # no volume yet: mean of 10 and 13; then (16 * 2 + 10 * 1) / 3
    assert out.tolist() == [10.0, 11.5, 16.0, 14.0]


def test_a_zero_volume_bar_blanks_no_row_and_touches_only_volume_features(sp500) -> None:
    from ai_trade_bot.features.build import FeatureConfig, build_features

    base = build_features(sp500, timeframe="1d", config=FeatureConfig())
    bad = sp500.copy()
    at = [3000, 3200]
    bad.iloc[at, bad.columns.get_loc("volume")] = 0.0
    out = build_features(bad, timeframe="1d", config=FeatureConfig())
    assert out.notna().all(axis=1).sum() == base.notna().all(axis=1).sum()
    changed = ~np.isclose(out.to_numpy(), base.to_numpy(), rtol=1e-9, equal_nan=True)
    columns = set(out.columns[changed.any(axis=0)])
    volume_features = {
        c for c in out.columns if c.startswith(("amihud", "kyle", "volume_", "rel_volume", "obv"))
    } | {"vwap_dist_atr", "rsi_x_imbalance"}
    assert columns and columns <= volume_features
    rows = np.flatnonzero(changed.any(axis=1))
    assert rows.min() >= at[0]  # nothing before the bad bar changes


def test_incremental_features_equal_the_batch_matrix_candle_by_candle() -> None:
    """The live runner's path: a trailing window plus carried state, one candle at a time,
    gives every feature of the batch matrix (GARCH refits and the drawdown peak included)."""
    from ai_trade_bot.features.build import (
        FeatureConfig,
        FeatureState,
        build_features,
        build_features_with_state,
        stream_rows,
        update_features,
    )
    from tests.synthetic import make_market

    config = FeatureConfig(garch_fit_window=400, garch_refit_every=150, garch_min_obs=300)
    candles = make_market("crypto", "1h", 2000, seed=9, zero_volume=2)
    batch = build_features(candles, timeframe="1h", config=config)
    start = 1700  # the runner's history; then 300 candles one by one
    _, state = build_features_with_state(candles.iloc[:start], timeframe="1h", config=config)
    rows = stream_rows(config, "1h")
    assert rows < start
    state = FeatureState.from_dict(state.to_dict())  # what the state store round-trips
    streamed = []
    for t in range(start, len(candles)):
        row, state = update_features(
            candles.iloc[max(0, t + 1 - rows) : t + 1], state, timeframe="1h", config=config
        )
        streamed.append(row)
    streamed = pd.DataFrame(streamed)
    expected = batch.iloc[start:]
    assert list(streamed.columns) == list(expected.columns)
    assert streamed.notna().all().all()
    np.testing.assert_allclose(streamed.to_numpy(), expected.to_numpy(), rtol=1e-9, atol=1e-12)
    assert state.position == len(candles) and state.garch.position == len(candles)


def test_a_refit_made_ahead_gives_exactly_the_refit_made_in_place() -> None:
    """The runner fits the next candle's GARCH after committing a decision; the next
    update uses that fit, with the same values as fitting in place."""
    from ai_trade_bot.features.build import (
        FeatureConfig,
        build_features_with_state,
        prefit_features,
        stream_rows,
        update_features,
    )
    from tests.synthetic import make_market

    config = FeatureConfig(garch_fit_window=400, garch_refit_every=150, garch_min_obs=300)
    candles = make_market("crypto", "1h", 1500, seed=4)
    rows = stream_rows(config, "1h")
    _, plain = build_features_with_state(candles.iloc[:1190], timeframe="1h", config=config)
    ahead, fitted_ahead = plain, 0
    for t in range(1190, 1360):  # refit points at 1200 and 1350
        window = candles.iloc[max(0, t + 1 - rows) : t + 1]
        expected, plain = update_features(window, plain, timeframe="1h", config=config)
        got, ahead = update_features(window, ahead, timeframe="1h", config=config)
        pd.testing.assert_series_equal(got, expected, rtol=0, atol=0)
        assert ahead.garch.ahead is None  # used up
        ahead = prefit_features(window, ahead, timeframe="1h", config=config)
        fitted_ahead += ahead.garch.ahead is not None
    assert fitted_ahead == 2 and plain.garch == ahead.garch


def test_the_garch_refit_schedule_follows_the_timeframe_by_time() -> None:
    from ai_trade_bot.errors import ConfigError
    from ai_trade_bot.features.build import FeatureConfig

    config = FeatureConfig()  # the default: every 30 days
    assert config.garch_refit_every == "30d"
    refits = {tf: config.resolve(tf).garch_refit_every for tf in ("1m", "5m", "1h", "4h", "1d")}
    assert refits == {"1m": 43_200, "5m": 8_640, "1h": 720, "4h": 180, "1d": 30}
    assert FeatureConfig(garch_refit_every=250).resolve("1m").garch_refit_every == 250  # bars
    with pytest.raises(ConfigError, match="timeframe 'weekly' is not understood"):
        FeatureConfig(garch_refit_every="weekly")
