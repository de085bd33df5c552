"""kill -9 of the feed, 10 times while frames flow from the simulator: the brain follows every new ring epoch and the
closed 1m candles downstream have no missing minute.

Real processes over loopback: the exchange simulator (``python -m aegis.sim``, the real 6-minute recordings at x4,
started as in test_feed_simulator_restarts), the feed (``python -m aegis.feed``: websockets, REST backfill, kline
gate, ring) and the brain (``python -m aegis.brain``, signals only: no execution) writing closed candles to
PostgreSQL. The feed is SIGKILLed 10 times and started again on the same port each time, 3 of them in the last
2.5 s (exchange time) of a minute, so that minute's kline closes while no feed runs (a restart takes about 0.8 s of
wall time, 3.2 s of exchange time at x4; at least one kill must span a minute boundary); each new feed process writes
a new ring epoch.

Asserted: the feed serves again after every restart; the brain never stops and sees every new writer epoch; in
PostgreSQL, per symbol, the 1m candles from the first to the last are one per minute, none missing, and every one
of them is the exchange's closed kline (``source`` 'stream' or 'rest'), none built by the brain from trades
(``not_from_the_exchange`` empty). The latter holds because a restarted feed re-opens its predecessor's ring, seeds
each symbol's last closed kline from it (``KlineGate.seed``) and backfills from there over REST on its first
connect, so the kline of a minute that closed while no feed ran (or that the killed process read but never wrote)
reaches the ring before the stream's next one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import asyncpg
import redis.asyncio
from faultkit import kill9, report, restart, start_simulator, wait_serving

from aegis import testing
from aegis.storage import keys
from aegis.storage.migrate import migrate

KILLS = 10
SYMBOLS = ("BTCUSDT", "ETHUSDT")
SPEED = "x4"  # a minute every 15 s: the default recordings (6 minutes, 23:54-24:00) last the whole test


async def test_kill_9_of_the_feed_leaves_no_gap_in_the_closed_candles_downstream(
    admin_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    dsn = await testing.create_database(admin_dsn, "aegis_faults_feed")
    sim_port = testing.free_port()
    sim = None
    procs: dict[str, testing.ServiceProcess] = {}
    cache = redis.asyncio.Redis.from_url(redis_url)
    brain_key = keys.service_status("brain", "shard-0")
    await cache.delete(brain_key)
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        sim = start_simulator(sim_port, tmp_path / "sim.state", tmp_path / "sim.log", speed=SPEED)
        env = {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "AEGIS_HOME": str(tmp_path / "home"),
            "AEGIS_SYMBOLS": ",".join(SYMBOLS),
            "AEGIS_BINANCE_REST_URL": f"http://127.0.0.1:{sim_port}",
            "AEGIS_BINANCE_WS_MARKET_URL": f"ws://127.0.0.1:{sim_port}/market",
            "AEGIS_BINANCE_WS_PUBLIC_URL": f"ws://127.0.0.1:{sim_port}/public",
            "AEGIS_RING_CAPACITY": str(1 << 18),
            "AEGIS_FEED_RECONNECT_BASE_S": "0.05",
            "AEGIS_FEED_RECONNECT_CAP_S": "0.25",
            "AEGIS_METRICS_ENABLED": "false",
            "AEGIS_BRAIN_EXECUTION": "false",
            "AEGIS_BRAIN_ATTACH_INTERVAL_S": "0.1",
            "AEGIS_BRAIN_STATUS_INTERVAL_S": "0.2",
            "AEGIS_BRAIN_WRITE_INTERVAL_S": "0.2",
        }
        procs["feed"] = testing.ServiceProcess("feed", env, log_dir=tmp_path).start()
        procs["brain"] = testing.ServiceProcess("brain", env, log_dir=tmp_path).start()
        for proc in procs.values():
            await wait_serving(proc, 60)

        async def brain_status() -> dict:
            raw = await cache.get(brain_key)
            return json.loads(raw) if raw else {}

        async def ring_of_brain() -> dict:
            return (await brain_status()).get("ring", {})

        deadline = time.monotonic() + 30
        while (await ring_of_brain()).get("records_processed", 0) < 1000 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        restart_s: list[float] = []
        across_a_minute = 0
        started = time.monotonic()
        for i in range(KILLS):
            await asyncio.sleep(1.0)  # frames flow
            if i % 3 == 1:  # 3 kills just before a minute boundary: that minute's kline closes while no feed runs
                deadline = time.monotonic() + 20
                while (await ring_of_brain()).get("last_event_time_ms", 0) % 60_000 < 57_500:
                    assert time.monotonic() < deadline, "no minute boundary within 20 s: did the replay end?"
                    await asyncio.sleep(0.05)
            before = await ring_of_brain()
            kill9(procs["feed"])
            procs["feed"] = restart(procs["feed"], tmp_path, env)
            restart_s.append(round(await wait_serving(procs["feed"], 60), 2))
            deadline = time.monotonic() + 20
            while (after := await ring_of_brain()).get("writer_epoch") == before.get("writer_epoch") or after.get(
                "last_event_time_ms", 0
            ) <= before.get("last_event_time_ms", 0):
                assert time.monotonic() < deadline, (before, after)
                await asyncio.sleep(0.05)
            if before["last_event_time_ms"] // 60_000 != after["last_event_time_ms"] // 60_000:
                across_a_minute += 1
        # past the next minute boundary of the replay, so the minute of the last kill closes and is written
        last = (await ring_of_brain())["last_event_time_ms"]
        deadline = time.monotonic() + 20
        while (await ring_of_brain())["last_event_time_ms"] < (last // 60_000 + 1) * 60_000 + 3_000:
            assert time.monotonic() < deadline, "the replay stopped before the end of the test"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - started
        status = await brain_status()
        ring = status.get("ring", {})
        rows = await conn.fetch(
            "SELECT symbol, (extract(epoch FROM open_time) * 1000)::bigint AS open_ms, source FROM candles "
            "WHERE timeframe = '1m' ORDER BY symbol, open_time"
        )
        brain_alive = procs["brain"].process is not None and procs["brain"].process.poll() is None
        feed_alive = procs["feed"].process is not None and procs["feed"].process.poll() is None
        logs = "\n".join(f"--- {p.service}\n{p.log_text()[-2500:]}" for p in procs.values())
        await conn.close()
    finally:
        await cache.aclose()
        for proc in procs.values():
            proc.stop()
        if sim is not None:
            sim.send_signal(signal.SIGTERM)
            sim.wait(10)
        await testing.drop_database(admin_dsn, dsn)

    per_symbol = {}
    for symbol in SYMBOLS:
        mine = [r for r in rows if r["symbol"] == symbol]
        minutes = [r["open_ms"] for r in mine]
        sources: dict[str, int] = {}
        for r in mine:
            sources[r["source"]] = sources.get(r["source"], 0) + 1
        missing = sorted(set(range(minutes[0], minutes[-1] + 1, 60_000)) - set(minutes)) if minutes else []
        exchange = [r["open_ms"] for r in mine if r["source"] in ("stream", "rest")]
        # a last minute the brain closed from trades may still wait for its kline: only minutes up to the newest
        # exchange kline count
        not_exchange = [
            r["open_ms"]
            for r in mine
            if r["source"] not in ("stream", "rest") and r["open_ms"] < max(exchange, default=0)
        ]
        per_symbol[symbol] = {
            "minutes": len(minutes),
            "first": minutes[0] if minutes else None,
            "last": minutes[-1] if minutes else None,
            "by_source": sources,
            "missing": missing,
            "not_from_the_exchange": not_exchange,
        }
    candles = status.get("candles", {})
    figures = report(
        f"kill -9 feed x{KILLS} while the simulator streams",
        {
            "candles_1m": per_symbol,
            "brain_closed": candles.get("candles_closed"),
            "brain_corrected": candles.get("candles_corrected"),
            "brain_epoch_changes": ring.get("epoch_changes"),
            "brain_writer_epoch": ring.get("writer_epoch"),
            "brain_resyncs": ring.get("resyncs"),
            "brain_records": ring.get("records_processed"),
            "kills_across_a_minute_boundary": across_a_minute,
            "restart_to_serving_s": restart_s,
            "seconds": round(elapsed, 1),
        },
    )
    assert len(restart_s) == KILLS and brain_alive and feed_alive, (figures, logs)
    assert ring.get("epoch_changes", 0) >= KILLS, (figures, ring)  # the brain followed every new feed
    assert all(v["minutes"] >= 5 for v in per_symbol.values()) and across_a_minute >= 1, figures
    missing = {k: v["missing"] for k, v in per_symbol.items() if v["missing"]}
    assert not missing, (figures, missing)
    not_exchange = {k: v["not_from_the_exchange"] for k, v in per_symbol.items() if v["not_from_the_exchange"]}
    assert not not_exchange, (figures, not_exchange, logs)
