"""Fault injection and inspection over HTTP, under ``/_sim/`` (not part of Binance's API).

* ``POST /_sim/drop``: cut every websocket (market and user data) without a close frame.
* ``POST /_sim/stall?seconds=S``: send nothing (frames, pings, pongs) for S seconds; connections stay open.
* ``POST /_sim/malformed?count=N&kind=K[&stream=S]``: send N malformed frames of kind K to every open
  connection, each right after a real frame it can be made from.
* ``POST /_sim/pause`` and ``/_sim/resume``: stop and continue the shared replay clock.
* ``GET /_sim/stats``: replay position and clock, connections, frames sent per stream and connection, and the
  trading counters (orders accepted, fills, user-data events, faults, listenKeys).
* ``POST /_sim/fail_next_order?mode=503_executed|503_not_executed|429[&count=N]``: fault the next order placements
  (see :mod:`aegis.sim.trading`).
* ``POST /_sim/expire_listen_key[?listenKey=K]``: expire a listenKey now (every active one without ``listenKey``).
"""

from __future__ import annotations

from aiohttp import web

from aegis.sim import faults, trading
from aegis.sim.state import STATE


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def drop(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"dropped": state.hub.drop_all() + state.user_streams.drop_all()})


async def stall(request: web.Request) -> web.Response:
    try:
        seconds = float(request.query.get("seconds", "5"))
    except ValueError:
        return _bad("seconds must be a number")
    request.app[STATE].hub.stall(seconds)
    return web.json_response({"stalled_for_s": seconds})


async def malformed(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "truncated")
    if kind not in faults.KINDS:
        return _bad(f"kind must be one of {', '.join(faults.KINDS)}")
    try:
        count = int(request.query.get("count", "1"))
    except ValueError:
        return _bad("count must be an integer")
    stream = request.query.get("stream") or None
    connections = request.app[STATE].hub.inject_malformed(kind, count, stream)
    return web.json_response({"kind": kind, "count": count, "stream": stream, "connections": connections})


async def pause(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.replay.pause()
    return web.json_response(state.replay.describe())


async def resume(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.replay.resume()
    return web.json_response(state.replay.describe())


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def fail_next_order(request: web.Request) -> web.Response:
    mode = request.query.get("mode", "")
    if mode not in trading.FAULT_MODES:
        return _bad(f"mode must be one of {', '.join(trading.FAULT_MODES)}")
    try:
        count = int(request.query.get("count", "1"))
    except ValueError:
        return _bad("count must be an integer")
    faults_queue = request.app[STATE].next_order_faults
    faults_queue.extend([mode] * count)
    return web.json_response({"mode": mode, "pending": list(faults_queue)})


async def expire_listen_key(request: web.Request) -> web.Response:
    expired = request.app[STATE].user_streams.expire(request.query.get("listenKey") or None)
    return web.json_response({"expired": expired})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/_sim/drop", drop)
    app.router.add_post("/_sim/stall", stall)
    app.router.add_post("/_sim/malformed", malformed)
    app.router.add_post("/_sim/pause", pause)
    app.router.add_post("/_sim/resume", resume)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_post("/_sim/fail_next_order", fail_next_order)
    app.router.add_post("/_sim/expire_listen_key", expire_listen_key)
