"""A universe traded as one book: construction chosen on validation rows, then the
held-out span evaluated once, with honest statistics.

1. **Validation.** Every model (agent and scope) is traded as a book on the trainer's
   out-of-fold rows, on the times every model has rows for (the same validation rows for
   all), with every (construction method, entry margin) of ``params:portfolio``. The
   champion is the (model, method, margin) with the best validation Sharpe.
2. **The held-out span**, once: every trial again (so the deflated Sharpe and PBO can count
   them), the champion, its placebo (each symbol's outputs shuffled in time: the same
   positions without their timing), and the baselines: an equal-weight buy-and-hold of the
   basket (rebalanced through the same book and costs, not reshaped by the risk rules),
   an SMA crossover per symbol at equal weight, and each symbol's best single agent
   (its walk-forward winner) through the champion's construction.
3. **Honesty.** The deflated Sharpe counts every trial across symbols x models x methods x
   margins; PBO is computed over the held-out returns of the same trials. The report shows
   the skill that survives costs (the model's expected edge, the cost paid, the turnover),
   exposure over time by sector and by correlation cluster, and how often each limit bound.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.backtest.metrics import return_metrics
from ai_trade_bot.backtest.signals import crossover_positions, rolling_mean
from ai_trade_bot.evaluation.honesty import honest_statistics
from ai_trade_bot.evaluation.settings import DISCLAIMER, EvaluateConfig
from ai_trade_bot.evaluation.strategies import Span, Strategy, make_span, strategy_targets
from ai_trade_bot.portfolio.construct import (
    PortfolioConfig,
    book_targets,
    expected_return,
    trailing_sigma,
)
from ai_trade_bot.portfolio.core import PortfolioResult, run_portfolio
from ai_trade_bot.portfolio.limits import RiskLimits

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("down", "flat", "up", "confidence", "informative", "magnitude")
LOOSE = dict(
    max_risk_per_trade=10.0,
    max_position_size=10.0,
    max_total_exposure=10.0,
    max_correlated_exposure=10.0,
    max_single_sector=10.0,
    max_portfolio_risk=10.0,
    max_daily_loss=10.0,
    max_daily_trades=1_000_000,
    dd_reduce_start=1.0,
    dd_reduce_end=1.0,
)


@dataclass
class Panel:
    """A span of many symbols on the union of their times."""

    bars: dict[str, pd.DataFrame]  # each symbol's clean candles in the span
    spans: dict[str, Span]  # for the strategy step (indicators from the full history)
    index: pd.DatetimeIndex
    close: pd.DataFrame
    atr: pd.DataFrame
    sigma: pd.DataFrame  # trailing volatility of log returns, past bars only
    slip: pd.DataFrame
    fee: float
    labels: dict[str, pd.Series]
    ppy: float

    @property
    def symbols(self) -> list[str]:
        return list(self.close.columns)

    def cost(self) -> pd.DataFrame:
        """The round trip's cost as a fraction of price: two fees and two slippages."""
        return 2.0 * (self.fee + self.slip)


