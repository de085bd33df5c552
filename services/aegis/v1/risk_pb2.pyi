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

class RiskReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_REASON_CODE_UNSPECIFIED: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_PRICE_FILTER: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_LOT_SIZE: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_MARKET_LOT_SIZE: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_MIN_NOTIONAL: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_PERCENT_PRICE: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_MAX_NUM_ORDERS: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_SYMBOL_NOT_TRADING: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_LEVERAGE_CLAMPED: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_QUANTITY_REDUCED: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_QUANTITY_TOO_SMALL: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_INSUFFICIENT_MARGIN: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_POSITION_EXISTS: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_MAX_POSITIONS: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_ROTATION_REPLACE: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_MAX_OPEN_NOTIONAL: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_DAILY_LOSS_LIMIT: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_MAX_DRAWDOWN: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_COOLDOWN: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_HALTED: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_LOW_CONFIDENCE: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_LOW_EXPECTED_RETURN: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_STALE_SIGNAL: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_STALE_PRICE: _ClassVar[RiskReasonCode]
    RISK_REASON_CODE_INVALID_SIGNAL: _ClassVar[RiskReasonCode]

class SizingMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIZING_METHOD_UNSPECIFIED: _ClassVar[SizingMethod]
    SIZING_METHOD_FIXED_FRACTION: _ClassVar[SizingMethod]
    SIZING_METHOD_ATR: _ClassVar[SizingMethod]
    SIZING_METHOD_KELLY: _ClassVar[SizingMethod]
    SIZING_METHOD_FIXED_NOTIONAL: _ClassVar[SizingMethod]
    SIZING_METHOD_FIXED_RISK: _ClassVar[SizingMethod]

class RotationAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROTATION_ACTION_UNSPECIFIED: _ClassVar[RotationAction]
    ROTATION_ACTION_NONE: _ClassVar[RotationAction]
    ROTATION_ACTION_OPEN: _ClassVar[RotationAction]
    ROTATION_ACTION_REPLACE: _ClassVar[RotationAction]
    ROTATION_ACTION_REJECT: _ClassVar[RotationAction]
RISK_REASON_CODE_UNSPECIFIED: RiskReasonCode
RISK_REASON_CODE_PRICE_FILTER: RiskReasonCode
RISK_REASON_CODE_LOT_SIZE: RiskReasonCode
RISK_REASON_CODE_MARKET_LOT_SIZE: RiskReasonCode
RISK_REASON_CODE_MIN_NOTIONAL: RiskReasonCode
RISK_REASON_CODE_PERCENT_PRICE: RiskReasonCode
RISK_REASON_CODE_MAX_NUM_ORDERS: RiskReasonCode
RISK_REASON_CODE_SYMBOL_NOT_TRADING: RiskReasonCode
RISK_REASON_CODE_LEVERAGE_CLAMPED: RiskReasonCode
RISK_REASON_CODE_QUANTITY_REDUCED: RiskReasonCode
RISK_REASON_CODE_QUANTITY_TOO_SMALL: RiskReasonCode
RISK_REASON_CODE_INSUFFICIENT_MARGIN: RiskReasonCode
RISK_REASON_CODE_POSITION_EXISTS: RiskReasonCode
RISK_REASON_CODE_MAX_POSITIONS: RiskReasonCode
RISK_REASON_CODE_ROTATION_REPLACE: RiskReasonCode
RISK_REASON_CODE_MAX_OPEN_NOTIONAL: RiskReasonCode
RISK_REASON_CODE_DAILY_LOSS_LIMIT: RiskReasonCode
RISK_REASON_CODE_MAX_DRAWDOWN: RiskReasonCode
RISK_REASON_CODE_COOLDOWN: RiskReasonCode
RISK_REASON_CODE_HALTED: RiskReasonCode
RISK_REASON_CODE_LOW_CONFIDENCE: RiskReasonCode
RISK_REASON_CODE_LOW_EXPECTED_RETURN: RiskReasonCode
RISK_REASON_CODE_STALE_SIGNAL: RiskReasonCode
RISK_REASON_CODE_STALE_PRICE: RiskReasonCode
RISK_REASON_CODE_INVALID_SIGNAL: RiskReasonCode
SIZING_METHOD_UNSPECIFIED: SizingMethod
SIZING_METHOD_FIXED_FRACTION: SizingMethod
SIZING_METHOD_ATR: SizingMethod
SIZING_METHOD_KELLY: SizingMethod
SIZING_METHOD_FIXED_NOTIONAL: SizingMethod
SIZING_METHOD_FIXED_RISK: SizingMethod
ROTATION_ACTION_UNSPECIFIED: RotationAction
ROTATION_ACTION_NONE: RotationAction
ROTATION_ACTION_OPEN: RotationAction
ROTATION_ACTION_REPLACE: RotationAction
ROTATION_ACTION_REJECT: RotationAction

