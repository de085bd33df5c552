import datetime

from aegis.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATUS_UNSPECIFIED: _ClassVar[ModelStatus]
    MODEL_STATUS_CANDIDATE: _ClassVar[ModelStatus]
    MODEL_STATUS_ACTIVE: _ClassVar[ModelStatus]
    MODEL_STATUS_RETIRED: _ClassVar[ModelStatus]
    MODEL_STATUS_REJECTED: _ClassVar[ModelStatus]

class TrainingRunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_RUN_STATUS_UNSPECIFIED: _ClassVar[TrainingRunStatus]
    TRAINING_RUN_STATUS_QUEUED: _ClassVar[TrainingRunStatus]
    TRAINING_RUN_STATUS_RUNNING: _ClassVar[TrainingRunStatus]
    TRAINING_RUN_STATUS_SUCCEEDED: _ClassVar[TrainingRunStatus]
    TRAINING_RUN_STATUS_FAILED: _ClassVar[TrainingRunStatus]
    TRAINING_RUN_STATUS_SKIPPED: _ClassVar[TrainingRunStatus]
MODEL_STATUS_UNSPECIFIED: ModelStatus
MODEL_STATUS_CANDIDATE: ModelStatus
MODEL_STATUS_ACTIVE: ModelStatus
MODEL_STATUS_RETIRED: ModelStatus
MODEL_STATUS_REJECTED: ModelStatus
TRAINING_RUN_STATUS_UNSPECIFIED: TrainingRunStatus
TRAINING_RUN_STATUS_QUEUED: TrainingRunStatus
TRAINING_RUN_STATUS_RUNNING: TrainingRunStatus
TRAINING_RUN_STATUS_SUCCEEDED: TrainingRunStatus
TRAINING_RUN_STATUS_FAILED: TrainingRunStatus
TRAINING_RUN_STATUS_SKIPPED: TrainingRunStatus

class TrainNowRequest(_message.Message):
    __slots__ = ("seed", "reason")
    SEED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seed: int
    reason: str
    def __init__(self, seed: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class TrainNowResponse(_message.Message):
    __slots__ = ("run_id", "already_running")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RUNNING_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    already_running: bool
    def __init__(self, run_id: _Optional[str] = ..., already_running: _Optional[bool] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("version", "status", "run_id", "algorithm", "hyperparameters", "feature_schema_version", "feature_names", "training_trades", "metrics", "artifact_sha256", "artifact_size_bytes", "created_time", "activated_time")
    class HyperparametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TRADES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_TIME_FIELD_NUMBER: _ClassVar[int]
    version: str
    status: ModelStatus
    run_id: str
    algorithm: str
    hyperparameters: _containers.ScalarMap[str, str]
    feature_schema_version: str
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    training_trades: int
    metrics: WalkForwardMetrics
    artifact_sha256: str
    artifact_size_bytes: int
    created_time: _timestamp_pb2.Timestamp
    activated_time: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., status: _Optional[_Union[ModelStatus, str]] = ..., run_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., hyperparameters: _Optional[_Mapping[str, str]] = ..., feature_schema_version: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., training_trades: _Optional[int] = ..., metrics: _Optional[_Union[WalkForwardMetrics, _Mapping]] = ..., artifact_sha256: _Optional[str] = ..., artifact_size_bytes: _Optional[int] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: ModelStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[ModelStatus, str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTrainingReportRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetTrainingReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: TrainingReport
    def __init__(self, report: _Optional[_Union[TrainingReport, _Mapping]] = ...) -> None: ...

class TrainingRun(_message.Message):
    __slots__ = ("run_id", "status", "reason", "seed", "start_time", "end_time", "model_version", "promoted", "error")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    status: TrainingRunStatus
    reason: str
    seed: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    model_version: str
    promoted: bool
    error: str
    def __init__(self, run_id: _Optional[str] = ..., status: _Optional[_Union[TrainingRunStatus, str]] = ..., reason: _Optional[str] = ..., seed: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model_version: _Optional[str] = ..., promoted: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class TrainingReport(_message.Message):
    __slots__ = ("run", "trades_total", "trades_valid", "trades_invalid", "invalid_by_reason", "bias_checks", "model_metrics", "baseline_metrics", "baseline_name", "promotion_reason", "previous_model_version")
    RUN_FIELD_NUMBER: _ClassVar[int]
    TRADES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRADES_VALID_FIELD_NUMBER: _ClassVar[int]
    TRADES_INVALID_FIELD_NUMBER: _ClassVar[int]
    INVALID_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    BIAS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    MODEL_METRICS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_METRICS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_NAME_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_REASON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    trades_total: int
    trades_valid: int
    trades_invalid: int
    invalid_by_reason: _containers.RepeatedCompositeFieldContainer[_common_pb2.ReasonCount]
    bias_checks: _containers.RepeatedCompositeFieldContainer[BiasCheck]
    model_metrics: WalkForwardMetrics
    baseline_metrics: WalkForwardMetrics
    baseline_name: str
    promotion_reason: str
    previous_model_version: str
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ..., trades_total: _Optional[int] = ..., trades_valid: _Optional[int] = ..., trades_invalid: _Optional[int] = ..., invalid_by_reason: _Optional[_Iterable[_Union[_common_pb2.ReasonCount, _Mapping]]] = ..., bias_checks: _Optional[_Iterable[_Union[BiasCheck, _Mapping]]] = ..., model_metrics: _Optional[_Union[WalkForwardMetrics, _Mapping]] = ..., baseline_metrics: _Optional[_Union[WalkForwardMetrics, _Mapping]] = ..., baseline_name: _Optional[str] = ..., promotion_reason: _Optional[str] = ..., previous_model_version: _Optional[str] = ...) -> None: ...

class BiasCheck(_message.Message):
    __slots__ = ("name", "figure", "threshold", "passed", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIGURE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    figure: float
    threshold: float
    passed: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., figure: _Optional[float] = ..., threshold: _Optional[float] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class WalkForwardMetrics(_message.Message):
    __slots__ = ("information_coefficient", "mae_pct", "hit_rate", "expectancy_after_fees_pct", "trades", "folds")
    INFORMATION_COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    MAE_PCT_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTANCY_AFTER_FEES_PCT_FIELD_NUMBER: _ClassVar[int]
    TRADES_FIELD_NUMBER: _ClassVar[int]
    FOLDS_FIELD_NUMBER: _ClassVar[int]
    information_coefficient: float
    mae_pct: float
    hit_rate: float
    expectancy_after_fees_pct: float
    trades: int
    folds: int
    def __init__(self, information_coefficient: _Optional[float] = ..., mae_pct: _Optional[float] = ..., hit_rate: _Optional[float] = ..., expectancy_after_fees_pct: _Optional[float] = ..., trades: _Optional[int] = ..., folds: _Optional[int] = ...) -> None: ...

class ListTrainingRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: TrainingRunStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[TrainingRunStatus, str]] = ...) -> None: ...

class ListTrainingRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[TrainingRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[TrainingRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ActivateModelRequest(_message.Message):
    __slots__ = ("version", "reason")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    version: str
    reason: str
    def __init__(self, version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ActivateModelResponse(_message.Message):
    __slots__ = ("model", "previous_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: Model
    previous_version: str
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ..., previous_version: _Optional[str] = ...) -> None: ...
