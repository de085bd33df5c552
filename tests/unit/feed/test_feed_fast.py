"""The batch fast path (``aegis.feed.fast`` via ``FramePipeline.process_lines``/``process_many``) against the
per-frame path: byte-identical records in the same order, identical reject counts by reason and symbol, identical
ordering state and receive times — on the real recordings and on generated mixes of valid and broken frames — and
a batch never raises.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.core import records, ring
from aegis.feed import fast
from aegis.feed.firewall import MIN_EXCHANGE_TIME_MS, Firewall
from aegis.feed.pipeline import FramePipeline
from aegis.feed.replay import HftbacktestRecording, read_hftbacktest, replay, replay_file
from aegis.testing import ListSink as FrameSink


def _binance_data() -> Path:
    override = os.environ.get("AEGIS_SHARED_DATA")
    base = Path(override) if override else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "binance"


HFT = _binance_data() / "hftbacktest" / "examples" / "usdm"
RECORDINGS = sorted(HFT.glob("*.gz")) if HFT.is_dir() else []
needs_data = pytest.mark.skipif(not RECORDINGS, reason="shared hftbacktest recordings not present")
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


class BatchSink(FrameSink):
    """The same, plus ``write_batch`` (as ``RingWriter`` has): a pipeline over it takes the batch path."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def write_batch(self, batch: np.ndarray) -> int:
        assert batch.dtype == records.MARKET_RECORD
        self.batches += 1
        self.records.extend(row.tobytes() for row in batch)
        return len(self.records)


def _pipelines(symbols: list[str] = SYMBOLS, **kwargs: Any) -> tuple[FramePipeline, FramePipeline]:
    kwargs = {"recv_clock": "wall", "replay": True, **kwargs}
    return FramePipeline(symbols, FrameSink(), **kwargs), FramePipeline(symbols, BatchSink(), **kwargs)


def _assert_same(per_frame: FramePipeline, batch: FramePipeline) -> None:
    assert batch._writer.records == per_frame._writer.records  # type: ignore[attr-defined]
    assert batch.stats == per_frame.stats
    assert list(batch.stats.last_recv_time_ns_by_symbol) == list(per_frame.stats.last_recv_time_ns_by_symbol)
    assert batch.firewall.counts == per_frame.firewall.counts
    assert batch.firewall.counts_by_symbol == per_frame.firewall.counts_by_symbol
    for stream in ("aggTrade", "trade", "bookTicker"):
        assert batch.firewall.ordering_state(stream) == per_frame.firewall.ordering_state(stream)
    stats = batch.stats
    assert stats.published + stats.rejected == stats.events_in


# -- the real recordings ---------------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
@pytest.mark.parametrize("symbols", [SYMBOLS, ["BTCUSDT"]], ids=["both", "btc_only"])
def test_recording_lines_match_per_frame(path: Path, symbols: list[str]) -> None:
    per_frame, batch = _pipelines(symbols)
    for recv_ns, frame in read_hftbacktest(path):
        per_frame.process(frame, recv_ns)
    with gzip.open(path) as f:
        data = f.read()
    recv_ns, rest = 0, b""
    for start in range(0, len(data), 100_003):  # chunks of whole lines, as HftbacktestRecording.line_chunks
        chunk = rest + data[start : start + 100_003]
        cut = chunk.rfind(b"\n") + 1
        rest = chunk[cut:]
        recv_ns = batch.process_lines(chunk[:cut], recv_ns)
    recv_ns = batch.process_lines(rest, recv_ns)
    _assert_same(per_frame, batch)


@needs_data
@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_replay_of_a_recording_batches_and_matches(path: Path) -> None:
    per_frame, batch = _pipelines(["BTCUSDT", "ETHUSDT"])
    for recv_ns, frame in read_hftbacktest(path):
        per_frame.process(frame, recv_ns)
    frames = read_hftbacktest(path)
    assert isinstance(frames, HftbacktestRecording)
    replay(frames, batch)
    assert batch._writer.batches > 0  # type: ignore[attr-defined]
    assert batch.stats.published > 0.9 * batch.stats.events_in - batch.stats.rejected
    _assert_same(per_frame, batch)


