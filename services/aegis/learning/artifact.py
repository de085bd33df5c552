"""A trained model as plain arrays, and the byte format PostgreSQL stores it in (``ml_models.weights``).

The model is a small multi-layer perceptron: standardise the feature vector with the training set's mean and
deviation, clip it to ``±feature_clip``, then ``ReLU(W x + b)`` per hidden layer and a linear output, which is the
standardised predicted return; ``target_mean + target_scale * output`` is the prediction in percent points.

The byte format is deliberately boring and deterministic (the same model always gives the same bytes, so its
SHA-256 identifies it): ``MAGIC``, a 4-byte little-endian header length, a JSON header (sorted keys) naming the
arrays and their shapes, then each array as little-endian float64 in that order. No pickle: loading a model never
runs code.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from aegis.errors import ValidationError

MAGIC = b"AEGIS-MODEL\x01"
ALGORITHM = "torch-mlp"
"""Name of the algorithm in ``ml_models.framework`` and ``Model.algorithm``."""


def _frozen(values: Any) -> np.ndarray:
    out = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True, eq=False)
class ModelArtifact:
    """Everything inference needs, as read-only float64 arrays."""

    version: str
    feature_schema_version: int
    feature_names: tuple[str, ...]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    """Standard deviation of each feature in the training set (1 where a feature was constant)."""
    feature_clip: float
    target_mean: float
    target_scale: float
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    """``(W, b)`` per layer, ``W`` of shape (outputs, inputs); ReLU after every layer but the last."""
    hyperparameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    algorithm: str = ALGORITHM

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        object.__setattr__(self, "feature_mean", _frozen(self.feature_mean))
        object.__setattr__(self, "feature_scale", _frozen(self.feature_scale))
        object.__setattr__(self, "layers", tuple((_frozen(w), _frozen(b)) for w, b in self.layers))
        object.__setattr__(self, "hyperparameters", MappingProxyType(dict(self.hyperparameters)))
        if self.feature_mean.shape != (n,) or self.feature_scale.shape != (n,):
            raise ValidationError("artifact", f"standardisation must have {n} values, one per feature")
        if not self.layers:
            raise ValidationError("artifact", "a model needs at least its output layer")
        inputs = n
        for i, (w, b) in enumerate(self.layers):
            if w.ndim != 2 or w.shape[1] != inputs or b.shape != (w.shape[0],):
                raise ValidationError("artifact", f"layer {i} has shape {w.shape}/{b.shape}, expected (*, {inputs})")
            inputs = w.shape[0]
        if inputs != 1:
            raise ValidationError("artifact", f"the output layer must have 1 output, not {inputs}")
        if not all(np.isfinite(a).all() for a in self.arrays()) or not (self.feature_scale > 0).all():
            raise ValidationError("artifact", "weights and standardisation must be finite (scales positive)")
        if not (np.isfinite(self.target_scale) and self.target_scale > 0 and np.isfinite(self.target_mean)):
            raise ValidationError("artifact", "the target scale must be positive and finite")

    # ------------------------------------------------------------------------------------- bytes

    def to_bytes(self) -> bytes:
        """Return the stored form (deterministic: equal models give equal bytes)."""
        arrays: list[tuple[str, np.ndarray]] = [
            ("feature_mean", self.feature_mean),
            ("feature_scale", self.feature_scale),
        ]
        for i, (w, b) in enumerate(self.layers):
            arrays += [(f"w{i}", w), (f"b{i}", b)]
        header = {
            "algorithm": self.algorithm,
            "version": self.version,
            "feature_schema_version": self.feature_schema_version,
            "feature_names": list(self.feature_names),
            "feature_clip": self.feature_clip,
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
            "hyperparameters": dict(self.hyperparameters),
            "layers": len(self.layers),
            "arrays": [{"name": name, "shape": list(a.shape)} for name, a in arrays],
        }
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        body = b"".join(a.astype("<f8").tobytes() for _, a in arrays)
        return MAGIC + struct.pack("<I", len(head)) + head + body

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelArtifact:
        """Read the stored form; raise ValidationError when the bytes are not a model this code understands."""
        data = bytes(data)
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            raise ValidationError("weights", "not an AEGIS model artifact (bad magic)")
        start = len(MAGIC) + 4
        (head_len,) = struct.unpack("<I", data[len(MAGIC) : start])
        try:
            header = json.loads(data[start : start + head_len])
        except ValueError as exc:
            raise ValidationError("weights", f"unreadable artifact header: {exc}") from None
        offset = start + head_len
        arrays: dict[str, np.ndarray] = {}
        for spec in header["arrays"]:
            shape = tuple(spec["shape"])
            count = int(np.prod(shape)) if shape else 1
            end = offset + 8 * count
            if end > len(data):
                raise ValidationError("weights", "truncated artifact")
            arrays[spec["name"]] = np.frombuffer(data[offset:end], dtype="<f8").reshape(shape)
            offset = end
        if offset != len(data):
            raise ValidationError("weights", "trailing bytes after the last array")
        layers = tuple((arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(header["layers"]))
        return cls(
            version=header["version"],
            feature_schema_version=int(header["feature_schema_version"]),
            feature_names=tuple(header["feature_names"]),
            feature_mean=arrays["feature_mean"],
            feature_scale=arrays["feature_scale"],
            feature_clip=float(header["feature_clip"]),
            target_mean=float(header["target_mean"]),
            target_scale=float(header["target_scale"]),
            layers=layers,
            hyperparameters=header["hyperparameters"],
            algorithm=header["algorithm"],
        )

    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def standardisation(self) -> dict[str, Any]:
        """Return the standardisation as JSON-able values (``ml_models.standardisation``, for people and SQL)."""
        return {
            "features": {
                name: {"mean": float(m), "scale": float(s)}
                for name, m, s in zip(self.feature_names, self.feature_mean, self.feature_scale, strict=True)
            },
            "feature_clip": self.feature_clip,
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
        }

    def arrays(self) -> list[np.ndarray]:
        """Return every array in stored order: mean, scale, then W and b of each layer."""
        return [self.feature_mean, self.feature_scale, *(a for layer in self.layers for a in layer)]

    def same_weights(self, other: ModelArtifact) -> bool:
        """Return True when both models compute the same function with the same numbers (bit for bit)."""
        mine, theirs = self.arrays(), other.arrays()
        return (
            len(mine) == len(theirs)
            and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(mine, theirs, strict=True))
            and (self.feature_clip, self.target_mean, self.target_scale)
            == (other.feature_clip, other.target_mean, other.target_scale)
        )
