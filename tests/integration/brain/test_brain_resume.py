"""The brain's resume at start: a stored signal without a learning position is executed, exactly once.

A brain killed between committing a signal's row and opening its position leaves exactly that behind (the outbox
order of execution.py: row first, then the orders). Here the test plays the killed brain: it stores real signals
(the loose rules on the real ETHUSDT 1m klines of 2025-06, computed offline) with the brain's own SignalWriter and
writes their klines into a real ring, then starts the brain as its own process beside the real RiskService and
VirtualAccountService (PostgreSQL). The ring's candles close before the brain's warm-up and emit nothing, so only
the resume can open those signals.

1. Signal A stored, brain started: A gets one learning position, key ``<A>:learning``; the brain reports
   ``resumed == 1``.
2. Brain SIGKILLed; signal B stored and its klines written; brain started again: it resumes B only (A has its
   position), so ``resumed == 1`` again, and A and B each have exactly one learning position.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import redis.asyncio

from aegis import testing
from aegis.brain.signals import SignalWriter
from aegis.brain.strategy import Signal
from aegis.core import records as rec
from aegis.core import ring
from aegis.risk.testing import store_rules_files
from aegis.storage import keys
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_tracing import EXCHANGE_INFO, SYMBOL, TIERS, execution_env, kline_records, loose_signals, stamped

LAST_KLINE = 3450  # the loose rules find signals at klines 2047, 3423 and 3443


async def test_stored_signal_without_a_position_is_executed_once_at_start(
    admin_dsn: str, redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    records = kline_records(shared_data, LAST_KLINE)
    signals = loose_signals(records)
    assert len(signals) >= 2, signals
    a, b = signals[0], signals[1]
    opens = (np.frombuffer(b"".join(records[2::3]), dtype=rec.MARKET_RECORD)["event_time_ms"] - 60_000).tolist()
    end_a, end_b = 3 * opens.index(a.candle_open_time_ms) + 3, 3 * opens.index(b.candle_open_time_ms) + 3
    dsn = await testing.create_database(admin_dsn, "aegis_brain_resume")
    procs: dict[str, testing.ServiceProcess] = {}
    writer = None
    cache = redis.asyncio.Redis.from_url(redis_url)
    db = Database(dsn)
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await store_rules_files(db, None, shared_data / EXCHANGE_INFO, shared_data / TIERS)
        ring_path = tmp_path / "shm" / "shard-0.ring"
        ring_path.parent.mkdir(parents=True)
        writer = ring.create(ring_path, rec.MARKET_RECORD, 1 << 16, layout_name=rec.MARKET_RECORD_LAYOUT)
        assert writer.add_symbol(SYMBOL) == 0
        va_port, risk_port = testing.free_port(), testing.free_port()
        env, brain_env = execution_env(dsn, redis_url, tmp_path, ring_path, va_port, risk_port)
        # a signal's created time is its candle's close (2025-06): the window must reach back that far
        brain_env["AEGIS_BRAIN_RESUME_WINDOW_S"] = "1000000000"
        procs["virtual_account"] = testing.ServiceProcess(
            "virtual_account", env, port=va_port, log_dir=tmp_path
        ).start()
        procs["risk"] = testing.ServiceProcess("risk", env, port=risk_port, log_dir=tmp_path).start()
        for proc in procs.values():
            assert await asyncio.to_thread(proc.wait_status, "SERVING", 60), proc.log_text()[-3000:]

        async def store(signal: Signal, upto: int, start: int = 0) -> None:
            """What the killed brain left: the signal's row committed, its klines in the ring, no position."""
            for record in records[start:upto]:
                writer.write_bytes(stamped(record))
            signal_writer = SignalWriter(db)
            signal_writer.submit(signal)
            assert await signal_writer.flush(10) and signal_writer.rows_written == 1

        async def brain() -> tuple[testing.ServiceProcess, dict[str, Any]]:
            """Start the brain; return it and its execution status once it has resumed and is idle."""
            proc = testing.ServiceProcess("brain", brain_env, log_dir=tmp_path).start()
            assert await asyncio.to_thread(proc.wait_status, "SERVING", 60), proc.log_text()[-3000:]
            assert proc.process is not None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                raw = await cache.get(keys.service_status("brain", "shard-0"))
                status = json.loads(raw) if raw else {}
                execution = status.get("execution", {})
                if (
                    status.get("pid") == proc.process.pid
                    and execution.get("resumed")
                    and execution.get("learning_opened", 0) + execution.get("learning_replayed", 0)
                    >= execution["resumed"]
                ):
                    return proc, execution
                await asyncio.sleep(0.2)
            raise AssertionError(f"the brain resumed nothing: {status}\n{proc.log_text()[-3000:]}")

        async def learning_positions() -> dict[str, list[str]]:
            rows = await conn.fetch(
                "SELECT signal_id::text AS s, idempotency_key FROM positions WHERE account_id = 'learning'"
            )
            out: dict[str, list[str]] = {}
            for r in rows:
                out.setdefault(r["s"], []).append(r["idempotency_key"])
            return out

        await store(a, end_a)
        procs["brain"], first = await brain()
        assert first["resumed"] == 1 and first["learning_opened"] == 1, first
        assert await learning_positions() == {a.signal_id: [f"{a.signal_id}:learning"]}

        procs["brain"].process.kill()  # type: ignore[union-attr]
        procs["brain"].process.wait(10)  # type: ignore[union-attr]
        await store(b, end_b, start=end_a)
        procs["brain"], second = await brain()
        await asyncio.sleep(1.0)  # anything else the brain would (wrongly) execute lands
        assert second["resumed"] == 1 and second["learning_opened"] == 1, second
        assert await learning_positions() == {
            a.signal_id: [f"{a.signal_id}:learning"],
            b.signal_id: [f"{b.signal_id}:learning"],
        }
        await conn.close()
    finally:
        if writer is not None:
            writer.close()
        for proc in procs.values():
            proc.stop()
        await cache.delete(keys.service_status("brain", "shard-0"))  # later tests read this key: leave none of ours
        await cache.aclose()
        await db.close()
        await testing.drop_database(admin_dsn, dsn)
