"""The brain assembled: ring consumer, candle book, event bus, writer, hydration, strategy, signals, execution.

Built by the service's background task after the gRPC server is listening (numba and the kernels load here, off
the bind path), and usable on its own in tests and replays.

What subscribes to the bus (dispatched most urgent first, see :mod:`aegis.brain.events`):

* rank 0 — ``OrderRequest``: the executor's order workers (VirtualAccountService.OpenPosition / ClosePosition);
* rank 1 — ``TickUpdate``: the price pusher (conflated ApplyPriceUpdates batches, TP/SL on every one);
* rank 2 — ``SignalGenerated``: the executor's bounded signal queue (risk, then the accounts);
* rank 3 — ``CandleClosed``: the strategy, whose signals go to the :class:`SignalHub` (memory, PostgreSQL,
  StreamSignals, and back on the bus as ``SignalGenerated``).

The strategy takes a symbol's candles only once that symbol is *warmed up*: after its history is hydrated the
engine replays the book's closed candles through :meth:`Strategy.warm_up` (one symbol at a time, yielding to the
loop between symbols). Candles that closed before that are in the book, hence in the warm-up, so the events the
bus still holds for them are ignored as stale by the strategy. A live candle that closed more than
``AEGIS_BRAIN_STALE_CANDLE_S`` ago — the consumer attaches at the ring's oldest record, so a restart re-reads
minutes of records — moves the strategy's state but emits nothing: a signal about the past is not a trade idea.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
from collections.abc import Iterable
from typing import Any

import grpc
import msgspec

from aegis import observability
from aegis.brain.candles import CandleBook
from aegis.brain.consumer import REST_BACKFILL_FLAG, WALL_CLOCK_NS, RingConsumer, default_record_filter, warm_up
from aegis.brain.events import CandleClosed, EventBus
from aegis.brain.execution import Executor
from aegis.brain.live import trader_for
from aegis.brain.market import MarketQueries
from aegis.brain.model import ModelHook
from aegis.brain.persistence import CandleStore, CandleWriter, Hydrator
from aegis.brain.prices import PricePusher, RecordTimePrices
from aegis.brain.settings import BrainSettings
from aegis.brain.signals import SignalHub
from aegis.brain.strategy import Strategy
from aegis.brain.timeframes import TIMEFRAME_NAMES, Clock, SystemClock
from aegis.exchange.rest import BinanceRest
from aegis.server import ServiceContext
from aegis.storage import keys
from aegis.v1 import risk_pb2_grpc as risk_grpc
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

log = logging.getLogger("aegis.brain")

GC_THRESHOLDS = (50_000, 10, 10)
"""CPython's cyclic collector once the brain is hydrated: a young collection every 50,000 net allocations instead of
700 (then every 10th one older, as CPython's own), like virtual-account's (``aegis.virtual_account.service``)."""


def settle_gc() -> None:
    """Freeze what is alive (hydrated history, warmed-up state) out of the collector and set :data:`GC_THRESHOLDS`.

    The hot path makes no reference cycles (candle and tick events are untracked; the strategy's and the SMC
    detectors' objects are freed by refcounting), yet at CPython's default threshold the young collection ran every
    few hundred allocations: ~20 young and one or two older collections per 30 minutes of 300 symbols in ``aegis
    bench brain``, 10-28 ms of a ~220 ms repetition, each landing on whatever record was being processed (a full
    one took ~16 ms). ``aegis bench brain`` applies the same after its warm-up, to both sides (one process).
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class BrainEngine:
    """Everything the brain runs besides its gRPC server."""

    def __init__(
        self,
        ctx: ServiceContext,
        settings: BrainSettings,
        *,
        clock: Clock | None = None,
        strategy: Strategy | None = None,
        risk: Any | None = None,
        accounts: Any | None = None,
        model_watcher: type | None = None,
    ) -> None:
        """``risk``/``accounts``: gRPC stubs to use instead of channels to the configured addresses (tests)."""
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
        self.mark_from_last = settings.mark_price_source == "last"
        self.record_time: RecordTimePrices | None = None
        if getattr(ctx.settings, "clock", "system") == "record":  # a replay: see aegis.core.clock
            self.record_time = RecordTimePrices(
                self.bus,
                None,
                None,
                window_ms=max(1, round(settings.price_push_ms)),
                timeout_s=settings.call_timeout_s,
                mark_from_last=self.mark_from_last,
                attempts=settings.call_retries,
                retry_base_s=settings.retry_base_s,
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
            tick_interval_s=settings.tick_interval_ms / 1000.0,
            record_time=self.record_time,
        )
        self.strategy = strategy or Strategy(ctx.settings.strategy)
        self.hub = SignalHub(ctx.db, bus=self.bus, memory=settings.signal_memory, queue_size=settings.stream_queue)
        self.bus.subscribe(CandleClosed, self._on_candle_closed)
        self.warmed: set[str] = set()
        self.counts = {"candles_before_warm_up": 0, "stale_candles": 0, "warmed_up_candles": 0}
        self._channels: list[grpc.aio.Channel] = []
        if settings.execution:
            if risk is None:
                risk = risk_grpc.RiskServiceStub(self._channel(ctx.settings.address_of("risk")))
            if accounts is None:
                accounts = va_grpc.VirtualAccountServiceStub(self._channel(ctx.settings.address_of("virtual_account")))
        else:
            risk = accounts = None
        # In record time the sequencer hands the executor one signal at a time; its orders travel on a bus of their
        # own, so no signal reaches it from the main bus out of record order.
        self._execution_bus = EventBus() if self.record_time is not None else self.bus
        self.executor = Executor(
            self._execution_bus,
            risk=risk,
            accounts=accounts,
            marks=self._mark,
            mode=ctx.settings.mode,
            learning_account=settings.learning_account,
            paper_account=settings.paper_account,
            queue_size=settings.execution_queue,
            concurrency=settings.execution_concurrency,
            timeout_s=settings.call_timeout_s,
            attempts=settings.call_retries,
            retry_base_s=settings.retry_base_s,
            live=trader_for(ctx.settings) if settings.execution else None,
            # the outbox: a signal is executed once its row is committed (not in a replay: one signal at a time)
            durable=self.hub.writer.stored if ctx.db is not None and self.record_time is None else None,
        )
        self.prices: PricePusher | RecordTimePrices
        if self.record_time is not None:
            self.record_time.accounts, self.record_time.executor = accounts, self.executor
            self.prices = self.record_time
        else:
            self.prices = PricePusher(
                self.bus,
                accounts,
                interval_s=settings.price_push_ms / 1000.0,
                timeout_s=settings.call_timeout_s,
                mark_from_last=self.mark_from_last,
            )
        self.model = ModelHook(
            self.strategy.set_predictor,
            dependencies=model_dependencies(ctx),
            watcher_cls=model_watcher,
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
            strategy=self.strategy,
            hub=self.hub,
            executor=self.executor,
            prices=self.prices,
            model=self.model,
            engine_counts=self.counts,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        for symbol in shard_symbols:
            self.book.symbol_index(symbol)

    @property
    def ready(self) -> bool:
        """True once the history PostgreSQL holds for the configured symbols is loaded (REST may still run)."""
        return self.hydrator.postgres_loaded.is_set()

    def _channel(self, address: str) -> grpc.aio.Channel:
        # TLS when AEGIS_TLS_CA is set; the tracing interceptors carry each decision's trace to risk and the accounts
        channel = observability.insecure_or_tls_channel(address, self.ctx.settings)
        self._channels.append(channel)
        return channel

    def _mark(self, symbol: str) -> tuple[float, int] | None:
        """Return the latest mark price of ``symbol`` and its event time (ms), or None when none was seen."""
        if self.record_time is not None:  # a replay: as of the signal's place in the recording, not the book's
            return self.record_time.mark(symbol)
        prices = self.book.prices(symbol)
        if prices is None:
            return None
        if self.mark_from_last:  # AEGIS_BRAIN_MARK_PRICE_SOURCE=last: the last trade, as of the symbol's newest record
            price, time_ms = float(prices["last_price"]), int(prices["event_time_ms"])
        else:
            price, time_ms = float(prices["mark_price"]), int(prices["mark_time_ms"])
        if not math.isfinite(price) or price <= 0:
            return None
        return price, time_ms

    def _on_new_symbols(self, symbols: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self.hydrate_and_warm_up(symbols), name="hydrate")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def hydrate_and_warm_up(self, symbols: Iterable[str]) -> None:
        """Load the symbols' history, then replay it through the strategy, one symbol at a time."""
        symbols = list(dict.fromkeys(symbols))
        await self.hydrator.hydrate(symbols)
        # before any of them is warmed up (so before their new signals): the signals a killed brain stored and did
        # not open (see aegis.brain.execution, "stored first")
        await self.resume([s for s in symbols if s not in self.warmed])
        for symbol in symbols:
            # a symbol another call is still hydrating is warmed up by that call
            if symbol in self.warmed or symbol not in self.hydrator.hydrated:
                continue
            candles = [
                c for tf in self.strategy.timeframes for c in self.book.candles(symbol, tf, include_forming=False)
            ]
            self.counts["warmed_up_candles"] += self.strategy.warm_up(symbol, candles)
            self.warmed.add(symbol)
            await asyncio.sleep(0)  # one symbol at a time: the consumer and the bus run in between
        # The hydrated history and the warmed-up state live as long as the brain: moved out of the cyclic
        # collector's generations, full collections no longer walk them (hundreds of ms with hundreds of symbols,
        # paid by whatever record is being processed then). Refcounting still frees what is dropped.
        settle_gc()

    async def resume(self, symbols: list[str]) -> int:
        """Queue for execution the stored signals of ``symbols`` younger than ``AEGIS_BRAIN_RESUME_WINDOW_S`` that
        have no learning position; return how many (0 without PostgreSQL, execution, or in a replay)."""
        window_s = self.settings.resume_window_s
        ex = self.executor
        if not symbols or window_s <= 0 or self.hub.store is None or ex.risk is None or self.record_time is not None:
            return 0
        since_ns = self.clock.time_ns() - int(window_s * 1e9)
        trading = ex.live.account if ex.live is not None and ex.mode == "live" else ex.paper_account
        try:
            found = await self.hub.store.unexecuted(
                symbols, since_ns, ex.learning_account, trading, self.settings.execution_queue
            )
        except Exception as exc:  # PostgreSQL down at start: trade on; the next start looks again
            log.warning("cannot look for stored signals to resume (%s): none resumed", exc)
            return 0
        if found:
            await self._caught_up()
        for signal, untraded in found:
            ex.resume(signal.to_event(), trade=untraded)
        if found:
            log.info("resuming %d stored signals without a learning position", len(found))
        return len(found)

    async def _caught_up(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the consumer has read the ring to its end and the bus is drained, then push the
        prices now: a resumed signal is filled at the symbol's current price, not at one the ring re-read hours
        before (virtual-account would refuse a stop on the wrong side of it)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            reader = self.consumer.reader
            if reader is not None and reader.lag <= 0 and not self.bus.pending:
                break
            await asyncio.sleep(0.01)
        if isinstance(self.prices, PricePusher):
            await self.prices.push()

    def _on_candle_closed(self, event: CandleClosed) -> None:
        candle = event.candle
        if candle.symbol not in self.warmed:
            self.counts["candles_before_warm_up"] += 1  # it is in the book: the warm-up will take it
            return
        limit_ms = self.settings.stale_candle_s * 1000.0
        age_ms = self.clock.time_ns() // 1_000_000 - candle.close_time_ms
        emit = limit_ms <= 0 or candle.source == "replay" or age_ms <= limit_ms
        if not emit:
            self.counts["stale_candles"] += 1
        signals = self.strategy.on_candle_closed(event, emit=emit)
        if signals:
            recv_ns = event.recv_time_ns  # the signals carry it already (Strategy.on_candle_closed)
            self.hub.publish_all(signals)
            if self.record_time is not None:
                self.record_time.add_signals(signals)  # executed in record order, between the price windows
            if recv_ns:  # once per signal, from the record that closed the candle to the signal's emission
                now_ns = self.clock.time_ns() if recv_ns > WALL_CLOCK_NS else self.clock.monotonic_ns()
                for _ in signals:
                    observability.observe_since(observability.tick_to_signal(), recv_ns, now_ns=now_ns)
        self.strategy.settle()  # the trigger candle's SMC bookkeeping, now that its signals are out

    async def run(self) -> None:
        """Run the consumer, the bus, the writers, hydration, execution and status until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.writer.run(), name="candle-writer")
            group.create_task(self.hub.run(), name="signal-writer")
            group.create_task(self.bus.run(), name="event-bus")
            group.create_task(self.hydrate_and_warm_up(self.ctx.settings.feed.symbols), name="hydrate")
            group.create_task(self.consumer.run(), name="ring-consumer")
            group.create_task(self.executor.run(), name="execution")
            if self._execution_bus is not self.bus:
                group.create_task(self._execution_bus.run(), name="execution-bus")
            group.create_task(self.prices.run(), name="price-pusher")
            group.create_task(self.model.run(), name="model-watcher")
            group.create_task(self._publish_status(), name="status")

    async def _publish_status(self) -> None:
        if self.ctx.cache is None:
            return
        key = keys.service_status("brain", f"shard-{self.ctx.settings.shard}")
        work = None
        if self.record_time is not None:  # a replay: stamp the last work for its timing (aegis.replay.activity)
            from aegis.replay import activity

            work = activity.WorkClock(activity.brain_counters(self), activity.ring_lag(self))
        while True:
            if work is None:
                await asyncio.sleep(self.settings.status_interval_s)
            else:
                await work.run_for(self.settings.status_interval_s)
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
            if work is not None:
                payload["work"] = work.status()
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
        await self.hub.stop(timeout_s)
        await self.rest.close()
        if self.executor.live is not None:
            await self.executor.live.close()
        for channel in self._channels:
            await channel.close()
        if self.consumer.reader is not None:
            self.consumer.reader.close()


def model_dependencies(ctx: ServiceContext) -> dict[str, Any]:
    """What the model watcher may be given (it takes the ones its constructor names)."""
    deps: dict[str, Any] = {"db": ctx.db, "cache": ctx.cache, "settings": ctx.settings}
    poll_s = getattr(getattr(ctx.settings, "trainer", None), "model_poll_s", None)
    if poll_s is not None:
        deps["poll_s"] = poll_s
    return deps


async def start(ctx: ServiceContext, settings: BrainSettings) -> BrainEngine:
    """Load the kernels (compiled once, then from numba's cache) off the event loop and build the engine."""
    await asyncio.to_thread(warm_up)
    return BrainEngine(ctx, settings)
