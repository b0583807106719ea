"""Pooled and per-symbol models over a universe, on walk-forward folds split on time.

The model input of a universe is one frame of stacked rows indexed by (timestamp, symbol),
sorted by time then symbol. Folds are cut on the sorted unique times, so every symbol's
rows of a fold share its train, purge, embargo and test times, and each fold's rows are a
contiguous block of the stacked frame.

- ``pooled``: one model per agent and fold over every symbol's rows, with ``symbol_id`` as
  a feature. Only tabular agents (``Agent.row_local``) can be pooled: a sequence window,
  or a filter carried over all rows (GARCH, HMM), over stacked rows would mix symbols.
- ``per_symbol``: one model per agent, symbol and fold on that symbol's own rows.

Each (scope, agent, fold) is one pure task with a seed derived from the global seed; the
tasks run through :mod:`ai_trade_bot.training.fanout`. Every fold calibrates on its own
early-stopping rows (the single-symbol trainer also feeds a fold the raw outputs of the
folds before it; that makes the tasks depend on each other, so it is left out here).

Scores, on the out-of-fold rows, per symbol and over all of them:

- log-loss against the class prior of the same symbol's training rows (the trivial
  baseline);
- rank IC: at each time, the Spearman correlation across symbols between the score
  ``P(up) - P(down)`` and the next return (equal to its rank against the basket's excess);
  ``rank_ic`` is its mean over times and ``icir`` mean / standard deviation, as Qlib
  reports them (per bar, not annualised).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.agents import Agent, get_agent_class, make_agent
from ai_trade_bot.errors import ConfigError
from ai_trade_bot.modeling.scoring import class_prior, direction_scores
from ai_trade_bot.training.fanout import ExecutorConfig, one_thread, run_tasks, task_seed
from ai_trade_bot.training.folds import (
    MIN_FIT_ROWS,
    WalkForwardConfig,
    final_fit_rows,
    walk_forward_folds,
)
from ai_trade_bot.training.walk_forward import fit_on_rows, predict_rows

logger = logging.getLogger(__name__)

POOLING = ("pooled", "per_symbol", "both")
POOLED = "pooled"


@dataclass(frozen=True)
class Task:
    """One fit: a scope (``pooled`` or a symbol), an agent, a fold (or ``final``)."""

    scope: str
    agent: str
    fold: int | str
    params: dict[str, Any]
    train: tuple[int, int]  # [start, stop) positions into the scope's rows
    val: tuple[int, int]
    test: tuple[int, int]  # empty for the final fit

    @property
    def key(self) -> tuple[str, str, str]:
        return self.scope, self.agent, str(self.fold)


@dataclass
class TaskResult:
    key: tuple[str, str, str]
    oof: pd.DataFrame | None
    agent: Agent | None  # the final fits only
    pid: int
    seconds: float


@dataclass
class UniverseFit:
    """Everything the universe trainer produced."""

    oof: pd.DataFrame  # (timestamp, symbol) x [scope, agent, fold, down, flat, up, ...]
    models: dict[str, dict[str, Agent]]  # scope -> agent -> deployment fit
    summary: dict[str, Any]
    pids: set[int] = field(default_factory=set)


class Stacker:
    """One time-major block of per-symbol rows, filled as each symbol's frame arrives.

    Written on arrays, not ``pd.concat`` then ``sort_index``: those hold three copies of
    the stacked values (50 symbols x 100,000 bars x 115 columns is 4.6 GB in float64), and
    the sort's row gather took a third of the universe's feature time. The block is laid
    out once for every candidate row (each symbol's bars, sorted by time then symbol);
    :meth:`put` writes a symbol's rows in place, and :meth:`frame` closes the gaps of the
    rows never written (warm-up rows without complete features) in place, chunk by chunk.
    """

    def __init__(
        self, indexes: dict[str, pd.DatetimeIndex], columns: Sequence[str], dtype: Any
    ) -> None:
        self.symbols = sorted(indexes)
        self.indexes = {s: pd.DatetimeIndex(indexes[s]) for s in self.symbols}
        first = self.indexes[self.symbols[0]] if self.symbols else pd.DatetimeIndex([])
        self.tz, self.name = first.tz, first.name or "timestamp"
        self.columns = pd.Index(columns)
        lengths = [len(self.indexes[s]) for s in self.symbols]
        self.offsets = dict(zip(self.symbols, np.cumsum([0, *lengths[:-1]]), strict=True))
        times = np.concatenate(
            [self.indexes[s].as_unit("ns").asi8 for s in self.symbols] or [np.array([], "i8")]
        )
        codes = np.repeat(np.arange(len(self.symbols)), lengths)
        order = np.lexsort((codes, times))  # stable: by time, then by symbol
        self.times, self.codes = times[order], codes[order]
        self.destination = np.empty(len(order), dtype=np.int64)
        self.destination[order] = np.arange(len(order))
        self.values = np.empty((len(order), len(self.columns)), dtype=dtype)
        self.written = np.zeros(len(order), dtype=bool)

    def put(self, symbol: str, frame: pd.DataFrame) -> None:
        """Write ``frame`` (rows at some of ``symbol``'s times, the stacker's columns)."""
        if not frame.columns.equals(self.columns):
            raise ValueError(f"stack: symbol {symbol!r} has different columns")
        local = self.indexes[symbol].get_indexer(frame.index)
        if (local < 0).any():
            raise ValueError(f"stack: symbol {symbol!r} has rows at times it has no bar")
        rows = self.destination[self.offsets[symbol] + local]
        self.values[rows] = frame.to_numpy(dtype=self.values.dtype)
        self.written[rows] = True

    def frame(self, chunk: int = 65_536) -> pd.DataFrame:
        """The written rows as one frame indexed by (timestamp, symbol)."""
        kept = 0
        for start in range(0, len(self.written), chunk):
            mask = self.written[start : start + chunk]
            block = self.values[start : start + chunk][mask]  # a copy of one chunk at most
            self.values[kept : kept + len(block)] = block
            kept += len(block)
        values = self.values[:kept]
        stamps = pd.DatetimeIndex(self.times[self.written], name=self.name)
        if self.tz is not None:
            stamps = stamps.tz_localize("UTC").tz_convert(self.tz)
        names = np.asarray(self.symbols, dtype=object)[self.codes[self.written]]
        index = pd.MultiIndex.from_arrays([stamps, pd.Index(names, name="symbol")])
        # copy=False: with copy-on-write on (an imported library turns it on) the frame
        # would otherwise copy the block, twice the memory of a large universe
        return pd.DataFrame(values, index=index, columns=self.columns, copy=False)


def stack(frames: dict[str, pd.DataFrame], dtype: Any = None) -> pd.DataFrame:
    """Per-symbol frames (indexed by time, the same columns) as one frame indexed by
    (timestamp, symbol), sorted by time then symbol (see :class:`Stacker`)."""
    if not frames:
        raise ValueError("stack: no frames")
    first = frames[min(frames)]
    if dtype is None:
        dtype = np.result_type(*(d for f in frames.values() for d in f.dtypes))
    stacker = Stacker({s: f.index for s, f in frames.items()}, first.columns, dtype)
    for symbol, frame in frames.items():
        stacker.put(symbol, frame)
    return stacker.frame()


def _span(times: np.ndarray, positions: np.ndarray) -> tuple[int, int]:
    """Rows of the stacked frame whose time position lies in ``positions`` (contiguous)."""
    if len(positions) == 0:
        return (0, 0)
    return int(np.searchsorted(times, positions[0], "left")), int(
        np.searchsorted(times, positions[-1], "right")
    )


def time_calendar(index: pd.MultiIndex) -> pd.DatetimeIndex:
    """The sorted unique times of a stacked index: what folds and the held-out span cut."""
    return pd.DatetimeIndex(index.get_level_values("timestamp").unique()).sort_values()


def scope_rows(X: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The rows a scope's model reads: every row when pooled (with ``symbol_id``), else
    that symbol's own rows (without it)."""
    if scope == POOLED:
        return X
    return X.xs(scope, level="symbol", drop_level=False).drop(columns="symbol_id")


def _time_positions(index: pd.MultiIndex, calendar: pd.DatetimeIndex) -> np.ndarray:
    return calendar.get_indexer(index.get_level_values("timestamp"))


def plan_tasks(
    X: pd.DataFrame,
    agents: dict[str, dict[str, Any]],
    pooling: str,
    walk_forward: WalkForwardConfig,
    seed: int,
) -> tuple[list[Task], pd.DatetimeIndex, list[Any]]:
    """Every (scope, agent, fold) task, and the time calendar the folds are cut on."""
    if pooling not in POOLING:
        raise ConfigError(f"train.pooling must be one of {list(POOLING)}, got {pooling!r}")
    calendar = time_calendar(X.index)
    folds = walk_forward_folds(len(calendar), walk_forward)
    final_train, final_val = final_fit_rows(len(calendar), walk_forward)
    symbols = sorted(X.index.get_level_values("symbol").unique())
    scopes = ([POOLED] if pooling in (POOLED, "both") else []) + (
        symbols if pooling in ("per_symbol", "both") else []
    )
    tasks: list[Task] = []
    for name, params in agents.items():
        if POOLED in scopes and not get_agent_class(name)(**params).row_local:
            raise ConfigError(
                f"train.pooling={pooling!r}: agent {name!r} reads windows of rows or filters "
                "over all of them, which would mix symbols when pooled; fit it per_symbol, or "
                "pool only tabular agents"
            )
        for scope in scopes:
            rows = X if scope == POOLED else X.xs(scope, level="symbol", drop_level=False)
            times = _time_positions(rows.index, calendar)
            plan = [(f.number, f.train, f.val, f.test) for f in folds]
            plan.append(("final", final_train, final_val, np.array([], dtype=int)))
            for number, train, val, test in plan:
                span = {
                    k: _span(times, v) for k, v in (("train", train), ("val", val), ("test", test))
                }
                fit_rows = span["train"][1] - span["train"][0]
                if fit_rows < MIN_FIT_ROWS or (
                    number != "final" and span["test"][0] == span["test"][1]
                ):
                    logger.warning(
                        "universe: %s/%s fold %s skipped: %d fit rows",
                        scope,
                        name,
                        number,
                        fit_rows,
                    )
                    continue
                task_params = dict(params)
                if "seed" in get_agent_class(name)().get_params():
                    task_params["seed"] = task_seed(seed, scope, name, number)
                if "num_threads" in get_agent_class(name)().get_params():
                    task_params["num_threads"] = 1
                tasks.append(Task(scope, name, number, task_params, **span))
    return tasks, calendar, scopes


def run_task(task: Task, pooled: pd.DataFrame, labels: pd.DataFrame) -> TaskResult:
    """:func:`_run_task` on one thread (see :func:`ai_trade_bot.training.fanout.one_thread`)."""
    with one_thread():
        return _run_task(task, pooled, labels)


def _run_task(task: Task, pooled: pd.DataFrame, labels: pd.DataFrame) -> TaskResult:
    """Fit one task and predict its test rows (pure: everything comes in as arguments)."""
    started = time.perf_counter()
    X = scope_rows(pooled, task.scope)
    y = labels.loc[X.index]
    train = np.arange(*task.train)
    val = np.arange(*task.val)
    agent = fit_on_rows(make_agent(task.agent, **task.params), X, y, train, val)
    oof = None
    if task.test[1] > task.test[0]:
        oof = predict_rows(agent, X, np.arange(*task.test))
        oof.index = X.index[task.test[0] : task.test[1]]
    return TaskResult(
        task.key,
        oof,
        agent if task.fold == "final" else None,
        os.getpid(),
        time.perf_counter() - started,
    )


def rank_ic(score: pd.Series, forward: pd.Series, min_symbols: int = 3) -> dict[str, float]:
    """Per-time Spearman correlation across symbols; its mean, std, ICIR and count."""
    frame = pd.DataFrame({"score": score, "forward": forward}).dropna()
    ranks = frame.groupby(level="timestamp").rank()
    counts = ranks.groupby(level="timestamp")["score"].transform("size")
    ranks = ranks[counts >= min_symbols]
    if ranks.empty:
        return {
            "rank_ic": float("nan"),
            "rank_ic_std": float("nan"),
            "icir": float("nan"),
            "times": 0,
            "times_with_equal_scores": 0,
        }
    with np.errstate(invalid="ignore", divide="ignore"):  # equal scores: NaN, counted below
        ics = ranks.groupby(level="timestamp").apply(lambda g: g["score"].corr(g["forward"]))
    undefined = int(ics.isna().sum())  # every score equal at that time (e.g. the prior)
    ics = ics.dropna()
    std = float(ics.std(ddof=1)) if len(ics) > 1 else float("nan")
    mean = float(ics.mean()) if len(ics) else float("nan")
    return {
        "rank_ic": mean,
        "rank_ic_std": std,
        "icir": mean / std if std and np.isfinite(std) and std > 0 else float("nan"),
        "times": len(ics),
        "times_with_equal_scores": undefined,
    }


def _symbol_priors(
    labels: pd.DataFrame, pooled: pd.DataFrame, calendar, walk_forward
) -> pd.DataFrame:
    """The prior baseline per row without per-symbol tasks (pooling: pooled)."""
    folds = walk_forward_folds(len(calendar), walk_forward)
    parts = []
    for symbol in sorted(pooled.index.get_level_values("symbol").unique()):
        rows = pooled.xs(symbol, level="symbol", drop_level=False)
        times = _time_positions(rows.index, calendar)
        for fold in folds:
            seen = np.concatenate([fold.train, fold.val])
            a, b = _span(times, seen)
            t0, t1 = _span(times, fold.test)
            prior = class_prior(labels.loc[rows.index[a:b], "direction"])
            parts.append(
                pd.DataFrame(
                    np.tile(prior, (t1 - t0, 1)),
                    index=rows.index[t0:t1],
                    columns=["down", "flat", "up"],
                )
            )
    return pd.concat(parts)


def _scores(
    oof: pd.DataFrame, labels: pd.DataFrame, prior: pd.DataFrame, min_symbols: int
) -> dict[str, Any]:
    """Log-loss against the prior, accuracy and rank IC, over all rows and per symbol."""
    y = labels.loc[oof.index]
    probs = oof[["down", "flat", "up"]].to_numpy()
    base = prior.loc[oof.index].to_numpy()
    overall = direction_scores(y["direction"].to_numpy(), probs, base)
    score = oof["up"] - oof["down"]
    out: dict[str, Any] = {
        "rows": len(oof),
        "log_loss": overall["log_loss"],
        "prior_log_loss": overall["prior_log_loss"],
        "beats_prior": bool(overall["log_loss"] < overall["prior_log_loss"]),
        "accuracy": overall["accuracy"],
        **rank_ic(score, y["next_return"], min_symbols),
        "per_symbol": {},
    }
    for symbol, rows in oof.groupby(level="symbol"):
        yy = labels.loc[rows.index]
        s = direction_scores(
            yy["direction"].to_numpy(),
            rows[["down", "flat", "up"]].to_numpy(),
            prior.loc[rows.index].to_numpy(),
        )
        out["per_symbol"][symbol] = {
            "rows": len(rows),
            "log_loss": s["log_loss"],
            "prior_log_loss": s["prior_log_loss"],
            "beats_prior": bool(s["log_loss"] < s["prior_log_loss"]),
            "accuracy": s["accuracy"],
        }
    return out


def train_universe(
    pooled: pd.DataFrame,
    labels: pd.DataFrame,
    agents: dict[str, dict[str, Any]],
    *,
    pooling: str,
    walk_forward: WalkForwardConfig,
    executor: ExecutorConfig,
    seed: int,
    min_symbols: int = 3,
) -> UniverseFit:
    """Fit every task, gather the out-of-fold rows, score pooled against per-symbol.

    Args:
        pooled: Stacked model input (see :func:`stack`) with a ``symbol_id`` column.
        labels: Stacked labels on the same index (``direction``, ``next_return``, ...).
    """
    started = time.perf_counter()
    tasks, calendar, scopes = plan_tasks(pooled, agents, pooling, walk_forward, seed)
    results, ran = run_tasks(run_task, tasks, executor, shared=(pooled, labels))
    oof_parts, models = [], {}
    for task, result in zip(tasks, results, strict=True):
        if result.agent is not None:
            models.setdefault(task.scope, {})[task.agent] = result.agent
        if result.oof is not None:
            oof_parts.append(
                result.oof.assign(scope=task.scope, agent=task.agent, fold=float(task.fold))
            )
    oof = pd.concat(oof_parts)
    prior = _symbol_priors(labels, pooled, calendar, walk_forward)
    summary: dict[str, Any] = {
        "pooling": pooling,
        "scopes": scopes,
        "symbols": sorted(pooled.index.get_level_values("symbol").unique()),
        "agents": {},
        "executor": ran,
        "worker_pids": len({r.pid for r in results}),
        "task_seconds": float(sum(r.seconds for r in results)),
        "seconds": 0.0,
    }
    for name in agents:
        block: dict[str, Any] = {}
        rows = oof[oof["agent"] == name]
        per_scope = {}
        if POOLED in scopes:
            per_scope[POOLED] = _scores(rows[rows["scope"] == POOLED], labels, prior, min_symbols)
        if any(s != POOLED for s in scopes):
            per_symbol_rows = rows[rows["scope"] != POOLED]
            per_scope["per_symbol"] = _scores(per_symbol_rows, labels, prior, min_symbols)
        block.update(per_scope)
        block["winner"] = _winner(per_scope)
        summary["agents"][name] = block
        for scope, scores in per_scope.items():
            logger.info(
                "universe %s %s: out-of-fold log-loss %.4f vs prior %.4f, rank IC %.4f "
                "(ICIR %.3f over %d times)",
                name,
                scope,
                scores["log_loss"],
                scores["prior_log_loss"],
                scores["rank_ic"],
                scores["icir"],
                scores["times"],
            )
    summary["seconds"] = time.perf_counter() - started
    return UniverseFit(oof, models, no_nan(summary), {r.pid for r in results})


def no_nan(value: Any) -> Any:
    """NaN as null (JSON has no NaN): an undefined rank IC is null, not a number."""
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_nan(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _winner(per_scope: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which fit won on log-loss (the prior when none beats it), over all rows and per
    symbol, and which had the higher rank IC."""

    def best(candidates: dict[str, float], prior: float) -> str:
        name, value = min(candidates.items(), key=lambda kv: kv[1])
        return name if value < prior else "prior"

    overall = best(
        {k: v["log_loss"] for k, v in per_scope.items()},
        min(v["prior_log_loss"] for v in per_scope.values()),
    )
    symbols = set().union(*(v["per_symbol"] for v in per_scope.values()))
    by_symbol = {}
    for symbol in sorted(symbols):
        entries = {
            k: v["per_symbol"][symbol] for k, v in per_scope.items() if symbol in v["per_symbol"]
        }
        by_symbol[symbol] = best(
            {k: e["log_loss"] for k, e in entries.items()},
            min(e["prior_log_loss"] for e in entries.values()),
        )
    ics = {k: v["rank_ic"] for k, v in per_scope.items() if np.isfinite(v["rank_ic"])}
    # a scope whose scores tie at every time (it outputs its prior) has no rank IC
    return {
        "log_loss": overall,
        "per_symbol": by_symbol,
        "rank_ic": max(ics, key=ics.get) if ics else None,
    }
