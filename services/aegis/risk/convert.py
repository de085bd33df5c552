"""Translation between ``aegis.v1`` risk messages and the risk engine's frozen dataclasses.

Inbound, every problem raises :class:`ValidationError` naming the request field (``signal.sl_pct``,
``account_state.positions[2].mark_price`` …), which the servicer turns into INVALID_ARGUMENT. Outbound, decimals
are written in plain notation (never ``1E+2``), trailing zeros dropped: ``"49500.1"``, ``"100"``.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from aegis.errors import ValidationError
from aegis.exchange.rules import LeverageBracket, SymbolRules
from aegis.risk.engine import MarketContext, RiskConfig, RiskDecision, TradeSignal
from aegis.risk.protections import ProtectionsStatus
from aegis.risk.sizing import AccountKind, OpenPosition, PositionSide, SizingMethod, money, ratio
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import risk_pb2 as risk_pb
from aegis.wire import dec_text, timestamp
from aegis.wire import when as _when

_KINDS = {
    common_pb.ACCOUNT_KIND_LEARNING: AccountKind.LEARNING,
    common_pb.ACCOUNT_KIND_PAPER: AccountKind.PAPER,
    common_pb.ACCOUNT_KIND_LIVE: AccountKind.LIVE,
}
_SIDES = {common_pb.POSITION_SIDE_LONG: PositionSide.LONG, common_pb.POSITION_SIDE_SHORT: PositionSide.SHORT}


# --------------------------------------------------------------------------------------------- small values


def timestamp_ms(ms: int | None) -> timestamp_pb2.Timestamp | None:
    if ms is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def duration(span: dt.timedelta | None) -> duration_pb2.Duration | None:
    if span is None:
        return None
    out = duration_pb2.Duration()
    out.FromTimedelta(span)
    return out


def _decimal_text(field: str, text: str, *, positive: bool = False, optional: bool = False) -> Decimal | None:
    if text == "":
        if optional:
            return None
        raise ValidationError(field, "is required (a decimal string)")
    return money(field, text, positive=positive)


def _double(field: str, value: float, *, lo: float | None = None, hi: float | None = None) -> Decimal:
    if not math.isfinite(value):
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    return ratio(field, value, lo=None if lo is None else Decimal(str(lo)), hi=None if hi is None else Decimal(str(hi)))


def account_name(field: str, value: str) -> str:
    name = value.strip()
    if not name:
        raise ValidationError(field, "must name an account, e.g. 'paper'")
    return name


def kind_from_pb(value: int, field: str = "mode") -> AccountKind | None:
    """Return the account kind of an ``AccountKind`` value; None for UNSPECIFIED."""
    if value == common_pb.ACCOUNT_KIND_UNSPECIFIED:
        return None
    if value not in _KINDS:
        raise ValidationError(field, f"is not an AccountKind value: {value}")
    return _KINDS[value]


def method_from_pb(value: int) -> SizingMethod | None:
    """Return the sizing method of a ``SizingMethod`` value; None for UNSPECIFIED (the configured one)."""
    if value == risk_pb.SIZING_METHOD_UNSPECIFIED:
        return None
    try:
        name = risk_pb.SizingMethod.Name(value)
    except ValueError:
        raise ValidationError("method", f"is not a SizingMethod value: {value}") from None
    return SizingMethod(name.removeprefix("SIZING_METHOD_"))


def side_from_pb(value: int, field: str) -> PositionSide:
    if value not in _SIDES:
        raise ValidationError(field, "must be POSITION_SIDE_LONG or POSITION_SIDE_SHORT")
    return _SIDES[value]


def symbol_from_pb(value: str, field: str = "symbol") -> str:
    symbol = value.strip().upper()
    if not symbol:
        raise ValidationError(field, "must name a symbol, e.g. 'BTCUSDT'")
    return symbol


# --------------------------------------------------------------------------------------------- requests


def signal_from_pb(request: risk_pb.EvaluateSignalRequest) -> TradeSignal:
    """Return the engine's signal of an EvaluateSignalRequest."""
    if not request.HasField("signal"):
        raise ValidationError("signal", "is required")
    s = request.signal
    return TradeSignal(
        symbol=symbol_from_pb(s.symbol, "signal.symbol"),
        side=side_from_pb(s.side, "signal.side"),
        sl_pct=_double("signal.sl_pct", s.sl_pct),
        tp_pct=_double("signal.tp_pct", s.tp_pct),
        entry_price=_decimal_text("signal.entry_price", s.entry_price, positive=True, optional=True),
        confidence=_double("signal.confidence", s.confidence),
        # 0 is proto3's "not set" for a double: a model that predicts exactly 0 % predicts nothing tradable either.
        predicted_return_pct=_double("signal.predicted_return_pct", s.predicted_return_pct)
        if s.predicted_return_pct != 0
        else None,
        created_time=_when(s, "created_time"),
        signal_id=s.signal_id,
        model_version=s.model_version,
    )


