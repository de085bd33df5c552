"""Walk-forward evaluation by time, the out-of-sample metrics, and the promotion comparison.

Folds (never random): the trades, ordered by close time, are cut into ``k + 1`` consecutive blocks. Fold ``i``
(1..k) predicts block ``i`` with a model trained on the trades that closed before the first trade of block ``i``
*opened* — an expanding window, purged so that no training trade finished after a test trade's signal was made
(a trade that was still open at that time was not known then). Every trade of blocks 1..k is predicted exactly
once, by a model that never saw it or anything after its signal.

Metrics over those out-of-sample predictions (pooled over the folds):

* ``information_coefficient`` — Spearman rank correlation of predicted and realised return (-1..1; 0 = no skill);
* ``mae_pct`` — mean absolute error, percent points;
* ``hit_rate`` — share of trades whose return sign was predicted right (0..1);
* ``expectancy_after_fees_pct`` — mean realised return of the trades the model would take (predicted return above
  ``take_threshold_pct``), percent points; realised returns are net of fees and funding, so this is what taking
  those trades earned on average. 0 when it would take none (``trades_taken`` says how many it took).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METRICS: tuple[str, ...] = ("ic", "expectancy", "hit_rate", "mae")
"""Metrics a promotion can be decided on; every one but ``mae`` is better when higher."""


@dataclass(frozen=True, slots=True)
class Metrics:
    information_coefficient: float = 0.0
    mae_pct: float = 0.0
    hit_rate: float = 0.0
    expectancy_after_fees_pct: float = 0.0
    trades: int = 0
    folds: int = 0
    trades_taken: int = 0

    def value(self, metric: str) -> float:
        """Return the figure named by a promotion metric (``ic``, ``expectancy``, ``hit_rate``, ``mae``)."""
        return {
            "ic": self.information_coefficient,
            "expectancy": self.expectancy_after_fees_pct,
            "hit_rate": self.hit_rate,
            "mae": self.mae_pct,
        }[metric]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Metrics | None:
        if not data:
            return None
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def rank(values: np.ndarray) -> np.ndarray:
    """Return ranks 1..n, ties sharing their average rank (as Spearman's correlation needs)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0  # average of ranks start+1 .. end
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; 0 when either side is constant or there are fewer than 2 values."""
    if len(a) < 2:
        return 0.0
    ra, rb = rank(a), rank(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def metrics_of(predicted: np.ndarray, realised: np.ndarray, take_threshold_pct: float, folds: int) -> Metrics:
    """Return the out-of-sample metrics of predictions against realised returns (percent points)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    realised = np.asarray(realised, dtype=np.float64)
    n = len(realised)
    if n == 0:
        return Metrics(folds=folds)
    taken = predicted > take_threshold_pct
    return Metrics(
        information_coefficient=spearman(predicted, realised),
        mae_pct=float(np.abs(predicted - realised).mean()),
        hit_rate=float((np.sign(predicted) == np.sign(realised)).mean()),
        expectancy_after_fees_pct=float(realised[taken].mean()) if taken.any() else 0.0,
        trades=n,
        folds=folds,
        trades_taken=int(taken.sum()),
    )


@dataclass(frozen=True, slots=True)
class Fold:
    train: np.ndarray
    """Indices of the training rows."""
    test: np.ndarray
    """Indices of the rows predicted out of sample."""


def walk_forward_folds(opened_ms: np.ndarray, closed_ms: np.ndarray, k: int, min_train: int = 20) -> list[Fold]:
    """Return the expanding-window, purged folds of rows ordered by close time (see the module doc).

    A fold whose purged training window has fewer than ``min_train`` rows is left out.
    """
    n = len(closed_ms)
    if n and np.any(np.diff(closed_ms) < 0):
        raise ValueError("rows must be ordered by close time")
    bounds = np.linspace(0, n, k + 2).astype(np.int64)
    folds = []
    for i in range(1, k + 1):
        test = np.arange(bounds[i], bounds[i + 1])
        if len(test) == 0:
            continue
        first_open = int(opened_ms[test].min())
        train = np.flatnonzero(closed_ms[: bounds[i]] < first_open)
        if len(train) >= min_train:
            folds.append(Fold(train, test))
    return folds


def improvement(metric: str, challenger: Metrics, incumbent: Metrics) -> float:
    """Return how much better the challenger is on ``metric`` (positive = better; MAE counts lower as better)."""
    delta = challenger.value(metric) - incumbent.value(metric)
    return -delta if metric == "mae" else delta
