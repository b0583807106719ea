"""The deployable bundle of a universe: everything the N-symbol live runner needs.

It holds the pooled and per-symbol fits and their meta-agents (with their calibrations),
the deployed portfolio (the model, construction method and entry margin chosen on
validation rows), the construction settings, the book's limits, the strategy and cost
settings, the resolved feature and label settings and the symbols. Loading it needs no
Kedro.

:meth:`UniverseBundle.outputs` recomputes the universe's model rows from candles (the
pipeline's own :func:`ai_trade_bot.universe.inputs.universe_inputs`) and predicts with the
deployed model; :meth:`UniverseBundle.book` trades them as the book on a span, as the
evaluation did.
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

from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.evaluation.settings import EvaluateConfig, parse_evaluate_config
from ai_trade_bot.features.build import feature_config
from ai_trade_bot.portfolio.construct import PortfolioConfig
from ai_trade_bot.portfolio.limits import RiskLimits, parse_risk_limits

UNIVERSE_BUNDLE_FORMAT = 1


def resolved_features(features: dict[str, Any], timeframe: str, span: pd.Timedelta) -> dict:
    """``params:features`` with its ``auto`` settings made concrete for the training
    history, so a bundle predicting on a shorter window builds the same columns."""
    block = dict(features)
    cross = block.pop("cross_section", {})
    resolved = feature_config(block).resolve(timeframe, span)
    block["multi_timeframe"] = list(resolved.multi_timeframe)
    block["vwap_anchor"] = resolved.vwap_anchor
    return block | {"cross_section": cross}


@dataclass
class UniverseBundle:
    """See the module docstring."""

    symbols: list[str]
    timeframe: str
    features: dict[str, Any]
    labels: dict[str, Any]
    evaluate: dict[str, Any]
    portfolio: dict[str, Any]
    risk: dict[str, Any]
    models: dict[str, dict[str, Any]]
    deployed: dict[str, Any]  # model ("agent:pooled" | "agent:per_symbol"), method, margin
    training: dict[str, Any]
    lineage: dict[str, str] = field(default_factory=dict)

    # -- settings ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        d = self.deployed
        return f"{d['model']}|{d['method']}|{float(d['margin']):g}"

    @property
    def config(self) -> EvaluateConfig:
        return parse_evaluate_config(self.evaluate)

    @property
    def construction(self) -> PortfolioConfig:
        return parse_config(PortfolioConfig, self.portfolio, name="bundle.portfolio")

    @property
    def limits(self) -> RiskLimits:
        return parse_risk_limits(self.risk)

    @property
    def agent(self) -> str:
        return str(self.deployed["model"]).split(":")[0]

    @property
    def scopes(self) -> list[str]:
        kind = str(self.deployed["model"]).split(":")[1]
        return ["pooled"] if kind == "pooled" else list(self.symbols)

    # -- prediction ----------------------------------------------------------------------
    def inputs(self, candles: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The universe's model rows (with the rows whose labels are not known yet) and
        labels from long candles (``timestamp, symbol, OHLCV, missing``)."""
        from ai_trade_bot.universe.inputs import universe_inputs

        unknown = sorted(set(candles["symbol"]) - set(self.symbols))
        lacking = sorted(set(self.symbols) - set(candles["symbol"]))
        if unknown or lacking:
            raise DataValidationError(
                f"universe bundle: it trades {self.symbols}; the candles have extra symbols "
                f"{unknown} and lack {lacking}"
            )
        X, y, _ = universe_inputs(
            candles, self.features, self.labels, self.timeframe, unlabeled=True
        )
        return X, y

    def outputs(self, candles: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
        """The deployed model's outputs (long: ``timestamp, symbol, down, flat, up,
        confidence, ...``) for every complete row at or after ``start``."""
        from ai_trade_bot.evaluation.universe import predict_scopes

        X, _ = self.inputs(candles)
        out = predict_scopes(X, self.models, pd.Timestamp(start), self.scopes)
        return out[out["agent"] == self.agent].reset_index(drop=True)

    def book(
        self,
        candles: pd.DataFrame,
        start: str | pd.Timestamp,
        end: str | pd.Timestamp,
        *,
        outputs: pd.DataFrame | None = None,
    ):
        """The deployed book on ``start..end`` (features from the whole history before):
        its :class:`ai_trade_bot.evaluation.portfolio.Book` and the outputs it traded."""
        from ai_trade_bot.evaluation.portfolio import make_panel, model_book, wide_outputs

        start, end = pd.Timestamp(start), pd.Timestamp(end)
        history = candles[pd.DatetimeIndex(candles["timestamp"]) <= end]
        X, y = self.inputs(history)
        if outputs is None:
            from ai_trade_bot.evaluation.universe import predict_scopes

            outputs = predict_scopes(X, self.models, start, self.scopes)
            outputs = outputs[outputs["agent"] == self.agent]
        outputs = outputs[pd.DatetimeIndex(outputs["timestamp"]) <= end]
        labels = y.reset_index()
        config = self.config
        construction = self.construction
        panel = make_panel(history, labels, start, end, config, construction)
        book = model_book(
            self.name, wide_outputs(outputs, panel), self.deployed["method"],
            float(self.deployed["margin"]), panel, config, self.limits, construction,
        )  # fmt: skip
        return book, outputs, labels

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        joblib.dump(self.models, path / "models.joblib")
        record = {
            "format": UNIVERSE_BUNDLE_FORMAT,
            **{
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name != "models"
            },
        }
        (path / "universe_bundle.json").write_text(json.dumps(record, indent=2, default=_plain))

    @classmethod
    def load(cls, path: str | Path) -> UniverseBundle:
        path = Path(path)
        where = path / "universe_bundle.json"
        if not where.exists():
            raise FileNotFoundError(f"{path}: not a universe bundle (no universe_bundle.json)")
        record = json.loads(where.read_text())
        if record.pop("format", None) != UNIVERSE_BUNDLE_FORMAT:
            raise DataValidationError(
                f"{path}: universe bundle format is not {UNIVERSE_BUNDLE_FORMAT}; re-run "
                "`kedro run --pipeline=universe`."
            )
        return cls(models=joblib.load(path / "models.joblib"), **record)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


def load_universe_bundle(uri: str) -> UniverseBundle:
    """A universe bundle from a local directory or an MLflow model URI."""
    if Path(uri).exists():
        return UniverseBundle.load(uri)
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    return UniverseBundle.load(local / "artifacts" / "bundle")