def size_order_signal(request: risk_pb.SizeOrderRequest) -> TradeSignal:
    """Return the engine's signal of a SizeOrderRequest (confidence 1, no predicted return)."""
    return TradeSignal(
        symbol=symbol_from_pb(request.symbol),
        side=side_from_pb(request.side, "side"),
        sl_pct=_double("sl_pct", request.sl_pct),
        tp_pct=_double("tp_pct", request.tp_pct),
        entry_price=_decimal_text("entry_price", request.entry_price, positive=True, optional=True)
        if request.HasField("entry_price")
        else None,
    )


def market_from_pb(request: Any, now: dt.datetime) -> MarketContext:
    """Return the market inputs of an EvaluateSignalRequest or SizeOrderRequest.

    A mark price given without ``mark_price_time`` is taken as current (the caller vouches for it).
    """
    mark = _decimal_text("mark_price", request.mark_price, positive=True) if request.HasField("mark_price") else None
    mark_time = _when(request, "mark_price_time")
    if mark is not None and mark_time is None:
        mark_time = now
    atr = _decimal_text("atr", request.atr, positive=True) if request.HasField("atr") else None
    win_rate = _double("win_rate", request.win_rate, lo=0, hi=1) if request.HasField("win_rate") else None
    return MarketContext(mark_price=mark, mark_time=mark_time, atr=atr, win_rate=win_rate)


def position_from_pb(p: common_pb.Position, field: str) -> OpenPosition:
    """Return an open position of an ``aegis.v1.Position`` (from a request or from virtual-account)."""
    if not p.position_id:
        raise ValidationError(f"{field}.position_id", "must not be empty")
    if not p.HasField("opened_time"):
        raise ValidationError(f"{field}.opened_time", "is required")
    if not 1 <= p.leverage <= 125:
        raise ValidationError(f"{field}.leverage", f"must be from 1 to 125, got {p.leverage}")
    return OpenPosition(
        position_id=p.position_id,
        symbol=symbol_from_pb(p.symbol, f"{field}.symbol"),
        side=side_from_pb(p.side, f"{field}.side"),
        quantity=_decimal_text(f"{field}.quantity", p.quantity, positive=True),
        entry_price=_decimal_text(f"{field}.entry_price", p.entry_price, positive=True),
        mark_price=_decimal_text(f"{field}.mark_price", p.mark_price, positive=True),
        leverage=p.leverage,
        opened_time=p.opened_time.ToDatetime(tzinfo=dt.UTC),
        confidence=_double(f"{field}.confidence", p.confidence, lo=0, hi=1),
        initial_margin=_decimal_text(f"{field}.initial_margin", p.initial_margin, optional=True),
    )


def positions_from_pb(positions: Any, field: str) -> tuple[OpenPosition, ...]:
    out = tuple(position_from_pb(p, f"{field}[{i}]") for i, p in enumerate(positions))
    ids = [p.position_id for p in out]
    if len(set(ids)) != len(ids):
        raise ValidationError(field, "position ids must be unique")
    return out


# --------------------------------------------------------------------------------------------- responses


def _order_pb(decision: RiskDecision) -> common_pb.Order | None:
    o = decision.order
    if o is None:
        return None
    return common_pb.Order(
        client_order_id=o.client_order_id,
        account=o.account,
        symbol=o.symbol,
        side=common_pb.Side.Value(f"SIDE_{o.side.value}"),
        type=common_pb.OrderType.Value(f"ORDER_TYPE_{o.type.value}"),
        time_in_force=common_pb.TimeInForce.Value(f"TIME_IN_FORCE_{o.time_in_force}") if o.time_in_force else 0,
        quantity=dec_text(o.quantity),
        price=dec_text(o.price),
        stop_loss_price=dec_text(o.stop_loss_price),
        take_profit_price=dec_text(o.take_profit_price),
        working_type=common_pb.WorkingType.Value(f"WORKING_TYPE_{o.working_type.value}"),
        reduce_only=o.reduce_only,
        leverage=o.leverage,
        margin_type=common_pb.MarginType.Value(f"MARGIN_TYPE_{o.margin_type.value}"),
    )