class EvaluateSignalRequest(_message.Message):
    __slots__ = ("signal", "account", "mode", "mark_price", "atr", "win_rate", "mark_price_time", "account_state")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    ATR_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_STATE_FIELD_NUMBER: _ClassVar[int]
    signal: _common_pb2.Signal
    account: str
    mode: _common_pb2.AccountKind
    mark_price: str
    atr: str
    win_rate: float
    mark_price_time: _timestamp_pb2.Timestamp
    account_state: AccountState
    def __init__(self, signal: _Optional[_Union[_common_pb2.Signal, _Mapping]] = ..., account: _Optional[str] = ..., mode: _Optional[_Union[_common_pb2.AccountKind, str]] = ..., mark_price: _Optional[str] = ..., atr: _Optional[str] = ..., win_rate: _Optional[float] = ..., mark_price_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_state: _Optional[_Union[AccountState, _Mapping]] = ...) -> None: ...

class EvaluateSignalResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: RiskDecision
    def __init__(self, decision: _Optional[_Union[RiskDecision, _Mapping]] = ...) -> None: ...

class SizeOrderRequest(_message.Message):
    __slots__ = ("account", "mode", "symbol", "side", "entry_price", "sl_pct", "tp_pct", "mark_price", "atr", "win_rate", "method", "mark_price_time", "account_state")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    SL_PCT_FIELD_NUMBER: _ClassVar[int]
    TP_PCT_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    ATR_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_STATE_FIELD_NUMBER: _ClassVar[int]
    account: str
    mode: _common_pb2.AccountKind
    symbol: str
    side: _common_pb2.PositionSide
    entry_price: str
    sl_pct: float
    tp_pct: float
    mark_price: str
    atr: str
    win_rate: float
    method: SizingMethod
    mark_price_time: _timestamp_pb2.Timestamp
    account_state: AccountState
    def __init__(self, account: _Optional[str] = ..., mode: _Optional[_Union[_common_pb2.AccountKind, str]] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_common_pb2.PositionSide, str]] = ..., entry_price: _Optional[str] = ..., sl_pct: _Optional[float] = ..., tp_pct: _Optional[float] = ..., mark_price: _Optional[str] = ..., atr: _Optional[str] = ..., win_rate: _Optional[float] = ..., method: _Optional[_Union[SizingMethod, str]] = ..., mark_price_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_state: _Optional[_Union[AccountState, _Mapping]] = ...) -> None: ...

class AccountState(_message.Message):
    __slots__ = ("wallet_balance", "positions", "open_orders")
    class OpenOrdersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    WALLET_BALANCE_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    wallet_balance: str
    positions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Position]
    open_orders: _containers.ScalarMap[str, int]
    def __init__(self, wallet_balance: _Optional[str] = ..., positions: _Optional[_Iterable[_Union[_common_pb2.Position, _Mapping]]] = ..., open_orders: _Optional[_Mapping[str, int]] = ...) -> None: ...

class SizeOrderResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: RiskDecision
    def __init__(self, decision: _Optional[_Union[RiskDecision, _Mapping]] = ...) -> None: ...

