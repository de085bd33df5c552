"""Leader election with two real orchestrator processes on one database: exactly one leads; kill -9 the leader
and the other takes over within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from aegis import testing
from aegis.orchestrator.leader import LeaderElection
from aegis.storage.migrate import migrate
from aegis.storage.postgres import connect_once
from aegis.v1 import orchestrator_pb2 as orch_pb
from aegis.v1 import orchestrator_pb2_grpc as orch_grpc

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def leader_dsn(admin_dsn: str) -> Iterator[str]:
    dsn = testing.create_database_sync(admin_dsn, "aegis_orch_leader")

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


def is_leader(address: str) -> bool | None:
    with grpc.insecure_channel(address) as channel:
        try:
            return (
                orch_grpc.OrchestratorServiceStub(channel).GetHeartbeat(orch_pb.GetHeartbeatRequest(), timeout=2).leader
            )
        except grpc.RpcError:
            return None


def system_status(address: str) -> orch_pb.GetSystemStatusResponse:
    with grpc.insecure_channel(address) as channel:
        return orch_grpc.OrchestratorServiceStub(channel).GetSystemStatus(orch_pb.GetSystemStatusRequest(), timeout=15)


def test_one_leader_of_two_and_a_kill_9_hands_over(leader_dsn: str, redis_url: str, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": leader_dsn,
        "REDIS_URL": redis_url,
        "AEGIS_HOME": str(tmp_path / "home"),
        "AEGIS_ORCHESTRATOR_LEADER_RETRY_S": "0.3",
        "AEGIS_ORCHESTRATOR_RULES_INTERVAL_S": "0",
        "AEGIS_ORCHESTRATOR_UNIVERSE_INTERVAL_S": "0",
        "AEGIS_ORCHESTRATOR_RETENTION_INTERVAL_S": "0",
    }
    first = testing.ServiceProcess("orchestrator", env, log_dir=tmp_path).start()
    second = testing.ServiceProcess("orchestrator", env, log_dir=tmp_path).start()
    try:
        assert first.wait_status("SERVING", 30), first.log_text()
        assert second.wait_status("SERVING", 30), second.log_text()
        assert testing.wait_until(lambda: {is_leader(first.address), is_leader(second.address)} == {True, False}, 10)
        # ... and it stays that way: the follower keeps trying without ever getting the lock.
        for _ in range(5):
            time.sleep(0.3)
            assert {is_leader(first.address), is_leader(second.address)} == {True, False}
        leader, follower = (first, second) if is_leader(first.address) else (second, first)
        assert leader.process is not None and follower.process is not None

        seen_by_follower = system_status(follower.address)
        assert not seen_by_follower.leader
        assert seen_by_follower.leader_identity.endswith(f":{leader.process.pid}")

        leader.process.kill()  # SIGKILL: no goodbye, the kernel closes its PostgreSQL socket
        t0 = time.monotonic()
        assert testing.wait_until(lambda: is_leader(follower.address) is True, 10, 0.1), follower.log_text()
        took = time.monotonic() - t0
        assert took < 5, f"the follower took {took:.1f} s to take over"

        seen = system_status(follower.address)
        assert seen.leader and seen.leader_identity.endswith(f":{follower.process.pid}")
        assert "holds the orchestrator lock" in follower.log_text()
    finally:
        first.stop()
        second.stop()


async def test_a_leader_whose_connection_dies_steps_down_and_the_lock_is_free_again(leader_dsn: str) -> None:
    a = LeaderElection(leader_dsn, "a", retry_s=1.0)  # slower: b must win the freed lock first
    b = LeaderElection(leader_dsn, "b", retry_s=0.1)
    task_a = asyncio.create_task(a.run())
    try:
        await asyncio.wait_for(a.wait_leading(), 5)
        task_b = asyncio.create_task(b.run())
        await asyncio.sleep(0.5)
        assert a.is_leader and not b.is_leader
        # PostgreSQL ends the leader's session (as a restart or a network cut would).
        admin = await connect_once(leader_dsn)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                "aegis-orchestrator a",
            )
        finally:
            await admin.close()
        assert ended == 1
        await asyncio.wait_for(b.wait_leading(), 5)
        # The old leader noticed on its next check and stepped down; it now follows.
        await asyncio.wait_for(a.wait_following(), 5)
        assert b.is_leader and not a.is_leader
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
        await asyncio.wait_for(a.wait_leading(), 5)  # b stopped cleanly: its lock went with its session
    finally:
        task_a.cancel()
        await asyncio.gather(task_a, return_exceptions=True)
