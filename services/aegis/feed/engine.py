"""The feed process's engine: universe → ring → connections (or a replay) → one pipeline.

Closed 1m klines get one more guarantee than other records: downstream sees exactly one per symbol and minute.
:class:`KlineGate` sits between the pipeline and the ring; it drops a closed kline already published (a resend
after a reconnect, or one already fetched over REST: counted as ``duplicate_kline``), and when one is missing — the
connection dropped, or a closed kline arrives more than a minute after the previous one — it holds that symbol's
closed klines while :class:`Backfiller` fetches the missing ones over REST, then publishes them in time order
(flagged ``FLAG_REST``) followed by what it held.

A restarted feed process re-opens its predecessor's ring (same file, new epoch, old records still readable), so
:meth:`KlineGate.seed` sets each symbol's ``last_closed`` from the newest closed 1m kline still in the ring (or,
if no kline of it had closed yet, the minute before the oldest kline update of it there), and every connection
backfills from there on its *first* connect too (not only on reconnects): the minutes that closed while no feed ran
are fetched over REST and published, once and in order, before the stream's next closed kline. A new ring, or a
symbol without a 1m kline in it, seeds nothing, and a first connect then has nothing to backfill for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis import config
from aegis.core import records
from aegis.core.records import FLAG_KLINE_CLOSED, FLAG_REST, KLINE, MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.errors import AegisError
from aegis.feed import universe
from aegis.feed.streams import ConnectionPlan, plan_connections

if TYPE_CHECKING:  # the heavy modules load in run(), after the gRPC port is bound
    from aegis.exchange.rest import BinanceRest
    from aegis.feed.connection import StreamConnection
    from aegis.feed.pipeline import FramePipeline

DUPLICATE_KLINE = "duplicate_kline"  # aegis.feed.firewall.DUPLICATE_KLINE (kept equal by a test)

log = logging.getLogger("aegis.feed")

MINUTE_MS = 60_000
_SYMBOL_ID = struct.Struct("<H")
_START_TIME = struct.Struct("<q")
_OFF_SYMBOL_ID = MARKET_RECORD.fields["symbol_id"][1]
_OFF_START = MARKET_RECORD.fields[records.Kline.start_time_ms][1]
_OFF_EVENT_TIME = MARKET_RECORD.fields["event_time_ms"][1]
_OFF_INTERVAL = MARKET_RECORD.fields[records.Kline.interval_ms][1]


def minute_klines(slots: Any) -> Any:
    """The ``RingWriter.retained`` filter of 1m kline updates, open or closed (what :meth:`KlineGate.seed` reads)."""
    return (slots["kind"] == KLINE) & (slots[records.Kline.interval_ms] == MINUTE_MS)


class KlineGate:
    """A ring writer wrapper that publishes each closed 1m kline exactly once, in time order, per symbol."""

    def __init__(self, writer: Any, on_gap: Callable[[int, int, int], None] | None = None) -> None:
        self._writer = writer
        self._on_gap = on_gap or (lambda sid, first, last: None)
        self._reject: Callable[[str, str], None] = lambda reason, symbol: None
        self.names: dict[int, str] = {}
        self.last_closed: dict[int, int] = {}
        """Symbol id → open time (ms) of the newest closed 1m kline published."""
        self.held: dict[int, list[bytes]] = {}
        self.first_event_ms: int | None = None
        """Exchange event time of the first record seen: where a backfill starts before any kline closed."""
        self.backfilled = 0
        self.duplicates = 0
        self.gaps = 0

    def bind_rejections(self, reject: Callable[[str, str], None]) -> None:
        """Count dropped duplicates through the pipeline's firewall, so published + rejected stays exact."""
        self._reject = reject

    def add_symbol(self, name: str) -> int:
        symbol_id = self._writer.add_symbol(name)
        self.names[symbol_id] = name
        return symbol_id

    def id_of(self, symbol: str) -> int:
        for symbol_id, name in self.names.items():
            if name == symbol:
                return symbol_id
        raise KeyError(symbol)

    def write_bytes(self, record: bytes) -> int:
        if self.first_event_ms is None:
            self.first_event_ms = _START_TIME.unpack_from(record, _OFF_EVENT_TIME)[0]
        if record[8] != KLINE or not record[9] & FLAG_KLINE_CLOSED:
            return self._writer.write_bytes(record)
        if _START_TIME.unpack_from(record, _OFF_INTERVAL)[0] != MINUTE_MS:
            return self._writer.write_bytes(record)
        symbol_id = _SYMBOL_ID.unpack_from(record, _OFF_SYMBOL_ID)[0]
        held = self.held.get(symbol_id)
        if held is not None:
            held.append(record)
            return -1
        start = _START_TIME.unpack_from(record, _OFF_START)[0]
        last = self.last_closed.get(symbol_id)
        if last is not None and start <= last:
            self.duplicates += 1
            self._reject(DUPLICATE_KLINE, self.names.get(symbol_id, ""))
            return -1
        if last is not None and start > last + MINUTE_MS:
            # A closed kline is missing: hold this one until the gap is fetched, so the ring stays in time order.
            self.gaps += 1
            self.held[symbol_id] = [record]
            self._on_gap(symbol_id, last + MINUTE_MS, start - MINUTE_MS)
            return -1
        self.last_closed[symbol_id] = start
        return self._writer.write_bytes(record)

    def seed(self, retained: Any) -> dict[int, int]:
        """Set ``last_closed`` from the 1m klines still in a re-opened ring (``RingWriter.retained`` rows).

        Per symbol, the newest closed 1m kline a previous writer published becomes the last one published, so a
        resend of it is dropped and a later one after a gap is held while the gap is fetched. A symbol with kline
        updates in the ring but no closed one (the previous processes died before its first minute closed) is
        seeded with the minute before the oldest kline they saw, so the backfill starts at the first minute they
        saw a part of. Return what was set.
        """
        newest_closed: dict[int, int] = {}
        oldest_seen: dict[int, int] = {}
        for symbol_id, start, flags in zip(
            retained["symbol_id"].tolist(),
            retained[records.Kline.start_time_ms].tolist(),
            retained["flags"].tolist(),
            strict=True,
        ):
            if flags & FLAG_KLINE_CLOSED:
                if start > newest_closed.get(symbol_id, start - 1):
                    newest_closed[symbol_id] = start
            elif start < oldest_seen.get(symbol_id, start + 1):
                oldest_seen[symbol_id] = start
        seeded = {sid: start - MINUTE_MS for sid, start in oldest_seen.items() if sid not in newest_closed}
        seeded.update(newest_closed)
        for symbol_id, start in seeded.items():
            if start > self.last_closed.get(symbol_id, start - 1):
                self.last_closed[symbol_id] = start
        return seeded

    def hold(self, symbol_ids: Iterable[int]) -> None:
        for symbol_id in symbol_ids:
            self.held.setdefault(symbol_id, [])

    def publish_rest(self, symbol_id: int, rows: Sequence[Sequence[Any]], recv_time_ns: int) -> int:
        """Publish closed 1m klines fetched over REST (Binance's array shape) that are newer than the last one."""
        published = 0
        for row in rows:
            start = int(row[0])
            last = self.last_closed.get(symbol_id)
            if last is not None and start <= last:
                continue
            self._writer.write_bytes(
                records.pack_kline(
                    symbol_id, int(row[6]), recv_time_ns, start, int(row[6]), MINUTE_MS,
                    open=float(row[1]), high=float(row[2]), low=float(row[3]), close=float(row[4]),
                    base_volume=float(row[5]), quote_volume=float(row[7]), number_of_trades=int(row[8]),
                    taker_buy_base_volume=float(row[9]), closed=True, flags=FLAG_REST,
                )
            )  # fmt: skip
            self.last_closed[symbol_id] = start
            published += 1
        self.backfilled += published
        return published

    def release(self, symbol_ids: Iterable[int]) -> None:
        """Stop holding: pass what was held through the gate again (duplicates of the backfill drop out)."""
        for symbol_id in symbol_ids:
            for record in self.held.pop(symbol_id, []):
                start = _START_TIME.unpack_from(record, _OFF_START)[0]
                last = self.last_closed.get(symbol_id)
                if last is not None and start <= last:
                    self.duplicates += 1
                    self._reject(DUPLICATE_KLINE, self.names.get(symbol_id, ""))
                    continue
                self.last_closed[symbol_id] = start
                self._writer.write_bytes(record)


