"""The one agent interface (scikit-learn style) shared by every prediction agent.

- ``__init__`` only stores hyperparameters; fitted state ends in ``_``.
- ``fit(X, y, *, val_size=0, gap=0)`` returns ``self``; the last ``val_size`` rows are the
  early-stopping set and the ``gap`` rows before them are not fitted on (purge + embargo).
  Direction agents are then calibrated on those rows (temperature and shrinkage toward the
  class prior; see :mod:`ai_trade_bot.modeling.calibration`), and ``predict`` applies it.
- ``predict(X)`` returns the agent's typed output for rows ``X.index[min_history - 1:]``
  (earlier rows are context for windowed agents). Direction agents also offer
  ``predict_proba`` (columns ``down, flat, up, confidence``).
- ``save(path)`` / ``Agent.load(path)`` round-trip exactly.

``X`` is the model input: feature columns plus the raw candle columns ``bar_open`` ...
``bar_volume`` (only the pattern agent reads those). ``y`` is the labels frame.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ai_trade_bot.errors import ConfigError, DataValidationError, ModelNotFittedError
from ai_trade_bot.features.frame import BAR_COLUMNS
from ai_trade_bot.modeling.calibration import Calibration, fit_calibration, identity

# The share of the held-out tail that calibrates (the rest picks the stopping point).
CALIBRATION_SHARE = 0.5
# ``informative`` is 0 where the agent's calibration found no edge over the class prior, so
# its probabilities *are* the prior: the decision layer never trades on such an output, and
# a meta-agent that only averages such agents is no better than the prior either.
DIRECTION_COLUMNS = ("down", "flat", "up", "confidence", "informative")


def feature_columns(X: pd.DataFrame) -> list[str]:
    """Scale-free feature columns of a model-input frame (everything but raw candles)."""
    return [c for c in X.columns if c not in BAR_COLUMNS]


class Agent(ABC):
    """Base class of every agent."""

    name: ClassVar[str]
    output_kind: ClassVar[str]  # "direction", "volatility" or "regime"
    output_columns: ClassVar[tuple[str, ...]]

    # -- hyperparameters ---------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        parameters = inspect.signature(type(self).__init__).parameters.values()
        names = [
            p.name
            for p in parameters
            if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        return {n: getattr(self, n) for n in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @property
    def min_history(self) -> int:
        """Rows one prediction needs (1 for tabular agents, the window for sequences)."""
        return 1

    # -- contract ----------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: pd.DataFrame,
        *,
        val_size: int = 0,
        gap: int = 0,
        evidence: Any = None,
    ) -> Agent:
        """Fit on ``X``/``y`` and calibrate (see the module docstring); returns ``self``.

        The last ``val_size`` rows are held out of fitting. The first part of them picks
        the stopping point (epochs, boosting rounds) and the last
        :data:`CALIBRATION_SHARE` of them calibrates: rows that chose the stopping point
        would flatter the model and pass noise for an edge. ``evidence``
        (:meth:`calibration_evidence` of earlier out-of-fold rows) joins the calibration's
        test of whether there is an edge at all.
        """
        calibration = int(val_size * CALIBRATION_SHARE) if val_size >= 4 else 0
        stop = len(X) - calibration
        self._fit(X.iloc[:stop], y.iloc[:stop], val_size=val_size - calibration, gap=gap)
        self._calibrate(
            X, y, val_size=val_size, gap=gap, calibration=calibration, evidence=evidence
        )
        return self

    def calibration_evidence(self, raw: pd.DataFrame, y: pd.DataFrame) -> Any:
        """What the calibration of a later model of this kind may judge its edge on: this
        model's uncalibrated outputs ``raw`` on rows it did not learn from, with their
        labels. Direction agents: (probabilities, direction labels); None for agents whose
        output is not calibrated."""
        if self.output_kind != "direction":
            return None
        labels = y["direction"].reindex(raw.index).to_numpy(dtype=np.float64)
        known = np.isfinite(labels)
        probs = raw[["down", "flat", "up"]].to_numpy(dtype=np.float64)[known]
        return probs, labels[known].astype(int)

    @abstractmethod
    def _fit(self, X: pd.DataFrame, y: pd.DataFrame, *, val_size: int, gap: int) -> None:
        """Fit the model itself (no calibration)."""

    def _calibrate(
        self,
        X: pd.DataFrame,
        y: pd.DataFrame,
        *,
        val_size: int,
        gap: int,
        calibration: int,
        evidence: Any = None,
    ) -> None:
        """Direction agents: temperature and shrinkage toward the class prior of the rows
        they saw, chosen on the last ``calibration`` held-out rows only (see
        :mod:`ai_trade_bot.modeling.calibration`). An agent that cannot beat the prior there
        outputs the prior."""
        if self.output_kind != "direction":
            return
        labels = self._check_labels(y, "direction")
        n_fit = len(X) - val_size - gap
        seen = np.concatenate([labels[:n_fit], labels[len(X) - val_size :]])
        prior = np.bincount(seen.astype(int), minlength=3) / max(len(seen), 1)
        if calibration == 0:
            self.calibration_ = identity(prior, "no held-out rows: not calibrated")
            return
        context = X.iloc[len(X) - calibration - (self.min_history - 1) :]
        raw = self._predict(context)[["down", "flat", "up"]].to_numpy(dtype=np.float64)
        self.calibration_ = fit_calibration(
            raw, labels[len(X) - calibration :], prior, evidence=evidence
        )

    @abstractmethod
    def _predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Typed output for ``X.index[min_history - 1:]`` (input already checked)."""

    def predict(self, X: pd.DataFrame, *, calibrated: bool = True) -> pd.DataFrame:
        """The agent's output, index-aligned with ``X.index[min_history - 1:]``
        (``calibrated=False``: a direction agent's network before calibration)."""
        self._check_fitted()
        self._check_input(X)
        return self._finish(self._predict(X), X.index[self.min_history - 1 :], calibrated)

    def _finish(self, out: pd.DataFrame, index: pd.Index, calibrated: bool = True) -> pd.DataFrame:
        """The raw output with the calibration applied (direction agents: and
        ``informative``), on ``index``; one frame built from arrays."""
        if self.output_kind != "direction":
            return out.set_axis(index, axis=0)
        probs = out[["down", "flat", "up"]].to_numpy(dtype=np.float64)
        values = self._calibrated(probs, out["confidence"].to_numpy(dtype=np.float64), calibrated)
        return pd.DataFrame(values, index=index, columns=list(DIRECTION_COLUMNS))

    def _calibrated(
        self, probs: np.ndarray, confidence: np.ndarray, calibrated: bool = True
    ) -> np.ndarray:
        """(n, 5) ``down, flat, up, confidence, informative`` from raw (n, 3) probabilities
        and (n,) confidences: the calibration applied (the batch and the streaming path)."""
        calibration = getattr(self, "calibration_", None) if calibrated else None
        if calibration is not None:
            probs = calibration.apply(probs)
            confidence = calibration.apply_confidence(confidence)
        collapsed = calibration is not None and calibration.collapsed
        informative = np.full(len(probs), 0.0 if collapsed else 1.0)
        return np.column_stack([probs, confidence, informative])

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        """Down/flat/up probabilities and ``confidence`` (direction agents only)."""
        if self.output_kind != "direction":
            raise TypeError(
                f"agent '{self.name}' outputs {self.output_kind}, not direction probabilities; "
                "use predict()."
            )
        return self.predict(X)

    # -- streaming (the live runner: one new feature row at a time) ------------------------
    @property
    def row_local(self) -> bool:
        """Whether each output reads its own row only: no window of rows (``min_history``
        1) and no filter carried over all rows (no :meth:`start_stream` of its own). Only
        such agents can be pooled over stacked symbols and run by the universe book."""
        return self.min_history == 1 and type(self).start_stream is Agent.start_stream

    def start_stream(self, context: pd.DataFrame) -> dict[str, Any]:
        """The stream state before the first streamed row; ``context`` holds the rows before
        it (its last ``min_history - 1`` rows are the first window's context).

        Streaming gives exactly ``predict(context[-(min_history - 1):] + streamed rows)``:
        agents whose output at t depends on more than the last ``min_history`` rows (a
        filter over all rows) carry that in the state (JSON-able)."""
        return {}

    def predict_next(
        self, rows: pd.DataFrame, state: dict[str, Any]
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The output for the last row of ``rows`` (at least its last ``min_history`` rows,
        newest last) and the state after it."""
        values, state = self.predict_next_values(
            rows.to_numpy(dtype=np.float64), rows.columns, rows.index, state
        )
        return pd.DataFrame(
            [values], index=rows.index[-1:], columns=list(self.output_columns)
        ), state

    def predict_next_values(
        self, values: np.ndarray, columns: pd.Index, index: pd.Index, state: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """:meth:`predict_next` on arrays: ``values`` are model-input rows (newest last) with
        ``columns`` and ``index``; returns the output row (``output_columns`` order). The
        live runner's path: agents override it to skip building frames (a pandas frame
        costs more than a small network's forward pass); this default predicts on a frame.
        """
        rows = slice(len(values) - self.min_history, None)
        frame = pd.DataFrame(values[rows], index=index[rows], columns=columns)
        out = self.predict(frame)
        return out.to_numpy(dtype=np.float64)[-1], state

    # -- persistence -------------------------------------------------------------------
    @abstractmethod
    def _save_state(self, path: Path) -> dict[str, Any]:
        """Write fitted state under ``path``; return JSON-able metadata."""

    @abstractmethod
    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        """Restore fitted state written by :meth:`_save_state`."""

    def save(self, path: str | Path) -> None:
        """Save hyperparameters and fitted state into the directory ``path``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = self._save_state(path)
        record = {
            "agent": self.name,
            "params": self.get_params(),
            "state": meta,
            "columns": self.columns_,
        }
        if getattr(self, "calibration_", None) is not None:
            record["calibration"] = self.calibration_.to_dict()
        (path / "agent.json").write_text(json.dumps(record, indent=2, default=str))

    @classmethod
    def load(cls, path: str | Path) -> Agent:
        """Load an agent saved by :meth:`save` (any agent type when called on ``Agent``)."""
        from ai_trade_bot.agents import get_agent_class

        path = Path(path)
        record = json.loads((path / "agent.json").read_text())
        agent_cls = get_agent_class(record["agent"])
        agent = agent_cls(**record["params"])
        agent.columns_ = record["columns"]
        agent._load_state(path, record["state"])
        if "calibration" in record:
            agent.calibration_ = Calibration.from_dict(record["calibration"])
        return agent

    # -- checks ------------------------------------------------------------------------
    def is_fitted(self) -> bool:
        return hasattr(self, "columns_")

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise ModelNotFittedError(
                f"agent '{self.name}' is not fitted yet; call fit(X, y) before predicting "
                "or saving."
            )

    def _positions(self, columns: pd.Index) -> np.ndarray:
        """Positions of ``self.columns_`` in ``columns``. They are kept for the last column
        index seen: the live runner passes the same columns every candle, and selecting a
        hundred columns by name costs more than the network."""
        cached = getattr(self, "_positions_for", None)
        if cached is None or cached[0] is not columns:
            positions = columns.get_indexer(self.columns_)
            if (positions < 0).any():
                missing = [c for c, k in zip(self.columns_, positions, strict=True) if k < 0]
                raise DataValidationError(
                    f"agent '{self.name}': input lacks column(s) {missing[:5]} it was fitted on."
                )
            cached = self._positions_for = (columns, positions)
        return cached[1]

    def _selected(self, X: pd.DataFrame, dtype: Any = np.float64) -> np.ndarray:
        """``X[self.columns_]`` as an array."""
        values = X.to_numpy(dtype=np.float64, copy=False)[:, self._positions(X.columns)]
        return values if dtype == np.float64 else values.astype(dtype)

    def _stream_rows(
        self, values: np.ndarray, columns: pd.Index, index: pd.Index, rows: int
    ) -> np.ndarray:
        """The streaming path's input: the selected columns of the last ``rows`` rows,
        checked as :meth:`_check_input` checks a frame."""
        self._check_fitted()
        selected = values[len(values) - rows :, self._positions(columns)]
        if len(selected) < rows or not np.isfinite(selected).all():
            start = max(len(values) - rows, 0)
            frame = pd.DataFrame(values[start:], index=index[start:], columns=columns)
            self._check_input(frame, needed=rows)
        return selected

    def _check_input(self, X: pd.DataFrame, *, needed: int | None = None) -> None:
        needed = self.min_history if needed is None else needed
        if len(X) < needed:
            raise DataValidationError(
                f"agent '{self.name}' needs a history of at least {needed} rows (window "
                f"{self.min_history}), got {len(X)}."
            )
        fitted = self.is_fitted()
        cols = self.columns_ if fitted else list(X.columns)
        values = self._selected(X) if fitted else X.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataValidationError(
                f"agent '{self.name}': input has NaN/inf, first in column '{cols[col]}' at "
                f"{X.index[row]}; drop the feature warm-up rows (features.dropna()) first."
            )

    def _check_labels(self, y: pd.DataFrame, column: str) -> np.ndarray:
        if column not in y.columns:
            raise DataValidationError(
                f"agent '{self.name}' needs label column '{column}', got {list(y.columns)}."
            )
        values = y[column].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataValidationError(
                f"agent '{self.name}': label '{column}' has NaN (the last horizon rows have no "
                "future); drop them before fit."
            )
        return values


def check_hyperparameter(agent: str, name: str, value: Any, ok: bool, rule: str) -> None:
    """Raise a ConfigError naming the agent, parameter and rule when ``ok`` is False."""
    if not ok:
        raise ConfigError(f"agents.{agent}.{name}={value!r}: {rule}")


def direction_frame(probs: np.ndarray, confidence: np.ndarray) -> pd.DataFrame:
    """A direction output frame from (n, 3) probabilities and (n,) confidences."""
    return pd.DataFrame(
        {"down": probs[:, 0], "flat": probs[:, 1], "up": probs[:, 2], "confidence": confidence}
    )
