"""The champion/challenger gate: a challenger is scored on the same validation rows as
the champion (net Sharpe, log-loss), against doing nothing (a net Sharpe above a margin,
from enough trades), on a placebo (the same bars in a shuffled order) and by the honesty
checks (deflated Sharpe reported, PBO bounded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.statistics import deflated_sharpe
from ai_trade_bot.evaluation.honesty import classification_report
from ai_trade_bot.evaluation.strategies import make_span, model_strategy
from ai_trade_bot.features.build import labels_for
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
from ai_trade_bot.modeling.scoring import class_prior
from ai_trade_bot.registry.bundle import Bundle


@dataclass(frozen=True)
class DeployConfig:
    """``params:deploy``.

    ``min_champion_sharpe`` and ``min_champion_trades``: what any champion, the first
    included, must show on the validation rows against doing nothing: an annualised net
    Sharpe (after the costs) above the margin, from at least that many trades. The honesty
    checks alone let a model that never trades, or one that lost money, become champion.
    """

    model_name: str = "ai_trade_bot"
    universe_model_name: str = "ai_trade_bot_universe"
    min_sharpe_gain: float = 0.0
    min_log_loss_gain: float = 0.0
    max_pbo: float = 0.5
    max_placebo_psr: float = 0.95
    placebo_seed: int = 0
    min_champion_sharpe: float = 0.5
    min_champion_trades: int = 5


def validation_scores(
    bundle: Bundle, candles: pd.DataFrame, labels: pd.Series, start: str, end: str
) -> dict[str, float]:
    """Net Sharpe, log-loss and trades of ``bundle`` on candles ``start..end`` (features
    from the whole history before), with its own decision settings and the same costs."""
    history = candles.loc[:end]
    outputs = bundle.predict(history, start=pd.Timestamp(start))
    meta = outputs.filter(like="meta.").rename(columns=lambda c: c[len("meta.") :])
    span = make_span(history, pd.Timestamp(start), pd.Timestamp(end), bundle.strategy)
    strategy = model_strategy(
        "bundle",
        meta,
        span,
        labels,
        bundle.strategy,
        gate=bundle.gate,
        pred_vol=meta["magnitude"] / ABS_PER_SIGMA,
    )
    known = meta.index[labels.reindex(meta.index).notna().to_numpy()]
    prior = class_prior(labels.loc[: pd.Timestamp(start)].iloc[:-1])
    clf = classification_report(meta.loc[known], labels, prior)
    return {
        "sharpe": float(strategy.metrics["sharpe"]),
        "log_loss": float(clf["log_loss"]),
        "accuracy": float(clf["accuracy"]),
        "accuracy_ci_low": float(clf["accuracy_ci"][0]),
        "chance_accuracy": float(clf["chance_accuracy"]),
        "direction_rows": float(clf["direction_rows"]),
        "direction_ci_low": float(clf["direction_ci"][0]),
        "direction_chance": float(clf["direction_chance"]),
        "n_trades": float(strategy.metrics["n_trades"]),
        "bars": float(len(span.bars)),
        "psr": float(deflated_sharpe(strategy.returns.to_numpy(), 1)["psr"]),
    }


def placebo_candles(candles: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same bars in a shuffled order: each bar after the first keeps its open, high,
    low and close relative to the previous close, and its volume, and these whole bars are
    permuted. Shapes, volumes and the return distribution are kept; any order a model could
    predict is gone.

    Whole bars move, not only close-to-close returns: shuffling returns alone would leave
    each bar's body (open to close) in place, and a body that predicts the next one (any
    momentum within bars) would survive into the placebo as a false "edge".
    """
    rng = np.random.default_rng(seed)
    prices = candles[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    relative = prices[1:] / prices[:-1, 3:4]  # each bar against the close before it
    order = rng.permutation(len(relative))
    relative = relative[order]
    close = prices[0, 3] * np.cumprod(relative[:, 3])
    out = candles.copy()
    previous = np.concatenate([[prices[0, 3]], close[:-1]])
    for k, column in enumerate(("open", "high", "low", "close")):
        out.iloc[1:, out.columns.get_loc(column)] = previous * relative[:, k]
    if "volume" in out:
        volume = candles["volume"].to_numpy()
        out.iloc[1:, out.columns.get_loc("volume")] = volume[1:][order]
    return out


def placebo_scores(
    bundle: Bundle, candles: pd.DataFrame, start: str, end: str, seed: int
) -> dict[str, float]:
    """:func:`validation_scores` of ``bundle`` on the placebo of ``candles``."""
    placebo = placebo_candles(candles.loc[:end], seed)
    labels = labels_for(placebo, bundle.labels)["direction"]
    return validation_scores(bundle, placebo, labels, start, end)


def gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    evaluation: dict[str, Any],
    placebo: dict[str, float],
    config: DeployConfig,
) -> tuple[bool, list[str]]:
    """Whether the challenger becomes champion, and every reason."""
    reasons: list[str] = []
    ok = True
    stats = evaluation.get("statistics", {})
    dsr, pbo = stats.get("dsr"), stats.get("pbo")
    if dsr is None or not np.isfinite(dsr):
        ok = False
        reasons.append("the deflated Sharpe was not reported")
    else:
        reasons.append(f"deflated Sharpe reported: {dsr:.3f}")
    if pbo is None or not np.isfinite(pbo):
        ok = False
        why = stats.get("pbo_undefined", "it was not reported")
        reasons.append(f"PBO is undefined ({why}), so the PBO check cannot pass")
    elif pbo > config.max_pbo:
        ok = False
        reasons.append(f"PBO {pbo:.3f} is not at most {config.max_pbo}")
    else:
        reasons.append(f"PBO {pbo:.3f} <= {config.max_pbo}")
    # Direction, not three-class accuracy: see evaluation.honesty.direction_hits (on
    # shuffled bars a model can still tell flat rows by volatility, which is no leak).
    placebo_edge = placebo["psr"] >= config.max_placebo_psr or bool(
        placebo["direction_ci_low"] > placebo["direction_chance"]
    )
    if placebo_edge:
        ok = False
        reasons.append(
            f"the placebo shows an edge (PSR {placebo['psr']:.3f}, directional hit rate CI "
            f"low {placebo['direction_ci_low']:.3f} vs chance "
            f"{placebo['direction_chance']:.3f} over {placebo['direction_rows']:.0f} "
            "rows): something leaks"
        )
    else:
        reasons.append(f"no placebo edge (PSR {placebo['psr']:.3f})")
    trades, sharpe = int(challenger["n_trades"]), challenger["sharpe"]
    if trades < config.min_champion_trades:
        ok = False
        reasons.append(
            f"does not beat doing nothing: {trades} trade(s) on the validation rows, a "
            f"champion needs at least {config.min_champion_trades}"
        )
    elif not sharpe > config.min_champion_sharpe:
        ok = False
        reasons.append(
            f"does not beat doing nothing after costs: net Sharpe {sharpe:.3f} on the "
            f"validation rows, a champion needs more than {config.min_champion_sharpe}"
        )
    else:
        reasons.append(
            f"beats doing nothing after costs: net Sharpe {sharpe:.3f} > "
            f"{config.min_champion_sharpe} over {trades} trades"
        )
    if champion is None:
        reasons.append("no champion yet")
        return ok, reasons
    sharpe_gain = challenger["sharpe"] - champion["sharpe"]
    loss_gain = champion["log_loss"] - challenger["log_loss"]
    if sharpe_gain > config.min_sharpe_gain and loss_gain > config.min_log_loss_gain:
        reasons.append(
            f"beats the champion: Sharpe {challenger['sharpe']:.3f} vs {champion['sharpe']:.3f}, "
            f"log-loss {challenger['log_loss']:.4f} vs {champion['log_loss']:.4f}"
        )
        return ok, reasons
    reasons.append(
        f"does not beat the champion by the margins (Sharpe {challenger['sharpe']:.3f} vs "
        f"{champion['sharpe']:.3f}, needs +{config.min_sharpe_gain}; log-loss "
        f"{challenger['log_loss']:.4f} vs {champion['log_loss']:.4f}, needs "
        f"-{config.min_log_loss_gain})"
    )
    return False, reasons
