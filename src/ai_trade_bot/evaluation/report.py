"""A self-contained HTML report (figures embedded as PNG data URIs)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ai_trade_bot.backtest.metrics import (
    drawdown,
    equity_returns,
    periods_per_year,
    sharpe,
)

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.disclaimer{background:#fff4e5;border:1px solid #f0a020;padding:1em;margin:1em 0}
.headline{background:#eef5ff;border:1px solid #7aa7e8;padding:1em}
img{max-width:100%}
"""


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _equity_figure(curves: pd.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(11, 4))
    for name in curves.columns:
        width = 2.2 if name == "meta_agent" else 1.0
        ax.plot(curves.index, curves[name] / curves[name].iloc[0], label=name, lw=width)
    ax.set_title("Equity on the held-out test span (start = 1)")
    ax.legend(fontsize=7, ncol=3)
    return _png(fig)


def _drawdown_sharpe_figure(equity: pd.Series, window: int = 63) -> str:
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True)
    a1.fill_between(equity.index, drawdown(equity), 0, color="tab:red", alpha=0.4)
    a1.set_title("Meta-agent drawdown")
    r = pd.Series(equity_returns(equity), index=equity.index)
    ppy = periods_per_year(equity.index)
    rolling = r.rolling(window).apply(lambda x: sharpe(x, ppy), raw=True)
    a2.plot(rolling.index, rolling, color="tab:blue")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_title(f"Rolling {window}-bar Sharpe (annualised, {ppy:.0f} bars a year)")
    return _png(fig)


def _calibration_confusion_figure(clf: dict[str, Any]) -> str:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    cal = clf["calibration_up"]
    a1.plot([0, 1], [0, 1], "k--", lw=0.7)
    a1.plot([c["predicted"] for c in cal], [c["observed"] for c in cal], "o-")
    a1.set_xlabel("predicted P(up)")
    a1.set_ylabel("observed share up")
    a1.set_title("Calibration (meta-agent)")
    cm = np.array(clf["confusion_matrix"])
    a2.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        a2.text(j, i, str(v), ha="center", va="center")
    a2.set_xticks(range(3), ["down", "flat", "up"])
    a2.set_yticks(range(3), ["down", "flat", "up"])
    a2.set_xlabel("predicted")
    a2.set_ylabel("true")
    a2.set_title("Confusion matrix")
    return _png(fig)


def _attribution_figure(evaluation: dict[str, Any], ablation: dict[str, Any]) -> str:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(evaluation["strategies"])
    a1.barh(names, [evaluation["strategies"][n]["sharpe"] for n in names])
    a1.set_title("Test-span Sharpe by strategy")
    keys = list(ablation)
    a2.barh(
        keys, [ablation[k]["log_loss"] - ablation[k].get("prior_log_loss", np.nan) for k in keys]
    )
    a2.axvline(0, color="k", lw=0.5)
    a2.set_title("Ablation (meta out-of-sample rows): log-loss minus the prior's")
    fig.tight_layout()
    return _png(fig)


