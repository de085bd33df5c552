"""The live feed against the Binance-compatible simulator on loopback, fed with the real recordings."""

from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path

from aegis.core.records import MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.core.ring import RingWriter
from aegis.feed.connection import StreamConnection
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


# The simulator kill/restart acceptance (reconnect < 1 s, one closed 1m candle per minute) is tests/faults/
# test_feed_simulator_restarts.py: 20 kills, run by the same pytest command.
