"""Volatility agent: GARCH(1,1) baseline from arch, corrected by an MLP on features."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from ai_trade_bot.agents.base import check_hyperparameter, feature_columns
from ai_trade_bot.agents.torch_agent import TorchAgent
from ai_trade_bot.features._numba_kernels import garch_filter
from ai_trade_bot.modeling.calibration import credible_gain
from ai_trade_bot.modeling.scoring import qlike_rows
from ai_trade_bot.nn.networks import MLP

# Candidate weights of the MLP's log-variance correction (0 = plain GARCH).
CORRECTION_WEIGHTS = np.linspace(0.0, 1.0, 21)

# E[ln(high/low)] of a Brownian bar with per-bar std sigma is sqrt(8/pi) * sigma.
RANGE_PER_SIGMA = float(np.sqrt(8.0 / np.pi))


def _weight_losses(base: np.ndarray, correction: np.ndarray, realized: np.ndarray) -> np.ndarray:
    """QLIKE per candidate weight (rows) and per forecast (columns)."""
    return np.array(
        [qlike_rows(np.exp(base + w * correction), realized) for w in CORRECTION_WEIGHTS]
    )


def _cross_fitted_gain(losses: np.ndarray) -> np.ndarray:
    """Per-forecast QLIKE gain over plain GARCH of the weight the *other* half of the
    forecasts chose (earlier half <-> later half): the grid's own pick is not judged on
    the rows it was picked on."""
    n = losses.shape[1]
    if n < 4:
        return np.zeros(n)
    half = n // 2
    parts = (slice(0, half), slice(half, n))
    gains = []
    for fit, held in (parts, parts[::-1]):
        chosen = int(np.argmin(losses[:, fit].mean(axis=1)))
        gains.append(losses[0, held] - losses[chosen, held])
    return np.concatenate(gains)


class VolatilityAgent(TorchAgent):
    """Forecasts next-candle volatility and range.

    GARCH(1,1) is fit on the training rows' log returns only; its one-step variance is the
    baseline, and an MLP learns a log-variance correction from the features, trained on
    the realized variance per bar over the label horizon (log-MSE or QLIKE).
    ``burn_in`` rows let the GARCH filter forget its starting value before predictions.
    """

    training_defaults = {**TorchAgent.training_defaults, "max_epochs": 50, "batch_size": 256}

    name = "volatility"
    output_kind = "volatility"
    output_columns = ("pred_vol", "pred_range", "garch_vol")
    task = "volatility"
    squeeze = True

    def __init__(
        self,
        horizon: int = 5,
        burn_in: int = 100,
        hidden: int = 32,
        dropout: float = 0.1,
        loss: str = "qlike",
        **training: Any,
    ) -> None:
        self.horizon, self.burn_in, self.hidden, self.dropout = horizon, burn_in, hidden, dropout
        self.loss = loss
        check_hyperparameter(
            self.name, "loss", loss, loss in {"log_mse", "qlike"}, "must be 'log_mse' or 'qlike'"
        )
        self._init_training(burn_in, training)

    def _select_columns(self, X: pd.DataFrame) -> list[str]:
        if "log_return" not in X.columns:
            raise ValueError(f"agent '{self.name}' needs the 'log_return' feature")
        return feature_columns(X)

    def _prepare(self, X: pd.DataFrame, y: pd.DataFrame, fit_rows: int) -> None:
        from arch import arch_model  # imported to fit only (start-up time)

        returns = X["log_return"].to_numpy(dtype=np.float64)[:fit_rows]
        scale = 1.0 / returns.std() if returns.std() > 0 else 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = arch_model(
                returns * scale, mean="Zero", vol="GARCH", p=1, q=1, rescale=False
            ).fit(disp="off", show_warning=False)
        self.garch_ = np.array(
            [
                res.params["omega"] / scale**2,
                res.params["alpha[1]"],
                res.params["beta[1]"],
                float(returns.var()),
            ]
        )

    def _baseline(self, X: pd.DataFrame, var0: float | None = None) -> tuple[np.ndarray, float]:
        """GARCH log-variance forecasts for X's rows, filtered from ``var0`` (None: the
        training variance), and the variance after the last row."""
        return self._baseline_of(X["log_return"].to_numpy(dtype=np.float64), var0)

    def _baseline_of(self, eps: np.ndarray, var0: float | None) -> tuple[np.ndarray, float]:
        """:meth:`_baseline` of the log returns ``eps``."""
        n = len(eps)
        omega, alpha, beta, train_var = self.garch_
        start = train_var if var0 is None else var0
        var = garch_filter(eps, np.full(n, omega), np.full(n, alpha), np.full(n, beta), start)
        last = float(var[-1]) if n and np.isfinite(var[-1]) else start
        return np.log(np.maximum(var, 1e-18)), last

    def _baseline_log_var(self, X: pd.DataFrame) -> np.ndarray:
        return self._baseline(X)[0]

    def _inputs(self, X: pd.DataFrame) -> np.ndarray:
        return self._with_base(self._selected(X), self._baseline_log_var(X))

    def _with_base(self, selected: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The scaled features and the GARCH log variance (the MLP's inputs)."""
        scaled = self._input_array(selected)
        return np.concatenate([scaled, base.astype(np.float32)[:, None]], axis=1)

    def _targets(self, X: pd.DataFrame, y: pd.DataFrame) -> np.ndarray:
        column = f"fwd_realized_vol_{self.horizon}"
        realized_var = self._check_labels(y, column) ** 2 / self.horizon
        base = self._baseline_log_var(X)
        return np.stack([base, np.maximum(realized_var, 1e-18)], axis=1).astype(np.float32)

    def _build_net(self, n_inputs: int) -> nn.Module:
        return MLP(n_inputs, self.hidden, 1, self.dropout)

    def _module_kwargs(self) -> dict[str, Any]:
        return {"vol_loss": self.loss}

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
        """Shrink the MLP's correction toward none: ``log var = garch + w * correction``
        with ``w`` in [0, 1] chosen by QLIKE on the calibration rows only. A weight is
        kept only when its gain over plain GARCH is credible on rows it was not chosen on
        (each half of the calibration rows judged by the weight the other half chose,
        and earlier out-of-fold rows in ``evidence`` the same way; see
        :func:`ai_trade_bot.modeling.calibration.credible_gain`); otherwise plain GARCH
        is kept, so the agent is not worse than GARCH out of fold by its own choice."""
        self.correction_weight_ = 1.0
        if calibration == 0:
            return
        context = X.iloc[len(X) - calibration - (self.window - 1) :]
        saved, self.correction_weight_ = self.correction_weight_, 1.0
        out = self._predict(context)
        self.correction_weight_ = saved
        base = np.log(out["garch_vol"].to_numpy() ** 2)
        correction = np.log(out["pred_vol"].to_numpy() ** 2) - base
        column = f"fwd_realized_vol_{self.horizon}"
        realized = self._check_labels(y, column)[len(X) - calibration :] ** 2 / self.horizon
        rows = _weight_losses(base, correction, realized)
        best = int(np.argmin(rows.mean(axis=1)))
        gain = _cross_fitted_gain(rows)
        if evidence is not None and len(evidence[0]) >= 4:
            gain = np.concatenate([gain, _cross_fitted_gain(_weight_losses(*evidence))])
        credible, _ = credible_gain(gain)
        self.correction_weight_ = float(CORRECTION_WEIGHTS[best]) if credible and best else 0.0
        self.val_qlike_ = float(rows[best if credible else 0].mean())
        self.val_qlike_garch_ = float(rows[0].mean())

    def predict(self, X: pd.DataFrame, *, calibrated: bool = True) -> pd.DataFrame:
        """The forecast (``calibrated=False``: the MLP's whole correction, weight 1)."""
        if calibrated:
            return super().predict(X)
        saved, self.correction_weight_ = self.correction_weight_, 1.0
        try:
            return super().predict(X)
        finally:
            self.correction_weight_ = saved

    def calibration_evidence(self, raw: pd.DataFrame, y: pd.DataFrame) -> Any:
        """(GARCH log variance, the MLP's whole correction, realized variance) of rows out
        of fold, from :meth:`predict` with ``calibrated=False``."""
        column = f"fwd_realized_vol_{self.horizon}"
        realized = y[column].reindex(raw.index).to_numpy(dtype=np.float64) ** 2 / self.horizon
        base = np.log(raw["garch_vol"].to_numpy(dtype=np.float64) ** 2)
        correction = np.log(raw["pred_vol"].to_numpy(dtype=np.float64) ** 2) - base
        known = np.isfinite(realized) & np.isfinite(correction)
        return base[known], correction[known], realized[known]

    def start_stream(self, context: pd.DataFrame) -> dict[str, Any]:
        """The GARCH filter runs over the first window's context, as in ``predict``."""
        rows = context.iloc[len(context) - (self.window - 1) :] if self.window > 1 else None
        if rows is None or rows.empty:
            return {"var": float(self.garch_[3])}
        return {"var": self._baseline(rows)[1]}

    def predict_next_values(
        self, values: np.ndarray, columns: pd.Index, index: pd.Index, state: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        selected = self._stream_rows(values, columns, index, 1)
        eps = selected[:, self.columns_.index("log_return")]
        base, var = self._baseline_of(eps, state["var"])
        raw = self._forward_last(self._with_base(selected, base))
        return self._format_values(raw, base)[-1], {"var": var}

    def _outputs(self, raw: Any, X: pd.DataFrame) -> pd.DataFrame:
        return self._format(raw, self._baseline_log_var(X)[self.window - 1 :])

    def _format(self, raw: np.ndarray, base: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(self._format_values(raw, base), columns=list(self.output_columns))

    def _format_values(self, raw: np.ndarray, base: np.ndarray) -> np.ndarray:
        """(n, 3) ``pred_vol, pred_range, garch_vol`` from the MLP's corrections and the
        GARCH log variances."""
        weight = getattr(self, "correction_weight_", 1.0)
        vol = np.sqrt(np.exp(base + weight * raw.reshape(len(base)).astype(np.float64)))
        return np.column_stack([vol, RANGE_PER_SIGMA * vol, np.sqrt(np.exp(base))])

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"garch": self.garch_, "correction_weight": np.array([self.correction_weight_])}

    def _set_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.garch_ = arrays["garch"]
        self.correction_weight_ = float(arrays["correction_weight"][0])
