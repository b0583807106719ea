"""Assemble the full feature set from clean candles."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.config import parse_config
from ai_trade_bot.data.normalise import OHLCV_COLUMNS
from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features import carry as technical_carry
from ai_trade_bot.features import rolling
from ai_trade_bot.features.labels import build_labels
from ai_trade_bot.features.microstructure import microstructure_columns
from ai_trade_bot.features.multitimeframe import higher_timeframe_columns
from ai_trade_bot.features.statistics import statistical_columns
from ai_trade_bot.features.technical import technical_columns
from ai_trade_bot.features.volatility import (
    GarchState,
    garch_arrays,
    parkinson_volatility,
    prefit_garch,
    realized_volatility,
)

logger = logging.getLogger(__name__)


# Higher timeframes when ``features.multi_timeframe`` is ``auto``: two steps up the usual
# ladder, so that a higher bar holds several base bars and a short history still fills
# them (three weeks of 5-minute candles are 126 four-hour bars).
AUTO_HIGHER_TIMEFRAMES: dict[str, tuple[str, ...]] = {
    "1m": ("15m", "1h"),
    "5m": ("1h", "4h"),
    "15m": ("1h", "4h"),
    "30m": ("4h", "1d"),
    "1h": ("4h", "1d"),
    "4h": ("1d", "1w"),
    "1d": ("1w", "4w"),
    "1w": ("4w",),
}
_LADDER = ("1m", "5m", "15m", "1h", "4h", "1d", "1w", "4w")
# A higher timeframe chosen by ``auto`` is kept only when the history spans this many of
# its bars: its indicators need 15 of them, so at most a third of the history is warm-up.
MIN_HIGHER_BARS = 45
HIGHER_TF_WARMUP_BARS = 15  # RSI(14) of higher bars needs 15 closed ones


def auto_higher_timeframes(timeframe: str) -> tuple[str, ...]:
    """The documented default higher timeframes for a base timeframe."""
    if timeframe in AUTO_HIGHER_TIMEFRAMES:
        return AUTO_HIGHER_TIMEFRAMES[timeframe]
    base = timeframe_to_timedelta(timeframe)
    longer = [tf for tf in _LADDER if timeframe_to_timedelta(tf) >= 4 * base]
    return tuple(longer[:2])


def auto_vwap_anchor(timeframe: str) -> str:
    """VWAP resets daily below hourly bars, weekly from hourly to daily bars, else monthly."""
    bar = timeframe_to_timedelta(timeframe)
    if bar < pd.Timedelta(hours=1):
        return "D"
    return "W" if bar <= pd.Timedelta(days=1) else "M"


@dataclass(frozen=True)
class FeatureConfig:
    """``params:features``.

    ``multi_timeframe`` and ``vwap_anchor`` may be ``auto``: then they follow the ingested
    timeframe (see :data:`AUTO_HIGHER_TIMEFRAMES` and :func:`auto_vwap_anchor`); explicit
    values override. :meth:`resolve` turns ``auto`` into the concrete values.
    """

    sma_lengths: tuple[int, ...] = (10, 20, 50, 200)
    ema_lengths: tuple[int, ...] = (12, 26)
    vwap_anchor: str = "auto"
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
    garch_refit_every: int | str = "30d"  # a period (bars of the timeframe) or a bar count
    garch_min_obs: int = 500
    micro_window: int = 20
    micro_norm_window: int = 250
    lags: tuple[int, ...] = (1, 2, 3, 5, 10)
    multi_timeframe: str | tuple[str, ...] = "auto"
    # A rolling window with a missing value (e.g. Amihud on a zero-volume bar) still gives
    # a value when at least this share of its bars is valid: one bad bar never blanks a
    # whole window of rows.
    min_valid_fraction: float = 0.8
    # the universe pipeline's cross-sectional block (ai_trade_bot.features.cross_section);
    # a single symbol has no cross-section and ignores it (so it is left out of the hash
    # that caches a single symbol's feature matrix)
    cross_section: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("sma_lengths", "ema_lengths", "stat_windows", "rv_windows", "lags"):
            object.__setattr__(self, name, tuple(int(x) for x in getattr(self, name)))
        if self.multi_timeframe != "auto":
            if isinstance(self.multi_timeframe, str):
                raise ValueError(
                    f"multi_timeframe must be 'auto' or a list such as ['4h', '1d'], got "
                    f"{self.multi_timeframe!r}"
                )
            object.__setattr__(self, "multi_timeframe", tuple(self.multi_timeframe))
            for tf in self.multi_timeframe:
                timeframe_to_timedelta(tf)
        if self.garch_min_obs < 100:
            raise ValueError(f"garch_min_obs must be >= 100, got {self.garch_min_obs}")
        if isinstance(self.garch_refit_every, str):
            timeframe_to_timedelta(self.garch_refit_every)  # a period such as 7d, or an error
        elif self.garch_refit_every < 1:
            raise ValueError(f"garch_refit_every must be >= 1, got {self.garch_refit_every}")
        if not 0 < self.min_valid_fraction <= 1:
            raise ValueError(f"min_valid_fraction must be in (0, 1], got {self.min_valid_fraction}")

    def resolve(self, timeframe: str, span: pd.Timedelta | None = None) -> FeatureConfig:
        """Concrete values for ``auto`` settings on data of ``timeframe``.

        With ``span`` (the history's first to last candle), an ``auto`` higher timeframe
        that the history cannot fill (fewer than :data:`MIN_HIGHER_BARS` of its bars) is
        left out and logged. Explicit values are kept as given (a too-short history then
        fails the features check, by name).
        """
        changes: dict[str, Any] = {}
        if isinstance(self.garch_refit_every, str):
            # by time, not by bar count: 30d is 43,200 minute bars, 720 hours, 30 daily bars
            period = timeframe_to_timedelta(self.garch_refit_every)
            changes["garch_refit_every"] = max(1, round(period / timeframe_to_timedelta(timeframe)))
        if self.vwap_anchor == "auto":
            changes["vwap_anchor"] = auto_vwap_anchor(timeframe)
        if self.multi_timeframe == "auto":
            chosen = auto_higher_timeframes(timeframe)
            if span is not None:
                kept = tuple(
                    tf for tf in chosen if span >= MIN_HIGHER_BARS * timeframe_to_timedelta(tf)
                )
                if kept != chosen:
                    logger.warning(
                        "features.multi_timeframe=auto: %s left out; the history (%s) spans "
                        "fewer than %d bars of them",
                        sorted(set(chosen) - set(kept)),
                        span,
                        MIN_HIGHER_BARS,
                    )
                chosen = kept
            changes["multi_timeframe"] = chosen
        return dataclasses.replace(self, **changes) if changes else self

    def min_valid(self, window: int) -> int:
        """Valid bars a rolling window of ``window`` needs to give a value."""
        return max(1, int(np.ceil(window * self.min_valid_fraction)))

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


@dataclass
class FeatureState:
    """What the features that depend on all history carry from bar to bar: how many bars
    were seen, the highest close (for the drawdown), the GARCH schedule and filter, and
    the technical indicators' recursions (:mod:`ai_trade_bot.features.carry`; None until
    a pass has made them)."""

    position: int = 0
    peak_close: float = float("-inf")
    garch: GarchState = field(default_factory=GarchState)
    technical: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies the technical carry value by value
        # (~0.1 ms a candle); its lists are new after every bar and never changed in place
        return {
            "position": self.position,
            "peak_close": self.peak_close,
            "garch": dataclasses.asdict(self.garch),
            "technical": self.technical,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureState:
        return cls(
            position=int(data["position"]),
            peak_close=float(data["peak_close"]),
            garch=GarchState(**data["garch"]),
            technical=data.get("technical"),  # a state saved before it had one: rebuilt
        )


def build_features(ohlcv: pd.DataFrame, *, timeframe: str, config: FeatureConfig) -> pd.DataFrame:
    """Compute every feature for every bar (NaN where its look-back is not yet full).

    Args:
        ohlcv: Clean candles (UTC ``timestamp`` index, float64 OHLCV), sorted and unique.
        timeframe: Bar length, e.g. ``"1d"``.
        config: Window lengths and schedules.

    Returns:
        Float64 features indexed like ``ohlcv``; all scale-free.
    """
    frame, _ = build_features_with_state(ohlcv, timeframe=timeframe, config=config)
    return frame


def build_features_with_state(
    ohlcv: pd.DataFrame, *, timeframe: str, config: FeatureConfig
) -> tuple[pd.DataFrame, FeatureState]:
    """:func:`build_features` and the state after its last bar (for :func:`update_features`)."""
    _check_candles(ohlcv, config)
    return _features(ohlcv, timeframe, config.resolve(timeframe), FeatureState(), len(ohlcv))


@functools.lru_cache(maxsize=16)
def stream_rows(config: FeatureConfig, timeframe: str) -> int:
    """Candles :func:`update_features` needs behind the newest one.

    Every window-local feature reaches back at most ``warmup`` rows (higher timeframes:
    their warm-up bars); GARCH refits need ``garch_fit_window`` past returns. The recursive
    indicators (EMA, RSI, ATR, ADX, MACD) carry their state in :class:`FeatureState`; the
    500 more rows are for a state that does not carry them yet (one saved by an earlier
    version), whose one window pass then converges to a relative 1e-15 (Wilder's 13/14 per
    row).
    """
    config = config.resolve(timeframe)
    bar = timeframe_to_timedelta(timeframe)
    higher = max((timeframe_to_timedelta(tf) for tf in config.multi_timeframe), default=bar)
    htf_rows = int(np.ceil((HIGHER_TF_WARMUP_BARS + 2) * (higher / bar)))
    return max(config.warmup + 500, config.garch_fit_window + 1, htf_rows)


def update_features(
    window: pd.DataFrame, state: FeatureState, *, timeframe: str, config: FeatureConfig
) -> tuple[pd.Series, FeatureState]:
    """The features of the newest candle of ``window`` and the state after it.

    ``window`` holds the last candles (at least :func:`stream_rows`, or every candle since
    the first), the newest one last; ``state`` is the state after the candle before it.
    The result equals the row :func:`build_features` gives on the whole history, bit for
    bit: the recursive indicators come from their carried state
    (:mod:`ai_trade_bot.features.carry`), every window-local feature from the bars its
    windows read. The live runner's path.
    """
    names, block, after = _feature_block(
        window, timeframe, _resolved(config, timeframe), state, 1, 1
    )
    return pd.Series(block[:, -1], index=_names_index(names), name=window.index[-1]), after


@functools.lru_cache(maxsize=16)
def _resolved(config: FeatureConfig, timeframe: str) -> FeatureConfig:
    """``config.resolve(timeframe)``, kept (the live runner resolves it every candle)."""
    return config.resolve(timeframe)


@functools.lru_cache(maxsize=16)
def _names_index(names: tuple[str, ...]) -> pd.Index:
    """One Index object per list of feature names: callers keep column positions by it."""
    return pd.Index(names)


def prefit_features(
    window: pd.DataFrame, state: FeatureState, *, timeframe: str, config: FeatureConfig
) -> FeatureState:
    """``state`` (after the newest candle of ``window``) with the next candle's GARCH refit
    made ahead, when the next candle is a refit point (see
    :func:`ai_trade_bot.features.volatility.prefit_garch`). :func:`update_features` on the
    next candle then gives exactly what it gives without this call."""
    config = _resolved(config, timeframe)
    close = window["close"].to_numpy(dtype=np.float64)
    returns = np.diff(np.log(close))  # the returns the next update reads as its past
    garch = prefit_garch(
        state.garch,
        returns,
        fit_window=config.garch_fit_window,
        refit_every=config.garch_refit_every,
        min_obs=config.garch_min_obs,
    )
    if garch is state.garch:
        return state
    return dataclasses.replace(state, garch=garch)


def _check_candles(ohlcv: pd.DataFrame, config: FeatureConfig) -> None:
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


def _history_features(
    c: np.ndarray, r: np.ndarray, config: FeatureConfig, state: FeatureState, new: int
) -> tuple[dict[str, np.ndarray], FeatureState]:
    """Features that depend on all history, for the last ``new`` rows (NaN before),
    carrying ``state`` (the rows before them are only past returns for the GARCH fits)."""
    start = c.size - new
    closes = c[start:]
    peaks = np.maximum.accumulate(np.concatenate([[state.peak_close], closes]))[1:]
    variance, persistence, garch_state = garch_arrays(
        r[start:],
        fit_window=config.garch_fit_window,
        refit_every=config.garch_refit_every,
        min_obs=config.garch_min_obs,
        state=state.garch,
        past=r[:start][-config.garch_fit_window :],
    )
    after = FeatureState(state.position + new, float(peaks[-1]) if new else state.peak_close)
    after.garch = garch_state
    before = np.full(start, np.nan)
    columns = {
        "drawdown": closes / peaks - 1.0,
        "garch_vol": np.sqrt(variance),
        "garch_persistence": persistence,
    }
    return {k: np.concatenate([before, v]) for k, v in columns.items()}, after


def _ohlcv_arrays(ohlcv: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Contiguous float64 open, high, low, close and volume (one copy of an OHLCV-only
    frame; a column at a time costs ~50 µs each)."""
    if tuple(ohlcv.columns) == OHLCV_COLUMNS:
        values = ohlcv.to_numpy(dtype=np.float64)
        return tuple(np.ascontiguousarray(values[:, k]) for k in range(len(OHLCV_COLUMNS)))
    return tuple(ohlcv[k].to_numpy(dtype=np.float64) for k in OHLCV_COLUMNS)


