"""Out-of-sample scores for agent outputs (classification and volatility): the one home
of the log-loss and QLIKE every module scores with (calibration, the meta-agent's
selection, training summaries, the volatility agent and its torch loss)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

CLASSES = (0, 1, 2)
EPS = 1e-12  # the smallest probability a log-loss takes the log of


def row_log_losses(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each integer label ``y`` under its row of ``probs``
    (n, 3), probabilities clipped at :data:`EPS`."""
    picked = probs[np.arange(len(y)), np.asarray(y).astype(int)]
    return -np.log(np.clip(picked, EPS, 1.0))


def log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean of :func:`row_log_losses`."""
    return float(np.mean(row_log_losses(y, probs)))


def qlike_terms(ratio: Any) -> Any:
    """QLIKE (Patton 2011) of realized over predicted variance ratios, ``r/p - log(r/p) -
    1`` (0 for a perfect forecast), for numpy arrays and torch tensors alike (the training
    loss is this formula)."""
    log = ratio.log() if hasattr(ratio, "log") else np.log(ratio)
    return ratio - log - 1.0


def brier_multiclass(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean over rows of the squared distance between probabilities and the one-hot label."""
    onehot = np.eye(3)[y_true.astype(int)]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def direction_scores(
    y_true: np.ndarray, probs: np.ndarray, prior: np.ndarray | None = None
) -> dict[str, float]:
    """Accuracy, macro-F1, log-loss and Brier; with ``prior`` also the same scores of the
    constant prior forecast, the bar any agent must clear.

    ``prior`` is one row of class shares, or one row per label (the prior each
    walk-forward fold's model had: the class shares of the rows it was fit on).
    """
    y_true = y_true.astype(int)
    probs = np.clip(probs, 1e-12, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    scores = {
        "accuracy": float(accuracy_score(y_true, probs.argmax(axis=1))),
        "macro_f1": macro_f1(y_true, probs.argmax(axis=1)),
        "log_loss": log_loss(y_true, probs),
        "brier": brier_multiclass(y_true, probs),
        "n": float(len(y_true)),
    }
    if prior is not None:
        prior_probs = np.clip(np.asarray(prior, dtype=np.float64), 1e-12, 1.0)
        if prior_probs.ndim == 1:
            prior_probs = np.tile(prior_probs, (len(y_true), 1))
        prior_probs = prior_probs / prior_probs.sum(axis=1, keepdims=True)
        scores["prior_accuracy"] = float(np.mean(y_true == prior_probs.argmax(axis=1)))
        scores["prior_log_loss"] = log_loss(y_true, prior_probs)
        scores["prior_brier"] = brier_multiclass(y_true, prior_probs)
        scores["prior_macro_f1"] = macro_f1(y_true, prior_probs.argmax(axis=1))
    return scores


def macro_f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """F1 averaged over down/flat/up (0 for a class never predicted)."""
    return float(
        f1_score(y_true, predicted, average="macro", labels=list(CLASSES), zero_division=0)
    )


def qlike_rows(pred_var: np.ndarray, realized_var: np.ndarray) -> np.ndarray:
    """QLIKE (Patton 2011) per row: r/p - log(r/p) - 1; 0 for a perfect forecast."""
    return qlike_terms(np.maximum(realized_var, 1e-18) / np.maximum(pred_var, 1e-18))


def qlike_loss(pred_var: np.ndarray, realized_var: np.ndarray) -> float:
    """Mean QLIKE (see :func:`qlike_rows`)."""
    return float(np.mean(qlike_rows(pred_var, realized_var)))


def volatility_scores(
    pred_vol: np.ndarray, garch_vol: np.ndarray, realized_vol: np.ndarray
) -> dict[str, float]:
    """QLIKE and log-RMSE of the agent and of its plain GARCH baseline (per-bar vol)."""
    realized_var = realized_vol**2
    log_rv = np.log(np.maximum(realized_vol, 1e-12))
    return {
        "qlike": qlike_loss(pred_vol**2, realized_var),
        "qlike_garch": qlike_loss(garch_vol**2, realized_var),
        "log_rmse": float(np.sqrt(np.mean((np.log(pred_vol) - log_rv) ** 2))),
        "log_rmse_garch": float(np.sqrt(np.mean((np.log(garch_vol) - log_rv) ** 2))),
        "n": float(len(realized_vol)),
    }


def class_prior(labels: pd.Series) -> np.ndarray:
    """Class shares of down/flat/up in ``labels`` (unknown labels skipped)."""
    counts = labels.dropna().astype(int).value_counts().reindex(CLASSES, fill_value=0).to_numpy()
    return counts / max(counts.sum(), 1)


def oof_reference(oof: pd.DataFrame, labels: pd.Series) -> dict[str, dict[str, Any]]:
    """Out-of-fold figures per agent (and ``meta`` where the frame has ``meta.*``): what a
    bundle carries so the live figures can be read against it."""
    out: dict[str, dict[str, Any]] = {}
    agents = sorted({str(c)[: -len(".up")] for c in oof.columns if str(c).endswith(".up")})
    y = labels.reindex(oof.index)
    for agent in agents:
        probs = oof[[f"{agent}.down", f"{agent}.flat", f"{agent}.up"]]
        known = probs.notna().all(axis=1).to_numpy() & y.notna().to_numpy()
        if not known.any():
            continue
        p = probs.to_numpy(dtype=np.float64)[known]
        labels_known = y.to_numpy()[known].astype(int)
        hit = p.argmax(axis=1) == labels_known
        loss = row_log_losses(labels_known, p)
        out[agent] = {
            "accuracy": float(hit.mean()),
            "log_loss": float(loss.mean()),
            "rows": int(known.sum()),
            "predicted_shares": (np.bincount(p.argmax(axis=1), minlength=3) / len(p)).tolist(),
        }
    return out
