"""Tests for the shared-memory ring (aegis.core.ring) and the market record layout (aegis.core.records)."""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.core import records as rec
from aegis.core import ring

DT = np.dtype([("seq", "<u8"), ("value", "<i8"), ("payload", "<f8", (6,))])  # 64 bytes
DT_FIELDS = struct.Struct("<q6d")  # DT after its seq word, for packed_writer
HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _records(first: int, n: int) -> np.ndarray:
    """Records whose content is a function of the sequence they will get (first, first+1, ...)."""
    out = np.zeros(n, dtype=DT)
    seqs = np.arange(first, first + n, dtype=np.int64)
    out["value"] = seqs * 7 + 3
    out["payload"] = (seqs * 0.5)[:, None] + np.arange(6)
    return out


def _check_content(batch: np.ndarray) -> None:
    seqs = batch["seq"].astype(np.int64)
    assert np.array_equal(batch["value"], seqs * 7 + 3)
    assert np.array_equal(batch["payload"], (seqs * 0.5)[:, None] + np.arange(6))


def _write(writer: ring.RingWriter, n: int, how: str) -> None:
    batch = _records(writer.published + 1, n)
    if how == "bytes":
        for record in batch:
            writer.write_bytes(record.tobytes())
    elif how == "packed":
        write = writer.packed_writer(DT_FIELDS)
        for record in batch:
            write(int(record["value"]), *record["payload"].tolist())
    elif how == "each":
        writer.write_each(batch)
    else:
        writer.write_batch(batch)


def _read(reader: ring.RingReader, n: int, how: str) -> np.ndarray:
    if how == "one":
        got = []
        for _ in range(n):
            one = reader.read_one()
            if one is None:
                break
            got.append(one)
        return np.array(got, dtype=DT)
    if how == "each":
        out = np.zeros(n, dtype=DT)
        return out[: reader.read_each(out)]
    if how == "into":
        out = np.zeros(n, dtype=DT)
        return out[: reader.read_into(out)]
    if how == "words":  # the brain's consumer: the buffer seen as words once, then read into again and again
        out = np.zeros(n, dtype=DT)
        return out[: reader.read_words(reader.words_of(out))]
    return reader.read_batch(n)


WRITE_HOW = st.sampled_from(["bytes", "packed", "batch", "each"])
READ_HOW = st.sampled_from(["one", "batch", "each", "into", "words"])


def test_words_of_refuses_a_buffer_the_reader_cannot_copy_into(tmp_path: Path) -> None:
    with ring.create(tmp_path / "r", DT, 8) as writer, ring.attach(tmp_path / "r", DT, timeout=1) as reader:
        _write(writer, 3, "batch")
        readonly = np.zeros(4, dtype=DT)
        readonly.flags.writeable = False
        for bad in (np.zeros(4, dtype=rec.MARKET_RECORD), np.zeros(8, dtype=DT)[::2], readonly):
            with pytest.raises(ValueError, match="writable C-contiguous"):
                reader.words_of(bad)
        out = np.zeros(2, dtype=DT)
        words = reader.words_of(out)
        assert reader.read_words(words) == 2 and out["seq"].tolist() == [1, 2]
        assert reader.read_words(words) == 1 and out["seq"][0] == 3
        assert reader.read_words(words) == 0


@HYPOTHESIS
@given(
    capacity_log2=st.integers(2, 6),
    steps=st.lists(st.tuples(st.integers(0, 40), WRITE_HOW, st.integers(0, 40), READ_HOW), max_size=25),
)
def test_reader_sees_exactly_the_written_sequence_when_not_lapped(
    tmp_path: Path, capacity_log2: int, steps: list
) -> None:
    capacity = 1 << capacity_log2
    path = tmp_path / f"order-{capacity}-{len(steps)}-{time.monotonic_ns()}"
    with ring.create(path, DT, capacity) as writer, ring.attach(path, DT, timeout=1) as reader:
        seen: list[np.ndarray] = []
        for write_n, write_how, read_n, read_how in steps:
            write_n = min(write_n, capacity - reader.lag)  # never lap the reader
            _write(writer, write_n, write_how)
            seen.append(_read(reader, read_n, read_how))
        seen.append(reader.read_batch(capacity))
        got = np.concatenate(seen) if seen else np.zeros(0, DT)
        assert np.array_equal(got["seq"], np.arange(1, writer.published + 1))
        _check_content(got)
        assert reader.records_lost == reader.overruns == reader.torn_reads == 0


