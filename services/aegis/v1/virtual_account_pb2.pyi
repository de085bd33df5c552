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

class AccountEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_EVENT_TYPE_UNSPECIFIED: _ClassVar[AccountEventType]
    ACCOUNT_EVENT_TYPE_POSITION_OPENED: _ClassVar[AccountEventType]
    ACCOUNT_EVENT_TYPE_POSITION_CLOSED: _ClassVar[AccountEventType]
    ACCOUNT_EVENT_TYPE_POSITION_UPDATED: _ClassVar[AccountEventType]
    ACCOUNT_EVENT_TYPE_FILL: _ClassVar[AccountEventType]
    ACCOUNT_EVENT_TYPE_FUNDING: _ClassVar[AccountEventType]
    ACCOUNT_EVENT_TYPE_LIQUIDATION: _ClassVar[AccountEventType]
    ACCOUNT_EVENT_TYPE_BALANCE_CHANGED: _ClassVar[AccountEventType]

class ReconcileDifferenceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILE_DIFFERENCE_KIND_UNSPECIFIED: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_MISSING_IN_DATABASE: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_MISSING_ON_EXCHANGE: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_QUANTITY_MISMATCH: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_ENTRY_PRICE_MISMATCH: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_BALANCE_MISMATCH: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_ORDER_STATUS_UNKNOWN: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_MISSING_PROTECTIVE_ORDER: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_LEVERAGE_MISMATCH: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_ORDER_MISSING_IN_DATABASE: _ClassVar[ReconcileDifferenceKind]
    RECONCILE_DIFFERENCE_KIND_ORDER_MISSING_ON_EXCHANGE: _ClassVar[ReconcileDifferenceKind]

class ReconcileAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILE_ACTION_UNSPECIFIED: _ClassVar[ReconcileAction]
    RECONCILE_ACTION_NONE: _ClassVar[ReconcileAction]
    RECONCILE_ACTION_UPDATED_DATABASE: _ClassVar[ReconcileAction]
    RECONCILE_ACTION_CLOSED_IN_DATABASE: _ClassVar[ReconcileAction]
    RECONCILE_ACTION_PLACED_PROTECTIVE_ORDER: _ClassVar[ReconcileAction]
    RECONCILE_ACTION_CANCELED_ORDER: _ClassVar[ReconcileAction]
    RECONCILE_ACTION_NEEDS_REVIEW: _ClassVar[ReconcileAction]
ACCOUNT_EVENT_TYPE_UNSPECIFIED: AccountEventType
ACCOUNT_EVENT_TYPE_POSITION_OPENED: AccountEventType
ACCOUNT_EVENT_TYPE_POSITION_CLOSED: AccountEventType
ACCOUNT_EVENT_TYPE_POSITION_UPDATED: AccountEventType
ACCOUNT_EVENT_TYPE_FILL: AccountEventType
ACCOUNT_EVENT_TYPE_FUNDING: AccountEventType
ACCOUNT_EVENT_TYPE_LIQUIDATION: AccountEventType
ACCOUNT_EVENT_TYPE_BALANCE_CHANGED: AccountEventType
RECONCILE_DIFFERENCE_KIND_UNSPECIFIED: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_MISSING_IN_DATABASE: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_MISSING_ON_EXCHANGE: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_QUANTITY_MISMATCH: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_ENTRY_PRICE_MISMATCH: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_BALANCE_MISMATCH: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_ORDER_STATUS_UNKNOWN: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_MISSING_PROTECTIVE_ORDER: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_LEVERAGE_MISMATCH: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_ORDER_MISSING_IN_DATABASE: ReconcileDifferenceKind
RECONCILE_DIFFERENCE_KIND_ORDER_MISSING_ON_EXCHANGE: ReconcileDifferenceKind
RECONCILE_ACTION_UNSPECIFIED: ReconcileAction
RECONCILE_ACTION_NONE: ReconcileAction
RECONCILE_ACTION_UPDATED_DATABASE: ReconcileAction
RECONCILE_ACTION_CLOSED_IN_DATABASE: ReconcileAction
RECONCILE_ACTION_PLACED_PROTECTIVE_ORDER: ReconcileAction
RECONCILE_ACTION_CANCELED_ORDER: ReconcileAction
RECONCILE_ACTION_NEEDS_REVIEW: ReconcileAction

class OpenPositionRequest(_message.Message):
    __slots__ = ("idempotency_key", "account", "symbol", "side", "quantity", "entry_price", "stop_loss_price", "take_profit_price", "leverage", "margin_type", "signal_id", "confidence", "predicted_return_pct", "model_version", "features", "decision_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    STOP_LOSS_PRICE_FIELD_NUMBER: _ClassVar[int]
    TAKE_PROFIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_RETURN_PCT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    account: str
    symbol: str
    side: _common_pb2.PositionSide
    quantity: str
    entry_price: str
    stop_loss_price: str
    take_profit_price: str
    leverage: int
    margin_type: _common_pb2.MarginType
    signal_id: str
    confidence: float
    predicted_return_pct: float
    model_version: str
    features: _common_pb2.FeatureVector
    decision_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_common_pb2.PositionSide, str]] = ..., quantity: _Optional[str] = ..., entry_price: _Optional[str] = ..., stop_loss_price: _Optional[str] = ..., take_profit_price: _Optional[str] = ..., leverage: _Optional[int] = ..., margin_type: _Optional[_Union[_common_pb2.MarginType, str]] = ..., signal_id: _Optional[str] = ..., confidence: _Optional[float] = ..., predicted_return_pct: _Optional[float] = ..., model_version: _Optional[str] = ..., features: _Optional[_Union[_common_pb2.FeatureVector, _Mapping]] = ..., decision_id: _Optional[str] = ...) -> None: ...

