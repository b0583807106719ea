"""Evaluation of a universe: every symbol traded on the held-out span, as one basket.

Each (agent, scope) of the universe trainer's deployment fits, and each baseline, is
traded on every symbol through the same strategy step, costs and risk limits as the
single-symbol evaluation, over the held-out test span (after the last row any fit saw,
with the purge and embargo; evaluated once, never tuned on). The symbols are then held as
one equal-weight basket: each symbol is a sleeve with 1/N of the capital, and the basket's
value is the sum of the sleeves (a sleeve's value is carried over a bar its symbol did not
trade; no price is ever filled). Trading the basket
as one portfolio with shared cash and exposure limits is the portfolio step, not this one.

Honesty:

- the deflated Sharpe of each model basket counts every basket evaluated here as a trial;
- a placebo per model: the same outputs shuffled in time within each symbol (same
  positions, no timing). An edge that its placebo also shows is not an edge.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.metrics import equity_returns, periods_per_year, return_metrics
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.evaluation.honesty import honest_statistics
from ai_trade_bot.evaluation.settings import DISCLAIMER, EvaluateConfig
from ai_trade_bot.evaluation.strategies import (
    Strategy,
    baseline_targets,
    make_span,
    model_strategy,
    run_strategy,
)
from ai_trade_bot.training.folds import WalkForwardConfig, holdout_start
from ai_trade_bot.training.pooled import scope_rows, time_calendar
from ai_trade_bot.training.universe_meta import META, wide
from ai_trade_bot.training.walk_forward import predict_rows

logger = logging.getLogger(__name__)

# what the strategy step reads of a model's output
MODEL_COLUMNS = ("down", "flat", "up", "confidence", "informative", "magnitude")


def predict_held_out(
    X: pd.DataFrame, models: dict[str, dict[str, Any]], config: WalkForwardConfig
) -> pd.DataFrame:
    """The deployment fits' outputs on the held-out test span (evaluated once).

    The span starts at :func:`holdout_start` of the calendar of unique times, the same cut
    the trainer's final fits stopped before (with the purge and embargo). A pooled model
    reads every symbol's rows (with ``symbol_id``); a per-symbol model its own rows.

    Args:
        X: The stacked model input indexed by (timestamp, symbol).
        models: ``universe_models``: scope -> agent -> fitted agent.
    """
    calendar = time_calendar(X.index)
    outputs = predict_scopes(X, models, calendar[holdout_start(len(calendar), config)])
    if outputs.empty:
        raise DataValidationError("universe: no rows in the held-out test span to evaluate")
    return outputs


def predict_scopes(
    X: pd.DataFrame,
    models: dict[str, dict[str, Any]],
    start: pd.Timestamp,
    scopes: list[str] | None = None,
) -> pd.DataFrame:
    """Every agent's and meta-agent's outputs of ``scopes`` (default: all) on the rows of
    ``X`` at or after ``start``; long, with ``timestamp, symbol, scope, agent``."""
    parts = []
    for scope, fitted in models.items():
        if scopes is not None and scope not in scopes:
            continue
        rows = scope_rows(X, scope)
        times = rows.index.get_level_values("timestamp")
        first = int(np.searchsorted(times, start, "left"))
        if first >= len(rows):
            continue
        outputs = []
        for agent_name, agent in fitted.items():
            if agent_name == META:
                continue
            out = predict_rows(agent, rows, np.arange(first, len(rows)))
            out.index = rows.index[first:]
            outputs.append(out.assign(scope=scope, agent=agent_name))
        if META in fitted:  # the scope's meta-agent reads its agents' outputs
            meta = fitted[META].predict(wide(pd.concat(outputs)))
            outputs.append(meta[list(MODEL_COLUMNS)].assign(scope=scope, agent=META))
        parts.extend(outputs)
    if not parts:
        return pd.DataFrame(columns=["timestamp", "symbol", *MODEL_COLUMNS, "scope", "agent"])
    return pd.concat(parts).reset_index()


def _sleeves(
    name: str, runs: dict[str, Strategy], calendar: pd.DatetimeIndex, cash: float
) -> Strategy:
    """Equal-weight basket of per-symbol runs: the sum of the sleeves' values / N."""
    values = pd.DataFrame({s: r.equity / cash for s, r in runs.items()}).reindex(calendar)
    # a sleeve's value between its own bars is the value it last had (its account, not a
    # price); before its first bar it holds its cash
    values = values.ffill().fillna(1.0)
    equity = values.mean(axis=1) * cash
    metrics = return_metrics(equity, periods_per_year(calendar)) | {
        "n_trades": int(sum(r.metrics.get("n_trades", 0) for r in runs.values())),
        "exposure": float(np.mean([r.metrics.get("exposure", 0.0) for r in runs.values()])),
    }
    reasons: dict[str, int] = {}
    for r in runs.values():
        for k, v in r.reasons.items():
            reasons[k] = reasons.get(k, 0) + int(v)
    return Strategy(
        name,
        pd.Series(np.nan, index=calendar),
        equity,
        pd.Series(equity_returns(equity), index=calendar),
        metrics,
        pd.DataFrame(),
        reasons,
    )


