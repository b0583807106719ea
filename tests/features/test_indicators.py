"""The technical features, computed on arrays, against pandas-ta's own functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest

from ai_trade_bot.data.sources import load_bundled
from ai_trade_bot.features.technical import anchored_vwap, technical_features


def _first(frame: pd.DataFrame, prefix: str) -> pd.Series:
    return frame[next(c for c in frame.columns if c.startswith(prefix))]


def pandas_ta_reference(ohlcv: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """The technical feature columns written with pandas-ta calls on Series."""
    o, h, lo, c, v = (ohlcv[k] for k in ("open", "high", "low", "close", "volume"))
    out = {f"sma_{n}_dist": c / ta.sma(c, length=n) - 1.0 for n in (10, 20, 50, 200)}
    out |= {f"ema_{n}_dist": c / ta.ema(c, length=n) - 1.0 for n in (12, 26)}
    atr = ta.atr(h, lo, c, length=14)
    out["atr_14_pct"] = atr / c
    macd = ta.macd(c, fast=12, slow=26, signal=9)
    out["macd_atr"] = _first(macd, "MACD_") / atr
    out["macd_signal_atr"] = _first(macd, "MACDs_") / atr
    out["macd_hist_atr"] = _first(macd, "MACDh_") / atr
    adx = ta.adx(h, lo, c, length=14)
    out["adx_14"], out["dmp_14"], out["dmn_14"] = adx["ADX_14"], adx["DMP_14"], adx["DMN_14"]
    out["rsi_14"] = ta.rsi(c, length=14)
    stoch = ta.stoch(h, lo, c, k=14, d=3, smooth_k=3)
    out["stoch_k"], out["stoch_d"] = _first(stoch, "STOCHk_"), _first(stoch, "STOCHd_")
    out["roc_10"] = ta.roc(c, length=10)
    out["willr_14"] = ta.willr(h, lo, c, length=14)
    bb = ta.bbands(c, length=20, lower_std=2.0, upper_std=2.0)
    out["bb_pctb"] = _first(bb, "BBP_")
    out["bb_width"] = _first(bb, "BBB_") / 100.0
    kc = ta.kc(h, lo, c, length=20, scalar=2)
    lower, mid, upper = _first(kc, "KCL"), _first(kc, "KCB"), _first(kc, "KCU")
    out["kc_position"] = (c - mid) / (upper - lower)
    out["vwap_dist_atr"] = (c - ta.vwap(h, lo, c, v, anchor=anchor)) / atr
    out["obv_flow_60"] = ta.obv(c, v).diff(60) / v.rolling(60).sum().replace(0.0, np.nan)
    out["body_atr"] = (c - o) / atr
    out["range_atr"] = (h - lo) / atr
    return pd.DataFrame(out, index=ohlcv.index)


def _with_flat_bars(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.iloc[300:310, :4] = frame["close"].iloc[299]  # zero ranges and zero moves
    return frame


@pytest.mark.parametrize(
    "name,rows,anchor,flat",
    [("sp500", None, "W", False), ("eurusd", None, "D", False), ("eurusd", 3000, "W", True)],
)
def test_technical_features_equal_pandas_ta(name: str, rows: int | None, anchor: str, flat: bool):
    frame = load_bundled(name)[0]
    frame = frame.iloc[:rows] if rows else frame
    frame = _with_flat_bars(frame) if flat else frame
    got = technical_features(frame, vwap_anchor=anchor)
    expected = pandas_ta_reference(frame, anchor)
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        want = expected[column].replace([np.inf, -np.inf], np.nan)
        have = got[column].replace([np.inf, -np.inf], np.nan)
        assert (have.isna() == want.isna()).all(), column
        # The bands: pandas' rolling variance keeps running sums, off by up to 2.5e-9
        # (relative) on EURUSD hours; the two-pass one here is exact to 1e-15 (below).
        tol = 1e-8 if column.startswith("bb_") else 1e-12
        np.testing.assert_allclose(have, want, rtol=tol, atol=tol, err_msg=column)


def test_a_short_window_gives_nan_not_an_error() -> None:
    frame = load_bundled("eurusd")[0].iloc[:12]
    got = technical_features(frame)
    assert len(got) == 12 and got["sma_200_dist"].isna().all() and got["adx_14"].isna().all()


def test_anchored_vwap_on_a_frame_matches_pandas_ta_by_period() -> None:
    frame = load_bundled("sp500")[0].iloc[:400]
    h, lo, c, v = (frame[k] for k in ("high", "low", "close", "volume"))
    np.testing.assert_allclose(
        anchored_vwap(h, lo, c, v, "M"), ta.vwap(h, lo, c, v, anchor="M"), rtol=1e-12
    )


def test_the_rolling_standard_deviation_is_exact_to_rounding() -> None:
    from ai_trade_bot.features.indicators import rolling_std

    close = load_bundled("eurusd")[0]["close"].to_numpy()
    exact = close.astype(np.longdouble)
    want = [np.std(exact[i - 19 : i + 1], ddof=1) for i in range(19, close.size)]
    got = rolling_std(close, 20)
    assert np.isnan(got[:19]).all()
    np.testing.assert_allclose(got[19:], np.array(want, dtype=np.float64), rtol=1e-14)


def pandas_htf_reference(ohlcv: pd.DataFrame, base: str, higher: tuple[str, ...]) -> pd.DataFrame:
    """Higher-timeframe features with pandas' resampler, pandas-ta and ``merge_asof``."""
    from ai_trade_bot.data.timeframes import timeframe_to_timedelta

    step = timeframe_to_timedelta(base)
    out = pd.DataFrame(index=ohlcv.index)
    base_close = pd.Series(ohlcv.index + step, index=ohlcv.index, name="close_time")
    for tf in higher:
        rule = timeframe_to_timedelta(tf)
        htf = ohlcv.resample(rule, origin="epoch", label="left", closed="left").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last"}
        )
        htf = htf.dropna(subset=["close"])
        c = htf["close"]
        rsi = ta.rsi(c, length=14, mamode="sma")
        feats = pd.DataFrame(
            {
                f"htf_{tf}_ret": np.log(c).diff(),
                f"htf_{tf}_rsi": rsi.where(np.arange(len(c)) >= 14),
                f"htf_{tf}_sma_dist": c / c.rolling(10).mean() - 1.0,
                f"htf_{tf}_range": np.log(htf["high"] / htf["low"]),
            }
        )
        feats.index = htf.index + rule
        joined = pd.merge_asof(
            base_close.to_frame(),
            feats.rename_axis("close_time").reset_index(),
            on="close_time",
            direction="backward",
        )
        joined.index = ohlcv.index
        out = out.join(joined.drop(columns="close_time"))
    return out


