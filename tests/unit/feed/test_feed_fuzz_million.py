"""One million malformed frames through the feed's decoder and data firewall: nothing escapes, everything counted.

The frames are real ones (the hftbacktest recordings of BTCUSDT and ETHUSDT, plus one of each event kind the
recording lacks, built from the same symbols and times) mutated by a seeded generator: byte flips, truncations,
type swaps, NaN and infinities, huge integers, unknown fields, deep nesting, unknown symbols, empty frames. Every
frame must be counted once: ``published + rejected == events_in`` and every rejection has a reason.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from pathlib import Path

from aegis.core.records import MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.core.ring import RingWriter
from aegis.feed import replay
from aegis.feed.pipeline import FramePipeline

FRAMES = 1_000_000
SEED = 20240808
RECORDINGS = ("btcusdt_20240808.gz", "ethusdt_20240808.gz")

VALUE = re.compile(rb'"([A-Za-z])":("[^"]*"|-?[0-9.eE+-]+|true|false|null)')
QUOTED_NUMBER = re.compile(rb'"-?[0-9]+\.[0-9]+"')
INTEGER = re.compile(rb"(?<=[:,\[])-?[0-9]{6,}(?=[,}\]])")
SWAPS = (b"null", b"true", b"[]", b"{}", b'"x"', b"1", b"-1", b"1.5e308", b'""', b'{"a":[1,{"b":null}]}')
SPECIALS = (b'"NaN"', b'"Infinity"', b'"-Infinity"', b'"1e999"', b'"-0"', b"NaN", b"Infinity", b'"0x1F"', b'"1_000"')
HUGE = (b"99999999999999999999999999999", b"-18446744073709551617", b"9223372036854775808", b"1e400")


def templates(event_ms: int) -> list[bytes]:
    """One frame of each kind the recordings lack (aggTrade, markPrice, kline, liquidation, the mark-price array)."""
    t = event_ms
    frames = [
        {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": t, "s": "BTCUSDT", "a": 5, "p": "61800.1",
                                                 "q": "0.010", "f": 10, "l": 12, "T": t, "m": True}},
        {"stream": "btcusdt@markPrice@1s", "data": {"e": "markPriceUpdate", "E": t, "s": "BTCUSDT", "p": "61800.5",
                                                     "i": "61801.0", "P": "61790.0", "r": "0.0001", "T": t + 3600000}},
        {"stream": "ethusdt@kline_1m", "data": {"e": "kline", "E": t, "s": "ETHUSDT", "k": {
            "t": t - t % 60000, "T": t - t % 60000 + 59999, "s": "ETHUSDT", "i": "1m", "f": 1, "L": 2,
            "o": "2500.1", "c": "2501.0", "h": "2502.0", "l": "2499.0", "v": "10.5", "n": 2, "x": False,
            "q": "26250.0", "V": "5.0", "Q": "12500.0", "B": "0"}}},
        {"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": t, "o": {
            "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "61700.0", "ap": "61750.0",
            "X": "FILLED", "l": "0.014", "z": "0.014", "T": t}}},
        {"stream": "!markPrice@arr@1s", "data": [
            {"e": "markPriceUpdate", "E": t, "s": "BTCUSDT", "p": "61800.5", "i": "61801.0", "P": "61790.0",
             "r": "0.0001", "T": t + 3600000},
            {"e": "markPriceUpdate", "E": t, "s": "ETHUSDT", "p": "2500.5", "i": "2501.0", "P": "2499.0",
             "r": "0.0001", "T": t + 3600000}]},
    ]  # fmt: skip
    return [json.dumps(f, separators=(",", ":")).encode() for f in frames]


def mutate(frame: bytes, rng: random.Random, kind: int) -> bytes:
    if kind == 0:  # byte flips
        out = bytearray(frame)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= rng.randrange(1, 256)
        return bytes(out)
    if kind == 1:  # truncation
        return frame[: rng.randrange(len(frame))]
    if kind == 2:  # a value of another type
        found = list(VALUE.finditer(frame))
        if found:
            m = rng.choice(found)
            return frame[: m.start(2)] + rng.choice(SWAPS) + frame[m.end(2) :]
    if kind == 3:  # NaN, infinities and other numbers Binance never sends
        found = list(QUOTED_NUMBER.finditer(frame))
        if found:
            m = rng.choice(found)
            return frame[: m.start()] + rng.choice(SPECIALS) + frame[m.end() :]
    if kind == 4:  # integers past 64 bits
        found = list(INTEGER.finditer(frame))
        if found:
            m = rng.choice(found)
            return frame[: m.start()] + rng.choice(HUGE) + frame[m.end() :]
    if kind == 5:  # unknown fields
        return frame.replace(b'"data":{', b'"data":{"zz":{"a":[1,2,{"b":null}]},"e2":"x",', 1)
    if kind == 6:  # deep nesting
        depth = rng.choice((64, 1000, 5000))
        return frame.replace(b'"data":', b'"data":' + b"[" * depth, 1) + b"]" * depth
    if kind == 7:  # a symbol this feed does not follow, or a stream name that does not match
        return frame.replace(b"USDT", b"USDX", 1) if rng.random() < 0.5 else frame.replace(b"@", b"@x", 1)
    if kind == 8:  # not JSON at all
        return rng.choice((b"", b" ", b"\xff\xfe\x00", b"[]", b"{}", b"null", b"42", b'"text"', b"\x00" * 64))
    return frame  # kind 9: valid


def test_a_million_malformed_frames_are_each_counted_once_and_nothing_escapes(
    shared_data: Path, tmp_path: Path
) -> None:
    base: list[tuple[int, bytes]] = []
    for name in RECORDINGS:
        base += list(replay.read_frames(shared_data / "binance/hftbacktest/examples/usdm" / name))
    base.sort(key=lambda item: item[0])
    t0_ms = base[0][0] // 1_000_000
    extra = templates(t0_ms)
    rng = random.Random(SEED)
    kinds: Counter[int] = Counter()
    weights = (25, 15, 15, 12, 8, 5, 1, 5, 4, 10)
    choices = rng.choices(range(10), weights=weights, k=FRAMES)
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    cycles = 0
    started = time.perf_counter()
    # The recording in time order (so valid frames pass the firewall's ordering checks), replayed as often as
    # needed, each pass through a fresh feed (pipeline and ring, as after a restart), with one frame in twenty
    # replaced by a kind the recording lacks, stamped with the current time.
    for first in range(0, FRAMES, len(base)):
        cycles += 1
        writer = RingWriter(tmp_path / f"fuzz-{cycles}.ring", MARKET_RECORD, 1 << 16, layout_name=MARKET_RECORD_LAYOUT)
        pipeline = FramePipeline(["BTCUSDT", "ETHUSDT"], writer, recv_clock="wall")
        try:
            for i in range(first, min(first + len(base), FRAMES)):
                kind = choices[i]
                recv, frame = base[i - first]
                if i % 20 == 0:
                    frame = extra[(i // 20) % len(extra)].replace(str(t0_ms).encode(), str(recv // 1_000_000).encode())
                kinds[kind] += 1
                pipeline.process(mutate(frame, rng, kind), recv)
            stats = pipeline.stats
            for name in ("frames_in", "events_in", "published", "rejected"):
                totals[name] += getattr(stats, name)
            reasons.update(stats.rejected_by_reason)
            totals["published_in_rings"] += writer.published
        finally:
            writer.close()
    elapsed = time.perf_counter() - started
    figures = (
        f"[fuzz] {totals['frames_in']:,} frames in {cycles} passes ({FRAMES / elapsed:,.0f}/s, {elapsed:.1f} s), "
        f"events {totals['events_in']:,}, published {totals['published']:,}, rejected {totals['rejected']:,}, "
        f"by reason {dict(reasons.most_common())}; mutations {dict(sorted(kinds.items()))}"
    )
    print(figures)
    assert totals["frames_in"] == FRAMES, figures
    assert totals["published"] + totals["rejected"] == totals["events_in"] >= FRAMES, figures
    assert sum(reasons.values()) == totals["rejected"], figures  # every rejection has its reason
    assert all(isinstance(r, str) and r for r in reasons), figures
    assert totals["published_in_rings"] == totals["published"], figures
    assert totals["published"] > 30_000 and totals["rejected"] > 500_000, figures  # both paths exercised hard
