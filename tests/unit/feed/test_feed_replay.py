"""Replay: recording formats, pacing, and the same records at any speed."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import time
from pathlib import Path

import pytest

from aegis.core import records, ring
from aegis.feed.pipeline import FramePipeline
from aegis.feed.replay import (
    detect_format,
    paced,
    paced_async,
    parse_speed,
    read_cryptofeed,
    read_frames,
    read_hftbacktest,
    read_jsonl,
    replay,
    replay_file,
    symbols_in,
)
from aegis.testing import ListSink


def _binance_data() -> Path:
    override = os.environ.get("AEGIS_SHARED_DATA")
    base = Path(override) if override else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "binance"


DATA = _binance_data()
HFT_BTC = DATA / "hftbacktest" / "examples" / "usdm" / "btcusdt_20240808.gz"
CRYPTOFEED = DATA / "cryptofeed" / "sample_data" / "BINANCE_FUTURES.ws.1.0"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared Binance fixtures not present")


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 0
        self.sleeps: list[float] = []

    def time_ns(self) -> int:
        return self.now_ns

    def monotonic_ns(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ns += round(seconds * 1e9)


def test_formats_are_detected() -> None:
    assert detect_format(HFT_BTC) == "hftbacktest"
    assert detect_format(CRYPTOFEED) == "cryptofeed"
    assert detect_format(DATA / "crypto_msg_parser" / "binance.rs.raw_msgs.jsonl") == "jsonl"


def test_hftbacktest_reader_keeps_receive_times_and_bytes() -> None:
    frames = list(read_hftbacktest(HFT_BTC))
    assert len(frames) == 93_954  # 93 953 websocket frames + 1 REST depth snapshot
    with gzip.open(HFT_BTC, "rb") as f:
        first = f.readline().rstrip(b"\n")
    assert frames[0] == (1723161255030314667, first.partition(b" ")[2])
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(frames))  # receive times never go back


def test_cryptofeed_reader_skips_the_url_line_and_converts_seconds_exactly() -> None:
    frames = list(read_cryptofeed(CRYPTOFEED))
    assert len(frames) == 1_535
    assert frames[0][0] == 1626992741_062170000
    assert frames[0][1].startswith(b'{"stream":"sushiusdt@bookTicker"')


def test_jsonl_accepts_raw_frames_and_envelopes(tmp_path: Path) -> None:
    cryptofeed = list(read_cryptofeed(CRYPTOFEED))[:3]
    book = json.loads(cryptofeed[0][1])
    path = tmp_path / "frames.jsonl"
    lines = [
        json.dumps({"recv_ns": 111, "frame": book}),  # envelope, frame as JSON
        json.dumps({"frame": cryptofeed[1][1].decode(), "recv_ns": 222}),  # envelope, frame as text
        cryptofeed[2][1].decode(),  # raw: receive time from its event time
        "",
        "not json at all",  # kept, with the previous receive time, so the pipeline counts it
        json.dumps(book["data"]),  # a bare event
    ]
    path.write_text("\n".join(lines) + "\n")
    frames = list(read_jsonl(path))
    assert [recv for recv, _ in frames] == [
        111,
        222,
        json.loads(cryptofeed[2][1])["data"]["E"] * 1_000_000,
        json.loads(cryptofeed[2][1])["data"]["E"] * 1_000_000,
        book["data"]["E"] * 1_000_000,
    ]
    assert json.loads(frames[0][1]) == book
    assert frames[1][1] == cryptofeed[1][1]
    assert frames[3][1] == b"not json at all"
    assert read_frames(path, "auto") is not None and detect_format(path) == "jsonl"
    stats = replay(read_frames(path), FramePipeline(["SUSHIUSDT", "KEEPUSDT", "AKROUSDT", "CTKUSDT"], ListSink(),
                                                     recv_clock="wall"))  # fmt: skip
    assert stats.frames_in == 5
    assert stats.rejected_by_reason.get("malformed_json") == 1
    assert stats.published + stats.rejected == stats.events_in


def test_malformed_lines_of_a_recording_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    good = list(read_hftbacktest(HFT_BTC))[1:3]
    with gzip.open(path, "wb") as f:
        f.write(b"%d %s\n" % good[0])
        f.write(b"garbage line\n")
        f.write(b"%d %s\n" % (good[1][0], good[1][1][:40]))  # truncated frame
    frames = list(read_frames(path))
    assert [recv for recv, _ in frames] == [good[0][0], good[0][0], good[1][0]]
    stats = replay(frames, FramePipeline(["BTCUSDT"], ListSink(), recv_clock="wall"))
    assert stats.published == 1 and stats.rejected_by_reason == {"malformed_json": 2}


def test_parse_speed() -> None:
    assert parse_speed(None) is None
    assert parse_speed("max") is None
    assert parse_speed(float("inf")) is None
    assert parse_speed("x10") == 10.0
    assert parse_speed("1000") == 1000.0
    assert parse_speed(2) == 2.0
    assert parse_speed("0.5x") == 0.5
    for bad in ("fast", "x0", -1, "x-2"):
        with pytest.raises(ValueError):
            parse_speed(bad)


def test_pacing_follows_recorded_spacing_divided_by_speed() -> None:
    clock = FakeClock()
    frames = [(10_000_000_000, b"a"), (11_000_000_000, b"b"), (11_000_500_000, b"c"), (13_000_000_000, b"d")]
    out = list(paced(frames, "x10", clock=clock, sleep=clock.sleep))
    assert out == frames
    assert clock.sleeps == pytest.approx([0.1, 0.2])  # the 50 µs step is below the 1 ms pacing grain
    assert list(paced(frames, "max", clock=clock, sleep=clock.sleep)) == frames and len(clock.sleeps) == 2


async def test_async_pacing() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now_ns += round(seconds * 1e9)

    frames = [(0, b"a"), (2_000_000_000, b"b"), (3_000_000_000, b"c")]
    out = [frame async for frame in paced_async(frames, 2, clock=clock, sleep=sleep)]
    assert out == frames
    assert slept == pytest.approx([1.0, 0.5])


def test_replay_at_x1000_writes_the_same_records_as_at_max_speed(tmp_path: Path) -> None:
    frames = list(read_hftbacktest(HFT_BTC))
    span_s = (frames[-1][0] - frames[0][0]) / 1e9
    results = {}
    for speed in ("max", "x1000"):
        path = tmp_path / f"{speed}.ring"
        writer = ring.create(path, records.MARKET_RECORD, 1 << 17, layout_name=records.MARKET_RECORD_LAYOUT)
        try:
            pipeline = FramePipeline(["BTCUSDT"], writer, recv_clock="wall", replay=True)
            start = time.monotonic()
            stats = replay(frames, pipeline, speed)
            elapsed = time.monotonic() - start
            reader = ring.attach(path, records.MARKET_RECORD, layout_name=records.MARKET_RECORD_LAYOUT, timeout=1)
            try:
                batch = reader.read_batch(1 << 17)
            finally:
                reader.close()
        finally:
            writer.close()
        results[speed] = (stats, batch, elapsed)
    (fast_stats, fast, _), (paced_stats, slow, paced_elapsed) = results["max"], results["x1000"]
    assert paced_elapsed >= span_s / 1000 * 0.95  # it really was paced (~0.35 s for ~6 min of recording)
    assert fast_stats == paced_stats
    assert len(fast) == fast_stats.published == 87_402
    assert fast.tobytes() == slow.tobytes()
    assert (fast["flags"] & records.FLAG_REPLAY).all()
    assert fast["recv_time_ns"].min() >= frames[0][0]  # receive times from the recording, not the wall clock


def test_replay_file_finds_the_symbols_itself(tmp_path: Path) -> None:
    sink = ListSink()
    stats = replay_file(CRYPTOFEED, sink)
    assert set(stats.last_recv_time_ns_by_symbol) == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    assert stats.frames_in == 1_535
    assert stats.published == 613 + 91 + 67 == len(sink.records)
    assert symbols_in(read_cryptofeed(CRYPTOFEED)) == list(sink._symbols)
    with pytest.raises(ValueError):
        read_frames(CRYPTOFEED, "csv")  # type: ignore[arg-type]