@needs_data
def test_replay_file_into_a_ring_matches_per_frame(tmp_path: Path) -> None:
    path = RECORDINGS[0]
    per_frame = FrameSink()
    pipeline = FramePipeline(SYMBOLS, per_frame, recv_clock="wall", replay=True)
    for recv_ns, frame in read_hftbacktest(path):
        pipeline.process(frame, recv_ns)
    writer = ring.create(
        tmp_path / "feed.ring", records.MARKET_RECORD, 1 << 17, layout_name=records.MARKET_RECORD_LAYOUT
    )
    try:
        stats = replay_file(path, writer, SYMBOLS)
        retained = writer.retained()
    finally:
        writer.close()
    assert stats == pipeline.stats
    assert len(retained) == len(per_frame.records) == stats.published
    got = retained.copy()
    got["seq"] = 0
    assert [row.tobytes() for row in got] == per_frame.records


def test_line_chunks_hold_whole_lines(tmp_path: Path) -> None:
    lines = [f"{i} {{}}".encode() for i in range(1000)]
    path = tmp_path / "r.txt"
    path.write_bytes(b"\n".join(lines))  # no final newline
    chunks = list(HftbacktestRecording(path).line_chunks(100))
    assert b"".join(chunks) == path.read_bytes()
    assert all(c.endswith(b"\n") for c in chunks[:-1])


def test_process_lines_splits_like_the_reader(tmp_path: Path) -> None:
    trade = (
        b'{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5,"p":"1.5","q":"2","X":"MARKET","m":true}'
    )
    body = (
        b"\r\n\n1723161255088176367 " + trade + b"\r\r\n"
        b"garbage line\n"
        b"1723161255088176368 \n"
        b"000042 " + trade.replace(b'"t":5', b'"t":6') + b"\n"
        b"1723161255088176369 " + trade.replace(b'"t":5', b'"t":7') + b"\n"
        b" " + trade + b"\n" + trade.replace(b'"t":5', b'"t":8')
    )
    path = tmp_path / "r.txt"
    path.write_bytes(body)
    per_frame, batch = _pipelines()
    last = 0
    for recv_ns, raw in read_hftbacktest(path):
        per_frame.process(raw, recv_ns)
        last = recv_ns
    assert batch.process_lines(body, 7) == last == 1723161255088176369
    _assert_same(per_frame, batch)
    assert batch.stats.published == 3  # t=5, 7, 8: 42 ns is long before 2024 and t=5 comes again


def test_stamps_beyond_int64_take_the_reader_path() -> None:
    trade = (
        b'{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5,"p":"1.5","q":"2","X":"MARKET","m":true}'
    )
    depth = b'{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[],"a":[]}'
    per_frame, batch = _pipelines()
    per_frame.process(depth, 10**20)
    per_frame.process(trade, 1723161255088176367)
    assert batch.process_lines(b"%d %s\n1723161255088176367 %s" % (10**20, depth, trade)) == 1723161255088176367
    _assert_same(per_frame, batch)
    with pytest.raises(Exception) as per_frame_error:
        per_frame.process(trade.replace(b'"t":5', b'"t":6'), 10**20)  # a record cannot hold that time
    with pytest.raises(per_frame_error.type):
        batch.process_lines(b"%d %s" % (10**20, trade.replace(b'"t":5', b'"t":6')))


# -- generated frames ------------------------------------------------------------------------------------------

BASE_MS = 1_723_161_256_000
NUMBERS = [
    "61800.20", "0.006", "1", "0", "0.0", "-0", "-0.0", "-1.5", "NaN", "Infinity", "-Infinity", "1e5", "1E-3",
    "01.5", "1.", ".5", "", " 1", "1 ", "+1", "12345678901234567890", "9007199254740993", "9007199254740992",
    "0.00000000000000000000001", "0.0000000000000000000001", "123456789012345.6", "1.7976931348623157e308",
    "1\\u0030", "0x10", "1_0", "3.14159265358979", "99999999.99999999",
]  # fmt: skip
INT_TOKENS = ["-0", "01", "1.0", "1e3", '"123"', "null", "true", str(2**63), str(2**63 - 1), "-1", "0", "1" * 19]


def _decimal_token(clean: bool) -> Any:
    return decimal_token(clean)


def _int_token(clean: bool) -> Any:
    return lambda around: int_token(around, clean)


