"""Look-ahead tests: no feature value at or before a cut changes when later data is removed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.features.build import FeatureConfig, LabelConfig, build_features, labels_for
from tests.conftest import make_ohlcv

N_RANDOM_CUTS = 12


def _cut_points(features: pd.DataFrame, n_random: int, seed: int) -> list[int]:
    """Random cut positions plus the first row where every feature is defined."""
    first_valid = int(np.flatnonzero(features.notna().all(axis=1).to_numpy())[0])
    rng = np.random.default_rng(seed)
    random_cuts = rng.integers(first_valid // 2, len(features) - 1, size=n_random)
    return sorted({first_valid, *map(int, random_cuts)})


def find_lookahead(build, ohlcv: pd.DataFrame, cuts: list[int]) -> dict[str, list[int]]:
    """Return {feature: [cut positions where it changed]} over truncated histories."""
    full = build(ohlcv)
    leaks: dict[str, list[int]] = {}
    for cut in cuts:
        partial = build(ohlcv.iloc[: cut + 1])
        assert list(partial.columns) == list(full.columns)
        expected = full.iloc[: cut + 1]
        same = (partial.to_numpy() == expected.to_numpy()) | (
            partial.isna().to_numpy() & expected.isna().to_numpy()
        )
        for col in np.flatnonzero(~same.all(axis=0)):
            leaks.setdefault(full.columns[col], []).append(cut)
    return leaks


DAILY = FeatureConfig()
INTRADAY = FeatureConfig(
    vwap_anchor="D",
    garch_min_obs=300,
    garch_refit_every=97,
    garch_fit_window=400,
    multi_timeframe=("4h", "1d"),
)


def test_lookahead_every_feature_on_bundled_sp500(sp500: pd.DataFrame) -> None:
    def build(frame):
        return build_features(frame, timeframe="1d", config=DAILY)

    full = build(sp500)
    cuts = _cut_points(full, N_RANDOM_CUTS, seed=1)
    first_valid = int(np.flatnonzero(full.notna().all(axis=1).to_numpy())[0])
    assert first_valid in cuts and first_valid >= DAILY.garch_min_obs
    leaks = find_lookahead(build, sp500, cuts)
    assert leaks == {}, f"features changed when the future was removed: {leaks}"


def test_lookahead_every_feature_on_intraday_synthetic() -> None:
    ohlcv = make_ohlcv(1500, seed=7, freq="15min", start="2024-03-01 00:00")

    def build(frame):
        return build_features(frame, timeframe="15m", config=INTRADAY)

    full = build(ohlcv)
    clock = full[["time_of_day_sin", "time_of_day_cos"]].round(9).drop_duplicates()
    assert len(clock) == 96  # every 15-minute slot of a day is its own point
    leaks = find_lookahead(build, ohlcv, _cut_points(full, N_RANDOM_CUTS, seed=2))
    assert leaks == {}, f"features changed when the future was removed: {leaks}"


def test_lookahead_check_catches_a_planted_leaky_feature(sp500: pd.DataFrame) -> None:
    def leaky_build(frame):
        feats = build_features(frame, timeframe="1d", config=DAILY)
        # Planted leaks: a centred window and a full-sample normalisation.
        centred = frame["close"].rolling(5, center=True).mean() / frame["close"]
        full_sample_z = (frame["close"] - frame["close"].mean()) / frame["close"].std()
        return feats.assign(leak_centred=centred, leak_full_sample_z=full_sample_z)

    full = leaky_build(sp500)
    leaks = find_lookahead(leaky_build, sp500, _cut_points(full, 4, seed=3))
    assert set(leaks) == {"leak_centred", "leak_full_sample_z"}


def test_lookahead_labels_use_only_the_next_horizon(sp500: pd.DataFrame) -> None:
    config = LabelConfig(horizon=5)
    labels = labels_for(sp500, config)
    t = 3000
    # Changing candles after t + h must not change the label at t ...
    changed_far = sp500.copy()
    changed_far.iloc[t + config.horizon + 1 :, :] *= 1.5
    pd.testing.assert_series_equal(labels_for(changed_far, config).iloc[t], labels.iloc[t])
    # ... while the label at t does depend on t+1.
    changed_next = sp500.copy()
    changed_next.iloc[t + 1 :, :] *= 1.05
    assert labels_for(changed_next, config).iloc[t]["next_return"] != pytest.approx(
        labels.iloc[t]["next_return"]
    )
    # and it is defined only when the whole horizon exists
    assert labels[f"fwd_realized_vol_{config.horizon}"].iloc[-config.horizon :].isna().all()


def test_negative_control_a_feature_that_leaks_the_next_return_is_caught(sp500) -> None:
    """The leak the gate test slips past this check (tests/test_controls.py) is one this
    check catches, at every cut."""
    from tests.controls import next_return_leak

    def leaky_build(frame):
        features = build_features(frame, timeframe="1d", config=DAILY)
        return features.assign(leak_next_return=next_return_leak(frame))

    frame = sp500.iloc[:1500]
    cuts = _cut_points(build_features(frame, timeframe="1d", config=DAILY), 6, seed=3)
    leaks = find_lookahead(leaky_build, frame, cuts)
    assert set(leaks) == {"leak_next_return"} and leaks["leak_next_return"] == cuts
