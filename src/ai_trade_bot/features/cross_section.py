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


def _own(panel_field: pd.DataFrame, missing: pd.DataFrame, symbol: str) -> pd.Series:
    return panel_field[symbol][~missing[symbol]]


def _per_symbol(
    panel: dict[str, pd.DataFrame], config: CrossSectionConfig
) -> dict[str, pd.DataFrame]:
    """Each symbol's own-bar inputs, on the union calendar (NaN where it has no bar)."""
    missing = panel["missing"]
    calendar = panel["close"].index
    out: dict[str, dict[str, pd.Series]] = {k: {} for k in ("ret", "mom", "vol", "volume")}
    for symbol in panel["close"].columns:
        close = _own(panel["close"], missing, symbol).to_numpy(dtype=np.float64)
        volume = _own(panel["volume"], missing, symbol).to_numpy(dtype=np.float64)
        index = _own(panel["close"], missing, symbol).index
        ret = np.concatenate([[np.nan], np.diff(np.log(close))])
        mom = rolling.total(ret, config.momentum_window)
        vol = rolling.mean_std(ret, config.volatility_window)[1]
        log_volume = np.log1p(volume)
        rel_volume = log_volume - rolling.mean_std(log_volume, config.volume_window)[0]
        for key, values in (("ret", ret), ("mom", mom), ("vol", vol), ("volume", rel_volume)):
            out[key][symbol] = pd.Series(values, index=index).reindex(calendar)
    return {k: pd.DataFrame(v, index=calendar) for k, v in out.items()}


def _rank_z(values: pd.DataFrame, enough: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    ranks = values.rank(axis=1, pct=True)
    mean = values.mean(axis=1)
    std = values.std(axis=1, ddof=0).replace(0.0, np.nan)
    z = values.sub(mean, axis=0).div(std, axis=0)
    counted = values.notna().sum(axis=1) >= enough
    return ranks.where(counted, np.nan), z.where(counted, np.nan)


def basket_return(returns: pd.DataFrame, config: CrossSectionConfig) -> pd.Series:
    """Equal-weight mean log return of the symbols with a bar (NaN below min_symbols)."""
    count = returns.notna().sum(axis=1)
    return returns.mean(axis=1).where(count >= config.min_symbols)


def _beta_corr(
    ret: pd.Series, basket: pd.Series, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trailing beta, correlation and basket momentum over a symbol's own last ``window``
    bars (pairs where both are defined; at least half the window)."""
    x = ret.to_numpy(dtype=np.float64)
    y = basket.to_numpy(dtype=np.float64)
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
    panel: dict[str, pd.DataFrame], config: CrossSectionConfig
) -> dict[str, pd.DataFrame]:
    """Cross-sectional columns (:data:`CROSS_COLUMNS`) per symbol, on its own bars."""
    inputs = _per_symbol(panel, config)
    count = (~panel["missing"]).sum(axis=1)
    enough = pd.Series(config.min_symbols, index=count.index)
    ranked = {key: _rank_z(frame, enough) for key, frame in inputs.items()}
    basket = basket_return(inputs["ret"], config)
    out: dict[str, pd.DataFrame] = {}
    for symbol in panel["close"].columns:
        own = ~panel["missing"][symbol]
        ret = inputs["ret"][symbol][own]
        beta, corr, _ = _beta_corr(ret, basket[own], config.beta_window)
        mom = inputs["mom"][symbol][own].to_numpy()
        momentum_basket = _beta_corr(ret, basket[own], config.momentum_window)[2]
        columns = {"cs_n_symbols": count[own].astype(np.float64)}
        for key, name in (("ret", "ret"), ("mom", "mom"), ("vol", "vol"), ("volume", "volume")):
            columns[f"cs_{name}_rank"] = ranked[key][0][symbol][own]
            columns[f"cs_{name}_z"] = ranked[key][1][symbol][own]
        frame = pd.DataFrame(columns)
        cross_ok = (count[own] >= config.min_symbols).to_numpy()
        frame["cs_beta"] = np.where(cross_ok, beta, np.nan)
        frame["cs_corr"] = np.where(cross_ok, corr, np.nan)
        frame["cs_rel_strength"] = np.where(cross_ok, mom - momentum_basket, np.nan)
        frame["cs_n_symbols"] = frame["cs_n_symbols"].where(cross_ok, np.nan)
        out[symbol] = frame[list(CROSS_COLUMNS)]
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