@pytest.mark.parametrize(
    "name,base,higher,rows",
    [
        ("eurusd", "1h", ("4h", "1d"), None),
        ("sp500", "1d", ("1w", "4w"), None),
        ("eurusd", "1h", ("1d",), 700),
    ],
)
def test_higher_timeframe_features_equal_pandas_resampling(name, base, higher, rows) -> None:
    from ai_trade_bot.features.multitimeframe import higher_timeframe_features

    frame = load_bundled(name)[0]
    frame = frame.iloc[-rows:] if rows else frame
    got = higher_timeframe_features(frame, base_timeframe=base, higher=higher)
    expected = pandas_htf_reference(frame, base, higher)
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        assert (got[column].isna() == expected[column].isna()).all(), column
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-12, atol=1e-14)


def pandas_statistics_reference(close, log_ret, volume) -> pd.DataFrame:
    """The statistical features with pandas' rolling windows (default windows)."""
    out = {}
    for w in (20, 60):
        roll = log_ret.rolling(w)
        mean, std = roll.mean(), roll.std()
        out |= {f"ret_mean_{w}": mean, f"ret_std_{w}": std}
        out |= {f"ret_skew_{w}": roll.skew(), f"ret_kurt_{w}": roll.kurt()}
        out[f"ret_z_{w}"] = (log_ret - mean) / std
        out[f"close_z_{w}"] = (close - close.rolling(w).mean()) / close.rolling(w).std()
    out["ret_rank_100"] = log_ret.rolling(100).rank(pct=True)
    out["volume_rank_100"] = volume.rolling(100).rank(pct=True)
    for lag in range(1, 11):
        out[f"autocorr_{lag}"] = log_ret.rolling(100).corr(log_ret.shift(lag))
    roll = log_ret.rolling(60)
    out["rolling_sharpe_60"] = roll.mean() / roll.std()
    return pd.DataFrame(out)


def pandas_microstructure_reference(close, log_ret, volume, window=20) -> pd.DataFrame:
    dollar_volume = close * volume.where(volume > 0)
    amihud = (log_ret.abs() / dollar_volume).rolling(window, min_periods=16).mean()
    amihud_rel = np.log(amihud / amihud.rolling(250, min_periods=window).median())
    cov = log_ret.rolling(window).cov(log_ret.shift(1))
    sign = np.sign(close.diff()).replace(0.0, np.nan).ffill().fillna(0.0)
    rel_volume = volume / volume.rolling(window).mean()
    signed = sign * rel_volume
    return pd.DataFrame(
        {
            "amihud_rel_20": amihud_rel,
            "roll_spread_20": 2.0 * np.sqrt((-cov).clip(lower=0.0)),
            "kyle_lambda_20": log_ret.rolling(window).cov(signed) / signed.rolling(window).var(),
            "volume_imbalance_20": (sign * volume).rolling(window).sum()
            / volume.rolling(window).sum(),
            "rel_volume_20": np.log(rel_volume.clip(lower=1e-3)),
        }
    )


