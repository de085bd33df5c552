"""Test kit for the risk service, shipped with the package (used by AEGIS's tests and ``aegis bench risk``).

* :class:`FakeVirtualAccounts` — an in-memory ``VirtualAccountService`` answering GetAccount and ListPositions
  (every other RPC UNIMPLEMENTED), until the real one is built.
* :func:`risk_server` — a RiskService on a loopback port in this process, with its rules keeper running.
* :func:`store_rules_files` — store an exchangeInfo file and a leverage-tiers file in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from aegis import config
from aegis.exchange.rules_store import store_brackets_file, store_exchange_info_file
from aegis.risk.desk import Clock, RiskDesk, utc_now
from aegis.risk.rules_keeper import RulesKeeper
from aegis.risk.service import build
from aegis.risk.servicer import registration
from aegis.server import Registration, ServiceContext, create_server, unimplemented_servicer
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

_VaBase = unimplemented_servicer(
    va_grpc.VirtualAccountServiceServicer,
    "aegis.v1.VirtualAccountService",
    implemented=("GetAccount", "ListPositions"),
)


@dataclass
class FakeAccount:
    wallet_balance: str
    positions: list[common_pb.Position] = field(default_factory=list)


class FakeVirtualAccounts(_VaBase):  # type: ignore[misc,valid-type]
    """GetAccount and ListPositions over a dict of accounts; change ``accounts`` between calls."""

    def __init__(self, accounts: dict[str, FakeAccount] | None = None) -> None:
        self.accounts: dict[str, FakeAccount] = accounts or {}
        self.calls = 0

    async def GetAccount(self, request: va_pb.GetAccountRequest, context: grpc.aio.ServicerContext) -> Any:
        self.calls += 1
        account = self.accounts.get(request.account)
        if account is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no account {request.account!r}")
        return va_pb.GetAccountResponse(
            account=va_pb.Account(name=request.account, wallet_balance=account.wallet_balance)
        )

    async def ListPositions(self, request: va_pb.ListPositionsRequest, context: grpc.aio.ServicerContext) -> Any:
        account = self.accounts.get(request.account)
        if account is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no account {request.account!r}")
        return va_pb.ListPositionsResponse(positions=account.positions)

    def registration(self) -> Registration:
        return Registration(va_grpc.add_VirtualAccountServiceServicer_to_server, self, "aegis.v1.VirtualAccountService")


@asynccontextmanager
async def grpc_server(registrations: Sequence[Registration]) -> AsyncIterator[str]:
    """Serve ``registrations`` on a loopback port; yield its address."""
    server, port, _ = create_server(registrations, "127.0.0.1", 0)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@dataclass
class RiskHarness:
    address: str
    desk: RiskDesk
    keeper: RulesKeeper
    db: Database
    cache: Cache
    settings: config.Settings

    async def wait_rules(self, timeout_s: float = 20.0) -> None:
        """Wait until the desk has rules (raise TimeoutError with the reason otherwise)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.desk.rules_loaded:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"risk loaded no rules in {timeout_s} s: {self.desk.rules_help}")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def risk_server(settings: config.Settings, *, clock: Clock = utc_now) -> AsyncIterator[RiskHarness]:
    """Run a RiskService (and its rules keeper) in this process on a loopback port."""
    db = Database(settings.dsn())
    cache = Cache(settings.redis(), timeout_s=settings.grpc.dependency_timeout_s)
    ctx = ServiceContext("risk", settings, db, cache, dt.datetime.now(dt.UTC))
    desk, keeper = build(ctx, clock=clock)
    keeper_task = asyncio.create_task(keeper.run(), name="risk-rules-keeper")
    try:
        async with grpc_server([registration(desk)]) as address:
            yield RiskHarness(address, desk, keeper, db, cache, settings)
    finally:
        keeper_task.cancel()
        await asyncio.gather(keeper_task, return_exceptions=True)
        await desk.close()
        await db.close()
        await cache.close()


async def store_rules_files(db: Database, cache: Cache | None, exchange_info: Path, brackets: Path | None) -> None:
    """Store an exchangeInfo file (and a leverage-tiers file) as the orchestrator would store fetched ones."""
    await store_exchange_info_file(db, cache, exchange_info)
    if brackets is not None:
        await store_brackets_file(db, cache, brackets)
