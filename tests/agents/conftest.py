"""Tiny model inputs and tiny hyperparameters for every agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.agents.base import BAR_COLUMNS
from ai_trade_bot.features.build import FeatureConfig, LabelConfig, build_features, labels_for
from tests.conftest import make_ohlcv

TINY_FEATURES = FeatureConfig(
    sma_lengths=(5, 10, 20, 50),
    stat_windows=(10, 20),
    rank_window=30,
    autocorr_window=30,
    autocorr_lags=3,
    hurst_window=32,
    sharpe_window=20,
    rv_windows=(5, 20),
    garch_fit_window=200,
    garch_refit_every=100,
    garch_min_obs=100,
    micro_norm_window=50,
    lags=(1, 2),
    multi_timeframe=("4h",),
    vwap_anchor="D",
)
FAST = {"max_epochs": 2, "batch_size": 64, "patience": 1, "progress_bar": False}


def model_input(
    ohlcv: pd.DataFrame, *, config: FeatureConfig = TINY_FEATURES, horizon: int = 3
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features + raw candles (X) and labels (y), warm-up and label tail dropped."""
    feats = build_features(ohlcv, timeframe="1h", config=config)
    bars = ohlcv.set_axis(list(BAR_COLUMNS), axis=1)
    X = feats.join(bars)
    y = labels_for(ohlcv, LabelConfig(horizon=horizon))
    keep = X.notna().all(axis=1) & y.notna().all(axis=1)
    return X[keep], y[keep]


@pytest.fixture(scope="session")
def tiny_xy() -> tuple[pd.DataFrame, pd.DataFrame]:
    return model_input(make_ohlcv(700, seed=11))


def make_tiny_bert(directory: Path) -> Path:
    """A randomly initialised 1-layer BERT classifier with 3 labels, saved locally."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "stocks",
        "rally",
        "fall",
        "profit",
        "loss",
        "record",
        "crash",
        "beat",
        "miss",
        "growth",
        "fears",
    ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        max_position_embeddings=64,
        id2label={0: "positive", 1: "negative", 2: "neutral"},
        label2id={"positive": 0, "negative": 1, "neutral": 2},
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


def make_headlines(index: pd.DatetimeIndex, path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    words = ["stocks rally", "profit beat record", "crash fears", "loss miss", "growth"]
    times = index[rng.integers(0, len(index), 400)] - pd.Timedelta(minutes=5)
    table = pd.DataFrame({"timestamp": times, "headline": rng.choice(words, 400)})
    table.to_csv(path, index=False)
    return path


def tiny_params(name: str, tmp_path: Path, index: pd.DatetimeIndex) -> dict[str, Any]:
    if name == "trend_lstm":
        return {"window": 8, "hidden": 8, **FAST}
    if name == "trend_transformer":
        return {"window": 8, "d_model": 8, "heads": 2, "layers": 1, **FAST}
    if name == "volatility":
        return {"horizon": 3, "burn_in": 10, "hidden": 8, **FAST}
    if name == "pattern":
        return {"window": 16, "channels": 4, **FAST}
    if name == "regime":
        return {"n_iter": 10, "hidden": 8, **FAST}
    if name == "gbm":
        return {"n_estimators": 20, "min_child_samples": 10, "early_stopping_rounds": 5}
    if name == "sentiment":
        bert = make_tiny_bert(tmp_path / "bert")
        headlines = make_headlines(index, tmp_path / "headlines.csv")
        return {"model_path": str(bert), "headlines_path": str(headlines), "lookback": "6h"}
    raise KeyError(name)
