"""Push prices to VirtualAccountService.ApplyPriceUpdates in conflated batches, so TP/SL are checked on every one.

The bus hands every :class:`TickUpdate` (rank 1: ahead of analytics) to :meth:`PricePusher.on_tick`, which folds it
into one pending update per symbol: the latest last price, mark price and funding win; the trade high and low
since the previous push combine (max / min). Every ``interval_s`` :meth:`PricePusher.run` sends what is pending as
one ApplyPriceUpdates call. A stop touched between two pushes is therefore still seen — it is inside
``high_price``/``low_price`` — however many updates were merged.

A push that fails is counted; a transient failure (UNAVAILABLE, DEADLINE_EXCEEDED) puts its updates back, merged
under anything newer, so the next push still carries their high and low; any other failure (UNIMPLEMENTED while
virtual-account is not built, INVALID_ARGUMENT …) drops that batch after counting it. Pushing never blocks the ring
consumer: it runs in its own task and holds at most one pending update per symbol.

**In record time** (``AEGIS_CLOCK=record``, what ``aegis replay`` sets) a wall-clock timer would make every replay
different, so :class:`RecordTimePrices` replaces the pusher: windows of *record* time, sealed by the records
themselves, and signals executed between them in the order of the records that made them (its doc has the rules).

**Mark price source.** ``AEGIS_BRAIN_MARK_PRICE_SOURCE=last`` sends the last trade price as the mark price (and
risk gets it as ``mark_price``): for recordings without a markPrice stream, where virtual-account would otherwise
refuse every update. ``aegis replay`` sets it only then, together with TP/SL triggered on the last price
(``AEGIS_ACCOUNT_WORKING_TYPE=contract_price``, Binance's ``CONTRACT_PRICE``), and says so in its report.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import grpc
import numpy as np
from google.protobuf import timestamp_pb2

from aegis.brain.events import RANK_ANALYTICS, EventBus, SignalGenerated, TickUpdate
from aegis.brain.execution import TRANSIENT
from aegis.brain.numeric import price_text
from aegis.v1 import virtual_account_pb2 as va_pb

log = logging.getLogger("aegis.brain.prices")


@dataclass(frozen=True, slots=True)
class PendingPrice:
    """The conflated prices of one symbol since the previous push (NaN: not seen)."""

    symbol: str
    last_price: float
    mark_price: float
    high_price: float
    low_price: float
    funding_rate: float
    next_funding_time_ms: int
    event_time_ms: int
    updates: int = 1

    @classmethod
    def of(cls, tick: TickUpdate, *, mark_from_last: bool = False) -> PendingPrice:
        """The prices of ``tick``; ``mark_from_last``: send the last trade price as the mark price (see the doc)."""
        traded = tick.trade_count > 0
        return cls(
            symbol=tick.symbol,
            last_price=tick.last_price,
            mark_price=tick.last_price if mark_from_last else tick.mark_price,
            high_price=tick.trade_high if traded else math.nan,
            low_price=tick.trade_low if traded else math.nan,
            funding_rate=tick.funding_rate,
            next_funding_time_ms=tick.next_funding_time_ms,
            event_time_ms=tick.event_time_ms,
            updates=1 + tick.merged,
        )

    def merge(self, newer: PendingPrice) -> PendingPrice:
        """Return ``newer``'s prices with the high and low of both."""
        return replace(
            newer,
            high_price=_fmax(self.high_price, newer.high_price),
            low_price=_fmin(self.low_price, newer.low_price),
            last_price=newer.last_price if math.isfinite(newer.last_price) else self.last_price,
            mark_price=newer.mark_price if math.isfinite(newer.mark_price) else self.mark_price,
            event_time_ms=max(self.event_time_ms, newer.event_time_ms),
            updates=self.updates + newer.updates,
        )

    def to_pb(self) -> va_pb.PriceUpdate:
        update = va_pb.PriceUpdate(
            symbol=self.symbol,
            last_price=price_text(self.last_price),
            mark_price=price_text(self.mark_price),
            high_price=price_text(self.high_price),
            low_price=price_text(self.low_price),
        )
        if math.isfinite(self.funding_rate):
            update.funding_rate = price_text(self.funding_rate)
        if self.next_funding_time_ms > 0:
            update.next_funding_time.CopyFrom(_stamp_ms(self.next_funding_time_ms))
        if self.event_time_ms > 0:
            update.event_time.CopyFrom(_stamp_ms(self.event_time_ms))
        return update


