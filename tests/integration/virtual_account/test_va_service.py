"""The virtual_account process over real gRPC on real PostgreSQL and Redis: errors, events, kill -9."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from pathlib import Path

import asyncpg
import grpc
import pytest

from aegis import testing
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def symbol() -> str:
    return "S" + secrets.token_hex(4).upper() + "USDT"


def open_request(sym: str, key: str | None = None, **changes) -> va_pb.OpenPositionRequest:  # type: ignore[no-untyped-def]
    fields = dict(idempotency_key=key or secrets.token_hex(8), account="learning", symbol=sym,
                  side=common_pb.POSITION_SIDE_LONG, quantity="0.5", leverage=10, entry_price="60000",
                  stop_loss_price="59000", take_profit_price="61000", signal_id=secrets.token_hex(16),
                  confidence=0.7, predicted_return_pct=1.2, model_version="m-1",
                  features=common_pb.FeatureVector(schema_version="1", names=["a", "b"],
                                                   values=[0.5, -1.0]))  # fmt: skip
    fields.update(changes)
    return va_pb.OpenPositionRequest(**fields)


def update(sym: str, seconds: int, last: str, **extra) -> va_pb.ApplyPriceUpdatesRequest:  # type: ignore[no-untyped-def]
    u = va_pb.PriceUpdate(symbol=sym, last_price=last, mark_price=extra.pop("mark", last), **extra)
    u.event_time.FromSeconds(1_780_000_000 + seconds)
    return va_pb.ApplyPriceUpdatesRequest(updates=[u])


def code_and_details(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_bad_inputs_are_invalid_arguments_naming_the_field(service_env: dict[str, str], tmp_path: Path) -> None:
    sym = symbol()
    with testing.service("virtual_account", service_env, tmp_path) as proc, grpc.insecure_channel(proc.address) as ch:
        assert proc.wait_status("SERVING", 30), proc.log_text()
        stub = va_grpc.VirtualAccountServiceStub(ch)
        cases = {
            "quantity": open_request(sym, quantity="-0.5"),
            "account": open_request(sym, account="nobody"),
            "entry_price": open_request(sym, entry_price="12,5"),
            "stop_loss_price": open_request(sym, stop_loss_price="NaN"),
            "take_profit_price": open_request(sym, take_profit_price="59999"),
            "leverage": open_request(sym, leverage=0),
        }
        for field, request in cases.items():
            code, details = code_and_details(lambda r=request: stub.OpenPosition(r, timeout=5))
            assert code == INVALID and details.startswith(f"{field}:"), (field, details)
        code, details = code_and_details(lambda: stub.GetAccount(va_pb.GetAccountRequest(account="nobody"), timeout=5))
        assert code == INVALID and details.startswith("account:")
        code, details = code_and_details(lambda: stub.ApplyPriceUpdates(update(sym, 1, "60000", mark="nan"), timeout=5))
        assert code == INVALID and details.startswith("updates[0].mark_price:")
        # paper mode: the live account needs the live configuration; the virtual accounts have no exchange
        code, details = code_and_details(lambda: stub.Reconcile(va_pb.ReconcileRequest(account="live"), timeout=5))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "AEGIS_MODE=live" in details
        code, details = code_and_details(lambda: stub.Reconcile(va_pb.ReconcileRequest(account="paper"), timeout=5))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "no exchange to reconcile" in details
        code, details = code_and_details(lambda: stub.Reconcile(va_pb.ReconcileRequest(account=" "), timeout=5))
        assert code == INVALID and details.startswith("account:")


def test_stream_events_sees_the_open_and_the_take_profit_close(service_env: dict[str, str], tmp_path: Path) -> None:
    sym = symbol()
    with testing.service("virtual_account", service_env, tmp_path) as proc, grpc.insecure_channel(proc.address) as ch:
        assert proc.wait_status("SERVING", 30), proc.log_text()
        stub = va_grpc.VirtualAccountServiceStub(ch)
        wanted = [va_pb.ACCOUNT_EVENT_TYPE_POSITION_OPENED, va_pb.ACCOUNT_EVENT_TYPE_POSITION_CLOSED]
        stream = stub.StreamEvents(
            va_pb.StreamEventsRequest(accounts=["learning"], types=wanted, symbol=sym), timeout=30
        )
        stream.initial_metadata()  # the server has subscribed
        received: list[va_pb.AccountEvent] = []

        def read() -> None:
            for item in stream:
                received.append(item.event)
                if len(received) == 2:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        opened = stub.OpenPosition(open_request(sym), timeout=5)
        applied = stub.ApplyPriceUpdates(update(sym, 1, "61050", high_price="61100", low_price="60900"), timeout=5)
        assert len(applied.closed_trades) == 1 and applied.positions_updated == 1
        reader.join(10)
        stream.cancel()
        assert [e.type for e in received] == wanted, received
        assert received[0].position.position_id == opened.position.position_id
        trade = received[1].trade
        assert trade.close_reason == common_pb.CLOSE_REASON_TP_HIT and trade.symbol == sym
        assert received[1].sequence > received[0].sequence

        # The trade keeps what the trainer needs.
        (listed,) = stub.ListTrades(va_pb.ListTradesRequest(account="learning", symbol=sym, include_features=True),
                                    timeout=5).trades  # fmt: skip
        assert listed.trade_id == trade.trade_id and listed.model_version == "m-1" and listed.confidence == 0.7
        assert list(listed.features.values) == [0.5, -1.0] and listed.features.schema_version == "1"
        assert listed.predicted_return_pct == 1.2 and listed.reward == 8.0  # ROI on margin 15.6 %


def test_kill_9_between_open_and_close_loses_nothing(
    service_env: dict[str, str], tmp_path: Path, migrated_database_url: str
) -> None:
    sym = symbol()
    with testing.service("virtual_account", service_env, tmp_path) as proc, grpc.insecure_channel(proc.address) as ch:
        assert proc.wait_status("SERVING", 30), proc.log_text()
        stub = va_grpc.VirtualAccountServiceStub(ch)
        before = stub.GetAccount(va_pb.GetAccountRequest(account="learning"), timeout=5).account
        first_request = open_request(sym, key="kill-a")
        manual = stub.OpenPosition(first_request, timeout=5).position
        by_price = stub.OpenPosition(open_request(sym, key="kill-b", side=common_pb.POSITION_SIDE_SHORT,
                                                  stop_loss_price="61000", take_profit_price="59000"),
                                     timeout=5).position  # fmt: skip
        assert proc.process is not None
        proc.process.kill()  # SIGKILL: no graceful anything
        proc.process.wait(10)

    with testing.service("virtual_account", service_env, tmp_path) as proc, grpc.insecure_channel(proc.address) as ch:
        assert proc.wait_status("SERVING", 30), proc.log_text()
        stub = va_grpc.VirtualAccountServiceStub(ch)
        again = stub.OpenPosition(first_request, timeout=5)  # the client's retry after the crash
        assert again.replayed and again.position.position_id == manual.position_id
        listing = va_pb.ListPositionsRequest(account="learning", symbol=sym, status=common_pb.POSITION_STATUS_OPEN)
        open_now = stub.ListPositions(listing, timeout=5)
        assert {p.position_id for p in open_now.positions} == {manual.position_id, by_price.position_id}
        closed = stub.ClosePosition(va_pb.ClosePositionRequest(idempotency_key="kill-close", account="learning",
                                                               position_id=manual.position_id, price="60200"),
                                    timeout=5)  # fmt: skip
        assert closed.trade.net_pnl == "87.98" and closed.trade.fees == "12.02"  # 100 - (6 + 6.02 maker fees)
        applied = stub.ApplyPriceUpdates(update(sym, 5, "58950", high_price="59100", low_price="58900"), timeout=5)
        assert [t.position_id for t in applied.closed_trades] == [by_price.position_id]
        after = stub.GetAccount(va_pb.GetAccountRequest(account="learning"), timeout=5).account
        assert after.trade_count == before.trade_count + 2

    async def ledger() -> asyncpg.Record:
        conn = await asyncpg.connect(migrated_database_url)
        try:
            return await conn.fetchrow(
                "SELECT wallet_balance, starting_balance + realised_pnl - fees + funding AS identity, "
                "(SELECT sum(amount) FROM balance_ledger WHERE account_id = 'learning') AS ledger "
                "FROM accounts WHERE account_id = 'learning'"
            )
        finally:
            await conn.close()

    row = asyncio.run(ledger())
    assert row["wallet_balance"] == row["identity"] == row["ledger"]
    assert str(row["wallet_balance"].normalize()) == after.wallet_balance


def test_concurrent_identical_opens_over_grpc_make_one_position(service_env: dict[str, str], tmp_path: Path) -> None:
    sym = symbol()
    with testing.service("virtual_account", service_env, tmp_path) as proc:
        assert proc.wait_status("SERVING", 30), proc.log_text()

        async def run() -> list[va_pb.OpenPositionResponse]:
            async with grpc.aio.insecure_channel(proc.address) as ch:
                stub = va_grpc.VirtualAccountServiceStub(ch)
                request = open_request(sym, key="grpc-50")
                return await asyncio.gather(*(stub.OpenPosition(request, timeout=10) for _ in range(50)))

        started = time.monotonic()
        replies = asyncio.run(run())
        assert time.monotonic() - started < 10
        assert len({r.position.position_id for r in replies}) == 1
        assert sum(not r.replayed for r in replies) == 1
