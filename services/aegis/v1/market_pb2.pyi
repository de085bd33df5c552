import datetime

from aegis.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SmcZoneKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SMC_ZONE_KIND_UNSPECIFIED: _ClassVar[SmcZoneKind]
    SMC_ZONE_KIND_ORDER_BLOCK: _ClassVar[SmcZoneKind]
    SMC_ZONE_KIND_FAIR_VALUE_GAP: _ClassVar[SmcZoneKind]
    SMC_ZONE_KIND_LIQUIDITY_POOL: _ClassVar[SmcZoneKind]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_BULLISH: _ClassVar[Direction]
    DIRECTION_BEARISH: _ClassVar[Direction]

class StructureEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRUCTURE_EVENT_KIND_UNSPECIFIED: _ClassVar[StructureEventKind]
    STRUCTURE_EVENT_KIND_SWING_HIGH: _ClassVar[StructureEventKind]
    STRUCTURE_EVENT_KIND_SWING_LOW: _ClassVar[StructureEventKind]
    STRUCTURE_EVENT_KIND_BOS: _ClassVar[StructureEventKind]
    STRUCTURE_EVENT_KIND_CHOCH: _ClassVar[StructureEventKind]
SMC_ZONE_KIND_UNSPECIFIED: SmcZoneKind
SMC_ZONE_KIND_ORDER_BLOCK: SmcZoneKind
SMC_ZONE_KIND_FAIR_VALUE_GAP: SmcZoneKind
SMC_ZONE_KIND_LIQUIDITY_POOL: SmcZoneKind
DIRECTION_UNSPECIFIED: Direction
DIRECTION_BULLISH: Direction
DIRECTION_BEARISH: Direction
STRUCTURE_EVENT_KIND_UNSPECIFIED: StructureEventKind
STRUCTURE_EVENT_KIND_SWING_HIGH: StructureEventKind
STRUCTURE_EVENT_KIND_SWING_LOW: StructureEventKind
STRUCTURE_EVENT_KIND_BOS: StructureEventKind
STRUCTURE_EVENT_KIND_CHOCH: StructureEventKind

