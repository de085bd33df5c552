"""Walk-forward folds and out-of-sample metrics (aegis.trainer.evaluation), on SYNTHETIC arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aegis.trainer.evaluation import Metrics, improvement, metrics_of, rank, spearman, walk_forward_folds
from aegis.trainer.synthetic import planted_arrays


def test_folds_expand_by_time_and_never_train_on_what_closed_after_a_test_signal() -> None:
    data = planted_arrays(1000, seed=1)
    folds = walk_forward_folds(data.opened_ms, data.closed_ms, 5)
    assert len(folds) == 5
    tested = np.concatenate([f.test for f in folds])
    assert len(tested) == len(set(tested.tolist()))  # every out-of-sample row predicted once
    previous = -1
    for fold in folds:
        assert fold.train.max() < fold.test.min()  # training rows come before the block, by close time
        # purged: every training trade had closed before the first test trade's signal was made
        assert data.closed_ms[fold.train].max() < data.opened_ms[fold.test].min()
        assert len(fold.train) > previous  # an expanding window
        previous = len(fold.train)


def test_folds_need_rows_ordered_by_close_time_and_skip_tiny_windows() -> None:
    with pytest.raises(ValueError):
        walk_forward_folds(np.array([0, 1]), np.array([5, 3]), 2)
    opened = np.arange(30, dtype=np.int64)
    assert len(walk_forward_folds(opened, opened + 1, 5, min_train=25)) == 0
    assert len(walk_forward_folds(opened, opened + 1, 5, min_train=20)) == 1  # only the last window is big enough
    assert len(walk_forward_folds(opened, opened + 1, 2, min_train=5)) == 2


def test_spearman_matches_pandas_with_ties() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 10, 300).astype(float)
    b = a + rng.normal(0, 3, 300)
    # Spearman = Pearson correlation of average ranks (pandas ranks independently of our code)
    expected = pd.Series(a).rank().corr(pd.Series(b).rank())
    assert spearman(a, b) == pytest.approx(expected, abs=1e-12)
    assert rank(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman(np.ones(5), np.arange(5.0)) == 0.0 and spearman(np.array([1.0]), np.array([2.0])) == 0.0


def test_metrics_of_a_known_case() -> None:
    predicted = np.array([1.0, -1.0, 0.5, -0.2])
    realised = np.array([2.0, -1.0, -0.5, 0.4])
    m = metrics_of(predicted, realised, take_threshold_pct=0.0, folds=2)
    assert m.trades == 4 and m.folds == 2 and m.trades_taken == 2
    assert m.mae_pct == pytest.approx((1 + 0 + 1 + 0.6) / 4)
    assert m.hit_rate == 0.5
    assert m.expectancy_after_fees_pct == pytest.approx((2.0 - 0.5) / 2)  # the two trades predicted above 0
    assert metrics_of(np.array([-1.0]), np.array([1.0]), 0.0, 1).expectancy_after_fees_pct == 0.0
    assert Metrics.from_json(m.to_json()) == m


def test_improvement_counts_lower_mae_as_better() -> None:
    good = Metrics(information_coefficient=0.2, mae_pct=0.5, hit_rate=0.6, expectancy_after_fees_pct=0.1)
    bad = Metrics(information_coefficient=0.1, mae_pct=0.7, hit_rate=0.5, expectancy_after_fees_pct=-0.1)
    for metric in ("ic", "mae", "hit_rate", "expectancy"):
        assert improvement(metric, good, bad) > 0 > improvement(metric, bad, good)