@st.composite
def decimal_token(draw: st.DrawFn, clean: bool = False) -> str:
    choice = (
        12 if clean else draw(st.integers(0, 12))
    )  # mostly the plain form Binance sends, which the kernel converts itself
    if choice == 0:
        return json.dumps(draw(st.sampled_from(NUMBERS)))
    if choice >= 3:
        whole = draw(st.integers(0, 10**9))
        frac = draw(st.text("0123456789", min_size=0, max_size=12))
        sign = draw(st.sampled_from(["", "", "", "-"]))
        return f'"{sign}{whole}{"." + frac if frac else ""}"'
    if choice == 2:
        return json.dumps(repr(draw(st.floats(allow_nan=True, allow_infinity=True))))
    return draw(st.sampled_from(["1.5", "null", "[]", '"1.5"', "true"]))


@st.composite
def int_token(draw: st.DrawFn, around: int, clean: bool = False) -> str:
    choice = 0 if clean else draw(st.integers(0, 15))
    if choice <= 13:
        return str(around + draw(st.integers(-3, 3)))
    if choice == 14:
        return draw(st.sampled_from(INT_TOKENS))
    return str(draw(st.integers(-(2**64), 2**64)))


DEPTH_SIDES = [
    '[["61800.20","0.014"],["61801.00","0.000"]]', "[]", '[["1","2"]]', '[[""]]', '[["1","2","3"]]', '[["1"],["2"]]',
    '[[],["1"]]', '[["1"],"2"]', '[[["1"]]]', "[[1,2]]", '["1"]', '[["1","2"]', '[["1","2"]]]', '[["1",]]',
    '[["1""2"]]', '[[,"1"]]', '[["1"],]', '[["1"]["2"]]', '[["1","2"],,["3","4"]]', '[["1" ,"2"]]', '[["a","2"]]',
    '[[":"]]', '[["1","2"]],"a":[', "[[]]", '[[""""]]', "[", "]", '"1"', "[]]", "[[]",
]  # fmt: skip


@st.composite
def depth_side(draw: st.DrawFn) -> str:
    """Mostly sides a depthUpdate may carry, valid JSON or not; often random text over the bytes they use."""
    if draw(st.booleans()):
        return draw(st.sampled_from(DEPTH_SIDES))
    return "[" + draw(st.text('[]",1.', min_size=0, max_size=24)) + "]"


SYMBOL_TOKENS = ['"BTCUSDT"', '"ETHUSDT"', '"XRPUSDT"', '""', '"BTC\\u0055SDT"', '"\u00c4BC"', "1", '"btcusdt"']


@st.composite
def event(draw: st.DrawFn, clock: dict[str, int], clean: bool) -> list[tuple[str, str]]:
    """One event as (key, raw JSON value) pairs, "e" first, ids/times mostly moving forward. ``clean``: every
    token in the plain form Binance sends (what the kernel decides itself); else any token may be odd."""
    kinds = ["trade", "aggTrade", "bookTicker", "depthUpdate"]
    kind = draw(st.sampled_from(kinds if clean else [*kinds, "markPriceUpdate", "kline"]))
    decimal_token = _decimal_token(clean)
    int_token = _int_token(clean)

    def odd(tokens: list[str]) -> list[str]:
        return [] if clean else tokens

    clock["ms"] += draw(st.integers(-2, 5))
    clock["id"] += draw(st.integers(-1, 3))
    ms, seq = clock["ms"], clock["id"]
    sym = draw(st.sampled_from(SYMBOL_TOKENS[:2] * 4 + (SYMBOL_TOKENS[2:4] if clean else SYMBOL_TOKENS)))
    times = {"E": draw(int_token(ms)), "T": draw(int_token(ms))}
    if draw(st.integers(0, 20)) == 0:
        times["E"] = str(draw(st.sampled_from([0, MIN_EXCHANGE_TIME_MS - 1, ms + 10**9])))
    if kind == "trade":
        pairs = [
            ("E", times["E"]), ("T", times["T"]), ("s", sym), ("t", draw(int_token(seq))),
            ("p", draw(decimal_token)), ("q", draw(decimal_token)),
            ("X", draw(st.sampled_from(['"MARKET"'] * 6 + ['"INSURANCE_FUND"', '"MARKE"'] + odd(["1"])))),
            ("m", draw(st.sampled_from(["true", "false"] * 4 + odd(["1", '"true"'])))),
        ]  # fmt: skip
    elif kind == "aggTrade":
        first = draw(int_token(seq))
        pairs = [
            ("E", times["E"]), ("a", draw(int_token(seq))), ("s", sym), ("p", draw(decimal_token)),
            ("q", draw(decimal_token)), ("f", first), ("l", draw(st.sampled_from([first, str(seq + 5), "-1"]))),
            ("T", times["T"]), ("m", draw(st.sampled_from(["true", "false", *odd(["0"])]))),
        ]  # fmt: skip
    elif kind == "bookTicker":
        bid = draw(decimal_token)
        ask = draw(st.sampled_from([bid, '"61800.30"', '"61800.10"']) | decimal_token)
        pairs = [
            ("u", draw(int_token(seq))), ("s", sym), ("b", bid), ("B", draw(decimal_token)), ("a", ask),
            ("A", draw(decimal_token)), ("T", times["T"]), ("E", times["E"]),
        ]  # fmt: skip
    elif kind == "depthUpdate":
        pairs = [
            ("E", times["E"]), ("T", times["T"]), ("s", sym), ("U", str(seq)), ("u", str(seq + 1)),
            ("pu", str(seq - 1)), ("b", draw(depth_side())), ("a", draw(depth_side())),
        ]  # fmt: skip
    elif kind == "markPriceUpdate":
        pairs = [
            ("E", times["E"]), ("s", sym), ("p", '"61800.20"'), ("i", '"61800.00"'), ("P", '"61801.00"'),
            ("r", '"0.0001"'), ("T", str(ms + 1000)),
        ]  # fmt: skip
    else:
        start = ms - ms % 60_000
        bar = (
            f'{{"t":{start},"T":{start + 59_999},"s":{sym},"i":"1m","f":1,"L":2,"o":"1.0","c":"1.5","h":"2.0",'
            f'"l":"0.5","v":"10","n":3,"x":false,"q":"12","V":"4","Q":"5","B":"0"}}'
        )
        pairs = [("E", times["E"]), ("s", sym), ("k", bar)]
    pairs.insert(0, ("e", json.dumps(kind)))
    return pairs