def _frames():
    eurusd = load_bundled("eurusd")[0].iloc[:4000].copy()
    eurusd.iloc[500:530, :4] = eurusd["close"].iloc[499]  # a flat stretch: constant windows
    eurusd.iloc[700:705, 4] = 0.0  # bars with no volume
    return {"sp500": load_bundled("sp500")[0], "eurusd": eurusd}


def _compare(got: pd.DataFrame, want: pd.DataFrame, tol: dict[str, float]) -> None:
    for column in want.columns:
        have = got[column].replace([np.inf, -np.inf], np.nan)
        expected = want[column].replace([np.inf, -np.inf], np.nan)
        assert (have.isna() == expected.isna()).all(), column
        rtol = next((t for prefix, t in tol.items() if column.startswith(prefix)), 1e-9)
        np.testing.assert_allclose(have, expected, rtol=rtol, atol=rtol, err_msg=column)


@pytest.mark.parametrize("name", ["sp500", "eurusd"])
def test_statistics_and_microstructure_equal_pandas_rolling(name: str) -> None:
    from ai_trade_bot.features.microstructure import microstructure_features
    from ai_trade_bot.features.statistics import statistical_features

    frame = _frames()[name]
    close, volume = frame["close"], frame["volume"]
    log_ret = np.log(close).diff()
    got = statistical_features(
        close, log_ret, volume, windows=(20, 60), rank_window=100, autocorr_window=100,
        autocorr_lags=10, hurst_window=128, sharpe_window=60,
    )  # fmt: skip
    # pandas' running sums lose the most digits on price z-scores (a price's standard
    # deviation over 20 hours is 1e-4 of the price): 2e-9 relative on EURUSD
    _compare(got, pandas_statistics_reference(close, log_ret, volume), {"close_z": 1e-8})
    micro = microstructure_features(close, log_ret, volume, window=20, norm_window=250,
                                    min_valid=16)  # fmt: skip
    want = pandas_microstructure_reference(close, log_ret, volume).set_axis(frame.index)
    _compare(micro, want, {})


def test_the_last_rows_of_the_statistics_equal_the_full_computation_exactly() -> None:
    from ai_trade_bot.features.statistics import statistical_features

    frame = load_bundled("eurusd")[0].iloc[:1500]
    close, volume = frame["close"], frame["volume"]
    log_ret = np.log(close).diff()
    kw = dict(windows=(20, 60), rank_window=100, autocorr_window=100, autocorr_lags=10,
              hurst_window=128, sharpe_window=60)  # fmt: skip
    full = statistical_features(close, log_ret, volume, **kw)
    for last in (1, 7):
        part = statistical_features(close, log_ret, volume, last=last, **kw)
        pd.testing.assert_frame_equal(part.iloc[-last:], full.iloc[-last:], rtol=0, atol=0)
        earlier = part.iloc[:-last]  # not asked for: NaN, or the full computation's value
        assert (earlier.isna() | (earlier == full.iloc[:-last])).all().all()
        assert earlier.iloc[:-200].isna().all().all()


@pytest.mark.parametrize("name", ["sp500", "eurusd"])
def test_labels_equal_the_pandas_formulas(name: str) -> None:
    from ai_trade_bot.features.labels import build_labels

    close = load_bundled(name)[0]["close"]
    got = build_labels(close, horizon=5, flat_band_sigmas=0.25, band_window=20)
    log_ret = np.log(close).diff()
    next_ret = log_ret.shift(-1)
    band = 0.25 * log_ret.rolling(20).std()
    classes = np.where(next_ret > band, 2, np.where(next_ret < -band, 0, 1))
    direction = pd.Series(classes, index=close.index, dtype=float)
    direction[next_ret.isna() | band.isna()] = np.nan
    fwd_var = (log_ret**2)[::-1].rolling(5).sum()[::-1].shift(-1)
    pd.testing.assert_series_equal(got["direction"], direction, check_names=False)
    np.testing.assert_allclose(got["next_return"], next_ret, rtol=0, atol=0)
    np.testing.assert_allclose(got["flat_band"], band, rtol=1e-9)
    np.testing.assert_allclose(got["fwd_realized_vol_5"], np.sqrt(fwd_var), rtol=1e-9)


def test_flat_prices_give_nan_without_numpy_warnings() -> None:
    import warnings

    from ai_trade_bot.features.multitimeframe import higher_timeframe_features
    from ai_trade_bot.strategy.config import StrategyConfig
    from ai_trade_bot.strategy.step import atr_and_rsi

    frame = _with_flat_bars(load_bundled("eurusd")[0].iloc[:400])
    frame.iloc[:60, :4] = frame["close"].iloc[0]  # the window starts flat: RSI is 0/0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning per candle would flood the runner's log
        technical_features(frame)
        higher_timeframe_features(frame, base_timeframe="1h", higher=("4h",))
        atr, rsi = atr_and_rsi(frame, StrategyConfig())
    assert np.isnan(rsi[20]) and np.isfinite(rsi[-1]) and np.isfinite(atr[-1])