def bracket_to_pb(b: LeverageBracket) -> risk_pb.LeverageBracket:
    return risk_pb.LeverageBracket(
        bracket=b.bracket,
        initial_leverage=b.initial_leverage,
        notional_floor=dec_text(b.notional_floor),
        notional_cap=dec_text(b.notional_cap),
        maint_margin_ratio=dec_text(b.maint_margin_ratio),
        cum=dec_text(b.cum),
    )


def decision_to_pb(decision: RiskDecision) -> risk_pb.RiskDecision:
    """Return the ``aegis.v1.RiskDecision`` of an engine decision."""
    e = decision.equity
    out = risk_pb.RiskDecision(
        decision_id=decision.decision_id,
        approved=decision.approved,
        order=_order_pb(decision),
        equity=risk_pb.EquityBreakdown(
            wallet_balance=dec_text(e.wallet_balance),
            available_balance=dec_text(e.available_balance),
            position_value=dec_text(e.position_value),
            unrealised_pnl=dec_text(e.unrealised_pnl),
            total_equity=dec_text(e.total_equity),
            margin_used=dec_text(e.margin_used),
        ),
        reason_codes=[risk_pb.RiskReasonCode.Value(r.code.proto_name) for r in decision.reasons],
        reasons=[common_pb.Reason(code=r.code.value, message=r.message) for r in decision.reasons],
        filter_violations=list(decision.filter_violations),
        message=decision.message,
        decided_time=timestamp(decision.decided_time),
    )
    s = decision.sizing
    if s is not None:
        out.sizing.CopyFrom(
            risk_pb.SizingDetails(
                method=risk_pb.SizingMethod.Value(f"SIZING_METHOD_{s.method.value}"),
                risk_pct=float(s.risk_pct),
                risk_amount=dec_text(s.risk_amount),
                stop_distance=dec_text(s.stop_distance),
                entry_price=dec_text(s.entry_price),
                raw_quantity=dec_text(s.raw_quantity),
                quantity=dec_text(s.quantity),
                notional=dec_text(s.notional),
                initial_margin=dec_text(s.initial_margin),
                estimated_fees=dec_text(s.estimated_fees),
                kelly_fraction=None if s.kelly_fraction is None else float(s.kelly_fraction),
                win_rate=None if s.win_rate is None else float(s.win_rate),
                payoff_ratio=None if s.payoff_ratio is None else float(s.payoff_ratio),
                atr=None if s.atr is None else dec_text(s.atr),
            )
        )
    g = decision.leverage_guard
    if g is not None:
        out.leverage_guard.CopyFrom(
            risk_pb.LeverageGuard(
                required_leverage=dec_text(g.required_leverage),
                bracket_max_leverage=g.bracket_max_leverage,
                applied_leverage=g.applied_leverage,
                clamped=g.clamped,
                original_quantity=dec_text(g.original_quantity),
                bracket=bracket_to_pb(g.bracket) if g.bracket is not None else None,
            )
        )
    r = decision.rotation
    if r is not None:
        out.rotation.CopyFrom(
            risk_pb.Rotation(
                action=risk_pb.RotationAction.Value(f"ROTATION_ACTION_{r.action.value}"),
                close_position_id=r.close_position_id,
                close_symbol=r.close_symbol,
                incoming_score=float(r.incoming_score),
                weakest_score=float(r.weakest_score) if r.weakest_score is not None else 0.0,
                reason=r.reason,
            )
        )
    return out


_ORDER_TYPES = frozenset(common_pb.OrderType.keys())
_TIME_IN_FORCE = frozenset(common_pb.TimeInForce.keys())


