"""The one path from a websocket frame to the ring: decode → firewall → ``MARKET_RECORD`` → ring.

The live websocket feed calls :meth:`FramePipeline.process` per frame; replay and the benchmark call its batch
methods (below), so what a replay or a benchmark shows is what production does. Per frame, ``process`` costs one
typed msgspec decode, the firewall's checks and one ``struct.pack_into`` straight into the ring slot
(``RingWriter.packed_writer`` with the kind's ``records.*_FIELDS``: no intermediate ``bytes``); nothing is logged
on the accepted path. A sink without ``packed_writer`` (the live feed's ``KlineGate``) gets each record as
``bytes`` instead.

Frames that come in bulk (a replay, the benchmark) go through :meth:`FramePipeline.process_lines` or
:meth:`FramePipeline.process_many` instead: the compiled batch path of ``aegis.feed.fast`` decides the high-rate
kinds and hands every other frame to :meth:`FramePipeline.process` in its place, with exactly the records,
counters and firewall state that :meth:`~FramePipeline.process` per frame gives.

Accounting: every frame adds 1 to ``frames_in``; an array frame (``!markPrice@arr``) of *n* elements adds *n* to
``events_in`` (any other frame adds 1). Every event is then either published (one ring record) or counted under
exactly one firewall reason, so ``published + rejected == events_in`` always holds, whatever the bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol

import msgspec
import numpy as np

from aegis.core.records import (
    BOOK_TICKER,
    BOOK_TICKER_FIELDS,
    FLAG_BUYER_IS_MAKER,
    FLAG_KLINE_CLOSED,
    FLAG_REPLAY,
    FLAG_SELL,
    KLINE,
    KLINE_FIELDS,
    LIQUIDATION,
    LIQUIDATION_FIELDS,
    MARK_PRICE,
    MARK_PRICE_FIELDS,
    ORDER_STATUS_CODES,
    ORDER_TYPE_CODES,
    TRADE,
    TRADE_FIELDS,
    whole_record,
)
from aegis.feed.decode import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    ForceOrder,
    KlineUpdate,
    MarkPriceUpdate,
    Rejected,
    Trade,
    decode_combined,
    decode_frame,
)
from aegis.feed.firewall import (
    DEFAULT_MAX_FUTURE_SKEW_MS,
    MALFORMED_FRAME,
    MIN_EXCHANGE_TIME_MS,
    UNSUPPORTED_EVENT,
    Clock,
    Firewall,
    SystemClock,
    parse_funding_rate,
)

__all__ = ["FramePipeline", "PipelineStats", "RecordSink", "hftbacktest_frames", "record_writer"]


def hftbacktest_frames(lines: Iterable[bytes], recv_ns: int = 0) -> Iterator[tuple[int, bytes]]:
    """Split hftbacktest ``<local_ns> <json>`` lines into ``(recv_ns, frame)``: empty lines skipped, a line without
    a numeric stamp is a frame received at the previous line's time (``recv_ns`` before the first)."""
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        stamp, _, frame = line.partition(b" ")
        if frame and stamp.isdigit():
            recv_ns = int(stamp, 10)  # (with the base given, int() of bytes is a third faster)
            yield recv_ns, frame
        else:
            yield recv_ns, line


class RecordSink(Protocol):
    """Where records go: a ``RingWriter`` (or anything with its ``write_bytes`` and ``add_symbol``).

    A sink that also has ``packed_writer`` (``RingWriter`` does) gets each record packed straight into its ring
    slot; any other sink (e.g. the live feed's ``KlineGate``) gets it as ``bytes`` through ``write_bytes``.
    """

    def write_bytes(self, record: bytes) -> int: ...

    def add_symbol(self, name: str) -> int: ...


_INF = float("inf")
_MAX_ID = 1 << 63
_MIN_MS = MIN_EXCHANGE_TIME_MS
assert FLAG_BUYER_IS_MAKER == 1  # a trade's flags are ``flags | ev.m`` (a bool): no branch per trade


def record_writer(sink: RecordSink, fields: struct.Struct) -> Callable[..., int]:
    """Return ``write(*values)`` publishing one record of the kind ``fields`` describes into ``sink``."""
    packed_writer = getattr(sink, "packed_writer", None)
    if packed_writer is not None:
        return packed_writer(fields)  # type: ignore[no-any-return]
    pack = whole_record(fields).pack
    write_bytes = sink.write_bytes

    def write(*values: Any) -> int:
        return write_bytes(pack(*values))

    return write


