"""OrchestratorService over real gRPC on real PostgreSQL and Redis, with risk and virtual-account running as real
processes and the other services down."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from google.protobuf import duration_pb2

import aegis
from aegis import config, testing
from aegis.orchestrator import symbols
from aegis.orchestrator.testing import orchestrator_server
from aegis.server import Registration, create_server, unimplemented_servicer
from aegis.storage import keys
from aegis.storage.migrate import migrate
from aegis.storage.postgres import connect_once
from aegis.v1 import orchestrator_pb2 as orch_pb
from aegis.v1 import orchestrator_pb2_grpc as orch_grpc
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

pytestmark = pytest.mark.timeout(120)


def migrated(admin_dsn: str) -> str:
    dsn = testing.create_database_sync(admin_dsn, "aegis_orch_api")

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    return dsn


@pytest.fixture(scope="module")
def orch_dsn(admin_dsn: str) -> Iterator[str]:
    dsn = migrated(admin_dsn)
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


@pytest.fixture(scope="module")
def running(orch_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """risk and virtual-account as real processes; trainer, feed and brain on ports where nothing listens."""
    log_dir = tmp_path_factory.mktemp("orch-api-logs")
    env = {"DATABASE_URL": orch_dsn, "REDIS_URL": redis_url, "AEGIS_HOME": str(log_dir / "home")}
    risk = testing.ServiceProcess("risk", env, log_dir=log_dir).start()
    va = testing.ServiceProcess("virtual_account", env, log_dir=log_dir).start()
    try:
        assert risk.wait_status("SERVING", 30), risk.log_text()
        assert va.wait_status("SERVING", 30), va.log_text()
        yield {"risk": risk.address, "virtual_account": va.address}
    finally:
        risk.stop()
        va.stop()


def settings_for(dsn: str, redis_url: str, port: int, **extra: str) -> config.Settings:
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_BINANCE_REST_URL": "http://127.0.0.1:9",
        "AEGIS_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{port}",
        "AEGIS_ORCHESTRATOR_LEADER_RETRY_S": "0.2",
        "AEGIS_RING_CAPACITY": "1024",
        **{f"AEGIS_{name.upper()}_ADDRESS": f"127.0.0.1:{testing.free_port()}" for name in config.SERVICES},
        **extra,
    }
    env["AEGIS_ORCHESTRATOR_ADDRESS"] = f"127.0.0.1:{port}"
    return config.load(env=env)


@pytest_asyncio.fixture
async def api(
    orch_dsn: str, redis_url: str, running: dict[str, str]
) -> AsyncIterator[orch_grpc.OrchestratorServiceStub]:
    port = testing.free_port()
    settings = settings_for(
        orch_dsn,
        redis_url,
        port,
        AEGIS_RISK_ADDRESS=running["risk"],
        AEGIS_VIRTUAL_ACCOUNT_ADDRESS=running["virtual_account"],
    )
    async with orchestrator_server(settings, port=port) as orch:
        for _ in range(100):
            if orch.parts.election.is_leader:
                break
            await asyncio.sleep(0.05)
        async with grpc.aio.insecure_channel(orch.address) as channel:
            yield orch_grpc.OrchestratorServiceStub(channel)


async def code_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


# --------------------------------------------------------------------------------------------- GetSystemStatus


async def seed_accounts(dsn: str) -> bool:
    """Two accounts of our own: one with a priced open position (when prices are stored), one halted and idle."""
    conn = await connect_once(dsn)
    try:
        await conn.execute("DELETE FROM positions WHERE account_id LIKE 'orch-%'")
        await conn.execute("DELETE FROM accounts WHERE account_id LIKE 'orch-%'")
        await conn.execute(
            "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance, halted) VALUES "
            "('orch-live', 'live', 1000, 1000, false), ('orch-paper', 'paper', 500, 480.5, true)"
        )
        await conn.execute(
            "INSERT INTO positions (position_id, account_id, idempotency_key, symbol, side, status, quantity, "
            "entry_price, leverage, margin, opened_at) VALUES ($1, 'orch-live', 'k1', 'BTCUSDT', 'BUY', 'OPEN', 0.01, "
            "60000, 10, 60, now()), ($2, 'orch-live', 'k2', 'ETHUSDT', 'SELL', 'CLOSED', 1, 3000, 5, 600, now())",
            uuid.uuid4(),
            uuid.uuid4(),
        )
        priced = bool(await conn.fetchval("SELECT to_regclass('account_prices') IS NOT NULL"))
        if priced:
            await conn.execute(
                "INSERT INTO account_prices (symbol, last_price, mark_price, event_time) VALUES "
                "('BTCUSDT', 61000, 61000, now()) ON CONFLICT (symbol) DO UPDATE SET mark_price = 61000"
            )
        await conn.execute(
            "INSERT INTO training_runs (run_id, trigger, status, seed, started_at, finished_at, model_version, "
            "promoted) VALUES ($1, 'schedule', 'succeeded', 42, now() - interval '1 hour', now(), 'm-old', false), "
            "($2, 'manual', 'failed', 7, now() - interval '1 minute', now(), NULL, false)",
            uuid.uuid4(),
            uuid.uuid4(),
        )
    finally:
        await conn.close()
    return priced


async def clear_shard_status(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        async for name in client.scan_iter(match=keys.service_status("*", "*")):
            await client.delete(name)
    finally:
        await client.aclose()


async def publish_shard_status(redis_url: str) -> None:
    await clear_shard_status(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        feed0 = {"shard": 0, "messages_per_second": 40.5, "rejected": 3, "rejected_by_reason": {"STALE": 2, "X": 1}}
        feed1 = {"shard": 1, "messages_per_second": 10.0, "rejected": 1, "rejected_by_reason": {"STALE": 1}}
        brain0 = {"service": "brain", "symbols": 2, "ring": {"lag_records": 256, "lag_ns": 250_000_000, "overruns": 1}}
        brain1 = {"service": "brain", "symbols": 2, "ring": {"lag_records": 0, "lag_ns": 1_500_000_000}}
        await client.set(keys.service_status("feed", "0"), json.dumps(feed0), ex=30)
        await client.set(keys.service_status("feed", "1"), json.dumps(feed1), ex=30)
        await client.set(keys.service_status("brain", "shard-0"), json.dumps(brain0), ex=30)
        await client.set(keys.service_status("brain", "shard-1"), json.dumps(brain1), ex=30)
        await client.set(keys.service_status("feed", "not-a-shard"), "{not json", ex=30)
    finally:
        await client.aclose()


async def test_system_status_reports_each_service_the_figures_and_the_one_down(
    api: orch_grpc.OrchestratorServiceStub, orch_dsn: str, redis_url: str, running: dict[str, str]
) -> None:
    priced = await seed_accounts(orch_dsn)
    await publish_shard_status(redis_url)
    try:
        reply = await api.GetSystemStatus(orch_pb.GetSystemStatusRequest(), timeout=15)
    finally:
        await clear_shard_status(redis_url)

    by_name = {s.name: s for s in reply.services}
    assert list(by_name) == list(config.SERVICES)
    for name in ("risk", "virtual_account", "orchestrator"):
        assert by_name[name].status == orch_pb.SERVING_STATUS_SERVING, by_name[name]
        assert by_name[name].version == aegis.__version__
        assert by_name[name].latency.ToNanoseconds() > 0
        assert not by_name[name].error
    assert by_name["risk"].address == running["risk"]
    for name in ("trainer", "feed", "brain"):  # nothing listens there
        assert by_name[name].status == orch_pb.SERVING_STATUS_UNREACHABLE
        assert by_name[name].error and not by_name[name].version

    assert reply.postgres.healthy and reply.postgres.version and reply.postgres.latency.ToNanoseconds() > 0
    assert reply.postgres.address.endswith(orch_dsn.rsplit("/", 1)[1]) and "@" not in reply.postgres.address
    assert reply.redis.healthy and reply.redis.version
    assert reply.leader and reply.leader_identity == "test-orchestrator"
    assert not reply.in_cluster and not reply.pods

    # Feed and brain figures from the status JSON they publish.
    assert reply.feed_messages_per_second == pytest.approx(50.5)
    assert reply.feed_rejects_total == 4
    assert {(r.reason, r.count) for r in reply.feed_rejects} == {("STALE", 3), ("X", 1)}
    shards = {s.shard_index: s for s in reply.shards}
    assert set(shards) == {0, 1}
    assert shards[0].ring_fill == 256 and shards[0].ring_capacity == 1024
    assert shards[0].ring_fill_ratio == pytest.approx(0.25) and shards[0].ring_overruns == 1
    assert shards[1].brain_lag.ToNanoseconds() == 1_500_000_000
    assert reply.brain_lag.ToNanoseconds() == 1_500_000_000

    accounts = {a.account: a for a in reply.accounts}
    live, paper = accounts["orch-live"], accounts["orch-paper"]
    assert live.open_positions == 1 and paper.open_positions == 0
    assert paper.halted and Decimal(paper.equity) == Decimal("480.5")
    # Equity = wallet + unrealised PnL at the mark price: 1000 + (61000 - 60000) * 0.01; unknown without prices.
    assert (Decimal(live.equity) == Decimal("1010")) if priced else live.equity == ""

    run = reply.last_training_run
    assert run.reason == "manual" and run.status == 4 and run.seed == 7  # TRAINING_RUN_STATUS_FAILED
    assert reply.as_of_time.seconds > 0


async def test_a_status_probe_timeout_that_makes_no_sense_is_refused(api: orch_grpc.OrchestratorServiceStub) -> None:
    bad = orch_pb.GetSystemStatusRequest(probe_timeout=duration_pb2.Duration(seconds=-1))
    code, details = await code_of(api.GetSystemStatus(bad, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("probe_timeout")


# --------------------------------------------------------------------------------------------- ListSymbols


def exchange_info(count: int) -> dict:
    rows = [
        {"symbol": f"S{i:02d}USDT", "status": "TRADING", "contractType": "PERPETUAL", "quoteAsset": "USDT"}
        for i in range(count)
    ]
    rows.append({"symbol": "OLDUSDT", "status": "SETTLING", "contractType": "PERPETUAL", "quoteAsset": "USDT"})
    rows.append({"symbol": "BTCUSDC", "status": "TRADING", "contractType": "PERPETUAL", "quoteAsset": "USDC"})
    return {"symbols": [{**r, "baseAsset": r["symbol"][:3], "filters": []} for r in rows]}


async def test_list_symbols_pages_by_name_with_the_shard_of_each(
    api: orch_grpc.OrchestratorServiceStub, orch_dsn: str
) -> None:
    from aegis.storage.postgres import Database

    db = Database(orch_dsn)
    try:
        await symbols.save(db, symbols.plan(exchange_info(7), explicit=(), count=5, shard_size=2))
    finally:
        await db.close()

    seen, token, pages = [], "", 0
    while True:
        reply = await api.ListSymbols(orch_pb.ListSymbolsRequest(page_size=2, page_token=token), timeout=5)
        seen += [(s.symbol, s.shard_index, s.included) for s in reply.symbols]
        assert reply.shard_count == 3
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3
    assert [symbol for symbol, _, _ in seen] == ["S00USDT", "S01USDT", "S02USDT", "S03USDT", "S04USDT"]
    assert [shard for _, shard, included in seen if included] == [0, 0, 1, 1, 2]

    one = await api.ListSymbols(orch_pb.ListSymbolsRequest(shard_index=1), timeout=5)
    assert [s.symbol for s in one.symbols] == ["S02USDT", "S03USDT"] and not one.next_page_token

    everything = await api.ListSymbols(orch_pb.ListSymbolsRequest(include_excluded=True), timeout=5)
    reasons = {s.symbol: s.exclusion_reason for s in everything.symbols if not s.included}
    assert reasons == {
        "BTCUSDC": "NOT_USDT_QUOTED",
        "OLDUSDT": "NOT_TRADING",
        "S05USDT": "BEYOND_SYMBOL_COUNT",
        "S06USDT": "BEYOND_SYMBOL_COUNT",
    }
    assert all(s.shard_index == -1 for s in everything.symbols if not s.included)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (orch_pb.ListSymbolsRequest(page_size=-1), "page_size"),
        (orch_pb.ListSymbolsRequest(page_size=1001), "page_size"),
        (orch_pb.ListSymbolsRequest(page_token="not a token"), "page_token"),
        (orch_pb.ListSymbolsRequest(page_token="eyJhZnRlciI6ICInOyBkcm9wIn0="), "page_token"),  # {"after": "'; drop"}
        (orch_pb.ListSymbolsRequest(shard_index=-2), "shard_index"),
    ],
)
async def test_bad_list_symbols_arguments_name_the_field(
    api: orch_grpc.OrchestratorServiceStub, request_: orch_pb.ListSymbolsRequest, field: str
) -> None:
    code, details = await code_of(api.ListSymbols(request_, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


# --------------------------------------------------------------------------------------------- RunMaintenance


@pytest.mark.parametrize(("tasks", "field"), [([99], "tasks[0]"), ([5, 0], "tasks[1]")])
async def test_unknown_maintenance_tasks_are_refused_naming_the_field(
    api: orch_grpc.OrchestratorServiceStub, tasks: list[int], field: str
) -> None:
    code, details = await code_of(api.RunMaintenance(orch_pb.RunMaintenanceRequest(tasks=tasks), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:") and "unknown maintenance task" in details


async def test_maintenance_runs_in_order_and_skips_after_a_failure(api: orch_grpc.OrchestratorServiceStub) -> None:
    tasks = [
        orch_pb.MAINTENANCE_TASK_MIGRATE,
        orch_pb.MAINTENANCE_TASK_VACUUM,
        orch_pb.MAINTENANCE_TASK_REFRESH_RULES,  # the exchange is unreachable (port 9)
        orch_pb.MAINTENANCE_TASK_RETENTION,
    ]
    reply = await api.RunMaintenance(orch_pb.RunMaintenanceRequest(tasks=tasks), timeout=60)
    got = [(r.task, r.status) for r in reply.results]
    assert got == [
        (orch_pb.MAINTENANCE_TASK_MIGRATE, orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED),
        (orch_pb.MAINTENANCE_TASK_VACUUM, orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED),
        (orch_pb.MAINTENANCE_TASK_REFRESH_RULES, orch_pb.MAINTENANCE_TASK_STATUS_FAILED),
        (orch_pb.MAINTENANCE_TASK_RETENTION, orch_pb.MAINTENANCE_TASK_STATUS_SKIPPED),
    ]
    migrate_result, vacuum, rules, retention = reply.results
    assert migrate_result.summary.startswith("schema at version")
    assert vacuum.items_affected >= 10 and "VACUUM ANALYZEd" in vacuum.summary
    assert "exchangeInfo" in rules.error and rules.start_time.seconds > 0
    assert "REFRESH_RULES failed" in retention.summary


async def test_a_follower_refuses_changes_but_answers_dry_runs(orch_dsn: str, redis_url: str) -> None:
    port = testing.free_port()
    settings = settings_for(orch_dsn, redis_url, port)
    async with (
        orchestrator_server(settings, port=port, lead=False) as orch,
        grpc.aio.insecure_channel(orch.address) as channel,
    ):
        stub = orch_grpc.OrchestratorServiceStub(channel)
        migrate_task = [orch_pb.MAINTENANCE_TASK_MIGRATE]
        code, details = await code_of(stub.RunMaintenance(orch_pb.RunMaintenanceRequest(tasks=migrate_task)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "not the leader" in details
        dry = await stub.RunMaintenance(
            orch_pb.RunMaintenanceRequest(tasks=[*migrate_task, orch_pb.MAINTENANCE_TASK_VACUUM], dry_run=True)
        )
        assert [r.status for r in dry.results] == [orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED] * 2
        assert dry.results[0].summary.startswith("schema already at version")
        assert dry.results[1].summary.startswith("would VACUUM ANALYZE")
        beat = await stub.GetHeartbeat(orch_pb.GetHeartbeatRequest())
        assert not beat.leader


# --------------------------------------------------------------------------------------------- ReconcileAccount


async def test_reconcile_in_paper_mode_passes_on_the_missing_live_configuration(
    api: orch_grpc.OrchestratorServiceStub,
) -> None:
    code, details = await code_of(api.ReconcileAccount(orch_pb.ReconcileAccountRequest(account="live"), timeout=10))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith("virtual-account: ") and "AEGIS_MODE=live" in details and "AEGIS_LIVE_CONFIRM" in details


async def test_reconcile_needs_an_account(api: orch_grpc.OrchestratorServiceStub) -> None:
    code, details = await code_of(api.ReconcileAccount(orch_pb.ReconcileAccountRequest(account=" "), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("account:")


class Reconciler(
    unimplemented_servicer(  # type: ignore[misc]
        va_grpc.VirtualAccountServiceServicer, "aegis.v1.VirtualAccountService", implemented=("Reconcile",)
    )
):
    def __init__(self) -> None:
        self.requests: list[va_pb.ReconcileRequest] = []

    async def Reconcile(self, request: va_pb.ReconcileRequest, context: object) -> va_pb.ReconcileResponse:
        self.requests.append(request)
        return va_pb.ReconcileResponse(report=va_pb.ReconcileReport(account=request.account, dry_run=request.dry_run))


async def test_reconcile_forwards_the_request_and_returns_the_report(
    orch_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    fake = Reconciler()
    registration = Registration(va_grpc.add_VirtualAccountServiceServicer_to_server, fake, "aegis.v1.VA")
    va_server, va_port, _ = create_server([registration], "127.0.0.1", 0)
    await va_server.start()
    port = testing.free_port()
    settings = settings_for(orch_dsn, redis_url, port, AEGIS_VIRTUAL_ACCOUNT_ADDRESS=f"127.0.0.1:{va_port}")
    try:
        async with (
            orchestrator_server(settings, port=port, lead=False) as orch,
            grpc.aio.insecure_channel(orch.address) as channel,
        ):
            stub = orch_grpc.OrchestratorServiceStub(channel)
            reply = await stub.ReconcileAccount(orch_pb.ReconcileAccountRequest(account="live", dry_run=True))
            assert reply.report.account == "live" and reply.report.dry_run
            assert [(r.account, r.dry_run) for r in fake.requests] == [("live", True)]
            await va_server.stop(0)
            code, details = await code_of(stub.ReconcileAccount(orch_pb.ReconcileAccountRequest(account="live")))
            assert code == grpc.StatusCode.UNAVAILABLE and "did not answer" in details
    finally:
        await va_server.stop(0)


# --------------------------------------------------------------------------------------------- GetHeartbeat


async def test_heartbeat_answers_with_time_uptime_leader_and_version(api: orch_grpc.OrchestratorServiceStub) -> None:
    reply = await api.GetHeartbeat(orch_pb.GetHeartbeatRequest(), timeout=5)
    now = dt.datetime.now(dt.UTC).timestamp()
    assert abs(reply.server_time.seconds - now) < 5
    assert reply.uptime.ToNanoseconds() >= 0
    assert reply.leader and reply.version == aegis.__version__
