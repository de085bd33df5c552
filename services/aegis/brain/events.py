"""The brain's in-process event bus: typed, immutable events and a priority dispatcher.

Five events travel on it: :class:`TickUpdate`, :class:`CandleClosed`, :class:`SignalGenerated`,
:class:`OrderRequest` and :class:`OrderFilled`. The dispatcher hands them to subscribers one at a time, always the
most urgent first, so order and exit handling never waits behind analytics work:

====  ==========================================  ======================================================
rank  events                                      why
====  ==========================================  ======================================================
0     ``OrderRequest``, ``OrderFilled``           money is moving: an order or a fill is never queued behind
                                                  anything
1     ``TickUpdate`` and any event with ``exit``  stops and take-profits are checked on prices
2     ``SignalGenerated``                         a decision waiting to be sized
3     ``CandleClosed``                            analytics: indicators, SMC, features
====  ==========================================  ======================================================

Within a rank events keep their publication order. Nothing is ever dropped, with one deliberate exception: while
a :class:`TickUpdate` of a symbol is still waiting, a newer one of the same symbol is *merged* into it (latest
prices win, the trade high/low/volume since the last delivered tick are combined), so a burst cannot grow the
queue beyond one pending tick per symbol and no touched price is lost. Trades and klines never travel as
individual events: they are folded into candles (``CandleClosed``) and tick summaries before they reach the bus.

Prices inside orders and fills are ``Decimal`` (money); candle and tick values are float64 (analytics), as in
the rest of AEGIS.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

log = logging.getLogger("aegis.brain.events")

RANK_ORDER = 0
RANK_EXIT = 1
RANK_SIGNAL = 2
RANK_ANALYTICS = 3
RANKS = 4


class Candle(msgspec.Struct, frozen=True, gc=False):
    """One OHLCV candle (float64 values; converted to Decimal/NUMERIC at the storage boundary).

    ``gc=False`` (also on :class:`TickUpdate` and :class:`CandleClosed`): these hold only numbers, strings and a
    candle, so they can never be part of a reference cycle; untracked, the thousands made per second neither trigger
    nor lengthen the cyclic collector's passes (refcounting frees them as before).

    These three are not ``kw_only`` (the other events are): the candle book builds them positionally, in field
    order, on its hot path (a third of the cost of keyword arguments). Elsewhere, build them with keywords.
    """

    symbol: str
    timeframe: str
    open_time_ms: int
    close_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trade_count: int
    taker_buy_volume: float
    source: str
    """'trades' (built from trades), 'stream' (the exchange's closed kline), 'rest', or 'replay'."""
    closed: bool = True
    partial: bool = False
    """True when the candle may miss trades (the first candle after the brain (re)attached, or a rolled-up candle
    with a missing part); a partial candle never replaces a stored one."""


class TickUpdate(msgspec.Struct, frozen=True, gc=False):
    """The newest prices of one symbol, plus the trades seen since the previous tick update was published.

    ``trade_high``/``trade_low`` cover every trade since the previous update of this symbol (NaN when there was
    none), so an exit check that only sees this event still sees every price that traded.
    """

    rank: ClassVar[int] = RANK_EXIT
    symbol: str
    event_time_ms: int
    recv_time_ns: int
    last_price: float
    trade_high: float
    trade_low: float
    trade_volume: float
    trade_count: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time_ms: int
    mark_time_ms: int = 0
    """Event time of the newest mark price (0: none seen yet); ``event_time_ms`` is that of any record."""
    merged: int = 0
    """How many updates were merged into this one (conflation)."""

    def merge(self, newer: TickUpdate) -> TickUpdate:
        """Return ``newer`` carrying the trade range and volume of both (latest prices win)."""
        if self.trade_count == 0:
            high, low = newer.trade_high, newer.trade_low
        elif newer.trade_count == 0:
            high, low = self.trade_high, self.trade_low
        else:
            high, low = max(self.trade_high, newer.trade_high), min(self.trade_low, newer.trade_low)
        return msgspec.structs.replace(
            newer,
            trade_high=high,
            trade_low=low,
            trade_volume=self.trade_volume + newer.trade_volume,
            trade_count=self.trade_count + newer.trade_count,
            merged=self.merged + newer.merged + 1,
        )


class CandleClosed(msgspec.Struct, frozen=True, gc=False):
    """A candle closed, or a closed candle was corrected (by the exchange's kline, or a late part)."""

    rank: ClassVar[int] = RANK_ANALYTICS
    candle: Candle
    corrected: bool = False
    recv_time_ns: int = 0
    """When the feed received the record that closed the candle (0: none did — a quiet candle timed out, a replayed
    record, a warm-up); the start of the tick-to-signal and tick-to-fill latencies."""


class SignalGenerated(msgspec.Struct, frozen=True, kw_only=True):
    """A trade idea from the strategy, with everything execution passes on (features included)."""

    rank: ClassVar[int] = RANK_SIGNAL
    signal_id: str
    symbol: str
    timeframe: str
    side: str
    """'LONG' or 'SHORT'."""
    entry_price: Decimal
    sl_pct: float
    tp_pct: float
    confidence: float
    candle_open_time_ms: int
    created_time_ns: int
    predicted_return_pct: float = math.nan
    model_version: str = ""
    reasons: tuple[str, ...] = ()
    feature_schema_version: int = 0
    features: tuple[float, ...] = ()
    recv_time_ns: int = 0
    """The ``recv_time_ns`` of the :class:`CandleClosed` that produced the signal (0: unknown)."""


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An order the brain wants placed (entry or exit).

    ``client_order_id`` is also the idempotency key: derived from the signal and the account, so a retried or
    re-emitted order can never open twice. A close of a whole position names it in ``position_id`` (``side``
    empty, ``quantity`` 0: the account closes all of it) with ``reason`` (e.g. 'ROTATED').
    """

    rank: ClassVar[int] = RANK_ORDER
    client_order_id: str
    account: str
    symbol: str
    side: str
    """'BUY' or 'SELL' ('' for the close of a whole position)."""
    order_type: str
    quantity: Decimal
    created_time_ns: int
    price: Decimal | None = None
    reduce_only: bool = False
    exit: bool = False
    signal_id: str = ""
    stop_loss_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    leverage: int = 0
    margin_type: str = ""
    """'ISOLATED' or 'CROSSED' ('' = the account's default)."""
    decision_id: str = ""
    position_id: str = ""
    reason: str = ""


class OrderFilled(msgspec.Struct, frozen=True, kw_only=True):
    """An execution of (part of) an order."""

    rank: ClassVar[int] = RANK_ORDER
    client_order_id: str
    account: str
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fill_time_ms: int
    reduce_only: bool = False
    position_id: str = ""
    replayed: bool = False
    """True when the account had already executed this idempotency key (a retry): nothing new happened."""


Event = TickUpdate | CandleClosed | SignalGenerated | OrderRequest | OrderFilled
Handler = Callable[[Any], Awaitable[None] | None]


def rank_of(event: Any) -> int:
    """Return the dispatch rank of ``event`` (0 = first); an event marked ``exit`` ranks with exits."""
    rank = event.rank
    if rank > RANK_EXIT and getattr(event, "exit", False):
        return RANK_EXIT
    return rank


_FIXED_RANK: dict[type, int | None] = {}
"""Per event type: its rank when no instance can carry ``exit`` (a msgspec struct without that field), else None."""


def _fixed_rank(cls: type) -> int | None:
    rank = getattr(cls, "rank", None)
    fixed = None
    if issubclass(cls, msgspec.Struct) and "exit" not in cls.__struct_fields__ and type(rank) is int:
        fixed = rank
    _FIXED_RANK[cls] = fixed
    return fixed


class EventBus:
    """Publish events without blocking; dispatch them to subscribers most urgent first (see the module doc)."""

    def __init__(self) -> None:
        self._queues: list[deque[Any]] = [deque() for _ in range(RANKS)]
        self._pending_ticks: dict[str, TickUpdate] = {}
        self._handlers: dict[type, list[tuple[Handler, bool]]] = {}
        self._sync: dict[type, tuple[Handler, ...] | None] = {}
        """Per event type: its handlers when all are plain functions (dispatched without a coroutine), else None."""
        self._wakeup = asyncio.Event()
        self.published = 0
        self.dispatched = 0
        self.conflated = 0
        self.handler_errors = 0
        self.signals = 0

    def subscribe(self, event_type: type, handler: Handler) -> None:
        """Call ``handler(event)`` (a function or a coroutine function) for every event of ``event_type``."""
        is_async = inspect.iscoroutinefunction(handler)
        handlers = self._handlers.setdefault(event_type, [])
        handlers.append((handler, is_async))
        self._sync[event_type] = None if any(a for _, a in handlers) else tuple(h for h, _ in handlers)

    def publish(self, event: Any) -> None:
        """Queue ``event``; never blocks, never drops (ticks of a symbol merge while one is pending)."""
        self.published += 1
        cls = type(event)
        if cls is SignalGenerated:
            self.signals += 1
        if cls is TickUpdate:
            pending = self._pending_ticks.get(event.symbol)
            if pending is not None:
                self._pending_ticks[event.symbol] = pending.merge(event)
                self.conflated += 1
                return
            self._pending_ticks[event.symbol] = event
            self._queues[RANK_EXIT].append(event.symbol)  # the symbol holds the place; the tick is looked up
        else:
            rank = _FIXED_RANK[cls] if cls in _FIXED_RANK else _fixed_rank(cls)
            self._queues[rank_of(event) if rank is None else rank].append(event)
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._queues)

    def pending_by_rank(self) -> list[int]:
        return [len(q) for q in self._queues]

    def next_event(self) -> Any | None:
        """Remove and return the most urgent pending event, or None."""
        orders, exits, signals, analytics = self._queues
        if orders:
            return orders.popleft()
        if exits:
            item = exits.popleft()
            return self._pending_ticks.pop(item) if type(item) is str else item
        if signals:
            return signals.popleft()
        if analytics:
            return analytics.popleft()
        return None

    async def dispatch(self, event: Any) -> None:
        """Hand ``event`` to its subscribers; a failing subscriber is logged and counted, never fatal to the bus."""
        self.dispatched += 1
        for handler, is_async in self._handlers.get(type(event), ()):
            try:
                if is_async:
                    await handler(event)  # type: ignore[misc]
                else:
                    handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("event handler %s failed on %s", getattr(handler, "__name__", handler), type(event))

    def dispatch_now(self, event: Any) -> bool:
        """Hand ``event`` to its subscribers if they are all plain functions and return True; else do nothing and
        return False (the caller awaits :meth:`dispatch`). Saves a coroutine per event on the hot path."""
        handlers = self._sync.get(type(event), ())
        if handlers is None:
            return False
        self.dispatched += 1
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("event handler %s failed on %s", getattr(handler, "__name__", handler), type(event))
        return True

    async def drain(self, limit: int | None = None) -> int:
        """Dispatch pending events (all, or at most ``limit``) now; return how many. For tests and replays."""
        done = 0
        while limit is None or done < limit:
            event = self.next_event()
            if event is None:
                break
            if not self.dispatch_now(event):
                await self.dispatch(event)
            done += 1
        return done

    async def run(self) -> None:
        """Dispatch forever (the bus's background task)."""
        while True:
            event = self.next_event()
            if event is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self.dispatch_now(event):
                await self.dispatch(event)
            await asyncio.sleep(0)  # let the ring consumer and gRPC calls in between two events

    def stats(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "dispatched": self.dispatched,
            "conflated": self.conflated,
            "handler_errors": self.handler_errors,
            "signals": self.signals,
            "pending_by_rank": self.pending_by_rank(),
        }
