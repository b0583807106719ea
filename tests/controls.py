"""Controls for the whole machinery: candles with a planted, tradable edge (the positive
control) and the same candles with the edge destroyed (the negative controls), run
through the real default pipelines with tiny agents.

- :data:`PLANTED`: daily candles whose returns drift 0.65 sigma a bar in the direction of
  a hidden regime that flips about every 40 bars (:func:`tests.synthetic.planted_trend`).
  Momentum features see a regime a few bars after it flips; holding through it earns far
  more than the default costs. What the pipeline must find, trade and promote.
- :func:`shuffled_bars`: the same bars in a shuffled order (the gate's own placebo):
  no order is left to predict.
- ``label_noise``: the training labels (never the held-out span's) permuted among a share
  of the rows, so that a model learns a weaker edge (0.3) or none at all (1.0) from the
  same features.

Only the LightGBM agent is given its default size (200 trees); the torch agents are tiny,
so a run takes about 15 s on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ai_trade_bot.pipelines import evaluate, features, ingestion, train
from ai_trade_bot.pipelines.deploy import create_pipeline as deploy_pipeline
from ai_trade_bot.pipelines.deploy.nodes import deploy_bundle
from ai_trade_bot.registry.gate import placebo_candles
from tests.pipelines.test_default_config import TINY_AGENTS, default_parameters, run_default
from tests.synthetic import planted_trend

ROOT = Path(__file__).resolve().parents[1]
PLANTED = {"n": 3000, "seed": 0, "drift": 0.65}
SYMBOL = "TREND"


def planted_candles() -> pd.DataFrame:
    return planted_trend(PLANTED["n"], seed=PLANTED["seed"], drift=PLANTED["drift"])


def shuffled_bars(candles: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    """The negative control: the same whole bars in a random order (see
    :func:`ai_trade_bot.registry.gate.placebo_candles`; another seed than the gate's)."""
    return placebo_candles(candles, seed)


def next_return_leak(ohlcv: pd.DataFrame) -> pd.Series:
    """A feature that leaks: each bar's value is the *next* bar's log return (0 where
    there is none yet). The negative control for the look-ahead check and the gate."""
    return np.log(ohlcv["close"]).diff().shift(-1).fillna(0.0)


def control_parameters(csv: Path, symbol: str = SYMBOL) -> dict[str, Any]:
    """conf/base parameters with tiny torch agents and a default-size LightGBM."""
    agents = {name: {"params": p} for name, p in TINY_AGENTS.items()}
    agents["gbm"] = {"params": {"n_estimators": 200}}
    source = {"ingestion": {"source": "file", "path": str(csv), "symbol": symbol}}
    return default_parameters({"agents": agents} | source)


def noisy_labels(labels: pd.DataFrame, share: float, test_start: int, seed: int) -> pd.DataFrame:
    """``labels`` with a ``share`` of the rows before ``test_start`` (less a margin of the
    label horizon) permuted among themselves, every label column together (rows with a
    missing label stay where they are, so the rows the models see are unchanged). The held-out
    span keeps its true labels: the model is judged against the market, not the noise."""
    if share <= 0:
        return labels
    rng = np.random.default_rng(seed)
    rows = np.arange(max(test_start - 50, 0))
    rows = rows[labels.iloc[rows].notna().all(axis=1).to_numpy()]  # no gaps moved around
    picked = rows[rng.random(len(rows)) < share]
    out = labels.copy()
    out.iloc[picked] = labels.iloc[rng.permutation(picked)].to_numpy()
    return out


@dataclass
class ControlRun:
    """Everything one control run produced (every dataset of the pipelines, by name)."""

    candles: pd.DataFrame
    params: dict[str, Any]
    out: dict[str, Any] = field(default_factory=dict)
    bundle_path: Path | None = None

    @property
    def evaluation(self) -> dict[str, Any]:
        return self.out["evaluation"]

    @property
    def test_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.evaluation["test_span"]["start"])

    def deploy(self, deploy: dict[str, Any] | None = None) -> dict[str, Any]:
        """The deploy pipeline's node, with conf/base's gate unless ``deploy`` overrides it;
        needs an MLflow tracking URI set."""
        return deploy_bundle(
            self.out["deploy_bundle"],
            self.out["ohlcv_clean"],
            self.out["labels_true"],
            self.evaluation,
            self.out["evaluation_report"],
            self.out["train_summary"],
            self.params["deploy"] | (deploy or {}),
            str(ROOT),
        )


def run_control(
    directory: Path,
    candles: pd.DataFrame,
    *,
    label_noise: float = 0.0,
    seed: int = 1,
    symbol: str = SYMBOL,
) -> ControlRun:
    """Ingest ``candles`` from a CSV, build features and labels, train (on labels with
    ``label_noise``), evaluate and package a bundle, all with the default pipelines."""
    directory.mkdir(parents=True, exist_ok=True)
    csv = directory / f"{symbol.lower()}.csv"
    candles.to_csv(csv)
    params = control_parameters(csv, symbol)
    agents = params["train"]["agents"]
    front = ingestion.create_pipeline() + features.create_pipeline()
    back = train.create_pipeline(agents=agents) + evaluate.create_pipeline(agents=agents)
    back += deploy_pipeline(agents=agents).only_nodes("package_bundle")
    out = run_default(front, params)
    labels = out["labels"]
    test_start = int(len(labels) * (1 - params["train"]["walk_forward"]["test_fraction"]))
    data = {name: out[name] for name in back.inputs() if name in out}
    data["labels"] = noisy_labels(labels, label_noise, test_start, seed)
    out |= run_default(back, params, **data)
    out["labels_true"] = labels
    run = ControlRun(candles=candles, params=params, out=out, bundle_path=directory / "bundle")
    out["deploy_bundle"].save(run.bundle_path)
    return run