class PipelineStats(msgspec.Struct, frozen=True):
    """A snapshot of a pipeline's counters."""

    frames_in: int
    events_in: int
    published: int
    rejected: int
    rejected_by_reason: dict[str, int]
    rejected_by_symbol: dict[str, dict[str, int]]
    last_recv_time_ns_by_symbol: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain JSON-ready data."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class FramePipeline:
    """Decode, check and publish websocket frames into a ring.

    ``symbols``: the symbols this shard follows; each is added to the writer's symbol table (its id is the
    record's ``symbol_id``). ``writer``: a ``RingWriter``. ``clock``: wall clock for the future-skew bound when
    receive times are monotonic, and the firewall's warning rate limit.

    ``recv_clock``: what ``recv_time_ns`` passed to :meth:`process` is. ``"monotonic"`` (the live feed:
    CLOCK_MONOTONIC ns, as the ring documents) — the future-skew bound then uses ``clock.time_ns()``;
    ``"wall"`` (replay: the recording's receive times, Unix ns) — the bound uses ``recv_time_ns`` itself, so a
    replay of an old recording is judged by the time it was received, not by today. ``replay=True`` sets
    ``FLAG_REPLAY`` on every record.
    """

    def __init__(
        self,
        symbols: Iterable[str],
        writer: RecordSink,
        clock: Clock | None = None,
        *,
        recv_clock: Literal["monotonic", "wall"] = "monotonic",
        replay: bool = False,
        max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
        firewall: Firewall | None = None,
    ) -> None:
        if recv_clock not in ("monotonic", "wall"):
            raise ValueError(f"recv_clock must be 'monotonic' or 'wall', not {recv_clock!r}")
        self._clock = clock or SystemClock()
        self._writer = writer
        self._ids: dict[str, int] = {name: writer.add_symbol(name) for name in symbols}
        self.firewall = firewall or Firewall(self._ids, clock=self._clock, max_future_skew_ms=max_future_skew_ms)
        self._recv_is_wall = recv_clock == "wall"
        self._flags = FLAG_REPLAY if replay else 0
        self.frames_in = 0
        self._extra_events = 0  # array elements beyond the first of each array frame
        self._last_recv: dict[str, int] = {}
        self._handlers = self._make_handlers()
        self.process = self._make_process()  # type: ignore[method-assign]  # the same steps, over closure locals
        self._fast: Any = None  # the batch path (aegis.feed.fast.FastPath), built on first use
        if replay and self._batch_capable():
            self._fast_path()  # a replay batches: load (or compile) its kernels now, before any timed region

    @property
    def symbol_ids(self) -> dict[str, int]:
        """The ring symbol id of each followed symbol."""
        return dict(self._ids)

    def process(self, frame: bytes, recv_time_ns: int) -> bool:
        """Decode, check and publish one frame received at ``recv_time_ns``; return whether anything was published."""
        self.frames_in += 1
        try:
            event = decode_combined(frame).data  # the fast path, inlined: one call less per frame
        except Exception:
            event = decode_frame(frame)  # bare events, and the diagnosis of everything else
        now_ms = (recv_time_ns if self._recv_is_wall else self._clock.time_ns()) // 1_000_000
        return self._handlers[type(event)](event, recv_time_ns, now_ms)  # type: ignore[no-any-return]

    def _make_process(self) -> Callable[[bytes, int], bool]:
        """Return :meth:`process` as a closure (what ``self.process`` is): no attribute lookups per frame."""
        handlers = self._handlers
        pipeline = self

        if self._recv_is_wall:

            def process(frame: bytes, recv_time_ns: int) -> bool:
                pipeline.frames_in += 1
                try:
                    event = decode_combined(frame).data
                except Exception:
                    event = decode_frame(frame)
                return handlers[type(event)](event, recv_time_ns, recv_time_ns // 1_000_000)  # type: ignore[no-any-return]

            return process
        wall_ns = self._clock.time_ns

        def process_live(frame: bytes, recv_time_ns: int) -> bool:
            pipeline.frames_in += 1
            try:
                event = decode_combined(frame).data
            except Exception:
                event = decode_frame(frame)
            return handlers[type(event)](event, recv_time_ns, wall_ns() // 1_000_000)  # type: ignore[no-any-return]

        return process_live

    # -- batches -----------------------------------------------------------------------------------------------

    def process_lines(self, data: bytes | bytearray | memoryview, prev_recv_ns: int = 0) -> int:
        """Process the hftbacktest ``<local_ns> <json>`` lines in ``data`` (whole lines; the last may lack its
        newline) as ``read_hftbacktest`` + :meth:`process` would, frame by frame; return the last receive time.

        Lines are split as ``read_hftbacktest`` splits them (empty lines skipped; a line without a numeric stamp
        is a frame received at the previous line's time, ``prev_recv_ns`` before the first).
        """
        buf = _readonly_bytes(data)
        if self._batch_capable() and 0 <= prev_recv_ns < 1 << 63:
            from aegis.feed.fast import split_lines

            newlines = np.flatnonzero(buf == 10)
            starts = np.empty(newlines.shape[0] + 1, np.int64)
            ends = np.empty_like(starts)
            recv = np.empty_like(starts)
            n, last = split_lines(buf, newlines, prev_recv_ns, starts, ends, recv)
            if n >= 0:
                self._fast_path().run(buf, starts[:n], ends[:n], recv[:n])
                return int(last)
        # a stamp beyond int64 (or a sink without write_batch): the reader's own splitting, frame by frame
        process = self.process
        recv_ns = prev_recv_ns
        for recv_ns, frame in hftbacktest_frames(bytes(data).split(b"\n"), prev_recv_ns):
            process(frame, recv_ns)
        return recv_ns

    def process_many(self, frames: Sequence[bytes], recv_times: Sequence[int]) -> None:
        """Process ``frames[i]`` received at ``recv_times[i]``, in order: the same records, counters and state
        as calling :meth:`process` on each, with the high-rate kinds decided by the compiled batch path."""
        if len(frames) != len(recv_times):
            raise ValueError(f"{len(frames)} frames but {len(recv_times)} receive times")
        if self._batch_capable():
            try:
                if not all(type(t) is int for t in recv_times):
                    raise TypeError("receive times must be ints")
                recv = np.array(recv_times, dtype=np.int64)
                lengths = np.fromiter(map(len, frames), np.int64, len(frames))
                buf = _readonly_bytes(b"".join(frames))
            except (TypeError, ValueError, OverflowError):
                pass  # not all bytes, or a time beyond int64: frame by frame, as process() takes them
            else:
                ends = np.cumsum(lengths)
                self._fast_path().run(buf, ends - lengths, ends, recv)
                return
        process = self.process
        for frame, recv_ns in zip(frames, recv_times, strict=True):
            process(frame, recv_ns)

    def _batch_capable(self) -> bool:
        """The batch path needs a sink with ``write_batch`` and the firewall following exactly our symbols."""
        if self._fast is not None:
            return True
        if getattr(self._writer, "write_batch", None) is None:
            return False
        return all(set(self.firewall.ordering_state(s)) == set(self._ids) for s in ("aggTrade", "trade", "bookTicker"))

    def _fast_path(self) -> Any:
        if self._fast is None:
            from aegis.feed.fast import FastPath, warm_up

            warm_up()

            def count_frames(n: int) -> None:
                self.frames_in += n

            self._fast = FastPath(
                self.firewall,
                self._ids,
                flags=self._flags,
                wall=self._recv_is_wall,
                wall_ns=self._clock.time_ns,
                writer=self._writer,
                process_one=self.process,
                last_recv=self._last_recv,
                count_frames=count_frames,
            )
        return self._fast

    @property
    def published(self) -> int:
        """How many records were published (every event is published or rejected, so events_in - rejected)."""
        return self.frames_in + self._extra_events - self.firewall.rejected

    @property
    def stats(self) -> PipelineStats:
        """Return a snapshot of the counters."""
        fw = self.firewall
        by_symbol: dict[str, dict[str, int]] = {}
        for (symbol, reason), n in fw.counts_by_symbol.items():
            by_symbol.setdefault(symbol, {})[reason] = n
        return PipelineStats(
            frames_in=self.frames_in,
            events_in=self.frames_in + self._extra_events,
            published=self.published,
            rejected=fw.rejected,
            rejected_by_reason={reason: n for reason, n in fw.counts.items() if n},
            rejected_by_symbol=by_symbol,
            last_recv_time_ns_by_symbol=dict(self._last_recv),
        )

    # -- per event type ----------------------------------------------------------------------------------------
    # One closure per event type, over locals bound once (closure cells are cheaper to read than attributes):
    # check → on failure count the reason → else pack, write, note the receive time.

    def _make_handlers(self) -> dict[type, Callable[[Any, int, int], bool]]:
        fw = self.firewall
        reject = fw.reject
        sink = self._writer
        write_trade = record_writer(sink, TRADE_FIELDS)
        write_book_ticker = record_writer(sink, BOOK_TICKER_FIELDS)
        write_mark_price = record_writer(sink, MARK_PRICE_FIELDS)
        write_kline = record_writer(sink, KLINE_FIELDS)
        write_liquidation = record_writer(sink, LIQUIDATION_FIELDS)
        ids = self._ids
        last_recv = self._last_recv
        flags = self._flags

        # bookTicker, trade and aggTrade (nearly every frame) take a fused path: each field is loaded once, the
        # firewall's acceptance condition is tried as one expression, and the accepted event is published from the
        # same locals. The condition is the firewall's own shortcut (``Firewall.check_book_ticker`` & co.) over the
        # firewall's own ordering state; anything it does not accept goes to the firewall's check, which names the
        # reason (or accepts, if the shortcut was only stricter). A test holds the two to the same decisions.
        book_state = fw.ordering_state("bookTicker")
        trade_state = fw.ordering_state("trade")
        agg_state = fw.ordering_state("aggTrade")
        skew_ms = fw.max_future_skew_ms

        def on_book_ticker(ev: BookTicker, recv_ns: int, now_ms: int) -> bool:
            symbol = ev.s
            state = book_state.get(symbol)
            if state is not None:
                update_id = ev.u
                tx_time = ev.T
                event_time = ev.E
                bid = ev.b
                ask = ev.a
                bid_qty = ev.B
                ask_qty = ev.A
                limit = now_ms + skew_ms
                if (
                    0.0 < bid <= ask < _INF
                    and 0.0 <= bid_qty < _INF
                    and 0.0 <= ask_qty < _INF
                    and state[0] < update_id < _MAX_ID
                    and _MIN_MS <= event_time <= limit
                    and state[1] <= tx_time <= limit
                ):
                    state[0] = update_id
                    state[1] = tx_time
                    write_book_ticker(
                        BOOK_TICKER, flags, ids[symbol], event_time, recv_ns,
                        bid, bid_qty, ask, ask_qty, update_id, tx_time,
                    )  # fmt: skip
                    last_recv[symbol] = recv_ns
                    return True
            reason = check_book_ticker(ev, now_ms)
            if reason is None:
                write_book_ticker(BOOK_TICKER, flags, ids[symbol], ev.E, recv_ns, ev.b, ev.B, ev.a, ev.A, ev.u, ev.T)
                last_recv[symbol] = recv_ns
                return True
            reject(reason, symbol)
            return False

        def on_trade(ev: Trade, recv_ns: int, now_ms: int) -> bool:
            symbol = ev.s
            state = trade_state.get(symbol)
            if state is not None:
                trade_id = ev.t
                trade_time = ev.T
                event_time = ev.E
                price = ev.p
                qty = ev.q
                limit = now_ms + skew_ms
                if (
                    ev.X == "MARKET"
                    and 0.0 < price < _INF
                    and 0.0 <= qty < _INF
                    and state[0] < trade_id < _MAX_ID
                    and _MIN_MS <= event_time <= limit
                    and state[1] <= trade_time <= limit
                ):
                    state[0] = trade_id
                    state[1] = trade_time
                    write_trade(
                        TRADE, flags | ev.m, ids[symbol], event_time, recv_ns,
                        price, qty, trade_id, trade_id, trade_id, trade_time,
                    )  # fmt: skip
                    last_recv[symbol] = recv_ns
                    return True
            reason = check_trade(ev, now_ms)
            if reason is None:
                trade_id = ev.t
                write_trade(
                    TRADE, flags | ev.m, ids[symbol], ev.E, recv_ns, ev.p, ev.q, trade_id, trade_id, trade_id, ev.T
                )
                last_recv[symbol] = recv_ns
                return True
            reject(reason, symbol)
            return False

        def on_agg_trade(ev: AggTrade, recv_ns: int, now_ms: int) -> bool:
            symbol = ev.s
            state = agg_state.get(symbol)
            if state is not None:
                agg_id = ev.a
                first_id = ev.f
                last_id = ev.l
                trade_time = ev.T
                event_time = ev.E
                price = ev.p
                qty = ev.q
                limit = now_ms + skew_ms
                if (
                    0.0 < price < _INF
                    and 0.0 <= qty < _INF
                    and state[0] < agg_id < _MAX_ID
                    and 0 <= first_id <= last_id < _MAX_ID
                    and _MIN_MS <= event_time <= limit
                    and state[1] <= trade_time <= limit
                ):
                    state[0] = agg_id
                    state[1] = trade_time
                    write_trade(
                        TRADE, flags | ev.m, ids[symbol], event_time, recv_ns,
                        price, qty, agg_id, first_id, last_id, trade_time,
                    )  # fmt: skip
                    last_recv[symbol] = recv_ns
                    return True
            reason = check_agg_trade(ev, now_ms)
            if reason is None:
                write_trade(TRADE, flags | ev.m, ids[symbol], ev.E, recv_ns, ev.p, ev.q, ev.a, ev.f, ev.l, ev.T)
                last_recv[symbol] = recv_ns
                return True
            reject(reason, symbol)
            return False

        def on_mark_price(ev: MarkPriceUpdate, recv_ns: int, now_ms: int) -> bool:
            reason = fw.check_mark_price(ev, now_ms)
            if reason is None:
                symbol = ev.s
                rate = parse_funding_rate(ev.r)
                write_mark_price(MARK_PRICE, flags, ids[symbol], ev.E, recv_ns, ev.p, ev.i, ev.P, rate, ev.T)
                last_recv[symbol] = recv_ns
                return True
            reject(reason, ev.s)
            return False

        def on_kline(ev: KlineUpdate, recv_ns: int, now_ms: int) -> bool:
            reason = fw.check_kline(ev, now_ms)
            if reason is None:
                symbol = ev.s
                k = ev.k
                interval_ms = k.T - k.t + 1  # the firewall checked it against the interval
                write_kline(
                    KLINE, flags | FLAG_KLINE_CLOSED if k.x else flags, ids[symbol], ev.E, recv_ns,
                    k.c, k.v, k.o, k.h, k.l, k.q, k.V, k.t, k.T, k.n, interval_ms,
                )  # fmt: skip
                last_recv[symbol] = recv_ns
                return True
            reject(reason, ev.s)
            return False

        def on_force_order(ev: ForceOrder, recv_ns: int, now_ms: int) -> bool:
            o = ev.o
            reason = fw.check_force_order(ev, now_ms)
            if reason is None:
                symbol = o.s
                write_liquidation(
                    LIQUIDATION, flags | FLAG_SELL if o.S == "SELL" else flags, ids[symbol],
                    ORDER_TYPE_CODES[o.o], ORDER_STATUS_CODES[o.X], ev.E, recv_ns,
                    o.p, o.q, o.ap, o.z, o.l, o.T,
                )  # fmt: skip
                last_recv[symbol] = recv_ns
                return True
            reject(reason, o.s)
            return False

        def on_depth(ev: DepthUpdate, recv_ns: int, now_ms: int) -> bool:
            reject(UNSUPPORTED_EVENT, ev.s)
            return False

        def on_rejected(ev: Rejected, recv_ns: int, now_ms: int) -> bool:
            reject(ev.reason, ev.symbol, ev.detail)
            return False

        def on_array(events: list[Any], recv_ns: int, now_ms: int) -> bool:
            if not events:  # "data": [] carries nothing, yet the frame must be counted
                reject(MALFORMED_FRAME, "", "empty event array")
                return False
            self._extra_events += len(events) - 1
            published = False
            for ev in events:
                handler = handlers.get(type(ev))
                if handler is None or handler is on_array:  # decode_frame never nests arrays; keep counts exact
                    reject(MALFORMED_FRAME, "", "nested array")
                    continue
                published = handler(ev, recv_ns, now_ms) or published
            return published

        check_book_ticker = fw.check_book_ticker
        check_trade = fw.check_trade
        check_agg_trade = fw.check_agg_trade
        handlers: dict[type, Callable[[Any, int, int], bool]] = {
            BookTicker: on_book_ticker,
            Trade: on_trade,
            AggTrade: on_agg_trade,
            MarkPriceUpdate: on_mark_price,
            KlineUpdate: on_kline,
            ForceOrder: on_force_order,
            DepthUpdate: on_depth,
            Rejected: on_rejected,
            list: on_array,
        }
        return handlers


def _readonly_bytes(data: bytes | bytearray | memoryview) -> np.ndarray:
    """``data`` as a read-only uint8 array without a copy (one array type, so one compiled kernel)."""
    buf = np.frombuffer(data, np.uint8)
    if buf.flags.writeable:
        buf = buf.view()
        buf.flags.writeable = False
    return buf