class Backfiller:
    """Fetch the closed 1m klines a symbol missed, over REST, and publish them through the gate."""

    def __init__(self, rest: BinanceRest, gate: KlineGate, started_ms: Callable[[], int | None]) -> None:
        self._rest = rest
        self._gate = gate
        self._started_ms = started_ms
        self._lock = asyncio.Lock()
        self.runs = 0
        self.failures = 0

    async def fill(self, symbol_ids: Sequence[int]) -> int:
        """Publish every closed kline after the last published one, up to the exchange's now; return how many."""
        self._gate.hold(symbol_ids)
        total = 0
        try:
            async with self._lock:
                self.runs += 1
                server_now = await self._rest.server_time_ms()
                for symbol_id in symbol_ids:
                    total += await self._fill_one(symbol_id, server_now)
        except AegisError as exc:
            self.failures += 1
            log.warning("backfill failed (%s); the next closed kline will retry", exc)
        finally:
            self._gate.release(symbol_ids)
        return total

    async def _fill_one(self, symbol_id: int, server_now: int) -> int:
        last = self._gate.last_closed.get(symbol_id)
        if last is None:
            started = self._started_ms()
            if started is None:
                return 0
            start = started - started % MINUTE_MS  # the first minute this feed saw a part of
        else:
            start = last + MINUTE_MS
        symbol = self._gate.names[symbol_id]
        published = 0
        while start + MINUTE_MS <= server_now:
            rows = await self._rest.klines(symbol, "1m", start_ms=start, end_ms=server_now, limit=1000)
            closed = [row for row in rows if int(row[6]) < server_now]
            if not closed:
                break
            published += self._gate.publish_rest(symbol_id, closed, time.time_ns())
            start = int(closed[-1][0]) + MINUTE_MS
            if len(rows) < 1000:
                break
        if published:
            log.info("backfilled %d closed 1m klines of %s over REST", published, symbol)
        return published


