"""RiskService over gRPC: translate requests into :class:`aegis.risk.desk.RiskDesk` calls and back (habit 1).

Status codes come from the error tree in one place (``aegis.server.abort_with``): ValidationError →
INVALID_ARGUMENT naming the field, NotFoundError → NOT_FOUND (unknown account or symbol), DependencyUnavailable →
UNAVAILABLE (rules not loaded yet, PostgreSQL or virtual-account down), AccountUnavailable → FAILED_PRECONDITION
(the account's keeper cannot tell its equity). A refusal is not an error: it is an OK answer whose decision says
``approved = false`` with its reason codes and message.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import grpc

from aegis.core.clock import as_of
from aegis.errors import AegisError, ValidationError
from aegis.risk import convert
from aegis.risk.accounts import AccountSnapshot
from aegis.risk.desk import RiskDesk
from aegis.risk.sizing import money
from aegis.server import Registration, abort_with
from aegis.v1 import risk_pb2 as risk_pb
from aegis.v1 import risk_pb2_grpc as risk_grpc

SERVICE_NAME = "aegis.v1.RiskService"


def account_state_from_pb(request: risk_pb.EvaluateSignalRequest | risk_pb.SizeOrderRequest) -> AccountSnapshot | None:
    """Return the account state a request carries, or None to ask the account's keeper."""
    if not request.HasField("account_state"):
        return None
    given = request.account_state
    if given.wallet_balance == "":
        raise ValidationError("account_state.wallet_balance", "is required (a decimal string)")
    wallet: Decimal = money("account_state.wallet_balance", given.wallet_balance)
    positions = convert.positions_from_pb(given.positions, "account_state.positions")
    orders = {}
    for symbol, count in given.open_orders.items():
        if count < 0:
            raise ValidationError(f"account_state.open_orders[{symbol}]", f"must not be negative, got {count}")
        orders[symbol.strip().upper()] = count
    return AccountSnapshot(wallet, positions, open_orders=orders, authoritative=False)


class RiskServicer(risk_grpc.RiskServiceServicer):
    """The thin translator."""

    def __init__(self, desk: RiskDesk, *, record_time: bool = False) -> None:
        self._desk = desk
        self._record_time = record_time

    def _now(self, request: Any) -> dt.datetime:
        """The decision time: the desk's clock; in record time (AEGIS_CLOCK=record, a replay) the newest time the
        request carries (its signal's ``created_time``, its ``mark_price_time``), so a replayed signal is judged
        as of when it was recorded. See aegis.core.clock."""
        if not self._record_time:
            return self._desk.now()
        times = []
        if request.HasField("mark_price_time"):
            times.append(request.mark_price_time.ToDatetime(tzinfo=dt.UTC))
        signal = getattr(request, "signal", None)
        if signal is not None and signal.HasField("created_time"):
            times.append(signal.created_time.ToDatetime(tzinfo=dt.UTC))
        return as_of(times, self._desk.now)

    async def EvaluateSignal(
        self, request: risk_pb.EvaluateSignalRequest, context: grpc.aio.ServicerContext
    ) -> risk_pb.EvaluateSignalResponse:
        try:
            now = self._now(request)
            decision = await self._desk.evaluate(
                convert.account_name("account", request.account),
                convert.signal_from_pb(request),
                convert.market_from_pb(request, now),
                mode=convert.kind_from_pb(request.mode),
                given=account_state_from_pb(request),
                now=now,
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return risk_pb.EvaluateSignalResponse(decision=convert.decision_to_pb(decision))

    async def SizeOrder(
        self, request: risk_pb.SizeOrderRequest, context: grpc.aio.ServicerContext
    ) -> risk_pb.SizeOrderResponse:
        try:
            now = self._now(request)
            decision = await self._desk.size(
                convert.account_name("account", request.account),
                convert.size_order_signal(request),
                convert.market_from_pb(request, now),
                mode=convert.kind_from_pb(request.mode),
                method=convert.method_from_pb(request.method),
                given=account_state_from_pb(request),
                now=now,
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return risk_pb.SizeOrderResponse(decision=convert.decision_to_pb(decision))

    async def GetSymbolRules(
        self, request: risk_pb.GetSymbolRulesRequest, context: grpc.aio.ServicerContext
    ) -> risk_pb.GetSymbolRulesResponse:
        try:
            rules, updated = self._desk.symbol_rules(convert.symbol_from_pb(request.symbol))
        except AegisError as exc:
            await abort_with(context, exc)
        return risk_pb.GetSymbolRulesResponse(rules=convert.rules_to_pb(rules, updated))

    async def ListSymbolRules(
        self, request: risk_pb.ListSymbolRulesRequest, context: grpc.aio.ServicerContext
    ) -> risk_pb.ListSymbolRulesResponse:
        try:
            page = self._desk.list_rules(
                request.page_size, request.page_token, request.status if request.HasField("status") else None
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return risk_pb.ListSymbolRulesResponse(
            rules=[convert.rules_to_pb(r, updated) for r, updated in page.rules], next_page_token=page.next_page_token
        )

    async def GetRiskConfig(
        self, request: risk_pb.GetRiskConfigRequest, context: grpc.aio.ServicerContext
    ) -> risk_pb.GetRiskConfigResponse:
        try:
            account = convert.account_name("account", request.account) if request.HasField("account") else None
            configs = self._desk.configs(account)
        except AegisError as exc:
            await abort_with(context, exc)
        return risk_pb.GetRiskConfigResponse(configs=[convert.config_to_pb(c) for c in configs])

    async def GetProtectionsStatus(
        self, request: risk_pb.GetProtectionsStatusRequest, context: grpc.aio.ServicerContext
    ) -> risk_pb.GetProtectionsStatusResponse:
        try:
            account = convert.account_name("account", request.account) if request.HasField("account") else None
            statuses = await self._desk.protections_status(account)
        except AegisError as exc:
            await abort_with(context, exc)
        return risk_pb.GetProtectionsStatusResponse(accounts=[convert.protections_to_pb(s) for s in statuses])


def registration(desk: RiskDesk, *, record_time: bool = False) -> Registration:
    return Registration(
        risk_grpc.add_RiskServiceServicer_to_server, RiskServicer(desk, record_time=record_time), SERVICE_NAME
    )
