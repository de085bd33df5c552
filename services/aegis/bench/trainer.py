"""Trainer: training time for 100k trades and inference latency per signal, beside a closed-form ridge regression.

Data: SYNTHETIC, in memory (no database): ``aegis.trainer.synthetic.planted_arrays`` — standard-normal features of
schema 1's width (33) and a return that is a known non-linear function of four of them plus noise, in percent
points, with reward scores and open/close times. Both sides learn the same rows and are scored on the same newest
20 %, which neither saw.

* ``train_fit_100k`` — the model's final fit as the trainer runs it (torch, one thread, deterministic, early
  stopping on the newest 10 %), on every row.
* ``train_cycle_100k`` — what a training run costs: the walk-forward folds (5, expanding, purged) plus that fit.
* ``inference_p99`` / ``inference_p50`` — one signal scored by the brain's predictor (``NumpyModel.__call__`` on a
  ``FeatureVector``), per call.
* baselines: ``ridge_train_100k`` (standardise, then solve the normal equations with a small L2 penalty, numpy),
  ``ridge_inference_p99`` (one vector: standardise and dot product), and ``torch_inference_p99`` (the same network
  called through torch per signal — why the brain uses numpy).
* ``oos_ic_model`` / ``oos_ic_ridge`` — Spearman IC on the held-out rows: what the extra cost buys.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from aegis.bench import report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trades", type=int, default=100_000, help="synthetic trades to train on (default 100000)")
    parser.add_argument("--calls", type=int, default=20_000, help="single-signal predictions timed (default 20000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data and the training (default 7)")


def _percentile_us(times_ns: list[int], q: float) -> float:
    ordered = sorted(times_ns)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def _time_calls(fn: Any, inputs: list[Any], calls: int) -> list[int]:
    for v in inputs[:200]:  # warm caches and lazy initialisation
        fn(v)
    out = []
    n = len(inputs)
    for i in range(calls):
        v = inputs[i % n]
        t0 = time.perf_counter_ns()
        fn(v)
        out.append(time.perf_counter_ns() - t0)
    return out


def ridge_fit(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form weighted ridge on standardised features: (mean, scale, coefficients with intercept last)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    xw = xs * w[:, None]
    penalty = l2 * np.eye(xs.shape[1])
    penalty[-1, -1] = 0.0  # no penalty on the intercept
    coef = np.linalg.solve(xw.T @ xs + penalty, xw.T @ y)
    return mean, scale, coef


def run(options: argparse.Namespace) -> dict[str, Any]:
    import torch

    from aegis.brain import features as feat
    from aegis.config import TrainerSettings
    from aegis.learning.inference import NumpyModel
    from aegis.learning.network import Hyperparameters, fit, torch_predictor
    from aegis.trainer.engine import Dataset, reward_weights, train_cycle
    from aegis.trainer.evaluation import spearman
    from aegis.trainer.synthetic import planted_arrays

    n = options.trades
    data = planted_arrays(n, options.seed)
    weights = reward_weights(data.rewards)
    names = feat.FEATURE_NAMES
    hyper = Hyperparameters()
    split = int(n * 0.8)

    # --- training: the model's fit and a whole run's cycle, on every row
    t0 = time.perf_counter()
    artifact = fit(
        data.features,
        data.returns_pct,
        weights,
        seed=options.seed,
        hyper=hyper,
        feature_schema_version=feat.FEATURE_SCHEMA_VERSION,
        feature_names=names,
        version="bench",
    )
    fit_s = time.perf_counter() - t0

    ds = Dataset(
        trade_ids=tuple(str(i) for i in range(n)),
        symbols=("SYNTHETIC",) * n,
        sides=("BUY",) * n,
        close_reasons=("SL_HIT",) * n,
        opened_ms=data.opened_ms,
        closed_ms=data.closed_ms,
        features=data.features,
        returns_pct=data.returns_pct,
        rewards=data.rewards,
        baseline_pct=np.zeros(n),
    )
    t0 = time.perf_counter()
    cycle = train_cycle(ds, seed=options.seed, settings=TrainerSettings(), version="bench", champion=None, hyper=hyper)
    cycle_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    mean, scale, coef = ridge_fit(data.features, data.returns_pct, weights)
    ridge_s = time.perf_counter() - t0

    # --- out-of-sample quality: both learn the oldest 80 %, both are scored on the newest 20 %
    held = fit(
        data.features[:split],
        data.returns_pct[:split],
        weights[:split],
        seed=options.seed,
        hyper=hyper,
        feature_schema_version=feat.FEATURE_SCHEMA_VERSION,
        feature_names=names,
    )
    model_ic = spearman(NumpyModel(held).predict(data.features[split:]), data.returns_pct[split:])
    r_mean, r_scale, r_coef = ridge_fit(data.features[:split], data.returns_pct[:split], weights[:split])
    ridge_pred = ((data.features[split:] - r_mean) / r_scale) @ r_coef[:-1] + r_coef[-1]
    ridge_ic = spearman(ridge_pred, data.returns_pct[split:])

    # --- inference: one signal per call, as the brain scores them
    model = NumpyModel(artifact)
    vectors = [feat.FeatureVector(feat.FEATURE_SCHEMA_VERSION, tuple(row.tolist())) for row in data.features[:2000]]
    model_ns = _time_calls(model, vectors, options.calls)
    inv_scale, w_ridge, b_ridge = 1.0 / scale, np.ascontiguousarray(coef[:-1]), float(coef[-1])

    def ridge_one(vector: Any) -> tuple[float, str]:
        x = (np.array(vector.values) - mean) * inv_scale
        return float(x @ w_ridge) + b_ridge, "ridge"

    ridge_ns = _time_calls(ridge_one, vectors, options.calls)
    net = torch_predictor(artifact)
    t_mean = torch.from_numpy(artifact.feature_mean.astype(np.float32))
    t_scale = torch.from_numpy(artifact.feature_scale.astype(np.float32))

    def torch_one(vector: Any) -> tuple[float, str]:
        with torch.inference_mode():
            x = ((torch.tensor(vector.values, dtype=torch.float32) - t_mean) / t_scale).clamp(-5, 5)
            out = float(net(x.unsqueeze(0))[0, 0])
        return out * artifact.target_scale + artifact.target_mean, "torch"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the brain would not give a per-signal call more than its own thread
    try:
        torch_ns = _time_calls(torch_one, vectors, min(options.calls, 5000))
    finally:
        torch.set_num_threads(threads)

    k = n // 1000
    results = [
        {"name": f"train_fit_{k}k", "value": round(fit_s, 3), "unit": "s"},
        {"name": f"train_cycle_{k}k", "value": round(cycle_s, 3), "unit": "s"},
        {"name": f"ridge_train_{k}k", "value": round(ridge_s, 4), "unit": "s"},
        {"name": "inference_p99", "value": round(_percentile_us(model_ns, 0.99), 2), "unit": "us"},
        {"name": "inference_p50", "value": round(_percentile_us(model_ns, 0.50), 2), "unit": "us"},
        {"name": "ridge_inference_p99", "value": round(_percentile_us(ridge_ns, 0.99), 2), "unit": "us"},
        {"name": "torch_inference_p99", "value": round(_percentile_us(torch_ns, 0.99), 2), "unit": "us"},
        {"name": "oos_ic_model", "value": round(model_ic, 4), "unit": "ic"},
        {"name": "oos_ic_ridge", "value": round(ridge_ic, 4), "unit": "ic"},
    ]
    p99 = _percentile_us(model_ns, 0.99)
    ratios = {
        "ridge_train": round(ridge_s / fit_s, 4),
        "ridge_inference_p99": round(_percentile_us(ridge_ns, 0.99) / p99, 3),
        "torch_inference_p99": round(_percentile_us(torch_ns, 0.99) / p99, 2),
        "ridge_oos_ic": round(model_ic / ridge_ic, 3) if ridge_ic > 0 else None,
    }
    return report(
        "trainer",
        results,
        ratios,
        data="synthetic (planted non-linear return function), in memory",
        trades=n,
        epochs_run=int(artifact.hyperparameters["epochs_run"]),
        walk_forward_folds=cycle.model_metrics.folds,
        walk_forward_ic=round(cycle.model_metrics.information_coefficient, 4),
        targets={"train_fit_s": 30, "train_cycle_s": 30, "inference_p99_us": 50},
    )