class RiskDecision(_message.Message):
    __slots__ = ("decision_id", "approved", "order", "equity", "sizing", "leverage_guard", "rotation", "reason_codes", "filter_violations", "message", "decided_time", "reasons")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    SIZING_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_GUARD_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    FILTER_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_TIME_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    approved: bool
    order: _common_pb2.Order
    equity: EquityBreakdown
    sizing: SizingDetails
    leverage_guard: LeverageGuard
    rotation: Rotation
    reason_codes: _containers.RepeatedScalarFieldContainer[RiskReasonCode]
    filter_violations: _containers.RepeatedScalarFieldContainer[str]
    message: str
    decided_time: _timestamp_pb2.Timestamp
    reasons: _containers.RepeatedCompositeFieldContainer[_common_pb2.Reason]
    def __init__(self, decision_id: _Optional[str] = ..., approved: _Optional[bool] = ..., order: _Optional[_Union[_common_pb2.Order, _Mapping]] = ..., equity: _Optional[_Union[EquityBreakdown, _Mapping]] = ..., sizing: _Optional[_Union[SizingDetails, _Mapping]] = ..., leverage_guard: _Optional[_Union[LeverageGuard, _Mapping]] = ..., rotation: _Optional[_Union[Rotation, _Mapping]] = ..., reason_codes: _Optional[_Iterable[_Union[RiskReasonCode, str]]] = ..., filter_violations: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ..., decided_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reasons: _Optional[_Iterable[_Union[_common_pb2.Reason, _Mapping]]] = ...) -> None: ...

class EquityBreakdown(_message.Message):
    __slots__ = ("wallet_balance", "available_balance", "position_value", "unrealised_pnl", "total_equity", "margin_used")
    WALLET_BALANCE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BALANCE_FIELD_NUMBER: _ClassVar[int]
    POSITION_VALUE_FIELD_NUMBER: _ClassVar[int]
    UNREALISED_PNL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EQUITY_FIELD_NUMBER: _ClassVar[int]
    MARGIN_USED_FIELD_NUMBER: _ClassVar[int]
    wallet_balance: str
    available_balance: str
    position_value: str
    unrealised_pnl: str
    total_equity: str
    margin_used: str
    def __init__(self, wallet_balance: _Optional[str] = ..., available_balance: _Optional[str] = ..., position_value: _Optional[str] = ..., unrealised_pnl: _Optional[str] = ..., total_equity: _Optional[str] = ..., margin_used: _Optional[str] = ...) -> None: ...

class SizingDetails(_message.Message):
    __slots__ = ("method", "risk_pct", "risk_amount", "stop_distance", "entry_price", "raw_quantity", "quantity", "notional", "initial_margin", "estimated_fees", "kelly_fraction", "win_rate", "payoff_ratio", "atr")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RISK_PCT_FIELD_NUMBER: _ClassVar[int]
    RISK_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STOP_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PRICE_FIELD_NUMBER: _ClassVar[int]
    RAW_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    INITIAL_MARGIN_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FEES_FIELD_NUMBER: _ClassVar[int]
    KELLY_FRACTION_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    PAYOFF_RATIO_FIELD_NUMBER: _ClassVar[int]
    ATR_FIELD_NUMBER: _ClassVar[int]
    method: SizingMethod
    risk_pct: float
    risk_amount: str
    stop_distance: str
    entry_price: str
    raw_quantity: str
    quantity: str
    notional: str
    initial_margin: str
    estimated_fees: str
    kelly_fraction: float
    win_rate: float
    payoff_ratio: float
    atr: str
    def __init__(self, method: _Optional[_Union[SizingMethod, str]] = ..., risk_pct: _Optional[float] = ..., risk_amount: _Optional[str] = ..., stop_distance: _Optional[str] = ..., entry_price: _Optional[str] = ..., raw_quantity: _Optional[str] = ..., quantity: _Optional[str] = ..., notional: _Optional[str] = ..., initial_margin: _Optional[str] = ..., estimated_fees: _Optional[str] = ..., kelly_fraction: _Optional[float] = ..., win_rate: _Optional[float] = ..., payoff_ratio: _Optional[float] = ..., atr: _Optional[str] = ...) -> None: ...

