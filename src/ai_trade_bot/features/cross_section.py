"""Cross-sectional features and labels over a universe (one time axis, many symbols).

Every per-symbol quantity (return, momentum, volatility, relative volume, beta and
correlation to the basket) is computed on that symbol's own bars, ending at the bar's
close. At each time the symbols with a closed bar then are ranked against each other
(percentile rank) and standardised (z-score). A cross-sectional value exists only at times
when at least ``min_symbols`` symbols have a closed bar; elsewhere it is NaN (a coin's
weekend bars beside weekday stocks get no cross-sectional features).

The basket is the equal-weight mean of the log returns of the symbols with a bar at that
time. Labels add the next return in excess of the basket's next return, and its rank.
Nothing here reads a later bar except the labels, which are meant to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ai_trade_bot.features import rolling


@dataclass(frozen=True)
class CrossSectionConfig:
    """``params:features.cross_section`` (windows in bars of each symbol's own series)."""

    min_symbols: int = 3
    momentum_window: int = 20
    volatility_window: int = 20
    volume_window: int = 20
    beta_window: int = 60

    def __post_init__(self) -> None:
        if self.min_symbols < 2:
            raise ValueError(f"min_symbols must be >= 2, got {self.min_symbols}")
        for name in ("momentum_window", "volatility_window", "volume_window", "beta_window"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")

    @property
    def warmup(self) -> int:
        """Own bars before every cross-sectional input is defined."""
        return (
            max(self.momentum_window, self.volatility_window, self.volume_window, self.beta_window)
            + 1
        )


CROSS_COLUMNS = (
    "cs_n_symbols",
    "cs_ret_rank",
    "cs_ret_z",
    "cs_mom_rank",
    "cs_mom_z",
    "cs_vol_rank",
    "cs_vol_z",
    "cs_volume_rank",
    "cs_volume_z",
    "cs_beta",
    "cs_corr",
    "cs_rel_strength",
)
CROSS_LABELS = ("excess_return", "excess_rank", "basket_next_return")


def _per_symbol(
    panel: dict[str, pd.DataFrame], config: CrossSectionConfig
) -> dict[str, pd.DataFrame]:
    """Each symbol's own-bar inputs, on the union calendar (NaN where it has no bar)."""
    missing = panel["missing"].to_numpy(dtype=bool)
    close_all = panel["close"].to_numpy(dtype=np.float64)
    volume_all = panel["volume"].to_numpy(dtype=np.float64)
    out = {k: np.full(close_all.shape, np.nan) for k in ("ret", "mom", "vol", "volume")}
    for k in range(close_all.shape[1]):
        own = ~missing[:, k]
        close = close_all[own, k]
        ret = np.concatenate([[np.nan], np.diff(np.log(close))])
        log_volume = np.log1p(volume_all[own, k])
        out["ret"][own, k] = ret
        out["mom"][own, k] = rolling.total(ret, config.momentum_window)
        out["vol"][own, k] = rolling.mean_std(ret, config.volatility_window)[1]
        out["volume"][own, k] = log_volume - rolling.mean_std(log_volume, config.volume_window)[0]
    index, columns = panel["close"].index, panel["close"].columns
    return {k: pd.DataFrame(v, index=index, columns=columns) for k, v in out.items()}


def _rank_z(values: pd.DataFrame, enough: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per time, the percentile rank (average ranks of ties, over the symbols with a
    value) and the z-score (population standard deviation) of each symbol's value; NaN
    where fewer than ``enough`` symbols have one. Each time is computed on its own, so a
    window's last time equals the full history's (the live book ranks only that one)."""
    v = values.to_numpy(dtype=np.float64)
    valid = ~np.isnan(v)
    count = valid.sum(axis=1)
    if v.shape[0] <= 8:  # a few times (the live book): the same average ranks, per time
        from scipy.stats import rankdata

        ranks = np.full(v.shape, np.nan)
        for t in range(v.shape[0]):
            if count[t]:
                ranks[t, valid[t]] = rankdata(v[t, valid[t]]) / count[t]
    else:
        ranks = values.rank(axis=1, pct=True).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, v, 0.0).sum(axis=1) / count
        deviation = np.where(valid, v - mean[:, None], 0.0)
        std = np.sqrt((deviation * deviation).sum(axis=1) / count)
        std = np.where(std == 0.0, np.nan, std)
        z = (v - mean[:, None]) / std[:, None]
    counted = (count >= enough.to_numpy())[:, None]
    frame = lambda a: pd.DataFrame(  # noqa: E731
        np.where(counted, a, np.nan), index=values.index, columns=values.columns
    )
    return frame(ranks), frame(z)


def _basket_array(ret: np.ndarray, config: CrossSectionConfig) -> np.ndarray:
    """Equal-weight mean log return of the symbols with a bar at each time of a (times,
    symbols) array (NaN below ``min_symbols``)."""
    valid = ~np.isnan(ret)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, ret, 0.0).sum(axis=1) / count
    return np.where(count >= config.min_symbols, mean, np.nan)


def _beta_corr(
    ret: pd.Series | np.ndarray, basket: pd.Series | np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing beta, correlation and basket momentum over a symbol's own last ``window``
    bars (pairs where both are defined; at least half the window)."""
    x = np.asarray(ret, dtype=np.float64)
    y = np.asarray(basket, dtype=np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    xm, ym = np.where(both, x, 0.0), np.where(both, y, 0.0)
    n = rolling.total(both.astype(np.float64), window)
    sx, sy = rolling.total(xm, window), rolling.total(ym, window)
    sxy, syy, sxx = (
        rolling.total(xm * ym, window),
        rolling.total(ym * ym, window),
        rolling.total(xm * xm, window),
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        var_y = syy - sy * sy / n
        var_x = sxx - sx * sx / n
        ok = (n >= max(2, window // 2)) & (var_y > 0) & (var_x > 0)
        beta = np.where(ok, cov / var_y, np.nan)
        corr = np.where(ok, cov / np.sqrt(var_x * var_y), np.nan)
        basket_mom = np.where(n >= max(2, window // 2), sy, np.nan)
    return beta, corr, basket_mom


def cross_section_features(
    panel: dict[str, pd.DataFrame], config: CrossSectionConfig, *, last_rows: int | None = None
) -> dict[str, pd.DataFrame]:
    """Cross-sectional columns (:data:`CROSS_COLUMNS`) per symbol, on its own bars.

    ``last_rows``: rank and standardise only the last times (each time is ranked on its
    own, so those rows are the full computation's); the earlier rows' ranks and z-scores
    are NaN. :func:`cross_section_last` is the live book's path to the last time's row."""
    index = panel["close"].index
    return {
        symbol: pd.DataFrame(dict(zip(CROSS_COLUMNS, values, strict=True)), index=index[own])
        for symbol, (own, values) in _cross_arrays(panel, config, last_rows).items()
    }


def cross_section_last(
    panel: dict[str, pd.DataFrame], config: CrossSectionConfig
) -> dict[str, np.ndarray]:
    """The panel's last time's row of :data:`CROSS_COLUMNS` for each symbol with a bar
    then: :func:`cross_section_features` with ``last_rows=1``, without a frame per symbol
    (the live book reads one row a step; the frames cost ~0.4 ms a symbol)."""
    return {
        symbol: np.array([column[-1] for column in values])
        for symbol, (own, values) in _cross_arrays(panel, config, 1).items()
        if own.size and own[-1]
    }


def _cross_arrays(
    panel: dict[str, pd.DataFrame], config: CrossSectionConfig, last_rows: int | None
) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    """Per symbol: the times it has a bar (a mask of the panel's) and the values of
    :data:`CROSS_COLUMNS` there, in order. Arrays throughout (the live book recomputes
    this on a trailing window at every step: pandas per symbol and column cost 10 ms a
    symbol there)."""
    inputs = _per_symbol(panel, config)
    missing = panel["missing"].to_numpy(dtype=bool)
    count_all = (~missing).sum(axis=1).astype(np.float64)
    enough = pd.Series(config.min_symbols, index=panel["close"].index)
    ranked = {}
    for key, frame in inputs.items():
        if last_rows is None:
            ranked[key] = tuple(f.to_numpy(dtype=np.float64) for f in _rank_z(frame, enough))
            continue
        tail = _rank_z(frame.iloc[-last_rows:], enough.iloc[-last_rows:])
        full = []
        for part in tail:
            values = np.full(frame.shape, np.nan)
            values[len(frame) - len(part) :] = part.to_numpy(dtype=np.float64)
            full.append(values)
        ranked[key] = tuple(full)
    ret_all = inputs["ret"].to_numpy(dtype=np.float64)
    basket = _basket_array(ret_all, config)
    mom_all = inputs["mom"].to_numpy(dtype=np.float64)
    out: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for k, symbol in enumerate(panel["close"].columns):
        own = ~missing[:, k]
        ret = ret_all[own, k]
        own_basket = basket[own]
        beta, corr, _ = _beta_corr(ret, own_basket, config.beta_window)
        momentum_basket = _beta_corr(ret, own_basket, config.momentum_window)[2]
        count = count_all[own]
        cross_ok = count >= config.min_symbols
        columns = {"cs_n_symbols": np.where(cross_ok, count, np.nan)}
        for key in ("ret", "mom", "vol", "volume"):
            columns[f"cs_{key}_rank"] = ranked[key][0][own, k]
            columns[f"cs_{key}_z"] = ranked[key][1][own, k]
        columns["cs_beta"] = np.where(cross_ok, beta, np.nan)
        columns["cs_corr"] = np.where(cross_ok, corr, np.nan)
        columns["cs_rel_strength"] = np.where(cross_ok, mom_all[own, k] - momentum_basket, np.nan)
        out[symbol] = (own, [columns[name] for name in CROSS_COLUMNS])
    return out


def cross_section_labels(
    next_returns: dict[str, pd.Series], panel: dict[str, pd.DataFrame], config: CrossSectionConfig
) -> dict[str, pd.DataFrame]:
    """Per symbol, on its own bars: ``excess_return`` (its next return minus the basket's
    next return at the same time), ``excess_rank`` (the percentile rank of its next return
    among the symbols with a bar then) and ``basket_next_return``."""
    calendar = panel["close"].index
    wide = pd.DataFrame({s: r.reindex(calendar) for s, r in next_returns.items()})
    count = wide.notna().sum(axis=1)
    enough = count >= config.min_symbols
    basket_next = wide.mean(axis=1).where(enough)
    rank = wide.rank(axis=1, pct=True).where(enough, np.nan)
    out = {}
    for symbol, series in next_returns.items():
        idx = series.index
        out[symbol] = pd.DataFrame(
            {
                "excess_return": series - basket_next.reindex(idx),
                "excess_rank": rank[symbol].reindex(idx),
                "basket_next_return": basket_next.reindex(idx),
            },
            index=idx,
        )
    return out
