"""The brain's data path assembled: ring consumer, candle book, event bus, writer, hydration, status.

Built by the service's background task after the gRPC server is listening (numba and the kernels load here, off
the bind path), and usable on its own in tests and replays.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import msgspec

from aegis.brain.candles import CandleBook
from aegis.brain.consumer import REST_BACKFILL_FLAG, RingConsumer, default_record_filter, warm_up
from aegis.brain.events import EventBus
from aegis.brain.market import MarketQueries
from aegis.brain.persistence import CandleStore, CandleWriter, Hydrator
from aegis.brain.settings import BrainSettings
from aegis.brain.timeframes import TIMEFRAME_NAMES, Clock, SystemClock
from aegis.exchange.rest import BinanceRest
from aegis.server import ServiceContext
from aegis.storage import keys

log = logging.getLogger("aegis.brain")


class BrainEngine:
    """Everything the brain runs besides its gRPC server."""

    def __init__(self, ctx: ServiceContext, settings: BrainSettings, *, clock: Clock | None = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.clock = clock or SystemClock()
        shard_symbols = ctx.settings.feed.symbols
        self.book = CandleBook(
            history=max(settings.history_candles, settings.hydrate_candles, 2),
            symbol_capacity=max(len(shard_symbols), ctx.settings.feed.shard_size, 1),
            rest_flag=REST_BACKFILL_FLAG,
        )
        self.bus = EventBus()
        self.writer = CandleWriter(
            ctx.db,
            ctx.cache,
            batch_rows=settings.write_batch_rows,
            interval_s=settings.write_interval_s,
            retry_max_s=settings.retry_max_s,
            clock=self.clock,
        )
        self.store = CandleStore(ctx.db) if ctx.db is not None else None
        self.rest = BinanceRest(ctx.settings.feed.rest_url, timeout_s=settings.rest_timeout_s)
        self.hydrator = Hydrator(
            self.store,
            self.rest,
            self.writer,
            self.book.load,
            self.book.rebuild,
            timeframes=TIMEFRAME_NAMES,
            count=settings.hydrate_candles,
            clock=self.clock,
            rest_url=ctx.settings.feed.rest_url,
        )
        self.consumer = RingConsumer(
            ctx.settings.ring_file,
            self.book,
            self.bus,
            self.writer,
            clock=self.clock,
            batch_records=settings.batch_records,
            idle_sleep_s=settings.idle_sleep_s,
            attach_interval_s=settings.attach_interval_s,
            quiet_close_s=settings.quiet_close_s,
            record_filter=default_record_filter(),
            on_new_symbols=self._on_new_symbols,
        )
        self.queries = MarketQueries(
            self.book,
            self.store,
            consumer=self.consumer,
            bus=self.bus,
            writer=self.writer,
            hydrator=self.hydrator,
            configured_symbols=shard_symbols,
            clock=self.clock,
            shard_index=ctx.settings.shard,
            started_at=ctx.started_at,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        for symbol in shard_symbols:
            self.book.symbol_index(symbol)

    @property
    def ready(self) -> bool:
        """True once the history PostgreSQL holds for the configured symbols is loaded (REST may still run)."""
        return self.hydrator.postgres_loaded.is_set()

    def _on_new_symbols(self, symbols: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self.hydrator.hydrate(symbols), name="hydrate")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Run the consumer, the bus, the writer, hydration and the status publisher until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.writer.run(), name="candle-writer")
            group.create_task(self.bus.run(), name="event-bus")
            group.create_task(self.hydrator.hydrate(self.ctx.settings.feed.symbols), name="hydrate")
            group.create_task(self.consumer.run(), name="ring-consumer")
            group.create_task(self._publish_status(), name="status")

    async def _publish_status(self) -> None:
        if self.ctx.cache is None:
            return
        key = keys.service_status("brain", f"shard-{self.ctx.settings.shard}")
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            status = self.queries.brain_status()
            payload = {
                "service": "brain",
                "pid": os.getpid(),
                "version": status.version,
                "symbols": status.symbol_count,
                "ticks_per_second": status.ticks_per_second,
                "conflated_updates": status.conflated_updates,
                **status.details,
            }
            try:
                await self.ctx.cache.client.set(key, msgspec.json.encode(payload), ex=keys.SERVICE_STATUS_TTL_S)
            except Exception as exc:  # status is best effort; the health check reports Redis itself
                log.debug("cannot publish the brain status: %s", exc)

    async def stop(self, timeout_s: float = 3.0) -> None:
        """Write what is pending (bounded by ``timeout_s``), then release the ring and the REST session."""
        for task in list(self._tasks):
            task.cancel()
        if not await self.writer.flush(timeout_s):
            log.error("stopping with %d closed candles not written to PostgreSQL", self.writer.backlog)
        await self.rest.close()
        if self.consumer.reader is not None:
            self.consumer.reader.close()


async def start(ctx: ServiceContext, settings: BrainSettings) -> BrainEngine:
    """Load the kernels (compiled once, then from numba's cache) off the event loop and build the engine."""
    await asyncio.to_thread(warm_up)
    return BrainEngine(ctx, settings)
