"""Account events to StreamEvents clients of every replica, through Redis pub/sub.

The book hands over the events of a transaction after it committed. Each committed batch becomes one Redis
message (length-prefixed ``AccountEvent`` protobufs) on :data:`CHANNEL`; every replica that has StreamEvents
clients subscribes to it and hands each client the events its filters want. Nothing is serialised while no
replica listens (``PUBSUB NUMSUB``, refreshed every second, and the local clients), so the hot path pays nothing
for a stream nobody watches.

Delivery is at most once, as the proto says ("no history is replayed"): a client that falls more than
:data:`QUEUE_SIZE` events behind, or a Redis outage, loses events, and the per-account ``sequence`` shows the
gap. The truth stays in PostgreSQL (ListPositions, ListTrades).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aegis.storage.keys import PREFIX
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.virtual_account import convert
from aegis.virtual_account.book import Event

log = logging.getLogger(__name__)

CHANNEL = f"{PREFIX}:accounts:events"
"""Pub/sub channel of committed account events (the lead may move it to aegis.storage.keys)."""
QUEUE_SIZE = 10_000


@dataclass(eq=False, slots=True)
class Subscription:
    accounts: frozenset[str]
    types: frozenset[int]
    symbol: str
    queue: asyncio.Queue[va_pb.AccountEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0

    def wants(self, event: va_pb.AccountEvent) -> bool:
        if self.accounts and event.account not in self.accounts:
            return False
        if self.types and event.type not in self.types:
            return False
        return not self.symbol or convert.event_symbol(event) == self.symbol


class EventHub:
    """Fan committed account events out to stream subscribers (locally, or across replicas through Redis)."""

    def __init__(self, redis: aioredis.Redis | None = None, *, numsub_interval_s: float = 1.0) -> None:
        self._redis = redis
        self._subscribers: set[Subscription] = set()
        self._outbox: asyncio.Queue[bytes] | None = None
        self._remote_listeners = 0
        self._numsub_interval_s = numsub_interval_s
        self._tasks: list[asyncio.Task[None]] = []
        self._listening: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.published = 0

    # ----------------------------------------------------------------------------------- publishing

    def listening(self) -> bool:
        """Whether a stream could receive events now (a local subscriber, or one on another replica)."""
        return bool(self._subscribers) or self._remote_listeners != 0

    def publish(self, events: list[Event]) -> None:
        """Hand over committed events (called by the book after its transaction committed; never blocks)."""
        if not self.listening():
            return
        messages = [convert.event_to_pb(e) for e in events]
        self.published += len(messages)
        if self._redis is None:
            self._deliver(messages)
            return
        if self._outbox is None:
            self._outbox = asyncio.Queue(1000)
            self._tasks.append(asyncio.create_task(self._send(), name="account-events-send"))
        try:
            self._outbox.put_nowait(convert.pack(m.SerializeToString() for m in messages))
        except asyncio.QueueFull:
            log.warning("account events outbox full: %d events dropped", len(messages))

    async def _send(self) -> None:
        assert self._outbox is not None and self._redis is not None
        while True:
            blob = await self._outbox.get()
            try:
                await self._redis.publish(CHANNEL, blob)
            except (RedisError, OSError) as exc:
                log.warning("account events not published (%s); streams will see a sequence gap", exc)

    async def watch_listeners(self) -> None:
        """Keep the count of replicas listening on the channel (background task of the service)."""
        if self._redis is None:
            return
        while True:
            try:
                reply = await self._redis.pubsub_numsub(CHANNEL)
                self._remote_listeners = int(reply[0][1]) if reply else 0
            except (RedisError, OSError):
                self._remote_listeners = 1  # unknown: keep publishing rather than lose events silently
            await asyncio.sleep(self._numsub_interval_s)

    # ----------------------------------------------------------------------------------- subscribing

    def _deliver(self, messages: Iterable[va_pb.AccountEvent]) -> None:
        for message in messages:
            for sub in self._subscribers:
                if sub.wants(message):
                    try:
                        sub.queue.put_nowait(message)
                    except asyncio.QueueFull:
                        sub.dropped += 1

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._remote_listeners = max(self._remote_listeners, 1)
                self._subscribed.set()
                async for item in pubsub.listen():
                    if item.get("type") != "message":
                        continue
                    messages = []
                    for raw in convert.unpack(item["data"]):
                        event = va_pb.AccountEvent()
                        event.ParseFromString(raw)
                        messages.append(event)
                    self._deliver(messages)
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("account events subscription lost (%s); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def subscribe(self, accounts: Iterable[str], types: Iterable[int], symbol: str) -> Subscription:
        """Register a subscriber; events committed from now on that match the filters reach its queue."""
        sub = Subscription(frozenset(accounts), frozenset(types), symbol)
        self._subscribers.add(sub)
        if self._redis is not None:
            if self._listening is None or self._listening.done():
                self._listening = asyncio.create_task(self._listen(), name="account-events-listen")
                self._tasks.append(self._listening)
            with contextlib.suppress(TimeoutError):  # the stream starts once Redis has the subscription
                await asyncio.wait_for(self._subscribed.wait(), 2.0)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
