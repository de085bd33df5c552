import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_BUY: _ClassVar[Side]
    SIDE_SELL: _ClassVar[Side]

class PositionSide(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POSITION_SIDE_UNSPECIFIED: _ClassVar[PositionSide]
    POSITION_SIDE_LONG: _ClassVar[PositionSide]
    POSITION_SIDE_SHORT: _ClassVar[PositionSide]

class OrderType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_TYPE_UNSPECIFIED: _ClassVar[OrderType]
    ORDER_TYPE_LIMIT: _ClassVar[OrderType]
    ORDER_TYPE_MARKET: _ClassVar[OrderType]
    ORDER_TYPE_STOP: _ClassVar[OrderType]
    ORDER_TYPE_STOP_MARKET: _ClassVar[OrderType]
    ORDER_TYPE_TAKE_PROFIT: _ClassVar[OrderType]
    ORDER_TYPE_TAKE_PROFIT_MARKET: _ClassVar[OrderType]
    ORDER_TYPE_TRAILING_STOP_MARKET: _ClassVar[OrderType]

class TimeInForce(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIME_IN_FORCE_UNSPECIFIED: _ClassVar[TimeInForce]
    TIME_IN_FORCE_GTC: _ClassVar[TimeInForce]
    TIME_IN_FORCE_IOC: _ClassVar[TimeInForce]
    TIME_IN_FORCE_FOK: _ClassVar[TimeInForce]
    TIME_IN_FORCE_GTX: _ClassVar[TimeInForce]
    TIME_IN_FORCE_GTD: _ClassVar[TimeInForce]

class WorkingType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKING_TYPE_UNSPECIFIED: _ClassVar[WorkingType]
    WORKING_TYPE_CONTRACT_PRICE: _ClassVar[WorkingType]
    WORKING_TYPE_MARK_PRICE: _ClassVar[WorkingType]

class MarginType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARGIN_TYPE_UNSPECIFIED: _ClassVar[MarginType]
    MARGIN_TYPE_ISOLATED: _ClassVar[MarginType]
    MARGIN_TYPE_CROSSED: _ClassVar[MarginType]

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_NEW: _ClassVar[OrderStatus]
    ORDER_STATUS_PARTIALLY_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELED: _ClassVar[OrderStatus]
    ORDER_STATUS_REJECTED: _ClassVar[OrderStatus]
    ORDER_STATUS_EXPIRED: _ClassVar[OrderStatus]
    ORDER_STATUS_UNKNOWN: _ClassVar[OrderStatus]

class Timeframe(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIMEFRAME_UNSPECIFIED: _ClassVar[Timeframe]
    TIMEFRAME_1M: _ClassVar[Timeframe]
    TIMEFRAME_3M: _ClassVar[Timeframe]
    TIMEFRAME_5M: _ClassVar[Timeframe]
    TIMEFRAME_15M: _ClassVar[Timeframe]
    TIMEFRAME_30M: _ClassVar[Timeframe]
    TIMEFRAME_1H: _ClassVar[Timeframe]
    TIMEFRAME_2H: _ClassVar[Timeframe]
    TIMEFRAME_4H: _ClassVar[Timeframe]
    TIMEFRAME_6H: _ClassVar[Timeframe]
    TIMEFRAME_8H: _ClassVar[Timeframe]
    TIMEFRAME_12H: _ClassVar[Timeframe]
    TIMEFRAME_1D: _ClassVar[Timeframe]
    TIMEFRAME_3D: _ClassVar[Timeframe]
    TIMEFRAME_1W: _ClassVar[Timeframe]
    TIMEFRAME_1MO: _ClassVar[Timeframe]

class CloseReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLOSE_REASON_UNSPECIFIED: _ClassVar[CloseReason]
    CLOSE_REASON_TP_HIT: _ClassVar[CloseReason]
    CLOSE_REASON_SL_HIT: _ClassVar[CloseReason]
    CLOSE_REASON_LIQUIDATED: _ClassVar[CloseReason]
    CLOSE_REASON_ROTATED: _ClassVar[CloseReason]
    CLOSE_REASON_MANUAL: _ClassVar[CloseReason]

class AccountKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_KIND_UNSPECIFIED: _ClassVar[AccountKind]
    ACCOUNT_KIND_LEARNING: _ClassVar[AccountKind]
    ACCOUNT_KIND_PAPER: _ClassVar[AccountKind]
    ACCOUNT_KIND_LIVE: _ClassVar[AccountKind]

class PositionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POSITION_STATUS_UNSPECIFIED: _ClassVar[PositionStatus]
    POSITION_STATUS_OPEN: _ClassVar[PositionStatus]
    POSITION_STATUS_CLOSED: _ClassVar[PositionStatus]
SIDE_UNSPECIFIED: Side
SIDE_BUY: Side
SIDE_SELL: Side
POSITION_SIDE_UNSPECIFIED: PositionSide
POSITION_SIDE_LONG: PositionSide
POSITION_SIDE_SHORT: PositionSide
ORDER_TYPE_UNSPECIFIED: OrderType
ORDER_TYPE_LIMIT: OrderType
ORDER_TYPE_MARKET: OrderType
ORDER_TYPE_STOP: OrderType
ORDER_TYPE_STOP_MARKET: OrderType
ORDER_TYPE_TAKE_PROFIT: OrderType
ORDER_TYPE_TAKE_PROFIT_MARKET: OrderType
ORDER_TYPE_TRAILING_STOP_MARKET: OrderType
TIME_IN_FORCE_UNSPECIFIED: TimeInForce
TIME_IN_FORCE_GTC: TimeInForce
TIME_IN_FORCE_IOC: TimeInForce
TIME_IN_FORCE_FOK: TimeInForce
TIME_IN_FORCE_GTX: TimeInForce
TIME_IN_FORCE_GTD: TimeInForce
WORKING_TYPE_UNSPECIFIED: WorkingType
WORKING_TYPE_CONTRACT_PRICE: WorkingType
WORKING_TYPE_MARK_PRICE: WorkingType
MARGIN_TYPE_UNSPECIFIED: MarginType
MARGIN_TYPE_ISOLATED: MarginType
MARGIN_TYPE_CROSSED: MarginType
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_NEW: OrderStatus
ORDER_STATUS_PARTIALLY_FILLED: OrderStatus
ORDER_STATUS_FILLED: OrderStatus
ORDER_STATUS_CANCELED: OrderStatus
ORDER_STATUS_REJECTED: OrderStatus
ORDER_STATUS_EXPIRED: OrderStatus
ORDER_STATUS_UNKNOWN: OrderStatus
TIMEFRAME_UNSPECIFIED: Timeframe
TIMEFRAME_1M: Timeframe
TIMEFRAME_3M: Timeframe
TIMEFRAME_5M: Timeframe
TIMEFRAME_15M: Timeframe
TIMEFRAME_30M: Timeframe
TIMEFRAME_1H: Timeframe
TIMEFRAME_2H: Timeframe
TIMEFRAME_4H: Timeframe
TIMEFRAME_6H: Timeframe
TIMEFRAME_8H: Timeframe
TIMEFRAME_12H: Timeframe
TIMEFRAME_1D: Timeframe
TIMEFRAME_3D: Timeframe
TIMEFRAME_1W: Timeframe
TIMEFRAME_1MO: Timeframe
CLOSE_REASON_UNSPECIFIED: CloseReason
CLOSE_REASON_TP_HIT: CloseReason
CLOSE_REASON_SL_HIT: CloseReason
CLOSE_REASON_LIQUIDATED: CloseReason
CLOSE_REASON_ROTATED: CloseReason
CLOSE_REASON_MANUAL: CloseReason
ACCOUNT_KIND_UNSPECIFIED: AccountKind
ACCOUNT_KIND_LEARNING: AccountKind
ACCOUNT_KIND_PAPER: AccountKind
ACCOUNT_KIND_LIVE: AccountKind
POSITION_STATUS_UNSPECIFIED: PositionStatus
POSITION_STATUS_OPEN: PositionStatus
POSITION_STATUS_CLOSED: PositionStatus

class Reason(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ReasonCount(_message.Message):
    __slots__ = ("reason", "symbol", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    symbol: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., symbol: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Candle(_message.Message):
    __slots__ = ("symbol", "timeframe", "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume", "trade_count", "taker_buy_volume", "closed")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TAKER_BUY_VOLUME_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    timeframe: Timeframe
    open_time: _timestamp_pb2.Timestamp
    close_time: _timestamp_pb2.Timestamp
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trade_count: int
    taker_buy_volume: str
    closed: bool
    def __init__(self, symbol: _Optional[str] = ..., timeframe: _Optional[_Union[Timeframe, str]] = ..., open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open: _Optional[str] = ..., high: _Optional[str] = ..., low: _Optional[str] = ..., close: _Optional[str] = ..., volume: _Optional[str] = ..., quote_volume: _Optional[str] = ..., trade_count: _Optional[int] = ..., taker_buy_volume: _Optional[str] = ..., closed: _Optional[bool] = ...) -> None: ...

class FeatureVector(_message.Message):
    __slots__ = ("schema_version", "names", "values")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    names: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, schema_version: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Signal(_message.Message):
    __slots__ = ("signal_id", "symbol", "timeframe", "side", "entry_price", "sl_pct", "tp_pct", "confidence", "predicted_return_pct", "model_version", "features", "created_time", "candle_open_time", "reasons")
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    SL_PCT_FIELD_NUMBER: _ClassVar[int]
    TP_PCT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_RETURN_PCT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    CANDLE_OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    signal_id: str
    symbol: str
    timeframe: Timeframe
    side: PositionSide
    entry_price: str
    sl_pct: float
    tp_pct: float
    confidence: float
    predicted_return_pct: float
    model_version: str
    features: FeatureVector
    created_time: _timestamp_pb2.Timestamp
    candle_open_time: _timestamp_pb2.Timestamp
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, signal_id: _Optional[str] = ..., symbol: _Optional[str] = ..., timeframe: _Optional[_Union[Timeframe, str]] = ..., side: _Optional[_Union[PositionSide, str]] = ..., entry_price: _Optional[str] = ..., sl_pct: _Optional[float] = ..., tp_pct: _Optional[float] = ..., confidence: _Optional[float] = ..., predicted_return_pct: _Optional[float] = ..., model_version: _Optional[str] = ..., features: _Optional[_Union[FeatureVector, _Mapping]] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., candle_open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "client_order_id", "account", "symbol", "side", "type", "time_in_force", "quantity", "price", "stop_loss_price", "take_profit_price", "working_type", "reduce_only", "leverage", "margin_type", "status", "filled_quantity", "average_fill_price", "created_time", "updated_time")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_PRICE_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    WORKING_TYPE_FIELD_NUMBER: _ClassVar[int]
    REDUCE_ONLY_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_FILL_PRICE_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: str
    price: str
    stop_loss_price: str
    take_profit_price: str
    working_type: WorkingType
    reduce_only: bool
    leverage: int
    margin_type: MarginType
    status: OrderStatus
    filled_quantity: str
    average_fill_price: str
    created_time: _timestamp_pb2.Timestamp
    updated_time: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., client_order_id: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., type: _Optional[_Union[OrderType, str]] = ..., time_in_force: _Optional[_Union[TimeInForce, str]] = ..., quantity: _Optional[str] = ..., price: _Optional[str] = ..., stop_loss_price: _Optional[str] = ..., take_profit_price: _Optional[str] = ..., working_type: _Optional[_Union[WorkingType, str]] = ..., reduce_only: _Optional[bool] = ..., leverage: _Optional[int] = ..., margin_type: _Optional[_Union[MarginType, str]] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., filled_quantity: _Optional[str] = ..., average_fill_price: _Optional[str] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("fill_id", "order_id", "position_id", "account", "symbol", "side", "price", "quantity", "fee", "fee_asset", "maker", "fill_time")
    FILL_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    FEE_ASSET_FIELD_NUMBER: _ClassVar[int]
    MAKER_FIELD_NUMBER: _ClassVar[int]
    FILL_TIME_FIELD_NUMBER: _ClassVar[int]
    fill_id: str
    order_id: str
    position_id: str
    account: str
    symbol: str
    side: Side
    price: str
    quantity: str
    fee: str
    fee_asset: str
    maker: bool
    fill_time: _timestamp_pb2.Timestamp
    def __init__(self, fill_id: _Optional[str] = ..., order_id: _Optional[str] = ..., position_id: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., fee: _Optional[str] = ..., fee_asset: _Optional[str] = ..., maker: _Optional[bool] = ..., fill_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("position_id", "account", "symbol", "side", "status", "quantity", "entry_price", "mark_price", "leverage", "margin_type", "notional", "initial_margin", "maintenance_margin", "liquidation_price", "unrealised_pnl", "stop_loss_price", "take_profit_price", "signal_id", "confidence", "model_version", "opened_time", "updated_time", "closed_time", "exit_price", "close_reason", "realised_pnl", "fees", "funding")
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_TYPE_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    INITIAL_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATION_PRICE_FIELD_NUMBER: _ClassVar[int]
    UNREALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_PRICE_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPENED_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSED_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    REALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    position_id: str
    account: str
    symbol: str
    side: PositionSide
    status: PositionStatus
    quantity: str
    entry_price: str
    mark_price: str
    leverage: int
    margin_type: MarginType
    notional: str
    initial_margin: str
    maintenance_margin: str
    liquidation_price: str
    unrealised_pnl: str
    stop_loss_price: str
    take_profit_price: str
    signal_id: str
    confidence: float
    model_version: str
    opened_time: _timestamp_pb2.Timestamp
    updated_time: _timestamp_pb2.Timestamp
    closed_time: _timestamp_pb2.Timestamp
    exit_price: str
    close_reason: CloseReason
    realised_pnl: str
    fees: str
    funding: str
    def __init__(self, position_id: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[PositionSide, str]] = ..., status: _Optional[_Union[PositionStatus, str]] = ..., quantity: _Optional[str] = ..., entry_price: _Optional[str] = ..., mark_price: _Optional[str] = ..., leverage: _Optional[int] = ..., margin_type: _Optional[_Union[MarginType, str]] = ..., notional: _Optional[str] = ..., initial_margin: _Optional[str] = ..., maintenance_margin: _Optional[str] = ..., liquidation_price: _Optional[str] = ..., unrealised_pnl: _Optional[str] = ..., stop_loss_price: _Optional[str] = ..., take_profit_price: _Optional[str] = ..., signal_id: _Optional[str] = ..., confidence: _Optional[float] = ..., model_version: _Optional[str] = ..., opened_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_price: _Optional[str] = ..., close_reason: _Optional[_Union[CloseReason, str]] = ..., realised_pnl: _Optional[str] = ..., fees: _Optional[str] = ..., funding: _Optional[str] = ...) -> None: ...

class Trade(_message.Message):
    __slots__ = ("trade_id", "position_id", "account", "account_kind", "symbol", "side", "quantity", "entry_price", "exit_price", "leverage", "opened_time", "closed_time", "close_reason", "gross_pnl", "fees", "funding", "net_pnl", "return_pct", "reward", "signal_id", "model_version", "confidence", "predicted_return_pct", "features")
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_KIND_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    EXIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    OPENED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSED_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    GROSS_PNL_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    NET_PNL_FIELD_NUMBER: _ClassVar[int]
    RETURN_PCT_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_RETURN_PCT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    trade_id: str
    position_id: str
    account: str
    account_kind: AccountKind
    symbol: str
    side: PositionSide
    quantity: str
    entry_price: str
    exit_price: str
    leverage: int
    opened_time: _timestamp_pb2.Timestamp
    closed_time: _timestamp_pb2.Timestamp
    close_reason: CloseReason
    gross_pnl: str
    fees: str
    funding: str
    net_pnl: str
    return_pct: float
    reward: float
    signal_id: str
    model_version: str
    confidence: float
    predicted_return_pct: float
    features: FeatureVector
    def __init__(self, trade_id: _Optional[str] = ..., position_id: _Optional[str] = ..., account: _Optional[str] = ..., account_kind: _Optional[_Union[AccountKind, str]] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[PositionSide, str]] = ..., quantity: _Optional[str] = ..., entry_price: _Optional[str] = ..., exit_price: _Optional[str] = ..., leverage: _Optional[int] = ..., opened_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_reason: _Optional[_Union[CloseReason, str]] = ..., gross_pnl: _Optional[str] = ..., fees: _Optional[str] = ..., funding: _Optional[str] = ..., net_pnl: _Optional[str] = ..., return_pct: _Optional[float] = ..., reward: _Optional[float] = ..., signal_id: _Optional[str] = ..., model_version: _Optional[str] = ..., confidence: _Optional[float] = ..., predicted_return_pct: _Optional[float] = ..., features: _Optional[_Union[FeatureVector, _Mapping]] = ...) -> None: ...
