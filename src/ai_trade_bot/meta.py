"""The stacking meta-agent: learns only from out-of-fold agent outputs.

Methods: ``confidence_vote`` (confidence-weighted average of the agents' probabilities),
``majority_vote`` (share of agents voting each class), and learned stacking
(``logistic``, ``mlp``, ``gbm``) on the agents' probabilities, confidences, the volatility
forecast and the regime probabilities. Disagreement between agents (mean total-variation
distance from their average) lowers the confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
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

from ai_trade_bot.errors import ConfigError, DataValidationError, ModelNotFittedError
from ai_trade_bot.model_selection import WalkForwardConfig, walk_forward_folds

METHODS = ("confidence_vote", "majority_vote", "logistic", "mlp", "gbm")
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
    C: float = 1.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"meta method {self.method!r} unknown; valid: {list(METHODS)}")

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

    # -- fit / predict ---------------------------------------------------------------
    def fit(self, oof: pd.DataFrame, labels: pd.Series) -> MetaAgent:
        """Fit on out-of-fold agent outputs and the direction labels of the same rows."""
        self.agents_ = self._agents(oof)
        y = labels.reindex(oof.index).to_numpy()
        if np.isnan(y).any():
            raise DataValidationError("meta-agent: labels missing for some out-of-fold rows")
        if self.method in ("logistic", "mlp", "gbm"):
            X = self._features(oof, self.agents_)
            if self.method == "logistic":
                model = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000))
            elif self.method == "mlp":
                model = make_pipeline(
                    StandardScaler(),
                    MLPClassifier(
                        (16,), alpha=1e-3, max_iter=500, early_stopping=True, random_state=self.seed
                    ),
                )
            else:
                model = HistGradientBoostingClassifier(
                    max_depth=3, learning_rate=0.05, max_iter=200, random_state=self.seed
                )
            self.model_ = model.fit(X, y.astype(int))
        else:
            self.model_ = None
        return self

    def predict(self, oof: pd.DataFrame) -> pd.DataFrame:
        """Direction probabilities, magnitude, interval, regime, confidence, disagreement."""
        if not hasattr(self, "agents_"):
            raise ModelNotFittedError("meta-agent is not fitted; call fit(oof, labels) first")
        stack = self._stack(oof, self.agents_)
        mean = stack.mean(axis=1)
        disagreement = 0.5 * np.abs(stack - mean[:, None, :]).sum(axis=2).mean(axis=1)
        if self.method == "confidence_vote":
            conf = np.stack([oof[f"{a}.confidence"].to_numpy() for a in self.agents_], axis=1)
            weights = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1e-12)
            probs = (stack * weights[:, :, None]).sum(axis=1)
        elif self.method == "majority_vote":
            votes = np.eye(3)[stack.argmax(axis=2)].sum(axis=1)
            probs = (votes + 0.5) / (votes.sum(axis=1, keepdims=True) + 1.5)
        else:
            probs = np.zeros((len(oof), 3))
            classes = self.model_.classes_.astype(int)
            probs[:, classes] = self.model_.predict_proba(self._features(oof, self.agents_))
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
        return pd.DataFrame(
            {
                "down": probs[:, 0],
                "flat": probs[:, 1],
                "up": probs[:, 2],
                "expected_return": expected,
                "magnitude": magnitude,
                "lower": expected - self.interval_z * sigma,
                "upper": expected + self.interval_z * sigma,
                "regime": regime,
                "confidence": confidence,
                "disagreement": disagreement,
            },
            index=oof.index,
        )

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path)

    @staticmethod
    def load(path: str | Path) -> MetaAgent:
        return joblib.load(path)


def plain_average(oof: pd.DataFrame, agents: list[str]) -> pd.DataFrame:
    """The ablation's simplest ensemble: the unweighted mean of the agents' probabilities."""
    meta = MetaAgent(method="confidence_vote", agents=tuple(agents), disagreement_penalty=0.0)
    meta.agents_ = list(agents)
    stack = meta._stack(oof, meta.agents_)
    probs = stack.mean(axis=1)
    return pd.DataFrame(
        {
            "down": probs[:, 0],
            "flat": probs[:, 1],
            "up": probs[:, 2],
            "confidence": probs.max(axis=1),
        },
        index=oof.index,
    )


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
