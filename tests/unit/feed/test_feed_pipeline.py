"""The frame → ring path on real recordings: every frame accounted for, and records that read back right."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aegis.bench.feed import StdlibJsonPipeline
from aegis.core import records, ring
from aegis.feed.firewall import REASONS, check_records
from aegis.feed.pipeline import FramePipeline
from aegis.feed.replay import read_cryptofeed, read_hftbacktest, symbols_in
from aegis.testing import ListSink


def _binance_data() -> Path:
    override = os.environ.get("AEGIS_SHARED_DATA")
    base = Path(override) if override else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "binance"


DATA = _binance_data()
HFT = DATA / "hftbacktest" / "examples" / "usdm"
CRYPTOFEED = (
    DATA / "cryptofeed" / "sample_data" / "BINANCE_FUTURES.ws.1.0",
    DATA / "cryptofeed" / "commit_be4e5c81" / "sample_data" / "BINANCE_FUTURES.ws.5.0",
)

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared Binance fixtures not present")


@pytest.fixture
def ring_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "feed.ring"


def _writer(path: Path, capacity: int = 1 << 10) -> ring.RingWriter:
    return ring.create(path, records.MARKET_RECORD, capacity, layout_name=records.MARKET_RECORD_LAYOUT)


def _reader(path: Path) -> ring.RingReader:
    return ring.attach(path, records.MARKET_RECORD, layout_name=records.MARKET_RECORD_LAYOUT, timeout=1.0)


def usdm_raw_messages() -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (DATA / "crypto_msg_parser" / "binance.rs.raw_msgs.jsonl").open()]
    return [row for row in rows if row["test_fn"] in {"linear_swap", "linear_swap_all", "linear_future"}]


def _force_order_frame() -> bytes:
    line = (DATA / "tiagosiebler_binance" / "websocket-client.test.ts.raw_events.jsonl").read_text().splitlines()[0]
    return json.loads(line)["raw"].encode()


def _event_time_ns(frame: bytes) -> int:
    data = json.loads(frame)
    data = data.get("data", data)
    data = data[0] if isinstance(data, list) else data
    return int(data["E"]) * 1_000_000


def _recordings() -> dict[str, list[tuple[int, bytes]]]:
    usdm = [row["raw"].encode() for row in usdm_raw_messages()]
    return {
        "hftbacktest/btcusdt": list(read_hftbacktest(HFT / "btcusdt_20240808.gz")),
        "hftbacktest/ethusdt": list(read_hftbacktest(HFT / "ethusdt_20240808.gz")),
        "cryptofeed/ws.1.0": list(read_cryptofeed(CRYPTOFEED[0])),
        "cryptofeed/ws.5.0": list(read_cryptofeed(CRYPTOFEED[1])),
        "crypto_msg_parser/usdm": [(_event_time_ns(f) if b'"E"' in f else 0, f) for f in usdm],
        "tiagosiebler/forceOrder": [(_event_time_ns(_force_order_frame()), _force_order_frame())],
    }


@pytest.fixture(scope="module")
def recordings() -> dict[str, list[tuple[int, bytes]]]:
    return _recordings()


EXPECTED_REJECTIONS = {
    "hftbacktest/btcusdt": {"unsupported_event": 6_552},  # 6 551 depthUpdate + the REST depth snapshot
    "hftbacktest/ethusdt": {"unsupported_event": 6_587},
    "cryptofeed/ws.1.0": {"unsupported_event": 764},
    "cryptofeed/ws.5.0": {"unsupported_event": 1_016},
    # 4 depthUpdate + 2 REST snapshots; 24hrTicker ×4 (two are one-element arrays) + 2 openInterest payloads
    "crypto_msg_parser/usdm": {"unsupported_event": 6, "unknown_event": 6},
    "tiagosiebler/forceOrder": {},
}


@pytest.mark.parametrize("name", list(EXPECTED_REJECTIONS))
def test_every_frame_of_every_recording_is_published_or_counted(
    name: str, recordings: dict[str, list[tuple[int, bytes]]], ring_path: Path
) -> None:
    frames = recordings[name]
    writer = _writer(ring_path, 1 << 10)
    try:
        pipeline = FramePipeline(symbols_in(frames), writer, recv_clock="wall", replay=True)
        for recv_ns, frame in frames:
            pipeline.process(frame, recv_ns)
        stats = pipeline.stats
        assert stats.frames_in == len(frames)
        assert stats.published + sum(stats.rejected_by_reason.values()) == stats.events_in
        assert writer.published == stats.published  # the ring's own count agrees
        assert stats.rejected_by_reason == EXPECTED_REJECTIONS[name]
        assert stats.published > 0
        by_symbol = sum(n for reasons in stats.rejected_by_symbol.values() for n in reasons.values())
        assert by_symbol == stats.rejected
    finally:
        writer.close()


def test_hftbacktest_published_counts_per_kind(recordings: dict[str, list[tuple[int, bytes]]]) -> None:
    sink = ListSink()
    pipeline = FramePipeline(["BTCUSDT"], sink, recv_clock="wall")
    for recv_ns, frame in recordings["hftbacktest/btcusdt"]:
        pipeline.process(frame, recv_ns)
    batch = records.from_bytes(b"".join(sink.records))
    kinds = dict(zip(*np.unique(batch["kind"], return_counts=True), strict=True))
    assert kinds == {records.BOOK_TICKER: 66_089, records.TRADE: 21_313}
    assert pipeline.stats.last_recv_time_ns_by_symbol == {"BTCUSDT": int(batch["recv_time_ns"][-1])}
    ok, _ = check_records(batch, symbol_count=1)  # the consumer-side firewall agrees with the feed's
    assert ok.all()


def _first(frames: list[tuple[int, bytes]], needle: bytes) -> tuple[int, bytes]:
    return next((recv_ns, frame) for recv_ns, frame in frames if needle in frame)


def test_one_real_frame_of_each_kind_reads_back_from_the_ring(
    recordings: dict[str, list[tuple[int, bytes]]], ring_path: Path
) -> None:
    hft = recordings["hftbacktest/btcusdt"]
    cryptofeed = recordings["cryptofeed/ws.1.0"]
    usdm = recordings["crypto_msg_parser/usdm"]
    picks = [
        _first(hft, b'"e":"bookTicker"'),
        _first(hft, b'"e":"trade"'),
        _first(cryptofeed, b'"e":"aggTrade"'),
        _first(cryptofeed, b'"x":true'),  # a closed 1m bar
        _first(usdm, b'"stream":"btcusdt@markPrice"'),
        _first(usdm, b"!markPrice@arr"),  # two events in one frame
        recordings["tiagosiebler/forceOrder"][0],
    ]
    symbols = ["BTCUSDT", "SUSHIUSDT", "CTKUSDT", "AKROUSDT", "KEEPUSDT", "ETHUSDT", "IOTXUSDT"]
    writer = _writer(ring_path)
    reader = None
    try:
        pipeline = FramePipeline(symbols, writer, recv_clock="wall", replay=True)
        for recv_ns, frame in picks:
            assert pipeline.process(frame, recv_ns), frame[:120]
        reader = _reader(ring_path)
        got = [records.to_dict(record) for record in reader.read_batch()]
        names = reader.symbols()
    finally:
        if reader is not None:
            reader.close()
        writer.close()
    assert len(got) == 8
    for record in got:
        assert record["flags"] & records.FLAG_REPLAY
        record["symbol"] = names[record.pop("symbol_id")]
        record.pop("seq")
        record.pop("flags")

    def data(i: int) -> dict:
        return json.loads(picks[i][1])["data"]

    book, trade, agg, kline, mark, marks = data(0), data(1), data(2), data(3), data(4), data(5)
    assert got[0] == {
        "kind": "BOOK_TICKER", "symbol": "BTCUSDT", "event_time_ms": book["E"], "recv_time_ns": picks[0][0],
        "bid_price": float(book["b"]), "bid_qty": float(book["B"]), "ask_price": float(book["a"]),
        "ask_qty": float(book["A"]), "update_id": book["u"], "transaction_time_ms": book["T"],
    }  # fmt: skip
    assert got[1] == {
        "kind": "TRADE", "symbol": "BTCUSDT", "event_time_ms": trade["E"], "recv_time_ns": picks[1][0],
        "price": float(trade["p"]), "qty": float(trade["q"]), "agg_trade_id": trade["t"],
        "first_trade_id": trade["t"], "last_trade_id": trade["t"], "trade_time_ms": trade["T"],
        "buyer_is_maker": trade["m"],
    }  # fmt: skip
    assert got[2] == {
        "kind": "TRADE", "symbol": agg["s"], "event_time_ms": agg["E"], "recv_time_ns": picks[2][0],
        "price": float(agg["p"]), "qty": float(agg["q"]), "agg_trade_id": agg["a"], "first_trade_id": agg["f"],
        "last_trade_id": agg["l"], "trade_time_ms": agg["T"], "buyer_is_maker": agg["m"],
    }  # fmt: skip
    k = kline["k"]
    assert got[3] == {
        "kind": "KLINE", "symbol": kline["s"], "event_time_ms": kline["E"], "recv_time_ns": picks[3][0],
        "close": float(k["c"]), "base_volume": float(k["v"]), "open": float(k["o"]), "high": float(k["h"]),
        "low": float(k["l"]), "quote_volume": float(k["q"]), "taker_buy_base_volume": float(k["V"]),
        "start_time_ms": k["t"], "close_time_ms": k["T"], "number_of_trades": k["n"], "interval_ms": 60_000,
        "closed": True,
    }  # fmt: skip
    for record, event, recv_ns in [(got[4], mark, picks[4][0]), *((got[5 + i], marks[i], picks[5][0]) for i in (0, 1))]:
        assert record == {
            "kind": "MARK_PRICE", "symbol": event["s"], "event_time_ms": event["E"], "recv_time_ns": recv_ns,
            "mark_price": float(event["p"]), "index_price": float(event["i"]),
            "estimated_settle_price": float(event["P"]), "funding_rate": float(event["r"]),
            "next_funding_time_ms": event["T"],
        }  # fmt: skip
    o = json.loads(picks[6][1])["data"]["o"]
    assert got[7] == {
        "kind": "LIQUIDATION", "symbol": "IOTXUSDT", "event_time_ms": 1634653599186, "recv_time_ns": picks[6][0],
        "price": float(o["p"]), "qty": float(o["q"]), "avg_price": float(o["ap"]), "filled_qty": float(o["z"]),
        "last_filled_qty": float(o["l"]), "trade_time_ms": o["T"], "order_type": "LIMIT",
        "order_status": "FILLED", "side": "SELL",
    }  # fmt: skip


def test_stdlib_baseline_publishes_the_same_records(recordings: dict[str, list[tuple[int, bytes]]]) -> None:
    """The benchmark's baseline does the same work: same records, same rejections, on every real recording."""
    for name, frames in recordings.items():
        frames = frames[:20_000]
        symbols = symbols_in(frames)
        ours, theirs = ListSink(), ListSink()
        pipeline = FramePipeline(symbols, ours, recv_clock="wall", replay=True)
        baseline = StdlibJsonPipeline(symbols, theirs)
        for recv_ns, frame in frames:
            assert pipeline.process(frame, recv_ns) == baseline.process(frame, recv_ns), (name, frame[:120])
        assert ours.records == theirs.records, name
        assert pipeline.stats.rejected_by_reason == baseline.stats.rejected_by_reason, name


