"""kill -9 of the brain, 10 times while it executes signals: no signal lost, orphaned or doubled on an account.

The set-up is the decision path as it runs in production, each service its own process: the test writes the real
ETHUSDT 1m klines (2025-06, a trade and a mark price at each close, then the closed kline) into a real ring at a
steady pace, as the feed would, pausing 0.3 s before each kline that closes a signal (the offline strategy says
which); the brain (loose rules: 1m trigger, no zone, no cooldown, stale candles not withheld) turns the signals
into orders through the real RiskService and the real VirtualAccountService (PostgreSQL; open-notional cap off so
learning takes every signal of the month). Meanwhile the brain is SIGKILLed 10 times and started again each time,
with 1.5 s of live candles after each restart.

Asserted: every restart serves again; no signal has more than one position on any account; every position's
idempotency key is ``<signal id>:<account>``; the brain stored and executed signals between the kills; and the
brain's transactional outbox (execution.py, "stored first") holds:

* ``lost_to_kill == 0`` — every stored signal has a learning position, unless VirtualAccountService refused its
  open (``refused``: the failed orders the brains report in their status, e.g. INVALID_ARGUMENT when the signal's
  stop is on the wrong side of the price virtual-account fills at — nothing to do with the kill; counted and
  reported). A signal stored just before a kill and not yet opened is executed by the restarted brain's resume.
* ``orphans == 0`` — no position whose signal has no ``signals`` row: a signal is executed only once its row is
  committed.

Counted, not asserted: ``signals_stored`` against ``signals_offline``: candles that close while the brain is down
or warming up emit nothing (by design: a restarted brain does not trade the past), so fewer signals than offline.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import asyncpg
import numpy as np
import redis.asyncio
from faultkit import kill9, report, restart, wait_serving

from aegis import testing
from aegis.core import records as rec
from aegis.core import ring
from aegis.risk.testing import store_rules_files
from aegis.storage import keys
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_tracing import SYMBOL, execution_env, kline_records, loose_signals, stamped

EXCHANGE_INFO = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"
KILLS = 10
LAST_KLINE = 14398  # the whole month: 35 signals under the loose rules
WRITE_S = 30.0  # the klines are written over about this long (plus the pauses), while the kills happen
CHUNK = 300
SIGNAL_PAUSE_S = 0.3
COUNTED = (
    "signals",
    "resumed",
    "unstored",
    "learning_opened",
    "learning_replayed",
    "learning_refused",
    "paper_opened",
    "paper_refused",
)


async def test_kill_9_of_the_brain_loses_and_doubles_no_position(
    admin_dsn: str, redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    records = kline_records(shared_data, LAST_KLINE)
    offline = offline_signals(records)
    assert len(offline) >= 30, offline
    kline_opens = _open_times(records)
    trigger_klines = [kline_opens.index(t) for t in offline.values()]
    signal_cuts = {3 * k + 2 for k in trigger_klines}
    dsn = await testing.create_database(admin_dsn, "aegis_faults_brain")
    procs: dict[str, testing.ServiceProcess] = {}
    writer = None
    cache = redis.asyncio.Redis.from_url(redis_url)
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        db = Database(dsn)
        await store_rules_files(db, None, shared_data / EXCHANGE_INFO, shared_data / TIERS)
        await db.close()
        ring_path = tmp_path / "shm" / "shard-0.ring"
        va_port, risk_port = testing.free_port(), testing.free_port()
        env, brain_env = execution_env(
            dsn,
            redis_url,
            tmp_path,
            ring_path,
            va_port,
            risk_port,
            AEGIS_RISK_MAX_OPEN_NOTIONAL_MULTIPLE="0",  # learning takes every signal of the month
        )
        # a signal's created time is its candle's close (2025-06 here): resume the recorded month's signals too
        brain_env["AEGIS_BRAIN_RESUME_WINDOW_S"] = "1000000000"
        procs["virtual_account"] = testing.ServiceProcess(
            "virtual_account", env, port=va_port, log_dir=tmp_path
        ).start()
        procs["risk"] = testing.ServiceProcess("risk", env, port=risk_port, log_dir=tmp_path).start()
        procs["brain"] = testing.ServiceProcess("brain", brain_env, log_dir=tmp_path).start()
        for proc in procs.values():
            await wait_serving(proc, 60)
        ring_path.parent.mkdir(parents=True)
        writer = ring.create(ring_path, rec.MARKET_RECORD, 1 << 16, layout_name=rec.MARKET_RECORD_LAYOUT)
        assert writer.add_symbol(SYMBOL) == 0
        restart_s: list[float] = []
        written_at_kill: list[int] = []
        written = 0

        async def write() -> None:
            # steady chunks, and a pause before each signal's closing kline (as in test_tracing): virtual-account
            # fills at the last price the brain pushed to it, and the signal's stop comes from that candle's close
            nonlocal written
            cuts = sorted({*range(0, len(records), CHUNK), *(3 * k + 2 for k in trigger_klines), len(records)})
            pause = WRITE_S / (len(records) / CHUNK)
            for start, end in itertools.pairwise(cuts):
                for record in records[start:end]:
                    writer.write_bytes(stamped(record))
                written = end
                await asyncio.sleep(SIGNAL_PAUSE_S if end in signal_cuts else pause)

        async def killer() -> None:
            await asyncio.sleep(1.5)
            for _ in range(KILLS):
                written_at_kill.append(min(written, len(records)) // 3)
                executions.append(await execution_counts())  # what this brain reported last (0.2 s old at most)
                kill9(procs["brain"])
                procs["brain"] = restart(procs["brain"], tmp_path, brain_env)
                restart_s.append(round(await wait_serving(procs["brain"], 60), 2))
                await asyncio.sleep(1.5)  # the restarted brain warms up, then executes the signals of new candles

        async def execution_counts() -> dict[str, int]:
            raw = await cache.get(keys.service_status("brain", "shard-0"))
            execution = json.loads(raw).get("execution", {}) if raw else {}
            for signal_id, account, code in execution.get("failed_orders", []):
                if account == "learning":
                    refused[signal_id] = code
            out = {k: v for k, v in execution.items() if k in COUNTED and v}
            for rpc, calls in execution.get("rpcs", {}).items():
                if rpc.endswith("OpenPosition"):
                    out |= {f"open_failed_{code}": n for code, n in calls["failed"].items()}
            return out

        executions: list[dict[str, int]] = []
        refused: dict[str, str] = {}  # signal id -> the status code a learning open failed with
        started = time.monotonic()
        await asyncio.gather(write(), killer())

        async def without_learning_position() -> int:
            return await conn.fetchval(
                "SELECT count(*) FROM signals s WHERE NOT EXISTS "
                "(SELECT 1 FROM positions p WHERE p.account_id = 'learning' AND p.signal_id = s.signal_id)"
            )

        deadline, last, steady_since = time.monotonic() + 20, -1, time.monotonic()
        while (waiting := await without_learning_position()) and time.monotonic() < deadline:
            if waiting != last:
                last, steady_since = waiting, time.monotonic()
            elif time.monotonic() - steady_since > 3.0:
                break  # the brain is done with these (see lost below)
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything still in flight lands (it must not add a position)
        elapsed = time.monotonic() - started
        rows = await conn.fetch("SELECT account_id, signal_id::text AS signal_id, idempotency_key FROM positions")
        stored = {r["signal_id"] for r in await conn.fetch("SELECT signal_id::text AS signal_id FROM signals")}
        await asyncio.sleep(0.5)  # one more status of the last brain
        executions.append(await execution_counts())
        brain_alive = procs["brain"].process is not None and procs["brain"].process.poll() is None
        brain_log = procs["brain"].log_text()
        await conn.close()
    finally:
        if writer is not None:
            writer.close()
        await cache.aclose()
        for proc in procs.values():
            proc.stop()
        await testing.drop_database(admin_dsn, dsn)

    per_account: dict[str, dict[str, int]] = {"learning": {}, "paper": {}}
    wrong_key = []
    for r in rows:
        counts = per_account.setdefault(r["account_id"], {})
        counts[r["signal_id"]] = counts.get(r["signal_id"], 0) + 1
        if r["idempotency_key"] != f"{r['signal_id']}:{r['account_id']}":
            wrong_key.append(dict(r))
    learning, paper = per_account["learning"], per_account["paper"]
    lost = sorted(stored - set(learning))
    lost_to_kill = sorted(set(lost) - set(refused))
    doubled = {s: n for acc in per_account.values() for s, n in acc.items() if n > 1}
    orphans = sorted({s for acc in per_account.values() for s in acc} - stored)
    figures = report(
        f"kill -9 brain x{KILLS} while it executes signals",
        {
            "klines": len(records) // 3,
            "signals_offline": len(offline),
            "signals_stored": len(stored),
            "stored_and_offline": len(stored & set(offline)),
            "learning_positions": sum(learning.values()),
            "paper_positions": sum(paper.values()),
            "lost": len(lost),
            "lost_refused_by_virtual_account": {s: refused[s] for s in lost if s in refused},
            "lost_to_kill": len(lost_to_kill),
            "doubled": len(doubled),
            "orphans": len(orphans),
            "klines_written_at_each_kill": written_at_kill,
            "restart_to_serving_s": restart_s,
            "execution_per_brain": executions,
            "execution": {k: sum(e.get(k, 0) for e in executions) for k in sorted({k for e in executions for k in e})},
            "seconds": round(elapsed, 1),
        },
    )
    assert len(restart_s) == KILLS and brain_alive, (figures, brain_log[-3000:])
    assert written_at_kill[-1] < len(records) // 3, figures  # every kill came while klines were still flowing
    report("kill -9 brain: lost and orphan signal ids", {"lost": lost, "orphans": orphans})
    assert not doubled and not wrong_key, (figures, doubled, wrong_key)
    assert not lost_to_kill and not orphans, (figures, lost_to_kill, orphans)
    assert len(stored) >= 8 and sum(learning.values()) >= 8, figures


def offline_signals(records: list[bytes]) -> dict[str, int]:
    """The signals the strategy makes on ``records`` under the loose rules, computed without the brain: their ids
    and the open times of their candles."""
    return {s.signal_id: s.candle_open_time_ms for s in loose_signals(records)}


def _open_times(records: list[bytes]) -> list[int]:
    """The open time (Unix ms) of each kline, from the closed kline records (every third record)."""
    return (np.frombuffer(b"".join(records[2::3]), dtype=rec.MARKET_RECORD)["event_time_ms"] - 60_000).tolist()
