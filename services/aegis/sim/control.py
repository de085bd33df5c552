"""Fault injection and inspection over HTTP, under ``/_sim/`` (not part of Binance's API).

* ``POST /_sim/drop``: cut every websocket without a close frame.
* ``POST /_sim/stall?seconds=S``: send nothing (frames, pings, pongs) for S seconds; connections stay open.
* ``POST /_sim/malformed?count=N&kind=K[&stream=S]``: send N malformed frames of kind K to every open
  connection, each right after a real frame it can be made from.
* ``POST /_sim/pause`` and ``/_sim/resume``: stop and continue the shared replay clock.
* ``GET /_sim/stats``: replay position and clock, connections, frames sent per stream and connection.
"""

from __future__ import annotations

from aiohttp import web

from aegis.sim import faults
from aegis.sim.state import STATE


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def drop(request: web.Request) -> web.Response:
    return web.json_response({"dropped": request.app[STATE].hub.drop_all()})


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


def add_routes(app: web.Application) -> None:
    app.router.add_post("/_sim/drop", drop)
    app.router.add_post("/_sim/stall", stall)
    app.router.add_post("/_sim/malformed", malformed)
    app.router.add_post("/_sim/pause", pause)
    app.router.add_post("/_sim/resume", resume)
    app.router.add_get("/_sim/stats", stats)
