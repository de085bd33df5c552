"""The brain's ring consumer: batches of records from the feed's ring → firewall → candles and ticks → bus.

One :meth:`RingConsumer.step` reads up to ``batch_records`` records with ``RingReader.read_words`` (one copy into a
reused buffer), drops what the consumer-side firewall refuses (one numba call maps the symbols and pre-checks the
records; the feed's checker runs only for a batch with a refused record), runs the candle/tick kernel over the
batch, publishes the closed candles (each with the receive time of the record that closed it) and the tick updates
on the event bus, and hands the closed candles to the writer (which never blocks). Tick updates (one per touched
symbol) go out after every batch once the reader has caught up, and at most every ``tick_interval_s`` while it is
behind: under a burst batches grow, book-ticker and mark-price updates of a symbol collapse into the newest (counted
as conflated) and the trades since the last tick update fold into its high/low/volume; trades and klines are never
skipped: every one of them goes through the candle kernel.

Lag, as GetBrainStatus reports it:

* ``lag_records`` = ring published − reader cursor + 1: records published and not read yet;
* ``lag_ns``: at the moment the newest record of a batch was processed, how long ago the feed had received it
  (``recv_time_ns`` is the feed host's clock — CLOCK_MONOTONIC or Unix ns, told apart by size, see
  :data:`WALL_CLOCK_NS`; feed and brain share the host in the pod; replayed records carry the recording's
  receive time, so their age is not a lag and is not reported);
* the reader's counters: records lost to overruns, overruns, torn reads, resyncs, writer epoch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aegis.brain.candles import CandleBook
from aegis.brain.events import EventBus
from aegis.brain.persistence import CandleWriter
from aegis.brain.timeframes import Clock, SystemClock
from aegis.core import records as rec
from aegis.core import ring
from aegis.core.ring import RingNotReadyError, RingReader

log = logging.getLogger("aegis.brain.consumer")

RATE_WINDOW_NS = 10_000_000_000
"""ticks_per_second is measured over the last 10 s."""

WALL_CLOCK_NS = 10**17
"""A ``recv_time_ns`` above this (1973 as Unix ns; three years of uptime as CLOCK_MONOTONIC) is a wall-clock time.