def rules_to_pb(rules: SymbolRules, updated: dt.datetime | None) -> risk_pb.SymbolRules:
    """Return the ``aegis.v1.SymbolRules`` of one symbol (order types and TIFs the API has no value for are left
    out)."""
    return risk_pb.SymbolRules(
        symbol=rules.symbol,
        status=rules.status,
        base_asset=rules.base_asset,
        quote_asset=rules.quote_asset,
        margin_asset=rules.margin_asset,
        tick_size=dec_text(rules.tick_size),
        min_price=dec_text(rules.min_price),
        max_price=dec_text(rules.max_price),
        step_size=dec_text(rules.step_size),
        min_qty=dec_text(rules.min_qty),
        max_qty=dec_text(rules.max_qty),
        market_step_size=dec_text(rules.market_step_size),
        market_min_qty=dec_text(rules.market_min_qty),
        market_max_qty=dec_text(rules.market_max_qty),
        min_notional=dec_text(rules.min_notional),
        multiplier_up=dec_text(rules.multiplier_up),
        multiplier_down=dec_text(rules.multiplier_down),
        max_num_orders=rules.max_num_orders,
        max_num_algo_orders=rules.max_num_algo_orders or 0,
        order_types=[
            common_pb.OrderType.Value(f"ORDER_TYPE_{t}") for t in rules.order_types if f"ORDER_TYPE_{t}" in _ORDER_TYPES
        ],
        time_in_force=[
            common_pb.TimeInForce.Value(f"TIME_IN_FORCE_{t}")
            for t in rules.time_in_force
            if f"TIME_IN_FORCE_{t}" in _TIME_IN_FORCE
        ],
        brackets=[bracket_to_pb(b) for b in rules.brackets],
        onboard_time=timestamp_ms(rules.onboard_time_ms),
        updated_time=timestamp(updated),
    )


def _pct(value: Decimal | None) -> float:
    return 0.0 if value is None else float(value)


def config_to_pb(cfg: RiskConfig) -> risk_pb.RiskConfig:
    """Return the ``aegis.v1.RiskConfig`` of an account's limits (a limit that is off reads 0)."""
    return risk_pb.RiskConfig(
        account=cfg.account,
        kind=common_pb.AccountKind.Value(f"ACCOUNT_KIND_{cfg.kind.value}"),
        sizing_method=risk_pb.SizingMethod.Value(f"SIZING_METHOD_{cfg.sizing_method.value}"),
        risk_per_trade_pct=float(cfg.risk_per_trade_pct),
        max_leverage=cfg.max_leverage,
        margin_type=common_pb.MarginType.Value(f"MARGIN_TYPE_{cfg.margin_type.value}"),
        max_open_positions=cfg.max_open_positions,
        max_open_notional="",  # the cap is a multiple of equity: see max_open_notional_multiple
        daily_loss_limit_pct=_pct(cfg.daily_loss_limit_pct),
        max_drawdown_pct=_pct(cfg.max_drawdown_pct),
        cooldown_after_loss=duration(cfg.cooldown_after_loss),
        min_confidence=float(cfg.min_confidence),
        max_signal_age=duration(cfg.max_signal_age),
        rotation_enabled=cfg.rotation_enabled,
        rotation_min_edge=float(cfg.rotation_min_edge),
        kelly_cap=float(cfg.kelly_cap),
        fixed_fraction=float(cfg.fixed_fraction),
        fixed_notional=dec_text(cfg.fixed_notional),
        max_open_notional_multiple=_pct(cfg.max_open_notional_multiple),
        rotation_max_profit_pct=float(cfg.rotation_max_profit_pct),
        kelly_multiplier=float(cfg.kelly_multiplier),
        atr_stop_multiple=float(cfg.atr_stop_multiple),
        fee_rate=float(cfg.fee_rate),
        max_mark_price_age=duration(cfg.max_mark_price_age),
    )


def protections_to_pb(status: ProtectionsStatus) -> risk_pb.ProtectionsStatus:
    """Return the ``aegis.v1.ProtectionsStatus`` of one account."""
    return risk_pb.ProtectionsStatus(
        account=status.account,
        halted=status.halted,
        halt_reason=status.halt_reason,
        halted_until_time=timestamp(status.halted_until_time),
        daily_pnl=dec_text(status.daily_pnl),
        daily_loss_pct=float(status.daily_loss_pct),
        daily_loss_limit_pct=_pct(status.daily_loss_limit_pct),
        peak_equity=dec_text(status.peak_equity),
        equity=dec_text(status.equity),
        drawdown_pct=float(status.drawdown_pct),
        max_drawdown_pct=_pct(status.max_drawdown_pct),
        open_notional=dec_text(status.open_notional),
        max_open_notional=dec_text(status.max_open_notional),
        open_positions=status.open_positions,
        max_open_positions=status.max_open_positions,
        cooldowns=[
            risk_pb.Cooldown(symbol=c.symbol, reason=c.reason, until_time=timestamp(c.until_time))
            for c in status.cooldowns
        ],
        reason_codes=[risk_pb.RiskReasonCode.Value(r.code.proto_name) for r in status.reasons],
    )
