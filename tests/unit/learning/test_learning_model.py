"""The model shared by trainer and brain: artifact bytes, numpy inference equal to torch, latency, schema guard.

Models here are trained on SYNTHETIC data (aegis.trainer.synthetic.planted_arrays): the tests are about the
mechanics, not about what was learnt.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from aegis.brain import features as feat
from aegis.errors import ValidationError
from aegis.learning.artifact import ModelArtifact
from aegis.learning.inference import NumpyModel
from aegis.learning.network import Hyperparameters, fit, torch_predictor
from aegis.trainer.synthetic import planted_arrays

DATA = planted_arrays(3000, seed=11)


def trained(hidden: tuple[int, ...] = (32, 16), seed: int = 5) -> ModelArtifact:
    return fit(
        DATA.features,
        DATA.returns_pct,
        np.ones(len(DATA.returns_pct)),
        seed=seed,
        hyper=Hyperparameters(hidden_layers=hidden, epochs=8),
        feature_schema_version=feat.FEATURE_SCHEMA_VERSION,
        feature_names=feat.FEATURE_NAMES,
        version=f"test-{seed}",
    )


@pytest.fixture(scope="module")
def artifact() -> ModelArtifact:
    return trained()


def test_the_artifact_round_trips_through_its_bytes_deterministically(artifact: ModelArtifact) -> None:
    data = artifact.to_bytes()
    back = ModelArtifact.from_bytes(data)
    assert back.same_weights(artifact) and back.to_bytes() == data and back.sha256() == artifact.sha256()
    assert back.version == "test-5" and back.feature_names == feat.FEATURE_NAMES
    assert dict(back.hyperparameters) == dict(artifact.hyperparameters)
    assert set(artifact.standardisation()["features"]) == set(feat.FEATURE_NAMES)
    for broken in (b"pickle!", data[:-8], data + b"\0" * 8, data[:20]):
        with pytest.raises(ValidationError):
            ModelArtifact.from_bytes(broken)


def test_the_artifact_refuses_inconsistent_arrays(artifact: ModelArtifact) -> None:
    with pytest.raises(ValidationError, match="standardisation"):
        dataclasses.replace(artifact, feature_mean=np.zeros(3))
    with pytest.raises(ValidationError, match="layer 0"):
        dataclasses.replace(artifact, layers=((np.ones((4, 5)), np.zeros(4)), (np.ones((1, 4)), np.zeros(1))))
    with pytest.raises(ValidationError, match="finite"):
        dataclasses.replace(artifact, feature_scale=np.zeros(33))


def test_numpy_inference_equals_the_torch_network(artifact: ModelArtifact) -> None:
    model = NumpyModel(artifact)
    x = DATA.features[:500]
    numpy_pred = model.predict(x)
    standardised = np.clip((x - artifact.feature_mean) / artifact.feature_scale, -5, 5).astype(np.float32)
    with torch.no_grad():
        torch_out = torch_predictor(artifact)(torch.from_numpy(standardised)).squeeze(1).double().numpy()
    np.testing.assert_allclose(numpy_pred, torch_out * artifact.target_scale + artifact.target_mean, atol=1e-4)
    singles = [model.predict_values(row) for row in x[:50]]
    np.testing.assert_allclose(singles, numpy_pred[:50], rtol=1e-12, atol=1e-12)
    # the model learnt the planted function (synthetic): predictions correlate with the truth
    assert np.corrcoef(numpy_pred, DATA.returns_pct[:500])[0, 1] > 0.3


def test_a_linear_model_and_extreme_inputs_are_fine() -> None:
    linear = NumpyModel(trained(hidden=()))
    assert len(linear.artifact.layers) == 1
    wild = np.full(33, 1e9)
    assert np.isfinite(linear.predict_values(wild))  # standardised inputs are clipped


def test_the_predictor_returns_its_version_and_refuses_another_schema(artifact: ModelArtifact) -> None:
    model = NumpyModel(artifact)
    vector = feat.FeatureVector(feat.FEATURE_SCHEMA_VERSION, tuple(DATA.features[0].tolist()))
    value, version = model(vector)
    assert version == "test-5" and value == pytest.approx(model.predict(DATA.features[:1])[0], abs=1e-12)
    with pytest.raises(ValueError, match="schema"):
        model(feat.FeatureVector(2, vector.values))
    with pytest.raises(ValidationError, match="feature_schema_version"):
        NumpyModel(dataclasses.replace(artifact, feature_schema_version=99))
    renamed = ("x", *artifact.feature_names[1:])
    with pytest.raises(ValidationError, match="feature_names"):
        NumpyModel(dataclasses.replace(artifact, feature_names=renamed))


def test_one_prediction_takes_at_most_50_microseconds_at_p99(artifact: ModelArtifact) -> None:
    model = NumpyModel(artifact)
    vectors = [feat.FeatureVector(1, tuple(row.tolist())) for row in DATA.features[:1000]]
    best = float("inf")
    for _ in range(3):  # best of three rounds: the machine is shared, the code is not what varies
        times = []
        for v in vectors * 5:
            t0 = time.perf_counter_ns()
            model(v)
            times.append(time.perf_counter_ns() - t0)
        times.sort()
        best = min(best, times[int(0.99 * len(times))] / 1000)
    assert best <= 50.0, f"p99 {best:.1f} µs"
