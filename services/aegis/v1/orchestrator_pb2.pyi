import datetime

from aegis.v1 import common_pb2 as _common_pb2
from aegis.v1 import trainer_pb2 as _trainer_pb2
from aegis.v1 import virtual_account_pb2 as _virtual_account_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVICE_UNKNOWN: _ClassVar[ServingStatus]
    SERVING_STATUS_UNREACHABLE: _ClassVar[ServingStatus]

class MaintenanceTask(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MAINTENANCE_TASK_UNSPECIFIED: _ClassVar[MaintenanceTask]
    MAINTENANCE_TASK_REFRESH_RULES: _ClassVar[MaintenanceTask]
    MAINTENANCE_TASK_REFRESH_UNIVERSE: _ClassVar[MaintenanceTask]
    MAINTENANCE_TASK_RETENTION: _ClassVar[MaintenanceTask]
    MAINTENANCE_TASK_VACUUM: _ClassVar[MaintenanceTask]
    MAINTENANCE_TASK_MIGRATE: _ClassVar[MaintenanceTask]
    MAINTENANCE_TASK_REBALANCE_SHARDS: _ClassVar[MaintenanceTask]

class MaintenanceTaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MAINTENANCE_TASK_STATUS_UNSPECIFIED: _ClassVar[MaintenanceTaskStatus]
    MAINTENANCE_TASK_STATUS_SUCCEEDED: _ClassVar[MaintenanceTaskStatus]
    MAINTENANCE_TASK_STATUS_FAILED: _ClassVar[MaintenanceTaskStatus]
    MAINTENANCE_TASK_STATUS_SKIPPED: _ClassVar[MaintenanceTaskStatus]
SERVING_STATUS_UNSPECIFIED: ServingStatus
SERVING_STATUS_SERVING: ServingStatus
SERVING_STATUS_NOT_SERVING: ServingStatus
SERVING_STATUS_SERVICE_UNKNOWN: ServingStatus
SERVING_STATUS_UNREACHABLE: ServingStatus
MAINTENANCE_TASK_UNSPECIFIED: MaintenanceTask
MAINTENANCE_TASK_REFRESH_RULES: MaintenanceTask
MAINTENANCE_TASK_REFRESH_UNIVERSE: MaintenanceTask
MAINTENANCE_TASK_RETENTION: MaintenanceTask
MAINTENANCE_TASK_VACUUM: MaintenanceTask
MAINTENANCE_TASK_MIGRATE: MaintenanceTask
MAINTENANCE_TASK_REBALANCE_SHARDS: MaintenanceTask
MAINTENANCE_TASK_STATUS_UNSPECIFIED: MaintenanceTaskStatus
MAINTENANCE_TASK_STATUS_SUCCEEDED: MaintenanceTaskStatus
MAINTENANCE_TASK_STATUS_FAILED: MaintenanceTaskStatus
MAINTENANCE_TASK_STATUS_SKIPPED: MaintenanceTaskStatus

class GetSystemStatusRequest(_message.Message):
    __slots__ = ("probe_timeout",)
    PROBE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    probe_timeout: _duration_pb2.Duration
    def __init__(self, probe_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetSystemStatusResponse(_message.Message):
    __slots__ = ("services", "feed_messages_per_second", "feed_rejects_total", "feed_rejects", "shards", "brain_lag", "accounts", "last_training_run", "postgres", "redis", "leader", "leader_identity", "in_cluster", "pods", "as_of_time")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    FEED_MESSAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    FEED_REJECTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FEED_REJECTS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    BRAIN_LAG_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    LAST_TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    POSTGRES_FIELD_NUMBER: _ClassVar[int]
    REDIS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    IN_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PODS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_TIME_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceStatus]
    feed_messages_per_second: float
    feed_rejects_total: int
    feed_rejects: _containers.RepeatedCompositeFieldContainer[_common_pb2.ReasonCount]
    shards: _containers.RepeatedCompositeFieldContainer[ShardStatus]
    brain_lag: _duration_pb2.Duration
    accounts: _containers.RepeatedCompositeFieldContainer[AccountSummary]
    last_training_run: _trainer_pb2.TrainingRun
    postgres: DependencyStatus
    redis: DependencyStatus
    leader: bool
    leader_identity: str
    in_cluster: bool
    pods: _containers.RepeatedCompositeFieldContainer[PodStatus]
    as_of_time: _timestamp_pb2.Timestamp
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceStatus, _Mapping]]] = ..., feed_messages_per_second: _Optional[float] = ..., feed_rejects_total: _Optional[int] = ..., feed_rejects: _Optional[_Iterable[_Union[_common_pb2.ReasonCount, _Mapping]]] = ..., shards: _Optional[_Iterable[_Union[ShardStatus, _Mapping]]] = ..., brain_lag: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., accounts: _Optional[_Iterable[_Union[AccountSummary, _Mapping]]] = ..., last_training_run: _Optional[_Union[_trainer_pb2.TrainingRun, _Mapping]] = ..., postgres: _Optional[_Union[DependencyStatus, _Mapping]] = ..., redis: _Optional[_Union[DependencyStatus, _Mapping]] = ..., leader: _Optional[bool] = ..., leader_identity: _Optional[str] = ..., in_cluster: _Optional[bool] = ..., pods: _Optional[_Iterable[_Union[PodStatus, _Mapping]]] = ..., as_of_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ServiceStatus(_message.Message):
    __slots__ = ("name", "address", "status", "version", "latency", "error", "checked_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHECKED_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    status: ServingStatus
    version: str
    latency: _duration_pb2.Duration
    error: str
    checked_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., status: _Optional[_Union[ServingStatus, str]] = ..., version: _Optional[str] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error: _Optional[str] = ..., checked_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DependencyStatus(_message.Message):
    __slots__ = ("healthy", "latency", "version", "address", "error")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    latency: _duration_pb2.Duration
    version: str
    address: str
    error: str
    def __init__(self, healthy: _Optional[bool] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., version: _Optional[str] = ..., address: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ShardStatus(_message.Message):
    __slots__ = ("shard_index", "symbol_count", "ring_fill", "ring_capacity", "ring_fill_ratio", "ring_drops", "ring_overruns", "brain_lag_records", "brain_lag", "pod")
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_COUNT_FIELD_NUMBER: _ClassVar[int]
    RING_FILL_FIELD_NUMBER: _ClassVar[int]
    RING_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    RING_FILL_RATIO_FIELD_NUMBER: _ClassVar[int]
    RING_DROPS_FIELD_NUMBER: _ClassVar[int]
    RING_OVERRUNS_FIELD_NUMBER: _ClassVar[int]
    BRAIN_LAG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    BRAIN_LAG_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    shard_index: int
    symbol_count: int
    ring_fill: int
    ring_capacity: int
    ring_fill_ratio: float
    ring_drops: int
    ring_overruns: int
    brain_lag_records: int
    brain_lag: _duration_pb2.Duration
    pod: str
    def __init__(self, shard_index: _Optional[int] = ..., symbol_count: _Optional[int] = ..., ring_fill: _Optional[int] = ..., ring_capacity: _Optional[int] = ..., ring_fill_ratio: _Optional[float] = ..., ring_drops: _Optional[int] = ..., ring_overruns: _Optional[int] = ..., brain_lag_records: _Optional[int] = ..., brain_lag: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., pod: _Optional[str] = ...) -> None: ...

class AccountSummary(_message.Message):
    __slots__ = ("account", "kind", "open_positions", "equity", "halted")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPEN_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    HALTED_FIELD_NUMBER: _ClassVar[int]
    account: str
    kind: _common_pb2.AccountKind
    open_positions: int
    equity: str
    halted: bool
    def __init__(self, account: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.AccountKind, str]] = ..., open_positions: _Optional[int] = ..., equity: _Optional[str] = ..., halted: _Optional[bool] = ...) -> None: ...

