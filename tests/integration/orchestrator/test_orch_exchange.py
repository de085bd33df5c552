"""Exchange rules, leverage brackets and the symbol universe, refreshed against the local Binance simulator (and a
signed stand-in for the bracket endpoint the simulator does not serve), on demand and on the leader's schedule."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web

from aegis import config, testing
from aegis.exchange.binance import sign
from aegis.feed import universe
from aegis.orchestrator.testing import orchestrator_server
from aegis.sim import Simulator
from aegis.storage import keys
from aegis.storage.migrate import migrate
from aegis.storage.postgres import connect_once
from aegis.v1 import orchestrator_pb2 as orch_pb
from aegis.v1 import orchestrator_pb2_grpc as orch_grpc

pytestmark = pytest.mark.timeout(120)

NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"


@pytest.fixture
def dsn(admin_dsn: str) -> Iterator[str]:
    name = testing.create_database_sync(admin_dsn, "aegis_orch_exchange")

    async def run() -> None:
        conn = await connect_once(name)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    yield name
    testing.drop_database_sync(admin_dsn, name)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=None) as simulator:
        yield simulator


async def fetch(dsn: str, query: str) -> list[Any]:
    conn = await connect_once(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(query)]
    finally:
        await conn.close()


def tasks(*names: str) -> list[int]:
    return [orch_pb.MaintenanceTask.Value(f"MAINTENANCE_TASK_{n}") for n in names]


async def test_rules_and_universe_refresh_against_the_simulator(
    dsn: str, redis_url: str, sim: Simulator, shared_data: Path
) -> None:
    port = testing.free_port()
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_BINANCE_REST_URL": sim.rest_url,
        "AEGIS_SYMBOL_COUNT": "7",
        "AEGIS_SHARD_SIZE": "3",
        "AEGIS_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{port}",
        "AEGIS_ORCHESTRATOR_LEADER_RETRY_S": "0.2",
    }
    info = json.loads((shared_data / NOV).read_text())
    expected = universe.select(info, count=7)
    async with (
        orchestrator_server(config.load(env=env), port=port) as orch,
        grpc.aio.insecure_channel(orch.address) as channel,
    ):
        stub = orch_grpc.OrchestratorServiceStub(channel)
        await asyncio.wait_for(orch.parts.election.wait_leading(), 5)

        dry = await stub.RunMaintenance(
            orch_pb.RunMaintenanceRequest(tasks=tasks("REFRESH_RULES", "REFRESH_UNIVERSE"), dry_run=True), timeout=60
        )
        assert [r.status for r in dry.results] == [orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED] * 2, dry
        assert dry.results[0].items_affected == len(info["symbols"])
        assert dry.results[1].summary.startswith("universe would follow 7 symbols in 3 shards: 7 added")
        assert await fetch(dsn, "SELECT count(*) FROM exchange_rules") == [(0,)]
        assert await fetch(dsn, "SELECT count(*) FROM symbols") == [(0,)]

        reply = await stub.RunMaintenance(
            orch_pb.RunMaintenanceRequest(tasks=tasks("REFRESH_RULES", "REFRESH_UNIVERSE")), timeout=60
        )
        rules, refreshed = reply.results
        assert rules.status == refreshed.status == orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED, reply
        assert rules.items_affected == len(info["symbols"])
        assert "leverage brackets skipped: no API keys" in rules.summary
        assert refreshed.items_affected == 7
        assert "not in a Kubernetes cluster" in refreshed.summary

        assert await fetch(dsn, "SELECT count(*) FROM exchange_rules") == [(len(info["symbols"]),)]
        assert await orch.cache.client.get(keys.exchange_rules("BTCUSDT")) is not None
        stored = await fetch(dsn, "SELECT symbol, shard FROM symbols WHERE active ORDER BY shard, symbol")
        assert sorted(stored) == sorted((s, i // 3) for i, s in enumerate(expected))
        assert await fetch(dsn, "SELECT count(*) FROM symbols") == [(len(info["symbols"]),)]

        listed = await stub.ListSymbols(orch_pb.ListSymbolsRequest(), timeout=5)
        assert listed.shard_count == 3
        assert {s.symbol: s.shard_index for s in listed.symbols} == {s: i // 3 for i, s in enumerate(expected)}

        again = await stub.RunMaintenance(orch_pb.RunMaintenanceRequest(tasks=tasks("REFRESH_UNIVERSE")), timeout=60)
        assert again.results[0].items_affected == 0  # nothing changed: nothing written


async def serve_signed_brackets(info: dict[str, Any], api_key: str, secret: str) -> tuple[web.AppRunner, str]:
    """exchangeInfo plus a SIGNED /fapi/v1/leverageBracket that checks the key and the signature."""

    async def exchange_info(request: web.Request) -> web.Response:
        return web.json_response(info)

    async def brackets(request: web.Request) -> web.Response:
        query = request.query_string
        payload, _, signature = query.rpartition("&signature=")
        if request.headers.get("X-MBX-APIKEY") != api_key or sign(secret, payload) != signature:
            return web.json_response({"code": -1022, "msg": "Signature for this request is not valid."}, status=400)
        if "timestamp=" not in payload:
            return web.json_response({"code": -1102, "msg": "Mandatory parameter 'timestamp' missing."}, status=400)
        tiers = [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0, "maintMarginRatio": 0.004,
             "cum": 0.0},
            {"bracket": 2, "initialLeverage": 100, "notionalCap": 600000, "notionalFloor": 50000,
             "maintMarginRatio": 0.005, "cum": 50.0},
        ]  # fmt: skip
        return web.json_response([{"symbol": "BTCUSDT", "brackets": tiers}, {"symbol": "ETHUSDT", "brackets": tiers}])

    app = web.Application()
    app.router.add_get("/fapi/v1/exchangeInfo", exchange_info)
    app.router.add_get("/fapi/v1/leverageBracket", brackets)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def test_brackets_are_fetched_signed_only_when_keys_are_set(dsn: str, redis_url: str, shared_data: Path) -> None:
    info = json.loads((shared_data / NOV).read_text())
    runner, url = await serve_signed_brackets(info, "key-1", "secret-1")
    try:
        port = testing.free_port()
        base = {"DATABASE_URL": dsn, "REDIS_URL": redis_url, "AEGIS_BINANCE_REST_URL": url}
        with_keys = config.load(env={**base, "BINANCE_API_KEY": "key-1", "BINANCE_API_SECRET": "secret-1"})
        async with orchestrator_server(with_keys, port=port, lead=False) as orch:
            done = await orch.parts.maintenance.perform("REFRESH_RULES")
        assert "leverage brackets of 2 symbols" in done.summary
        assert await fetch(dsn, "SELECT DISTINCT symbol FROM leverage_brackets ORDER BY symbol") == [
            ("BTCUSDT",),
            ("ETHUSDT",),
        ]

        wrong = config.load(env={**base, "BINANCE_API_KEY": "key-1", "BINANCE_API_SECRET": "wrong"})
        async with orchestrator_server(wrong, port=testing.free_port(), lead=False) as orch:
            done = await orch.parts.maintenance.perform("REFRESH_RULES")
        # exchangeInfo is still stored; the brackets stay as they were, and the summary says why.
        assert "leverage brackets not refreshed" in done.summary and "-1022" in done.summary
        assert done.items == len(info["symbols"])
        assert await fetch(dsn, "SELECT count(DISTINCT symbol) FROM leverage_brackets") == [(2,)]
    finally:
        await runner.cleanup()


async def test_the_leader_refreshes_on_its_schedule_and_logs_the_heartbeat(
    dsn: str, redis_url: str, sim: Simulator, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_HOME": str(tmp_path / "home"),
        "AEGIS_BINANCE_REST_URL": sim.rest_url,
        "AEGIS_SYMBOL_COUNT": "5",
        "AEGIS_SHARD_SIZE": "2",
        "AEGIS_ORCHESTRATOR_LEADER_RETRY_S": "0.3",
        "AEGIS_ORCHESTRATOR_HEARTBEAT_INTERVAL_S": "1",
    }
    client = aioredis.Redis.from_url(redis_url)
    try:  # feed and brain status left by other tests would show in the heartbeat
        async for name in client.scan_iter(match=keys.service_status("*", "*")):
            await client.delete(name)
    finally:
        await client.aclose()
    proc = testing.ServiceProcess("orchestrator", env, log_dir=tmp_path).start()
    try:
        deadline = time.monotonic() + 40
        active: list[Any] = []
        while time.monotonic() < deadline:
            active = await fetch(dsn, "SELECT count(*), max(shard) FROM symbols WHERE active")
            if active == [(5, 2)] and "HEARTBEAT services" in proc.log_text():
                break
            await asyncio.sleep(0.3)
        assert active == [(5, 2)], proc.log_text()
        assert (await fetch(dsn, "SELECT count(*) > 600 FROM exchange_rules")) == [(True,)]
        beats = [json.loads(line) for line in proc.log_text().splitlines() if "HEARTBEAT services" in line]
        assert beats, proc.log_text()
        assert beats[0]["severity"] == "WARNING"
        assert beats[0]["message"].startswith("HEARTBEAT services ")
        assert "open positions 0" in beats[0]["message"] and "feed 0.0 msg/s, 0 rejects" in beats[0]["message"]
    finally:
        proc.stop()
