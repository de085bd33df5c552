"""Translation between the trainer's records and ``aegis.v1`` trainer messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import timestamp_pb2

from aegis.errors import ValidationError
from aegis.trainer.bias import CHECK_NAMES
from aegis.trainer.repository import ModelRecord, RunRecord
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import trainer_pb2 as trainer_pb

MODEL_STATUS = {
    "candidate": trainer_pb.MODEL_STATUS_CANDIDATE,
    "active": trainer_pb.MODEL_STATUS_ACTIVE,
    "retired": trainer_pb.MODEL_STATUS_RETIRED,
    "rejected": trainer_pb.MODEL_STATUS_REJECTED,
}
RUN_STATUS = {
    "queued": trainer_pb.TRAINING_RUN_STATUS_QUEUED,
    "running": trainer_pb.TRAINING_RUN_STATUS_RUNNING,
    "succeeded": trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED,
    "failed": trainer_pb.TRAINING_RUN_STATUS_FAILED,
    "skipped": trainer_pb.TRAINING_RUN_STATUS_SKIPPED,
}
_MODEL_STATUS_NAME = {v: k for k, v in MODEL_STATUS.items()}
_RUN_STATUS_NAME = {v: k for k, v in RUN_STATUS.items()}


def stamp(when: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def model_status_from_pb(value: int) -> str | None:
    if value == trainer_pb.MODEL_STATUS_UNSPECIFIED:
        return None
    if value not in _MODEL_STATUS_NAME:
        raise ValidationError("status", f"unknown model status {value}")
    return _MODEL_STATUS_NAME[value]


def run_status_from_pb(value: int) -> str | None:
    if value == trainer_pb.TRAINING_RUN_STATUS_UNSPECIFIED:
        return None
    if value not in _RUN_STATUS_NAME:
        raise ValidationError("status", f"unknown training run status {value}")
    return _RUN_STATUS_NAME[value]


def metrics_to_pb(data: dict[str, Any] | None) -> trainer_pb.WalkForwardMetrics:
    data = data or {}
    return trainer_pb.WalkForwardMetrics(
        information_coefficient=float(data.get("information_coefficient", 0.0)),
        mae_pct=float(data.get("mae_pct", 0.0)),
        hit_rate=float(data.get("hit_rate", 0.0)),
        expectancy_after_fees_pct=float(data.get("expectancy_after_fees_pct", 0.0)),
        trades=int(data.get("trades", 0)),
        folds=int(data.get("folds", 0)),
    )


def model_to_pb(m: ModelRecord) -> trainer_pb.Model:
    return trainer_pb.Model(
        version=m.version,
        status=MODEL_STATUS[m.status],
        run_id=m.run_id or "",
        algorithm=m.algorithm,
        hyperparameters={str(k): str(v) for k, v in m.hyperparameters.items()},
        feature_schema_version=str(m.feature_schema_version),
        feature_names=list(m.feature_names),
        training_trades=m.training_trades,
        metrics=metrics_to_pb(m.metrics.get("walk_forward")),
        artifact_sha256=m.artifact_sha256,
        artifact_size_bytes=m.artifact_size_bytes,
        created_time=stamp(m.created_at),
        activated_time=stamp(m.promoted_at),
    )


def run_to_pb(r: RunRecord) -> trainer_pb.TrainingRun:
    return trainer_pb.TrainingRun(
        run_id=r.run_id,
        status=RUN_STATUS[r.status],
        reason=r.request_reason or r.trigger,
        seed=r.seed,
        start_time=stamp(r.started_at),
        end_time=stamp(r.finished_at),
        model_version=r.model_version or "",
        promoted=r.promoted,
        error=r.error or "",
    )


def report_to_pb(r: RunRecord) -> trainer_pb.TrainingReport:
    checks = {c["name"]: c for c in r.bias_checks}
    return trainer_pb.TrainingReport(
        run=run_to_pb(r),
        trades_total=r.trades_total,
        trades_valid=r.trades_valid,
        trades_invalid=r.trades_invalid,
        invalid_by_reason=[
            common_pb.ReasonCount(reason=reason, count=count) for reason, count in sorted(r.invalid_by_reason.items())
        ],
        bias_checks=[
            trainer_pb.BiasCheck(
                name=c["name"],
                figure=float(c["figure"]),
                threshold=float(c["threshold"]),
                passed=bool(c["passed"]),
                detail=c["detail"],
            )
            for name in CHECK_NAMES
            if (c := checks.get(name)) is not None
        ],
        model_metrics=metrics_to_pb(r.metrics),
        baseline_metrics=metrics_to_pb((r.baseline_metrics or {}).get("compared")),
        baseline_name=r.baseline_name or "",
        promotion_reason=r.reason or "",
        previous_model_version=r.previous_model_version or "",
    )
