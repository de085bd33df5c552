"""Decoding real Binance USDⓈ-M frames (../shared/data/binance, see PROVENANCE.md sections 3 and 8)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from aegis.feed.decode import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    ForceOrder,
    KlineUpdate,
    MarkPriceUpdate,
    Rejected,
    Trade,
    decode_frame,
)
from aegis.feed.replay import read_cryptofeed, read_hftbacktest


def _binance_data() -> Path:
    override = os.environ.get("AEGIS_SHARED_DATA")
    base = Path(override) if override else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "binance"


DATA = _binance_data()
HFT = DATA / "hftbacktest" / "examples" / "usdm"
USDM_TEST_FNS = {"linear_swap", "linear_swap_all", "linear_future"}

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared Binance fixtures not present")


def _kinds(frames: list[bytes]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for frame in frames:
        decoded = decode_frame(frame)
        for event in decoded if isinstance(decoded, list) else [decoded]:
            kinds[f"rejected:{event.reason}" if isinstance(event, Rejected) else type(event).__name__] += 1
    return kinds


def usdm_raw_messages() -> list[dict[str, str]]:
    """The crypto-msg-parser literals recorded from USDⓈ-M (linear) streams."""
    rows = [json.loads(line) for line in (DATA / "crypto_msg_parser" / "binance.rs.raw_msgs.jsonl").open()]
    return [row for row in rows if row["test_fn"] in USDM_TEST_FNS]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "btcusdt_20240808.gz",
            {"BookTicker": 66_089, "Trade": 21_313, "DepthUpdate": 6_551, "rejected:unsupported_event": 1},
        ),
        (
            "ethusdt_20240808.gz",
            {"BookTicker": 53_992, "Trade": 14_076, "DepthUpdate": 6_586, "rejected:unsupported_event": 1},
        ),
    ],
)
def test_hftbacktest_recordings_decode_with_no_malformed_frame(name: str, expected: dict[str, int]) -> None:
    frames = [frame for _, frame in read_hftbacktest(HFT / name)]
    kinds = _kinds(frames)
    assert kinds == expected  # the one rejection per file is the REST depth snapshot the collector wrote first
    assert sum(kinds.values()) == len(frames)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "cryptofeed/sample_data/BINANCE_FUTURES.ws.1.0",
            {"DepthUpdate": 764, "BookTicker": 613, "AggTrade": 91, "KlineUpdate": 67},
        ),
        (
            "cryptofeed/commit_be4e5c81/sample_data/BINANCE_FUTURES.ws.5.0",
            {"BookTicker": 1_959, "DepthUpdate": 1_016, "AggTrade": 185, "KlineUpdate": 99},
        ),
    ],
)
def test_cryptofeed_samples_decode_with_no_malformed_frame(path: str, expected: dict[str, int]) -> None:
    frames = [frame for _, frame in read_cryptofeed(DATA / path)]
    assert _kinds(frames) == expected
    closed = sum(1 for f in frames if isinstance(e := decode_frame(f), KlineUpdate) and e.k.x)
    assert closed == (4 if "ws.1.0" in path else 0)  # PROVENANCE: 4 closed bars in ws.1.0, none in ws.5.0


def test_usdm_literals_decode_to_their_event_types() -> None:
    got = {}
    for row in usdm_raw_messages():
        decoded = decode_frame(row["raw"].encode())
        events = decoded if isinstance(decoded, list) else [decoded]
        got[(row["test_module"], row["test_fn"])] = [
            event.reason if isinstance(event, Rejected) else type(event).__name__ for event in events
        ]
    assert got[("trade", "linear_swap")] == ["AggTrade"]
    assert got[("funding_rate", "linear_swap")] == ["MarkPriceUpdate"]
    assert got[("funding_rate", "linear_swap_all")] == ["MarkPriceUpdate", "MarkPriceUpdate"]  # !markPrice@arr
    assert got[("bbo", "linear_swap")] == ["BookTicker"]
    assert got[("candlestick", "linear_swap")] == ["KlineUpdate"]  # kline_1M
    assert got[("l2_event", "linear_swap")] == ["DepthUpdate"]
    assert got[("ticker", "linear_swap")] == ["unknown_event"]  # 24hrTicker: not a stream AEGIS consumes
    assert got[("l2_snapshot", "linear_swap")] == ["unsupported_event"]  # REST depth snapshot
    assert got[("open_interest", "linear_swap")] == ["unknown_event"]  # REST payload, no event type
    flat = [name for names in got.values() for name in names]
    assert "malformed_json" not in flat and "malformed_frame" not in flat


def test_mark_price_values_are_parsed_from_strings() -> None:
    row = next(r for r in usdm_raw_messages() if (r["test_module"], r["test_fn"]) == ("funding_rate", "linear_swap"))
    event = decode_frame(row["raw"].encode())
    assert event == MarkPriceUpdate(
        E=1617308820003,
        s="BTCUSDT",
        p=58940.14924532,
        i=58857.26693664,
        P=58905.14663658,
        r="0.00058455",
        T=1617321600000,
    )


def test_force_order_frame_decodes() -> None:
    line = (DATA / "tiagosiebler_binance" / "websocket-client.test.ts.raw_events.jsonl").read_text().splitlines()[0]
    event = decode_frame(json.loads(line)["raw"].encode())
    assert isinstance(event, ForceOrder)
    assert (event.E, event.o.s, event.o.S, event.o.o, event.o.X) == (
        1634653599186,
        "IOTXUSDT",
        "SELL",
        "LIMIT",
        "FILLED",
    )
    assert (event.o.q, event.o.p, event.o.ap, event.o.l, event.o.z, event.o.T) == (
        3661.0,
        0.06606,
        0.06669,
        962.0,
        3661.0,
        1634653599180,
    )


def test_bare_event_decodes_like_its_combined_frame() -> None:
    frame = next(f for _, f in read_hftbacktest(HFT / "btcusdt_20240808.gz") if b'"trade"' in f)
    bare = json.dumps(json.loads(frame)["data"]).encode()  # derived: the same event as a raw /ws stream sends it
    assert decode_frame(bare) == decode_frame(frame)
    assert isinstance(decode_frame(frame), Trade)


def test_real_book_ticker_and_trade_values() -> None:
    frames = [f for _, f in read_hftbacktest(HFT / "btcusdt_20240808.gz")][:3]
    book, trade = decode_frame(frames[1]), decode_frame(frames[2])
    assert book == BookTicker(
        E=1723161256313, s="BTCUSDT", u=5123107839020, b=61800.20, B=2.507, a=61800.30, A=2.510, T=1723161256313
    )
    assert trade == Trade(
        E=1723161256322, s="BTCUSDT", t=5266583935, p=61800.30, q=0.006, T=1723161256322, m=False, X="MARKET"
    )
    assert isinstance(decode_frame(frames[0]), DepthUpdate)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'{"stream":"x","data":{"e":"trade"', "malformed_json"),
        (b"[]", "malformed_frame"),
        (b"42", "malformed_frame"),
        (b'"text"', "malformed_frame"),
        (b'{"stream":"x","data":{"e":"24hrTicker","s":"BTCUSDT"}}', "unknown_event"),
        (b'{"s":"BTCUSDT"}', "unknown_event"),
        (b'{"e":["not","a","name"]}', "unknown_event"),
        (b'{"e":"aggTrade","s":"BTCUSDT"}', "malformed_frame"),
    ],
)
def test_undecodable_frames_say_why(frame: bytes, reason: str) -> None:
    result = decode_frame(frame)
    assert isinstance(result, Rejected)
    assert result.reason == reason


def test_array_elements_are_decoded_one_by_one() -> None:
    row = next(r for r in usdm_raw_messages() if r["test_fn"] == "linear_swap_all" and "markPrice" in r["raw"])
    frame = json.loads(row["raw"])
    frame["data"][1]["p"] = {"nested": True}  # derived: one element of a real array made malformed
    decoded = decode_frame(json.dumps(frame).encode())
    assert isinstance(decoded, list) and len(decoded) == 2
    assert isinstance(decoded[0], MarkPriceUpdate)
    assert isinstance(decoded[1], Rejected) and decoded[1].reason == "malformed_frame"
    assert decoded[1].symbol == frame["data"][1]["s"]


def test_agg_trade_from_cryptofeed() -> None:
    frame = next(
        f for _, f in read_cryptofeed(DATA / "cryptofeed/sample_data/BINANCE_FUTURES.ws.1.0") if b"aggTrade" in f
    )
    event = decode_frame(frame)
    assert isinstance(event, AggTrade)
    raw = json.loads(frame)["data"]
    assert (event.a, event.p, event.q, event.f, event.l, event.T, event.m) == (
        raw["a"],
        float(raw["p"]),
        float(raw["q"]),
        raw["f"],
        raw["l"],
        raw["T"],
        raw["m"],
    )
