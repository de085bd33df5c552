"""The live feed against the Binance-compatible simulator on loopback, fed with the real recordings."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aegis import config, testing
from aegis.core import records
from aegis.core.records import MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.core.ring import RingWriter, attach
from aegis.feed.connection import StreamConnection
from aegis.feed.engine import FeedEngine
from aegis.feed.pipeline import FramePipeline
from aegis.feed.streams import ConnectionPlan
from aegis.sim.server import Simulator

RECORDED_STREAMS = {
    "market": ["btcusdt@trade", "ethusdt@trade"],
    "public": ["btcusdt@bookTicker", "ethusdt@bookTicker", "btcusdt@depth@0ms", "ethusdt@depth@0ms"],
}


async def wait_for(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval_s)
    return bool(predicate())


async def test_every_recorded_frame_sent_over_the_websocket_is_published_or_rejected(
    tmp_path: Path, shared_data: Path
) -> None:
    async with Simulator(speed=None, replay_mode="each") as sim:
        writer = RingWriter(tmp_path / "ring", MARKET_RECORD, 1 << 18, layout_name=MARKET_RECORD_LAYOUT)
        pipeline = FramePipeline(["BTCUSDT", "ETHUSDT"], writer, recv_clock="wall")
        connections = [
            StreamConnection(ConnectionPlan(sim.ws_market_url, tuple(RECORDED_STREAMS["market"])), pipeline.process),
            StreamConnection(ConnectionPlan(sim.ws_public_url, tuple(RECORDED_STREAMS["public"])), pipeline.process),
        ]
        tasks = [asyncio.create_task(c.run()) for c in connections]
        try:
            assert await wait_for(lambda: pipeline.frames_in > 1000, 30)
            # Some malformed frames in the middle of the real ones: they must be counted, not crash the feed.
            for kind in ("truncated", "negative_price", "crossed_book", "unknown_symbol", "nan"):
                sim.inject_malformed(kind, 3, "btcusdt@bookTicker")
            previous = -1
            while pipeline.frames_in != previous:  # until the simulator has sent everything and we read it all
                previous = pipeline.frames_in
                await asyncio.sleep(1.0)
            stats = sim.stats()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    injected = sum(stats["malformed_injected"].values())
    sent = stats["frames_sent"] + injected
    got = pipeline.stats
    print(f"frames sent {sent}, received {got.frames_in}, published {got.published}, rejected {got.rejected_by_reason}")
    # 93,953 + 74,654 recorded stream frames (the REST snapshot lines are not stream frames) + the injected ones.
    assert injected == 15
    assert sent == got.frames_in == 93_953 + 74_654 + 15
    assert got.published + got.rejected == got.events_in == got.frames_in
    assert sum(got.rejected_by_reason.values()) == got.rejected
    assert writer.published == got.published
    depth_updates = sum(
        gzip.decompress((shared_data / "binance/hftbacktest/examples/usdm" / name).read_bytes()).count(
            b'"e":"depthUpdate"'
        )
        for name in ("btcusdt_20240808.gz", "ethusdt_20240808.gz")
    )
    assert got.rejected_by_reason["unsupported_event"] == depth_updates  # the ring has no depth kind
    assert got.rejected - depth_updates == injected  # every injected malformed frame rejected, nothing else
    writer.close()


def closed_minutes(tmp_path: Path) -> dict[int, int]:
    """Count the closed 1m klines per symbol id in the feed's ring so far."""
    reader = attach(
        tmp_path / "home" / "ring" / "shard-0.ring", MARKET_RECORD, layout_name=MARKET_RECORD_LAYOUT, timeout=5
    )
    try:
        batch = reader.read_batch(1 << 20)
    finally:
        reader.close()
    closed = batch[(batch["kind"] == records.KLINE) & ((batch["flags"] & records.FLAG_KLINE_CLOSED) != 0)]
    ids, counts = np.unique(closed["symbol_id"], return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def start_simulator(port: int, state_file: Path, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis.sim", "--port", str(port), "--speed", "x8", "--state-file", str(state_file)],
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the first URL line: the simulator listens from here on
    return proc, time.monotonic()


@pytest.mark.slow
async def test_ten_simulator_restarts_reconnect_within_1s_and_leave_one_closed_candle_per_minute(
    tmp_path: Path,
) -> None:
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
    try:
        await asyncio.wait_for(engine.ready.wait(), 20)
        assert await wait_for(lambda: engine.pipeline is not None and engine.pipeline.frames_in > 100, 20)
        for _ in range(10):
            await asyncio.sleep(1.5)
            sim.kill()  # kill -9: no close frame, as a crashed exchange endpoint
            sim.wait()
            before = [c.stats.connects for c in engine.state.connections]
            sim, ready_at = start_simulator(port, state_file, tmp_path / "sim.log")
            assert await wait_for(
                lambda b=before: all(c.stats.connects > n for c, n in zip(engine.state.connections, b, strict=True)),
                10,
                0.01,
            )
            reconnect_s.append(time.monotonic() - ready_at)
        # Go on until each symbol has at least two closed minutes downstream (a loaded machine replays slower).
        assert await wait_for(lambda: min(closed_minutes(tmp_path).values(), default=0) >= 2, 90, 1.0), closed_minutes(
            tmp_path
        )
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)

    print(f"reconnect after the simulator was back: {[round(s, 3) for s in reconnect_s]} s")
    assert len(reconnect_s) == 10 and max(reconnect_s) < 1.0
    reader = attach(
        tmp_path / "home" / "ring" / "shard-0.ring", MARKET_RECORD, layout_name=MARKET_RECORD_LAYOUT, timeout=5
    )
    batch = reader.read_batch(1 << 20)
    reader.close()
    closed = batch[(batch["kind"] == records.KLINE) & ((batch["flags"] & records.FLAG_KLINE_CLOSED) != 0)]
    assert engine.gate is not None
    for symbol_id in (0, 1):
        starts = closed[closed["symbol_id"] == symbol_id][records.Kline.start_time_ms]
        print(
            f"symbol {symbol_id}: {len(starts)} closed 1m klines, "
            f"{int(((closed['symbol_id'] == symbol_id) & ((closed['flags'] & records.FLAG_REST) != 0)).sum())} "
            f"from REST"
        )
        assert len(starts) >= 2
        assert np.all(np.diff(starts) == 60_000), starts  # one per minute: none missing, none twice, in order
    print(
        f"gaps filled {engine.gate.gaps}, duplicates dropped {engine.gate.duplicates}, "
        f"backfilled {engine.gate.backfilled}"
    )
    assert os.path.exists(state_file)
