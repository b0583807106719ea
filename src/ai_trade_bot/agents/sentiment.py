"""Headline sentiment agent: FinBERT scores per bar, mapped to direction by a logistic model.

Disabled unless a local model directory and a headlines file are configured; the rest of
the system runs without it. Models are read from disk only (never downloaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from ai_trade_bot.agents.base import DIRECTION_COLUMNS, Agent, direction_frame
from ai_trade_bot.errors import ConfigError, DataValidationError

# FinBERT (ProsusAI/finbert) label order; models whose config names labels are mapped by name.
DEFAULT_LABELS = ("positive", "negative", "neutral")


class SentimentAgent(Agent):
    """Direction from news: mean (p_positive - p_negative) and headline count per bar."""

    name = "sentiment"
    output_kind = "direction"
    output_columns = DIRECTION_COLUMNS

    def __init__(
        self,
        model_path: str | None = None,
        headlines_path: str | None = None,
        lookback: str = "1D",
        batch_size: int = 32,
        max_length: int = 64,
        C: float = 1.0,
        seed: int = 42,
    ) -> None:
        self.model_path, self.headlines_path = model_path, headlines_path
        self.lookback, self.batch_size, self.max_length = lookback, batch_size, max_length
        self.C, self.seed = C, seed

    @property
    def enabled(self) -> bool:
        return bool(self.model_path and self.headlines_path)

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise ConfigError(
                "agent 'sentiment' is disabled: set agents.sentiment.model_path (a local "
                "FinBERT directory) and agents.sentiment.headlines_path (timestamp, headline)."
            )

    def _headline_scores(self) -> pd.Series:
        """Score every headline once with the local transformer model."""
        if getattr(self, "scores_", None) is not None:
            return self.scores_
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(self.headlines_path)
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        if not {"timestamp", "headline"} <= set(table.columns):
            raise DataValidationError(
                f"{path}: headlines need columns 'timestamp' and 'headline', got {list(table)}"
            )
        times = pd.to_datetime(table["timestamp"], utc=True)
        tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            self.model_path, local_files_only=True
        ).eval()
        labels = [str(model.config.id2label[i]).lower() for i in range(model.config.num_labels)]
        if not {"positive", "negative"} <= set(labels):
            labels = list(DEFAULT_LABELS)
        pos, neg = labels.index("positive"), labels.index("negative")
        texts = table["headline"].astype(str).tolist()
        scores = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                enc = tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                probs = model(**enc).logits.softmax(-1).double().numpy()
                scores.append(probs[:, pos] - probs[:, neg])
        self.scores_ = pd.Series(np.concatenate(scores), index=times).sort_index()
        return self.scores_

    def _bar_features(self, index: pd.DatetimeIndex) -> np.ndarray:
        """Mean score and log(1 + count) of headlines in (t - lookback, t] for each bar."""
        scores = self._headline_scores()
        cum = np.concatenate([[0.0], np.cumsum(scores.to_numpy())])
        times = scores.index.asi8
        hi = np.searchsorted(times, index.asi8, side="right")
        lo = np.searchsorted(times, (index - pd.Timedelta(self.lookback)).asi8, side="right")
        count = hi - lo
        mean = np.where(count > 0, (cum[hi] - cum[lo]) / np.maximum(count, 1), 0.0)
        return np.column_stack([mean, np.log1p(count)])

    def _fit(self, X: pd.DataFrame, y: pd.DataFrame, *, val_size: int, gap: int) -> None:
        self._require_enabled()
        self.columns_ = []
        self._check_input(X, needed=max(val_size, 1) + gap + 1)
        target = self._check_labels(y, "direction").astype(int)
        n_fit = len(X) - val_size - gap
        feats = self._bar_features(X.index)
        self.model_ = LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed)
        self.model_.fit(feats[:n_fit], target[:n_fit])

    def _probs(self, feats: np.ndarray) -> np.ndarray:
        """Class probabilities for all 3 classes, even if one was absent when fitting."""
        probs = np.zeros((len(feats), 3))
        probs[:, self.model_.classes_.astype(int)] = self.model_.predict_proba(feats)
        return probs

    def _predict(self, X: pd.DataFrame) -> pd.DataFrame:
        probs = self._probs(self._bar_features(X.index))
        return direction_frame(probs, probs.max(axis=1))

    def _save_state(self, path: Path) -> dict[str, Any]:
        np.savez(
            path / "logistic.npz",
            coef=self.model_.coef_,
            intercept=self.model_.intercept_,
            classes=self.model_.classes_,
        )
        return {}

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        arrays = np.load(path / "logistic.npz")
        self.model_ = LogisticRegression(C=self.C)
        self.model_.coef_, self.model_.intercept_ = arrays["coef"], arrays["intercept"]
        self.model_.classes_ = arrays["classes"]
        self.scores_ = None
