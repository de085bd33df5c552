"""VirtualAccountService over gRPC: translate requests into :class:`AccountBook` calls and back (habit 1).

Status codes come from the error tree in one place (``aegis.server.abort_with``): ValidationError →
INVALID_ARGUMENT naming the field (an unknown account too), AlreadyExistsError → ALREADY_EXISTS (an idempotency
key reused with other fields), NotFoundError → NOT_FOUND (a position the account does not have), AccountRefusal →
FAILED_PRECONDITION (already closed, no price yet, no margin), DependencyUnavailable → UNAVAILABLE.

The live account (live mode only) is mirrored from the exchange by :class:`aegis.virtual_account.live.LiveMirror`:
it answers GetAccount, ListPositions, ListTrades and StreamEvents like the others, refuses OpenPosition and
ClosePosition (FAILED_PRECONDITION: live positions are opened and closed on Binance, by the brain), and is the one
account Reconcile compares with the exchange. Reconcile of a learning or paper account is FAILED_PRECONDITION
(they live in PostgreSQL only: there is nothing to compare them with), and so is Reconcile of the live account in
paper mode (naming the live configuration it lacks).

OpenPosition and ClosePosition go through a :class:`Batcher`: requests arriving within a few milliseconds share
one transaction, each keeping its own idempotency and its own answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from aegis.config import LIVE_CONFIRMATION
from aegis.errors import AegisError, ValidationError
from aegis.server import Registration, abort_with
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc
from aegis.virtual_account import convert
from aegis.virtual_account.batcher import Batcher
from aegis.virtual_account.book import (
    AccountBook,
    AccountRefusal,
    CloseOutcome,
    CloseRequest,
    OpenOutcome,
    OpenRequest,
)
from aegis.virtual_account.events import EventHub
from aegis.wire import when

if TYPE_CHECKING:  # the live mirror's module (aiohttp, the exchange client) loads only in live mode
    from aegis.virtual_account.live import LiveMirror

SERVICE_NAME = "aegis.v1.VirtualAccountService"


class VirtualAccountServicer(va_grpc.VirtualAccountServiceServicer):
    """The thin translator."""

    def __init__(
        self, book: AccountBook, hub: EventHub, *, live: LiveMirror | None = None, live_account: str = "live"
    ) -> None:
        self._book = book
        self._hub = hub
        self._live = live
        self._live_account = live.account if live is not None else live_account
        delay = book.settings.batch_max_delay_ms / 1000.0
        size = book.settings.batch_max_size
        self.opens: Batcher[OpenRequest, OpenOutcome] = Batcher(book.open_positions, max_delay_s=delay, max_size=size)
        self.closes: Batcher[CloseRequest, CloseOutcome] = Batcher(
            book.close_positions, max_delay_s=delay, max_size=size
        )

    def _check_virtual(self, account: str) -> None:
        self._book.check_account(account)
        if self._book.accounts.get(account) == "live":
            raise AccountRefusal(
                f"account {account!r} is the live account: its positions are opened and closed on Binance by the "
                "brain's live execution, and mirrored here from the user data stream"
            )

    async def close(self) -> None:
        await self.opens.close()
        await self.closes.close()

    async def OpenPosition(
        self, request: va_pb.OpenPositionRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.OpenPositionResponse:
        try:
            parsed = convert.open_request_from_pb(request)
            self._check_virtual(parsed.account)
            outcome = await self.opens.submit(parsed)
        except AegisError as exc:
            await abort_with(context, exc)
        return va_pb.OpenPositionResponse(position=convert.position_to_pb(outcome.position), replayed=outcome.replayed)

    async def ClosePosition(
        self, request: va_pb.ClosePositionRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.ClosePositionResponse:
        try:
            parsed = convert.close_request_from_pb(request)
            self._check_virtual(parsed.account)
            outcome = await self.closes.submit(parsed)
        except AegisError as exc:
            await abort_with(context, exc)
        return va_pb.ClosePositionResponse(
            position=convert.position_to_pb(outcome.position),
            trade=convert.trade_to_pb(outcome.trade),
            replayed=outcome.replayed,
        )

    async def GetAccount(
        self, request: va_pb.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.GetAccountResponse:
        try:
            name = convert.account_field(request.account)
            if self._live is not None and name == self._live.account:
                await self._live.ensure_account()  # created at the exchange's wallet when the mirror has not yet
            view = await self._book.get_account(name)
        except AegisError as exc:
            await abort_with(context, exc)
        return va_pb.GetAccountResponse(account=convert.account_to_pb(view))

    async def ListAccounts(
        self, request: va_pb.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.ListAccountsResponse:
        try:
            views, token = await self._book.list_accounts(request.page_size, request.page_token)
        except AegisError as exc:
            await abort_with(context, exc)
        return va_pb.ListAccountsResponse(accounts=[convert.account_to_pb(v) for v in views], next_page_token=token)

    async def ListPositions(
        self, request: va_pb.ListPositionsRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.ListPositionsResponse:
        try:
            status = convert.status_from_pb(request.status)
            if status == "?":
                raise ValidationError("status", f"is not a PositionStatus value: {request.status}")
            symbol = convert.symbol_field("symbol", request.symbol) if request.HasField("symbol") else None
            positions, token = await self._book.list_positions(
                request.account.strip(), symbol, status, request.page_size, request.page_token
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return va_pb.ListPositionsResponse(
            positions=[convert.position_to_pb(p) for p in positions], next_page_token=token
        )

    async def ListTrades(
        self, request: va_pb.ListTradesRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.ListTradesResponse:
        try:
            symbol = convert.symbol_field("symbol", request.symbol) if request.HasField("symbol") else None
            start = when(request, "start_time")
            end = when(request, "end_time")
            trades, token = await self._book.list_trades(
                request.account.strip(),
                symbol,
                start,
                end,
                convert.reason_from_pb(request.close_reason),
                request.page_size,
                request.page_token,
                request.include_features,
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return va_pb.ListTradesResponse(trades=[convert.trade_to_pb(t) for t in trades], next_page_token=token)

    async def StreamEvents(
        self, request: va_pb.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[va_pb.StreamEventsResponse]:
        try:
            for i, name in enumerate(request.accounts):
                self._book.check_account(name, f"accounts[{i}]")
            symbol = convert.symbol_field("symbol", request.symbol) if request.HasField("symbol") else ""
        except AegisError as exc:
            await abort_with(context, exc)
        sub = await self._hub.subscribe(request.accounts, request.types, symbol)
        try:
            await context.send_initial_metadata((("aegis-stream", "subscribed"),))  # tells the client it is on
            while True:
                yield va_pb.StreamEventsResponse(event=await sub.queue.get())
        finally:
            self._hub.unsubscribe(sub)

    async def Reconcile(
        self, request: va_pb.ReconcileRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.ReconcileResponse:
        try:
            account = request.account.strip()
            if not account:
                raise ValidationError("account", f"is required (the live account, {self._live_account!r})")
            if self._live is not None and account == self._live.account:
                report = await self._live.reconciler.run(dry_run=request.dry_run)
            elif account == self._live_account:
                raise AccountRefusal(
                    f"account {account!r} is reconciled with Binance only in live mode, which this virtual-account "
                    "does not run: it needs AEGIS_MODE=live, BINANCE_API_KEY, BINANCE_API_SECRET and "
                    f"AEGIS_LIVE_CONFIRM={LIVE_CONFIRMATION}"
                )
            else:
                self._book.check_account(account)
                raise AccountRefusal(
                    f"account {account!r} is a {self._book.accounts[account]} account kept in PostgreSQL only: there "
                    f"is no exchange to reconcile it with (Reconcile is for the live account {self._live_account!r})"
                )
        except AegisError as exc:
            await abort_with(context, exc)
        from aegis.virtual_account.reconcile import report_to_pb  # live mode only: loaded with the live mirror

        return va_pb.ReconcileResponse(report=report_to_pb(report))

    async def ApplyPriceUpdates(
        self, request: va_pb.ApplyPriceUpdatesRequest, context: grpc.aio.ServicerContext
    ) -> va_pb.ApplyPriceUpdatesResponse:
        try:
            outcome = await self._book.apply_price_updates(convert.ticks_from_pb(request))
        except AegisError as exc:
            await abort_with(context, exc)
        return va_pb.ApplyPriceUpdatesResponse(
            positions_updated=outcome.positions_updated,
            closed_trades=[convert.trade_to_pb(t) for t in outcome.closed_trades],
            funding_payments=outcome.funding_payments,
            stale_updates=outcome.stale_updates,
        )


def registration(servicer: VirtualAccountServicer) -> Registration:
    return Registration(va_grpc.add_VirtualAccountServiceServicer_to_server, servicer, SERVICE_NAME)
