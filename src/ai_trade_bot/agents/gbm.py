"""Gradient-boosted trees (LightGBM) on the tabular features: the strong tabular baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ai_trade_bot.agents.base import (
    DIRECTION_COLUMNS,
    Agent,
    check_hyperparameter,
    direction_frame,
    feature_columns,
)


class GBMAgent(Agent):
    """LightGBM multiclass on the features; confidence is the top class probability."""

    name = "gbm"
    output_kind = "direction"
    output_columns = DIRECTION_COLUMNS

    def __init__(
        self,
        n_estimators: int = 400,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 30,
        seed: int = 42,
        num_threads: int = 2,
    ) -> None:
        self.n_estimators, self.learning_rate, self.num_leaves = (
            n_estimators,
            learning_rate,
            num_leaves,
        )
        self.min_child_samples, self.subsample = min_child_samples, subsample
        self.colsample_bytree, self.reg_lambda = colsample_bytree, reg_lambda
        self.early_stopping_rounds, self.seed = early_stopping_rounds, seed
        self.num_threads = num_threads  # 1 inside a fanned-out task (ai_trade_bot.training.fanout)
        check_hyperparameter(
            self.name, "n_estimators", n_estimators, n_estimators >= 1, "must be >= 1"
        )

    def _params(self) -> dict[str, Any]:
        return {
            "objective": "multiclass",
            "num_class": 3,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }

    def _fit(self, X: pd.DataFrame, y: pd.DataFrame, *, val_size: int, gap: int) -> None:
        self.columns_ = feature_columns(X)
        self._check_input(X, needed=max(val_size, 1) + gap + 1)
        target = self._check_labels(y, "direction").astype(int)
        values = X[self.columns_].to_numpy(dtype=np.float64)
        n_fit = len(X) - val_size - gap
        train = lgb.Dataset(values[:n_fit], target[:n_fit], free_raw_data=False)
        callbacks, valid_sets = [], []
        if val_size:
            valid_sets = [lgb.Dataset(values[-val_size:], target[-val_size:], reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        self.booster_ = lgb.train(
            self._params(),
            train,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.n_estimators)

    def _predict(self, X: pd.DataFrame) -> pd.DataFrame:
        return direction_frame(*self._direction(self._selected(X)))

    def _direction(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = self.booster_.predict(values, num_iteration=self.best_iteration_)
        return probs, probs.max(axis=1)

    def predict_next_values(
        self, values: np.ndarray, columns: pd.Index, index: pd.Index, state: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        selected = self._stream_rows(values, columns, index, 1)
        return self._calibrated(*self._direction(selected))[-1], state

    def _save_state(self, path: Path) -> dict[str, Any]:
        self.booster_.save_model(path / "booster.txt", num_iteration=self.best_iteration_)
        return {"best_iteration": self.best_iteration_}

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        self.booster_ = lgb.Booster(model_file=path / "booster.txt")
        self.best_iteration_ = meta["best_iteration"]