def _features(
    ohlcv: pd.DataFrame,
    timeframe: str,
    config: FeatureConfig,
    state: FeatureState,
    new: int,
    keep: int | None = None,
) -> tuple[pd.DataFrame, FeatureState]:
    """Every feature of ``ohlcv``'s rows; the all-history ones for the last ``new`` rows,
    carried on from ``state``. The one body behind the batch and the incremental paths.

    ``keep``: return only the last ``keep`` rows (None: all). Window-local statistics are
    then computed for those rows only; every value is the one the full computation gives.
    """
    names, block, after = _feature_block(ohlcv, timeframe, config, state, new, keep)
    index = ohlcv.index[len(ohlcv) - block.shape[1] :].rename("timestamp")
    return pd.DataFrame(block.T, index=index, columns=list(names), copy=False), after


def _feature_block(
    ohlcv: pd.DataFrame,
    timeframe: str,
    config: FeatureConfig,
    state: FeatureState,
    new: int,
    keep: int | None,
) -> tuple[tuple[str, ...], np.ndarray, FeatureState]:
    """:func:`_features` as its column names and a (features, rows) float64 block."""
    o, h, lo, c, v = _ohlcv_arrays(ohlcv)
    opens = ohlcv.index.asi8
    r = np.concatenate([[np.nan], np.diff(np.log(c))])
    history, after = _history_features(c, r, config, state, new)
    stats = statistical_columns(
        c,
        r,
        v,
        windows=config.stat_windows,
        rank_window=config.rank_window,
        autocorr_window=config.autocorr_window,
        autocorr_lags=config.autocorr_lags,
        hurst_window=config.hurst_window,
        sharpe_window=config.sharpe_window,
        last=keep,
    )
    technical, after.technical = _technical(o, h, lo, c, v, ohlcv.index, config, state, new, keep)
    parts: list[dict[str, np.ndarray]] = [
        {"log_return": r},
        technical,
        stats,
        {"drawdown": history["drawdown"]},
    ]
    # the volatility windows read at most this many bars behind a row asked for
    reach = max(*config.rv_windows, config.parkinson_window, 20 + config.vol_of_vol_window)
    cut = 0 if keep is None else max(0, c.size - (keep + reach))
    r_cut, h_cut, lo_cut = r[cut:], h[cut:], lo[cut:]
    vol = {f"rv_{w}": realized_volatility(r_cut, w) for w in config.rv_windows}
    w_pk = config.parkinson_window
    vol[f"parkinson_{w_pk}"] = parkinson_volatility(h_cut, lo_cut, w_pk)
    rv_mid = realized_volatility(r_cut, 20)
    vv_mean, vv_std = rolling.mean_std(rv_mid, config.vol_of_vol_window)
    garch_vol = history["garch_vol"][cut:]
    with np.errstate(invalid="ignore", divide="ignore"):
        vol[f"vol_of_vol_{config.vol_of_vol_window}"] = vv_std / vv_mean
        vol["garch_vol"] = garch_vol
        vol["garch_persistence"] = history["garch_persistence"][cut:]
        vol["garch_vs_rv20"] = np.log(garch_vol * np.sqrt(20) / rv_mid)
    parts.append(vol)
    micro = microstructure_columns(
        c,
        r,
        v,
        window=config.micro_window,
        norm_window=config.micro_norm_window,
        min_valid=config.min_valid(config.micro_window),
        last=keep,
    )
    parts.append(micro)
    rsi = technical["rsi_14"]  # (the carried path gives only the rows the lags read)
    imbalance = micro[f"volume_imbalance_{config.micro_window}"]
    both = min(rsi.size, imbalance.size)
    lagged = {
        "rsi_x_imbalance": (rsi[rsi.size - both :] / 100.0) * imbalance[imbalance.size - both :]
    }
    for lag in config.lags:
        lagged[f"log_return_lag_{lag}"] = _shift(r, lag)
        lagged[f"rsi_14_lag_{lag}"] = _shift(rsi, lag)
        lagged[f"volume_imbalance_lag_{lag}"] = _shift(imbalance, lag)
    parts.append(lagged)
    rows = len(opens) if keep is None else min(keep, len(opens))
    parts.append(time_columns(opens[len(opens) - rows :]))
    if config.multi_timeframe:
        parts.append(
            higher_timeframe_columns(
                opens,
                {"open": o, "high": h, "low": lo, "close": c},
                base_timeframe=timeframe,
                higher=config.multi_timeframe,
            )
        )
    names, block = _assemble(parts, rows)
    return names, block, after


