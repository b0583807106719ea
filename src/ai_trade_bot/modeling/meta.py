"""The stacking meta-agent: learns only from out-of-fold agent outputs.

Methods: ``prior`` (the class shares of its training rows: the trivial baseline),
``plain_average`` (the unweighted mean of the agents' probabilities), ``best_agent`` (the
single agent with the lowest log-loss on the inner validation tail, passed through),
``confidence_vote`` (confidence-weighted average), ``majority_vote`` (share of agents
voting each class), and learned stacking (``logistic``, ``mlp``, ``gbm``) on the agents'
probabilities, confidences, the volatility forecast and the regime probabilities.

Learned stackers are regularised: their strength is chosen on an inner validation tail
(the last ``inner_val_fraction`` of the training rows, after a ``inner_gap`` purge), then
they are refit on all rows. Every method but ``prior`` and ``plain_average`` is then
calibrated on that tail (temperature and shrinkage toward the prior, see
:mod:`ai_trade_bot.modeling.calibration`); a method that cannot beat the prior there outputs it.
The output column ``informative`` is 0 for such outputs, and where a method that only
combines agents reads agents that all output their own prior (their ``informative`` is 0);
the decision layer never trades them. Disagreement between agents (mean total-variation
distance from their average) lowers the confidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import ConfigError, DataValidationError, ModelNotFittedError
from ai_trade_bot.modeling.calibration import fit_calibration
from ai_trade_bot.modeling.scoring import class_prior, direction_scores, log_loss
from ai_trade_bot.training.folds import WalkForwardConfig, walk_forward_folds

logger = logging.getLogger(__name__)

METHODS = (
    "prior",
    "plain_average",
    "best_agent",
    "confidence_vote",
    "majority_vote",
    "logistic",
    "mlp",
    "gbm",
)
LEARNED = ("logistic", "mlp", "gbm")
# Regularisation candidates of the learned stackers, chosen on the inner validation tail.
GRIDS: dict[str, tuple[dict[str, float], ...]] = {
    "logistic": tuple({"C": c} for c in (0.001, 0.01, 0.1, 1.0)),
    "mlp": tuple({"alpha": a} for a in (0.01, 0.1, 1.0)),
    "gbm": tuple({"learning_rate": lr, "max_iter": it} for lr in (0.02, 0.05) for it in (50, 150)),
}
MIN_INNER_ROWS = 50
OUTPUT_COLUMNS = (
    "down",
    "flat",
    "up",
    "expected_return",
    "magnitude",
    "lower",
    "upper",
    "regime",
    "confidence",
    "disagreement",
    "informative",
)
# E|r| = sigma * sqrt(2 / pi) for a zero-mean normal return
ABS_PER_SIGMA = float(np.sqrt(2.0 / np.pi))


def direction_agents(columns: pd.Index) -> list[str]:
    """Agents with ``<agent>.up`` columns in an out-of-fold frame."""
    return sorted({c[: -len(".up")] for c in columns if c.endswith(".up")})


@dataclass
class MetaAgent:
    """See the module docstring. Fitted state ends in ``_``."""

    method: str = "logistic"
    agents: tuple[str, ...] | None = None
    disagreement_penalty: float = 1.0
    interval_z: float = 1.96
    inner_val_fraction: float = 0.25
    inner_gap: int = 5
    seed: int = 42

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"meta method {self.method!r} unknown; valid: {list(METHODS)}")
        if not 0 <= self.inner_val_fraction < 1:
            raise ConfigError(
                f"meta inner_val_fraction must be in [0, 1), got {self.inner_val_fraction}"
            )

    # -- inputs ---------------------------------------------------------------------
    def _agents(self, oof: pd.DataFrame) -> list[str]:
        agents = list(self.agents) if self.agents else direction_agents(oof.columns)
        if not agents:
            raise DataValidationError(
                "meta-agent: no direction agent outputs (<agent>.up columns) in the input"
            )
        missing = [
            f"{a}.{c}"
            for a in agents
            for c in ("down", "flat", "up", "confidence")
            if f"{a}.{c}" not in oof.columns
        ]
        if missing:
            raise DataValidationError(f"meta-agent: missing columns {missing[:6]}")
        return agents

    def _stack(self, oof: pd.DataFrame, agents: list[str]) -> np.ndarray:
        """(n, k, 3) probabilities of the direction agents."""
        return np.stack(
            [oof[[f"{a}.down", f"{a}.flat", f"{a}.up"]].to_numpy() for a in agents], axis=1
        )

    def _features(self, oof: pd.DataFrame, agents: list[str]) -> np.ndarray:
        cols = [f"{a}.{c}" for a in agents for c in ("down", "flat", "up", "confidence")]
        extra = [c for c in oof.columns if c.startswith("regime.p_")]
        X = oof[cols + extra].to_numpy(dtype=np.float64)
        if "volatility.pred_vol" in oof.columns:
            X = np.column_stack([X, np.log(oof["volatility.pred_vol"].to_numpy())])
        return X

    def _make_model(self, params: dict[str, float]) -> Any:
        if self.method == "logistic":
            return make_pipeline(StandardScaler(), LogisticRegression(C=params["C"], max_iter=2000))
        if self.method == "mlp":
            return make_pipeline(
                StandardScaler(),
                MLPClassifier(
                    (16,),
                    alpha=params["alpha"],
                    max_iter=500,
                    early_stopping=True,
                    random_state=self.seed,
                ),
            )
        return HistGradientBoostingClassifier(
            max_depth=2,
            min_samples_leaf=50,
            l2_regularization=1.0,
            learning_rate=params["learning_rate"],
            max_iter=int(params["max_iter"]),
            random_state=self.seed,
        )

    def _model_probs(self, model: Any, X: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(X), 3))
        logistic = model[-1] if self.method == "logistic" else None
        if logistic is not None and logistic.coef_.shape[0] == len(logistic.classes_) > 2:
            probs[:, logistic.classes_.astype(int)] = _rowwise_softmax(model, X)
        else:
            probs[:, model.classes_.astype(int)] = model.predict_proba(X)
        return probs

    # -- fit / predict ---------------------------------------------------------------
    def fit(self, oof: pd.DataFrame, labels: pd.Series) -> MetaAgent:
        """Fit on out-of-fold agent outputs and the direction labels of the same rows."""
        self.agents_ = self._agents(oof)
        y = labels.reindex(oof.index).to_numpy()
        if np.isnan(y).any():
            raise DataValidationError("meta-agent: labels missing for some out-of-fold rows")
        y = y.astype(int)
        self.prior_ = np.bincount(y, minlength=3) / len(y)
        self.model_, self.params_, self.calibration_ = None, {}, None
        if self.method in ("prior", "plain_average"):
            return self
        n = len(y)
        n_val = round(n * self.inner_val_fraction)
        n_train = n - n_val - self.inner_gap
        inner = n_val >= MIN_INNER_ROWS and n_train >= MIN_INNER_ROWS
        if self.method == "best_agent":
            rows = slice(n - n_val, n) if inner else slice(0, n)
            stack = self._stack(oof.iloc[rows], self.agents_)
            losses = [log_loss(y[rows], stack[:, k]) for k in range(len(self.agents_))]
            self.params_ = {"agent": self.agents_[int(np.argmin(losses))]}
        X = self._features(oof, self.agents_) if self.method in LEARNED else None
        val_probs = None
        if self.method in LEARNED:
            grid = GRIDS[self.method]
            if inner:
                scored = []
                for params in grid:
                    model = self._make_model(params).fit(X[:n_train], y[:n_train])
                    probs = self._model_probs(model, X[n - n_val :])
                    scored.append((log_loss(y[n - n_val :], probs), params, probs))
                _, self.params_, val_probs = min(scored, key=lambda item: item[0])
            else:
                self.params_ = grid[len(grid) // 2]
            self.model_ = self._make_model(self.params_).fit(X, y)
        elif inner:
            val_probs = self._raw_probs(oof.iloc[n - n_val :])
        if val_probs is not None:
            self.calibration_ = fit_calibration(val_probs, y[n - n_val :], self.prior_)
        return self

    def _raw_probs(self, oof: pd.DataFrame) -> np.ndarray:
        """The method's probabilities before calibration."""
        stack = self._stack(oof, self.agents_)
        if self.method == "prior":
            return np.repeat(self.prior_[None, :], len(oof), axis=0)
        if self.method == "plain_average":
            probs = stack.mean(axis=1)
        elif self.method == "best_agent":
            probs = stack[:, self.agents_.index(self.params_["agent"])]
        elif self.method == "confidence_vote":
            conf = np.stack([oof[f"{a}.confidence"].to_numpy() for a in self.agents_], axis=1)
            weights = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1e-12)
            probs = (stack * weights[:, :, None]).sum(axis=1)
        elif self.method == "majority_vote":
            votes = np.eye(3)[stack.argmax(axis=2)].sum(axis=1)
            probs = (votes + 0.5) / (votes.sum(axis=1, keepdims=True) + 1.5)
        else:
            probs = self._model_probs(self.model_, self._features(oof, self.agents_))
        return probs / probs.sum(axis=1, keepdims=True)

    @property
    def informative(self) -> bool:
        """False when this meta-agent outputs the class prior (no edge to trade on)."""
        return self.method != "prior" and not (
            self.calibration_ is not None and self.calibration_.collapsed
        )

    def _informative_rows(self, oof: pd.DataFrame) -> np.ndarray:
        """1 where the output may carry an edge, 0 where it is the prior: the method's own
        (``prior``, a collapsed calibration) or, for a method that only combines agents
        (average, votes, best agent), when every agent it reads outputs its prior."""
        rows = np.full(len(oof), float(self.informative))
        if self.method in LEARNED:
            return rows
        used = [self.params_["agent"]] if self.method == "best_agent" else self.agents_
        flags = [f"{a}.informative" for a in used if f"{a}.informative" in oof.columns]
        if len(flags) == len(used):
            rows *= (oof[flags].to_numpy(dtype=np.float64) > 0).any(axis=1)
        return rows

    def predict(self, oof: pd.DataFrame) -> pd.DataFrame:
        """Direction probabilities, magnitude, interval, regime, confidence, disagreement
        and ``informative`` (0 when the output is the class prior)."""
        values = self.predict_values(oof.to_numpy(dtype=np.float64), oof.columns)
        return pd.DataFrame(values, index=oof.index, columns=list(OUTPUT_COLUMNS))

    def predict_values(self, values: np.ndarray, columns: pd.Index) -> np.ndarray:
        """:meth:`predict` on an array of agent outputs with ``columns``: (n, 11) in
        :data:`OUTPUT_COLUMNS` order (the live runner's path, one row at a time)."""
        if not hasattr(self, "agents_"):
            raise ModelNotFittedError("meta-agent is not fitted; call fit(oof, labels) first")
        oof = _ColumnView(values, columns)  # type: ignore[assignment]
        stack = self._stack(oof, self.agents_)
        mean = stack.mean(axis=1)
        disagreement = 0.5 * np.abs(stack - mean[:, None, :]).sum(axis=2).mean(axis=1)
        probs = self._raw_probs(oof)
        if self.calibration_ is not None:
            probs = self.calibration_.apply(probs)
        probs = probs / probs.sum(axis=1, keepdims=True)
        sigma = (
            oof["volatility.pred_vol"].to_numpy()
            if "volatility.pred_vol" in oof.columns
            else np.full(len(oof), np.nan)
        )
        magnitude = ABS_PER_SIGMA * sigma
        expected = (probs[:, 2] - probs[:, 0]) * magnitude
        regime_cols = [c for c in oof.columns if c.startswith("regime.p_")]
        regime = (
            oof[regime_cols].to_numpy().argmax(axis=1).astype(float)
            if regime_cols
            else np.full(len(oof), np.nan)
        )
        confidence = np.clip(
            probs.max(axis=1) * (1 - self.disagreement_penalty * disagreement), 0.0, 1.0
        )
        return np.column_stack(
            [
                probs,
                expected,
                magnitude,
                expected - self.interval_z * sigma,
                expected + self.interval_z * sigma,
                regime,
                confidence,
                disagreement,
                self._informative_rows(oof),
            ]
        )

    def contributions(self, values: np.ndarray, columns: pd.Index) -> dict[str, float]:
        """How much each direction agent moved this row's edge, P(up) - P(down): the edge
        minus the edge with that agent's outputs set to the class prior the meta-agent was
        fit on (its probabilities; its confidence the prior's largest share; not
        informative). Occlusion works for every method, learned or not, in one batched
        prediction of k + 1 rows. Positive: the agent pushed toward up."""
        values = np.asarray(values, dtype=np.float64).reshape(1, -1)
        agents = list(self.agents_)
        rows = np.repeat(values, len(agents) + 1, axis=0)
        where = {str(c): i for i, c in enumerate(columns)}
        prior = np.asarray(self.prior_, dtype=np.float64)
        neutral = {"down": prior[0], "flat": prior[1], "up": prior[2],
                   "confidence": float(prior.max()), "informative": 0.0}  # fmt: skip
        for k, agent in enumerate(agents, start=1):
            for name, value in neutral.items():
                j = where.get(f"{agent}.{name}")
                if j is not None:
                    rows[k, j] = value
        out = self.predict_values(rows, columns)
        edge = out[:, 2] - out[:, 0]
        return {agent: float(edge[0] - edge[k]) for k, agent in enumerate(agents, start=1)}

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path)

    @staticmethod
    def load(path: str | Path) -> MetaAgent:
        return joblib.load(path)