class GetMarketStateRequest(_message.Message):
    __slots__ = ("symbol", "timeframe", "limit")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: _common_pb2.Timeframe
    limit: int
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[_Union[_common_pb2.Timeframe, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class GetMarketStateResponse(_message.Message):
    __slots__ = ("symbol", "timeframe", "candles", "indicators", "zones", "structure_events", "last_price", "mark_price", "funding_rate", "next_funding_time", "as_of_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    CANDLES_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_PRICE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    FUNDING_RATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FUNDING_TIME_FIELD_NUMBER: _ClassVar[int]
    AS_OF_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: _common_pb2.Timeframe
    candles: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candle]
    indicators: _containers.RepeatedCompositeFieldContainer[IndicatorValue]
    zones: _containers.RepeatedCompositeFieldContainer[SmcZone]
    structure_events: _containers.RepeatedCompositeFieldContainer[StructureEvent]
    last_price: str
    mark_price: str
    funding_rate: str
    next_funding_time: _timestamp_pb2.Timestamp
    as_of_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[_Union[_common_pb2.Timeframe, str]] = ..., candles: _Optional[_Iterable[_Union[_common_pb2.Candle, _Mapping]]] = ..., indicators: _Optional[_Iterable[_Union[IndicatorValue, _Mapping]]] = ..., zones: _Optional[_Iterable[_Union[SmcZone, _Mapping]]] = ..., structure_events: _Optional[_Iterable[_Union[StructureEvent, _Mapping]]] = ..., last_price: _Optional[str] = ..., mark_price: _Optional[str] = ..., funding_rate: _Optional[str] = ..., next_funding_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., as_of_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IndicatorValue(_message.Message):
    __slots__ = ("name", "params", "values", "candle_open_time")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    CANDLE_OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _containers.ScalarMap[str, float]
    values: _containers.ScalarMap[str, float]
    candle_open_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Mapping[str, float]] = ..., values: _Optional[_Mapping[str, float]] = ..., candle_open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SmcZone(_message.Message):
    __slots__ = ("zone_id", "kind", "direction", "top", "bottom", "formed_time", "mitigated", "mitigated_time", "strength")
    ZONE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_FIELD_NUMBER: _ClassVar[int]
    FORMED_TIME_FIELD_NUMBER: _ClassVar[int]
    MITIGATED_FIELD_NUMBER: _ClassVar[int]
    MITIGATED_TIME_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    zone_id: str
    kind: SmcZoneKind
    direction: Direction
    top: str
    bottom: str
    formed_time: _timestamp_pb2.Timestamp
    mitigated: bool
    mitigated_time: _timestamp_pb2.Timestamp
    strength: float
    def __init__(self, zone_id: _Optional[str] = ..., kind: _Optional[_Union[SmcZoneKind, str]] = ..., direction: _Optional[_Union[Direction, str]] = ..., top: _Optional[str] = ..., bottom: _Optional[str] = ..., formed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mitigated: _Optional[bool] = ..., mitigated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., strength: _Optional[float] = ...) -> None: ...

class StructureEvent(_message.Message):
    __slots__ = ("kind", "direction", "level", "event_time", "confirmed_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: StructureEventKind
    direction: Direction
    level: str
    event_time: _timestamp_pb2.Timestamp
    confirmed_time: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[StructureEventKind, str]] = ..., direction: _Optional[_Union[Direction, str]] = ..., level: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confirmed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCandlesRequest(_message.Message):
    __slots__ = ("symbol", "timeframe", "start_time", "end_time", "page_size", "page_token")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: _common_pb2.Timeframe
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[_Union[_common_pb2.Timeframe, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCandlesResponse(_message.Message):
    __slots__ = ("candles", "next_page_token")
    CANDLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    candles: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candle]
    next_page_token: str
    def __init__(self, candles: _Optional[_Iterable[_Union[_common_pb2.Candle, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListSignalsRequest(_message.Message):
    __slots__ = ("symbol", "timeframe", "start_time", "end_time", "model_version", "page_size", "page_token", "include_features")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: _common_pb2.Timeframe
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    model_version: str
    page_size: int
    page_token: str
    include_features: bool
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[_Union[_common_pb2.Timeframe, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model_version: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_features: _Optional[bool] = ...) -> None: ...

class ListSignalsResponse(_message.Message):
    __slots__ = ("signals", "next_page_token")
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    signals: _containers.RepeatedCompositeFieldContainer[_common_pb2.Signal]
    next_page_token: str
    def __init__(self, signals: _Optional[_Iterable[_Union[_common_pb2.Signal, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamSignalsRequest(_message.Message):
    __slots__ = ("symbols", "min_confidence", "include_features")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    min_confidence: float
    include_features: bool
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., min_confidence: _Optional[float] = ..., include_features: _Optional[bool] = ...) -> None: ...

class StreamSignalsResponse(_message.Message):
    __slots__ = ("signal",)
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    signal: _common_pb2.Signal
    def __init__(self, signal: _Optional[_Union[_common_pb2.Signal, _Mapping]] = ...) -> None: ...

class GetBrainStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBrainStatusResponse(_message.Message):
    __slots__ = ("shards", "ticks_per_second", "conflated_updates", "active_model_version", "model_loaded_time", "resync_count", "signals_total", "last_signal_time", "symbol_count", "timeframes", "start_time", "version")
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    TICKS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CONFLATED_UPDATES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_LOADED_TIME_FIELD_NUMBER: _ClassVar[int]
    RESYNC_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LAST_SIGNAL_TIME_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAMES_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    shards: _containers.RepeatedCompositeFieldContainer[BrainShardStatus]
    ticks_per_second: float
    conflated_updates: int
    active_model_version: str
    model_loaded_time: _timestamp_pb2.Timestamp
    resync_count: int
    signals_total: int
    last_signal_time: _timestamp_pb2.Timestamp
    symbol_count: int
    timeframes: _containers.RepeatedScalarFieldContainer[_common_pb2.Timeframe]
    start_time: _timestamp_pb2.Timestamp
    version: str
    def __init__(self, shards: _Optional[_Iterable[_Union[BrainShardStatus, _Mapping]]] = ..., ticks_per_second: _Optional[float] = ..., conflated_updates: _Optional[int] = ..., active_model_version: _Optional[str] = ..., model_loaded_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resync_count: _Optional[int] = ..., signals_total: _Optional[int] = ..., last_signal_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., symbol_count: _Optional[int] = ..., timeframes: _Optional[_Iterable[_Union[_common_pb2.Timeframe, str]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...

class BrainShardStatus(_message.Message):
    __slots__ = ("shard_index", "lag_records", "lag", "writer_epoch", "resync_count", "lost_records")
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    WRITER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    RESYNC_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOST_RECORDS_FIELD_NUMBER: _ClassVar[int]
    shard_index: int
    lag_records: int
    lag: _duration_pb2.Duration
    writer_epoch: int
    resync_count: int
    lost_records: int
    def __init__(self, shard_index: _Optional[int] = ..., lag_records: _Optional[int] = ..., lag: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., writer_epoch: _Optional[int] = ..., resync_count: _Optional[int] = ..., lost_records: _Optional[int] = ...) -> None: ...
