"""The user data stream: listenKeys and the ``/private`` websocket that carries the account's events.

* ``POST /fapi/v1/listenKey`` (API key, no signature) returns ``{"listenKey": …}``; while the account has an active
  key the same key is returned and its validity extended, as on Binance. ``PUT`` extends it (60 min), ``DELETE``
  closes it; ``PUT`` on an expired or unknown key answers -1125 "This listenKey does not exist.".
* A key expires ``listen_key_validity_s`` after its creation or last keepalive, or at once through
  ``POST /_sim/expire_listen_key``: its connections receive ``{"e": "listenKeyExpired", "E": …, "listenKey": …}``
  and are closed, and it can no longer be kept alive.
* Connections: ``/private/ws/<listenKey>`` and ``/private/ws?listenKey=<key>`` (raw events) and
  ``/private/stream?streams=<listenKey>`` (combined frames ``{"stream": <listenKey>, "data": …}``). An unknown or
  expired key is refused with HTTP 400 and -1125. Connections close after ``max_lifetime_s`` (24 h), as Binance's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from aegis.sim.errors import BinanceError, json_response

if TYPE_CHECKING:
    from aegis.sim.state import SimState


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    listen_key: str
    combined: bool
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    sent: int = 0


@dataclass
class ListenKey:
    key: str
    api_key: str
    expires_at: float
    expired: bool = False
    connections: set[_Connection] = field(default_factory=set)


class UserStreamHub:
    """ListenKeys of the simulated account and the websocket connections that listen to it."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.keys: dict[str, ListenKey] = {}
        self.events_published = 0
        self.expired_total = 0
        self.connections_total = 0
        self.closed_by_reason: collections.Counter[str] = collections.Counter()
        state.account.listeners.append(self.publish)
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # ------------------------------------------------------------------ keys

    def _active_for(self, api_key: str) -> ListenKey | None:
        for entry in self.keys.values():
            if entry.api_key == api_key and not entry.expired:
                return entry
        return None

    def _schedule(self, entry: ListenKey) -> None:
        timer = self._timers.pop(entry.key, None)
        if timer is not None:
            timer.cancel()
        delay = max(0.0, entry.expires_at - time.monotonic())
        self._timers[entry.key] = asyncio.get_running_loop().call_later(delay, self._expire_if_due, entry.key)

    def _expire_if_due(self, key: str) -> None:
        entry = self.keys.get(key)
        if entry is None or entry.expired:
            return
        if time.monotonic() >= entry.expires_at:
            self.expire(key)
        else:
            self._schedule(entry)

    def create(self, api_key: str) -> str:
        entry = self._active_for(api_key)
        validity = self.state.config.listen_key_validity_s
        if entry is None:
            entry = ListenKey(secrets.token_urlsafe(48)[:64], api_key, 0.0)
            self.keys[entry.key] = entry
        entry.expires_at = time.monotonic() + validity
        self._schedule(entry)
        return entry.key

    def keepalive(self, api_key: str) -> str:
        entry = self._active_for(api_key)
        if entry is None:
            raise BinanceError(400, -1125, "This listenKey does not exist.")
        entry.expires_at = time.monotonic() + self.state.config.listen_key_validity_s
        self._schedule(entry)
        return entry.key

    def close(self, api_key: str) -> None:
        entry = self._active_for(api_key)
        if entry is not None:
            entry.expired = True
            for conn in list(entry.connections):
                self._close(conn, "listen_key_closed")

    def expire(self, key: str | None = None) -> list[str]:
        """Expire ``key`` (every active key when None): send ``listenKeyExpired`` and close its connections."""
        targets = [e for e in self.keys.values() if not e.expired and (key is None or e.key == key)]
        for entry in targets:
            entry.expired = True
            self.expired_total += 1
            event = {"e": "listenKeyExpired", "E": self.state.clock_ms, "listenKey": entry.key}
            for conn in list(entry.connections):
                self._send(conn, event)
                self._close(conn, "listen_key_expired")
        return [e.key for e in targets]

    # ------------------------------------------------------------------ events

    def _send(self, conn: _Connection, event: dict) -> None:
        text = json.dumps(event, separators=(",", ":"))
        if conn.combined:
            text = '{"stream":"' + conn.listen_key + '","data":' + text + "}"
        conn.queue.put_nowait(text)

    def _close(self, conn: _Connection, reason: str) -> None:
        self.closed_by_reason[reason] += 1
        conn.queue.put_nowait(None)

    def publish(self, event: dict) -> None:
        """Send one account event to every connection of every active key."""
        self.events_published += 1
        for entry in self.keys.values():
            if entry.expired:
                continue
            for conn in entry.connections:
                self._send(conn, event)

    # ------------------------------------------------------------------ websocket

    async def handle(self, request: web.Request) -> web.StreamResponse:
        combined = request.match_info.get("kind") == "stream"
        if combined:
            key = request.query.get("streams", "").split("/")[0]
        else:
            key = request.match_info.get("listen_key") or request.query.get("listenKey", "")
        entry = self.keys.get(key)
        if entry is None or entry.expired:
            return json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        conn = _Connection(ws, request, key, combined)
        entry.connections.add(conn)
        self.connections_total += 1
        writer = asyncio.create_task(self._writer(conn))
        lifetime = asyncio.get_running_loop().call_later(
            self.state.config.max_lifetime_s, self._close, conn, "max_lifetime"
        )
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            lifetime.cancel()
            entry.connections.discard(conn)
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2.0)
            writer.cancel()
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    async def _writer(self, conn: _Connection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1000, message=b"listenKey expired or stream closed")
                return
            try:
                await conn.ws.send_str(text)
                conn.sent += 1
            except (ConnectionResetError, RuntimeError):
                return

    def drop_all(self) -> int:
        """Cut every user-stream connection without a close frame; return how many were cut."""
        conns = [c for e in self.keys.values() for c in e.connections]
        for conn in conns:
            self.closed_by_reason["dropped"] += 1
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        return len(conns)

    async def close_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for entry in self.keys.values():
            for conn in list(entry.connections):
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"server shutdown")

    def stats(self) -> dict:
        return {
            "listen_keys_active": sum(1 for e in self.keys.values() if not e.expired),
            "listen_keys_expired": self.expired_total,
            "connections_open": sum(len(e.connections) for e in self.keys.values()),
            "connections_total": self.connections_total,
            "connections_closed_by_reason": dict(self.closed_by_reason),
            "events_published": self.events_published,
        }
