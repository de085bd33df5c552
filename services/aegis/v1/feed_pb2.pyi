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

class FeedSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEED_SOURCE_UNSPECIFIED: _ClassVar[FeedSource]
    FEED_SOURCE_LIVE: _ClassVar[FeedSource]
    FEED_SOURCE_REPLAY: _ClassVar[FeedSource]

class ConnectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATE_UNSPECIFIED: _ClassVar[ConnectionState]
    CONNECTION_STATE_CONNECTING: _ClassVar[ConnectionState]
    CONNECTION_STATE_OPEN: _ClassVar[ConnectionState]
    CONNECTION_STATE_RECONNECTING: _ClassVar[ConnectionState]
    CONNECTION_STATE_CLOSED: _ClassVar[ConnectionState]

class StreamEndpoint(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_ENDPOINT_UNSPECIFIED: _ClassVar[StreamEndpoint]
    STREAM_ENDPOINT_PUBLIC: _ClassVar[StreamEndpoint]
    STREAM_ENDPOINT_MARKET: _ClassVar[StreamEndpoint]

class StreamKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_KIND_UNSPECIFIED: _ClassVar[StreamKind]
    STREAM_KIND_AGG_TRADE: _ClassVar[StreamKind]
    STREAM_KIND_BOOK_TICKER: _ClassVar[StreamKind]
    STREAM_KIND_MARK_PRICE: _ClassVar[StreamKind]
    STREAM_KIND_KLINE: _ClassVar[StreamKind]
    STREAM_KIND_LIQUIDATION: _ClassVar[StreamKind]
    STREAM_KIND_DEPTH: _ClassVar[StreamKind]
FEED_SOURCE_UNSPECIFIED: FeedSource
FEED_SOURCE_LIVE: FeedSource
FEED_SOURCE_REPLAY: FeedSource
CONNECTION_STATE_UNSPECIFIED: ConnectionState
CONNECTION_STATE_CONNECTING: ConnectionState
CONNECTION_STATE_OPEN: ConnectionState
CONNECTION_STATE_RECONNECTING: ConnectionState
CONNECTION_STATE_CLOSED: ConnectionState
STREAM_ENDPOINT_UNSPECIFIED: StreamEndpoint
STREAM_ENDPOINT_PUBLIC: StreamEndpoint
STREAM_ENDPOINT_MARKET: StreamEndpoint
STREAM_KIND_UNSPECIFIED: StreamKind
STREAM_KIND_AGG_TRADE: StreamKind
STREAM_KIND_BOOK_TICKER: StreamKind
STREAM_KIND_MARK_PRICE: StreamKind
STREAM_KIND_KLINE: StreamKind
STREAM_KIND_LIQUIDATION: StreamKind
STREAM_KIND_DEPTH: StreamKind

class GetFeedStatusRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class GetFeedStatusResponse(_message.Message):
    __slots__ = ("source", "connections", "messages_per_second", "messages_total", "rejects_total", "rejects", "symbols", "rings", "start_time", "version")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    REJECTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    RINGS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    source: FeedSource
    connections: _containers.RepeatedCompositeFieldContainer[FeedConnection]
    messages_per_second: float
    messages_total: int
    rejects_total: int
    rejects: _containers.RepeatedCompositeFieldContainer[_common_pb2.ReasonCount]
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolFreshness]
    rings: _containers.RepeatedCompositeFieldContainer[RingStatus]
    start_time: _timestamp_pb2.Timestamp
    version: str
    def __init__(self, source: _Optional[_Union[FeedSource, str]] = ..., connections: _Optional[_Iterable[_Union[FeedConnection, _Mapping]]] = ..., messages_per_second: _Optional[float] = ..., messages_total: _Optional[int] = ..., rejects_total: _Optional[int] = ..., rejects: _Optional[_Iterable[_Union[_common_pb2.ReasonCount, _Mapping]]] = ..., symbols: _Optional[_Iterable[_Union[SymbolFreshness, _Mapping]]] = ..., rings: _Optional[_Iterable[_Union[RingStatus, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...

class FeedConnection(_message.Message):
    __slots__ = ("connection_id", "url", "endpoint", "state", "stream_count", "streams", "reconnects", "messages_per_second", "messages_total", "connected_time", "last_message_time", "last_error")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STREAM_COUNT_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    url: str
    endpoint: StreamEndpoint
    state: ConnectionState
    stream_count: int
    streams: _containers.RepeatedScalarFieldContainer[str]
    reconnects: int
    messages_per_second: float
    messages_total: int
    connected_time: _timestamp_pb2.Timestamp
    last_message_time: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, connection_id: _Optional[str] = ..., url: _Optional[str] = ..., endpoint: _Optional[_Union[StreamEndpoint, str]] = ..., state: _Optional[_Union[ConnectionState, str]] = ..., stream_count: _Optional[int] = ..., streams: _Optional[_Iterable[str]] = ..., reconnects: _Optional[int] = ..., messages_per_second: _Optional[float] = ..., messages_total: _Optional[int] = ..., connected_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_message_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class SymbolFreshness(_message.Message):
    __slots__ = ("symbol", "last_message_age", "last_message_time", "last_exchange_time", "shard_index")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_AGE_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_EXCHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    last_message_age: _duration_pb2.Duration
    last_message_time: _timestamp_pb2.Timestamp
    last_exchange_time: _timestamp_pb2.Timestamp
    shard_index: int
    def __init__(self, symbol: _Optional[str] = ..., last_message_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_message_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_exchange_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., shard_index: _Optional[int] = ...) -> None: ...

class RingStatus(_message.Message):
    __slots__ = ("shard_index", "path", "capacity", "slot_size_bytes", "fill", "fill_ratio", "published_sequence", "writer_epoch", "writer_heartbeat_time", "drops", "overruns", "lost_records", "symbols", "readers")
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SLOT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    FILL_RATIO_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    WRITER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    WRITER_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    OVERRUNS_FIELD_NUMBER: _ClassVar[int]
    LOST_RECORDS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    READERS_FIELD_NUMBER: _ClassVar[int]
    shard_index: int
    path: str
    capacity: int
    slot_size_bytes: int
    fill: int
    fill_ratio: float
    published_sequence: int
    writer_epoch: int
    writer_heartbeat_time: _timestamp_pb2.Timestamp
    drops: int
    overruns: int
    lost_records: int
    symbols: _containers.RepeatedScalarFieldContainer[str]
    readers: _containers.RepeatedCompositeFieldContainer[RingReaderStatus]
    def __init__(self, shard_index: _Optional[int] = ..., path: _Optional[str] = ..., capacity: _Optional[int] = ..., slot_size_bytes: _Optional[int] = ..., fill: _Optional[int] = ..., fill_ratio: _Optional[float] = ..., published_sequence: _Optional[int] = ..., writer_epoch: _Optional[int] = ..., writer_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., drops: _Optional[int] = ..., overruns: _Optional[int] = ..., lost_records: _Optional[int] = ..., symbols: _Optional[_Iterable[str]] = ..., readers: _Optional[_Iterable[_Union[RingReaderStatus, _Mapping]]] = ...) -> None: ...

class RingReaderStatus(_message.Message):
    __slots__ = ("name", "cursor", "lag_records", "overruns", "lost_records", "heartbeat_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LAG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    OVERRUNS_FIELD_NUMBER: _ClassVar[int]
    LOST_RECORDS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    cursor: int
    lag_records: int
    overruns: int
    lost_records: int
    heartbeat_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., cursor: _Optional[int] = ..., lag_records: _Optional[int] = ..., overruns: _Optional[int] = ..., lost_records: _Optional[int] = ..., heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListStreamsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "symbol", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    symbol: str
    kind: StreamKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., symbol: _Optional[str] = ..., kind: _Optional[_Union[StreamKind, str]] = ...) -> None: ...

class ListStreamsResponse(_message.Message):
    __slots__ = ("streams", "next_page_token")
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedCompositeFieldContainer[StreamSubscription]
    next_page_token: str
    def __init__(self, streams: _Optional[_Iterable[_Union[StreamSubscription, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamSubscription(_message.Message):
    __slots__ = ("name", "symbol", "kind", "timeframe", "connection_id", "endpoint", "subscribed_time", "messages_total", "last_message_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    symbol: str
    kind: StreamKind
    timeframe: _common_pb2.Timeframe
    connection_id: str
    endpoint: StreamEndpoint
    subscribed_time: _timestamp_pb2.Timestamp
    messages_total: int
    last_message_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., symbol: _Optional[str] = ..., kind: _Optional[_Union[StreamKind, str]] = ..., timeframe: _Optional[_Union[_common_pb2.Timeframe, str]] = ..., connection_id: _Optional[str] = ..., endpoint: _Optional[_Union[StreamEndpoint, str]] = ..., subscribed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., messages_total: _Optional[int] = ..., last_message_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