def _stamp_ms(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


def _fmax(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    return a if math.isnan(b) else max(a, b)


def _fmin(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    return a if math.isnan(b) else min(a, b)


class PricePusher:
    """Conflate ticks per symbol and push them to virtual-account every ``interval_s`` (see the module doc)."""

    def __init__(
        self,
        bus: EventBus | None,
        accounts: Any | None,
        *,
        interval_s: float,
        timeout_s: float,
        mark_from_last: bool = False,
    ) -> None:
        self.accounts = accounts
        """A ``VirtualAccountServiceStub`` (grpc.aio), or None: prices are conflated but never sent."""
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.mark_from_last = mark_from_last
        self._pending: dict[str, PendingPrice] = {}
        self.ticks = 0
        self.pushes = 0
        self.updates_sent = 0
        self.failures: dict[str, int] = {}
        self.positions_updated = 0
        self.closed_trades = 0
        self.funding_payments = 0
        self.stale_updates = 0
        self._logged: set[str] = set()
        if bus is not None:
            bus.subscribe(TickUpdate, self.on_tick)

    def on_tick(self, tick: TickUpdate) -> None:
        """Fold ``tick`` into the pending update of its symbol (O(1), never waits)."""
        self.ticks += 1
        if self.mark_from_last:
            if not math.isfinite(tick.last_price):
                return
        elif not (math.isfinite(tick.last_price) or math.isfinite(tick.mark_price)):
            return
        self._add(PendingPrice.of(tick, mark_from_last=self.mark_from_last))

    def _add(self, price: PendingPrice) -> None:
        pending = self._pending.get(price.symbol)
        self._pending[price.symbol] = price if pending is None else pending.merge(price)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Push forever, every ``interval_s``."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.push()

    async def push(self) -> bool:
        """Send what is pending now as one batch; return True when it was applied (or nothing was pending)."""
        if not self._pending or self.accounts is None:
            return True
        batch, self._pending = self._pending, {}
        request = va_pb.ApplyPriceUpdatesRequest(updates=[p.to_pb() for p in batch.values()])
        try:
            response = await self.accounts.ApplyPriceUpdates(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            self.failures[code.name] = self.failures.get(code.name, 0) + 1
            if code in TRANSIENT:
                for older in batch.values():  # put back under anything newer: the high/low must reach it
                    newer = self._pending.get(older.symbol)
                    self._pending[older.symbol] = older if newer is None else older.merge(newer)
            if code.name not in self._logged:
                self._logged.add(code.name)
                log.warning("ApplyPriceUpdates failed with %s (%s); counted, carrying on", code.name, exc.details())
            return False
        self.pushes += 1
        self.updates_sent += len(batch)
        self.positions_updated += response.positions_updated
        self.closed_trades += len(response.closed_trades)
        self.funding_payments += response.funding_payments
        self.stale_updates += response.stale_updates
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "pending_symbols": len(self._pending),
            "pushes": self.pushes,
            "updates_sent": self.updates_sent,
            "failures": dict(self.failures),
            "positions_updated": self.positions_updated,
            "closed_trades": self.closed_trades,
            "funding_payments": self.funding_payments,
            "stale_updates": self.stale_updates,
        }


# ------------------------------------------------------------------------------------- record time (replays)


@dataclass(frozen=True, slots=True)
class PriceWindow:
    """The conflated prices of one window of record time, sealed: pushed as one ApplyPriceUpdates call.

    Ranked with the analytics (``CandleClosed``) on the bus, so it is dispatched after every candle that closed
    before it was sealed: the signals of those candles reach the sequencer first.
    """

    rank: ClassVar[int] = RANK_ANALYTICS
    sequence: int
    """1 for the first window sealed, and so on."""
    prices: tuple[PendingPrice, ...]


class RecordTimePrices:
    """Prices and executions in record order, for a replay (``AEGIS_CLOCK=record``; docs/replay.md).

    Three parts, all driven by the records themselves, never by the host's clock:

    1. **Windows of record time.** The ring consumer asks :meth:`cuts` where a batch crosses into the next window
       of ``window_ms`` (by the running maximum of the records' event time, so a late record stays in the current
       window), processes the batch in slices ending there, gives each slice's tick updates to :meth:`on_ticks`
       (folded per symbol: newest prices, trade high/low of the whole window) and calls :meth:`seal` at every cut.
       A sealed window goes on the bus as a :class:`PriceWindow`, behind the candles closed before it.
    2. **Signals in their place.** The brain hands the signals of every candle to :meth:`add_signals` while the
       bus dispatches that candle, so the queue holds windows and signals in the order of the records that made
       them — whatever the batch sizes, the host's speed or the scheduling were.
    3. **One at a time.** :meth:`run` takes the queue in order: a window is pushed (ApplyPriceUpdates, retried
       while transient), a signal is executed to the end (risk, then the accounts) before anything after it. So
       a market entry fills at the last price pushed before its candle closed, and TP/SL are checked on the
       windows after it, never on earlier prices.
    4. **Only what can trigger.** A window carries only the symbols that hold an open position (counted from the
       entries this sequencer executed, less the TP/SL/liquidation closes the pushes report; a rotation's close
       is not subtracted, so the count errs towards pushing). The other symbols' newest prices wait, and go out
       alone just before an entry of theirs, so the entry fills at the same price as if every window had been
       pushed: without a position, a price update triggers nothing. The decision follows the queue only, so
       it is the same in every run.

    The last window is never sealed (no record follows it), so it is never pushed: deterministic, like the last
    candle that no record closes.
    """

    def __init__(
        self,
        bus: EventBus,
        accounts: Any | None,
        executor: Any | None,
        *,
        window_ms: int,
        timeout_s: float,
        mark_from_last: bool = False,
        attempts: int = 5,
        retry_base_s: float = 0.1,
    ) -> None:
        if window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {window_ms}")
        self.bus = bus
        self.accounts = accounts
        self.executor = executor
        self.window_ms = int(window_ms)
        self.timeout_s = timeout_s
        self.mark_from_last = mark_from_last
        self.attempts = attempts
        self.retry_base_s = retry_base_s
        self._watermark_ms = -1
        self._window = -1
        self._open: dict[str, PendingPrice] = {}
        self._queue: deque[PriceWindow | SignalGenerated] = deque()
        self._pushed: dict[str, tuple[float, int]] = {}
        self._held: dict[str, int] = {}
        self._unpushed: dict[str, PendingPrice] = {}
        self.windows_skipped = 0
        self.errors = 0
        self._ready = asyncio.Event()
        self.busy = False
        self.ticks = 0
        self.windows_sealed = 0
        self.pushes = 0
        self.updates_sent = 0
        self.signals = 0
        self.failures: dict[str, int] = {}
        self.positions_updated = 0
        self.closed_trades = 0
        self.funding_payments = 0
        self.stale_updates = 0
        self._logged: set[str] = set()
        bus.subscribe(PriceWindow, self._on_window)

    # -- the consumer's side (synchronous, in record order) ---------------------------------------------------

    def cuts(self, batch: np.ndarray) -> list[int]:
        """Return the indexes of ``batch`` where a new window of record time starts (a cut at 0 seals the window
        the previous batch left open)."""
        if batch.shape[0] == 0:
            return []
        times = np.maximum.accumulate(np.maximum(batch["event_time_ms"].astype(np.int64), self._watermark_ms))
        windows = times // self.window_ms
        previous = np.empty_like(windows)
        previous[0] = self._window if self._window >= 0 else windows[0]
        previous[1:] = windows[:-1]
        self._watermark_ms = int(times[-1])
        self._window = int(windows[-1])
        return np.flatnonzero(windows != previous).tolist()

    def on_ticks(self, ticks: list[TickUpdate]) -> None:
        """Fold the tick updates of one slice into the open window."""
        for tick in ticks:
            self.ticks += 1
            if self.mark_from_last and tick.trade_count <= 0:
                # no trade: no new price (the mark is the last trade's), but the symbol's time moved on — kept, so
                # the window is the same however the records were sliced
                held = self._open.get(tick.symbol)
                if held is not None and tick.event_time_ms > held.event_time_ms:
                    self._open[tick.symbol] = replace(held, event_time_ms=tick.event_time_ms)
                continue
            price = PendingPrice.of(tick, mark_from_last=self.mark_from_last)
            if not (math.isfinite(price.mark_price) and math.isfinite(price.last_price)):
                continue  # virtual-account needs both; this symbol has not had them yet
            pending = self._open.get(price.symbol)
            self._open[price.symbol] = price if pending is None else pending.merge(price)

    def seal(self) -> None:
        """Close the open window (a cut): put it on the bus behind the candles closed so far."""
        if not self._open:
            return
        self.windows_sealed += 1
        window = PriceWindow(self.windows_sealed, tuple(self._open[s] for s in sorted(self._open)))
        self._open = {}
        self.bus.publish(window)

    # -- the bus's side ---------------------------------------------------------------------------------------

    def _on_window(self, window: PriceWindow) -> None:
        self._queue.append(window)
        self._ready.set()

    def add_signals(self, signals: Any) -> None:
        """Queue signals (``Signal`` or ``SignalGenerated``) behind the windows sealed before their candle closed."""
        for signal in signals:
            event = signal if isinstance(signal, SignalGenerated) else signal.to_event()
            self._queue.append(event)
            self.signals += 1
        self._ready.set()

    def mark(self, symbol: str) -> tuple[float, int] | None:
        """The mark price (and its event time, ms) of ``symbol`` in the last window pushed: what the accounts hold
        when the signal being executed now was made (the brain's book may be far ahead in a replay)."""
        return self._pushed.get(symbol)

    @property
    def pending(self) -> int:
        """Windows and signals queued or being handled (the open window is not: it waits for a record)."""
        return len(self._queue) + (1 if self.busy else 0)

    # -- the task ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Push windows and execute signals, one at a time, in queue order, until cancelled."""
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            item = self._queue[0]
            self.busy = True
            try:
                if isinstance(item, PriceWindow):
                    await self._push_window(item)
                else:
                    await self._execute(item)
            except Exception:
                self.errors += 1  # the replay fails on it (aegis.replay.report): its result is not the recording's
                log.exception("record-time sequencer: handling %s failed", type(item).__name__)
            finally:
                self._queue.popleft()
                self.busy = False

    async def _push_window(self, window: PriceWindow) -> None:
        """Push the prices of the symbols holding a position; keep the others' newest for their next entry."""
        due = []
        for price in window.prices:
            if self._held.get(price.symbol, 0) > 0:
                due.append(price)
            else:
                self._unpushed[price.symbol] = price
        if due:
            await self.push(PriceWindow(window.sequence, tuple(due)))
        else:
            self.windows_skipped += 1

    async def _execute(self, signal: SignalGenerated) -> None:
        if self.executor is None:
            return
        held = self._unpushed.pop(signal.symbol, None)
        if held is not None:  # the entry fills at the symbol's newest price: virtual-account must have it
            await self.push(PriceWindow(0, (held,)))
        counts = self.executor.counts
        before = counts["learning_opened"] + counts["paper_opened"]
        self.executor.on_signal(signal)
        while not await self.executor.idle(timeout_s=60.0):
            log.warning("record-time sequencer: signal %s still executing after 60 s", signal.signal_id)
        opened = counts["learning_opened"] + counts["paper_opened"] - before
        if opened > 0:
            self._held[signal.symbol] = self._held.get(signal.symbol, 0) + opened

    async def push(self, window: PriceWindow) -> bool:
        """Send one window (retrying transient failures); return True when virtual-account applied it."""
        if self.accounts is None:
            return True
        request = va_pb.ApplyPriceUpdatesRequest(updates=[p.to_pb() for p in window.prices])
        delay = self.retry_base_s
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.accounts.ApplyPriceUpdates(request, timeout=self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                self.failures[code.name] = self.failures.get(code.name, 0) + 1
                if code in TRANSIENT and attempt < self.attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if code.name not in self._logged:
                    self._logged.add(code.name)
                    log.warning("ApplyPriceUpdates failed with %s (%s); counted, carrying on", code.name, exc.details())
                return False
            self.pushes += 1
            self.updates_sent += len(window.prices)
            for price in window.prices:
                self._pushed[price.symbol] = (price.mark_price, price.event_time_ms)
                self._unpushed.pop(price.symbol, None)
            for trade in response.closed_trades:  # TP, SL, liquidation: one position fewer to price
                if self._held.get(trade.symbol, 0) > 0:
                    self._held[trade.symbol] -= 1
            self.positions_updated += response.positions_updated
            self.closed_trades += len(response.closed_trades)
            self.funding_payments += response.funding_payments
            self.stale_updates += response.stale_updates
            return True
        return False  # pragma: no cover - the loop always returns

    def stats(self) -> dict[str, Any]:
        return {
            "clock": "record",
            "window_ms": self.window_ms,
            "mark_price_source": "last" if self.mark_from_last else "mark",
            "ticks": self.ticks,
            "pending_symbols": self.pending,
            "open_window_symbols": len(self._open),
            "windows_sealed": self.windows_sealed,
            "windows_skipped": self.windows_skipped,
            "errors": self.errors,
            "symbols_held": sum(1 for n in self._held.values() if n > 0),
            "signals_sequenced": self.signals,
            "pushes": self.pushes,
            "updates_sent": self.updates_sent,
            "failures": dict(self.failures),
            "positions_updated": self.positions_updated,
            "closed_trades": self.closed_trades,
            "funding_payments": self.funding_payments,
            "stale_updates": self.stale_updates,
        }