@st.composite
def frame(draw: st.DrawFn, clock: dict[str, int]) -> tuple[int, bytes]:
    clean = draw(st.integers(0, 4)) < 3
    pairs = draw(event(clock, clean))
    mutation = 0 if clean else draw(st.integers(0, 12))
    if mutation == 1:  # reordered keys (sometimes "e" no longer first)
        pairs = draw(st.permutations(pairs))
    elif mutation == 2 and len(pairs) > 1:  # a key missing
        pairs.pop(draw(st.integers(1, len(pairs) - 1)))
    elif mutation == 3:  # a key repeated
        pairs.append(draw(st.sampled_from(pairs)))
    elif mutation == 4:  # an extra key
        pairs.append((draw(st.sampled_from(["x", "st", "pu", "M", "e"])), draw(st.sampled_from(["1", '"a"', "{}"]))))
    elif mutation == 5:  # an escape in a key
        key, value = pairs[-1]
        pairs[-1] = (key.replace(key[0], "\\u00" + format(ord(key[0]), "02x"), 1), value)
    sep, colon = (", ", ": ") if mutation == 6 else (",", ":")
    body = "{" + sep.join(f'"{k}"{colon}{v}' for k, v in pairs) + "}"
    shape = draw(st.integers(0, 5 if clean else 9))
    if shape <= 5:
        streams = ['"btcusdt@trade"', '"x"', '""']
        stream = draw(st.sampled_from(streams if clean else [*streams, '"a\\"b"', "5"]))
        text = f'{{"stream":{stream},"data":{body}}}'
    elif shape == 6:
        text = f'{{"data":{body},"stream":"x"}}'
    elif shape == 7:
        text = f'{{"stream":"!markPrice@arr","data":[{body}]}}'
    else:
        text = body
    raw = text.encode()
    tail = 0 if clean else draw(st.integers(0, 6))
    if tail == 1:
        raw = raw[: draw(st.integers(0, len(raw)))]  # truncated
    elif tail == 2:
        raw += draw(st.sampled_from([b" ", b"\n", b"}", b"x", b"\xff"]))
    elif tail == 3:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=3)) + raw[at:]
    recv_ns = (clock["ms"] + draw(st.integers(-5, 20))) * 1_000_000 + draw(st.integers(0, 999_999))
    return recv_ns, raw


@st.composite
def frame_lists(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    clock = {"ms": BASE_MS, "id": 1000}
    return draw(st.lists(frame(clock), min_size=1, max_size=60))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame_lists())