def _agent_baseline_rows(train_summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for agent, summary in train_summary.items():
        base = summary.get("baseline") or {}
        if not base.get("baseline"):
            continue
        oof = summary["oof"]
        calibration = [c for c in summary.get("calibration", []) if c.get("fold") != "final"]
        trivial = sum(bool(c.get("outputs_prior") or c.get("plain_garch")) for c in calibration)
        rows.append(
            {
                "agent": agent,
                "metric": base["metric"],
                "out-of-fold": base["value"],
                "baseline": f"{base['baseline_value']:.4f} ({base['baseline']})",
                "ratio": base["ratio"],
                "beats baseline": (
                    "yes"
                    if base["beats_baseline"]
                    else "no (it is the baseline)"
                    if base.get("is_baseline")
                    else "NO"
                ),
                "accuracy": oof.get("accuracy", float("nan")),
                "prior accuracy": oof.get("prior_accuracy", float("nan")),
                "macro-F1": oof.get("macro_f1", float("nan")),
                "folds at baseline": f"{trivial} of {len(calibration)}",
            }
        )
    return rows


def _reason_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    reasons = evaluation.get("decision_reasons", {})
    names = sorted({r for counts in reasons.values() for r in counts})
    return [
        {
            "strategy": k,
            "trades": evaluation["strategies"][k]["n_trades"],
            **{n: counts.get(n, 0) for n in names},
        }
        for k, counts in reasons.items()
    ]


def render_report(
    evaluation: dict[str, Any],
    curves: pd.DataFrame,
    ablation: dict[str, Any],
    train_summary: dict[str, Any],
) -> str:
    """The whole report as one HTML string."""
    stats = evaluation["statistics"]
    meta = evaluation["strategies"]["meta_agent"]
    clf = evaluation["classification"]["meta_agent"]
    edge = stats["dsr"] >= 0.95 and clf["accuracy_ci"][0] > clf["chance_accuracy"]
    verdict = (
        "The deflated Sharpe and the accuracy interval both clear their bars."
        if edge
        else "No demonstrated edge: the deflated Sharpe is below 0.95 and/or the "
        "accuracy interval covers the chance level."
    )
    strategy_rows = [{"strategy": k, **v} for k, v in evaluation["strategies"].items()]
    clf_rows = [
        {
            "model": k,
            "accuracy": v["accuracy"],
            "acc CI": f"{v['accuracy_ci'][0]:.3f}-{v['accuracy_ci'][1]:.3f}",
            "chance": v["chance_accuracy"],
            "log_loss": v["log_loss"],
            "prior log_loss": v["prior_log_loss"],
            "brier": v["brier"],
            "AUC up": v["auc"]["up"],
            "F1 up": v["f1"]["up"],
            "F1 down": v["f1"]["down"],
        }
        for k, v in evaluation["classification"].items()
    ]
    abl_rows = [
        {"candidate": k, **{m: v[m] for m in ("accuracy", "log_loss", "brier", "prior_log_loss")}}
        for k, v in ablation.items()
    ]
    sel = evaluation["meta_selection"]
    selection_rows = [
        {
            "method": m,
            "validation log_loss": v,
            "beats prior": "prior" if m == "prior" else ("yes" if m in sel["eligible"] else "no"),
            "chosen": "<-" if m == sel["method"] else "",
        }
        for m, v in sorted(sel["validation_log_loss"].items(), key=lambda kv: kv[1])
    ]
    reason_rows = _reason_rows(evaluation)
    reason_columns = list(reason_rows[0]) if reason_rows else ["strategy"]
    agent_rows = _agent_baseline_rows(train_summary)
    span = evaluation["test_span"]
    parts = [
        f"<html><head><meta charset='utf-8'><title>ai_trade_bot evaluation</title>"
        f"<style>{STYLE}</style></head><body>",
        "<h1>ai_trade_bot: walk-forward evaluation</h1>",
        f"<div class='disclaimer'><b>Disclaimer.</b> {html.escape(evaluation['disclaimer'])}</div>",
        f"<div class='headline'><b>Held-out test span</b> {span['start']} to {span['end']} "
        f"({span['bars']} bars, every clean candle; {span['bars_with_model_output']} with a "
        f"complete model output; on the rest the strategy holds, making no new entry, as "
        f"the live runner does without a model; "
        f"{span['bars_per_year']:.0f} bars a year), evaluated once. "
        f"Meta-agent: <b>{sel['method']}</b> with confidence gate "
        f"{sel['confidence_gate']}, chosen on the validation rows "
        f"({sel['validation_start']} to {sel['validation_end']}): "
        f"{html.escape(sel['reason'])}.<br>"
        f"Sharpe {meta['sharpe']:.3f} (95% bootstrap {stats['sharpe_ci'][0]:.2f} to "
        f"{stats['sharpe_ci'][1]:.2f}); probabilistic Sharpe {stats['psr']:.3f}; "
        f"<b>deflated Sharpe {stats['dsr']:.3f}</b> over {evaluation['n_trials']} distinct "
        f"configurations (of {evaluation.get('n_configurations', evaluation['n_trials'])}) "
        f"tried; {_pbo_text(stats)}.{_short_span_text(span)} Accuracy {clf['accuracy']:.3f} "
        f"(95% CI {clf['accuracy_ci'][0]:.3f} to {clf['accuracy_ci'][1]:.3f}; chance "
        f"{clf['chance_accuracy']:.3f}; prior {clf['prior_accuracy']:.3f}).<br>"
        f"<b>{verdict}</b></div>",
        "<h2>Equity against the baselines</h2>",
        _equity_figure(curves),
        _drawdown_sharpe_figure(curves["meta_agent"]),
        "<h2>Metrics (same span, same costs)</h2>",
        _table(
            strategy_rows,
            [
                "strategy",
                "total_return",
                "annual_return",
                "volatility",
                "sharpe",
                "sortino",
                "calmar",
                "max_drawdown",
                "n_trades",
                "win_rate",
                "profit_factor",
                "avg_trade_return",
                "exposure",
                "turnover_per_year",
            ],
        ),
        "<h2>Why the strategies traded, or did not</h2>",
        "<p>Decision-layer reasons counted over every bar of the test span: <i>model</i> "
        "(a signal passed every gate), <i>no_edge</i> (probabilities below the buy/sell "
        "thresholds), <i>confidence_gate</i>, <i>disagreement_gate</i>, <i>kill_switch</i> "
        "(rolling accuracy too low), <i>prior_only</i> (the model outputs the class prior, "
        "so it never trades) and <i>model_unavailable</i> (no complete model output: the "
        "position is held, no new entry). Each bar counts once, under the first rule that "
        "kept it from trading in that order (unavailable, prior, no edge, kill switch, "
        "gates): a gate is counted only where it blocked a signal. The RSI fallback "
        "baseline trades at most the fallback's own size (<i>fallback.max_position</i>), "
        "as <code>ai-trade-bot live --fallback rsi</code> does.</p>",
        _table(reason_rows, reason_columns),
        "<h2>Agents against their trivial baselines (out of fold, train)</h2>",
        "<p>Direction agents against the class prior of the rows each fold learned from "
        "(log-loss), the volatility agent against plain GARCH(1,1) (QLIKE). A fold 'at "
        "baseline' is one whose calibration chose the prior (or no MLP correction).</p>",
        _table(agent_rows, list(agent_rows[0]))
        if agent_rows
        else "<p>No agent with a baseline.</p>",
        "<h2>Meta-agent selection (validation rows)</h2>",
        _table(selection_rows, ["method", "validation log_loss", "beats prior", "chosen"]),
        "<h2>Classification</h2>",
        _table(clf_rows, list(clf_rows[0])),
        _calibration_confusion_figure(clf),
        "<h2>Per-agent attribution and ablation</h2>",
        _attribution_figure(evaluation, ablation),
        _table(abl_rows, ["candidate", "accuracy", "log_loss", "brier", "prior_log_loss"]),
        "<h2>Regime breakdown (meta-agent)</h2>",
        _table(
            evaluation["regimes"], ["regime", "bars", "mean_return", "sharpe_annual", "accuracy"]
        )
        if evaluation["regimes"]
        else "<p>No regime agent output.</p>",
        "<h2>Statistics</h2>",
        _table(
            [
                {"statistic": k, "value": v if not isinstance(v, list) else str(v)}
                for k, v in stats.items()
            ],
            ["statistic", "value"],
        ),
        f"<p>Costs: {html.escape(str(evaluation['costs']))}. Validation candidates: "
        f"{html.escape(str({k: round(v, 3) for k, v in sel['candidates'].items()}))}</p>",
        f"<div class='disclaimer'>{html.escape(evaluation['disclaimer'])}</div></body></html>",
    ]
    return "\n".join(parts)


def _pbo_text(stats: dict[str, Any]) -> str:
    """``PBO 0.42``, or why it has no value."""
    pbo = stats.get("pbo")
    if pbo is not None and np.isfinite(pbo):
        return f"PBO {pbo:.2f}"
    return f"PBO undefined ({html.escape(str(stats.get('pbo_undefined', 'not computed')))})"


SHORT_SPAN_DAYS = 90  # below this, annualised figures are extrapolations of a few weeks


def _short_span_text(span: dict[str, Any]) -> str:
    """A warning when the test span is too short for annualised figures to mean much."""
    days = (pd.Timestamp(span["end"]) - pd.Timestamp(span["start"])).total_seconds() / 86400
    if days >= SHORT_SPAN_DAYS:
        return ""
    return (
        f" <b>The test span covers {days:.1f} days:</b> every annualised figure here (Sharpe, "
        "annual return) scales those days to a year, and a span this short says little "
        "about a year; read the total return and the number of trades instead, or hold out a "
        f"longer span (at least {SHORT_SPAN_DAYS} days)."
    )
