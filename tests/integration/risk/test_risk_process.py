"""The risk service as a real process: decisions over gRPC, and protections that survive a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import grpc
from google.protobuf import timestamp_pb2

from aegis import testing
from aegis.risk.testing import FakeAccount, FakeVirtualAccounts, grpc_server, store_rules_files
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import risk_pb2 as risk_pb
from aegis.v1 import risk_pb2_grpc as risk_grpc

NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"


def stamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def signal(symbol: str, price: str) -> risk_pb.EvaluateSignalRequest:
    now = dt.datetime.now(dt.UTC)
    return risk_pb.EvaluateSignalRequest(
        account="paper",
        signal=common_pb.Signal(
            signal_id="sig-process",
            symbol=symbol,
            side=common_pb.POSITION_SIDE_LONG,
            entry_price=price,
            sl_pct=1.0,
            tp_pct=2.0,
            confidence=0.7,
            created_time=stamp(now),
        ),
        mark_price=price,
        mark_price_time=stamp(now),
    )


async def wait_for_rules(stub: risk_grpc.RiskServiceStub) -> None:
    for _ in range(300):
        try:
            await stub.GetSymbolRules(risk_pb.GetSymbolRulesRequest(symbol="BTCUSDT"), timeout=1)
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        await asyncio.sleep(0.05)
    raise AssertionError("risk never loaded its rules")


async def decide(proc: testing.ServiceProcess, requests: list[risk_pb.EvaluateSignalRequest]) -> list:
    assert await asyncio.to_thread(proc.wait_status, "SERVING"), proc.log_text()
    async with grpc.aio.insecure_channel(proc.address) as channel:
        stub = risk_grpc.RiskServiceStub(channel)
        await wait_for_rules(stub)
        decisions = [(await stub.EvaluateSignal(r, timeout=5)).decision for r in requests]
        status = await stub.GetProtectionsStatus(risk_pb.GetProtectionsStatusRequest(account="paper"), timeout=5)
    return [*decisions, status.accounts[0]]


async def test_protections_survive_a_restart(admin_dsn: str, redis_url: str, shared_data: Path, tmp_path: Path) -> None:
    dsn = await testing.create_database(admin_dsn, "aegis_risk_process")
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        now = dt.datetime.now(dt.UTC)
        await conn.execute(
            "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance, peak_equity) "
            "VALUES ('paper', 'paper', 10000, 10000, 10000)"
        )
        await conn.execute(
            "INSERT INTO trades (trade_id, position_id, account_id, symbol, side, quantity, entry_price, exit_price, "
            "leverage, margin, opened_at, closed_at, close_reason, gross_pnl, fees, funding, realised_pnl, "
            "roi_margin_pct, roi_price_pct, reward_score) VALUES (gen_random_uuid(), gen_random_uuid(), 'paper', "
            "'ETHUSDT', 'BUY', 1, 3000, 2970, 5, 600, $1, $2, 'SL_HIT', -30, 3, 0, -33, -5.5, -1, -1)",
            now - dt.timedelta(hours=1),
            now - dt.timedelta(minutes=5),
        )
        db = Database(dsn)
        await store_rules_files(db, None, shared_data / NOV, shared_data / TIERS)
        await db.close()

        va = FakeVirtualAccounts({"paper": FakeAccount("12000")})
        async with grpc_server([va.registration()]) as va_address:
            env = {
                "DATABASE_URL": dsn,
                "REDIS_URL": redis_url,
                "AEGIS_HOME": str(tmp_path / "home"),
                "AEGIS_VIRTUAL_ACCOUNT_ADDRESS": va_address,
                "AEGIS_RISK_FETCH_RULES": "false",
            }
            requests = [signal("BTCUSDT", "50000"), signal("ETHUSDT", "3000")]

            proc = testing.ServiceProcess("risk", env, log_dir=tmp_path).start()
            try:
                btc, eth, status = await decide(proc, requests)
            finally:
                assert await asyncio.to_thread(proc.stop) == 0
            assert btc.approved and btc.equity.total_equity == "12000"
            assert list(eth.reason_codes) == [risk_pb.RISK_REASON_CODE_COOLDOWN]
            assert status.peak_equity == "12000" and [c.symbol for c in status.cooldowns] == ["ETHUSDT"]
            assert await conn.fetchval("SELECT peak_equity FROM accounts WHERE account_id = 'paper'") == 12000

            # While risk is down the account loses 2,500 today (virtual-account realises it and records it).
            va.accounts["paper"] = FakeAccount("9500")
            await conn.execute(
                "INSERT INTO balance_ledger (account_id, kind, amount, balance_after) "
                "VALUES ('paper', 'realised_pnl', -2500, 9500)"
            )

            proc = testing.ServiceProcess("risk", env, log_dir=tmp_path).start()
            try:
                btc, eth, status = await decide(proc, requests)
            finally:
                assert await asyncio.to_thread(proc.stop) == 0
        await conn.close()

        # A new process, the same memory: 9,500 is 20.8 % under the 12,000 peak and 20.8 % under the day's start.
        both = [risk_pb.RISK_REASON_CODE_MAX_DRAWDOWN, risk_pb.RISK_REASON_CODE_DAILY_LOSS_LIMIT]
        assert not btc.approved and list(btc.reason_codes) == both
        assert list(eth.reason_codes) == [*both, risk_pb.RISK_REASON_CODE_COOLDOWN]
        assert status.halted and status.peak_equity == "12000" and status.equity == "9500"
        assert list(status.reason_codes) == both and status.daily_pnl == "-2500"
    finally:
        await testing.drop_database(admin_dsn, dsn)
