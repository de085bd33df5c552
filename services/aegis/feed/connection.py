"""One Binance websocket connection, kept alive: reconnect with backoff and jitter, before the 24 h cut, on stalls.

The ``websockets`` library answers Binance's pings (every 3 min) and sends its own every 20 s, so a dead TCP peer is
noticed within ``ping_timeout``. A connection that is open but silent for ``idle_timeout_s`` (a stalled server) is
closed and reopened too. After every reconnect ``on_reconnect`` runs (the feed backfills the closed 1m klines it
missed over REST) before frames flow again; ``on_first_connect`` runs at the same point of the first connect (a
restarted feed catches up there on what closed while no feed process ran).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import connect

from aegis.feed.streams import ConnectionPlan

log = logging.getLogger("aegis.feed.connection")

FrameHandler = Callable[[bytes, int], object]


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in [0, min(cap, base * 2**n)]."""

    base_s: float = 0.1
    cap_s: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(slots=True)
class ConnectionStats:
    state: str = "NEW"
    connects: int = 0
    messages: int = 0
    last_message_ns: int = 0
    last_error: str = ""
    stalls: int = 0
    planned_reconnects: int = 0
    reconnect_ms: list[float] = field(default_factory=list)
    """How long each reconnect took, from losing the connection to receiving the first frame again."""


class StreamConnection:
    """Keep one combined-stream connection open and hand every frame to ``on_frame(frame, recv_time_ns)``."""

    def __init__(
        self,
        plan: ConnectionPlan,
        on_frame: FrameHandler,
        *,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        on_first_connect: Callable[[], Awaitable[None]] | None = None,
        idle_timeout_s: float = 30.0,
        max_lifetime_s: float = 23.5 * 3600,
        backoff: Backoff | None = None,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.plan = plan
        self._on_frame = on_frame
        self._on_reconnect = on_reconnect
        self._on_first_connect = on_first_connect
        self._idle_timeout_s = idle_timeout_s
        self._max_lifetime_s = max_lifetime_s
        self._backoff = backoff or Backoff()
        self._open_timeout_s = open_timeout_s
        self.stats = ConnectionStats()
        self._lost_at: float | None = None

    async def run(self) -> None:
        """Run until cancelled."""
        while True:
            self.stats.state = "CONNECTING"
            try:
                await self._session()
            except asyncio.CancelledError:
                self.stats.state = "CLOSED"
                raise
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("connection %s lost: %s", self.plan.name, self.stats.last_error)
            if self._lost_at is None:
                self._lost_at = time.monotonic()
            self.stats.state = "BACKOFF"
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self) -> None:
        async with connect(
            self.plan.url,
            open_timeout=self._open_timeout_s,
            ping_interval=20,
            ping_timeout=20,
            max_size=2**22,
            compression=None,
        ) as ws:
            self.stats.connects += 1
            self.stats.state = "CONNECTED"
            opened = time.monotonic()
            # Before the first frame is read: a backfill (the feed's) publishes what was missed ahead of it.
            hook = self._on_reconnect if self.stats.connects > 1 else self._on_first_connect
            if hook is not None:
                await hook()
            first = True
            while True:
                remaining = self._max_lifetime_s - (time.monotonic() - opened)
                if remaining <= 0:
                    # Binance cuts connections at 24 h; leave first, on our terms, and reconnect at once.
                    self.stats.planned_reconnects += 1
                    log.info("connection %s: planned reconnect before the 24 h limit", self.plan.name)
                    self._lost_at = time.monotonic()
                    self._backoff.reset()
                    return
                try:
                    frame = await asyncio.wait_for(ws.recv(decode=False), min(self._idle_timeout_s, remaining))
                except TimeoutError:
                    if time.monotonic() - opened >= self._max_lifetime_s:
                        continue
                    self.stats.stalls += 1
                    self.stats.last_error = f"no data for {self._idle_timeout_s:.0f} s"
                    log.warning("connection %s stalled (%s); reconnecting", self.plan.name, self.stats.last_error)
                    self._lost_at = time.monotonic()
                    return
                recv_ns = time.time_ns()
                if first:
                    first = False
                    self._backoff.reset()
                    if self._lost_at is not None:
                        self.stats.reconnect_ms.append((time.monotonic() - self._lost_at) * 1000)
                        self._lost_at = None
                self.stats.messages += 1
                self.stats.last_message_ns = recv_ns
                self._on_frame(frame, recv_ns)
