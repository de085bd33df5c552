"""The model's torch definition and its training (the trainer imports this; the brain never does).

A multi-layer perceptron ``features -> hidden ReLU layers -> 1`` fitted to the standardised percentage return of
each trade with a weighted Huber loss (robust to the fat tails of trade returns), Adam, mini-batches, and early
stopping on the newest ``validation_fraction`` of the training window (by time: the model is judged on trades
that came after the ones it learnt from, as in production).

Determinism: for a given seed and data, the weights are identical bit for bit — :func:`fit` seeds torch, draws
mini-batches from its own seeded generator, trains on one thread (a multi-threaded reduction sums in a varying
order) with ``torch.use_deterministic_algorithms(True)``, and restores the process's torch settings afterwards.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aegis.config import TrainerSettings
from aegis.learning.artifact import ModelArtifact

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that use it: importing it costs about 2 s and 250 MB, which a trainer
# process should pay at its first run, not before it can answer health checks.

_TORCH_STATE = threading.Lock()  # torch's thread count and determinism flags are process-wide


@dataclass(frozen=True, slots=True)
class Hyperparameters:
    hidden_layers: tuple[int, ...] = (32, 16)
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 0.003
    weight_decay: float = 0.0001
    huber_delta: float = 1.0
    """In standard deviations of the return: errors beyond it count linearly, not squared."""
    patience: int = 5
    """Epochs without a better validation loss before training stops."""
    validation_fraction: float = 0.1
    min_validation: int = 20
    """Below this many validation trades there is no early stopping (all epochs run)."""
    feature_clip: float = 5.0
    """Standardised features are clipped to ±this, so one absurd input cannot swing a prediction."""

    @classmethod
    def from_settings(cls, settings: TrainerSettings) -> Hyperparameters:
        return cls(
            hidden_layers=settings.hidden_layers,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
        )

    def as_strings(self) -> dict[str, str]:
        """Return the hyperparameters as text (``Model.hyperparameters``)."""
        return {
            "hidden_layers": ",".join(str(h) for h in self.hidden_layers),
            "epochs": str(self.epochs),
            "batch_size": str(self.batch_size),
            "learning_rate": repr(self.learning_rate),
            "weight_decay": repr(self.weight_decay),
            "huber_delta": repr(self.huber_delta),
            "patience": str(self.patience),
            "validation_fraction": repr(self.validation_fraction),
            "feature_clip": repr(self.feature_clip),
            "loss": "weighted huber",
            "optimizer": "adam",
        }


def build_network(inputs: int, hidden_layers: tuple[int, ...]) -> torch.nn.Sequential:
    """Return the untrained network: Linear+ReLU per hidden layer, then Linear to one output."""
    import torch

    modules: list[torch.nn.Module] = []
    width = inputs
    for size in hidden_layers:
        modules += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        width = size
    modules.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*modules)


@contextlib.contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch, use one thread and deterministic algorithms; restore the previous settings after."""
    import torch

    with _TORCH_STATE:
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)


def standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean and deviation of each column (deviation 1 for a constant column)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return mean, scale


def fit(
    features: np.ndarray,
    returns_pct: np.ndarray,
    weights: np.ndarray,
    *,
    seed: int,
    hyper: Hyperparameters,
    feature_schema_version: int,
    feature_names: tuple[str, ...],
    version: str = "",
    extra: Mapping[str, str] | None = None,
) -> ModelArtifact:
    """Train on rows ordered by close time; return the model as a :class:`ModelArtifact`.

    ``weights`` are the sample weights (mean 1). The newest ``validation_fraction`` of the rows is held out for
    early stopping; the weights of the best validation epoch are kept.
    """
    import torch

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(returns_pct, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        raise ValueError("fit needs at least two rows")
    mean, scale = standardisation(x)
    y_mean = float(y.mean())
    y_scale = float(y.std()) if y.std() > 1e-12 else 1.0
    xs = np.clip((x - mean) / scale, -hyper.feature_clip, hyper.feature_clip)
    ys = (y - y_mean) / y_scale

    n_val = int(n * hyper.validation_fraction)
    if n_val < hyper.min_validation or n - n_val < 2:
        n_val = 0
    n_fit = n - n_val

    with deterministic_torch(seed):
        net = build_network(x.shape[1], hyper.hidden_layers)
        optimizer = torch.optim.Adam(net.parameters(), lr=hyper.learning_rate, weight_decay=hyper.weight_decay)
        generator = torch.Generator().manual_seed(seed)
        tx = torch.from_numpy(xs.astype(np.float32))
        ty = torch.from_numpy(ys.astype(np.float32))
        tw = torch.from_numpy(w.astype(np.float32))
        fit_x, fit_y, fit_w = tx[:n_fit], ty[:n_fit], tw[:n_fit]
        val_x, val_y, val_w = tx[n_fit:], ty[n_fit:], tw[n_fit:]

        def loss_of(inputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
            pred = net(inputs).squeeze(1)
            per_row = torch.nn.functional.huber_loss(pred, target, reduction="none", delta=hyper.huber_delta)
            return (per_row * weight).sum() / weight.sum()

        best_loss = float("inf")
        best_state = None
        stale = 0
        epochs_run = 0
        for _ in range(hyper.epochs):
            epochs_run += 1
            net.train()
            order = torch.randperm(n_fit, generator=generator)
            for start in range(0, n_fit, hyper.batch_size):
                batch = order[start : start + hyper.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_of(fit_x[batch], fit_y[batch], fit_w[batch])
                loss.backward()
                optimizer.step()
            if n_val == 0:
                continue
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_of(val_x, val_y, val_w))
            if val_loss < best_loss - 1e-7:
                best_loss = val_loss
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                stale = 0
            else:
                stale += 1
                if stale >= hyper.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        layers = tuple(
            (m.weight.detach().to(torch.float64).numpy().copy(), m.bias.detach().to(torch.float64).numpy().copy())
            for m in linears
        )

    params = hyper.as_strings()
    params["epochs_run"] = str(epochs_run)
    params["seed"] = str(seed)
    params.update(extra or {})
    return ModelArtifact(
        version=version,
        feature_schema_version=feature_schema_version,
        feature_names=tuple(feature_names),
        feature_mean=mean,
        feature_scale=scale,
        feature_clip=hyper.feature_clip,
        target_mean=y_mean,
        target_scale=y_scale,
        layers=layers,
        hyperparameters=params,
    )


def torch_predictor(artifact: ModelArtifact) -> torch.nn.Sequential:
    """Return a torch network computing the same function as ``artifact`` (the benchmark's per-call baseline)."""
    import torch

    net = build_network(len(artifact.feature_names), tuple(w.shape[0] for w, _ in artifact.layers[:-1]))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for module, (w, b) in zip(linears, artifact.layers, strict=True):
            module.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
            module.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32)))
    net.eval()
    return net
