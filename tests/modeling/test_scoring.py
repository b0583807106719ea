"""The one home of the log-loss and QLIKE, against scikit-learn and numbers by hand; the
torch training loss is the same QLIKE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss as sklearn_log_loss

from ai_trade_bot.modeling.scoring import (
    EPS,
    direction_scores,
    log_loss,
    qlike_loss,
    qlike_rows,
    row_log_losses,
)
from ai_trade_bot.nn.module import qlike


def test_log_loss_equals_scikit_learn_and_clips_at_eps() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=200)
    y = rng.integers(0, 3, size=200)
    assert log_loss(y, probs) == pytest.approx(sklearn_log_loss(y, probs, labels=[0, 1, 2]))
    assert direction_scores(y, probs)["log_loss"] == pytest.approx(log_loss(y, probs))
    certain = np.array([[1.0, 0.0, 0.0]])
    assert row_log_losses(np.array([1]), certain)[0] == pytest.approx(-np.log(EPS))


def test_qlike_by_hand_and_the_torch_loss_is_the_same_formula() -> None:
    realized, predicted = np.array([1.0, 4.0, 0.25]), np.array([1.0, 1.0, 1.0])
    expected = [0.0, 4 - np.log(4) - 1, 0.25 - np.log(0.25) - 1]
    np.testing.assert_allclose(qlike_rows(predicted, realized), expected, rtol=1e-12)
    assert qlike_loss(predicted, realized) == pytest.approx(np.mean(expected))
    rng = np.random.default_rng(1)
    pred_var, real_var = rng.uniform(0.1, 2.0, 50), rng.uniform(0.1, 2.0, 50)
    torch_loss = qlike(torch.tensor(np.log(pred_var)), torch.tensor(real_var))
    assert float(torch_loss) == pytest.approx(qlike_loss(pred_var, real_var), rel=1e-12)
