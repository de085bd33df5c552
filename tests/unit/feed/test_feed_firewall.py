"""The data firewall: each rejection reason triggered by a frame DERIVED from a real one (labelled as such), the
ordering rules, rate-limited warnings, and the consumer-side vectorised checks on crafted record batches."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core import records
from aegis.feed.decode import AggTrade, BookTicker, Trade
from aegis.feed.firewall import (
    MIN_EXCHANGE_TIME_MS,
    REASON_CODES,
    REASONS,
    Firewall,
    RecordChecker,
    check_records,
)
from aegis.feed.pipeline import FramePipeline
from aegis.feed.replay import read_cryptofeed, read_hftbacktest
from aegis.testing import ListSink


def _binance_data() -> Path:
    override = os.environ.get("AEGIS_SHARED_DATA")
    base = Path(override) if override else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "binance"


DATA = _binance_data()
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared Binance fixtures not present")


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 1_000_000_000

    def time_ns(self) -> int:
        return self.now_ns

    def monotonic_ns(self) -> int:
        return self.now_ns


# -- real frames to derive from --------------------------------------------------------------------------------


def _real_frames() -> dict[str, tuple[int, dict[str, Any]]]:
    hft = list(read_hftbacktest(DATA / "hftbacktest/examples/usdm/btcusdt_20240808.gz"))[:50]
    cryptofeed = list(read_cryptofeed(DATA / "cryptofeed/sample_data/BINANCE_FUTURES.ws.1.0"))
    usdm = [json.loads(line) for line in (DATA / "crypto_msg_parser/binance.rs.raw_msgs.jsonl").open()]
    force = json.loads((DATA / "tiagosiebler_binance/websocket-client.test.ts.raw_events.jsonl").read_text())["raw"]

    def first(frames: list[tuple[int, bytes]], needle: bytes) -> tuple[int, dict[str, Any]]:
        recv_ns, frame = next((r, f) for r, f in frames if needle in f)
        return recv_ns, json.loads(frame)

    def literal(module: str, fn: str) -> tuple[int, dict[str, Any]]:
        frame = json.loads(next(r["raw"] for r in usdm if (r["test_module"], r["test_fn"]) == (module, fn)))
        return frame["data"]["E"] * 1_000_000, frame

    force_frame = json.loads(force)
    return {
        "bookTicker": first(hft, b'"e":"bookTicker"'),
        "trade": first(hft, b'"e":"trade"'),
        "depthUpdate": first(hft, b'"e":"depthUpdate"'),
        "aggTrade": first(cryptofeed, b'"e":"aggTrade"'),
        "kline": first(cryptofeed, b'"x":true'),
        "markPriceUpdate": literal("funding_rate", "linear_swap"),
        "24hrTicker": literal("ticker", "linear_swap"),
        "forceOrder": (force_frame["data"]["E"] * 1_000_000, force_frame),
    }


REAL = _real_frames() if DATA.is_dir() else {}
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT", "IOTXUSDT"]


def derived(kind: str, **changes: Any) -> tuple[int, bytes]:
    """A frame DERIVED from the real ``kind`` frame: ``changes`` set keys of ``data`` (``k__h`` sets ``data.k.h``;
    a value of ``...`` deletes the key)."""
    recv_ns, frame = REAL[kind]
    frame = copy.deepcopy(frame)
    for key, value in changes.items():
        target = frame["data"]
        *path, leaf = key.split("__")
        for part in path:
            target = target[part]
        if value is ...:
            del target[leaf]
        else:
            target[leaf] = value
    return recv_ns, json.dumps(frame).encode()


def real(kind: str) -> tuple[int, bytes]:
    recv_ns, frame = REAL[kind]
    return recv_ns, json.dumps(frame).encode()


def run(frames: list[tuple[int, bytes]], symbols: list[str] = SYMBOLS) -> tuple[FramePipeline, ListSink]:
    sink = ListSink()
    pipeline = FramePipeline(symbols, sink, FakeClock(), recv_clock="wall")
    for recv_ns, frame in frames:
        pipeline.process(frame, recv_ns)
    return pipeline, sink


def test_every_real_frame_passes() -> None:
    kinds = ["bookTicker", "trade", "aggTrade", "kline", "markPriceUpdate", "forceOrder"]
    pipeline, sink = run([real(kind) for kind in kinds])
    assert pipeline.stats.rejected == 0
    assert len(sink.records) == len(kinds)


MINUTE_NS = 60 * 10**9
CASES = [
    # (reason, symbol counted, frames: real frames and frames derived from them)
    ("malformed_json", "", lambda: [(real("trade")[0], real("trade")[1][:57])]),  # truncated real frame
    ("malformed_frame", "BTCUSDT", lambda: [derived("trade", q=...)]),  # missing field
    ("malformed_frame", "BTCUSDT", lambda: [derived("trade", p=["61800.30"])]),  # type-swapped field
    ("malformed_frame", "SUSHIUSDT", lambda: [derived("kline", k__i="7m")]),  # no such interval
    ("malformed_frame", "IOTXUSDT", lambda: [derived("forceOrder", o__X="EXPIRED_IN_MATCH")]),  # unknown status
    ("unknown_event", "ETHUSDT", lambda: [real("24hrTicker")]),  # real: a stream AEGIS does not consume
    ("unsupported_event", "BTCUSDT", lambda: [real("depthUpdate")]),  # real: no depth kind in the ring
    ("unsupported_event", "BTCUSDT", lambda: [derived("trade", X="INSURANCE_FUND")]),
    ("unknown_symbol", "DOGEUSDT", lambda: [derived("bookTicker", s="DOGEUSDT")]),
    ("bad_price", "BTCUSDT", lambda: [derived("bookTicker", b="NaN")]),
    ("bad_price", "BTCUSDT", lambda: [derived("trade", p="0")]),
    ("bad_price", "BTCUSDT", lambda: [derived("trade", p="-61800.30")]),
    ("bad_price", "BTCUSDT", lambda: [derived("markPriceUpdate", i="Infinity")]),
    ("bad_price", "BTCUSDT", lambda: [derived("markPriceUpdate", r="NaN")]),
    ("bad_price", "IOTXUSDT", lambda: [derived("forceOrder", o__p="0")]),
    ("bad_price", "SUSHIUSDT", lambda: [derived("kline", k__l="-1")]),
    ("bad_quantity", "BTCUSDT", lambda: [derived("trade", q="-0.006")]),
    ("bad_quantity", "BTCUSDT", lambda: [derived("bookTicker", A="Infinity")]),
    ("bad_quantity", "CTKUSDT", lambda: [derived("aggTrade", q="nan")]),
    ("bad_quantity", "SUSHIUSDT", lambda: [derived("kline", k__v="-3005")]),
    ("bad_id", "BTCUSDT", lambda: [derived("trade", t=-1)]),
    ("bad_id", "BTCUSDT", lambda: [derived("bookTicker", u=2**64)]),  # huge number
    ("bad_id", "CTKUSDT", lambda: [derived("aggTrade", f=23961323, l=23961322)]),  # first > last
    ("bad_timestamp", "BTCUSDT", lambda: [derived("trade", E=1_400_000_000_000, T=1_400_000_000_000)]),  # 2014
    ("bad_timestamp", "BTCUSDT", lambda: [derived("bookTicker", E=REAL["bookTicker"][0] // 10**6 + 11 * 60_000)]),
    ("bad_timestamp", "SUSHIUSDT", lambda: [derived("kline", k__T=REAL["kline"][1]["data"]["k"]["T"] + 60_000)]),
    ("bad_timestamp", "BTCUSDT", lambda: [derived("markPriceUpdate", T=-1)]),
    ("time_went_backwards", "BTCUSDT", lambda: [derived("trade", t=5266583936, T=1723161256323), real("trade")]),
    ("time_went_backwards", "SUSHIUSDT", lambda: [real("kline"), derived("kline", E=1626992760202)]),
    ("time_went_backwards", "BTCUSDT", lambda: [real("markPriceUpdate"), derived("markPriceUpdate", E=1617308820002)]),
    ("out_of_sequence", "BTCUSDT", lambda: [real("bookTicker"), real("bookTicker")]),  # a duplicate
    ("out_of_sequence", "CTKUSDT", lambda: [real("aggTrade"), derived("aggTrade", a=16599291)]),  # id went back
    ("bad_candle", "SUSHIUSDT", lambda: [derived("kline", k__h="7.6100")]),  # high below the close 7.6170
    ("bad_candle", "SUSHIUSDT", lambda: [derived("kline", k__l="7.6090")]),  # low above the open 7.6080
    ("bad_candle", "SUSHIUSDT", lambda: [derived("kline", k__V="3006")]),  # taker volume above the volume
    ("crossed_book", "BTCUSDT", lambda: [derived("bookTicker", b="61800.30", a="61800.20")]),  # bid/ask swapped
]


@pytest.mark.parametrize(("reason", "symbol", "make"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_reason_is_triggered_by_a_frame_derived_from_a_real_one(reason: str, symbol: str, make: Any) -> None:
    frames = make()
    pipeline, sink = run(frames)
    stats = pipeline.stats
    assert stats.rejected_by_reason == {reason: 1}
    assert stats.rejected_by_symbol == {symbol: {reason: 1}}
    assert len(sink.records) == len(frames) - 1  # only the reference real frame, if any, got through
    assert stats.published + stats.rejected == stats.events_in == len(frames)


def test_every_reason_has_a_case() -> None:
    # duplicate_kline is decided by the live feed's KlineGate (tests/unit/feed/test_feed_engine.py), not per frame.
    assert {case[0] for case in CASES} == set(REASONS) - {"duplicate_kline"}


def test_a_locked_book_passes_and_a_rejected_event_does_not_move_the_ordering_state() -> None:
    data = REAL["bookTicker"][1]["data"]
    frames = [
        derived("bookTicker", a=data["b"]),  # bid == ask: locked, not crossed
        derived("bookTicker", u=data["u"] + 10, T=data["T"] + 5, b="NaN"),  # rejected: must not advance the state
        derived("bookTicker", u=data["u"] + 1, T=data["T"] + 1),  # so this one still passes
    ]
    pipeline, sink = run(frames)
    assert pipeline.stats.rejected_by_reason == {"bad_price": 1}
    assert len(sink.records) == 2


def test_streams_are_ordered_separately() -> None:
    # A trade and an aggTrade of one symbol carry unrelated ids; kline intervals are separate streams.
    kline_5m = derived("kline", k__i="5m", k__t=1626992700000, k__T=1626993000000 - 1, E=1626992000000)
    pipeline, sink = run([real("kline"), kline_5m])  # the 5m update is older than the 1m one: another stream
    assert pipeline.stats.rejected == 0 and len(sink.records) == 2


def test_warnings_are_rate_limited_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    firewall = Firewall(["BTCUSDT"], clock=clock)
    with caplog.at_level(logging.WARNING, logger="aegis.feed.firewall"):
        for _ in range(3):
            firewall.reject("bad_price", "BTCUSDT", "p=NaN")
        firewall.reject("crossed_book", "BTCUSDT")
        clock.now_ns += 59 * 10**9
        firewall.reject("bad_price", "BTCUSDT")
        clock.now_ns += 2 * 10**9  # a minute after the first warning
        firewall.reject("bad_price", "BTCUSDT")
    warnings = [(r.reason, r.suppressed_since_last) for r in caplog.records]  # type: ignore[attr-defined]
    assert warnings == [("bad_price", 0), ("crossed_book", 0), ("bad_price", 3)]
    assert firewall.counts["bad_price"] == 5
    assert firewall.counts_by_symbol == {("BTCUSDT", "bad_price"): 5, ("BTCUSDT", "crossed_book"): 1}


def test_unknown_reasons_and_junk_symbols_cannot_grow_the_counters() -> None:
    firewall = Firewall(["BTCUSDT"], max_symbol_keys=4)
    firewall.reject("no_such_reason", "BTCUSDT")
    firewall.reject("bad_price", ["not", "a", "symbol"])  # type: ignore[arg-type]
    for i in range(10):
        firewall.reject("unknown_symbol", f"JUNK{i}" * 10)
    assert set(firewall.counts) == set(REASONS)
    assert firewall.counts["malformed_frame"] == 1
    assert firewall.counts_by_symbol[("", "bad_price")] == 1
    assert len(firewall.counts_by_symbol) == 5
    assert firewall.counts_by_symbol[("<other>", "unknown_symbol")] == 8
    assert all(len(symbol) <= 24 for symbol, _ in firewall.counts_by_symbol)


def test_generic_check_matches_the_per_kind_checks() -> None:
    firewall = Firewall(["BTCUSDT"])
    recv_ns, frame = real("bookTicker")
    from aegis.feed.decode import decode_frame

    event = decode_frame(frame)
    assert firewall.check(event, recv_ns // 10**6) is None
    assert firewall.check(event, recv_ns // 10**6) == "out_of_sequence"
    assert firewall.check(decode_frame(real("depthUpdate")[1]), 0) == "unsupported_event"
    assert firewall.check(decode_frame(b"{"), 0) == "malformed_json"
    assert firewall.check(object(), 0) == "malformed_frame"


# -- the fast accept path never accepts what the step-by-step checks reject ----------------------------------

NOW_MS = 1_723_161_256_000
prices = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 61800.2, 61800.3, 1e-300])
)
ids = st.one_of(st.integers(min_value=-3, max_value=5), st.sampled_from([2**63 - 1, 2**63, 2**64]))
times = st.one_of(
    st.sampled_from([0, MIN_EXCHANGE_TIME_MS - 1, MIN_EXCHANGE_TIME_MS, NOW_MS, NOW_MS + 600_000, NOW_MS + 600_001]),
    st.integers(min_value=NOW_MS - 3, max_value=NOW_MS + 3),
)
symbols = st.sampled_from(["BTCUSDT", "ETHUSDT"])
books = st.builds(BookTicker, E=times, s=symbols, u=ids, b=prices, B=prices, a=prices, A=prices, T=times)
trades = st.builds(Trade, E=times, s=symbols, t=ids, p=prices, q=prices, T=times, m=st.booleans(),
                   X=st.sampled_from(["MARKET", "NA"]))  # fmt: skip
aggs = st.builds(AggTrade, E=times, s=symbols, a=ids, p=prices, q=prices, f=ids, l=ids, T=times, m=st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(books, trades, aggs), max_size=12))
def test_fast_path_agrees_with_the_step_by_step_checks(events: list[Any]) -> None:
    fast, slow = Firewall(["BTCUSDT"]), Firewall(["BTCUSDT"])
    for event in events:
        if isinstance(event, BookTicker):
            expected = slow._book_ticker_reason(event, NOW_MS, slow._book.get(event.s))
            got = fast.check_book_ticker(event, NOW_MS)
        elif isinstance(event, Trade):
            expected = slow._trade_reason(event, NOW_MS, slow._trade.get(event.s))
            got = fast.check_trade(event, NOW_MS)
        else:
            expected = slow._agg_trade_reason(event, NOW_MS, slow._agg.get(event.s))
            got = fast.check_agg_trade(event, NOW_MS)
        assert got == expected
        assert (fast._book, fast._trade, fast._agg) == (slow._book, slow._trade, slow._agg)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(books, trades, aggs), max_size=12))
def test_pipeline_fused_path_agrees_with_the_firewall(events: list[Any]) -> None:
    """The pipeline's fused check-and-publish makes the firewall's decisions, moves its state the same way, and
    publishes exactly what it accepts."""
    sink = ListSink()
    pipeline = FramePipeline(["BTCUSDT"], sink, recv_clock="wall")
    reference = Firewall(["BTCUSDT"])
    recv_ns = NOW_MS * 1_000_000
    for event in events:
        expected = reference.check(event, NOW_MS)
        published = pipeline._handlers[type(event)](event, recv_ns, NOW_MS)
        assert published == (expected is None)
        fw = pipeline.firewall
        assert (fw._book, fw._trade, fw._agg) == (reference._book, reference._trade, reference._agg)
        if expected is not None:
            reference.reject(expected, event.s)
    assert pipeline.firewall.counts == reference.counts
    assert len(sink.records) == sum(1 for _ in events) - reference.rejected


# -- the consumer-side firewall ---------------------------------------------------------------------------------


def _real_batch() -> np.ndarray:
    kinds = ["bookTicker", "trade", "aggTrade", "kline", "markPriceUpdate", "forceOrder"]
    _, sink = run([real(kind) for kind in kinds])
    return records.from_bytes(b"".join(sink.records)).copy()


def test_records_of_real_frames_pass_the_consumer_checks() -> None:
    batch = _real_batch()
    ok, codes = check_records(batch, symbol_count=len(SYMBOLS), max_time_ms=REAL["bookTicker"][0] // 10**6 + 600_000)
    assert ok.all() and not codes.any()
    assert check_records(batch[:0])[0].shape == (0,)


def _crafted(field: str, value: Any, kind: int) -> np.ndarray:
    """A batch of real records with one field of the first record of ``kind`` crafted."""
    batch = _real_batch()
    index = int(np.flatnonzero(batch["kind"] == kind)[0])
    batch[field][index] = value
    return batch


@pytest.mark.parametrize(
    ("field", "value", "kind", "reason"),
    [
        ("kind", 9, records.TRADE, "unknown_event"),
        ("symbol_id", 99, records.TRADE, "unknown_symbol"),
        ("f0", math.nan, records.TRADE, "bad_price"),
        ("f0", -1.0, records.MARK_PRICE, "bad_price"),
        ("f4", math.inf, records.MARK_PRICE, "bad_price"),  # funding rate
        ("f2", 0.0, records.BOOK_TICKER, "bad_price"),  # ask
        ("f4", math.nan, records.KLINE, "bad_price"),  # low
        ("f1", -0.5, records.TRADE, "bad_quantity"),
        ("f3", math.inf, records.BOOK_TICKER, "bad_quantity"),  # ask qty
        ("f4", -1.0, records.LIQUIDATION, "bad_quantity"),
        ("i1", 10**12, records.TRADE, "bad_id"),  # first trade id above the last
        ("event_time_ms", 0, records.BOOK_TICKER, "bad_timestamp"),
        ("i3", 0, records.KLINE, "bad_timestamp"),  # no interval
        ("f3", 1.0, records.KLINE, "bad_candle"),  # high below open and close
        ("f2", 61800.1, records.BOOK_TICKER, "crossed_book"),  # ask below the bid
    ],
)
def test_consumer_checks_name_the_first_failing_check(field: str, value: Any, kind: int, reason: str) -> None:
    batch = _crafted(field, value, kind)
    ok, codes = check_records(batch, symbol_count=len(SYMBOLS))
    assert (~ok).sum() == 1
    assert codes[~ok][0] == REASON_CODES[reason]


def test_record_checker_counts_by_reason_and_symbol() -> None:
    batch = np.concatenate([_crafted("f0", math.nan, records.TRADE), _crafted("f2", 61800.1, records.BOOK_TICKER)])
    batch["f2"][batch["kind"] == records.BOOK_TICKER] = 61800.1  # both book tickers crossed now
    checker = RecordChecker(symbol_count=len(SYMBOLS), clock=FakeClock())
    ok, _ = checker.check(batch)
    assert (~ok).sum() == 3
    assert {r: n for r, n in checker.counts.items() if n} == {"bad_price": 1, "crossed_book": 2}
    assert checker.counts_by_symbol == {(0, "bad_price"): 1, (0, "crossed_book"): 2}
    with pytest.raises(TypeError):
        check_records(np.zeros(3, dtype=np.float64))


def test_first_failing_check_wins_when_several_fail() -> None:
    batch = _crafted("f0", math.nan, records.BOOK_TICKER)  # bad bid, and NaN is not <= ask either
    index = int(np.flatnonzero(batch["kind"] == records.BOOK_TICKER)[0])
    batch["f1"][index] = -1.0
    _, codes = check_records(batch)
    assert codes[index] == REASON_CODES["bad_price"]
