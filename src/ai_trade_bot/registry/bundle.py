"""The deployable bundle: everything the live runner needs, in one directory.

A bundle holds the deployment-fit agents, the meta-agent method chosen by ``evaluate``
(with its confidence gate), the resolved feature and label configs, the decision, cost,
sizing and engine configs, the feature column list, the warm-up length and the training
window, and each network's ONNX export (checked against torch when saved: see
:mod:`ai_trade_bot.nn.onnx_runtime`). ``deploy`` registers it as one MLflow model
version; loading it needs no Kedro.

:meth:`Bundle.predict` is the batch prediction the live runner reproduces candle by
candle (a test holds them equal): features over all candles given, then every agent from
``start`` on, each with its own context rows before ``start``, then the meta-agent.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from ai_trade_bot.agents import Agent
from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features.build import FeatureConfig, LabelConfig, build_features, stream_rows
from ai_trade_bot.features.frame import model_frame
from ai_trade_bot.modeling.meta import MetaAgent
from ai_trade_bot.strategy.config import StrategyConfig, parse_strategy_config

BUNDLE_FORMAT = 2  # 2: the strategy settings under "strategy"; modules in sub-packages


def predict_agents(agents: list[Agent], X: pd.DataFrame, first: int) -> pd.DataFrame:
    """Every agent's outputs on ``X``'s rows from position ``first`` on, columns
    ``<agent>.<output>``; each agent gets its ``min_history - 1`` rows before ``first`` as
    context (a filter over rows starts there)."""
    parts = []
    for agent in agents:
        start = first - (agent.min_history - 1)
        if start < 0:
            raise DataValidationError(
                f"agent '{agent.name}' needs {agent.min_history - 1} rows of context before "
                f"{X.index[first]}; give a longer history."
            )
        parts.append(agent.predict(X.iloc[start:]).add_prefix(f"{agent.name}."))
    return pd.concat(parts, axis=1)


@dataclass
class Bundle:
    """See the module docstring."""

    symbol: str
    timeframe: str
    features: FeatureConfig
    labels: LabelConfig
    strategy: StrategyConfig
    agents: dict[str, Agent]
    meta: MetaAgent
    selection: dict[str, Any]
    feature_columns: list[str]
    training: dict[str, Any]
    lineage: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.selection["method"])

    @property
    def gate(self) -> float:
        """The confidence gate chosen with the meta method on validation rows."""
        return float(self.selection["confidence_gate"])

    @property
    def context_rows(self) -> int:
        """Feature rows the agents need before the first prediction."""
        return max(a.min_history for a in self.agents.values()) - 1

    @property
    def feature_rows(self) -> int:
        """Candles the features are recomputed over for each new candle."""
        return stream_rows(self.features, self.timeframe)

    @property
    def warmup_rows(self) -> int:
        """Candles the runner needs before its first decision."""
        return max(self.feature_rows, self.features.warmup) + self.context_rows + 1

    def predict(self, candles: pd.DataFrame, start: pd.Timestamp | None = None) -> pd.DataFrame:
        """Agent and meta-agent outputs (``meta.<output>``) for every candle from ``start``
        (default: the first with enough context) whose features are complete."""
        features = build_features(candles, timeframe=self.timeframe, config=self.features)
        X = model_frame(features[self.feature_columns], candles)
        first = (
            self.context_rows if start is None else int(X.index.searchsorted(pd.Timestamp(start)))
        )
        if first >= len(X):
            raise DataValidationError(
                f"bundle: no complete feature row at or after {start} in {len(candles)} "
                f"candles; it needs {self.warmup_rows} candles of history."
            )
        outputs = predict_agents(list(self.agents.values()), X, first)
        return outputs.join(self.meta.predict(outputs).add_prefix("meta."))

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.exists():
            shutil.rmtree(path)
        (path / "agents").mkdir(parents=True)
        onnx = {}
        for name, agent in self.agents.items():
            agent.save(path / "agents" / name)
            if hasattr(agent, "export_onnx"):  # each network, checked against torch
                onnx[name] = {"max_abs_diff": agent.export_onnx(path / "agents" / name)}
                agent._onnx_path = path / "agents" / name / "net.onnx"
        joblib.dump(self.meta, path / "meta.joblib")
        record = {
            "format": BUNDLE_FORMAT,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "features": dataclasses.asdict(self.features),
            "labels": dataclasses.asdict(self.labels),
            "strategy": dataclasses.asdict(self.strategy),
            "agents": list(self.agents),
            "selection": self.selection,
            "feature_columns": self.feature_columns,
            "training": self.training,
            "lineage": self.lineage,
            "onnx": onnx,
        }
        (path / "bundle.json").write_text(json.dumps(record, indent=2, default=_jsonable))

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        path = Path(path)
        if not (path / "bundle.json").exists():
            raise FileNotFoundError(f"{path}: not a bundle (no bundle.json)")
        record = json.loads((path / "bundle.json").read_text())
        if record.get("format") != BUNDLE_FORMAT:
            raise DataValidationError(
                f"{path}: bundle format {record.get('format')} is not {BUNDLE_FORMAT}; "
                "re-run `kedro run --pipeline=deploy`."
            )
        return cls(
            symbol=record["symbol"],
            timeframe=record["timeframe"],
            features=parse_config(FeatureConfig, record["features"], name="bundle.features"),
            labels=parse_config(LabelConfig, record["labels"], name="bundle.labels"),
            strategy=parse_strategy_config(record["strategy"]),
            agents={n: Agent.load(path / "agents" / n) for n in record["agents"]},
            meta=joblib.load(path / "meta.joblib"),
            selection=record["selection"],
            feature_columns=record["feature_columns"],
            training=record["training"],
            lineage=record.get("lineage", {}),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


def load_bundle(uri: str) -> Bundle:
    """A bundle from a local directory or an MLflow model URI (``models:/name@alias``).

    The registered model's ``bundle`` artifact is downloaded and read with
    :meth:`Bundle.load`, not through ``mlflow.pyfunc.load_model``: that puts the copy of
    this package logged with the model first on ``sys.path``, so every module imported
    afterwards (and every process spawned from it) would run the logged copy, whose
    project root holds neither ``conf/local`` nor the reports.
    """
    if Path(uri).exists():
        return Bundle.load(uri)
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    return Bundle.load(local / "artifacts" / "bundle")