def make_panel(
    candles: pd.DataFrame,
    labels: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    config: EvaluateConfig,
    portfolio: PortfolioConfig,
) -> Panel:
    """The clean candles of every symbol from ``start`` to ``end`` with their ATR, trailing
    volatility and slippage; indicators from each symbol's full history."""
    labels = labels.set_index(["timestamp", "symbol"])["direction"]
    bars, spans, directions, sigmas = {}, {}, {}, {}
    for symbol in sorted(candles["symbol"].unique()):
        own = candles[(candles["symbol"] == symbol) & ~candles["missing"].astype(bool)]
        own = own.set_index("timestamp").sort_index()[["open", "high", "low", "close", "volume"]]
        span = make_span(own, start, end, config)
        if span.bars.empty:
            continue
        spans[symbol] = span
        bars[symbol] = span.bars
        known = labels.index.get_level_values("symbol") == symbol
        directions[symbol] = labels[known].droplevel("symbol")  # (none: no label known yet)
        sigma = trailing_sigma(own[["close"]], portfolio.vol_window)["close"]
        sigmas[symbol] = sigma.reindex(span.bars.index)
    index = pd.DatetimeIndex(sorted(set().union(*(b.index for b in bars.values()))))
    close = pd.DataFrame({s: b["close"] for s, b in bars.items()}).reindex(index)
    atr = pd.DataFrame({s: pd.Series(spans[s].atr, index=bars[s].index) for s in bars}).reindex(
        index
    )
    slip = pd.DataFrame(
        np.broadcast_to(config.costs.slip((atr / close).to_numpy()), close.shape),
        index=index,
        columns=close.columns,
    )
    ppy = float(np.median([s.periods_per_year for s in spans.values()]))
    return Panel(
        bars, spans, index, close, atr, pd.DataFrame(sigmas).reindex(index), slip,
        config.costs.fee(), directions, ppy,
    )  # fmt: skip


def wide_outputs(rows: pd.DataFrame, panel: Panel) -> dict[str, pd.DataFrame]:
    """One model's long output rows as (time x symbol) frames per output column."""
    frame = rows.set_index(["timestamp", "symbol"])
    return {
        col: frame[col].unstack("symbol").reindex(index=panel.index, columns=panel.symbols)
        for col in OUTPUT_COLUMNS
        if col in frame.columns
    }


@dataclass
class Book:
    """One book traded on a span: its targets, the execution core's result and metrics."""

    name: str
    targets: pd.DataFrame
    result: PortfolioResult
    metrics: dict[str, Any]

    @property
    def returns(self) -> pd.Series:
        return self.result.returns

    def as_strategy(self) -> Strategy:
        """The book as a :class:`Strategy` (what the honest statistics read)."""
        return Strategy(
            self.name,
            pd.Series(np.nan, index=self.result.equity.index),
            self.result.equity,
            self.returns,
            self.metrics,
            self.result.trades,
        )


def stop_distance(panel: Panel, portfolio: PortfolioConfig) -> pd.DataFrame:
    """Each symbol's planned stop distance as a fraction of its price (NaN: no stop)."""
    if portfolio.stop == "percent":
        return pd.DataFrame(portfolio.stop_value, index=panel.index, columns=panel.symbols)
    if portfolio.stop == "atr":
        return portfolio.stop_value * panel.atr / panel.close
    if portfolio.stop == "forecast":
        return portfolio.stop_value * panel.sigma
    return pd.DataFrame(np.nan, index=panel.index, columns=panel.symbols)


def trade_book(
    name: str,
    targets: pd.DataFrame,
    panel: Panel,
    config: EvaluateConfig,
    limits: RiskLimits,
    portfolio: PortfolioConfig,
    *,
    confidence: pd.DataFrame | None = None,
    ev: pd.DataFrame | None = None,
    sigma: pd.DataFrame | None = None,
) -> Book:
    """Trade ``targets`` through the execution core with the book's limits and costs."""
    engine = portfolio.engine(config.engine)
    # the forecast stop runs as the engine's ATR stop on the forecast's price units
    atr = book_atr(panel, portfolio, panel.sigma if sigma is None else sigma)
    result = run_portfolio(
        panel.bars, targets.reindex(index=panel.index, columns=panel.symbols), engine, limits,
        confidence=confidence, atr=atr, fee=panel.fee, slip=panel.slip,
    )  # fmt: skip
    return Book(name, targets, result, book_metrics(result, panel, ev))


