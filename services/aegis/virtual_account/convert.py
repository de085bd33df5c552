"""Translation between ``aegis.v1`` virtual-account messages and the book's frozen values.

Inbound, every problem raises :class:`ValidationError` naming the request field (``quantity``,
``updates[2].mark_price`` …), which the servicer turns into INVALID_ARGUMENT. Outbound, decimals are written in
plain notation with trailing zeros dropped (``"60993.9"``, never ``"6E+4"``).
"""

from __future__ import annotations

import math
import re
import struct
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from aegis.errors import ValidationError
from aegis.exchange.rules import to_decimal
from aegis.risk.sizing import PositionSide
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.virtual_account.book import (
    AccountView,
    CloseRequest,
    Event,
    FundingPayment,
    LedgerEntry,
    OpenRequest,
    Position,
    Trade,
)
from aegis.virtual_account.domain import CloseReason, Tick
from aegis.wire import dec_text, timestamp
from aegis.wire import when as _when

_SYMBOL = re.compile(r"^[A-Z0-9]{2,32}$")
_SIDES = {common_pb.POSITION_SIDE_LONG: PositionSide.LONG, common_pb.POSITION_SIDE_SHORT: PositionSide.SHORT}
_SIDES_PB = {v: k for k, v in _SIDES.items()}
_REASONS = {
    common_pb.CLOSE_REASON_TP_HIT: CloseReason.TP_HIT,
    common_pb.CLOSE_REASON_SL_HIT: CloseReason.SL_HIT,
    common_pb.CLOSE_REASON_LIQUIDATED: CloseReason.LIQUIDATED,
    common_pb.CLOSE_REASON_ROTATED: CloseReason.ROTATED,
    common_pb.CLOSE_REASON_MANUAL: CloseReason.MANUAL,
}
_REASONS_PB = {v: k for k, v in _REASONS.items()}
_KINDS_PB = {"learning": common_pb.ACCOUNT_KIND_LEARNING, "paper": common_pb.ACCOUNT_KIND_PAPER,
             "live": common_pb.ACCOUNT_KIND_LIVE}  # fmt: skip
_EVENT_TYPES = {
    "POSITION_OPENED": va_pb.ACCOUNT_EVENT_TYPE_POSITION_OPENED,
    "POSITION_CLOSED": va_pb.ACCOUNT_EVENT_TYPE_POSITION_CLOSED,
    "POSITION_UPDATED": va_pb.ACCOUNT_EVENT_TYPE_POSITION_UPDATED,
    "FILL": va_pb.ACCOUNT_EVENT_TYPE_FILL,
    "FUNDING": va_pb.ACCOUNT_EVENT_TYPE_FUNDING,
    "LIQUIDATION": va_pb.ACCOUNT_EVENT_TYPE_LIQUIDATION,
    "BALANCE_CHANGED": va_pb.ACCOUNT_EVENT_TYPE_BALANCE_CHANGED,
}
_LEDGER_CAUSE = {"realised_pnl": "REALISED_PNL", "liquidation": "REALISED_PNL", "fee": "FEE", "funding": "FUNDING",
                 "deposit": "DEPOSIT", "adjustment": "RESET"}  # fmt: skip
MAX_KEY_LENGTH = 200


# --------------------------------------------------------------------------------------------- small values


def decimal_field(field: str, text: str, *, required: bool = True, positive: bool = False) -> Decimal | None:
    """Parse a decimal string field; "" is None when not required. NaN, infinities and junk name the field."""
    if text == "":
        if required:
            raise ValidationError(field, "is required (a decimal string)")
        return None
    value = to_decimal(field, text)
    if positive and value <= 0:
        raise ValidationError(field, f"must be greater than 0, got {text!r}")
    return value


def _optional_decimal(message: Any, name: str, *, positive: bool = True) -> Decimal | None:
    if not message.HasField(name):
        return None
    return decimal_field(name, getattr(message, name), positive=positive)


def _finite(field: str, value: float, lo: float | None = None, hi: float | None = None) -> float:
    if not math.isfinite(value):
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValidationError(field, f"must be from {lo:g} to {hi:g}, got {value!r}")
    return value