class LeverageGuard(_message.Message):
    __slots__ = ("required_leverage", "bracket_max_leverage", "applied_leverage", "clamped", "original_quantity", "bracket")
    REQUIRED_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    BRACKET_MAX_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    CLAMPED_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BRACKET_FIELD_NUMBER: _ClassVar[int]
    required_leverage: str
    bracket_max_leverage: int
    applied_leverage: int
    clamped: bool
    original_quantity: str
    bracket: LeverageBracket
    def __init__(self, required_leverage: _Optional[str] = ..., bracket_max_leverage: _Optional[int] = ..., applied_leverage: _Optional[int] = ..., clamped: _Optional[bool] = ..., original_quantity: _Optional[str] = ..., bracket: _Optional[_Union[LeverageBracket, _Mapping]] = ...) -> None: ...

class Rotation(_message.Message):
    __slots__ = ("action", "close_position_id", "close_symbol", "incoming_score", "weakest_score", "reason")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CLOSE_POSITION_ID_FIELD_NUMBER: _ClassVar[int]
    CLOSE_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INCOMING_SCORE_FIELD_NUMBER: _ClassVar[int]
    WEAKEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action: RotationAction
    close_position_id: str
    close_symbol: str
    incoming_score: float
    weakest_score: float
    reason: str
    def __init__(self, action: _Optional[_Union[RotationAction, str]] = ..., close_position_id: _Optional[str] = ..., close_symbol: _Optional[str] = ..., incoming_score: _Optional[float] = ..., weakest_score: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class LeverageBracket(_message.Message):
    __slots__ = ("bracket", "initial_leverage", "notional_floor", "notional_cap", "maint_margin_ratio", "cum")
    BRACKET_FIELD_NUMBER: _ClassVar[int]
    INITIAL_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FLOOR_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_CAP_FIELD_NUMBER: _ClassVar[int]
    MAINT_MARGIN_RATIO_FIELD_NUMBER: _ClassVar[int]
    CUM_FIELD_NUMBER: _ClassVar[int]
    bracket: int
    initial_leverage: int
    notional_floor: str
    notional_cap: str
    maint_margin_ratio: str
    cum: str
    def __init__(self, bracket: _Optional[int] = ..., initial_leverage: _Optional[int] = ..., notional_floor: _Optional[str] = ..., notional_cap: _Optional[str] = ..., maint_margin_ratio: _Optional[str] = ..., cum: _Optional[str] = ...) -> None: ...

class SymbolRules(_message.Message):
    __slots__ = ("symbol", "status", "base_asset", "quote_asset", "margin_asset", "tick_size", "min_price", "max_price", "step_size", "min_qty", "max_qty", "market_step_size", "market_min_qty", "market_max_qty", "min_notional", "multiplier_up", "multiplier_down", "max_num_orders", "max_num_algo_orders", "order_types", "time_in_force", "brackets", "funding_interval", "onboard_time", "updated_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BASE_ASSET_FIELD_NUMBER: _ClassVar[int]
    QUOTE_ASSET_FIELD_NUMBER: _ClassVar[int]
    MARGIN_ASSET_FIELD_NUMBER: _ClassVar[int]
    TICK_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_QTY_FIELD_NUMBER: _ClassVar[int]
    MAX_QTY_FIELD_NUMBER: _ClassVar[int]
    MARKET_STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MARKET_MIN_QTY_FIELD_NUMBER: _ClassVar[int]
    MARKET_MAX_QTY_FIELD_NUMBER: _ClassVar[int]
    MIN_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_UP_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_DOWN_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_ORDERS_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_ALGO_ORDERS_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPES_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    BRACKETS_FIELD_NUMBER: _ClassVar[int]
    FUNDING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ONBOARD_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    tick_size: str
    min_price: str
    max_price: str
    step_size: str
    min_qty: str
    max_qty: str
    market_step_size: str
    market_min_qty: str
    market_max_qty: str
    min_notional: str
    multiplier_up: str
    multiplier_down: str
    max_num_orders: int
    max_num_algo_orders: int
    order_types: _containers.RepeatedScalarFieldContainer[_common_pb2.OrderType]
    time_in_force: _containers.RepeatedScalarFieldContainer[_common_pb2.TimeInForce]
    brackets: _containers.RepeatedCompositeFieldContainer[LeverageBracket]
    funding_interval: _duration_pb2.Duration
    onboard_time: _timestamp_pb2.Timestamp
    updated_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., status: _Optional[str] = ..., base_asset: _Optional[str] = ..., quote_asset: _Optional[str] = ..., margin_asset: _Optional[str] = ..., tick_size: _Optional[str] = ..., min_price: _Optional[str] = ..., max_price: _Optional[str] = ..., step_size: _Optional[str] = ..., min_qty: _Optional[str] = ..., max_qty: _Optional[str] = ..., market_step_size: _Optional[str] = ..., market_min_qty: _Optional[str] = ..., market_max_qty: _Optional[str] = ..., min_notional: _Optional[str] = ..., multiplier_up: _Optional[str] = ..., multiplier_down: _Optional[str] = ..., max_num_orders: _Optional[int] = ..., max_num_algo_orders: _Optional[int] = ..., order_types: _Optional[_Iterable[_Union[_common_pb2.OrderType, str]]] = ..., time_in_force: _Optional[_Iterable[_Union[_common_pb2.TimeInForce, str]]] = ..., brackets: _Optional[_Iterable[_Union[LeverageBracket, _Mapping]]] = ..., funding_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., onboard_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSymbolRulesRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class GetSymbolRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: SymbolRules
    def __init__(self, rules: _Optional[_Union[SymbolRules, _Mapping]] = ...) -> None: ...

class ListSymbolRulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class ListSymbolRulesResponse(_message.Message):
    __slots__ = ("rules", "next_page_token")
    RULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[SymbolRules]
    next_page_token: str
    def __init__(self, rules: _Optional[_Iterable[_Union[SymbolRules, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRiskConfigRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class GetRiskConfigResponse(_message.Message):
    __slots__ = ("configs",)
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[RiskConfig]
    def __init__(self, configs: _Optional[_Iterable[_Union[RiskConfig, _Mapping]]] = ...) -> None: ...

class RiskConfig(_message.Message):
    __slots__ = ("account", "kind", "sizing_method", "risk_per_trade_pct", "max_leverage", "margin_type", "max_open_positions", "max_open_notional", "daily_loss_limit_pct", "max_drawdown_pct", "cooldown_after_loss", "min_confidence", "max_signal_age", "rotation_enabled", "rotation_min_edge", "kelly_cap", "fixed_fraction", "fixed_notional", "max_open_notional_multiple", "rotation_max_profit_pct", "kelly_multiplier", "atr_stop_multiple", "fee_rate", "max_mark_price_age")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZING_METHOD_FIELD_NUMBER: _ClassVar[int]
    RISK_PER_TRADE_PCT_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    DAILY_LOSS_LIMIT_PCT_FIELD_NUMBER: _ClassVar[int]
    MAX_DRAWDOWN_PCT_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_AFTER_LOSS_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIGNAL_AGE_FIELD_NUMBER: _ClassVar[int]
    ROTATION_ENABLED_FIELD_NUMBER: _ClassVar[int]
    ROTATION_MIN_EDGE_FIELD_NUMBER: _ClassVar[int]
    KELLY_CAP_FIELD_NUMBER: _ClassVar[int]
    FIXED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    FIXED_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_NOTIONAL_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    ROTATION_MAX_PROFIT_PCT_FIELD_NUMBER: _ClassVar[int]
    KELLY_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    ATR_STOP_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    FEE_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_MARK_PRICE_AGE_FIELD_NUMBER: _ClassVar[int]
    account: str
    kind: _common_pb2.AccountKind
    sizing_method: SizingMethod
    risk_per_trade_pct: float
    max_leverage: int
    margin_type: _common_pb2.MarginType
    max_open_positions: int
    max_open_notional: str
    daily_loss_limit_pct: float
    max_drawdown_pct: float
    cooldown_after_loss: _duration_pb2.Duration
    min_confidence: float
    max_signal_age: _duration_pb2.Duration
    rotation_enabled: bool
    rotation_min_edge: float
    kelly_cap: float
    fixed_fraction: float
    fixed_notional: str
    max_open_notional_multiple: float
    rotation_max_profit_pct: float
    kelly_multiplier: float
    atr_stop_multiple: float
    fee_rate: float
    max_mark_price_age: _duration_pb2.Duration
    def __init__(self, account: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.AccountKind, str]] = ..., sizing_method: _Optional[_Union[SizingMethod, str]] = ..., risk_per_trade_pct: _Optional[float] = ..., max_leverage: _Optional[int] = ..., margin_type: _Optional[_Union[_common_pb2.MarginType, str]] = ..., max_open_positions: _Optional[int] = ..., max_open_notional: _Optional[str] = ..., daily_loss_limit_pct: _Optional[float] = ..., max_drawdown_pct: _Optional[float] = ..., cooldown_after_loss: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_confidence: _Optional[float] = ..., max_signal_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., rotation_enabled: _Optional[bool] = ..., rotation_min_edge: _Optional[float] = ..., kelly_cap: _Optional[float] = ..., fixed_fraction: _Optional[float] = ..., fixed_notional: _Optional[str] = ..., max_open_notional_multiple: _Optional[float] = ..., rotation_max_profit_pct: _Optional[float] = ..., kelly_multiplier: _Optional[float] = ..., atr_stop_multiple: _Optional[float] = ..., fee_rate: _Optional[float] = ..., max_mark_price_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetProtectionsStatusRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class GetProtectionsStatusResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[ProtectionsStatus]
    def __init__(self, accounts: _Optional[_Iterable[_Union[ProtectionsStatus, _Mapping]]] = ...) -> None: ...

class ProtectionsStatus(_message.Message):
    __slots__ = ("account", "halted", "halt_reason", "halted_until_time", "daily_pnl", "daily_loss_pct", "daily_loss_limit_pct", "peak_equity", "equity", "drawdown_pct", "max_drawdown_pct", "open_notional", "max_open_notional", "open_positions", "max_open_positions", "cooldowns", "reason_codes")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    HALTED_FIELD_NUMBER: _ClassVar[int]
    HALT_REASON_FIELD_NUMBER: _ClassVar[int]
    HALTED_UNTIL_TIME_FIELD_NUMBER: _ClassVar[int]
    DAILY_PNL_FIELD_NUMBER: _ClassVar[int]
    DAILY_LOSS_PCT_FIELD_NUMBER: _ClassVar[int]
    DAILY_LOSS_LIMIT_PCT_FIELD_NUMBER: _ClassVar[int]
    PEAK_EQUITY_FIELD_NUMBER: _ClassVar[int]
    EQUITY_FIELD_NUMBER: _ClassVar[int]
    DRAWDOWN_PCT_FIELD_NUMBER: _ClassVar[int]
    MAX_DRAWDOWN_PCT_FIELD_NUMBER: _ClassVar[int]
    OPEN_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    OPEN_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    COOLDOWNS_FIELD_NUMBER: _ClassVar[int]
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    account: str
    halted: bool
    halt_reason: str
    halted_until_time: _timestamp_pb2.Timestamp
    daily_pnl: str
    daily_loss_pct: float
    daily_loss_limit_pct: float
    peak_equity: str
    equity: str
    drawdown_pct: float
    max_drawdown_pct: float
    open_notional: str
    max_open_notional: str
    open_positions: int
    max_open_positions: int
    cooldowns: _containers.RepeatedCompositeFieldContainer[Cooldown]
    reason_codes: _containers.RepeatedScalarFieldContainer[RiskReasonCode]
    def __init__(self, account: _Optional[str] = ..., halted: _Optional[bool] = ..., halt_reason: _Optional[str] = ..., halted_until_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., daily_pnl: _Optional[str] = ..., daily_loss_pct: _Optional[float] = ..., daily_loss_limit_pct: _Optional[float] = ..., peak_equity: _Optional[str] = ..., equity: _Optional[str] = ..., drawdown_pct: _Optional[float] = ..., max_drawdown_pct: _Optional[float] = ..., open_notional: _Optional[str] = ..., max_open_notional: _Optional[str] = ..., open_positions: _Optional[int] = ..., max_open_positions: _Optional[int] = ..., cooldowns: _Optional[_Iterable[_Union[Cooldown, _Mapping]]] = ..., reason_codes: _Optional[_Iterable[_Union[RiskReasonCode, str]]] = ...) -> None: ...

class Cooldown(_message.Message):
    __slots__ = ("symbol", "reason", "until_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNTIL_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    reason: str
    until_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., reason: _Optional[str] = ..., until_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
