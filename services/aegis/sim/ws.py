"""Websocket market streams: Binance's URL shapes, live SUBSCRIBE/UNSUBSCRIBE, limits, and fault injection.

* ``/market/stream?streams=a/b`` and ``/public/stream?streams=...``: combined frames ``{"stream": name, "data": …}``;
  ``/market/ws/<stream>`` and ``/public/ws/<stream>``: raw payloads.
* JSON methods ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``/``GET_PROPERTY``
  (``combined``), answered ``{"result": null, "id": N}`` or ``{"error": {"code": 2, "msg": "…"}, "id": N}``.
* Limits as on Binance: at most ``max_streams`` (1024) streams per connection, at most ``max_incoming_per_s`` (10)
  incoming messages per second (text, ping and pong frames count; beyond it the connection is closed with 1008
  "Too many requests"), a server ping every ``ping_interval_s`` (180 s) and a close when no pong came for
  ``pong_timeout_s`` (600 s), and a close after ``max_lifetime_s`` (24 h).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from aegis.sim import faults, streams

if TYPE_CHECKING:
    from aegis.sim.state import SimState

log = logging.getLogger(__name__)

HIGH_WATER = 4096
"""Frames queued for one connection before a max-speed shared replay waits for it."""
LOW_WATER = 1024

_ids = itertools.count(1)


class Connection:
    """One websocket client: its subscriptions, its outgoing queue and its counters."""

    def __init__(
        self, state: SimState, ws: web.WebSocketResponse, request: web.Request, category: str, combined: bool
    ) -> None:
        self.id = next(_ids)
        self.state = state
        self.ws = ws
        self.request = request
        self.category = category
        self.path = request.path
        self.combined = combined
        self.streams: list[str] = []  # as subscribed, in order (LIST_SUBSCRIPTIONS)
        self.active: set[str] = set()  # subscribed streams this path carries
        self.queue: collections.deque[int | str] = collections.deque()
        self.wakeup = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.sent: collections.Counter[str] = collections.Counter()
        self.injected: collections.Counter[str] = collections.Counter()
        self.dropped_while_stalled = 0
        self.pending_malformed: list[list[Any]] = []  # [kind, remaining, stream or None]
        self.incoming: collections.deque[float] = collections.deque()
        self.last_pong = time.monotonic()
        self.opened = time.time()
        self.closed = False
        self.close_reason = ""
        self.closing: asyncio.Future | None = None
        self.cursor_started = asyncio.Event()  # "each" mode: the private replay starts at the first subscription

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, names: list[str]) -> None:
        for name in names:
            if name in self.streams:
                continue
            self.streams.append(name)
            if streams.category(name) == self.category:
                self.active.add(name)
                self.state.hub.register(self, name)
        if self.streams:
            self.state.replay.note_subscriber()

    def start_cursor(self) -> None:
        """``each`` mode: start the private replay (after any reply already queued, so the reply goes first)."""
        if self.streams:
            self.cursor_started.set()

    def unsubscribe(self, names: list[str]) -> None:
        for name in names:
            if name in self.streams:
                self.streams.remove(name)
            self.active.discard(name)
            self.state.hub.unregister(self, name)

    # ------------------------------------------------------------------ outgoing

    def enqueue(self, item: int | str) -> None:
        self.queue.append(item)
        if len(self.queue) >= HIGH_WATER:
            self.drained.clear()
        self.wakeup.set()

    def text_of(self, index: int) -> str:
        timeline = self.state.market.timeline
        return timeline.frames[index] if self.combined else timeline.raw(index)

    async def send_frame(self, index: int) -> None:
        """Send timeline frame ``index`` and any malformed frame due after it."""
        stream = self.state.market.timeline.streams[index]
        await self.ws.send_str(self.text_of(index))
        self.sent[stream] += 1
        self.state.hub.sent[stream] += 1
        if self.pending_malformed:
            await self._inject_after(index, stream)

    async def _inject_after(self, index: int, stream: str) -> None:
        payload = self.state.market.timeline.raw(index)
        for entry in self.pending_malformed:
            kind, remaining, only = entry
            if remaining <= 0 or (only is not None and only != stream):
                continue
            bad = faults.malform_payload(kind, payload)
            if bad is None:
                continue
            await self.ws.send_str(faults.wrap(stream, bad, self.combined, kind))
            entry[1] -= 1
            self.injected[kind] += 1
            self.state.hub.injected[kind] += 1
        self.pending_malformed = [e for e in self.pending_malformed if e[1] > 0]

    async def writer(self) -> None:
        """Send what the shared replay queued (frames by index, replies as text)."""
        hub = self.state.hub
        while not self.closed:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.queue and not self.closed:
                item = self.queue.popleft()
                if len(self.queue) <= LOW_WATER:
                    self.drained.set()
                if isinstance(item, str):
                    await self.ws.send_str(item)
                elif hub.stalled():
                    self.dropped_while_stalled += 1
                else:
                    await self.send_frame(item)
            self.drained.set()

    async def private_replay(self) -> None:
        """``each`` mode: send every frame of the subscribed streams from the start of the timeline, once."""
        await self.cursor_started.wait()
        state = self.state
        timeline = state.market.timeline
        speed = state.config.speed
        start = state.market.start_index
        anchor_wall = time.monotonic()
        anchor_ns = int(timeline.local_ns[start]) if len(timeline) > start else 0
        streams_of = timeline.streams
        for index in range(start, len(timeline)):
            if self.closed:
                return
            if streams_of[index] not in self.active:
                continue
            if speed is not None:
                due = anchor_wall + (int(timeline.local_ns[index]) - anchor_ns) / 1e9 / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            while state.hub.paused_or_stalled():
                await asyncio.sleep(0.05)
            await self.send_frame(index)

    # ------------------------------------------------------------------ incoming

    def over_rate(self) -> bool:
        now = time.monotonic()
        self.incoming.append(now)
        while self.incoming and now - self.incoming[0] > 1.0:
            self.incoming.popleft()
        return len(self.incoming) > self.state.config.max_incoming_per_s

    def handle_text(self, text: str) -> str | None:
        """Answer one JSON method message; return the reply text."""
        try:
            request = json.loads(text)
        except ValueError as exc:
            return _error(3, f"Invalid JSON: {exc}", None)
        if not isinstance(request, dict):
            return _error(2, "Invalid request: expected an object", None)
        request_id = request.get("id")
        if request_id is not None and (
            not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0
        ):
            return _error(2, "Invalid request: request ID must be an unsigned integer", None)
        method = request.get("method")
        params = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _error(2, "Invalid request: invalid stream", request_id)
            names = [streams.normalise(p) for p in params]
            if any(streams.category(n) is None for n in names):
                return _error(2, "Invalid request: invalid stream", request_id)
            if method == "SUBSCRIBE":
                new = [n for n in dict.fromkeys(names) if n not in self.streams]
                if len(self.streams) + len(new) > self.state.config.max_streams:
                    return _error(
                        2, f"Invalid request: too many streams (max {self.state.config.max_streams})", request_id
                    )
                self.subscribe(new)
            else:
                self.unsubscribe(names)
            return _result(None, request_id)
        if method == "LIST_SUBSCRIPTIONS":
            return _result(list(self.streams), request_id)
        if method == "SET_PROPERTY":
            if (
                isinstance(params, list)
                and len(params) == 2
                and params[0] == "combined"
                and isinstance(params[1], bool)
            ):
                self.combined = params[1]
                return _result(None, request_id)
            return _error(0, "Unknown property", request_id)
        if method == "GET_PROPERTY":
            if params == ["combined"]:
                return _result(self.combined, request_id)
            return _error(0, "Unknown property", request_id)
        return _error(
            2,
            f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
            "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
            request_id,
        )

    def abort(self) -> None:
        """Cut the TCP connection without a close frame."""
        self.closed = True
        self.close_reason = "dropped"
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.wakeup.set()

    def describe(self) -> dict:
        return {
            "id": self.id,
            "path": self.path,
            "combined": self.combined,
            "streams": list(self.streams),
            "frames_sent": sum(self.sent.values()),
            "frames_sent_by_stream": dict(self.sent),
            "malformed_injected": dict(self.injected),
            "malformed_pending": [{"kind": k, "remaining": n, "stream": s} for k, n, s in self.pending_malformed],
            "dropped_while_stalled": self.dropped_while_stalled,
            "queued": len(self.queue),
            "age_s": round(time.time() - self.opened, 3),
        }


def _result(result: Any, request_id: Any) -> str:
    return json.dumps({"result": result, "id": request_id}, separators=(",", ":"))


def _error(code: int, msg: str, request_id: Any) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": request_id}, separators=(",", ":"))


class Hub:
    """Who is subscribed to what; fan-out of the shared replay; drop/stall faults; counters."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.connections: dict[int, Connection] = {}
        self.subscribers: dict[str, set[Connection]] = collections.defaultdict(set)
        self.sent: collections.Counter[str] = collections.Counter()
        self.injected: collections.Counter[str] = collections.Counter()
        self.stall_until = 0.0
        self.connections_total = 0
        self.closed_by_reason: collections.Counter[str] = collections.Counter()

    def register(self, conn: Connection, name: str) -> None:
        if self.state.config.replay_mode == "shared":
            self.subscribers[name].add(conn)

    def unregister(self, conn: Connection, name: str) -> None:
        subs = self.subscribers.get(name)
        if subs is not None:
            subs.discard(conn)

    def dispatch(self, index: int) -> None:
        subs = self.subscribers.get(self.state.market.timeline.streams[index])
        if subs:
            for conn in subs:
                conn.enqueue(index)

    async def wait_writable(self) -> None:
        """Block a max-speed replay while some client has too many frames queued."""
        for conn in list(self.connections.values()):
            if not conn.closed and not conn.drained.is_set():
                await conn.drained.wait()

    def stalled(self) -> bool:
        return time.monotonic() < self.stall_until

    def paused_or_stalled(self) -> bool:
        return self.stalled() or self.state.replay.paused

    # ------------------------------------------------------------------ faults

    def drop_all(self) -> int:
        conns = list(self.connections.values())
        for conn in conns:
            conn.abort()
        return len(conns)

    def stall(self, seconds: float) -> None:
        self.stall_until = time.monotonic() + seconds

    def inject_malformed(self, kind: str, count: int, stream: str | None = None) -> int:
        if kind not in faults.KINDS:
            raise ValueError(f"unknown malformed kind {kind!r}; expected one of {', '.join(faults.KINDS)}")
        conns = [c for c in self.connections.values() if not c.closed]
        for conn in conns:
            conn.pending_malformed.append([kind, count, stream])
        return len(conns)

    # ------------------------------------------------------------------ lifecycle

    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        self.connections_total += 1

    def remove(self, conn: Connection) -> None:
        conn.drained.set()  # never leave a max-speed replay waiting on a closed connection
        self.connections.pop(conn.id, None)
        for name in conn.streams:
            self.unregister(conn, name)
        self.closed_by_reason[conn.close_reason or "client"] += 1

    async def close_all(self) -> None:
        for conn in list(self.connections.values()):
            conn.closed = True
            conn.wakeup.set()
            try:
                # A client that stopped reading leaves the send buffer full and the close handshake stuck:
                # give it a moment, then cut the connection.
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"server shutdown"), 1.0)
            except TimeoutError:
                conn.abort()
            except Exception:  # the transport may already be gone
                pass

    def stats(self) -> dict:
        return {
            "connections_open": len(self.connections),
            "connections_total": self.connections_total,
            "connections_closed_by_reason": dict(self.closed_by_reason),
            "frames_sent_by_stream": dict(self.sent),
            "frames_sent": sum(self.sent.values()),
            "malformed_injected": dict(self.injected),
            "stalled_for_s": max(0.0, round(self.stall_until - time.monotonic(), 3)),
            "connections": [c.describe() for c in self.connections.values()],
        }


