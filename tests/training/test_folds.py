"""Walk-forward folds: purge, embargo and the held-out test span."""

from __future__ import annotations

import numpy as np
import pytest

from ai_trade_bot.config import parse_config
from ai_trade_bot.errors import ConfigError
from ai_trade_bot.training.folds import (
    WalkForwardConfig,
    final_fit_rows,
    holdout_start,
    walk_forward_folds,
)


@pytest.mark.parametrize(
    "config",
    [
        WalkForwardConfig(n_folds=5, purge=5, embargo=3),
        WalkForwardConfig(n_folds=3, mode="rolling", train_size=300, purge=10, embargo=0),
        WalkForwardConfig(n_folds=4, purge=0, embargo=7, val_fraction=0.0),
    ],
)
def test_no_training_row_within_purge_or_embargo_and_test_span_unused(config) -> None:
    n = 2000
    folds = walk_forward_folds(n, config)
    test_start = holdout_start(n, config)
    assert test_start == n - 400
    gap = config.purge + config.embargo
    for fold in folds:
        fitted = np.concatenate([fold.train, fold.val])
        assert fitted.max() < fold.test.min() - gap  # purge + embargo before the test block
        if len(fold.val):
            assert fold.train.max() < fold.val.min() - gap  # and before the val tail
        assert fold.test.max() < test_start
        assert np.all(np.diff(fold.test) == 1)
        if config.mode == "rolling":
            assert len(fold.train) + len(fold.val) + gap <= config.train_size
    blocks = np.concatenate([f.test for f in folds])
    assert np.all(np.diff(blocks) == 1) and blocks.max() == test_start - 1
    train, val = final_fit_rows(n, config)
    assert max(train.max(), val.max() if len(val) else -1) < test_start - gap


def test_bad_configurations_fail_by_name() -> None:
    with pytest.raises(ConfigError, match="mode 'rolling' needs train_size"):
        parse_config(WalkForwardConfig, {"mode": "rolling"}, name="train.walk_forward")
    with pytest.raises(ConfigError, match="too few for 50 folds"):
        walk_forward_folds(100, WalkForwardConfig(n_folds=50))