class OpenPositionResponse(_message.Message):
    __slots__ = ("position", "replayed")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    position: _common_pb2.Position
    replayed: bool
    def __init__(self, position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ClosePositionRequest(_message.Message):
    __slots__ = ("idempotency_key", "account", "position_id", "reason", "price")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    account: str
    position_id: str
    reason: _common_pb2.CloseReason
    price: str
    def __init__(self, idempotency_key: _Optional[str] = ..., account: _Optional[str] = ..., position_id: _Optional[str] = ..., reason: _Optional[_Union[_common_pb2.CloseReason, str]] = ..., price: _Optional[str] = ...) -> None: ...

class ClosePositionResponse(_message.Message):
    __slots__ = ("position", "trade", "replayed")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    position: _common_pb2.Position
    trade: _common_pb2.Trade
    replayed: bool
    def __init__(self, position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ..., trade: _Optional[_Union[_common_pb2.Trade, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("name", "kind", "asset", "starting_balance", "wallet_balance", "unrealised_pnl", "equity", "margin_used", "maintenance_margin", "available_balance", "realised_pnl", "fees", "funding", "open_positions", "max_open_positions", "trade_count", "win_count", "created_time", "updated_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    STARTING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    WALLET_BALANCE_FIELD_NUMBER: _ClassVar[int]
    UNREALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    MARGIN_USED_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BALANCE_FIELD_NUMBER: _ClassVar[int]
    REALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    FEES_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    OPEN_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: _common_pb2.AccountKind
    asset: str
    starting_balance: str
    wallet_balance: str
    unrealised_pnl: str
    equity: str
    margin_used: str
    maintenance_margin: str
    available_balance: str
    realised_pnl: str
    fees: str
    funding: str
    open_positions: int
    max_open_positions: int
    trade_count: int
    win_count: int
    created_time: _timestamp_pb2.Timestamp
    updated_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.AccountKind, str]] = ..., asset: _Optional[str] = ..., starting_balance: _Optional[str] = ..., wallet_balance: _Optional[str] = ..., unrealised_pnl: _Optional[str] = ..., equity: _Optional[str] = ..., margin_used: _Optional[str] = ..., maintenance_margin: _Optional[str] = ..., available_balance: _Optional[str] = ..., realised_pnl: _Optional[str] = ..., fees: _Optional[str] = ..., funding: _Optional[str] = ..., open_positions: _Optional[int] = ..., max_open_positions: _Optional[int] = ..., trade_count: _Optional[int] = ..., win_count: _Optional[int] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPositionsRequest(_message.Message):
    __slots__ = ("account", "symbol", "status", "page_size", "page_token")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbol: str
    status: _common_pb2.PositionStatus
    page_size: int
    page_token: str
    def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.PositionStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPositionsResponse(_message.Message):
    __slots__ = ("positions", "next_page_token")
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    positions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Position]
    next_page_token: str
    def __init__(self, positions: _Optional[_Iterable[_Union[_common_pb2.Position, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTradesRequest(_message.Message):
    __slots__ = ("account", "symbol", "start_time", "end_time", "close_reason", "page_size", "page_token", "include_features")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    account: str
    symbol: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    close_reason: _common_pb2.CloseReason
    page_size: int
    page_token: str
    include_features: bool
    def __init__(self, account: _Optional[str] = ..., symbol: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_reason: _Optional[_Union[_common_pb2.CloseReason, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_features: _Optional[bool] = ...) -> None: ...

class ListTradesResponse(_message.Message):
    __slots__ = ("trades", "next_page_token")
    TRADES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trades: _containers.RepeatedCompositeFieldContainer[_common_pb2.Trade]
    next_page_token: str
    def __init__(self, trades: _Optional[_Iterable[_Union[_common_pb2.Trade, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("accounts", "types", "symbol")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedScalarFieldContainer[str]
    types: _containers.RepeatedScalarFieldContainer[AccountEventType]
    symbol: str
    def __init__(self, accounts: _Optional[_Iterable[str]] = ..., types: _Optional[_Iterable[_Union[AccountEventType, str]]] = ..., symbol: _Optional[str] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: AccountEvent
    def __init__(self, event: _Optional[_Union[AccountEvent, _Mapping]] = ...) -> None: ...

class AccountEvent(_message.Message):
    __slots__ = ("event_id", "sequence", "account", "type", "event_time", "position", "trade", "fill", "funding", "balance_change")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    sequence: int
    account: str
    type: AccountEventType
    event_time: _timestamp_pb2.Timestamp
    position: _common_pb2.Position
    trade: _common_pb2.Trade
    fill: _common_pb2.Fill
    funding: FundingPayment
    balance_change: BalanceChange
    def __init__(self, event_id: _Optional[str] = ..., sequence: _Optional[int] = ..., account: _Optional[str] = ..., type: _Optional[_Union[AccountEventType, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ..., trade: _Optional[_Union[_common_pb2.Trade, _Mapping]] = ..., fill: _Optional[_Union[_common_pb2.Fill, _Mapping]] = ..., funding: _Optional[_Union[FundingPayment, _Mapping]] = ..., balance_change: _Optional[_Union[BalanceChange, _Mapping]] = ...) -> None: ...

class FundingPayment(_message.Message):
    __slots__ = ("position_id", "symbol", "funding_rate", "mark_price", "amount", "funding_time")
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    FUNDING_RATE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FUNDING_TIME_FIELD_NUMBER: _ClassVar[int]
    position_id: str
    symbol: str
    funding_rate: str
    mark_price: str
    amount: str
    funding_time: _timestamp_pb2.Timestamp
    def __init__(self, position_id: _Optional[str] = ..., symbol: _Optional[str] = ..., funding_rate: _Optional[str] = ..., mark_price: _Optional[str] = ..., amount: _Optional[str] = ..., funding_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BalanceChange(_message.Message):
    __slots__ = ("delta", "wallet_balance", "cause")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    WALLET_BALANCE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    delta: str
    wallet_balance: str
    cause: str
    def __init__(self, delta: _Optional[str] = ..., wallet_balance: _Optional[str] = ..., cause: _Optional[str] = ...) -> None: ...

class ReconcileRequest(_message.Message):
    __slots__ = ("account", "dry_run")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    account: str
    dry_run: bool
    def __init__(self, account: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ReconcileResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: ReconcileReport
    def __init__(self, report: _Optional[_Union[ReconcileReport, _Mapping]] = ...) -> None: ...

class ReconcileReport(_message.Message):
    __slots__ = ("account", "dry_run", "start_time", "end_time", "in_sync", "differences")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    account: str
    dry_run: bool
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    in_sync: bool
    differences: _containers.RepeatedCompositeFieldContainer[ReconcileDifference]
    def __init__(self, account: _Optional[str] = ..., dry_run: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., in_sync: _Optional[bool] = ..., differences: _Optional[_Iterable[_Union[ReconcileDifference, _Mapping]]] = ...) -> None: ...

class ReconcileDifference(_message.Message):
    __slots__ = ("kind", "symbol", "position_id", "order_id", "field", "exchange_value", "database_value", "action", "detail")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATABASE_VALUE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: ReconcileDifferenceKind
    symbol: str
    position_id: str
    order_id: str
    field: str
    exchange_value: str
    database_value: str
    action: ReconcileAction
    detail: str
    def __init__(self, kind: _Optional[_Union[ReconcileDifferenceKind, str]] = ..., symbol: _Optional[str] = ..., position_id: _Optional[str] = ..., order_id: _Optional[str] = ..., field: _Optional[str] = ..., exchange_value: _Optional[str] = ..., database_value: _Optional[str] = ..., action: _Optional[_Union[ReconcileAction, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ApplyPriceUpdatesRequest(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[PriceUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[PriceUpdate, _Mapping]]] = ...) -> None: ...

class PriceUpdate(_message.Message):
    __slots__ = ("symbol", "last_price", "mark_price", "high_price", "low_price", "funding_rate", "next_funding_time", "event_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LAST_PRICE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    HIGH_PRICE_FIELD_NUMBER: _ClassVar[int]
    LOW_PRICE_FIELD_NUMBER: _ClassVar[int]
    FUNDING_RATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FUNDING_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    last_price: str
    mark_price: str
    high_price: str
    low_price: str
    funding_rate: str
    next_funding_time: _timestamp_pb2.Timestamp
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., last_price: _Optional[str] = ..., mark_price: _Optional[str] = ..., high_price: _Optional[str] = ..., low_price: _Optional[str] = ..., funding_rate: _Optional[str] = ..., next_funding_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApplyPriceUpdatesResponse(_message.Message):
    __slots__ = ("positions_updated", "closed_trades", "funding_payments", "stale_updates")
    POSITIONS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    CLOSED_TRADES_FIELD_NUMBER: _ClassVar[int]
    FUNDING_PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    STALE_UPDATES_FIELD_NUMBER: _ClassVar[int]
    positions_updated: int
    closed_trades: _containers.RepeatedCompositeFieldContainer[_common_pb2.Trade]
    funding_payments: int
    stale_updates: int
    def __init__(self, positions_updated: _Optional[int] = ..., closed_trades: _Optional[_Iterable[_Union[_common_pb2.Trade, _Mapping]]] = ..., funding_payments: _Optional[int] = ..., stale_updates: _Optional[int] = ...) -> None: ...