def symbol_field(field: str, value: str) -> str:
    symbol = value.strip().upper()
    if not _SYMBOL.match(symbol):
        raise ValidationError(field, f"is not a Binance USD-M symbol: {value!r}")
    return symbol


def text_field(field: str, value: str) -> str:
    """``value`` stripped; refused when it holds a NUL character, which PostgreSQL text cannot store."""
    if "\x00" in value:
        raise ValidationError(field, "must not contain a NUL character")
    return value.strip()


def key_field(value: str) -> str:
    key = text_field("idempotency_key", value)
    if not key:
        raise ValidationError("idempotency_key", "is required (a client-chosen unique string)")
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError("idempotency_key", f"is longer than {MAX_KEY_LENGTH} characters")
    return key


def account_field(value: str, field: str = "account") -> str:
    name = text_field(field, value)
    if not name:
        raise ValidationError(field, "must name an account, e.g. 'paper'")
    return name


# --------------------------------------------------------------------------------------------- requests


def open_request_from_pb(request: va_pb.OpenPositionRequest) -> OpenRequest:
    key = key_field(request.idempotency_key)
    account = account_field(request.account)
    symbol = symbol_field("symbol", request.symbol)
    if request.side not in _SIDES:
        raise ValidationError("side", "must be POSITION_SIDE_LONG or POSITION_SIDE_SHORT")
    quantity = decimal_field("quantity", request.quantity, positive=True)
    assert quantity is not None
    if not 1 <= request.leverage <= 125:
        raise ValidationError("leverage", f"must be from 1 to 125, got {request.leverage}")
    if request.margin_type == common_pb.MARGIN_TYPE_CROSSED:
        raise ValidationError("margin_type", "the virtual accounts simulate isolated margin only")
    if request.margin_type not in (common_pb.MARGIN_TYPE_UNSPECIFIED, common_pb.MARGIN_TYPE_ISOLATED):
        raise ValidationError("margin_type", f"is not a MarginType value: {request.margin_type}")
    signal_id = None
    if request.signal_id:
        try:
            signal_id = str(uuid.UUID(request.signal_id))
        except ValueError:
            raise ValidationError("signal_id", f"is not a UUID: {request.signal_id!r}") from None
    confidence = _finite("confidence", request.confidence, 0, 1) if request.HasField("confidence") else None
    predicted = (
        _finite("predicted_return_pct", request.predicted_return_pct)
        if request.HasField("predicted_return_pct")
        else None
    )
    schema_version = None
    features = None
    if request.HasField("features"):
        fv = request.features
        if fv.schema_version:
            try:
                schema_version = int(fv.schema_version)
            except ValueError:
                raise ValidationError(
                    "features.schema_version", f"must be an integer version, got {fv.schema_version!r}"
                ) from None
        if fv.names and len(fv.names) != len(fv.values):
            raise ValidationError("features.names", f"has {len(fv.names)} names for {len(fv.values)} values")
        features = tuple(fv.values)
    return OpenRequest(
        idempotency_key=key,
        account=account,
        symbol=symbol,
        side=_SIDES[request.side],
        quantity=quantity,
        leverage=request.leverage,
        entry_price=_optional_decimal(request, "entry_price"),
        stop_loss_price=_optional_decimal(request, "stop_loss_price"),
        take_profit_price=_optional_decimal(request, "take_profit_price"),
        signal_id=signal_id,
        confidence=confidence,
        predicted_return_pct=predicted,
        model_version=text_field("model_version", request.model_version),
        feature_schema_version=schema_version,
        features=features,
        decision_id=text_field("decision_id", request.decision_id),
    )


def close_request_from_pb(request: va_pb.ClosePositionRequest) -> CloseRequest:
    key = key_field(request.idempotency_key)
    account = account_field(request.account)
    try:
        position_id = str(uuid.UUID(request.position_id))
    except ValueError:
        raise ValidationError("position_id", f"is not a position id (UUID): {request.position_id!r}") from None
    if request.reason == common_pb.CLOSE_REASON_UNSPECIFIED:
        reason = CloseReason.MANUAL
    elif request.reason in (common_pb.CLOSE_REASON_MANUAL, common_pb.CLOSE_REASON_ROTATED):
        reason = _REASONS[request.reason]
    else:
        raise ValidationError("reason", "must be MANUAL or ROTATED (TP, SL and liquidation come from price updates)")
    return CloseRequest(key, account, position_id, reason, _optional_decimal(request, "price"))


