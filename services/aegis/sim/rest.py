"""Binance USD-M market-data REST endpoints (``/fapi/v1/...``), with Binance's shapes, errors and weights.

Every ``/fapi`` response carries ``X-MBX-USED-WEIGHT-1M``: the request weight this client IP used in the current
minute. Beyond the exchangeInfo ``REQUEST_WEIGHT`` limit the answer is HTTP 429 with code -1003 and a
``Retry-After`` header, as on Binance.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from aiohttp import web

from aegis.sim.errors import BinanceError, json_response
from aegis.sim.klines import INTERVAL_MS, rollup, select
from aegis.sim.klines import kline_row as _kline_row
from aegis.sim.recording import FUNDING_INTERVAL_MS
from aegis.sim.state import STATE, SimState

KLINES_MAX = 1500
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _mandatory(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _integer(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 20:
        raise BinanceError(
            400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )
    return int(value)


def _symbol(state: SimState, request: web.Request) -> str:
    symbol = _mandatory(request, "symbol").upper()
    if symbol not in state.symbols:
        raise BinanceError(400, -1121, "Invalid symbol.")
    return symbol


def _klines_limit(request: web.Request) -> int:
    limit = _integer(request, "limit")
    if limit is None:
        return 500
    if limit < 1:
        raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, KLINES_MAX)


def klines_weight(limit: int) -> int:
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def depth_weight(limit: int) -> int:
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def _weight(request: web.Request) -> int:
    """The request's weight, from the Binance docs' tables (unparseable parameters weigh the default)."""
    path = request.path
    try:
        if path == "/fapi/v1/klines":
            return klines_weight(min(int(request.query.get("limit", 500)), KLINES_MAX))
        if path == "/fapi/v1/depth":
            return depth_weight(int(request.query.get("limit", 500)))
    except ValueError:
        pass
    if path == "/fapi/v1/premiumIndex":
        return 1 if request.query.get("symbol") else 10
    if request.method == "POST" and path in ("/fapi/v1/order", "/fapi/v1/algoOrder"):
        return 0  # order placements count against the ORDERS limits instead
    if path in ("/fapi/v1/openOrders", "/fapi/v1/openAlgoOrders"):
        return 1 if "symbol=" in request.rel_url.raw_query_string else 40
    if path in ("/fapi/v3/account", "/fapi/v3/positionRisk"):
        return 5
    return 1


@web.middleware
async def weight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/fapi/"):
        return await handler(request)
    state = request.app[STATE]
    used, exceeded = state.weights.charge(request.remote or "?", _weight(request))
    if exceeded:
        response: web.StreamResponse = json_response(
            {
                "code": -1003,
                "msg": f"Too many requests; current limit of IP({request.remote}) is "
                f"{state.weights.limit} requests per minute. Please use the websocket for live "
                "updates to avoid polling the API.",
            },
            status=429,
        )
        response.headers["Retry-After"] = str(60 - int(time.time()) % 60)
    else:
        try:
            response = await handler(request)
        except BinanceError as exc:
            response = json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)
    response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    return response


# ---------------------------------------------------------------------------------------------- handlers


async def ping(request: web.Request) -> web.Response:
    return json_response({})


async def server_time(request: web.Request) -> web.Response:
    return json_response({"serverTime": request.app[STATE].clock_ms})


async def exchange_info(request: web.Request) -> web.Response:
    return web.Response(text=request.app[STATE].exchange_info_text(), content_type="application/json")


async def klines(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbol = _symbol(state, request)
    interval = _mandatory(request, "interval")
    if interval not in INTERVAL_MS:
        raise BinanceError(400, -1120, "Invalid interval.")
    start_time = _integer(request, "startTime")
    end_time = _integer(request, "endTime")
    limit = _klines_limit(request)
    tape = state.market.tapes.get(symbol)
    if tape is None:
        return json_response([])
    interval_ms = INTERVAL_MS[interval]
    minutes = state.bars_1m(tape)
    # Trim the 1m bars to whole groups around the request before rolling up (a 1h request over 10 days of
    # 1m bars would otherwise sum 14 400 bars).
    if start_time is not None:
        first = start_time - start_time % interval_ms
        minutes = [b for b in minutes if b.open_time >= first]
        minutes = minutes[: (limit + 1) * (interval_ms // 60_000)]
    else:
        if end_time is not None:
            minutes = [b for b in minutes if b.open_time < end_time - end_time % interval_ms + interval_ms]
        if minutes:
            last_group = minutes[-1].open_time - minutes[-1].open_time % interval_ms
            minutes = [b for b in minutes if b.open_time >= last_group - limit * interval_ms]
    bars = select(rollup(minutes, interval_ms), start_time, end_time, limit)
    return json_response([_kline_row(b, tape.precision) for b in bars])


async def depth(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbol = _symbol(state, request)
    limit = _integer(request, "limit")
    limit = 500 if limit is None else limit
    if limit not in DEPTH_LIMITS:
        raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    tape = state.market.tapes.get(symbol)
    if tape is None:
        return json_response({"lastUpdateId": 0, "E": state.clock_ms, "T": state.clock_ms, "bids": [], "asks": []})
    return json_response(state.book(tape, limit))


def _premium(state: SimState, symbol: str) -> dict:
    tape = state.market.tapes.get(symbol)
    price = state.last_price(tape) if tape is not None else None
    now = state.clock_ms
    mark = format(price.quantize(Decimal("0.00000001")), "f") if price is not None else "0.00000000"
    return {
        "symbol": symbol,
        "markPrice": mark,
        "indexPrice": mark,
        "estimatedSettlePrice": mark,
        "lastFundingRate": state.config.funding_rate,
        "interestRate": "0.00010000",
        "nextFundingTime": (now // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS,
        "time": now,
    }


async def premium_index(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.query.get("symbol"):
        return json_response(_premium(state, _symbol(state, request)))
    return json_response([_premium(state, s) for s in sorted(state.market.tapes)])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/fapi/v1/ping", ping)
    app.router.add_get("/fapi/v1/time", server_time)
    app.router.add_get("/fapi/v1/exchangeInfo", exchange_info)
    app.router.add_get("/fapi/v1/klines", klines)
    app.router.add_get("/fapi/v1/depth", depth)
    app.router.add_get("/fapi/v1/premiumIndex", premium_index)