@HYPOTHESIS
@given(
    capacity_log2=st.integers(2, 5),
    on_overrun=st.sampled_from(["oldest", "newest"]),
    steps=st.lists(st.tuples(st.integers(0, 100), WRITE_HOW, st.integers(0, 50), READ_HOW), max_size=25),
)
def test_overrun_loses_exactly_what_was_overwritten(
    tmp_path: Path, capacity_log2: int, on_overrun: str, steps: list
) -> None:
    capacity = 1 << capacity_log2
    path = tmp_path / f"overrun-{time.monotonic_ns()}"
    with (
        ring.create(path, DT, capacity) as writer,
        ring.attach(path, DT, timeout=1, on_overrun=on_overrun) as reader,
    ):
        seqs: list[np.ndarray] = []
        for write_n, write_how, read_n, read_how in steps:
            _write(writer, write_n, write_how)
            batch = _read(reader, read_n, read_how)
            _check_content(batch)
            seqs.append(batch["seq"].astype(np.int64))
            if read_n:  # the reader has looked, so it has noticed any overrun
                buffered = writer.published + 1 - reader.cursor
                assert 0 <= buffered <= capacity
                assert reader.records_lost == writer.published - reader.records_read - buffered
        while (batch := reader.read_batch(capacity)).size:
            _check_content(batch)
            seqs.append(batch["seq"].astype(np.int64))
        got = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
        assert np.all(np.diff(got) > 0)
        assert reader.records_read == got.size
        assert reader.records_lost == writer.published - reader.records_read
        assert (reader.overruns > 0) == (reader.records_lost > 0)
        assert reader.torn_reads == 0