def _placebo(output: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same outputs in a random order of time (per symbol): positions without timing."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(output))
    return pd.DataFrame(output.to_numpy()[order], index=output.index, columns=output.columns)


def evaluate_universe(
    outputs: pd.DataFrame,
    candles: pd.DataFrame,
    labels: pd.DataFrame,
    config: EvaluateConfig,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Backtest each (agent, scope) and the baselines per symbol and as one basket.

    Args:
        outputs: Model outputs per row (``timestamp, symbol, down, flat, up, confidence,
            ..., scope, agent``): the held-out span's (:func:`predict_held_out`), or the
            trainer's out-of-fold rows.
        candles: The aligned candles (long, with ``missing``).
        labels: The universe labels (long, with ``direction``).

    Returns:
        ``universe_evaluation`` and the basket equity curves (one column per strategy).
    """
    frame = outputs.copy()
    frame["kind"] = np.where(frame["scope"] == "pooled", "pooled", "per_symbol")
    times = pd.DatetimeIndex(frame["timestamp"])
    start, end = times.min(), times.max()
    labels = labels.set_index(["timestamp", "symbol"])["direction"]
    symbols = sorted(frame["symbol"].unique())
    spans, directions = {}, {}
    for symbol in symbols:
        bars = candles[(candles["symbol"] == symbol) & ~candles["missing"].astype(bool)]
        bars = bars.set_index("timestamp").sort_index()[["open", "high", "low", "close", "volume"]]
        spans[symbol] = make_span(bars, start, end, config)
        directions[symbol] = labels.xs(symbol, level="symbol")
    calendar = pd.DatetimeIndex(sorted(set().union(*(s.bars.index for s in spans.values()))))
    cash = config.engine.initial_cash
    gate = config.decision.confidence_gate
    per_symbol: dict[str, dict[str, Strategy]] = {}
    for (agent, kind), rows in frame.groupby(["agent", "kind"], sort=True):
        name = f"{agent}:{kind}"
        per_symbol[name], per_symbol[f"placebo:{name}"] = {}, {}
        for k, symbol in enumerate(symbols):
            output = rows[rows["symbol"] == symbol].set_index("timestamp").sort_index()
            output = output[[c for c in output.columns if c in MODEL_COLUMNS]]
            span, y = spans[symbol], directions[symbol]
            per_symbol[name][symbol] = model_strategy(name, output, span, y, config, gate=gate)
            shuffled = _placebo(output, config.seed + 7919 * k)
            per_symbol[f"placebo:{name}"][symbol] = model_strategy(
                f"placebo:{name}", shuffled, span, y, config, gate=gate
            )
    for symbol in symbols:
        for base, target in baseline_targets(spans[symbol], config).items():
            per_symbol.setdefault(f"baseline:{base}", {})[symbol] = run_strategy(
                f"baseline:{base}",
                target,
                spans[symbol],
                config,
                risk_limits=base != "buy_and_hold",
            )
    baskets = {name: _sleeves(name, runs, calendar, cash) for name, runs in per_symbol.items()}
    trial_returns = pd.DataFrame({k: b.returns for k, b in baskets.items()})
    distinct = np.unique(trial_returns.to_numpy(dtype=np.float64), axis=1).shape[1]
    ppy = periods_per_year(calendar)
    models = [k for k in baskets if not k.startswith(("placebo:", "baseline:"))]
    statistics = {
        name: honest_statistics(baskets[name], distinct, trial_returns, config, ppy)
        for name in models
    }
    verdicts = {}
    for name in models:
        stats, sharpe_ = statistics[name], baskets[name].metrics["sharpe"]
        placebo = baskets[f"placebo:{name}"].metrics["sharpe"]
        hold = baskets["baseline:buy_and_hold"].metrics["sharpe"]
        verdicts[name] = _verdict(sharpe_, stats["dsr"], placebo, hold, baskets[name])
    evaluation = {
        "disclaimer": DISCLAIMER,
        "span": {
            "start": str(calendar[0]),
            "end": str(calendar[-1]),
            "times": len(calendar),
            "bars_per_year": ppy,
            "symbols": symbols,
            "weighting": "equal-weight sleeves, 1/N of the capital per symbol, no rebalancing",
        },
        "baskets": {k: b.metrics for k, b in baskets.items()},
        "per_symbol": {
            k: {
                s: {m: r.metrics.get(m) for m in ("total_return", "sharpe", "n_trades")}
                for s, r in runs.items()
            }
            for k, runs in per_symbol.items()
        },
        "decision_reasons": {k: b.reasons for k, b in baskets.items() if b.reasons},
        "statistics": statistics,
        "verdicts": verdicts,
        "n_trials": distinct,
        "costs": dataclasses.asdict(config.costs),
    }
    for name in models:
        logger.info(
            "universe basket %s: Sharpe %.3f (deflated Sharpe %.3f over %d trials), placebo "
            "Sharpe %.3f, buy-and-hold %.3f: %s",
            name,
            baskets[name].metrics["sharpe"],
            statistics[name]["dsr"],
            distinct,
            baskets[f"placebo:{name}"].metrics["sharpe"],
            baskets["baseline:buy_and_hold"].metrics["sharpe"],
            verdicts[name],
        )
    curves = pd.DataFrame({k: b.equity for k, b in baskets.items()})
    curves.index.name = "timestamp"
    return evaluation, curves


def _verdict(sharpe_: float, dsr: float, placebo: float, hold: float, basket: Strategy) -> str:
    """One line a user can act on: is there evidence of an edge?"""
    if basket.metrics["n_trades"] == 0:
        return "no trades: the model gave no signal the strategy step would act on"
    if dsr < 0.95:
        return (
            f"no evidence of an edge: deflated Sharpe {dsr:.2f} < 0.95 "
            f"(Sharpe {sharpe_:.2f}, its placebo {placebo:.2f})"
        )
    if sharpe_ <= placebo:
        return (
            f"no edge: its placebo (shuffled timing) does as well ({placebo:.2f} >= {sharpe_:.2f})"
        )
    if sharpe_ <= hold:
        return f"significant but below buy-and-hold's Sharpe ({sharpe_:.2f} <= {hold:.2f})"
    return f"evidence of an edge: deflated Sharpe {dsr:.2f}, above its placebo and buy-and-hold"


def _oof_rows(train_summary: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The walk-forward table (per agent and scope) and its per-symbol breakdown."""
    overall, by_symbol = [], []
    for agent, block in train_summary["agents"].items():
        winner = block.get("winner", {})
        for scope in ("pooled", "per_symbol"):
            if scope not in block:
                continue
            s = block[scope]
            overall.append(
                {
                    "agent": agent,
                    "scope": scope,
                    "rows": s["rows"],
                    "log_loss": s["log_loss"],
                    "prior log_loss": s["prior_log_loss"],
                    "beats prior": s["beats_prior"],
                    "rank IC": s["rank_ic"],
                    "ICIR": s["icir"],
                    "IC times": s["times"],
                    "tied times": s["times_with_equal_scores"],
                }
            )
            for symbol, e in s["per_symbol"].items():
                by_symbol.append(
                    {
                        "agent": agent,
                        "symbol": symbol,
                        "scope": scope,
                        "log_loss": e["log_loss"],
                        "prior log_loss": e["prior_log_loss"],
                        "beats prior": e["beats_prior"],
                        "winner": winner.get("per_symbol", {}).get(symbol),
                    }
                )
    return _na(overall), _na(by_symbol)


def _na(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An undefined figure (null in the JSON) reads n/a in the report."""
    return [{k: "n/a" if v is None else v for k, v in row.items()} for row in rows]


def _meta_text(train_summary: dict[str, Any]) -> str:
    """The meta-agent per symbol and pooled, on its own out-of-sample rows."""
    from ai_trade_bot.evaluation.report import _table

    meta = train_summary.get("meta")
    if not meta:
        return ""
    rows = [
        {
            "scope": kind,
            "rows": meta[kind]["rows"],
            "log_loss": meta[kind]["log_loss"],
            "prior log_loss": meta[kind]["prior_log_loss"],
            "beats prior": meta[kind]["beats_prior"],
            "methods": ", ".join(f"{k}: {v}" for k, v in meta[kind]["methods"].items()),
        }
        for kind in ("pooled", "per_symbol")
        if kind in meta
    ]
    return (
        "<h2>Meta-agent, per symbol and pooled</h2><p>Stacked on each scope's out-of-fold "
        "agent outputs by a second walk-forward (pooled: purge and embargo in whole times); "
        "the method chosen by log-loss on those out-of-sample rows among the ones that beat "
        "the prior, else the prior.</p>"
        + _table(rows, ["scope", "rows", "log_loss", "prior log_loss", "beats prior", "methods"])
    )


def _winner_text(train_summary: dict[str, Any]) -> str:
    import html

    lines = []
    for agent, block in train_summary["agents"].items():
        winner = block.get("winner", {})
        by_loss = html.escape(str(winner.get("log_loss")))
        by_ic = html.escape(str(winner.get("rank_ic") or "n/a"))
        lines.append(
            f"<li>{html.escape(agent)}: lower log-loss <b>{by_loss}</b>, higher rank IC "
            f"<b>{by_ic}</b></li>"
        )
    return "<p>Which won (the prior when no fit beats it):</p><ul>" + "".join(lines) + "</ul>"


def render_universe_report(
    evaluation: dict[str, Any],
    curves: pd.DataFrame,
    train_summary: dict[str, Any],
    data_quality: dict[str, Any],
    exposure: dict[str, pd.DataFrame] | None = None,
) -> str:
    """The universe's report as one self-contained HTML string."""
    import html

    import matplotlib.pyplot as plt

    from ai_trade_bot.evaluation.report import STYLE, _png, _table

    overall, by_symbol = _oof_rows(train_summary)
    stats = evaluation["statistics"]
    basket_rows: list[dict[str, Any]] = []
    for name, m in evaluation["baskets"].items():
        s = stats.get(name, {})
        basket_rows.append(
            {
                "strategy": name,
                "Sharpe": m["sharpe"],
                "deflated Sharpe (P)": s.get("dsr"),
                "PSR": s.get("psr"),
                "total return": m["total_return"],
                "max drawdown": m["max_drawdown"],
                "trades": m["n_trades"],
                "exposure": m["exposure"],
            }
        )
    strategies = list(evaluation["per_symbol"])
    symbol_rows = [
        {"symbol": sym, **{k: evaluation["per_symbol"][k][sym]["sharpe"] for k in strategies}}
        for sym in evaluation["span"]["symbols"]
    ]
    book_html = _book_section(evaluation.get("portfolio"), curves, exposure or {})
    sleeves = [c for c in curves.columns if not c.startswith("book:")]
    fig, ax = plt.subplots(figsize=(11, 4))
    for name in sleeves:
        width = 1.0 if name.startswith(("placebo:", "baseline:")) else 2.2
        ax.plot(curves.index, curves[name] / curves[name].iloc[0], label=name, lw=width)
    ax.set_title("Equal-weight basket on the held-out span (start = 1)")
    ax.legend(fontsize=7, ncol=3)
    figure = _png(fig)
    verdicts = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
        for k, v in evaluation["verdicts"].items()
    )
    book_block = evaluation.get("portfolio") or {}
    book_verdict = (
        f"<li><b>the book ({html.escape(book_block['deployed']['name'])})</b>: "
        f"{html.escape(book_block['verdict'])}</li>"
        if book_block
        else ""
    )
    span = evaluation["span"]
    dropped = data_quality.get("dropped", {})
    dropped_text = (
        "".join(
            f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in dropped.items()
        )
        if dropped
        else "<li>none</li>"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>ai_trade_bot universe report</title><style>{STYLE}</style></head><body>
<h1>Universe report: {len(span["symbols"])} symbols</h1>
<div class="disclaimer">{html.escape(evaluation["disclaimer"])}</div>
<div class="headline"><ul>{book_verdict}{verdicts}</ul>
Deflated Sharpe: the probability that the true Sharpe beats the best of
{evaluation["n_trials"]} distinct baskets evaluated here by luck. The placebo trades the
same outputs in a shuffled order of time.</div>
<h2>Data</h2><p>Symbols: {html.escape(", ".join(span["symbols"]))}.
Held-out span {html.escape(span["start"])} to {html.escape(span["end"])} ({span["times"]}
times); {html.escape(span["weighting"])}.</p><p>Dropped symbols:</p><ul>{dropped_text}</ul>
<h2>Walk-forward, out of fold: pooled against per symbol</h2>
<p>Log-loss against the class prior of each symbol's own training rows; rank IC per time
(Spearman across symbols of P(up) - P(down) with the next return), its mean and ICIR per
bar, as Qlib reports them. A model that outputs its prior ties every symbol at every time
and has no rank IC.</p>
{
        _table(
            overall,
            [
                "agent",
                "scope",
                "rows",
                "log_loss",
                "prior log_loss",
                "beats prior",
                "rank IC",
                "ICIR",
                "IC times",
                "tied times",
            ],
        )
    }
{
        _table(
            by_symbol,
            ["agent", "symbol", "scope", "log_loss", "prior log_loss", "beats prior", "winner"],
        )
    }
{_meta_text(train_summary)}
{book_html}
<h2>Held-out span: each fit as equal-weight sleeves (reference)</h2>
{
        _table(
            _na(basket_rows),
            [
                "strategy",
                "Sharpe",
                "deflated Sharpe (P)",
                "PSR",
                "total return",
                "max drawdown",
                "trades",
                "exposure",
            ],
        )
    }
{figure}
<h2>Held-out span: Sharpe per symbol</h2>
{_table(symbol_rows, ["symbol", *strategies])}
</body></html>"""


def _book_section(
    block: dict[str, Any] | None, curves: pd.DataFrame, exposure: dict[str, pd.DataFrame]
) -> str:
    """The report's section on the universe traded as one book."""
    if not block:
        return ""
    import html

    import matplotlib.pyplot as plt

    from ai_trade_bot.evaluation.report import _png, _table

    stats = block["statistics"]
    rows = [{"book": f"book: {block['deployed']['name']}", **block["metrics"]}]
    rows.append({"book": "placebo (outputs shuffled in time per symbol)", **block["placebo"]})
    rows += [{"book": k, **m} for k, m in block["baselines"].items()]
    for row in rows:
        row.pop("limits_bound", None)
    columns = [
        "book", "sharpe", "total_return", "max_drawdown", "n_trades", "exposure",
        "max_gross_exposure", "turnover_per_year", "cost_paid", "gross_return_before_costs",
        "expected_edge", "expected_edge_after_costs",
    ]  # fmt: skip
    limit_rows = [{"limit": k, "bound (time x symbol)": v}
                  for k, v in block["metrics"]["limits_bound"].items()]  # fmt: skip
    lim = block["limits"]
    limit_text = ", ".join(
        f"{k} {lim[k]}"
        for k in (
            "max_position_size",
            "max_risk_per_trade",
            "max_single_sector",
            "max_correlated_exposure",
            "max_total_exposure",
            "max_portfolio_risk",
            "max_daily_loss",
            "max_daily_trades",
        )
    )
    sector_rows = [{"sector": k, **v} for k, v in block["per_sector"].items()]
    symbol_rows = [{"symbol": k, **v} for k, v in block["per_symbol"].items()]
    validation = block["validation"]
    trials = sorted(validation["trials"], key=lambda r: -np.nan_to_num(r["sharpe"], nan=-9))
    figures = []
    book_curves = [c for c in curves.columns if c.startswith("book:")]
    fig, ax = plt.subplots(figsize=(11, 4))
    for name in book_curves:
        series = curves[name].dropna()
        if len(series):
            ax.plot(series.index, series / series.iloc[0], label=name,
                    lw=2.2 if name == f"book:{block['deployed']['name']}" else 1.0)  # fmt: skip
    ax.set_title("The book on the held-out span (start = 1)")
    ax.legend(fontsize=7)
    figures.append(_png(fig))
    for key, title in (
        ("sector", "by sector"),
        ("cluster", "by correlation cluster (largest first)"),
    ):
        frame = exposure.get(key)
        if frame is None or frame.empty:
            figures.append(f"<p>Gross exposure {html.escape(title)}: never held.</p>")
            continue
        fig, ax = plt.subplots(figsize=(11, 2.8))
        ax.stackplot(frame.index, frame.T.to_numpy(), labels=list(frame.columns))
        ax.set_title(f"Gross exposure {title}, fraction of equity")
        ax.legend(fontsize=7, loc="upper left")
        figures.append(_png(fig))
    pbo = stats.get("pbo")
    pbo_text = (
        f"{pbo:.2f}"
        if pbo is not None and np.isfinite(pbo)
        else (f"undefined ({html.escape(str(stats.get('pbo_undefined', '')))})")
    )
    return f"""<h2>Held-out span: the universe as one book</h2>
<p>{html.escape(block["construction"])}: {html.escape(limit_text)}. Deployed:
<b>{html.escape(block["deployed"]["name"])}</b> (model | construction method | entry margin),
chosen by its Sharpe on the trainer's out-of-fold rows
({html.escape(validation["span"]["start"])} to {html.escape(validation["span"]["end"])},
{validation["span"]["times"]} times, {len(trials)} trials), never on this span.</p>
<p><b>{html.escape(block["verdict"])}</b>. Deflated Sharpe {stats["dsr"]:.3f} over
{block["n_trials"]} trials ({html.escape(block["n_trials_rule"])}); PBO {pbo_text}.</p>
{_table(_na(rows), columns)}
<p>Expected edge: what the model's own expected returns promised for the positions held,
summed over the span; after costs: less the fees, spread and slippage paid. Cost paid,
returns and edges are fractions of the initial equity.</p>
{"".join(figures)}
<h3>How often each limit bound</h3>
{_table(limit_rows, ["limit", "bound (time x symbol)"]) if limit_rows else "<p>No limit bound.</p>"}
<h3>Per sector and per symbol</h3>
{_table(_na(sector_rows), ["sector", "pnl", "n_trades", "mean_gross_exposure"])}
{_table(_na(symbol_rows), ["symbol", "pnl", "n_trades", "win_rate", "mean_gross_exposure"])}
<h3>Validation trials (best 10 by Sharpe)</h3>
{_table(_na(trials[:10]), ["model", "method", "margin", "sharpe", "total_return", "n_trades"])}
"""
