"""Signed trading endpoints (``/fapi/v1/order``, ``/fapi/v1/algoOrder``, account and position queries, listenKey).

Every SIGNED request is checked by :mod:`aegis.sim.auth` (API key -2014/-2015, signature -1022, timestamp and
recvWindow -1021). Order placements (``POST /fapi/v1/order`` and ``POST /fapi/v1/algoOrder``) count against the
account's ORDERS limits, per 10 s and per minute of wall-clock time (300 and 1 200 in the served exchangeInfo);
their responses carry ``X-MBX-ORDER-COUNT-10S`` and ``X-MBX-ORDER-COUNT-1M``, and beyond a limit the answer is
HTTP 429 with -1015 and ``Retry-After``, without executing the order.

Faults for the next order placement (``POST /_sim/fail_next_order?mode=…``, or ``Simulator.fail_next_order``):

* ``503_executed``: the order is executed (fills, events) but the answer is HTTP 503 "Unknown error, please check
  your request or try again later." — the client cannot know.
* ``503_not_executed``: the same answer, and the order is not executed.
* ``429``: HTTP 429 -1015 with ``Retry-After``, not executed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from aegis.sim import auth
from aegis.sim.errors import BinanceError, json_response
from aegis.sim.state import STATE, SimState

FAULT_MODES = ("503_executed", "503_not_executed", "429")
UNKNOWN_ERROR_MSG = "Unknown error, please check your request or try again later."
FAULT_RETRY_AFTER_S = 1


def _keys(state: SimState) -> dict[str, str]:
    return dict(state.config.api_keys)


async def _signed(request: web.Request) -> auth.SignedRequest:
    state = request.app[STATE]
    return await auth.verify(request, _keys(state), state.clock_ms)


def _too_many(message: str, retry_after_s: float, counts: tuple[int, int] | None = None) -> web.Response:
    response = json_response({"code": -1015, "msg": message}, status=429)
    response.headers["Retry-After"] = str(max(1, int(retry_after_s + 0.999)))
    if counts is not None:
        response.headers["X-MBX-ORDER-COUNT-10S"] = str(counts[0])
        response.headers["X-MBX-ORDER-COUNT-1M"] = str(counts[1])
    return response


async def _place(request: web.Request, place: Callable[[dict[str, str]], dict]) -> web.Response:
    state = request.app[STATE]
    signed = await _signed(request)
    fault = state.next_order_faults.popleft() if state.next_order_faults else None
    state.trading_stats["order_requests"] += 1
    if fault == "429":
        state.trading_stats["faults_429"] += 1
        return _too_many("Too many new orders; current limit is 300 orders per 10 SECOND.", FAULT_RETRY_AFTER_S)
    c10, c1m, over, retry_after = state.orders_meter.charge(signed.api_key)
    if over is not None:
        state.trading_stats["rejected_429"] += 1
        return _too_many(over, retry_after, (c10, c1m))
    if fault == "503_not_executed":
        state.trading_stats["faults_503_not_executed"] += 1
        return json_response({"code": -1000, "msg": UNKNOWN_ERROR_MSG}, status=503)
    try:
        body = place(signed.params)
    except BinanceError as exc:
        response = json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)
    else:
        if fault == "503_executed":
            state.trading_stats["faults_503_executed"] += 1
            response = json_response({"code": -1000, "msg": UNKNOWN_ERROR_MSG}, status=503)
        else:
            response = json_response(body)
    response.headers["X-MBX-ORDER-COUNT-10S"] = str(c10)
    response.headers["X-MBX-ORDER-COUNT-1M"] = str(c1m)
    return response


def _handler(action: Callable[[SimState, dict[str, str]], object]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        signed = await _signed(request)
        return json_response(action(request.app[STATE], signed.params))

    return handle


def _symbol_or_none(params: dict[str, str]) -> str | None:
    value = params.get("symbol", "")
    return value.upper() if value else None


# ---------------------------------------------------------------------------------------------- handlers


async def new_order(request: web.Request) -> web.Response:
    return await _place(request, request.app[STATE].account.new_order)


async def new_algo_order(request: web.Request) -> web.Response:
    return await _place(request, request.app[STATE].account.new_algo_order)


query_order = _handler(lambda s, p: s.account.query_order(p))
cancel_order = _handler(lambda s, p: s.account.cancel_order(p))
open_orders = _handler(lambda s, p: s.account.open_orders(_symbol_or_none(p)))
query_algo = _handler(lambda s, p: s.account.query_algo(p))
cancel_algo = _handler(lambda s, p: s.account.cancel_algo(p))
open_algo_orders = _handler(lambda s, p: s.account.open_algo_orders(_symbol_or_none(p)))
account_v3 = _handler(lambda s, p: s.account.account_v3())
position_risk_v3 = _handler(lambda s, p: s.account.position_risk_v3(_symbol_or_none(p)))


async def leverage(request: web.Request) -> web.Response:
    signed = await _signed(request)
    symbol = signed.params.get("symbol", "").upper()
    value = signed.params.get("leverage", "")
    if not symbol:
        raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    if not value.isdigit():
        raise BinanceError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.")
    return json_response(request.app[STATE].account.set_leverage(symbol, int(value)))


async def listen_key(request: web.Request) -> web.Response:
    state = request.app[STATE]
    api_key = auth.api_key_of(request, _keys(state))
    hub = state.user_streams
    if request.method == "POST":
        return json_response({"listenKey": hub.create(api_key)})
    if request.method == "PUT":
        return json_response({"listenKey": hub.keepalive(api_key)})
    hub.close(api_key)
    return json_response({})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/fapi/v1/order", new_order)
    app.router.add_get("/fapi/v1/order", query_order)
    app.router.add_delete("/fapi/v1/order", cancel_order)
    app.router.add_get("/fapi/v1/openOrders", open_orders)
    app.router.add_post("/fapi/v1/algoOrder", new_algo_order)
    app.router.add_get("/fapi/v1/algoOrder", query_algo)
    app.router.add_delete("/fapi/v1/algoOrder", cancel_algo)
    app.router.add_get("/fapi/v1/openAlgoOrders", open_algo_orders)
    app.router.add_get("/fapi/v3/account", account_v3)
    app.router.add_get("/fapi/v3/positionRisk", position_risk_v3)
    app.router.add_post("/fapi/v1/leverage", leverage)
    app.router.add_post("/fapi/v1/listenKey", listen_key)
    app.router.add_put("/fapi/v1/listenKey", listen_key)
    app.router.add_delete("/fapi/v1/listenKey", listen_key)
    hub_handle = _private_handler
    app.router.add_get("/private/{kind:ws}/{listen_key}", hub_handle)
    app.router.add_get("/private/{kind:ws}", hub_handle)
    app.router.add_get("/private/{kind:stream}", hub_handle)


async def _private_handler(request: web.Request) -> web.StreamResponse:
    return await request.app[STATE].user_streams.handle(request)