def test_generated_frames_match_per_frame(frames: list[tuple[int, bytes]]) -> None:
    per_frame, batch = _pipelines(["BTCUSDT", "ETHUSDT", "btc\u00e4"])
    for recv_ns, raw in frames:
        per_frame.process(raw, recv_ns)
    batch.process_many([raw for _, raw in frames], [recv_ns for recv_ns, _ in frames])
    _assert_same(per_frame, batch)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame_lists(), st.integers(1, 7))
def test_generated_frames_in_several_batches_match(frames: list[tuple[int, bytes]], pieces: int) -> None:
    per_frame, batch = _pipelines()
    for recv_ns, raw in frames:
        per_frame.process(raw, recv_ns)
    step = max(1, len(frames) // pieces)
    for start in range(0, len(frames), step):
        part = frames[start : start + step]
        batch.process_many([raw for _, raw in part], [recv_ns for recv_ns, _ in part])
    _assert_same(per_frame, batch)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame_lists())
def test_generated_lines_match_the_reader_and_per_frame(frames: list[tuple[int, bytes]]) -> None:
    body = b"".join(b"%d %s\n" % (recv_ns, raw) for recv_ns, raw in frames)
    per_frame, batch = _pipelines()
    recv_ns = 0
    for raw_line in body.split(b"\n"):  # read_hftbacktest's splitting, spelled out
        line = raw_line.rstrip(b"\r\n")
        if not line:
            continue
        stamp, _, rest = line.partition(b" ")
        if rest and stamp.isdigit():
            recv_ns = int(stamp)
            per_frame.process(rest, recv_ns)
        else:
            per_frame.process(line, recv_ns)
    assert batch.process_lines(body) == recv_ns
    _assert_same(per_frame, batch)


def test_mixed_batch_keeps_frame_order_across_fallbacks() -> None:
    trade = (
        '{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{t},"T":{t},"s":"BTCUSDT","t":{i},"p":"{p}","q":"1",'
        '"X":"MARKET","m":false}}}}'
    )
    frames = []
    for i in range(50):
        t = BASE_MS + i
        if i % 7 == 3:  # a number the kernel does not convert itself: the per-frame path takes that frame
            frames.append(trade.format(t=t, i=100 + i, p="1e2").encode())
        elif i % 11 == 5:  # a whitespace variant: also per frame
            frames.append(trade.format(t=t, i=100 + i, p="2.5").replace(",", ", ").encode())
        else:
            frames.append(trade.format(t=t, i=100 + i, p=f"{i}.25").encode())
    recv = [(BASE_MS + i) * 1_000_000 for i in range(50)]
    per_frame, batch = _pipelines()
    for raw, recv_ns in zip(frames, recv, strict=True):
        per_frame.process(raw, recv_ns)
    batch.process_many(frames, recv)
    _assert_same(per_frame, batch)
    prices = np.frombuffer(b"".join(batch._writer.records), records.MARKET_RECORD)["f0"]  # type: ignore[attr-defined]
    assert prices[3] == 100.0 and prices[5] == 2.5 and prices[6] == 6.25
    assert batch.stats.published == 50


def test_exact_decimals_agree_with_float() -> None:
    rng = random.Random(7)
    strings = [
        f"{rng.randrange(10**d)}.{rng.randrange(10**k):0{k}d}" if k else str(rng.randrange(1, 10**d))
        for _ in range(20_000)
        for d, k in [(rng.randint(1, 9), rng.randint(0, 9))]
    ] + ["0.1", "0.3", "9007199254740.991", "0.0000000000000000000001", "900719925474099.2"]
    frames = [
        b'{"e":"bookTicker","u":%d,"s":"BTCUSDT","b":"%s","B":"1","a":"%s","A":"1","T":%d,"E":%d}'
        % (i + 1, s.encode(), s.encode(), BASE_MS, BASE_MS)
        for i, s in enumerate(strings)
    ]
    per_frame, batch = _pipelines()
    for raw in frames:
        per_frame.process(raw, BASE_MS * 1_000_000)
    batch.process_many(frames, [BASE_MS * 1_000_000] * len(frames))
    _assert_same(per_frame, batch)
    bids = np.frombuffer(b"".join(batch._writer.records), records.MARKET_RECORD)["f0"]  # type: ignore[attr-defined]
    positive = [float(s) for s in strings if float(s) > 0]
    assert bids.tolist() == positive


