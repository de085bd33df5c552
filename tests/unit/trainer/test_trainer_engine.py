"""One training cycle (aegis.trainer.engine): determinism, sample weights and the promotion decision.

Data: SYNTHETIC-FROM-REAL trades (aegis.trainer.synthetic.trades_from_klines) on the real 10-day 1m klines, with a
planted relationship between one feature and the realised return.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from aegis.config import TrainerSettings
from aegis.learning.artifact import ModelArtifact
from aegis.trainer.engine import Champion, Dataset, reward_weights, train_cycle
from aegis.trainer.evaluation import Metrics
from aegis.trainer.synthetic import trades_from_klines
from aegis.trainer.testing import real_klines

SETTINGS = TrainerSettings(epochs=15)


@pytest.fixture(scope="module")
def dataset(shared_data: Path) -> Dataset:
    trades = trades_from_klines(real_klines(shared_data), seed=8, every_minutes=40, plant=0.7, baseline_skill=0.1)
    return Dataset.of(trades)


def test_the_same_seed_and_data_give_identical_weights_metrics_and_bytes(dataset: Dataset) -> None:
    a = train_cycle(dataset, seed=123, settings=SETTINGS, version="v", champion=None)
    b = train_cycle(dataset, seed=123, settings=SETTINGS, version="v", champion=None)
    assert a.artifact.same_weights(b.artifact) and a.artifact.to_bytes() == b.artifact.to_bytes()
    assert a.model_metrics == b.model_metrics and a.fold_metrics == b.fold_metrics
    assert (a.promote, a.reason) == (b.promote, b.reason)
    c = train_cycle(dataset, seed=124, settings=SETTINGS, version="v", champion=None)
    assert not a.artifact.same_weights(c.artifact)


def test_a_skilled_model_beats_the_rule_baseline_out_of_sample(dataset: Dataset) -> None:
    result = train_cycle(dataset, seed=1, settings=SETTINGS, version="v1", champion=None)
    assert result.comparison.baseline_name == "rules"
    assert result.model_metrics.folds == 5 and result.model_metrics.trades == result.rules_metrics.trades
    assert result.model_metrics.information_coefficient > result.rules_metrics.information_coefficient + 0.02
    assert result.promote and result.reason.startswith("promoted: ic")
    assert result.artifact.version == "v1" and result.artifact.hyperparameters["seed"] == "1"


def test_a_failing_bias_check_blocks_promotion_but_not_the_model(dataset: Dataset) -> None:
    result = train_cycle(dataset, seed=1, settings=SETTINGS, version="v", champion=None, bias_failures=["WIN_RATE"])
    assert not result.promote and "bias checks failed (WIN_RATE)" in result.reason
    assert result.model_metrics.information_coefficient > 0.1  # trained and measured all the same


def test_a_challenger_worse_than_the_champion_on_unseen_trades_is_not_promoted(dataset: Dataset) -> None:
    strong = train_cycle(dataset, seed=2, settings=SETTINGS, version="champ", champion=None).artifact
    champion = Champion("champ", strong, trained_until_ms=int(dataset.closed_ms[len(dataset) // 2]), metrics=None)
    weak = dataclasses.replace(SETTINGS, epochs=1, learning_rate=1e-6)
    result = train_cycle(dataset, seed=3, settings=weak, version="weak", champion=champion)
    assert result.comparison.baseline_name.startswith("active_model champ on ")
    assert result.comparison.improvement < 0 and not result.promote and "not better" in result.reason


def test_the_comparison_falls_back_to_stored_metrics_then_to_the_rules(dataset: Dataset) -> None:
    strong = train_cycle(dataset, seed=2, settings=SETTINGS, version="champ", champion=None)
    recent = Champion("champ", strong.artifact, int(dataset.closed_ms[-1]), strong.model_metrics)
    result = train_cycle(dataset, seed=4, settings=SETTINGS, version="v", champion=recent)
    assert result.comparison.baseline_name == "active_model champ (its walk-forward at training time)"
    assert result.comparison.baseline == strong.model_metrics
    foreign = ModelArtifact(
        version="old",
        feature_schema_version=99,
        feature_names=("a",),
        feature_mean=np.zeros(1),
        feature_scale=np.ones(1),
        feature_clip=5.0,
        target_mean=0.0,
        target_scale=1.0,
        layers=((np.ones((1, 1)), np.zeros(1)),),
    )
    other_schema = Champion("old", foreign, None, Metrics(information_coefficient=0.9))
    result = train_cycle(dataset, seed=4, settings=SETTINGS, version="v", champion=other_schema)
    assert result.comparison.baseline_name == "rules"


def test_reward_weights_count_decisive_trades_more_and_average_one() -> None:
    weights = reward_weights(np.array([0, 1, -1, 3, -3, 5, -7, 8, -10]))
    assert weights.mean() == pytest.approx(1.0)
    raw = 1 + np.abs(np.array([0, 1, -1, 3, -3, 5, -7, 8, -10])) / 5
    np.testing.assert_allclose(weights, raw / raw.mean())
    assert weights[1] == weights[2] and weights[-1] / weights[0] == pytest.approx(3.0)