@dataclass(slots=True)
class FeedState:
    """What FeedService reports."""

    source: str = "live"
    symbols: list[str] = field(default_factory=list)
    connections: list[StreamConnection] = field(default_factory=list)
    started_at_ns: int = field(default_factory=time.time_ns)
    messages_per_second: float = 0.0
    replay_started_ns: int | None = None
    """Replay only: wall-clock Unix ns when the replay began reading the file (after start-up)."""
    replay_finished_ns: int | None = None
    """Replay only: wall-clock Unix ns when the last frame had been processed."""


class FeedEngine:
    """Run the feed of one shard: live websockets (default) or a replay file, into the shard's ring."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.state = FeedState()
        self.writer: Any = None  # aegis.core.ring.RingWriter once the ring is open
        self.pipeline: FramePipeline | None = None
        self.gate: KlineGate | None = None
        self.backfiller: Backfiller | None = None
        self.ready = asyncio.Event()
        self.replay_done = asyncio.Event()
        self._rest: BinanceRest | None = None
        self._tasks: list[asyncio.Task] = []

    # ----------------------------------------------------------------------------------------- universe

    async def _universe(self, rest: BinanceRest) -> list[str]:
        feed = self.settings.feed
        try:
            info = await rest.exchange_info()
        except AegisError as exc:
            log.warning("exchangeInfo unavailable (%s): using the fixed fallback universe", exc)
            info = None
        chosen = universe.select(info, explicit=feed.symbols, count=feed.symbol_count)
        shard = self.settings.shard
        mine = universe.symbols_of_shard(chosen, feed.shard_size, shard)
        log.info("shard %d follows %d of %d symbols", shard, len(mine), len(chosen), extra={"symbols": mine})
        return mine

    # ----------------------------------------------------------------------------------------- running

    def _open_ring(self, symbols: Sequence[str], *, replay: bool) -> None:
        # Imported here, after the gRPC port is bound: the ring's numba kernels take a few hundred ms to load.
        from aegis.core.ring import RingWriter
        from aegis.feed.pipeline import FramePipeline

        path = Path(self.settings.ring_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = RingWriter(
            path, MARKET_RECORD, self.settings.feed.ring_capacity, layout_name=MARKET_RECORD_LAYOUT
        )
        if replay:
            self.pipeline = FramePipeline(symbols, self.writer, recv_clock="wall", replay=True)
            return
        self.gate = KlineGate(self.writer, on_gap=self._on_gap)
        self.pipeline = FramePipeline(symbols, self.gate, recv_clock="wall")
        self.gate.bind_rejections(self.pipeline.firewall.reject)
        # A restarted feed re-opens its predecessor's ring: continue after the last closed kline it published.
        seeded = self.gate.seed(self.writer.retained(minute_klines))
        if seeded:
            log.info(
                "ring epoch %d: last closed 1m kline per symbol seeded from the ring",
                self.writer.epoch,
                extra={"last_closed": {self.writer.symbols().get(k, str(k)): v for k, v in seeded.items()}},
            )

    def _on_frame(self, frame: bytes, recv_time_ns: int) -> None:
        assert self.pipeline is not None
        self.pipeline.process(frame, recv_time_ns)

    def _on_gap(self, symbol_id: int, first_missing_ms: int, last_missing_ms: int) -> None:
        assert self.backfiller is not None
        log.warning(
            "closed 1m klines of %s missing from %d to %d: fetching them over REST",
            self.gate.names.get(symbol_id) if self.gate else symbol_id,
            first_missing_ms,
            last_missing_ms,
        )
        self._tasks.append(asyncio.create_task(self.backfiller.fill([symbol_id]), name="backfill"))

    def _reconnect_hook(self, plan: ConnectionPlan, *, first: bool = False) -> Callable[[], Any]:
        """Backfill the plan's kline symbols after a reconnect; on the first connect, only the seeded ones."""

        async def after_reconnect() -> None:
            assert self.gate is not None and self.backfiller is not None
            names = {s.split("@", 1)[0].upper() for s in plan.streams if "@kline_1m" in s}
            ids = [sid for sid, name in self.gate.names.items() if name in names]
            if first:  # a new ring, or a symbol new to it: nothing published before, nothing to catch up
                ids = [sid for sid in ids if sid in self.gate.last_closed]
            if ids:
                await self.backfiller.fill(ids)

        return after_reconnect

    async def run(self) -> None:
        """Run until cancelled."""
        from aegis.exchange.rest import BinanceRest
        from aegis.feed.connection import Backoff, StreamConnection

        feed = self.settings.feed
        try:
            if feed.source != "binance":
                await self._run_replay(Path(feed.source))
                return
            self._rest = BinanceRest(feed.rest_url)
            symbols = await self._universe(self._rest)
            self._open_ring(symbols, replay=False)
            assert self.gate is not None
            gate = self.gate
            # The exchange's clock, not ours: a replaying exchange (the simulator) or a skewed host would otherwise
            # start the first backfill in the wrong place.
            self.backfiller = Backfiller(self._rest, gate, lambda: gate.first_event_ms)
            plans = plan_connections(
                symbols, feed.ws_market_url, feed.ws_public_url, per_connection=feed.streams_per_connection
            )
            self.state.source, self.state.symbols = "live", list(symbols)
            self.state.connections = [
                StreamConnection(
                    plan,
                    self._on_frame,
                    on_reconnect=self._reconnect_hook(plan),
                    on_first_connect=self._reconnect_hook(plan, first=True),
                    idle_timeout_s=feed.idle_timeout_s,
                    backoff=Backoff(base_s=feed.reconnect_base_s, cap_s=feed.reconnect_cap_s),
                )
                for plan in plans
            ]
            self.ready.set()
            self._tasks += [asyncio.create_task(c.run(), name=f"ws {c.plan.name}") for c in self.state.connections]
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="ring heartbeat"))
            await asyncio.gather(*self._tasks)
        finally:
            await self.close()

    async def _run_replay(self, path: Path) -> None:
        """Replay ``path`` into the ring, then keep serving status until stopped.

        With the symbols given (``aegis replay`` sets them from its pre-scan) the ring is opened first — start-up,
        so the brain can attach while the file is read — and ``replay_started_ns`` (wall clock) marks where the
        replay itself begins: reading the file, decoding, checking and publishing every frame. At max speed the
        frames go straight from the file to :meth:`FramePipeline.process` in one loop that never yields (no
        per-frame pacing or async generator); a paced replay yields to the event loop between frames.
        ``replay_finished_ns`` marks the last frame published, and :attr:`replay_done` tells the status publisher
        to publish at once rather than at its next tick.
        """
        from aegis.feed import replay

        symbols = list(self.settings.feed.symbols)
        if symbols:
            self._open_ring(symbols, replay=True)
        self.state.replay_started_ns = time.time_ns()
        speed = replay.parse_speed(self.settings.feed.replay_speed)
        frames: Any = replay.read_frames(path)
        if not symbols:
            frames = list(frames)
            symbols = replay.symbols_in(frames)
            self._open_ring(symbols, replay=True)
        assert self.pipeline is not None
        self.state.source, self.state.symbols = "replay", list(symbols)
        self.ready.set()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            if speed is None:
                replay.replay(frames, self.pipeline)
            else:
                async for recv_ns, frame in replay.paced_async(frames, speed):
                    self._on_frame(frame, recv_ns)
            self.state.replay_finished_ns = time.time_ns()
            self.replay_done.set()
            log.info("replay of %s finished", path, extra={"stats": self.pipeline.stats.to_dict()})
            await asyncio.Event().wait()  # keep serving status until stopped
        finally:
            heartbeat.cancel()

    async def _heartbeat(self) -> None:
        previous, previous_t = 0, time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if self.writer is not None:
                self.writer.heartbeat()
            if self.pipeline is not None:
                now = time.monotonic()
                frames = self.pipeline.frames_in
                self.state.messages_per_second = (frames - previous) / max(now - previous_t, 1e-9)
                previous, previous_t = frames, now

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._rest is not None:
            await self._rest.close()
        if self.writer is not None:
            self.writer.close()