def test_packed_into_the_ring_is_byte_for_byte_the_bytes_path(
    recordings: dict[str, list[tuple[int, bytes]]], ring_path: Path
) -> None:
    """A ``RingWriter`` sink gets records packed into its slots; any other sink gets ``bytes``: the same records."""
    for name, frames in recordings.items():
        frames = frames[:5_000]
        symbols = symbols_in(frames)
        listed = ListSink()
        path = ring_path.with_name(name.replace("/", "-"))
        writer = _writer(path, 1 << 13)
        reader = _reader(path)
        try:
            into_ring = FramePipeline(symbols, writer, recv_clock="wall", replay=True)
            into_list = FramePipeline(symbols, listed, recv_clock="wall", replay=True)
            for recv_ns, frame in frames:
                into_ring.process(frame, recv_ns)
                into_list.process(frame, recv_ns)
            batch = reader.read_batch(1 << 13)
            assert batch.size == len(listed.records) == into_ring.stats.published, name
            expected = records.from_bytes(b"".join(listed.records)).copy()
            expected["seq"] = batch["seq"]
            assert batch.tobytes() == expected.tobytes(), name
        finally:
            reader.close()
            writer.close()


def test_monotonic_receive_times_use_the_clock_for_the_skew_bound() -> None:
    class Clock:
        wall_ns = 0

        def time_ns(self) -> int:
            return self.wall_ns

        def monotonic_ns(self) -> int:
            return 5

    recv_ns, frame = _first(list(read_hftbacktest(HFT / "btcusdt_20240808.gz"))[:10], b'"e":"trade"')
    clock = Clock()
    pipeline = FramePipeline(["BTCUSDT"], ListSink(), clock, recv_clock="monotonic")
    clock.wall_ns = recv_ns - 3_600 * 10**9  # our wall clock an hour behind the event: beyond the 10 min skew
    assert not pipeline.process(frame, 123)
    assert pipeline.stats.rejected_by_reason == {"bad_timestamp": 1}
    clock.wall_ns = recv_ns
    assert pipeline.process(frame, 123)
    assert pipeline.stats.last_recv_time_ns_by_symbol == {"BTCUSDT": 123}


def test_reasons_are_a_fixed_snake_case_set() -> None:
    assert len(set(REASONS)) == len(REASONS) == 14
    assert all(reason.replace("_", "").isalpha() and reason.islower() for reason in REASONS)