class _ColumnView:
    """Columns of an array by name: what :meth:`MetaAgent.predict` needs of a frame
    (``view[name]``, ``view[names]``, ``.columns``, ``len``). The live runner predicts one
    row at a time, where each pandas column selection (~80 µs) cost more than the
    arithmetic. Positions are kept for the last column index seen."""

    _positions: tuple[pd.Index, dict[str, int]] | None = None

    def __init__(self, values: np.ndarray, columns: pd.Index) -> None:
        self.values, self.columns = values, columns
        cached = _ColumnView._positions
        if cached is None or cached[0] is not columns:
            cached = _ColumnView._positions = (columns, {c: i for i, c in enumerate(columns)})
        self._position = cached[1]

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, key: str | list[str]) -> _Selected:
        if isinstance(key, str):
            return _Selected(self.values[:, self._position[key]])
        return _Selected(self.values[:, [self._position[k] for k in key]])


class _Selected:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype, copy=False)


def plain_average(oof: pd.DataFrame, agents: list[str]) -> pd.DataFrame:
    """The ablation's simplest ensemble: the unweighted mean of the agents' probabilities."""
    meta = MetaAgent(method="plain_average", agents=tuple(agents)).fit(
        oof, pd.Series(0.0, index=oof.index)
    )
    return meta.predict(oof)


