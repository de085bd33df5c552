"""Shard management through the Kubernetes API, against a local stand-in for the API server (bearer token and
request shapes checked), and no Kubernetes call at all outside a cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from aegis import config, testing
from aegis.orchestrator import exchange, kube
from aegis.orchestrator.testing import FakeKubeApi, orchestrator_server
from aegis.sim import Simulator
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.v1 import orchestrator_pb2 as orch_pb
from aegis.v1 import orchestrator_pb2_grpc as orch_grpc

pytestmark = pytest.mark.timeout(120)

NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"


@pytest.fixture
def dsn(admin_dsn: str) -> Iterator[str]:
    name = testing.create_database_sync(admin_dsn, "aegis_orch_kube")

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
async def api() -> AsyncIterator[FakeKubeApi]:
    async with FakeKubeApi(replicas=1) as fake:
        fake.extra_pods.append(fake._pod("aegis-orchestrator-5d8f9c7b6-x2x9q", "orchestrator"))
        yield fake


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("test-token\n")
    return path


def kube_env(api: FakeKubeApi, token_file: Path, **extra: str) -> dict[str, str]:
    return {
        "AEGIS_ORCHESTRATOR_KUBE_API_URL": api.url,
        "AEGIS_ORCHESTRATOR_KUBE_TOKEN_FILE": str(token_file),
        "AEGIS_ORCHESTRATOR_KUBE_NAMESPACE": "aegis",
        "AEGIS_ORCHESTRATOR_FEED_BRAIN_STATEFULSET": "aegis-feed-brain",
        "AEGIS_SHARD_SIZE": "3",
        **extra,
    }


def patches(api: FakeKubeApi) -> list[tuple[str, Any]]:
    return [(r["content_type"], json.loads(r["body"])) for r in api.requests if r["method"] == "PATCH"]


async def test_the_statefulset_follows_the_universe_up_and_down(
    dsn: str, api: FakeKubeApi, token_file: Path, shared_data: Path
) -> None:
    info = json.loads((shared_data / NOV).read_text())
    db = Database(dsn)

    async def refresh(count: int, dry_run: bool = False, **extra: str) -> exchange.UniverseOutcome:
        env = kube_env(api, token_file, AEGIS_SYMBOL_COUNT=str(count), **extra)
        settings = config.load(env={"DATABASE_URL": dsn, **env})
        target = kube.target_from(settings, env={})
        assert target is not None and not target.in_cluster
        client = kube.KubeClient(target)
        try:
            return await exchange.refresh_universe(settings, db, client, dry_run=dry_run, exchange_info=info)
        finally:
            await client.close()

    try:
        grown = await refresh(7)  # 7 symbols in shards of 3: 3 shards
        assert grown.scale is not None and (grown.scale.before, grown.scale.after) == (1, 3)
        assert api.replicas == 3
        assert patches(api) == [("application/merge-patch+json", {"spec": {"replicas": 3}})]
        assert "aegis-feed-brain scaled from 1 to 3" in grown.summary

        same = await refresh(9)  # still 3 shards: read, no patch
        assert same.scale is not None and not same.scale.changed and len(patches(api)) == 1

        would = await refresh(13, dry_run=True)  # 5 shards, but a dry run only reads
        assert would.scale is not None and (would.scale.before, would.scale.after) == (3, 5)
        assert api.replicas == 3 and len(patches(api)) == 1

        shrunk = await refresh(4)  # 2 shards
        assert shrunk.scale is not None and (shrunk.scale.before, shrunk.scale.after) == (3, 2)
        assert api.replicas == 2
        assert patches(api)[-1] == ("application/merge-patch+json", {"spec": {"replicas": 2}})

        capped = await refresh(30, AEGIS_ORCHESTRATOR_MAX_SHARDS="4")  # 10 shards wanted, at most 4
        assert capped.scale is not None and capped.scale.after == 4 and api.replicas == 4
        assert not api.refused
        assert all(r["query"] == {} for r in api.requests)  # the scale calls carry no stray parameters
    finally:
        await db.close()


async def test_system_status_reports_pods_and_the_pod_of_each_shard(
    dsn: str, redis_url: str, api: FakeKubeApi, token_file: Path
) -> None:
    api.replicas = 2
    port = testing.free_port()
    env = {"DATABASE_URL": dsn, "REDIS_URL": redis_url, "AEGIS_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{port}"}
    conn = await connect_once(dsn)
    try:
        await conn.execute(
            "INSERT INTO symbols (symbol, status, contract_type, base_asset, quote_asset, shard, active) VALUES "
            "('BTCUSDT', 'TRADING', 'PERPETUAL', 'BTC', 'USDT', 0, true), "
            "('ETHUSDT', 'TRADING', 'PERPETUAL', 'ETH', 'USDT', 1, true)"
        )
    finally:
        await conn.close()
    settings = config.load(env={**env, **kube_env(api, token_file)})
    async with orchestrator_server(settings, port=port) as orch, grpc.aio.insecure_channel(orch.address) as channel:
        reply = await orch_grpc.OrchestratorServiceStub(channel).GetSystemStatus(
            orch_pb.GetSystemStatusRequest(), timeout=15
        )
    assert reply.in_cluster
    pods = {p.name: p for p in reply.pods}
    assert set(pods) == {"aegis-feed-brain-0", "aegis-feed-brain-1", "aegis-orchestrator-5d8f9c7b6-x2x9q"}
    first = pods["aegis-feed-brain-0"]
    assert first.phase == "Running" and first.ready and first.restarts == 1 and first.node == "node-1"
    assert first.shard_index == 0 and first.start_time.seconds > 0
    assert pods["aegis-feed-brain-1"].shard_index == 1
    assert pods["aegis-orchestrator-5d8f9c7b6-x2x9q"].shard_index == -1
    assert {s.shard_index: s.pod for s in reply.shards} == {0: "aegis-feed-brain-0", 1: "aegis-feed-brain-1"}
    listed = [r for r in api.requests if r["path"] == "/api/v1/namespaces/aegis/pods"]
    assert listed and listed[0]["query"] == {"labelSelector": "app.kubernetes.io/part-of=aegis"}


async def test_a_wrong_token_is_refused_and_reported(
    dsn: str, redis_url: str, sim: Simulator, api: FakeKubeApi, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    port = testing.free_port()
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_BINANCE_REST_URL": sim.rest_url,
        "AEGIS_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{port}",
        **kube_env(api, wrong),
    }
    async with (
        orchestrator_server(config.load(env=env), port=port) as orch,
        grpc.aio.insecure_channel(orch.address) as channel,
    ):
        stub = orch_grpc.OrchestratorServiceStub(channel)
        await asyncio.wait_for(orch.parts.election.wait_leading(), 5)
        status = await stub.GetSystemStatus(orch_pb.GetSystemStatusRequest(), timeout=15)
        assert status.in_cluster and not status.pods  # the API refused: no pods rather than made-up ones
        task = [orch_pb.MAINTENANCE_TASK_REFRESH_UNIVERSE]
        reply = await stub.RunMaintenance(orch_pb.RunMaintenanceRequest(tasks=task), timeout=60)
    result = reply.results[0]
    assert result.status == orch_pb.MAINTENANCE_TASK_STATUS_FAILED
    assert "HTTP 401" in result.error
    assert api.refused and all("bearer token" in why for why in api.refused)
    assert api.replicas == 1


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=None) as simulator:
        yield simulator


async def test_rebalance_over_grpc_sizes_the_statefulset(
    dsn: str, redis_url: str, sim: Simulator, api: FakeKubeApi, token_file: Path
) -> None:
    async def run(count: int, task: int) -> orch_pb.MaintenanceTaskResult:
        port = testing.free_port()
        env = {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "AEGIS_BINANCE_REST_URL": sim.rest_url,
            "AEGIS_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{port}",
            **kube_env(api, token_file, AEGIS_SYMBOL_COUNT=str(count)),
        }
        async with (
            orchestrator_server(config.load(env=env), port=port) as orch,
            grpc.aio.insecure_channel(orch.address) as channel,
        ):
            await asyncio.wait_for(orch.parts.election.wait_leading(), 5)
            reply = await orch_grpc.OrchestratorServiceStub(channel).RunMaintenance(
                orch_pb.RunMaintenanceRequest(tasks=[task]), timeout=60
            )
        return reply.results[0]

    grown = await run(12, orch_pb.MAINTENANCE_TASK_REFRESH_UNIVERSE)
    assert grown.status == orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED, grown
    assert api.replicas == 4 and "scaled from 1 to 4" in grown.summary
    rebalanced = await run(5, orch_pb.MAINTENANCE_TASK_REBALANCE_SHARDS)
    assert rebalanced.status == orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED, rebalanced
    assert api.replicas == 2 and rebalanced.items_affected == 7  # 7 symbols left the universe
    assert rebalanced.summary.startswith("shard layout: universe follows 5 symbols in 2 shards")


async def test_outside_a_cluster_there_is_no_kubernetes_call(
    dsn: str, redis_url: str, sim: Simulator, api: FakeKubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    port = testing.free_port()
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_BINANCE_REST_URL": sim.rest_url,
        "AEGIS_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{port}",
        "AEGIS_SYMBOL_COUNT": "9",
    }
    settings = config.load(env=env)
    assert kube.target_from(settings) is None
    async with orchestrator_server(settings, port=port) as orch, grpc.aio.insecure_channel(orch.address) as channel:
        stub = orch_grpc.OrchestratorServiceStub(channel)
        await asyncio.wait_for(orch.parts.election.wait_leading(), 5)
        status = await stub.GetSystemStatus(orch_pb.GetSystemStatusRequest(), timeout=15)
        assert not status.in_cluster and not status.pods
        task = [orch_pb.MAINTENANCE_TASK_REFRESH_UNIVERSE]
        reply = await stub.RunMaintenance(orch_pb.RunMaintenanceRequest(tasks=task), timeout=60)
    assert reply.results[0].status == orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED
    assert "not in a Kubernetes cluster" in reply.results[0].summary
    assert api.requests == []