def _poke(path: Path, seq: int, *, slot_seq: int, value: int, publish: bool) -> None:
    """Write a slot behind the writer's back: the payload of ``seq`` with ``slot_seq`` in its seq word."""
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        words = memoryview(mm).cast("Q")
        try:
            header_size = words[ring._OFF_HEADER_SIZE // 8]
            capacity = words[ring._OFF_CAPACITY // 8]
            word = header_size // 8 + (seq & (capacity - 1)) * (DT.itemsize // 8)
            words[word + 1] = value % (1 << 64)
            words[word] = slot_seq
            if publish:
                words[ring._W_PUBLISHED] = seq
        finally:
            words.release()


@pytest.mark.parametrize("stale", ["never_written", "previous_lap", "busy"])
@pytest.mark.parametrize("how", ["one", "batch", "each"])
def test_torn_slot_is_rejected(tmp_path: Path, stale: str, how: str) -> None:
    path = tmp_path / "torn"
    with ring.create(path, DT, 8) as writer, ring.attach(path, DT, timeout=1) as reader:
        if stale == "previous_lap":
            _write(writer, 8, "batch")
            reader.read_batch(8)
        _write(writer, 3, "batch")
        first_bad = writer.published + 1
        slot_seq = {"never_written": 0, "previous_lap": first_bad - 8, "busy": ring._BUSY}[stale]
        _poke(path, first_bad, slot_seq=slot_seq, value=-1, publish=True)
        got = _read(reader, 16, how)
        assert got["seq"].tolist() == list(range(first_bad - 3, first_bad))
        assert -1 not in got["value"]
        assert _read(reader, 16, how).size == 0  # the torn slot is never returned
        assert reader.torn_reads == 1
        assert reader.records_lost == 0
        # The writer completes the record properly: the reader takes it.
        writer._next_seq = first_bad
        _write(writer, 1, "bytes")
        again = _read(reader, 16, how)
        assert again["seq"].tolist() == [first_bad]
        _check_content(again)


def test_writer_restart_bumps_epoch_and_reader_resyncs(tmp_path: Path) -> None:
    path = tmp_path / "restart"
    writer = ring.create(path, DT, 16)
    btc = writer.add_symbol("BTCUSDT")
    _write(writer, 3, "batch")
    reader = ring.attach(path, DT, timeout=1)
    assert reader.read_batch(2)["seq"].tolist() == [1, 2]
    epoch = reader.epoch
    writer.close()

    writer = ring.create(path, DT, 16)  # same file, same layout: re-initialised in place
    assert writer.epoch == epoch + 1
    assert writer.add_symbol("BTCUSDT") == btc  # the symbol table survives the restart
    _write(writer, 2, "bytes")
    got = reader.read_batch(16)
    assert got["seq"].tolist() == [3, 4, 5]  # the sequence continues: nothing is lost across the restart
    _check_content(got)
    assert reader.epoch == epoch + 1
    assert reader.epoch_changes == 1 and reader.resyncs == 1
    assert reader.epoch_start_seq == 4
    writer.close()

    # A different geometry replaces the file: the reader drains the old one, then re-attaches to the new one.
    writer = ring.create(path, DT, 32)
    assert writer.epoch == epoch + 2
    _write(writer, 4, "batch")
    deadline = time.monotonic() + 2
    got = reader.read_batch(16)
    while got.size == 0 and time.monotonic() < deadline:
        time.sleep(0.011)
        got = reader.read_batch(16)
    assert got["seq"].tolist() == [1, 2, 3, 4]
    assert reader.capacity == 32 and reader.epoch == epoch + 2
    assert reader.epoch_changes == 2
    assert reader.symbols() == {}
    writer.close()
    reader.close()


def test_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "busy"
    with ring.create(path, DT, 8), pytest.raises(ring.RingBusyError, match="another writer"):
        ring.create(path, DT, 8)


def test_layout_mismatch_is_refused_naming_both_layouts(tmp_path: Path) -> None:
    path = tmp_path / "layout"
    with ring.create(path, rec.MARKET_RECORD, 8, layout_name=rec.MARKET_RECORD_LAYOUT):
        with pytest.raises(ring.RingLayoutError) as excinfo:
            ring.attach(path, DT, layout_name="bench.record/1", timeout=1)
        message = str(excinfo.value)
        assert rec.MARKET_RECORD_LAYOUT in message and "bench.record/1" in message
        assert "recv_time_ns:<i8@24" in message and "value:<i8@8" in message
        with pytest.raises(ring.RingLayoutError, match="fingerprint"):
            ring.attach(path, rec.MARKET_RECORD, layout_name="aegis.market_record/2", timeout=1)
        with ring.attach(path, rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT, timeout=1):
            pass


def test_not_a_ring_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other"
    path.write_bytes(b"hello world" * 1000)
    with pytest.raises(ring.RingLayoutError, match="not an AEGIS ring"):
        ring.attach(path, DT, timeout=1)
    with pytest.raises(ring.RingLayoutError, match="refusing to overwrite"):
        ring.create(path, DT, 8)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "does not exist"),
        (b"", "shorter than"),
        (bytes(8192), "no magic"),
        (ring.MAGIC + bytes(8184), "initialised flag not set"),
    ],
)
def test_missing_or_half_initialised_file_waits_then_times_out(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "pending"
    if content is not None:
        path.write_bytes(content)
    start = time.monotonic()
    with pytest.raises(ring.RingNotReadyError, match=reason) as excinfo:
        ring.attach(path, DT, timeout=0.3)
    assert time.monotonic() - start >= 0.3
    assert isinstance(excinfo.value, TimeoutError) and str(path) in str(excinfo.value)


def test_reader_waits_for_the_writer_to_appear(tmp_path: Path) -> None:
    path = tmp_path / "late"
    path.write_bytes(bytes(4096))  # a half-made file: the writer replaces it
    holder: dict[str, ring.RingWriter] = {}
    timer = threading.Timer(0.2, lambda: holder.setdefault("writer", ring.create(path, DT, 8)))
    timer.start()
    try:
        with ring.attach(path, DT, timeout=5) as reader:
            holder["writer"].write_batch(_records(1, 2))
            assert reader.read_batch(8)["seq"].tolist() == [1, 2]
    finally:
        timer.join()
        holder["writer"].close()


def test_symbols_are_shared_and_append_only(tmp_path: Path) -> None:
    path = tmp_path / "symbols"
    with ring.create(path, DT, 8, symbol_capacity=3) as writer, ring.attach(path, DT, timeout=1) as reader:
        assert [writer.add_symbol(s) for s in ("BTCUSDT", "ETHUSDT", "BTCUSDT")] == [0, 1, 0]
        assert reader.symbol(1) == "ETHUSDT"
        with pytest.raises(KeyError):
            reader.symbol(2)
        assert writer.add_symbol("1000SHIBUSDT") == 2
        assert reader.symbols() == {0: "BTCUSDT", 1: "ETHUSDT", 2: "1000SHIBUSDT"}
        with pytest.raises(ring.RingError, match="symbol table full"):
            writer.add_symbol("SOLUSDT")
        with pytest.raises(ValueError):
            writer.add_symbol("X" * 25)


def test_wrong_sized_record_is_refused_without_damage(tmp_path: Path) -> None:
    path = tmp_path / "size"
    with ring.create(path, DT, 4) as writer, ring.attach(path, DT, timeout=1) as reader:
        _write(writer, 5, "batch")  # slot of seq 6 holds seq 2
        with pytest.raises(ValueError, match="64 bytes"):
            writer.write_bytes(b"short")
        assert writer.published == 5
        got = reader.read_batch(8)
        assert got["seq"].tolist() == [2, 3, 4, 5]
        _check_content(got)
        assert writer.try_write(value=13 * 7 + 3) is True
        assert reader.read_one()["value"] == 13 * 7 + 3


def test_write_each_stamps_and_read_each_times(tmp_path: Path) -> None:
    path = tmp_path / "stamp"
    with ring.create(path, DT, 8) as writer, ring.attach(path, DT, timeout=1) as reader:
        before = time.perf_counter_ns()
        writer.write_each(np.zeros(3, DT), stamp_field="value")
        out, recv = np.zeros(4, DT), np.zeros(4, np.int64)
        assert reader.read_each(out, recv) == 3
        assert np.all(out["value"][:3] >= before) and np.all(recv[:3] >= out["value"][:3])
        assert writer.epoch == reader.epoch
        assert 0 <= reader.writer_heartbeat_age_ns() < 10**9


def test_market_record_builders_round_trip(tmp_path: Path) -> None:
    assert rec.MARKET_RECORD.itemsize == 128
    raw = [
        rec.pack_trade(1, 1000, 5, 65000.5, 0.25, 77, 70, 80, 999, True),
        rec.pack_book_ticker(1, 1001, 6, 12, 64999.9, 1.5, 65000.1, 2.5, 1000),
        rec.pack_mark_price(1, 1002, 7, 65001.0, 65000.0, 64998.0, 0.0001, 1_700_000_000_000),
        rec.pack_kline(1, 1003, 8, 0, 59_999, 60_000, 1.0, 3.0, 0.5, 2.0, 10.0, 20.0, 5, 4.0, True),
        rec.pack_liquidation(1, 1004, 9, "SELL", "LIMIT", "FILLED", 64000.0, 64010.0, 0.1, 0.1, 0.1, 1003),
    ]
    path = tmp_path / "market"
    with (
        ring.create(path, rec.MARKET_RECORD, 8, layout_name=rec.MARKET_RECORD_LAYOUT) as writer,
        ring.attach(path, rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT, timeout=1) as reader,
    ):
        for one in raw:
            writer.write_bytes(one)
        batch = reader.read_batch(8)
    assert batch["kind"].tolist() == [rec.TRADE, rec.BOOK_TICKER, rec.MARK_PRICE, rec.KLINE, rec.LIQUIDATION]
    assert batch[rec.Trade.price][0] == 65000.5 and batch[rec.BookTicker.ask_qty][1] == 2.5
    trade, book, mark, kline, liq = (rec.to_dict(r) for r in batch)
    assert trade["buyer_is_maker"] and trade["agg_trade_id"] == 77 and trade["trade_time_ms"] == 999
    assert book["update_id"] == 12 and book["bid_price"] == 64999.9
    assert mark["funding_rate"] == 0.0001 and mark["next_funding_time_ms"] == 1_700_000_000_000
    assert kline["closed"] and kline["open"] == 1.0 and kline["number_of_trades"] == 5
    assert kline["interval_ms"] == 60_000 and kline["taker_buy_base_volume"] == 4.0
    assert liq["side"] == "SELL" and liq["order_type"] == "LIMIT" and liq["order_status"] == "FILLED"
    assert liq["avg_price"] == 64010.0 and batch["seq"].tolist() == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------------------------------------
# Two processes


def _writer_process(path: str, capacity: int, n: int, ready: object) -> None:
    writer = ring.create(path, DT, capacity)
    ready.wait()  # type: ignore[attr-defined]
    written = 0
    chunk = 0
    while written < n:
        size = min(n - written, 1 + chunk % 97)
        batch = _records(written + 1, size)
        if chunk % 3 == 0:
            for record in batch:
                writer.write_bytes(record.tobytes())
        elif chunk % 3 == 1:
            writer.write_each(batch)
        else:
            writer.write_batch(batch)
        written += size
        chunk += 1
    writer.close()


def _read_all(reader: ring.RingReader, n: int, slow: bool) -> np.ndarray:
    seqs: list[np.ndarray] = []
    deadline = time.monotonic() + 20
    out = np.zeros(64, DT)
    turn = 0
    while reader.records_read + reader.records_lost < n:
        assert time.monotonic() < deadline, reader.stats()
        turn += 1
        if turn % 3 == 0:
            got = out[: reader.read_each(out)].copy()
        elif turn % 3 == 1:
            got = reader.read_batch(64)
        else:
            one = reader.read_one()
            got = np.zeros(0, DT) if one is None else np.array([one], dtype=DT)
        _check_content(got)  # a torn or lapped record would fail here
        seqs.append(got["seq"].astype(np.int64))
        if slow and turn % 50 == 0:
            time.sleep(0.001)
    return np.concatenate(seqs)


@pytest.mark.parametrize(("capacity", "n", "slow"), [(1 << 15, 30_000, False), (64, 60_000, True)])
def test_two_processes(tmp_path: Path, capacity: int, n: int, slow: bool) -> None:
    path = tmp_path / "two"
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    process = ctx.Process(target=_writer_process, args=(str(path), capacity, n, ready))
    process.start()
    try:
        with ring.attach(path, DT, timeout=10) as reader:
            ready.set()
            seqs = _read_all(reader, n, slow)
            process.join(20)
            assert process.exitcode == 0
            assert reader.read_batch(capacity).size == 0
            assert np.all(np.diff(seqs) > 0)
            assert reader.records_read == seqs.size
            assert reader.records_read + reader.records_lost == n
            if slow:
                assert reader.records_lost > 0 and reader.overruns > 0
            else:
                assert reader.records_lost == 0 and seqs.tolist() == list(range(1, n + 1))
    finally:
        if process.is_alive():
            process.kill()
        process.join()
    assert os.path.exists(path)


def test_packed_writer_publishes_the_same_records_as_write_bytes(tmp_path: Path) -> None:
    path = tmp_path / "packed"
    with ring.create(path, DT, 16) as writer, ring.attach(path, DT, timeout=1) as reader:
        _write(writer, 5, "packed")
        _write(writer, 5, "bytes")
        _write(writer, 5, "packed")
        got = reader.read_batch(16)
        assert got["seq"].tolist() == list(range(1, 16))
        _check_content(got)
        assert reader.records_read == 15


def test_packed_writer_refuses_a_packer_of_the_wrong_size(tmp_path: Path) -> None:
    with ring.create(tmp_path / "r", DT, 8) as writer:
        for fmt in ("<q5d", "<q7d", "<Qq6d"):
            with pytest.raises(ValueError, match="bytes after the seq word"):
                writer.packed_writer(struct.Struct(fmt))
        assert writer.published == 0


def test_a_value_the_packer_refuses_leaves_the_slot_unreadable_and_the_sequence_unused(tmp_path: Path) -> None:
    path = tmp_path / "bad-value"
    with ring.create(path, DT, 4) as writer, ring.attach(path, DT, timeout=1) as reader:
        _write(writer, 4, "packed")  # slot of seq 5 holds seq 1
        write = writer.packed_writer(DT_FIELDS)
        with pytest.raises(struct.error):
            write(7, 1.0, 2.0, 3.0, "not a float", 5.0, 6.0)  # fails after packing some values into the slot
        assert writer.published == 4
        got = _read(reader, 8, "one")
        assert got["seq"].tolist() == [2, 3, 4]  # record 1's slot is partly overwritten: lost, never returned
        assert reader.records_lost == 1
        _write(writer, 1, "packed")  # the next write takes seq 5
        again = _read(reader, 8, "one")
        assert again["seq"].tolist() == [5]
        _check_content(again)


def test_format_item_count_matches_struct() -> None:
    for fmt, n in [("<q6d", 7), ("<BBH4xqq4d24x2q24x", 11), ("<8s2x3H", 4), ("< 2 q x ?", 3), ("=10p", 1)]:
        assert ring._struct_items(fmt) == n
    for fmt, n in [("<q6d", 7), ("<8s2x3H", 4), ("<2q?", 3)]:  # the count is what pack accepts
        packer = struct.Struct(fmt)
        values = [b"x" if code == "s" else 0 for code in "".join(c * int(r or 1) if c != "s" else c
                                                                   for r, c in ring._FORMAT_ITEM.findall(fmt[1:]))
                  if code != "x"]  # fmt: skip
        assert len(values) == n == ring._struct_items(fmt)
        packer.pack(*values)
    fields = (rec.TRADE_FIELDS, rec.BOOK_TICKER_FIELDS, rec.MARK_PRICE_FIELDS, rec.KLINE_FIELDS, rec.LIQUIDATION_FIELDS)
    assert [ring._struct_items(f.format) for f in fields] == [11, 11, 10, 16, 13]


def test_python_writes_refresh_the_heartbeat_at_least_every_64_records(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    with ring.create(path, DT, 256) as writer, ring.attach(path, DT, timeout=1) as reader:
        for how in ("bytes", "packed"):
            writer._words[ring._W_HEARTBEAT] = 1  # long ago
            _write(writer, 64, how)
            assert 0 <= reader.writer_heartbeat_age_ns() < 10**9


def test_market_record_fields_pack_the_same_bytes_as_the_builders(tmp_path: Path) -> None:
    path = tmp_path / "market"
    writer = ring.create(path, rec.MARKET_RECORD, 64, layout_name=rec.MARKET_RECORD_LAYOUT)
    reader = ring.attach(path, rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT, timeout=1)
    try:
        cases = [
            (rec.TRADE_FIELDS, (rec.TRADE, 0x81, 3, 1_700_000_000_000, 5, 61800.5, 0.25, 11, 12, 13, 1_700_000_000_001),
             rec.pack_trade(3, 1_700_000_000_000, 5, 61800.5, 0.25, 11, 12, 13, 1_700_000_000_001, True, 0x80)),
            (rec.BOOK_TICKER_FIELDS, (rec.BOOK_TICKER, 0, 1, 2, 3, 1.5, 2.5, 3.5, 4.5, 99, 4),
             rec.pack_book_ticker(1, 2, 3, 99, 1.5, 2.5, 3.5, 4.5, 4)),
            (rec.MARK_PRICE_FIELDS, (rec.MARK_PRICE, 0, 1, 2, 3, 10.0, 11.0, 12.0, 0.0001, 7),
             rec.pack_mark_price(1, 2, 3, 10.0, 11.0, 12.0, 0.0001, 7)),
            (rec.KLINE_FIELDS, (rec.KLINE, rec.FLAG_KLINE_CLOSED, 1, 2, 3, 5.0, 6.0, 1.0, 9.0, 0.5, 60.0, 2.0,
                                60_000, 119_999, 42, 60_000),
             rec.pack_kline(1, 2, 3, 60_000, 119_999, 60_000, 1.0, 9.0, 0.5, 5.0, 6.0, 60.0, 42, 2.0, True)),
            (rec.LIQUIDATION_FIELDS, (rec.LIQUIDATION, rec.FLAG_SELL, 1, 2, 3, 8, 9, 10.0, 1.0, 10.5, 0.5, 0.5, 4),
             rec.pack_liquidation(1, 8, 9, "SELL", "MARKET", "FILLED", 10.0, 10.5, 1.0, 0.5, 0.5, 4)),
        ]  # fmt: skip
        for fields, values, expected in cases:
            writer.packed_writer(fields)(*values)
            got = reader.read_one_bytes()
            assert got is not None
            assert got[8:] == expected[8:]
            assert rec.to_dict(got) == rec.to_dict(expected) | {"seq": writer.published}
    finally:
        reader.close()
        writer.close()
