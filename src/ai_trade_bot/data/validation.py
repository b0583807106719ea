"""Validate normalised candles with pandera; quarantine rule breakers with the reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from ai_trade_bot.data.calendar import infer_calendar, missing_bars
from ai_trade_bot.data.timeframes import timeframe_to_timedelta
from ai_trade_bot.errors import DataValidationError

logger = logging.getLogger(__name__)

PRICE_COLUMNS = ["open", "high", "low", "close"]
# When a row breaks several rules, the first one in this order is reported.
RULES = [
    "prices_finite_positive",
    "volume_finite_non_negative",
    "high_ge_max_open_close",
    "low_le_min_open_close",
    "duplicate_timestamp",
    "return_outlier",
]


@dataclass(frozen=True)
class ValidationConfig:
    """Validation thresholds (``params:ingestion.validation``)."""

    max_rejected_fraction: float = 0.05
    outlier_sigmas: float = 12.0
    reject_outliers: bool = False
    max_listed: int = 20
    # A spacing that hides up to this many of the market's usual trading bars is not a gap
    # (the calendar is inferred from the data: nights and weekends of equities are not gaps).
    gap_tolerance_bars: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.max_rejected_fraction <= 1:
            raise ValueError(
                f"max_rejected_fraction must be in [0, 1], got {self.max_rejected_fraction}"
            )
        if self.outlier_sigmas <= 0:
            raise ValueError(f"outlier_sigmas must be > 0, got {self.outlier_sigmas}")
        if self.gap_tolerance_bars < 0:
            raise ValueError(f"gap_tolerance_bars must be >= 0, got {self.gap_tolerance_bars}")


# The row rules as numpy predicates (True: the row keeps the rule). The pandera schema
# below runs them for ingestion; the live runner checks each new candle with the same
# functions (:func:`candle_rule`), so a candle is judged alike wherever it comes from.
def _positive(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)


def _non_negative(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= 0)


def _high_brackets(high: np.ndarray, open_: np.ndarray, close: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return high >= np.maximum(open_, close)


def _low_brackets(low: np.ndarray, open_: np.ndarray, close: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return low <= np.minimum(open_, close)


def candle_rule(open_: float, high: float, low: float, close: float, volume: float) -> str | None:
    """The first row rule (in :data:`RULES` order) one candle breaks, or None."""
    prices = np.array([open_, high, low, close], dtype=np.float64)
    if not _positive(prices).all():
        return "prices_finite_positive"
    if not _non_negative(np.array([volume], dtype=np.float64))[0]:
        return "volume_finite_non_negative"
    if not _high_brackets(prices[1:2], prices[0:1], prices[3:4])[0]:
        return "high_ge_max_open_close"
    if not _low_brackets(prices[2:3], prices[0:1], prices[3:4])[0]:
        return "low_le_min_open_close"
    return None


def _column_check(check: str, predicate) -> pa.Check:
    def fn(series: pd.Series) -> pd.Series:
        return pd.Series(predicate(series.to_numpy(dtype=np.float64)), index=series.index)

    return pa.Check(fn, name=check, ignore_na=False)


def _frame_check(check: str, predicate, column: str) -> pa.Check:
    def fn(df: pd.DataFrame) -> pd.Series:
        values = (df[k].to_numpy(dtype=np.float64) for k in (column, "open", "close"))
        return pd.Series(predicate(*values), index=df.index)

    return pa.Check(fn, name=check, ignore_na=False)


# Row rules, as named pandera checks on a positionally indexed frame, so that every failure
# maps back to a row and a rule.
ROW_SCHEMA = pa.DataFrameSchema(
    columns={
        **{
            col: pa.Column(
                "float64", _column_check("prices_finite_positive", _positive), nullable=True
            )
            for col in PRICE_COLUMNS
        },
        "volume": pa.Column(
            "float64", _column_check("volume_finite_non_negative", _non_negative), nullable=True
        ),
    },
    checks=[
        _frame_check("high_ge_max_open_close", _high_brackets, "high"),
        _frame_check("low_le_min_open_close", _low_brackets, "low"),
    ],
    strict=True,
)

# What `ohlcv_clean` promises downstream.
CLEAN_SCHEMA = pa.DataFrameSchema(
    columns={col: pa.Column("float64", nullable=False) for col in [*PRICE_COLUMNS, "volume"]},
    index=pa.Index(
        "datetime64[ns, UTC]",
        name="timestamp",
        unique=True,
        checks=pa.Check(lambda idx: idx.is_monotonic_increasing, name="increasing"),
    ),
    strict=True,
)


def _row_rules(frame: pd.DataFrame) -> np.ndarray:
    """Return, per row, the first rule it broke (or None)."""
    positional = frame.reset_index(drop=True)
    failed: dict[str, set[int]] = {rule: set() for rule in RULES}
    try:
        ROW_SCHEMA.validate(positional, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases.dropna(subset=["index"])
        for check, position in zip(cases["check"], cases["index"], strict=True):
            if check in failed:
                failed[check].add(int(position))
    out = np.full(len(frame), None, dtype=object)
    for rule in reversed(RULES):
        rows = sorted(failed[rule])
        out[rows] = rule
    return out


def _robust_return_outliers(close: pd.Series, sigmas: float) -> pd.Series:
    """Flag log returns beyond ``sigmas`` robust (MAD-scaled) deviations from the median."""
    log_ret = np.log(close).diff()
    median = log_ret.median()
    mad = (log_ret - median).abs().median() * 1.4826
    if not np.isfinite(mad) or mad == 0:
        return pd.Series(False, index=close.index)
    return ((log_ret - median).abs() / mad > sigmas).fillna(False)


def _gaps(index: pd.DatetimeIndex, bar: pd.Timedelta, tolerance: float, limit: int) -> dict:
    """Spacings that hide more than ``tolerance`` bars the market usually trades (judged
    against the weekly calendar the data shows, so nights, weekends and holidays of an
    equity or FX market are not gaps, while a missing hour of a 24/7 market is)."""
    calendar = infer_calendar(index, bar)
    missing = missing_bars(index, bar, calendar)
    where = np.flatnonzero(missing > tolerance)
    return {
        "count": int(where.size),
        "missing_bars": int(missing[where].sum()),
        "largest": str(max((index[k + 1] - index[k] for k in where), default=None) or None),
        "calendar": calendar.describe() if calendar else "every slot (history under 2 weeks)",
        "first": [
            {
                "after": str(index[k]),
                "before": str(index[k + 1]),
                "missing_bars": int(missing[k]),
            }
            for k in where[:limit]
        ],
    }


def _example(frame: pd.DataFrame, position: int) -> dict[str, Any]:
    row = frame.iloc[position]
    return {"row": position, "timestamp": str(frame.index[position]), **row.to_dict()}


def validate_ohlcv(
    frame: pd.DataFrame,
    *,
    timeframe: str,
    config: ValidationConfig,
    source: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split candles into kept and rejected rows and summarise data quality.

    Args:
        frame: Normalised candles (see ``normalise_ohlcv``), in any order.
        timeframe: Bar length such as ``"1d"``, for gap detection.
        config: Thresholds.
        source: File or source name, for error messages.

    Returns:
        ``(clean, rejected, summary)``: clean candles sorted and unique; rejected rows with
        ``rule`` and ``source_row`` columns; a JSON-able quality summary.

    Raises:
        DataValidationError: If the rejected share exceeds ``config.max_rejected_fraction``.
    """
    n_in = len(frame)
    order = np.argsort(frame.index.to_numpy(), kind="stable")
    ordered = frame.iloc[order]
    rules = _row_rules(ordered)
    valid = rules == None  # noqa: E711
    dup_among_valid = ordered.index[valid].duplicated(keep="first")
    rules[np.flatnonzero(valid)[dup_among_valid]] = "duplicate_timestamp"

    kept_mask = rules == None  # noqa: E711
    outliers = _robust_return_outliers(ordered["close"][kept_mask], config.outlier_sigmas)
    outlier_times = [str(t) for t in outliers[outliers].index]
    if config.reject_outliers and outliers.any():
        positions = np.flatnonzero(kept_mask)[outliers.to_numpy()]
        rules[positions] = "return_outlier"
        kept_mask = rules == None  # noqa: E711

    clean = ordered[kept_mask]
    rejected = ordered[~kept_mask].assign(
        rule=rules[~kept_mask].astype(str), source_row=order[~kept_mask]
    )
    assert len(clean) + len(rejected) == n_in
    CLEAN_SCHEMA.validate(clean)

    by_rule = rejected["rule"].value_counts().reindex(RULES, fill_value=0)
    summary: dict[str, Any] = {
        "source": source,
        "timeframe": timeframe,
        "rows_in": n_in,
        "rows_kept": len(clean),
        "rows_rejected": len(rejected),
        "rejected_fraction": len(rejected) / n_in if n_in else 0.0,
        "rejected_by_rule": {k: int(v) for k, v in by_rule.items()},
        "first": str(clean.index.min()) if len(clean) else None,
        "last": str(clean.index.max()) if len(clean) else None,
        "gaps": _gaps(
            clean.index,
            timeframe_to_timedelta(timeframe),
            config.gap_tolerance_bars,
            config.max_listed,
        ),
        "return_outliers": {
            "count": len(outlier_times),
            "sigmas": config.outlier_sigmas,
            "rejected": bool(config.reject_outliers),
            "first": outlier_times[: config.max_listed],
        },
    }
    if summary["rejected_fraction"] > config.max_rejected_fraction:
        worst = by_rule.idxmax()
        position = int(np.flatnonzero(rules == worst)[0])
        raise DataValidationError(
            f"{source}: {len(rejected)} of {n_in} rows "
            f"({summary['rejected_fraction']:.1%}) broke validation rules, above "
            f"max_rejected_fraction={config.max_rejected_fraction:.1%}. Most common rule: "
            f"'{worst}' ({int(by_rule[worst])} rows); example: "
            f"{_example(ordered, position) | {'source_row': int(order[position])}}. "
            f"Rejected by rule: {summary['rejected_by_rule']}. Fix the data, or raise "
            "ingestion.validation.max_rejected_fraction if this is expected."
        )
    logger.info(
        "%s: %d rows in, %d kept, %d rejected %s, %d gaps, %d return outliers",
        source,
        n_in,
        len(clean),
        len(rejected),
        {k: v for k, v in summary["rejected_by_rule"].items() if v},
        summary["gaps"]["count"],
        len(outlier_times),
    )
    return clean, rejected, summary
