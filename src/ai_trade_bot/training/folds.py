"""Walk-forward folds with a purge of the label horizon, an embargo and a held-out test span."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ai_trade_bot.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """Positions into the model-input rows (all sorted, disjoint)."""

    number: int
    train: np.ndarray  # fit rows (early-stopping rows removed)
    val: np.ndarray  # early-stopping tail of the training window
    test: np.ndarray  # the next block, predicted out of fold


@dataclass(frozen=True)
class WalkForwardConfig:
    """``params:train.walk_forward``.

    Args:
        n_folds: Out-of-fold blocks over the pre-test span.
        mode: ``expanding`` (train from the start) or ``rolling`` (last ``train_size`` rows).
        min_train_fraction: Share of the pre-test span used as the first training window.
        train_size: Rows in a rolling window (ignored when expanding).
        val_fraction: Tail of each training window kept for early stopping.
        purge: Rows dropped between training rows and the rows evaluated after them
            (>= the label horizon), so no training label overlaps a validation or test row.
        embargo: Extra rows dropped after the purge, against serial correlation of features.
        test_fraction: Final share of all rows held out; nothing trains or tunes on it.
    """

    n_folds: int = 5
    mode: str = "expanding"
    min_train_fraction: float = 0.4
    train_size: int | None = None
    val_fraction: float = 0.15
    purge: int = 5
    embargo: int = 5
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.mode not in {"expanding", "rolling"}:
            raise ValueError(f"mode must be 'expanding' or 'rolling', got {self.mode!r}")
        if self.mode == "rolling" and not self.train_size:
            raise ValueError("mode 'rolling' needs train_size (rows per training window)")
        if self.n_folds < 1:
            raise ValueError(f"n_folds must be >= 1, got {self.n_folds}")
        for name in ("min_train_fraction", "val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.purge < 0 or self.embargo < 0:
            raise ValueError("purge and embargo must be >= 0")


def holdout_start(n_rows: int, config: WalkForwardConfig) -> int:
    """First position of the held-out test span."""
    return n_rows - round(n_rows * config.test_fraction)


def _train_val(window: np.ndarray, config: WalkForwardConfig) -> tuple[np.ndarray, np.ndarray]:
    """Split a training window into fit rows and an early-stopping tail, purged between."""
    n_val = round(len(window) * config.val_fraction)
    if n_val == 0:
        return window, window[:0]
    val = window[-n_val:]
    train = window[: max(0, len(window) - n_val - config.purge - config.embargo)]
    return train, val


def walk_forward_folds(n_rows: int, config: WalkForwardConfig) -> list[Fold]:
    """Folds over the pre-test span: train on the past, predict the next block.

    Training rows end ``purge + embargo`` rows before each test block, and the
    early-stopping tail is purged from the fit rows the same way.

    Raises:
        ConfigError: If the span is too short for the requested folds.
    """
    pre_test = holdout_start(n_rows, config)
    first_test = int(pre_test * config.min_train_fraction)
    block = (pre_test - first_test) // config.n_folds
    if block < 1 or first_test - config.purge - config.embargo < 2:
        raise ConfigError(
            f"walk_forward: {n_rows} rows ({pre_test} before the test span) are too few for "
            f"{config.n_folds} folds with min_train_fraction={config.min_train_fraction}; "
            "use fewer folds or more data."
        )
    folds = []
    for k in range(config.n_folds):
        start = first_test + k * block
        stop = pre_test if k == config.n_folds - 1 else start + block
        train_end = start - config.purge - config.embargo
        train_start = 0 if config.mode == "expanding" else max(0, train_end - config.train_size)
        train, val = _train_val(np.arange(train_start, train_end), config)
        folds.append(Fold(k, train, val, np.arange(start, stop)))
    return folds


# The smallest fit window (rows) a fold may have; fewer leave nothing to learn from.
MIN_FIT_ROWS = 100


def folds_problem(n_rows: int, config: WalkForwardConfig, min_fit_rows: int = MIN_FIT_ROWS):
    """Why ``n_rows`` model-input rows cannot be split into ``config``'s folds, or None."""
    try:
        folds = walk_forward_folds(n_rows, config)
    except ConfigError as exc:
        return str(exc)
    short = [f.number for f in folds if len(f.train) < min_fit_rows]
    if short:
        return (
            f"fold {short[0]} would fit on {len(folds[short[0]].train)} rows, fewer than "
            f"{min_fit_rows}"
        )
    return None


def minimum_rows(config: WalkForwardConfig, min_fit_rows: int = MIN_FIT_ROWS) -> int:
    """The fewest model-input rows for which every fold has ``min_fit_rows`` fit rows."""
    lo, hi = 1, 1
    while folds_problem(hi, config, min_fit_rows) is not None:
        lo, hi = hi, hi * 2
        if hi > 10**9:
            raise ConfigError(f"walk_forward: no history is long enough for {config}")
    while lo < hi:  # more rows never make the folds shorter
        mid = (lo + hi) // 2
        if folds_problem(mid, config, min_fit_rows) is None:
            hi = mid
        else:
            lo = mid + 1
    return hi


def final_fit_rows(n_rows: int, config: WalkForwardConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rows for the deployment fit: all pre-test rows (purged before the test span)."""
    end = holdout_start(n_rows, config) - config.purge - config.embargo
    start = 0 if config.mode == "expanding" else max(0, end - config.train_size)
    return _train_val(np.arange(start, end), config)
