"""One training cycle on validated trades, without I/O: walk-forward, the final fit, champion/challenger.

:func:`train_cycle` is pure apart from its CPU time (the caller runs it in a worker thread): the same dataset,
settings, seed and champion give the same model, metrics and decision.

Sample weights come from each trade's reward score (the virtual account's buckets of ROI on margin: +1/+3/+5/+8
for gains, -1/-3/-7/-10 for losses, 0 at break-even): ``weight = 1 + |reward| / 5``, then scaled to mean 1. A
decisive trade (a stop or a target well beyond the fees) counts up to 3 times as much as a break-even one, whose
sign is mostly noise from fees; gains and losses of the same size weigh the same, so the weighting cannot tilt the
model towards optimism or pessimism. The target stays the return itself: the weights say how much to trust a
row, not what to predict.

Promotion rule: the challenger is promoted only if every bias check passed AND it beats the incumbent by more
than ``promotion_margin`` on ``promotion_metric``, both measured out of sample on the same trades:

* with an active model (same feature schema): on the walk-forward trades that closed after the active model's
  training data ended (``trained_until``) — trades neither model learnt from — when there are at least
  ``MIN_COMPARE_TRADES`` of them; otherwise against the active model's own walk-forward figure stored with it;
* with no active model, or one of another feature schema: against the rule-based estimate each signal carried
  (``trades.predicted_return_pct``), on the same out-of-sample trades.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aegis.config import TrainerSettings
from aegis.learning.artifact import ModelArtifact
from aegis.learning.inference import NumpyModel
from aegis.learning.network import Hyperparameters, fit
from aegis.trainer.evaluation import Metrics, improvement, metrics_of, walk_forward_folds
from aegis.trainer.validation import ClosedTrade

MIN_COMPARE_TRADES = 30
"""Fewest trades a champion and a challenger are compared on directly."""
RULES_BASELINE = "rules"


def reward_weights(rewards: np.ndarray) -> np.ndarray:
    """Return sample weights ``1 + |reward| / 5`` scaled to mean 1 (see the module doc)."""
    raw = 1.0 + np.abs(np.asarray(rewards, dtype=np.float64)) / 5.0
    return raw / raw.mean() if len(raw) else raw


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """Validated trades as arrays, ordered by close time (then trade id, so the order is total)."""

    trade_ids: tuple[str, ...]
    symbols: tuple[str, ...]
    sides: tuple[str, ...]
    close_reasons: tuple[str, ...]
    opened_ms: np.ndarray
    closed_ms: np.ndarray
    features: np.ndarray
    returns_pct: np.ndarray
    rewards: np.ndarray
    baseline_pct: np.ndarray
    """The rule-based (or earlier model's) predicted return each signal carried; NaN where it carried none."""
    feature_schema_version: int = 1

    def __len__(self) -> int:
        return len(self.trade_ids)

    @classmethod
    def of(cls, trades: Sequence[ClosedTrade], feature_schema_version: int | None = None) -> Dataset:
        """Return the trades as arrays; ``feature_schema_version`` defaults to the code's current schema."""
        from aegis.brain import features as feat

        if feature_schema_version is None:
            feature_schema_version = feat.FEATURE_SCHEMA_VERSION
        ordered = sorted(trades, key=lambda t: (t.closed_at, t.trade_id))
        count = len(feat.names_of(feature_schema_version))
        return cls(
            trade_ids=tuple(t.trade_id for t in ordered),
            symbols=tuple(t.symbol for t in ordered),
            sides=tuple(t.side for t in ordered),
            close_reasons=tuple(t.close_reason for t in ordered),
            opened_ms=np.array([_ms(t.opened_at) for t in ordered], dtype=np.int64),
            closed_ms=np.array([_ms(t.closed_at) for t in ordered], dtype=np.int64),
            features=np.array([t.features for t in ordered], dtype=np.float64).reshape(len(ordered), count),
            returns_pct=np.array([t.return_pct() for t in ordered], dtype=np.float64),
            rewards=np.array([t.reward_score for t in ordered], dtype=np.float64),
            baseline_pct=np.array(
                [np.nan if t.predicted_return_pct is None else t.predicted_return_pct for t in ordered],
                dtype=np.float64,
            ),
            feature_schema_version=feature_schema_version,
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        from aegis.brain import features as feat

        return feat.names_of(self.feature_schema_version)

    @property
    def last_closed_ms(self) -> int | None:
        return int(self.closed_ms[-1]) if len(self) else None


@dataclass(frozen=True, slots=True)
class Champion:
    """The active model when the run started."""

    version: str
    artifact: ModelArtifact | None
    trained_until_ms: int | None
    metrics: Metrics | None
    """Its own walk-forward metrics, stored when it was trained."""


@dataclass(frozen=True, slots=True)
class Comparison:
    baseline_name: str
    challenger: Metrics
    """The challenger on the compared trades."""
    baseline: Metrics
    improvement: float


@dataclass(frozen=True, slots=True, eq=False)
class CycleResult:
    artifact: ModelArtifact
    model_metrics: Metrics
    rules_metrics: Metrics
    comparison: Comparison
    promote: bool
    reason: str
    fold_metrics: tuple[Metrics, ...]
    timings_s: dict[str, float] = field(default_factory=dict)


def compare(
    ds: Dataset,
    oos: np.ndarray,
    predicted: np.ndarray,
    model_metrics: Metrics,
    rules_metrics: Metrics,
    champion: Champion | None,
    settings: TrainerSettings,
    folds: int,
) -> Comparison:
    """Return what the challenger is measured against, and by how much it wins (see the module doc)."""
    metric = settings.promotion_metric
    if champion is not None:
        artifact = champion.artifact
        same_schema = artifact is not None and artifact.feature_schema_version == ds.feature_schema_version
        if artifact is not None and same_schema:
            after = oos.copy()
            if champion.trained_until_ms is not None:
                after &= ds.closed_ms > champion.trained_until_ms
            n = int(after.sum())
            if n >= MIN_COMPARE_TRADES:
                champ_pred = NumpyModel(artifact).predict(ds.features[after])
                champ = metrics_of(champ_pred, ds.returns_pct[after], settings.take_threshold_pct, folds)
                chall = metrics_of(predicted[after], ds.returns_pct[after], settings.take_threshold_pct, folds)
                return Comparison(
                    f"active_model {champion.version} on {n} trades it never saw",
                    chall,
                    champ,
                    improvement(metric, chall, champ),
                )
        if champion.metrics is not None and (same_schema or artifact is None):
            return Comparison(
                f"active_model {champion.version} (its walk-forward at training time)",
                model_metrics,
                champion.metrics,
                improvement(metric, model_metrics, champion.metrics),
            )
    return Comparison(RULES_BASELINE, model_metrics, rules_metrics, improvement(metric, model_metrics, rules_metrics))


def train_cycle(
    ds: Dataset,
    *,
    seed: int,
    settings: TrainerSettings,
    version: str,
    champion: Champion | None,
    bias_failures: Sequence[str] = (),
    hyper: Hyperparameters | None = None,
) -> CycleResult:
    """Evaluate walk-forward, fit the final model on every trade, and decide its promotion."""
    hyper = hyper or Hyperparameters.from_settings(settings)
    weights = reward_weights(ds.rewards)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    folds = walk_forward_folds(ds.opened_ms, ds.closed_ms, settings.folds)
    predicted = np.full(len(ds), np.nan)
    fold_metrics = []
    for i, fold in enumerate(folds):
        model = fit(
            ds.features[fold.train],
            ds.returns_pct[fold.train],
            weights[fold.train],
            seed=seed + i + 1,
            hyper=hyper,
            feature_schema_version=ds.feature_schema_version,
            feature_names=ds.feature_names,
        )
        predicted[fold.test] = NumpyModel(model).predict(ds.features[fold.test])
        fold_metrics.append(metrics_of(predicted[fold.test], ds.returns_pct[fold.test], settings.take_threshold_pct, 1))
    timings["walk_forward_s"] = time.perf_counter() - t0
    oos = ~np.isnan(predicted)
    model_metrics = metrics_of(predicted[oos], ds.returns_pct[oos], settings.take_threshold_pct, len(folds))
    rules_pred = np.nan_to_num(ds.baseline_pct[oos], nan=0.0)  # a signal without an estimate predicted nothing
    rules_metrics = metrics_of(rules_pred, ds.returns_pct[oos], settings.take_threshold_pct, len(folds))

    t1 = time.perf_counter()
    artifact = fit(
        ds.features,
        ds.returns_pct,
        weights,
        seed=seed,
        hyper=hyper,
        feature_schema_version=ds.feature_schema_version,
        feature_names=ds.feature_names,
        version=version,
    )
    timings["final_fit_s"] = time.perf_counter() - t1

    comparison = compare(ds, oos, predicted, model_metrics, rules_metrics, champion, settings, len(folds))
    metric, margin = settings.promotion_metric, settings.promotion_margin
    figures = (
        f"{metric} {comparison.challenger.value(metric):.4f} vs {comparison.baseline.value(metric):.4f} of "
        f"{comparison.baseline_name} (needs more than +{margin:g})"
    )
    if model_metrics.trades == 0:
        promote, reason = False, "not promoted: too few trades for a single walk-forward fold"
    elif bias_failures:
        promote, reason = False, f"not promoted: bias checks failed ({', '.join(bias_failures)}); {figures}"
    elif comparison.improvement > margin:
        promote, reason = True, f"promoted: {figures}"
    else:
        promote, reason = False, f"not promoted: not better out of sample; {figures}"
    return CycleResult(
        artifact, model_metrics, rules_metrics, comparison, promote, reason, tuple(fold_metrics), timings
    )
