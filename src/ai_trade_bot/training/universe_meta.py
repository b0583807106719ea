"""The meta-agent over a universe: stacked per symbol and pooled.

The single-symbol meta-agent (:func:`ai_trade_bot.modeling.meta.stack_agents`) runs
unchanged on each scope's out-of-fold agent outputs:

- per symbol: that symbol's per-symbol fits, one row per time, as for one symbol;
- pooled: the pooled fits' stacked rows (sorted by time, then symbol). Its second-level
  folds are cut on rows, so the purge and embargo are widened to ``n_symbols`` rows per
  bar: the gap between a meta training window and its test rows then spans at least
  ``purge + embargo`` whole times, and no time has rows on both sides (the symbols of one
  day move together; a split day would leak).

For each scope the method is chosen by log-loss on the meta out-of-sample rows, among the
methods that beat the prior there (else ``prior``): rows the agents never trained on and
that lie before the held-out span. Each scope is one pure task, fanned out like the
agents' fits.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.modeling.meta import MetaAgent, MetaConfig, stack_agents
from ai_trade_bot.modeling.scoring import class_prior, direction_scores
from ai_trade_bot.training.fanout import ExecutorConfig, one_thread, run_tasks
from ai_trade_bot.training.folds import WalkForwardConfig
from ai_trade_bot.training.pooled import POOLED

logger = logging.getLogger(__name__)

OUTPUTS = ("down", "flat", "up", "confidence", "informative")
META = "meta"  # the meta-agent's name among a scope's fitted agents and in the outputs


def wide(outputs: pd.DataFrame) -> pd.DataFrame:
    """Long outputs (one row per row and agent, an ``agent`` column) as the meta-agent's
    input: one row per row, columns ``<agent>.<output>``; rows every agent predicted."""
    parts = [
        rows[[c for c in OUTPUTS if c in rows.columns]].add_prefix(f"{agent}.")
        for agent, rows in outputs.groupby("agent", sort=True)
    ]
    return pd.concat(parts, axis=1, join="inner").sort_index()


def widened(config: MetaConfig, rows_per_time: int) -> MetaConfig:
    """The meta walk-forward with its purge and embargo in rows of ``rows_per_time`` rows
    per time (stacked rows of a pooled scope: whole times between train and test)."""
    wf = dict(config.walk_forward)
    defaults = WalkForwardConfig()
    for key in ("purge", "embargo"):
        wf[key] = int(wf.get(key, getattr(defaults, key))) * rows_per_time
    return dataclasses.replace(config, walk_forward=wf)


@dataclass(frozen=True)
class MetaTask:
    """The meta-agent of one scope (``pooled`` or a symbol)."""

    scope: str
    inputs: pd.DataFrame  # wide agent outputs, indexed by (timestamp, symbol)
    labels: pd.Series  # direction on the same rows
    config: MetaConfig
    rows_per_time: int  # 1 per symbol; the universe's symbols when pooled


def fit_scope(task: MetaTask) -> tuple[str, str, MetaAgent, dict[str, Any], pd.DataFrame]:
    """:func:`_fit_scope` on one thread (see :func:`ai_trade_bot.training.fanout.one_thread`)."""
    with one_thread():
        return _fit_scope(task)


def _fit_scope(task: MetaTask) -> tuple[str, str, MetaAgent, dict[str, Any], pd.DataFrame]:
    """Every meta method on one scope; the chosen one and the scores of all."""
    config = widened(task.config, task.rows_per_time)
    meta_oof, fitted, ablation = stack_agents(task.inputs, task.labels, config)
    candidates = {
        name[len("meta:") :]: scores
        for name, scores in ablation.items()
        if name.startswith("meta:") and scores["log_loss"] < scores["prior_log_loss"]
    }
    chosen = min(candidates, key=lambda k: candidates[k]["log_loss"]) if candidates else "prior"
    out = meta_oof[[c for c in meta_oof.columns if c.startswith(f"{chosen}.")]]
    out = out.rename(columns=lambda c: c[len(chosen) + 1 :])
    return task.scope, chosen, fitted[chosen], ablation, out


def fit_universe_meta(
    oof: pd.DataFrame,
    labels: pd.DataFrame,
    config: MetaConfig,
    executor: ExecutorConfig,
) -> tuple[dict[str, MetaAgent], dict[str, Any], pd.DataFrame]:
    """Meta-agents per symbol and pooled on the universe trainer's out-of-fold rows.

    Args:
        oof: ``UniverseFit.oof`` (indexed by (timestamp, symbol); ``scope``, ``agent``).
        labels: The stacked labels (``direction``).

    Returns:
        The chosen meta-agent per scope, the summary (method and scores per scope, and the
        chosen methods' scores per scope kind against the prior), and the chosen methods'
        meta out-of-sample outputs (``scope`` column: ``pooled`` or the symbol).
    """
    n_symbols = oof.index.get_level_values("symbol").nunique()
    tasks = []
    for scope, rows in oof.groupby("scope", sort=True):
        inputs = wide(rows)
        tasks.append(
            MetaTask(
                str(scope),
                inputs,
                labels["direction"].reindex(inputs.index),
                config,
                n_symbols if scope == POOLED else 1,
            )
        )
    results, ran = run_tasks(fit_scope, tasks, executor)
    metas, per_scope, parts = {}, {}, []
    for scope, chosen, meta, ablation, out in results:
        metas[scope] = meta
        per_scope[scope] = {
            "method": chosen,
            "scores": {k: ablation[f"meta:{k}"] for k in (chosen, "prior")},
            "candidates": {k: v["log_loss"] for k, v in ablation.items()},
        }
        parts.append(out.assign(scope=scope))
    outputs = pd.concat(parts).sort_index()
    summary: dict[str, Any] = {"scopes": per_scope, "executor": ran}
    for kind, rows in (
        ("pooled", outputs[outputs["scope"] == POOLED]),
        ("per_symbol", outputs[outputs["scope"] != POOLED]),
    ):
        if rows.empty:
            continue
        scores = direction_scores(
            labels["direction"].reindex(rows.index).to_numpy(),
            rows[["down", "flat", "up"]].to_numpy(dtype=np.float64),
            _prior_rows(labels["direction"], rows.index),
        )
        loss, base = scores["log_loss"], scores["prior_log_loss"]
        summary[kind] = {
            "rows": len(rows),
            "log_loss": loss,
            "prior_log_loss": base,
            "beats_prior": loss < base,
            "methods": {
                s: per_scope[s]["method"] for s in per_scope if (s == POOLED) == (kind == "pooled")
            },
        }
        logger.info(
            "universe meta-agent %s: meta out-of-sample log-loss %.4f vs prior %.4f (%d rows)",
            kind,
            loss,
            base,
            len(rows),
        )
    return metas, summary, outputs


def _prior_rows(direction: pd.Series, index: pd.MultiIndex) -> np.ndarray:
    """Per row, each symbol's class shares over its labels before the first scored row."""
    out = np.zeros((len(index), 3))
    symbols = index.get_level_values("symbol")
    first = index.get_level_values("timestamp").min()
    for symbol in symbols.unique():
        history = direction.xs(symbol, level="symbol")
        out[np.asarray(symbols == symbol)] = class_prior(history[history.index < first])
    return out
