"""The meta method and its confidence gate, chosen on the meta-agent's validation rows
(never the test span)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.evaluation.settings import EvaluateConfig
from ai_trade_bot.evaluation.strategies import make_span, method_columns, model_strategy
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA
from ai_trade_bot.modeling.scoring import log_loss

logger = logging.getLogger(__name__)


def _log_loss(output: pd.DataFrame, labels: pd.Series) -> float:
    probs = output[["down", "flat", "up"]].to_numpy(dtype=np.float64)
    return log_loss(labels.reindex(output.index).to_numpy().astype(int), probs)


def select_meta(
    meta_oof: pd.DataFrame, labels: pd.Series, ohlcv: pd.DataFrame, config: EvaluateConfig
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Choose the meta method and confidence gate on the meta out-of-sample rows only.

    The method is the one with the lowest log-loss among those whose log-loss beats the
    class prior's (``prior``, which never trades, when none does); its gate is the one
    with the best backtest Sharpe on every clean bar of those rows. Every (method, gate)
    is backtested: their returns are the configurations tried (for PBO and the deflated
    Sharpe).

    Returns:
        The choice (with the log-losses behind it) and the candidates' per-bar returns.
    """
    span = make_span(ohlcv, meta_oof.index[0], meta_oof.index[-1], config)
    methods = sorted({c.split(".")[0] for c in meta_oof.columns})
    losses = {m: _log_loss(method_columns(meta_oof, m), labels) for m in methods}
    prior_loss = losses.get("prior")
    if prior_loss is None:
        raise ValueError("meta out-of-fold predictions lack the 'prior' method; re-run train")
    eligible = [m for m in methods if m != "prior" and losses[m] < prior_loss]
    method = min(eligible, key=losses.__getitem__) if eligible else "prior"
    returns, sharpes = {}, {}
    for candidate in methods:
        output = method_columns(meta_oof, candidate)
        for gate in config.confidence_gates:
            strat = model_strategy(
                f"{candidate}@{gate}",
                output,
                span,
                labels,
                config,
                gate=gate,
                pred_vol=output["magnitude"] / ABS_PER_SIGMA,
            )
            returns[strat.name] = strat.returns
            sharpes[strat.name] = strat.metrics["sharpe"]
    gate = max(config.confidence_gates, key=lambda g: sharpes[f"{method}@{g}"])
    why = (
        f"lowest validation log-loss ({losses[method]:.4f}) of the {len(eligible)} method(s) "
        f"that beat the class prior's ({prior_loss:.4f})"
        if eligible
        else f"no method beat the class prior's validation log-loss ({prior_loss:.4f}): the "
        "strategy trades the prior, which never trades"
    )
    logger.info(
        "meta selection on %d validation bars: %s with gate %s (%s)",
        len(span.bars),
        method,
        gate,
        why,
    )
    choice = {
        "method": method,
        "confidence_gate": float(gate),
        "reason": why,
        "validation_log_loss": losses,
        "prior_log_loss": prior_loss,
        "eligible": eligible,
        "validation_sharpe": sharpes[f"{method}@{gate}"],
        "candidates": sharpes,
        "validation_start": str(span.bars.index[0]),
        "validation_end": str(span.bars.index[-1]),
        "validation_bars": len(span.bars),
    }
    return choice, pd.DataFrame(returns)
