"""Assemble the full feature set from clean candles."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features.labels import build_labels
from ai_trade_bot.features.microstructure import microstructure_features
from ai_trade_bot.features.multitimeframe import higher_timeframe_features
from ai_trade_bot.features.statistics import statistical_features
from ai_trade_bot.features.technical import technical_features
from ai_trade_bot.features.volatility import (
    garch_volatility,
    parkinson_volatility,
    realized_volatility,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureConfig:
    """``params:features``."""

    sma_lengths: tuple[int, ...] = (10, 20, 50, 200)
    ema_lengths: tuple[int, ...] = (12, 26)
    vwap_anchor: str = "W"
    stat_windows: tuple[int, ...] = (20, 60)
    rank_window: int = 100
    autocorr_window: int = 100
    autocorr_lags: int = 10
    hurst_window: int = 128
    sharpe_window: int = 60
    rv_windows: tuple[int, ...] = (5, 20, 60)
    parkinson_window: int = 20
    vol_of_vol_window: int = 60
    garch_fit_window: int = 1000
    garch_refit_every: int = 250
    garch_min_obs: int = 500
    micro_window: int = 20
    micro_norm_window: int = 250
    lags: tuple[int, ...] = (1, 2, 3, 5, 10)
    multi_timeframe: tuple[str, ...] = ("1w", "4w")

    def __post_init__(self) -> None:
        for name in ("sma_lengths", "ema_lengths", "stat_windows", "rv_windows", "lags"):
            object.__setattr__(self, name, tuple(int(x) for x in getattr(self, name)))
        object.__setattr__(self, "multi_timeframe", tuple(self.multi_timeframe))
        if self.garch_min_obs < 100:
            raise ValueError(f"garch_min_obs must be >= 100, got {self.garch_min_obs}")
        if self.garch_refit_every < 1:
            raise ValueError(f"garch_refit_every must be >= 1, got {self.garch_refit_every}")

    @property
    def warmup(self) -> int:
        """Rows before every feature can be defined (the longest look-back)."""
        return max(
            max(self.sma_lengths) + 1,
            self.garch_min_obs + 1,
            self.micro_norm_window + self.micro_window,
            self.hurst_window + 1,
            self.autocorr_window + self.autocorr_lags + 1,
        )


@dataclass(frozen=True)
class LabelConfig:
    """``params:labels``."""

    horizon: int = 5
    flat_band_sigmas: float = 0.25
    band_window: int = 20

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.flat_band_sigmas < 0:
            raise ValueError(f"flat_band_sigmas must be >= 0, got {self.flat_band_sigmas}")


def feature_config(block: dict[str, Any] | None) -> FeatureConfig:
    """Parse ``params:features``."""
    return parse_config(FeatureConfig, block, name="features")


def build_features(ohlcv: pd.DataFrame, *, timeframe: str, config: FeatureConfig) -> pd.DataFrame:
    """Compute every feature for every bar (NaN where its look-back is not yet full).

    Args:
        ohlcv: Clean candles (UTC ``timestamp`` index, float64 OHLCV), sorted and unique.
        timeframe: Bar length, e.g. ``"1d"``.
        config: Window lengths and schedules.

    Returns:
        Float64 features indexed like ``ohlcv``; all scale-free.
    """
    needed = max(*config.sma_lengths, *config.ema_lengths, 61) + 1
    if len(ohlcv) < needed:
        raise DataValidationError(
            f"features: need at least {needed} candles (the longest indicator window plus "
            f"one), got {len(ohlcv)}. Ingest a longer history or shorten features.sma_lengths."
        )
    if not ohlcv.index.is_monotonic_increasing or not ohlcv.index.is_unique:
        raise DataValidationError(
            "features: the candle index must be sorted and unique (use ohlcv_clean)."
        )
    close, volume = ohlcv["close"], ohlcv["volume"]
    log_ret = np.log(close).diff()
    parts: list[pd.DataFrame] = [
        pd.DataFrame({"log_return": log_ret}, index=ohlcv.index),
        technical_features(
            ohlcv,
            sma_lengths=config.sma_lengths,
            ema_lengths=config.ema_lengths,
            vwap_anchor=config.vwap_anchor,
        ),
        statistical_features(
            close,
            log_ret,
            volume,
            windows=config.stat_windows,
            rank_window=config.rank_window,
            autocorr_window=config.autocorr_window,
            autocorr_lags=config.autocorr_lags,
            hurst_window=config.hurst_window,
            sharpe_window=config.sharpe_window,
        ),
    ]
    vol = {f"rv_{w}": realized_volatility(log_ret, w) for w in config.rv_windows}
    w_pk = config.parkinson_window
    vol[f"parkinson_{w_pk}"] = parkinson_volatility(ohlcv["high"], ohlcv["low"], w_pk)
    rv_mid = realized_volatility(log_ret, 20)
    vv = rv_mid.rolling(config.vol_of_vol_window)
    vol[f"vol_of_vol_{config.vol_of_vol_window}"] = vv.std() / vv.mean()
    garch = garch_volatility(
        log_ret,
        fit_window=config.garch_fit_window,
        refit_every=config.garch_refit_every,
        min_obs=config.garch_min_obs,
    )
    vol["garch_vol"] = garch["garch_vol"]
    vol["garch_persistence"] = garch["garch_persistence"]
    vol["garch_vs_rv20"] = np.log(garch["garch_vol"] * np.sqrt(20) / rv_mid)
    parts.append(pd.DataFrame(vol, index=ohlcv.index))
    micro = microstructure_features(
        close, log_ret, volume, window=config.micro_window, norm_window=config.micro_norm_window
    )
    parts.append(micro)
    rsi = parts[1]["rsi_14"]
    imbalance = micro[f"volume_imbalance_{config.micro_window}"]
    lagged: dict[str, pd.Series] = {"rsi_x_imbalance": (rsi / 100.0) * imbalance}
    for lag in config.lags:
        lagged[f"log_return_lag_{lag}"] = log_ret.shift(lag)
        lagged[f"rsi_14_lag_{lag}"] = rsi.shift(lag)
        lagged[f"volume_imbalance_lag_{lag}"] = imbalance.shift(lag)
    parts.append(pd.DataFrame(lagged, index=ohlcv.index))
    idx = ohlcv.index
    parts.append(
        pd.DataFrame(
            {
                "hour": idx.hour.astype("float64"),
                "day_of_week": idx.dayofweek.astype("float64"),
                "is_weekend": (idx.dayofweek >= 5).astype("float64"),
            },
            index=idx,
        )
    )
    if config.multi_timeframe:
        parts.append(
            higher_timeframe_features(
                ohlcv, base_timeframe=timeframe, higher=config.multi_timeframe
            )
        )
    return _assemble(parts, ohlcv.index.rename("timestamp"))


def _assemble(parts: list[pd.DataFrame], index: pd.Index) -> pd.DataFrame:
    """Copy the parts once into one float64 block (inf -> NaN); pd.concat + astype would
    copy the million-row matrix several times."""
    columns = [col for part in parts for col in part.columns]
    if len(set(columns)) != len(columns):
        raise AssertionError(f"duplicate feature names: {sorted(columns)}")
    # (features, rows) in C order is the layout pandas keeps for a float block: no copy.
    block = np.empty((len(columns), len(index)), dtype=np.float64)
    start = 0
    for part in parts:
        width = part.shape[1]
        block[start : start + width] = part.to_numpy(dtype=np.float64).T
        start += width
    block[np.isinf(block)] = np.nan
    return pd.DataFrame(block.T, index=index, columns=columns, copy=False)


def labels_for(ohlcv: pd.DataFrame, config: LabelConfig) -> pd.DataFrame:
    """Labels for each bar (see :func:`ai_trade_bot.features.labels.build_labels`)."""
    return build_labels(
        ohlcv["close"],
        horizon=config.horizon,
        flat_band_sigmas=config.flat_band_sigmas,
        band_window=config.band_window,
    )
