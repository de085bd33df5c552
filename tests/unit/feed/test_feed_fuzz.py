"""Fuzzing decode + firewall: whatever the bytes, nothing raises and every frame is counted exactly once.

Malformed frames are random bytes, or DERIVED from real frames: truncated, with fields type-swapped, set to huge
numbers or NaN/Infinity strings, removed, or nested wrongly.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.core import records
from aegis.feed.decode import Rejected, decode_frame
from aegis.feed.firewall import REASONS, Firewall, check_records
from aegis.feed.pipeline import FramePipeline
from aegis.feed.replay import read_cryptofeed, read_hftbacktest


def _binance_data() -> Path:
    override = os.environ.get("AEGIS_SHARED_DATA")
    base = Path(override) if override else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "binance"


DATA = _binance_data()
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared Binance fixtures not present")


def _seed_frames() -> list[tuple[int, bytes]]:
    """A few real frames of every kind, with their receive times."""
    hft = list(read_hftbacktest(DATA / "hftbacktest/examples/usdm/btcusdt_20240808.gz"))[:40]
    cryptofeed = list(read_cryptofeed(DATA / "cryptofeed/sample_data/BINANCE_FUTURES.ws.1.0"))
    picked = (
        hft[:12] + [f for f in cryptofeed if b"aggTrade" in f[1]][:3] + [f for f in cryptofeed if b"kline" in f[1]][:3]
    )
    usdm = [json.loads(line) for line in (DATA / "crypto_msg_parser/binance.rs.raw_msgs.jsonl").open()]
    for row in usdm:
        if row["test_fn"] in ("linear_swap", "linear_swap_all") and "markPrice" in row["raw"]:
            frame = json.loads(row["raw"])
            data = frame["data"][0] if isinstance(frame["data"], list) else frame["data"]
            picked.append((data["E"] * 1_000_000, row["raw"].encode()))
    force = json.loads((DATA / "tiagosiebler_binance/websocket-client.test.ts.raw_events.jsonl").read_text())["raw"]
    picked.append((json.loads(force)["data"]["E"] * 1_000_000, force.encode()))
    return picked


SEEDS = _seed_frames() if DATA.is_dir() else [(0, b"{}")]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT", "IOTXUSDT"]

json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "1e999", "-0", "", "0x10", " 1", "1_0", "61800.20"]),
    st.sampled_from([10**30, -(10**30), 2**63, 2**64, -(2**63) - 1]),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _leaf_paths(obj: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(obj, dict):
        return [path] + [p for key, value in obj.items() for p in _leaf_paths(value, (*path, key))]
    if isinstance(obj, list):
        return [path] + [p for i, value in enumerate(obj) for p in _leaf_paths(value, (*path, i))]
    return [path]


@st.composite
def mutated_frames(draw: st.DrawFn) -> tuple[int, bytes]:
    recv_ns, frame = draw(st.sampled_from(SEEDS))
    how = draw(st.sampled_from(["bytes", "truncate", "swap", "delete", "nest", "splice"]))
    if how == "bytes":
        return recv_ns, draw(st.binary(max_size=300))
    if how == "truncate":
        return recv_ns, frame[: draw(st.integers(min_value=0, max_value=len(frame)))]
    if how == "splice":  # a few bytes of a real frame overwritten
        at = draw(st.integers(min_value=0, max_value=len(frame) - 1))
        return recv_ns, frame[:at] + draw(st.binary(min_size=1, max_size=4)) + frame[at + 4 :]
    obj = json.loads(frame)
    paths = [p for p in _leaf_paths(obj) if p]
    path = draw(st.sampled_from(paths))
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if how == "swap":
        parent[path[-1]] = draw(json_values)
    elif how == "delete":
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    else:  # wrong nesting: wrap the value in a list or an object, or hoist data out of its envelope
        value = parent[path[-1]]
        parent[path[-1]] = draw(st.sampled_from([[value], {"v": value}, json.dumps(value)]))
    return recv_ns, json.dumps(obj).encode()


frames_strategy = st.one_of(mutated_frames(), st.sampled_from(SEEDS))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames_strategy, min_size=1, max_size=8))
def test_nothing_raises_and_every_frame_is_counted_once(frames: list[tuple[int, bytes]]) -> None:
    published: list[bytes] = []

    class Sink:
        def add_symbol(self, name: str) -> int:
            return SYMBOLS.index(name)

        def write_bytes(self, record: bytes) -> int:
            published.append(record)
            return len(published)

    pipeline = FramePipeline(SYMBOLS, Sink(), recv_clock="wall")
    for recv_ns, frame in frames:
        before = pipeline.stats
        decoded = decode_frame(frame)
        elements = len(decoded) if isinstance(decoded, list) else 1
        pipeline.process(frame, recv_ns)
        after = pipeline.stats
        assert after.frames_in == before.frames_in + 1
        assert after.events_in == before.events_in + elements
        # each event of the frame is published or counted under exactly one reason: never both, never neither
        assert (after.published - before.published) + (after.rejected - before.rejected) == elements
    stats = pipeline.stats
    assert set(stats.rejected_by_reason) <= set(REASONS)
    assert stats.published == len(published)
    assert stats.published + stats.rejected == stats.events_in
    if published:  # whatever the feed let through, the consumer-side firewall accepts too
        ok, codes = check_records(records.from_bytes(b"".join(published)), symbol_count=len(SYMBOLS))
        assert ok.all(), codes


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=400), mutated_frames().map(lambda f: f[1])))
def test_decoder_and_firewall_never_raise(frame: bytes) -> None:
    decoded = decode_frame(frame)
    firewall = Firewall(SYMBOLS)
    for event in decoded if isinstance(decoded, list) else [decoded]:
        reason = firewall.check(event, 1_723_161_256_000)
        assert reason is None or reason in REASONS
        if isinstance(event, Rejected):
            assert event.reason in REASONS


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"null",
        b"[[]]",
        b"[null]",
        b'{"data": []}',
        b'{"data": null}',
        b'{"stream": 5, "data": {"e": "trade"}}',
        b'{"data": {"data": {"e": "trade"}}}',
        b'{"e": "kline", "E": 1, "s": "BTCUSDT", "k": []}',
        b'{"e": "forceOrder", "E": 1, "o": "BTCUSDT"}',
        '{"e": "trade", "s": "\u00e9"}'.encode("latin-1"),
        b"\x00" * 10,
        b"{" * 10_000,
        b'{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":1,"p":"1e400","q":"1","X":"MARKET","m":true}',
    ],
)
def test_hand_picked_malformed_frames_are_counted(frame: bytes) -> None:
    class Sink:
        def add_symbol(self, name: str) -> int:
            return 0

        def write_bytes(self, record: bytes) -> int:
            raise AssertionError("nothing here should be published")

    pipeline = FramePipeline(["BTCUSDT"], Sink(), recv_clock="wall")
    assert pipeline.process(frame, 1_723_161_255_000_000_000) is False
    stats = pipeline.stats
    assert stats.published == 0 and stats.rejected == stats.events_in >= 1


def test_non_bytes_input_is_counted_not_raised() -> None:
    pipeline = FramePipeline(["BTCUSDT"], type("S", (), {"add_symbol": lambda s, n: 0, "write_bytes": None})())
    assert pipeline.process(None, 0) is False  # type: ignore[arg-type]
    assert pipeline.stats.rejected_by_reason == {"malformed_json": 1}
    assert copy.copy(pipeline.stats.rejected) == 1