def ticks_from_pb(request: va_pb.ApplyPriceUpdatesRequest) -> list[Tick]:
    ticks = []
    for i, u in enumerate(request.updates):
        where = f"updates[{i}]"
        symbol = symbol_field(f"{where}.symbol", u.symbol)
        last = decimal_field(f"{where}.last_price", u.last_price, positive=True)
        mark = decimal_field(f"{where}.mark_price", u.mark_price, positive=True)
        high = decimal_field(f"{where}.high_price", u.high_price, required=False, positive=True) or last
        low = decimal_field(f"{where}.low_price", u.low_price, required=False, positive=True) or last
        assert last is not None and mark is not None and high is not None and low is not None
        if not low <= last <= high:
            raise ValidationError(f"{where}.high_price", f"low {low} <= last {last} <= high {high} does not hold")
        when = _when(u, "event_time")
        if when is None:
            raise ValidationError(f"{where}.event_time", "is required")
        rate = decimal_field(f"{where}.funding_rate", u.funding_rate) if u.HasField("funding_rate") else None
        ticks.append(Tick(symbol, last, mark, high, low, when, rate, _when(u, "next_funding_time")))
    return ticks


def reason_from_pb(value: int, field: str = "close_reason") -> CloseReason | None:
    if value == common_pb.CLOSE_REASON_UNSPECIFIED:
        return None
    if value not in _REASONS:
        raise ValidationError(field, f"is not a CloseReason value: {value}")
    return _REASONS[value]


def status_from_pb(value: int) -> str | None:
    return {
        common_pb.POSITION_STATUS_UNSPECIFIED: None,
        common_pb.POSITION_STATUS_OPEN: "OPEN",
        common_pb.POSITION_STATUS_CLOSED: "CLOSED",
    }.get(value, "?")


# --------------------------------------------------------------------------------------------- replies


def position_to_pb(p: Position) -> common_pb.Position:
    out = common_pb.Position(
        position_id=str(p.position_id),
        account=p.account_id,
        symbol=p.symbol,
        side=_SIDES_PB[p.side],
        status=common_pb.POSITION_STATUS_OPEN if p.is_open else common_pb.POSITION_STATUS_CLOSED,
        quantity=dec_text(p.quantity),
        entry_price=dec_text(p.entry_price),
        mark_price=dec_text(p.mark_price),
        leverage=p.leverage,
        margin_type=common_pb.MARGIN_TYPE_ISOLATED,
        notional=dec_text(p.notional),
        initial_margin=dec_text(p.margin),
        maintenance_margin=dec_text(p.maintenance_margin),
        liquidation_price=dec_text(p.liquidation_price),
        unrealised_pnl=dec_text(p.unrealised_pnl),
        stop_loss_price=dec_text(p.sl_price),
        take_profit_price=dec_text(p.tp_price),
        signal_id=str(p.signal_id) if p.signal_id else "",
        confidence=p.confidence or 0.0,
        model_version=p.model_version or "",
        opened_time=timestamp(p.opened_at),
        updated_time=timestamp(p.updated_at or p.opened_at),
        exit_price=dec_text(p.exit_price),
        realised_pnl=dec_text(p.realised_pnl),
        fees=dec_text(p.entry_fee + (p.exit_fee or 0)),
        funding=dec_text(p.funding),
    )
    if p.closed_at is not None:
        out.closed_time.CopyFrom(timestamp(p.closed_at))
    if p.close_reason is not None:
        out.close_reason = _REASONS_PB[p.close_reason]
    return out