def _technical(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    index: pd.DatetimeIndex,
    config: FeatureConfig,
    state: FeatureState,
    new: int,
    keep: int | None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The technical columns and their carry after the last row: one row from the carried
    recursions when only the newest row is asked for and ``state`` carries them (the live
    path), else the whole pass over the rows given (which also makes the carry)."""
    lags = max(config.lags, default=0)
    settings = {
        "index": index,
        "sma_lengths": config.sma_lengths,
        "ema_lengths": config.ema_lengths,
        "rsi_length": 14,
        "atr_length": 14,
        "vwap_anchor": config.vwap_anchor,
    }
    carried = state.technical
    if (
        new == 1
        and keep == 1
        and c.size > max(*config.sma_lengths, 60)
        and technical_carry.usable(carried, config.ema_lengths, lags)
    ):
        columns, after = technical_carry.technical_row(o, h, lo, c, v, carry=carried, **settings)
    else:
        after = {}
        columns = technical_columns(o, h, lo, c, v, carry=after, **settings)
    rsi = columns["rsi_14"]
    after["rsi_tail"] = [float(x) for x in rsi[rsi.size - lags :]] if lags else []
    return columns, after


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` moved ``lag`` rows later (NaN in front), as ``Series.shift(lag)``."""
    out = np.full(x.size, np.nan)
    if lag < x.size:
        out[lag:] = x[: x.size - lag]
    return out


def time_features(index: pd.DatetimeIndex) -> pd.DataFrame:
    """Time of day and day of week of each bar's open (UTC), as points on a circle.

    They mean the same on every market: on daily equity bars the time of day is constant
    (and carries nothing), on 24/7 crypto it is the hour cycle; 23:00 sits next to 00:00
    and Sunday next to Monday.
    """
    return pd.DataFrame(time_columns(index.asi8), index=index)


def time_columns(opens: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`time_features` of bar open times in epoch nanoseconds (UTC), by name."""
    # From the epoch seconds: DatetimeIndex.hour and friends cost ~100 µs a call even for
    # the live runner's single row.
    seconds = np.asarray(opens, dtype=np.int64) // 1_000_000_000
    day_fraction = (seconds % 86400) / 86400.0
    day_of_week = (seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    week_fraction = (day_of_week + day_fraction) / 7.0
    two_pi = 2.0 * np.pi
    return {
        "time_of_day_sin": np.sin(two_pi * day_fraction),
        "time_of_day_cos": np.cos(two_pi * day_fraction),
        "day_of_week_sin": np.sin(two_pi * week_fraction),
        "day_of_week_cos": np.cos(two_pi * week_fraction),
        "is_weekend": (day_of_week >= 5).astype("float64"),
    }


def _assemble(parts: list[dict[str, np.ndarray]], n: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The names and the last ``n`` rows of the parts' columns, copied once into one
    (features, rows) float64 block (inf -> NaN); pd.concat + astype would copy the
    million-row matrix several times. The block's transpose is the C-order layout pandas
    keeps for a float frame: no copy."""
    names = tuple(str(col) for part in parts for col in part)
    if len(set(names)) != len(names):
        raise AssertionError(f"duplicate feature names: {sorted(names)}")
    block = np.empty((len(names), n), dtype=np.float64)
    row = 0
    for part in parts:
        for values in part.values():
            block[row] = values[values.size - n :]
            row += 1
    block[np.isinf(block)] = np.nan
    return names, block


# Which parameter makes each family of columns (checked in order; the first match wins).
_PARAMETER_OF: tuple[tuple[str, str], ...] = (
    (r"^htf_", "features.multi_timeframe"),
    (r"^sma_\d+_dist$", "features.sma_lengths"),
    (r"^ema_\d+_dist$", "features.ema_lengths"),
    (r"^garch_", "features.garch_min_obs"),
    (r"^hurst_", "features.hurst_window"),
    (r"^autocorr_", "features.autocorr_window"),
    (r"_rank_", "features.rank_window"),
    (r"^amihud_rel_", "features.micro_norm_window"),
    (r"^(roll_spread|kyle_lambda|volume_imbalance|rel_volume)_", "features.micro_window"),
    (r"^vwap_", "features.vwap_anchor"),
    (r"^vol_of_vol_", "features.vol_of_vol_window"),
    (r"^rolling_sharpe_", "features.sharpe_window"),
    (r"^rv_", "features.rv_windows"),
    (r"^parkinson_", "features.parkinson_window"),
    (r"^(ret|close)_(mean|std|skew|kurt|z)_", "features.stat_windows"),
    (r"_lag_", "features.lags"),
)
_VOLUME_FEATURES = re.compile(r"^(amihud|kyle|volume_|rel_volume|obv|vwap|rsi_x_imbalance)")


def parameter_of(column: str) -> str:
    """The parameter behind a feature column (for error messages)."""
    for pattern, parameter in _PARAMETER_OF:
        if re.search(pattern, column):
            return parameter
    return "features (a fixed indicator length)"


def check_features(
    frame: pd.DataFrame,
    ohlcv: pd.DataFrame,
    *,
    timeframe: str,
    required_rows: int,
    label_horizon: int = 0,
) -> None:
    """Stop with a clear error when the features cannot feed ``train``.

    Raises:
        DataValidationError: If a column is NaN on every row (naming the columns, the
            parameter behind them and the fix), or if fewer than ``required_rows`` rows are
            complete (naming the warm-up and the count).
    """
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:
        by_parameter: dict[str, list[str]] = {}
        for column in empty:
            by_parameter.setdefault(parameter_of(column), []).append(column)
        listed = "; ".join(f"{p}: {cols}" for p, cols in by_parameter.items())
        if all(_VOLUME_FEATURES.search(c) for c in empty) and (ohlcv["volume"] <= 0).all():
            fix = "the data has no volume (every bar is 0): ingest candles with volume"
        else:
            fix = (
                f"the {len(ohlcv)} {timeframe} candles are too few for these windows: ingest a "
                "longer history, or shorten or remove the parameters named (in "
                "conf/local/parameters_features.yml or with --params); 'auto' higher "
                "timeframes and VWAP anchor follow the timeframe"
            )
        raise DataValidationError(
            f"features: {len(empty)} column(s) are NaN on every row of {len(frame)} "
            f"{timeframe} candles ({listed}). Fix: {fix}."
        )
    complete = frame.notna().all(axis=1)
    usable = int(complete.sum()) - label_horizon
    if usable < required_rows:
        first = int(np.argmax(complete.to_numpy())) if complete.any() else len(frame)
        first_valid = pd.Series(frame.notna().to_numpy().argmax(axis=0), index=frame.columns)
        slowest = first_valid.sort_values(ascending=False).head(3)
        warmups = ", ".join(f"{c} ({parameter_of(c)}): {k} rows" for c, k in slowest.items())
        raise DataValidationError(
            f"features: {int(complete.sum())} of {len(frame)} {timeframe} rows are complete "
            f"(the warm-up takes the first {first} rows; longest: {warmups}), but train needs "
            f"at least {required_rows} complete rows with labels "
            "(train.walk_forward: folds, purge, embargo and test span). Fix: ingest a longer "
            "history, shorten the windows named, or use fewer folds "
            "(train.walk_forward.n_folds)."
        )


def labels_for(ohlcv: pd.DataFrame, config: LabelConfig) -> pd.DataFrame:
    """Labels for each bar (see :func:`ai_trade_bot.features.labels.build_labels`)."""
    return build_labels(
        ohlcv["close"],
        horizon=config.horizon,
        flat_band_sigmas=config.flat_band_sigmas,
        band_window=config.band_window,
    )