class PodStatus(_message.Message):
    __slots__ = ("name", "phase", "ready", "restarts", "node", "shard_index", "start_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    phase: str
    ready: bool
    restarts: int
    node: str
    shard_index: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., phase: _Optional[str] = ..., ready: _Optional[bool] = ..., restarts: _Optional[int] = ..., node: _Optional[str] = ..., shard_index: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSymbolsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "shard_index", "include_excluded")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    shard_index: int
    include_excluded: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., shard_index: _Optional[int] = ..., include_excluded: _Optional[bool] = ...) -> None: ...

class ListSymbolsResponse(_message.Message):
    __slots__ = ("symbols", "next_page_token", "shard_count")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[UniverseSymbol]
    next_page_token: str
    shard_count: int
    def __init__(self, symbols: _Optional[_Iterable[_Union[UniverseSymbol, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., shard_count: _Optional[int] = ...) -> None: ...

class UniverseSymbol(_message.Message):
    __slots__ = ("symbol", "shard_index", "included", "exclusion_reason", "quote_volume_24h", "added_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_FIELD_NUMBER: _ClassVar[int]
    EXCLUSION_REASON_FIELD_NUMBER: _ClassVar[int]
    QUOTE_VOLUME_24H_FIELD_NUMBER: _ClassVar[int]
    ADDED_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    shard_index: int
    included: bool
    exclusion_reason: str
    quote_volume_24h: str
    added_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., shard_index: _Optional[int] = ..., included: _Optional[bool] = ..., exclusion_reason: _Optional[str] = ..., quote_volume_24h: _Optional[str] = ..., added_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReconcileAccountRequest(_message.Message):
    __slots__ = ("account", "dry_run")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    account: str
    dry_run: bool
    def __init__(self, account: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ReconcileAccountResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: _virtual_account_pb2.ReconcileReport
    def __init__(self, report: _Optional[_Union[_virtual_account_pb2.ReconcileReport, _Mapping]] = ...) -> None: ...

class RunMaintenanceRequest(_message.Message):
    __slots__ = ("tasks", "dry_run")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[MaintenanceTask]
    dry_run: bool
    def __init__(self, tasks: _Optional[_Iterable[_Union[MaintenanceTask, str]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class RunMaintenanceResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[MaintenanceTaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[MaintenanceTaskResult, _Mapping]]] = ...) -> None: ...

class MaintenanceTaskResult(_message.Message):
    __slots__ = ("task", "status", "items_affected", "summary", "error", "start_time", "duration")
    TASK_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_AFFECTED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    task: MaintenanceTask
    status: MaintenanceTaskStatus
    items_affected: int
    summary: str
    error: str
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    def __init__(self, task: _Optional[_Union[MaintenanceTask, str]] = ..., status: _Optional[_Union[MaintenanceTaskStatus, str]] = ..., items_affected: _Optional[int] = ..., summary: _Optional[str] = ..., error: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetHeartbeatRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHeartbeatResponse(_message.Message):
    __slots__ = ("server_time", "uptime", "leader", "version")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    uptime: _duration_pb2.Duration
    leader: bool
    version: str
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., leader: _Optional[bool] = ..., version: _Optional[str] = ...) -> None: ...