def meta_walk_forward(
    oof: pd.DataFrame, labels: pd.Series, params: dict[str, Any], config: WalkForwardConfig
) -> pd.DataFrame:
    """Second-level walk-forward over the out-of-fold rows: meta predictions out of sample.

    ``config`` should hold out nothing (``test_fraction=0``): the rows are already the
    pre-test span, and purge/embargo keep meta training labels away from its test rows.
    """
    parts = []
    for fold in walk_forward_folds(len(oof), config):
        rows = np.concatenate([fold.train, fold.val])
        meta = MetaAgent(**params).fit(oof.iloc[rows], labels)
        parts.append(meta.predict(oof.iloc[fold.test]).assign(meta_fold=float(fold.number)))
    return pd.concat(parts)


@dataclass(frozen=True)
class MetaConfig:
    """``params:meta``."""

    methods: tuple[str, ...] = (
        "best_agent",
        "confidence_vote",
        "majority_vote",
        "logistic",
        "mlp",
        "gbm",
    )
    disagreement_penalty: float = 1.0
    inner_val_fraction: float = 0.25
    seed: int = 42
    walk_forward: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods {unknown} unknown; valid: {list(METHODS)}")
        # the trivial baseline and the plain average are always candidates
        object.__setattr__(
            self, "methods", tuple(dict.fromkeys(["prior", "plain_average", *self.methods]))
        )


