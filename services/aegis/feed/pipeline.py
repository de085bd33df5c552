"""The one path from a websocket frame to the ring: decode → firewall → ``MARKET_RECORD`` → ring.

The live websocket feed, replay and the benchmark all call :meth:`FramePipeline.process`, so what a replay or a
benchmark shows is what production does. Per frame it costs one typed msgspec decode, the firewall's checks, one
``struct.pack`` (``records.pack_*``) and one ``RingWriter.write_bytes``; nothing is logged on the accepted path.

Accounting: every frame adds 1 to ``frames_in``; an array frame (``!markPrice@arr``) of *n* elements adds *n* to
``events_in`` (any other frame adds 1). Every event is then either published (one ring record) or counted under
exactly one firewall reason, so ``published + rejected == events_in`` always holds, whatever the bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

import msgspec

from aegis.core.records import (
    FLAG_REPLAY,
    pack_book_ticker,
    pack_kline,
    pack_liquidation,
    pack_mark_price,
    pack_trade,
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
    UNSUPPORTED_EVENT,
    Clock,
    Firewall,
    SystemClock,
    parse_funding_rate,
)

__all__ = ["FramePipeline", "PipelineStats", "RecordSink"]


class RecordSink(Protocol):
    """Where records go: a ``RingWriter`` (or anything with its ``write_bytes`` and ``add_symbol``)."""

    def write_bytes(self, record: bytes) -> int: ...

    def add_symbol(self, name: str) -> int: ...


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
        write = self._writer.write_bytes
        ids = self._ids
        last_recv = self._last_recv
        flags = self._flags

        def on_book_ticker(ev: BookTicker, recv_ns: int, now_ms: int) -> bool:
            reason = check_book_ticker(ev, now_ms)
            if reason is None:
                symbol = ev.s
                write(pack_book_ticker(ids[symbol], ev.E, recv_ns, ev.u, ev.b, ev.B, ev.a, ev.A, ev.T, flags))
                last_recv[symbol] = recv_ns
                return True
            reject(reason, ev.s)
            return False

        def on_trade(ev: Trade, recv_ns: int, now_ms: int) -> bool:
            reason = check_trade(ev, now_ms)
            if reason is None:
                symbol = ev.s
                trade_id = ev.t
                write(
                    pack_trade(ids[symbol], ev.E, recv_ns, ev.p, ev.q, trade_id, trade_id, trade_id, ev.T, ev.m, flags)
                )
                last_recv[symbol] = recv_ns
                return True
            reject(reason, ev.s)
            return False

        def on_agg_trade(ev: AggTrade, recv_ns: int, now_ms: int) -> bool:
            reason = check_agg_trade(ev, now_ms)
            if reason is None:
                symbol = ev.s
                write(pack_trade(ids[symbol], ev.E, recv_ns, ev.p, ev.q, ev.a, ev.f, ev.l, ev.T, ev.m, flags))
                last_recv[symbol] = recv_ns
                return True
            reject(reason, ev.s)
            return False

        def on_mark_price(ev: MarkPriceUpdate, recv_ns: int, now_ms: int) -> bool:
            reason = fw.check_mark_price(ev, now_ms)
            if reason is None:
                symbol = ev.s
                rate = parse_funding_rate(ev.r)
                write(pack_mark_price(ids[symbol], ev.E, recv_ns, ev.p, ev.i, ev.P, rate, ev.T, flags))
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
                write(
                    pack_kline(
                        ids[symbol], ev.E, recv_ns, k.t, k.T, interval_ms,
                        open=k.o, high=k.h, low=k.l, close=k.c, base_volume=k.v, quote_volume=k.q,
                        number_of_trades=k.n, taker_buy_base_volume=k.V, closed=k.x, flags=flags,
                    )
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
                write(pack_liquidation(ids[symbol], ev.E, recv_ns, o.S, o.o, o.X, o.p, o.ap, o.q, o.z, o.l, o.T, flags))
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
