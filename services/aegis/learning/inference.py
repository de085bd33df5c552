"""Numpy inference of a trained model: one signal in a few microseconds, a batch in one pass.

Torch is for training only: a torch forward pass of one vector costs tens of microseconds of dispatch overhead
before any arithmetic, above the 50 µs budget per signal; the same arithmetic on numpy arrays of this size is a
handful of small BLAS calls. ``aegis bench trainer`` measures both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from aegis.errors import ValidationError
from aegis.learning.artifact import ModelArtifact

if TYPE_CHECKING:
    from aegis.brain.features import FeatureVector

Predictor = Callable[["FeatureVector"], tuple[float, str]]
"""What the brain's strategy calls: features -> (predicted return in percent points, model version)."""


class NumpyModel:
    """A :class:`ModelArtifact` ready to predict; immutable, so it can be shared and swapped atomically."""

    __slots__ = ("_clip", "_hidden", "_inv_scale", "_mean", "_out_b", "_out_w", "_y_mean", "_y_scale", "artifact")

    def __init__(self, artifact: ModelArtifact) -> None:
        from aegis.brain.features import names_of  # numba-backed analytics: imported when a model is built

        try:
            known = names_of(artifact.feature_schema_version)
        except KeyError:
            raise ValidationError(
                "feature_schema_version", f"{artifact.feature_schema_version} is not a schema this code knows"
            ) from None
        if tuple(known) != tuple(artifact.feature_names):
            raise ValidationError(
                "feature_names", f"the model's feature names differ from schema {artifact.feature_schema_version}"
            )
        self.artifact = artifact
        self._mean = artifact.feature_mean
        self._inv_scale = 1.0 / artifact.feature_scale
        self._clip = float(artifact.feature_clip)
        self._hidden = tuple((np.ascontiguousarray(w), np.ascontiguousarray(b)) for w, b in artifact.layers[:-1])
        w_out, b_out = artifact.layers[-1]
        self._out_w = np.ascontiguousarray(w_out[0])
        self._out_b = float(b_out[0])
        self._y_mean = float(artifact.target_mean)
        self._y_scale = float(artifact.target_scale)

    @property
    def version(self) -> str:
        return self.artifact.version

    @property
    def feature_schema_version(self) -> int:
        return self.artifact.feature_schema_version

    def predict_values(self, values: Sequence[float] | np.ndarray) -> float:
        """Return the predicted return (percent points) of one feature vector in schema order."""
        x = np.array(values, dtype=np.float64)
        x -= self._mean
        x *= self._inv_scale
        np.maximum(x, -self._clip, out=x)
        np.minimum(x, self._clip, out=x)
        for w, b in self._hidden:
            h = w @ x
            h += b
            np.maximum(h, 0.0, out=h)
            x = h
        return (float(self._out_w @ x) + self._out_b) * self._y_scale + self._y_mean

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Return the predicted returns (percent points) of a (n, features) matrix."""
        x = (np.asarray(features, dtype=np.float64) - self._mean) * self._inv_scale
        np.clip(x, -self._clip, self._clip, out=x)
        for w, b in self._hidden:
            x = np.maximum(x @ w.T + b, 0.0)
        return (x @ self._out_w + self._out_b) * self._y_scale + self._y_mean

    def __call__(self, vector: FeatureVector) -> tuple[float, str]:
        """The brain's predictor: refuse a vector of another schema (the strategy then uses its rule estimate)."""
        if vector.schema_version != self.artifact.feature_schema_version:
            raise ValueError(
                f"model {self.version} takes feature schema {self.artifact.feature_schema_version}, "
                f"got {vector.schema_version}"
            )
        predicted = self.predict_values(vector.values)
        if not math.isfinite(predicted):
            raise ValueError(f"model {self.version} predicted {predicted!r}")
        return predicted, self.artifact.version