def parse_meta_config(block: dict[str, Any]) -> MetaConfig:
    """``params:meta`` with its walk-forward block checked too (it must hold nothing out)."""
    config = parse_config(MetaConfig, block, name="meta")
    wf = parse_config(WalkForwardConfig, config.walk_forward, name="meta.walk_forward")
    if wf.test_fraction:
        raise ConfigError(
            "meta.walk_forward.test_fraction must be 0: the held-out span is already outside "
            "the out-of-fold rows"
        )
    return config


def stack_agents(
    oof: pd.DataFrame, labels: pd.Series, config: MetaConfig
) -> tuple[pd.DataFrame, dict[str, MetaAgent], dict[str, Any]]:
    """Every meta method on the agents' out-of-fold outputs.

    A second walk-forward over the out-of-fold rows gives each method's own out-of-sample
    predictions; each is then fit on all out-of-fold rows for the held-out span. The
    ablation compares, on the same meta out-of-sample rows, every method with each single
    agent and the plain average.

    Returns:
        ``meta_oof_predictions`` (columns ``<method>.<output>``), the fitted methods, and
        the ablation (scores per candidate; ``prior_*`` is the prior before those rows).
    """
    wf = parse_config(WalkForwardConfig, config.walk_forward, name="meta.walk_forward")
    params = {
        "disagreement_penalty": config.disagreement_penalty,
        "inner_val_fraction": config.inner_val_fraction,
        "inner_gap": wf.purge + wf.embargo,
        "seed": config.seed,
    }
    # Each direction agent alone is a candidate too ("alone:<agent>", the plain average of
    # one agent), so the selection never prefers a stacker to an agent that alone does
    # better on the same validation rows.
    candidates = [(m, {"method": m}) for m in config.methods] + [
        (f"alone:{agent}", {"method": "plain_average", "agents": (agent,)})
        for agent in direction_agents(oof.columns)
    ]
    parts, fitted = [], {}
    for name, method in candidates:
        out = meta_walk_forward(oof, labels, params | method, wf)
        parts.append(out.drop(columns="meta_fold").add_prefix(f"{name}."))
        fitted[name] = MetaAgent(**method, **params).fit(oof, labels)
        logger.info("meta %s: %d out-of-sample rows", name, len(out))
    meta_oof = pd.concat(parts, axis=1, join="inner")
    rows = meta_oof.index
    y = labels.reindex(rows).to_numpy()
    prior = class_prior(labels.loc[: rows[0]].iloc[:-1])
    ablation: dict[str, Any] = {}
    for name, _ in candidates:
        probs = meta_oof[[f"{name}.down", f"{name}.flat", f"{name}.up"]].to_numpy()
        ablation[f"meta:{name}"] = direction_scores(y, probs, prior)
    for agent in direction_agents(oof.columns):
        probs = oof.loc[rows, [f"{agent}.down", f"{agent}.flat", f"{agent}.up"]].to_numpy()
        ablation[f"agent:{agent}"] = direction_scores(y, probs, prior)
    return meta_oof, fitted, ablation


def _rowwise_softmax(model: Any, X: np.ndarray) -> np.ndarray:
    """A scaler + multinomial logistic pipeline's ``predict_proba``, computed so that one
    row's probabilities do not depend on how many rows are scored with it (scikit-learn's
    matrix product rounds differently for one row than for a thousand, and the live runner
    scores one at a time while the backtest scores the span): an elementwise product summed
    over the inputs, then the softmax."""
    scaler, logistic = model[0], model[-1]
    z = (X - scaler.mean_) / scaler.scale_
    logits = (z[:, None, :] * logistic.coef_[None, :, :]).sum(axis=2) + logistic.intercept_
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)