# ---------------------------------------------------------------------------------------------- handler


async def handle(request: web.Request) -> web.StreamResponse:
    """Serve ``/{market|public}/stream`` and ``/{market|public}/ws[/<stream>...]``."""
    from aegis.sim.state import STATE

    state = request.app[STATE]
    category = request.match_info["category"]
    kind = request.match_info["kind"]
    combined = kind == "stream"
    if combined:
        raw = request.query.get("streams", "")
        names = [streams.normalise(n) for n in raw.split("/") if n]
    else:
        names = [streams.normalise(n) for n in request.match_info.get("tail", "").split("/") if n]
    names = list(dict.fromkeys(names))
    if len(names) > state.config.max_streams:
        return web.json_response(
            {"error": {"code": 2, "msg": f"Invalid request: too many streams (max {state.config.max_streams})"}},
            status=400,
        )
    config = state.config
    ws = web.WebSocketResponse(autoping=False, heartbeat=None, max_msg_size=1 << 20)
    await ws.prepare(request)
    conn = Connection(state, ws, request, category, combined)
    state.hub.add(conn)
    conn.subscribe(names)
    # The writer sends replies (and, in shared mode, the frames the replay queues); in "each" mode a private
    # replay sends the frames. aiohttp writes each frame whole, so the two never interleave inside a frame.
    tasks = [asyncio.create_task(conn.writer()), asyncio.create_task(_ping_loop(conn))]
    if config.replay_mode == "each":
        tasks.append(asyncio.create_task(conn.private_replay()))
        conn.start_cursor()
    lifetime = asyncio.get_running_loop().call_later(config.max_lifetime_s, _expire, conn)
    try:
        async for msg in ws:
            counted = msg.type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG)
            if counted and conn.over_rate():
                conn.close_reason = "too_many_requests"
                await ws.close(code=1008, message=b"Too many requests")
                break
            if msg.type == WSMsgType.TEXT:
                reply = conn.handle_text(msg.data)
                if reply is not None:
                    conn.enqueue(reply)
                conn.start_cursor()
            elif msg.type == WSMsgType.PING:
                if not state.hub.stalled():
                    await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.last_pong = time.monotonic()
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        conn.closed = True
        conn.wakeup.set()
        lifetime.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        state.hub.remove(conn)
        if not ws.closed:
            try:
                await ws.close()
            except Exception:
                pass
    return ws


def _expire(conn: Connection) -> None:
    conn.close_reason = "max_lifetime"
    conn.closing = asyncio.ensure_future(conn.ws.close(code=1000, message=b"connection lifetime exceeded"))


async def _ping_loop(conn: Connection) -> None:
    config = conn.state.config
    while not conn.closed:
        await asyncio.sleep(config.ping_interval_s)
        if conn.closed:
            return
        if time.monotonic() - conn.last_pong > config.pong_timeout_s:
            conn.close_reason = "pong_timeout"
            await conn.ws.close(code=1000, message=b"pong timeout")
            return
        if not conn.state.hub.stalled():
            try:
                await conn.ws.ping(str(int(time.time() * 1000)).encode())
            except ConnectionResetError:
                return