The ring's receive time has been CLOCK_MONOTONIC and is becoming Unix ns (wall clock); telling them apart by size
keeps the lag right with either feed.
"""

_B_FLAGS, _W_EVENT_MS, _W_RECV_NS = 9, 2, 3
"""Byte offset of ``flags``, word offsets of ``event_time_ms`` and ``recv_time_ns`` in a MARKET_RECORD (checked
against the layout when the module loads)."""
assert rec.MARKET_RECORD.fields["flags"][1] == _B_FLAGS
assert rec.MARKET_RECORD.fields["event_time_ms"][1] == 8 * _W_EVENT_MS
assert rec.MARKET_RECORD.fields["recv_time_ns"][1] == 8 * _W_RECV_NS

REST_BACKFILL_FLAG: int = getattr(rec, "FLAG_REST", 0)
"""Record flag the feed sets on klines it backfilled over REST (0 with a record layout that has none)."""


class RecordFilter(Protocol):
    """The consumer-side firewall: ``check(batch, now_ms) -> (ok_mask, reason_codes)``, counting by reason."""

    symbol_count: int | None
    counts: dict[str, int]

    def check(self, batch: np.ndarray, now_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]: ...


def default_record_filter() -> RecordFilter | None:
    """Return the feed's secondary firewall (``aegis.feed.firewall.RecordChecker``), or None if it is missing.

    This is the one hook where the brain re-checks what it reads: the feed validates every event before it
    publishes, and this second look at the numbers protects the brain from a bad writer or a corrupted slot.
    """
    try:
        from aegis.feed.firewall import RecordChecker
    except ImportError:  # pragma: no cover - the feed ships it; keep the brain usable without
        log.warning("aegis.feed.firewall.RecordChecker is not available: ring records are not re-checked")
        return None
    return RecordChecker(logger=logging.getLogger("aegis.brain.firewall"))


def _is_feed_checker(record_filter: RecordFilter | None) -> bool:
    try:
        from aegis.feed.firewall import RecordChecker
    except ImportError:  # pragma: no cover
        return False
    return isinstance(record_filter, RecordChecker)


class RingConsumer:
    """Read the feed's ring and keep the candle book, the bus and the writer fed."""

    def __init__(
        self,
        path: Path,
        book: CandleBook,
        bus: EventBus,
        writer: CandleWriter,
        *,
        clock: Clock | None = None,
        batch_records: int = 4096,
        idle_sleep_s: float = 0.002,
        attach_interval_s: float = 0.5,
        quiet_close_s: float = 10.0,
        record_filter: RecordFilter | None = None,
        on_new_symbols: Any = None,
        tick_interval_s: float = 0.025,
        record_time: Any = None,
    ) -> None:
        """``record_time``: in a replay (AEGIS_CLOCK=record), the :class:`~aegis.brain.prices.RecordTimePrices`
        that cuts batches into windows of record time and takes every slice's tick updates."""
        self.path = Path(path)
        self.book = book
        self.bus = bus
        self.writer = writer
        self._clock = clock or SystemClock()
        self._buffer = np.zeros(batch_records, dtype=rec.MARKET_RECORD)
        words = self._buffer.dtype.itemsize // 8
        # the buffer as bytes and as 64-bit words (what the kernels read), made once: a batch is a prefix of them
        self._raw = self._buffer.view(np.uint8).reshape(batch_records, self._buffer.dtype.itemsize)
        self._fw = self._buffer.view(np.float64).reshape(batch_records, words)
        self._iw = self._buffer.view(np.int64).reshape(batch_records, words)
        self._sym = np.zeros(batch_records, dtype=np.int64)  # the book's index of each record's symbol
        self._idle_sleep_s = idle_sleep_s
        self._attach_interval_s = attach_interval_s
        self._quiet_close_ms = int(quiet_close_s * 1000)
        self._filter = record_filter
        self._kernels: Any = None  # aegis.brain.kernels once the first batch is checked (numba loads lazily)
        self._precheck = _is_feed_checker(record_filter)
        self._min_time_ms = 0
        self._on_new_symbols = on_new_symbols
        self._tick_interval_ns = int(tick_interval_s * 1e9)
        self._record_time = record_time
        self._ticks_published_ns = 0
        self.reader: RingReader | None = None
        self.state = "waiting"
        self._ring_ids = np.zeros(0, dtype=np.int64)  # ring symbol id -> book index
        self._seen_resyncs = 0
        self._seen_epoch_changes = 0
        self.records_processed = 0
        self.records_rejected = 0
        self.batches = 0
        self.last_lag_ns: int | None = None
        self.last_event_time_ms = 0
        self._last_replay = False
        self._rate: deque[tuple[int, int]] = deque()
        self._next_quiet_check_ns = 0
        self.attached_at_ns: int | None = None

    # -- attaching -------------------------------------------------------------------------------------------

    async def wait_for_ring(self) -> RingReader:
        """Attach to the ring, waiting (without blocking the event loop) until the feed has created it."""
        logged = False
        while True:
            try:
                reader = ring.attach(
                    self.path, rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT, timeout=0.0, start="oldest"
                )
            except RingNotReadyError as exc:
                if not logged:
                    log.info("waiting for the feed to create the ring %s (%s)", self.path, exc)
                    logged = True
                await asyncio.sleep(self._attach_interval_s)
                continue
            self.attach(reader)
            return reader

    def attach(self, reader: RingReader) -> None:
        """Start consuming ``reader`` (the service attaches by path; tests may hand one in)."""
        self.reader = reader
        self._words = reader.words_of(self._buffer)  # the buffer as the reader copies into it, checked once
        self.state = "attached"
        self.attached_at_ns = self._clock.monotonic_ns()
        self._seen_resyncs = reader.resyncs
        self._seen_epoch_changes = reader.epoch_changes
        self.book.mark_gap()
        self._refresh_symbols()
        log.info(
            "attached to the ring %s (epoch %d, %d symbols, %d records behind)",
            self.path,
            reader.epoch,
            len(self._ring_ids),
            reader.lag,
        )

    def _refresh_symbols(self) -> None:
        assert self.reader is not None
        table = self.reader.symbols()
        ids = np.full(max(table, default=-1) + 1, -1, dtype=np.int64)
        new = []
        for ring_id, name in table.items():
            if not self.book.has_symbol(name):
                new.append(name)
            ids[ring_id] = self.book.symbol_index(name)
        self._ring_ids = ids
        if self._filter is not None:
            self._filter.symbol_count = len(ids)
        if new and self._on_new_symbols is not None:
            self._on_new_symbols(new)

    # -- consuming -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait for the ring, then consume it forever."""
        if self.reader is None:
            await self.wait_for_ring()
        while True:
            if self.step() == 0:
                self.close_quiet_candles()
                await asyncio.sleep(self._idle_sleep_s)
            else:
                await asyncio.sleep(0)  # let gRPC calls, the bus and the writer run between batches

    def step(self) -> int:
        """Read and process one batch; return how many records were read (0: nothing published)."""
        reader = self.reader
        if reader is None:
            return 0
        count = reader.read_words(self._words)
        if reader.epoch_changes != self._seen_epoch_changes:
            self._seen_epoch_changes = reader.epoch_changes
            self._refresh_symbols()  # a re-created ring file may number its symbols differently
        if reader.resyncs != self._seen_resyncs:
            self._seen_resyncs = reader.resyncs
            self.book.mark_gap()  # the records we lost may belong to the candles forming now
        if count == 0:
            return 0
        k = self._kernels if self._kernels is not None else self._load_kernels()
        batch = self._buffer[:count]
        sym = self._sym[:count]
        views = (self._raw[:count], self._fw[:count], self._iw[:count])
        index: np.ndarray | None = sym
        seen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = views
        if not (self._precheck and self._mapped_and_plausible(k, views, sym)):
            batch, index, seen = self._map_and_filter(k, batch, sym, views)
        if batch.shape[0]:
            if self._record_time is None:
                self._process(batch, index, seen)
            else:
                self._process_in_windows(batch)
        self.records_processed += count
        self.batches += 1
        now_ns = self._clock.monotonic_ns()
        self._rate.append((now_ns, count))
        while self._rate and self._rate[0][0] < now_ns - RATE_WINDOW_NS:
            self._rate.popleft()
        return count

    def _ticks_due(self) -> bool:
        """Publish the tick updates now? Yes when the reader has caught up, else every ``tick_interval_s``.

        Under a burst the book keeps folding records into one pending tick per symbol (latest prices, the trade
        high/low/volume since the last publication) and the bus gets them at most every ``tick_interval_s``:
        building and dispatching hundreds of tick events per batch would cost more than the batch itself, and the
        price pusher conflates them per ``price_push_ms`` anyway. No trade is lost: its price is in the high/low.
        """
        assert self.reader is not None
        now_ns = self._clock.monotonic_ns()
        if self.reader.lag > 0 and now_ns - self._ticks_published_ns < self._tick_interval_ns:
            return False
        self._ticks_published_ns = now_ns
        return True

    def _load_kernels(self) -> Any:
        from aegis.brain import kernels

        self._kernels = kernels
        if self._precheck:
            from aegis.feed.firewall import MIN_EXCHANGE_TIME_MS

            self._min_time_ms = MIN_EXCHANGE_TIME_MS
        return kernels

    def _mapped_and_plausible(self, k: Any, views: tuple[np.ndarray, np.ndarray, np.ndarray], sym: np.ndarray) -> bool:
        """Map the batch's symbol ids into ``sym`` and pre-check it, in one kernel call: True when every id mapped
        and the feed's firewall would accept every record (only with the feed's ``RecordChecker``)."""
        checker: Any = self._filter
        symbol_count = checker.symbol_count
        return bool(
            k.map_plausible(
                *views, self._ring_ids, sym, -1 if symbol_count is None else symbol_count, self._min_time_ms,
                self._clock.time_ns() // 1_000_000 + checker.max_future_skew_ms,
            )
        )  # fmt: skip

    def _map_and_filter(
        self, k: Any, batch: np.ndarray, sym: np.ndarray, views: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """The batch's symbol ids mapped (the table refreshed for an id it lacks) and its records filtered, step by
        step: the batch left, its book indexes and views (None where records were dropped or an id is unknown)."""
        mapped: np.ndarray | None = sym
        if k.map_symbols(views[0], self._ring_ids, sym):
            self._refresh_symbols()
            if k.map_symbols(views[0], self._ring_ids, sym):
                mapped = None  # an id beyond the ring's table: the firewall refuses it (or the slow path raises)
        if self._filter is not None:
            now_ms = self._clock.time_ns() // 1_000_000
            if not self._plausible(views, now_ms):
                ok, _ = self._filter.check(batch, now_ms)
                if not ok.all():
                    self.records_rejected += int(batch.shape[0] - ok.sum())
                    return batch[ok], None, None
        return batch, mapped, views

    def _plausible(self, views: tuple[np.ndarray, np.ndarray, np.ndarray], now_ms: int) -> bool:
        """True when the feed's firewall would accept every record of the batch (checked in one numba pass).

        ``views``: the batch as bytes and as float64 / int64 words. Only for the feed's ``RecordChecker`` (whose
        checks :func:`aegis.brain.kernels.first_implausible` repeats); any other filter, and any batch with a
        refused record, goes through ``check`` itself, which names and counts the reasons.
        """
        if not self._precheck:
            return False
        checker: Any = self._filter
        symbol_count = checker.symbol_count
        first = self._kernels.first_implausible(
            *views,
            -1 if symbol_count is None else symbol_count,
            self._min_time_ms,
            now_ms + checker.max_future_skew_ms,
        )
        return bool(first < 0)

    def _process_in_windows(self, batch: np.ndarray) -> None:
        """Process ``batch`` in slices that end where a window of record time does, sealing each window there."""
        start = 0
        for cut in self._record_time.cuts(batch):
            if cut > start:
                self._process(batch[start:cut])
            self._record_time.seal()
            start = cut
        if start < batch.shape[0]:
            self._process(batch[start:])

    def _process(
        self,
        batch: np.ndarray,
        symbol_index: np.ndarray | None = None,
        views: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Run ``batch`` through the book; ``symbol_index`` and ``views`` (the batch as bytes and words) when the
        caller has them already (the whole buffer's prefix), else they are made here."""
        if symbol_index is None:
            symbol_index = self._ring_ids[batch["symbol_id"]]
        # each event carries the closing record's recv_time_ns
        closed = self.book.process(batch, symbol_index, views)
        publish, submit = self.bus.publish, self.writer.submit
        for event in closed:
            publish(event)
            submit(event.candle)
        if self._record_time is not None:
            # every slice: its trades belong to one window. They go to the sequencer, not the bus: in record time the
            # sequencer is the only reader of ticks (no PricePusher runs), and one bus event per slice would cost
            # more than the slice
            self._record_time.on_ticks(self.book.take_ticks())
        elif self._ticks_due():
            for tick in self.book.take_ticks():
                publish(tick)
        if views is not None:
            last = batch.shape[0] - 1
            flags = int(views[0][last, _B_FLAGS])
            self.last_event_time_ms = int(views[2][last, _W_EVENT_MS])
            recv_ns = int(views[2][last, _W_RECV_NS])
        else:
            record = batch[-1]
            flags = int(record["flags"])
            self.last_event_time_ms = int(record["event_time_ms"])
            recv_ns = int(record["recv_time_ns"])
        self._last_replay = bool(flags & rec.FLAG_REPLAY)
        if self._last_replay:
            self.last_lag_ns = None
        else:
            now_ns = self._clock.time_ns() if recv_ns > WALL_CLOCK_NS else self._clock.monotonic_ns()
            self.last_lag_ns = max(0, now_ns - recv_ns)

    def close_quiet_candles(self) -> int:
        """Close live candles nothing has closed ``quiet_close_s`` after their end (symbols that went quiet).

        Only when every published record has been read (nothing waiting could still change them), at most once
        a second, and never while replayed records are flowing (a replay closes candles by record times only).
        """
        if self._quiet_close_ms <= 0 or self._last_replay or self.reader is None or self.reader.lag > 0:
            return 0
        now_ns = self._clock.monotonic_ns()
        if now_ns < self._next_quiet_check_ns:
            return 0
        self._next_quiet_check_ns = now_ns + 1_000_000_000
        closed = self.book.close_due(self._clock.time_ns() // 1_000_000, self._quiet_close_ms)
        for event in closed:
            self.bus.publish(event)
            self.writer.submit(event.candle)
        return len(closed)

    # -- status ----------------------------------------------------------------------------------------------

    @property
    def ticks_per_second(self) -> float:
        if not self._rate:
            return 0.0
        now_ns = self._clock.monotonic_ns()
        total = sum(n for t, n in self._rate if t >= now_ns - RATE_WINDOW_NS)
        window_ns = min(RATE_WINDOW_NS, now_ns - (self.attached_at_ns or now_ns)) or RATE_WINDOW_NS
        return total / (max(window_ns, 1_000_000_000) / 1e9)

    def status(self) -> dict[str, Any]:
        """Return the consumer's lag and counters (the ring part of GetBrainStatus)."""
        reader = self.reader
        out: dict[str, Any] = {
            "state": self.state,
            "ring": str(self.path),
            "records_processed": self.records_processed,
            "records_rejected": self.records_rejected,
            "batches": self.batches,
            "ticks_per_second": self.ticks_per_second,
            "lag_ns": self.last_lag_ns,
            "last_event_time_ms": self.last_event_time_ms,
            "replaying": self._last_replay,
        }
        if reader is not None:
            stats = reader.stats()
            out.update(
                lag_records=reader.lag,
                published=reader.published,
                cursor=reader.cursor,
                writer_epoch=reader.epoch,
                resyncs=stats["resyncs"],
                overruns=stats["overruns"],
                records_lost=stats["records_lost"],
                torn_reads=stats["torn_reads"],
                epoch_changes=stats["epoch_changes"],
                writer_heartbeat_age_s=reader.writer_heartbeat_age_ns() / 1e9,
            )
        if self._filter is not None:
            out["rejected_by_reason"] = {k: v for k, v in self._filter.counts.items() if v}
        return out


def warm_up() -> None:
    """Compile (or load from numba's cache) the ring and candle kernels."""
    from aegis.brain import candles

    ring.warm_up()
    candles.warm_up()
