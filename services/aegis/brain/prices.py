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
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from aegis.brain.events import EventBus, TickUpdate
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
    def of(cls, tick: TickUpdate) -> PendingPrice:
        traded = tick.trade_count > 0
        return cls(
            symbol=tick.symbol,
            last_price=tick.last_price,
            mark_price=tick.mark_price,
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

    def __init__(self, bus: EventBus | None, accounts: Any | None, *, interval_s: float, timeout_s: float) -> None:
        self.accounts = accounts
        """A ``VirtualAccountServiceStub`` (grpc.aio), or None: prices are conflated but never sent."""
        self.interval_s = interval_s
        self.timeout_s = timeout_s
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
        if not (math.isfinite(tick.last_price) or math.isfinite(tick.mark_price)):
            return
        self._add(PendingPrice.of(tick))

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
