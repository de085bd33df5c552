"""PostgreSQL restarted mid-run, Redis down: services say NOT_SERVING, calls fail as UNAVAILABLE, then recover.

Each dependency is an embedded server on a free port owned by the test (aegis.embedded), so stopping it touches
nothing else.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from asyncio.subprocess import PIPE, STDOUT
from collections import Counter
from pathlib import Path

import asyncpg
import grpc
from faultkit import CHANNEL_OPTIONS, Retrier, report, wait_serving

from aegis import testing
from aegis.embedded import EmbeddedPostgres, EmbeddedRedis
from aegis.storage.migrate import migrate
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc


async def wait_status(proc: testing.ServiceProcess, wanted: str, timeout_s: float) -> float | None:
    started = time.monotonic()
    ok = await asyncio.to_thread(proc.wait_status, wanted, timeout_s)
    return round(time.monotonic() - started, 2) if ok else None


async def pg_ctl(pg: EmbeddedPostgres, action: str) -> None:
    """Start or stop ``pg`` from a fresh interpreter, not by forking this one.

    As root, EmbeddedPostgres runs pg_ctl as the postgres user, which makes subprocess fork (no vfork) and run the
    fork handlers of this process's gRPC threads: the child has crashed there (a segfault before exec), so PostgreSQL
    was never stopped. A fresh interpreter has no gRPC threads to fork.
    """
    code = (
        "import pathlib, sys; from aegis.embedded import EmbeddedPostgres; "
        f"EmbeddedPostgres(pathlib.Path(sys.argv[1]), int(sys.argv[2])).{action}_detached()"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(pg.home), str(pg.port), stdout=PIPE, stderr=STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"pg_ctl {action}: {out.decode(errors='replace')}"


async def test_postgres_restarted_mid_run_loses_no_trade(redis_url: str, tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", testing.free_port())
    await asyncio.to_thread(pg.start_detached)
    try:
        dsn = pg.dsn()
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        env = {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "AEGIS_HOME": str(tmp_path / "home"),
            "AEGIS_METRICS_ENABLED": "false",
        }
        proc = testing.ServiceProcess("virtual_account", env, log_dir=tmp_path).start()
        await wait_serving(proc)
        run = uuid.uuid4().hex[:8]
        call = Retrier(deadline_s=120)
        first_errors: Counter[str] = Counter()
        done: dict[int, str] = {}
        stop = asyncio.Event()
        figures: dict[str, object] = {}

        async def client(worker: int, va: va_grpc.VirtualAccountServiceStub) -> None:
            i = worker
            while not stop.is_set():
                request = va_pb.OpenPositionRequest(
                    idempotency_key=f"{run}-{i}", account="learning", symbol="PGFAULTUSDT",
                    side=common_pb.POSITION_SIDE_LONG, quantity="0.01", entry_price="100", leverage=2,
                )  # fmt: skip
                try:
                    opened = await va.OpenPosition(request, timeout=3)
                except grpc.aio.AioRpcError as exc:
                    first_errors[exc.code().name] += 1
                    opened = await call("OpenPosition", va.OpenPosition, request)  # the same key again
                closing = va_pb.ClosePositionRequest(
                    idempotency_key=f"{run}-{i}-close", account="learning", position_id=opened.position.position_id,
                    price="101",
                )  # fmt: skip
                await call("ClosePosition", va.ClosePosition, closing)
                done[i] = opened.position.position_id
                i += 3
                await asyncio.sleep(0.01)

        async def outage() -> None:
            await asyncio.sleep(1.5)
            before = len(done)
            down_at = time.monotonic()
            await pg_ctl(pg, "stop")
            figures["not_serving_after_s"] = await wait_status(proc, "NOT_SERVING", 15)
            await asyncio.sleep(2.0)
            await pg_ctl(pg, "start")
            figures["serving_again_after_s"] = await wait_status(proc, "SERVING", 30)
            figures["outage_s"] = round(time.monotonic() - down_at, 1)
            figures["trades_before_outage"] = before
            await asyncio.sleep(1.5)
            stop.set()

        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as channel:
            va = va_grpc.VirtualAccountServiceStub(channel)
            await asyncio.gather(outage(), *(client(w, va) for w in range(3)))
        proc.stop()

        conn = await asyncpg.connect(dsn)
        rows = await conn.fetch(
            "SELECT idempotency_key, position_id::text, status FROM positions WHERE idempotency_key LIKE $1", f"{run}-%"
        )
        ledger = await conn.fetchrow(
            "SELECT wallet_balance, starting_balance + realised_pnl - fees + funding AS identity, "
            "(SELECT sum(amount) FROM balance_ledger WHERE account_id = 'learning') AS ledger "
            "FROM accounts WHERE account_id = 'learning'"
        )
        await conn.close()
    finally:
        await pg_ctl(pg, "stop")

    in_db = {r["idempotency_key"]: r["position_id"] for r in rows}
    lost = [i for i, pid in done.items() if in_db.get(f"{run}-{i}") != pid]
    text = report(
        "PostgreSQL restarted mid-run",
        {
            **figures,
            "trades": len(done),
            "positions_in_db": len(rows),
            "lost_or_changed": len(lost),
            "first_attempt_errors": dict(first_errors),
            "retries": dict(call.retries),
        },
    )
    assert figures.get("not_serving_after_s") is not None and figures.get("serving_again_after_s") is not None, text
    assert first_errors.get("UNAVAILABLE", 0) + call.retries.total() > 0, text  # the outage was felt
    assert len(done) > figures["trades_before_outage"], text  # trades flowed again after it
    assert not lost and len(rows) == len(done) and all(r["status"] == "CLOSED" for r in rows), text
    assert ledger["wallet_balance"] == ledger["identity"] == ledger["ledger"], (text, dict(ledger))
    # Every failure during the outage is one a client retries: PostgreSQL's shutdown errors (a lost connection,
    # asyncpg's InternalClientError, the server's FATAL 57P01 to a query in flight) map to UNAVAILABLE in
    # aegis.storage.postgres, never to UNKNOWN.
    unexpected = set(first_errors) - {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert not unexpected, text


async def test_redis_down_turns_services_not_serving_and_they_recover(
    migrated_database_url: str, tmp_path: Path
) -> None:
    rd = EmbeddedRedis(tmp_path / "redis", testing.free_port())
    await asyncio.to_thread(rd.start_detached)
    procs: list[testing.ServiceProcess] = []
    try:
        env = {
            "DATABASE_URL": migrated_database_url,
            "REDIS_URL": rd.url(),
            "AEGIS_HOME": str(tmp_path / "home"),
            "AEGIS_RISK_FETCH_RULES": "false",
            "AEGIS_METRICS_ENABLED": "false",
        }
        services = ("risk", "virtual_account", "trainer")
        procs = [testing.ServiceProcess(name, env, log_dir=tmp_path).start() for name in services]
        for proc in procs:
            await wait_serving(proc)
        await asyncio.to_thread(rd.stop_detached)
        down = await asyncio.gather(*(wait_status(p, "NOT_SERVING", 15) for p in procs))
        # While Redis is down the API still answers what needs only PostgreSQL: degraded, not dead.
        async with grpc.aio.insecure_channel(procs[1].address) as channel:
            account = await va_grpc.VirtualAccountServiceStub(channel).GetAccount(
                va_pb.GetAccountRequest(account="learning"), timeout=5
            )
        await asyncio.sleep(1.0)
        await asyncio.to_thread(rd.start_detached)
        up = await asyncio.gather(*(wait_status(p, "SERVING", 30) for p in procs))
        alive = [p.process.poll() is None for p in procs if p.process is not None]
    finally:
        for proc in procs:
            proc.stop()
        await asyncio.to_thread(rd.stop_detached)
    text = report(
        "Redis down",
        {
            "services": list(services),
            "not_serving_after_s": down,
            "serving_again_after_s": up,
            "answered_while_down": account.account.name == "learning",
            "processes_alive": alive,
        },
    )
    assert all(s is not None for s in down) and all(s is not None for s in up) and all(alive), text
