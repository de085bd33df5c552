"""The exchange's websocket killed and restarted 20 times during a replay: the feed reconnects, backfills, and the
ring ends with exactly one closed 1m kline per symbol and minute.

The simulator (``python -m aegis.sim``) replays the real recordings at x8 and keeps its replay position in a state
file, so a restarted simulator goes on where the killed one stopped, as an exchange does. Each kill is a SIGKILL
(no close frame). The feed is the real :class:`FeedEngine` (websockets, REST backfill, kline gate, ring).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from faultkit import report

from aegis import config, testing
from aegis.core import records
from aegis.core.records import MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.core.ring import attach
from aegis.feed.engine import FeedEngine

RESTARTS = 20


def start_simulator(port: int, state_file: Path, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis.sim", "--port", str(port), "--speed", "x8", "--state-file", str(state_file)],
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the first URL line: the simulator listens from here on
    return proc, time.monotonic()


async def wait_for(predicate, timeout_s: float, interval_s: float = 0.01) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval_s)
    return bool(predicate())


async def test_twenty_websocket_kills_leave_no_missing_or_duplicate_closed_candle(tmp_path: Path) -> None:
    port = testing.free_port()
    state_file = tmp_path / "sim.state"
    sim, _ = start_simulator(port, state_file, tmp_path / "sim.log")
    env = {
        "AEGIS_BINANCE_REST_URL": f"http://127.0.0.1:{port}",
        "AEGIS_BINANCE_WS_MARKET_URL": f"ws://127.0.0.1:{port}/market",
        "AEGIS_BINANCE_WS_PUBLIC_URL": f"ws://127.0.0.1:{port}/public",
        "AEGIS_SYMBOLS": "BTCUSDT,ETHUSDT",
        "AEGIS_HOME": str(tmp_path / "home"),
        "AEGIS_RING_CAPACITY": str(1 << 20),
        "AEGIS_FEED_RECONNECT_BASE_S": "0.05",
        "AEGIS_FEED_RECONNECT_CAP_S": "0.25",
        "AEGIS_FEED_IDLE_TIMEOUT_S": "5",
    }
    engine = FeedEngine(config.load(env=env))
    run = asyncio.create_task(engine.run())
    reconnect_s: list[float] = []
    started = time.monotonic()
    try:
        await asyncio.wait_for(engine.ready.wait(), 20)
        assert await wait_for(lambda: engine.pipeline is not None and engine.pipeline.frames_in > 100, 20)
        for _ in range(RESTARTS):
            await asyncio.sleep(1.0)
            sim.kill()  # kill -9: no close frame, as a crashed exchange endpoint
            sim.wait()
            before = [c.stats.connects for c in engine.state.connections]
            sim, ready_at = start_simulator(port, state_file, tmp_path / "sim.log")
            assert await wait_for(
                lambda b=before: all(c.stats.connects > n for c, n in zip(engine.state.connections, b, strict=True)),
                10,
            )
            reconnect_s.append(round(time.monotonic() - ready_at, 3))
        await asyncio.sleep(8)  # past at least one more minute boundary at x8
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
    elapsed = time.monotonic() - started

    reader = attach(
        tmp_path / "home" / "ring" / "shard-0.ring", MARKET_RECORD, layout_name=MARKET_RECORD_LAYOUT, timeout=5
    )
    batch = reader.read_batch(1 << 20)
    reader.close()
    closed = batch[(batch["kind"] == records.KLINE) & ((batch["flags"] & records.FLAG_KLINE_CLOSED) != 0)]
    assert engine.gate is not None and engine.pipeline is not None
    per_symbol = {}
    problems = []
    for symbol_id, name in ((0, "BTCUSDT"), (1, "ETHUSDT")):
        mine = closed[closed["symbol_id"] == symbol_id]
        starts = mine[records.Kline.start_time_ms]
        from_rest = int(((mine["flags"] & records.FLAG_REST) != 0).sum())
        steps = np.diff(starts)
        per_symbol[name] = {"closed": len(starts), "from_rest": from_rest}
        if len(starts) < 2 or not np.all(steps == 60_000):
            problems.append((name, starts.tolist()))
    stats = engine.pipeline.stats
    figures = report(
        f"{RESTARTS} simulator kills during a replay",
        {
            "reconnect_after_sim_back_s_max": max(reconnect_s),
            "reconnect_after_sim_back_s": reconnect_s,
            "closed_klines": per_symbol,
            "gaps_filled": engine.gate.gaps,
            "duplicates_dropped": engine.gate.duplicates,
            "backfilled": engine.gate.backfilled,
            "backfill_runs": engine.backfiller.runs if engine.backfiller else 0,
            "frames_in": stats.frames_in,
            "published": stats.published,
            "rejected": stats.rejected,
            "seconds": round(elapsed, 1),
        },
    )
    assert len(reconnect_s) == RESTARTS and max(reconnect_s) < 1.0, figures
    assert not problems, (figures, problems)  # one per minute: none missing, none twice, in time order
    assert stats.published + stats.rejected == stats.events_in, figures