def trade_to_pb(t: Trade, names: Iterable[str] = ()) -> common_pb.Trade:
    out = common_pb.Trade(
        trade_id=str(t.trade_id),
        position_id=str(t.position_id),
        account=t.account_id,
        account_kind=_KINDS_PB.get(t.account_kind, common_pb.ACCOUNT_KIND_UNSPECIFIED),
        symbol=t.symbol,
        side=_SIDES_PB[t.side],
        quantity=dec_text(t.quantity),
        entry_price=dec_text(t.entry_price),
        exit_price=dec_text(t.exit_price),
        leverage=t.leverage,
        opened_time=timestamp(t.opened_at),
        closed_time=timestamp(t.closed_at),
        close_reason=_REASONS_PB[t.close_reason],
        gross_pnl=dec_text(t.gross_pnl),
        fees=dec_text(t.fees),
        funding=dec_text(t.funding),
        net_pnl=dec_text(t.realised_pnl),
        return_pct=float(t.return_pct),
        reward=float(t.reward_score),
        signal_id=str(t.signal_id) if t.signal_id else "",
        model_version=t.model_version or "",
        confidence=t.confidence or 0.0,
        predicted_return_pct=t.predicted_return_pct or 0.0,
    )
    if t.features is not None:
        out.features.CopyFrom(
            common_pb.FeatureVector(
                schema_version=str(t.feature_schema_version) if t.feature_schema_version is not None else "",
                names=list(names),
                values=list(t.features),
            )
        )
    return out


def account_to_pb(a: AccountView) -> va_pb.Account:
    return va_pb.Account(
        name=a.name,
        kind=_KINDS_PB.get(a.kind, common_pb.ACCOUNT_KIND_UNSPECIFIED),
        asset=a.asset,
        starting_balance=dec_text(a.starting_balance),
        wallet_balance=dec_text(a.wallet_balance),
        unrealised_pnl=dec_text(a.unrealised_pnl),
        equity=dec_text(a.equity),
        margin_used=dec_text(a.margin_used),
        maintenance_margin=dec_text(a.maintenance_margin),
        available_balance=dec_text(a.available_balance),
        realised_pnl=dec_text(a.realised_pnl),
        fees=dec_text(a.fees),
        funding=dec_text(a.funding),
        open_positions=a.open_positions,
        max_open_positions=a.max_open_positions,
        trade_count=a.trade_count,
        win_count=a.win_count,
        created_time=timestamp(a.created_at),
        updated_time=timestamp(a.updated_at),
    )


def event_to_pb(e: Event) -> va_pb.AccountEvent:
    out = va_pb.AccountEvent(
        event_id=str(uuid.uuid4()),
        sequence=e.sequence,
        account=e.account,
        type=_EVENT_TYPES[e.type],
        event_time=timestamp(e.time),
    )
    payload = e.payload
    if isinstance(payload, Position):
        out.position.CopyFrom(position_to_pb(payload))
    elif isinstance(payload, Trade):
        out.trade.CopyFrom(trade_to_pb(payload))
    elif isinstance(payload, FundingPayment):
        out.funding.CopyFrom(
            va_pb.FundingPayment(
                position_id=str(payload.position_id),
                symbol=payload.symbol,
                funding_rate=dec_text(payload.funding_rate),
                mark_price=dec_text(payload.mark_price),
                amount=dec_text(payload.amount),
                funding_time=timestamp(payload.funding_time),
            )
        )
    elif isinstance(payload, LedgerEntry):
        out.balance_change.CopyFrom(
            va_pb.BalanceChange(
                delta=dec_text(payload.amount),
                wallet_balance=dec_text(payload.balance_after),
                cause=_LEDGER_CAUSE.get(payload.kind, payload.kind.upper()),
            )
        )
    return out


def event_symbol(event: va_pb.AccountEvent) -> str:
    which = event.WhichOneof("payload")
    return getattr(event, which).symbol if which in ("position", "trade", "funding") else ""


def pack(messages: Iterable[bytes]) -> bytes:
    """Length-prefixed concatenation: one Redis message carries a committed batch's events."""
    return b"".join(struct.pack(">I", len(m)) + m for m in messages)


def unpack(blob: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(blob):
        (size,) = struct.unpack_from(">I", blob, offset)
        offset += 4
        out.append(blob[offset : offset + size])
        offset += size
    return out