# -- fuzz ------------------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30), st.binary(max_size=2000))
def test_batches_never_raise(frames: list[bytes], lines: bytes) -> None:
    pipeline = FramePipeline(SYMBOLS, BatchSink(), recv_clock="wall", replay=True)
    pipeline.process_many(frames, [BASE_MS * 1_000_000 + i for i in range(len(frames))])
    pipeline.process_lines(lines.replace(b"\n", b"\n1723161256000000000 "))
    stats = pipeline.stats
    assert stats.published + stats.rejected == stats.events_in
    assert stats.frames_in >= len(frames)


def test_batch_path_needs_write_batch_and_the_same_symbols() -> None:
    assert not FramePipeline(SYMBOLS, FrameSink())._batch_capable()
    other = Firewall(["BTCUSDT"])
    assert not FramePipeline(SYMBOLS, BatchSink(), firewall=other)._batch_capable()
    pipeline = FramePipeline(SYMBOLS, BatchSink(), recv_clock="wall")
    assert pipeline._batch_capable()
    raw = b'{"e":"trade","E":%d,"T":%d,"s":"BTCUSDT","t":1,"p":"1","q":"1","X":"MARKET","m":true}' % (BASE_MS, BASE_MS)
    pipeline.process_many([raw], [BASE_MS * 1_000_000])
    assert pipeline.stats.published == 1
    assert fast.FALLBACK == 255


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.sampled_from(DEPTH_SIDES), st.text('[]",1.', max_size=30).map(lambda t: f"[{t}]")))
def test_depth_side_check_only_passes_valid_json(side: str) -> None:
    raw = np.frombuffer(b"  " + side.encode() + b"  ", np.uint8)  # room around it: the check stays in its range
    if fast._depth_side_ok(raw, 2, 2 + len(side)):
        assert isinstance(json.loads(side), list)


def test_depth_side_check_passes_what_binance_sends() -> None:
    for side in ("[]", '[["61800.20","0.014"]]', '[["61800.20","0.014"],["61801.00","0.000"],["1","2"]]'):
        raw = np.frombuffer(side.encode(), np.uint8)
        assert fast._depth_side_ok(raw, 0, len(side))


class _FakeClock:
    """Monotonic time that moves only when slept on."""

    def __init__(self) -> None:
        self.now_ns = 10**12

    def monotonic_ns(self) -> int:
        return self.now_ns

    def time_ns(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


@needs_data
def test_paced_replay_publishes_due_frames_in_batches_never_early() -> None:
    frames = list(read_hftbacktest(RECORDINGS[0]))[:3000]
    clock = _FakeClock()
    written_at: list[int] = []

    class TimedSink(BatchSink):
        def write_batch(self, batch: np.ndarray) -> int:
            written_at.extend([clock.now_ns] * len(batch))
            return super().write_batch(batch)

    per_frame = FramePipeline(SYMBOLS, FrameSink(), recv_clock="wall", replay=True)
    for recv_ns, raw in frames:
        per_frame.process(raw, recv_ns)
    paced = FramePipeline(SYMBOLS, TimedSink(), recv_clock="wall", replay=True)
    start = clock.now_ns
    replay(frames, paced, "x10", clock=clock, sleep=clock.sleep)
    _assert_same(per_frame, paced)
    sink = paced._writer
    assert sink.batches > 10  # type: ignore[attr-defined]  # one per sleep, not one for everything
    recv = np.frombuffer(b"".join(sink.records), records.MARKET_RECORD)["recv_time_ns"]  # type: ignore[attr-defined]
    due = start + (recv - frames[0][0]) / 10
    assert np.all(np.array(written_at) >= due - 1_000_000)  # never before its time (1 ms pacing grain)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame_lists(), st.integers(-(10**6), 10**6))
def test_live_clock_batches_match_per_frame(frames: list[tuple[int, bytes]], skew_ms: int) -> None:
    """recv_clock="monotonic": the future-skew bound comes from the wall clock (read once per kernel run)."""
    clock = _FakeClock()
    clock.now_ns = (BASE_MS + skew_ms) * 1_000_000
    per_frame, batch = _pipelines(recv_clock="monotonic", replay=False, clock=clock)
    for recv_ns, raw in frames:
        per_frame.process(raw, recv_ns)
    batch.process_many([raw for _, raw in frames], [recv_ns for recv_ns, _ in frames])
    _assert_same(per_frame, batch)