def book_metrics(
    result: PortfolioResult, panel: Panel, ev: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Returns, trades, exposure, turnover, the cost paid and the model's expected edge
    (all as fractions of the initial equity), and how often each limit bound."""
    equity = result.equity
    cash0 = float(equity.iloc[0])
    trades = result.trades
    years = max(len(equity) / panel.ppy, 1e-9)
    slip_paid = result.traded_notional * float(np.nanmean(panel.slip.to_numpy()))
    cost = (float(trades["fees"].sum()) + slip_paid) / cash0
    gross = result.weights.abs().sum(axis=1)
    metrics: dict[str, Any] = return_metrics(equity, panel.ppy) | {
        "n_trades": len(trades),
        "exposure": float(gross.mean()),
        "max_gross_exposure": float(gross.max()),
        "turnover_per_year": float(result.traded_notional / equity.mean() / years),
        "cost_paid": cost,
        "gross_return_before_costs": float(equity.iloc[-1] / cash0 - 1.0 + cost),
        "limits_bound": result.limit_counts(),
    }
    if ev is not None:  # what the model expected of the positions it held, bar by bar
        held = result.weights.shift(1).fillna(0.0)
        expected = float((held * ev.reindex_like(held).shift(1).fillna(0.0)).sum().sum())
        metrics |= {"expected_edge": expected, "expected_edge_after_costs": expected - cost}
    return metrics


def model_targets(
    outputs: dict[str, pd.DataFrame],
    method: str,
    margin: float,
    panel: Panel,
    config: EvaluateConfig,
    limits: RiskLimits,
    portfolio: PortfolioConfig,
) -> dict[str, pd.DataFrame]:
    """One model's target fractions for one (method, margin), with what the book reads
    beside them (``targets, confidence, ev, sigma``): the backtest's and the live book
    runner's one path from outputs to targets."""
    magnitude = outputs.get("magnitude")
    if magnitude is not None and not np.isfinite(magnitude.to_numpy(np.float64)).any():
        magnitude = None
    ev = expected_return(outputs["down"], outputs["up"], magnitude, panel.sigma)
    confidence = outputs["confidence"]
    sigma = (
        panel.sigma if magnitude is None else (magnitude / np.sqrt(2 / np.pi)).fillna(panel.sigma)
    )
    strategy = None
    if method == "strategy":
        gate = config.decision.confidence_gate
        columns = {}
        for s in panel.symbols:
            out = pd.DataFrame({k: v[s] for k, v in outputs.items()}).dropna(how="all")
            out = out.reindex(panel.bars[s].index)
            columns[s], _ = strategy_targets(
                out, panel.spans[s], panel.labels[s], config, gate=gate
            )
        strategy = pd.DataFrame(columns).reindex(panel.index)
    targets = book_targets(
        method, margin, ev=ev, confidence=confidence, sigma=sigma, cost=panel.cost(),
        limits=limits, config=portfolio, stop_distance=stop_distance(panel, portfolio),
        strategy_targets=strategy,
    )  # fmt: skip
    return {"targets": targets, "confidence": confidence, "ev": ev, "sigma": sigma}


def model_book(
    name: str,
    outputs: dict[str, pd.DataFrame],
    method: str,
    margin: float,
    panel: Panel,
    config: EvaluateConfig,
    limits: RiskLimits,
    portfolio: PortfolioConfig,
) -> Book:
    """One model's book with one (method, margin) (:func:`model_targets`, traded)."""
    made = model_targets(outputs, method, margin, panel, config, limits, portfolio)
    return trade_book(
        name, made["targets"], panel, config, limits, portfolio,
        confidence=made["confidence"], ev=made["ev"], sigma=made["sigma"],
    )  # fmt: skip


def book_atr(panel: Panel, portfolio: PortfolioConfig, sigma: pd.DataFrame) -> pd.DataFrame:
    """What the engine's ATR stop reads: the forecast in price units (``forecast``), else
    the ATR; each symbol's last value carried over its missing bars (never a later one)."""
    atr = sigma * panel.close if portfolio.stop == "forecast" else panel.atr
    return atr.ffill()


def _shuffled(outputs: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    """Each symbol's output rows in a random order of its own times (the placebo)."""
    rng = np.random.default_rng(seed)
    any_frame = next(iter(outputs.values()))
    out = {k: v.copy() for k, v in outputs.items()}
    for s in any_frame.columns:
        rows = np.flatnonzero(any_frame[s].notna().to_numpy())
        order = rng.permutation(rows)
        for k in out:
            values = out[k][s].to_numpy(copy=True)
            values[rows] = outputs[k][s].to_numpy()[order]
            out[k][s] = values
    return out


def baseline_books(
    panel: Panel, config: EvaluateConfig, limits: RiskLimits, portfolio: PortfolioConfig
) -> dict[str, Book]:
    """Equal-weight buy-and-hold of the basket (rebalanced through the book, not reshaped
    by the risk rules) and an SMA crossover per symbol at equal weight."""
    n = len(panel.symbols)
    has_bar = panel.close.notna()
    hold = has_bar.astype(float) / n
    plain = dataclasses.replace(limits, **LOOSE)
    no_stop = dataclasses.replace(portfolio, stop="none", trailing=False)
    books = {
        "baseline:buy_and_hold": trade_book(
            "baseline:buy_and_hold", hold, panel, config, plain, no_stop
        )
    }
    sma = {}
    for s in panel.symbols:
        close = panel.bars[s]["close"].to_numpy(np.float64)
        pos = crossover_positions(
            rolling_mean(close, config.sma_fast), rolling_mean(close, config.sma_slow), 1.0
        )
        sma[s] = pd.Series(pos, index=panel.bars[s].index)
    name = f"baseline:sma_{config.sma_fast}_{config.sma_slow}"
    weights = pd.DataFrame(sma).reindex(panel.index) * (limits.max_total_exposure / n)
    books[name] = trade_book(name, weights, panel, config, limits, portfolio)
    return books


def _group_rows(book: Book, groups: dict[str, str]) -> dict[str, dict[str, float]]:
    """P&L (a fraction of the initial equity), trades, win rate and mean gross exposure
    per group of symbols (``groups``: symbol -> group)."""
    cash0 = float(book.result.equity.iloc[0])
    trades = book.result.trades.assign(group=lambda f: f["symbol"].map(groups))
    exposure = book.result.exposure_by(groups).mean()
    out = {}
    for group in sorted(set(groups.values())):
        mine = trades[trades["group"] == group]
        out[group] = {
            "pnl": float(mine["pnl"].sum() / cash0),
            "n_trades": len(mine),
            "win_rate": float((mine["pnl"] > 0).mean()) if len(mine) else 0.0,
            "mean_gross_exposure": float(exposure.get(group, 0.0)),
        }
    return out


def _sector_rows(book: Book, limits: RiskLimits) -> dict[str, dict[str, float]]:
    sectors = {s: limits.sectors.get(s, s) for s in book.result.weights.columns}
    rows = _group_rows(book, sectors)
    return {k: {m: v for m, v in row.items() if m != "win_rate"} for k, row in rows.items()}


def _symbol_rows(book: Book) -> dict[str, dict[str, float]]:
    return _group_rows(book, {s: s for s in book.result.weights.columns})


def select_on_validation(
    oof: pd.DataFrame,
    candles: pd.DataFrame,
    labels: pd.DataFrame,
    config: EvaluateConfig,
    limits: RiskLimits,
    portfolio: PortfolioConfig,
) -> dict[str, Any]:
    """Every (model, method, margin) book on the out-of-fold rows every model covers; the
    champion is the best validation Sharpe (ties: the earlier model, method, margin)."""
    frame = oof.assign(kind=np.where(oof["scope"] == "pooled", "pooled", "per_symbol"))
    frame["model"] = frame["agent"] + ":" + frame["kind"]
    times = None
    for _, rows in frame.groupby("model"):
        own = set(pd.DatetimeIndex(rows["timestamp"]))
        times = own if times is None else times & own
    if not times:
        raise ValueError("portfolio: the models' out-of-fold rows share no time to compare on")
    common = pd.DatetimeIndex(sorted(times))
    panel = make_panel(candles, labels, common[0], common[-1], config, portfolio)
    table = []
    for model, rows in sorted(frame.groupby("model")):
        outputs = wide_outputs(rows[rows["timestamp"].isin(common)], panel)
        for method, margin in portfolio.trials():
            book = model_book(model, outputs, method, margin, panel, config, limits, portfolio)
            table.append(
                {
                    "model": model,
                    "method": method,
                    "margin": margin,
                    "sharpe": float(book.metrics["sharpe"]),
                    "total_return": float(book.metrics["total_return"]),
                    "n_trades": int(book.metrics["n_trades"]),
                }
            )
    best = max(table, key=lambda r: (np.nan_to_num(r["sharpe"], nan=-np.inf), -table.index(r)))
    return {
        "span": {"start": str(common[0]), "end": str(common[-1]), "times": len(common)},
        "trials": table,
        "champion": {k: best[k] for k in ("model", "method", "margin", "sharpe")},
    }


def evaluate_portfolio(
    outputs: pd.DataFrame,
    oof: pd.DataFrame,
    candles: pd.DataFrame,
    labels: pd.DataFrame,
    train_summary: dict[str, Any],
    config: EvaluateConfig,
    limits: RiskLimits,
    portfolio: PortfolioConfig,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, pd.DataFrame]]:
    """The module's steps 1-3. Returns the ``portfolio`` block of the evaluation, the
    equity curves of the champion, its placebo and the baselines (``book:`` names), and
    the champion's exposure over time by sector and by correlation cluster."""
    validation = select_on_validation(oof, candles, labels, config, limits, portfolio)
    champion = validation["champion"]
    frame = outputs.assign(kind=np.where(outputs["scope"] == "pooled", "pooled", "per_symbol"))
    frame["model"] = frame["agent"] + ":" + frame["kind"]
    times = pd.DatetimeIndex(frame["timestamp"])
    panel = make_panel(candles, labels, times.min(), times.max(), config, portfolio)
    by_model = {m: wide_outputs(rows, panel) for m, rows in frame.groupby("model")}
    trials: dict[str, Book] = {}
    for model, outs in sorted(by_model.items()):
        for method, margin in portfolio.trials():
            name = f"{model}|{method}|{margin:g}"
            trials[name] = model_book(name, outs, method, margin, panel, config, limits, portfolio)
    deployed = f"{champion['model']}|{champion['method']}|{champion['margin']:g}"
    book = trials[deployed]
    method, margin = champion["method"], float(champion["margin"])
    placebo = model_book(
        "placebo:" + deployed, _shuffled(by_model[champion["model"]], config.seed + 7919),
        method, margin, panel, config, limits, portfolio,
    )  # fmt: skip
    baselines = baseline_books(panel, config, limits, portfolio)
    best_single = _best_single(by_model, train_summary, panel.symbols)
    if best_single is not None:
        name = "baseline:best_single_agent"
        baselines[name] = model_book(
            name, best_single, method, margin, panel, config, limits, portfolio
        )
    trial_returns = pd.DataFrame({k: b.returns for k, b in trials.items()})
    n_trials = len(panel.symbols) * len(trials)
    # a book that never traded has a Sharpe of 0 by construction, not by luck: it counts
    # as a trial, but does not widen the spread of Sharpe the deflation attributes to luck
    traded = trial_returns.loc[:, (trial_returns.fillna(0.0) != 0.0).any()]
    stats = honest_statistics(
        book.as_strategy(), n_trials, trial_returns, config, panel.ppy,
        sharpe_trials=traded if traded.shape[1] else None,
    )  # fmt: skip
    hold = baselines["baseline:buy_and_hold"].metrics["sharpe"]
    verdict = _verdict(book, stats["dsr"], placebo.metrics["sharpe"], hold)
    curves = pd.DataFrame(
        {
            f"book:{deployed}": book.result.equity,
            "book:placebo": placebo.result.equity,
            **{f"book:{k}": b.result.equity for k, b in baselines.items()},
        }
    )
    sectors = {s: limits.sectors.get(s, s) for s in panel.symbols}
    exposure = {
        "sector": book.result.exposure_by(sectors),
        "cluster": book.result.exposure_by(book.result.clusters),
    }
    block = {
        "disclaimer": DISCLAIMER,
        "construction": "one book with shared cash and the book's limits (params:risk)",
        "limits": dataclasses.asdict(limits),
        "validation": validation,
        "deployed": {"name": deployed, **champion},
        "span": {
            "start": str(panel.index[0]),
            "end": str(panel.index[-1]),
            "times": len(panel.index),
            "symbols": panel.symbols,
        },
        "metrics": book.metrics,
        "statistics": stats,
        "n_trials": n_trials,
        "n_trials_rule": "symbols x models x methods x margins evaluated on the held-out span",
        "placebo": placebo.metrics,
        "baselines": {k: b.metrics for k, b in baselines.items()},
        "trials": {k: _brief(b.metrics) for k, b in trials.items()},
        "per_symbol": _symbol_rows(book),
        "per_sector": _sector_rows(book, limits),
        "verdict": verdict,
    }
    logger.info(
        "universe book %s: Sharpe %.3f (deflated Sharpe %.3f over %d trials, PBO %.2f), "
        "placebo %.3f, equal-weight buy-and-hold %.3f: %s",
        deployed, book.metrics["sharpe"], stats["dsr"], n_trials, stats.get("pbo", np.nan),
        placebo.metrics["sharpe"], hold, verdict,
    )  # fmt: skip
    return block, curves, exposure


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("sharpe", "total_return", "max_drawdown", "n_trades", "exposure", "cost_paid")
    return {k: metrics.get(k) for k in keys}


def _best_single(
    by_model: dict[str, dict[str, pd.DataFrame]], train_summary: dict[str, Any], symbols
) -> dict[str, pd.DataFrame] | None:
    """Each symbol's walk-forward winner among the single agents (pooled or its own fit;
    a symbol whose winner is its prior gets no output: it is not traded)."""
    columns: dict[str, dict[str, pd.Series]] = {}
    found = False
    for agent, block in train_summary.get("agents", {}).items():
        winners = block.get("winner", {}).get("per_symbol", {})
        for s in symbols:
            kind = winners.get(s)
            model = f"{agent}:{kind}"
            if model in by_model and s not in columns.get("down", {}):
                found = True
                for col, frame in by_model[model].items():
                    columns.setdefault(col, {})[s] = frame[s]
        break  # the first agent (the universe's single agents are listed in train order)
    if not found:
        return None
    any_model = next(iter(by_model.values()))
    index = next(iter(any_model.values())).index
    return {
        col: pd.DataFrame(parts).reindex(index=index, columns=symbols)
        for col, parts in columns.items()
    }


def _verdict(book: Book, dsr: float, placebo: float, hold: float) -> str:
    """One line a user can act on."""
    s = book.metrics["sharpe"]
    if book.metrics["n_trades"] == 0:
        return "no trades: no symbol's expected return cleared its costs and margin"
    if not dsr >= 0.95:
        return (
            f"no evidence of an edge: deflated Sharpe {dsr:.2f} < 0.95 (Sharpe {s:.2f}, "
            f"placebo {placebo:.2f}, equal-weight buy-and-hold {hold:.2f})"
        )
    if s <= placebo:
        return f"no edge: its placebo (shuffled timing) does as well ({placebo:.2f} >= {s:.2f})"
    if s <= hold:
        return f"significant but below equal-weight buy-and-hold ({s:.2f} <= {hold:.2f})"
    return f"evidence of an edge: deflated Sharpe {dsr:.2f}, above its placebo and buy-and-hold"
