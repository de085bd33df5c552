"""The simulator's signed endpoints: security checks, filters with Binance's messages, matching against the
recorded book and trades, algo triggers, rate limits, faults, listenKeys and the user data stream.

The replay is held (never started) and moved by hand with :func:`advance`, so every fill is deterministic."""

from __future__ import annotations

import json
from decimal import Decimal

import aiohttp
import pytest

from aegis.exchange.trading import build_signed_request
from aegis.exchange.user_stream import Fill, UserStreamState
from aegis.sim import Simulator
from aegis.sim.config import shared_data_dir
from aegis.sim.state import OrderMeter

START = 3000  # well after both recorded depth snapshots (timeline index ~100)
ERRORS = shared_data_dir() / "binance" / "github_issue_quotes" / "binance_error_payloads.json"
CAPTURE = (
    shared_data_dir() / "binance" / "zhtut_binance_api" / "FeatureAccountWebSocket.swift.user_stream_capture.jsonl"
)
TICK = Decimal("0.10")


def advance(sim: Simulator, position: int) -> None:
    """Release the frames up to ``position`` to the matching engine, as the replay loop does."""
    replay = sim.state.replay
    start = replay.position
    replay.position = position
    sim.state.after_advance(start, position)


@pytest.fixture
async def sim():
    async with Simulator(speed=None, start_on_subscribe=True) as simulator:
        advance(simulator, START)
        yield simulator


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


async def call(
    session: aiohttp.ClientSession,
    sim: Simulator,
    method: str,
    path: str,
    params: dict | list = (),
    *,
    key: str | None = None,
    secret: str | None = None,
    timestamp: int | None = None,
    body: bool = False,
) -> tuple[int, object, dict]:
    request = build_signed_request(
        method,
        path,
        secret=secret or sim.api_secret,
        timestamp_ms=timestamp or sim.clock_ms,
        query=() if body else params,
        body=params if body else None,
    )
    headers = {} if key == "" else {"X-MBX-APIKEY": key or sim.api_key}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with session.request(
        method, request.url(sim.rest_url), data=request.body_to_send or None, headers=headers
    ) as response:
        return response.status, await response.json(), dict(response.headers)


def real_quote(code: int, contains: str = "") -> str:
    for item in json.loads(ERRORS.read_text())["errors"]:
        if item["code"] == code and contains in item["as_quoted"]:
            return item["as_quoted"]
    raise KeyError(code)


def trades_after(sim: Simulator, symbol: str, position: int):
    tape = sim.market.tapes[symbol]
    for trade, index in zip(tape.trades, tape.trade_index, strict=True):
        if index >= position:
            yield int(index), trade


# ---------------------------------------------------------------------------------------------- security


async def test_api_key_signature_and_timestamp_are_checked_as_binance_does(sim, session):
    path = "/fapi/v3/account"
    status, body, _ = await call(session, sim, "GET", path, key="")
    assert (status, body["code"], body["msg"]) == (401, -2014, "API-key format invalid.")
    status, body, _ = await call(session, sim, "GET", path, key="nobody")
    assert (status, body["code"]) == (401, -2015)
    status, body, _ = await call(session, sim, "GET", path, secret="wrong")
    assert (status, body) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    status, body, _ = await call(session, sim, "GET", path, timestamp=sim.clock_ms + 1000)
    assert json.dumps(body, separators=(",", ":")) == real_quote(
        -1021, '{"code":-1021,"msg":"Timestamp for this request was'
    )
    status, body, _ = await call(session, sim, "GET", path, timestamp=sim.clock_ms - 5001)
    assert json.dumps(body, separators=(",", ":")) == real_quote(-1021, "recvWindow")
    status, body, _ = await call(session, sim, "GET", path, {"recvWindow": 10000}, timestamp=sim.clock_ms - 5001)
    assert status == 200 and body["totalWalletBalance"] == "10000.00000000"
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 10}, body=True
    )
    assert status == 200 and body["leverage"] == 10  # parameters and signature in the request body


# ---------------------------------------------------------------------------------------------- filters


async def test_filter_failures_answer_binances_codes_and_messages(sim, session):
    order = "/fapi/v1/order"
    mark = sim.account.mark_price("BTCUSDT")
    base = {"symbol": "BTCUSDT", "side": "BUY"}
    status, body, headers = await call(session, sim, "POST", order, {**base, "type": "MARKET", "quantity": "0.001"})
    assert status == 400 and headers["X-MBX-ORDER-COUNT-10S"] == "1"
    # The real BTCUSDT answer (min notional 100), quoted from a GitHub issue:
    assert body["msg"] == real_quote(-4164, "100").split("): ")[-1]
    status, body, _ = await call(session, sim, "POST", order, {**base, "type": "MARKET", "quantity": "0"})
    assert json.dumps(body, separators=(",", ":")) in real_quote(-4003)
    status, body, _ = await call(session, sim, "POST", order, {**base, "type": "MARKET", "quantity": "0.0025"})
    assert body["code"] == -1111
    limit = {**base, "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002"}
    status, body, _ = await call(session, sim, "POST", order, {**limit, "price": str(mark - Decimal("0.05"))})
    assert body == {"code": -4014, "msg": "Price not increased by tick size."}
    status, body, _ = await call(
        session, sim, "POST", order, {**limit, "price": str((mark * Decimal("1.06")).quantize(Decimal("0.1")))}
    )
    cap = (mark * Decimal("1.05")).quantize(Decimal("0.1"), rounding="ROUND_FLOOR")
    assert body == {"code": -4016, "msg": f"Limit price can't be higher than {cap.normalize():f}."}
    status, body, _ = await call(session, sim, "POST", order, {**base, "type": "MARKET", "quantity": "10"})
    assert json.dumps(body, separators=(",", ":")) == real_quote(-2019, '{"code"')
    status, body, _ = await call(
        session, sim, "POST", order, {**base, "type": "STOP_MARKET", "stopPrice": "60000", "closePosition": "true"}
    )
    assert body["code"] == -4120 and "Algo Order API" in body["msg"]
    status, body, _ = await call(
        session, sim, "POST", order, {**base, "symbol": "NOSUCHUSDT", "type": "MARKET", "quantity": "1"}
    )
    assert body == {"code": -1121, "msg": "Invalid symbol."}
    assert sim.account.counters.orders_accepted == 0 and not sim.account.positions


# ---------------------------------------------------------------------------------------------- matching


async def test_a_market_order_walks_the_recorded_book_and_books_fees_and_position(sim, session):
    events: list[dict] = []
    sim.account.listeners.append(events.append)
    book = sim.state.book(sim.market.tapes["BTCUSDT"], 1000)
    asks = [(Decimal(p), Decimal(q)) for p, q in book["asks"]]
    qty = asks[0][1] + asks[1][1] + Decimal("0.001")  # two levels and a bit of the third
    sim.account.wallet = Decimal("1000000")  # the recorded top levels hold several BTC
    status, body, _ = await call(
        session,
        sim,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": str(qty), "newOrderRespType": "RESULT"},
    )
    assert status == 200 and body["status"] == "FILLED" and Decimal(body["executedQty"]) == qty, body
    expected = [(asks[0][0], asks[0][1]), (asks[1][0], asks[1][1]), (asks[2][0], Decimal("0.001"))]
    fills = [e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    assert [(Decimal(f["L"]), Decimal(f["l"])) for f in fills] == expected
    fees = [(p * q * Decimal("0.0005")).quantize(Decimal("0.00000001")) for p, q in expected]
    assert [Decimal(f["n"]) for f in fills] == fees and not any(f["m"] for f in fills)
    quote = sum(p * q for p, q in expected)
    assert Decimal(body["avgPrice"]) == (quote / qty).quantize(Decimal("0.00001"))
    assert sim.account.wallet == Decimal("1000000") - sum(fees)
    position = sim.account.positions["BTCUSDT"]
    assert position.amount == qty and position.entry_price == quote / qty
    assert [e["e"] for e in events] == ["TRADE_LITE"] * 3 + ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"] + [
        "ORDER_TRADE_UPDATE"
    ] * 3
    assert [f["X"] for f in fills] == ["PARTIALLY_FILLED", "PARTIALLY_FILLED", "FILLED"]


async def test_event_shapes_carry_the_real_captures_field_names(sim, session):
    events: list[dict] = []
    sim.account.listeners.append(events.append)
    real = [json.loads(json.loads(line)["raw"]) for line in CAPTURE.read_text().splitlines()]
    await call(
        session,
        sim,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"},
    )
    ours = {e["e"]: e for e in events}
    for event in real:
        mine = ours[event["e"]]
        assert list(mine) == list(event) or set(mine) == set(event)
        for key in ("o", "a"):
            if key in event:
                assert set(mine[key]) == set(event[key])
        if event["e"] == "ACCOUNT_UPDATE":
            assert set(mine["a"]["B"][0]) == set(event["a"]["B"][0])
            assert set(mine["a"]["P"][0]) == set(event["a"]["P"][0])


async def test_open_and_close_like_the_capture_reconcile_exactly_through_the_stream_state(sim, session):
    """The capture's round trip (LIMIT buy 0.002 that crosses, MARKET sell 0.002) on the recorded BTCUSDT book."""
    events: list[dict] = []
    sim.account.listeners.append(events.append)
    ask = Decimal(sim.state.book(sim.market.tapes["BTCUSDT"], 5)["asks"][0][0])
    buy = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002"}
    await call(session, sim, "POST", "/fapi/v1/order", {**buy, "price": str(ask)})
    advance(sim, START + 20000)
    await call(
        session, sim, "POST", "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.002", "reduceOnly": "true"},
    )  # fmt: skip
    stream = UserStreamState()
    changes = [c for e in events for c in stream.apply(e)]
    fills = [c for c in changes if isinstance(c, Fill)]
    assert len(fills) == 2 and fills[0].price == ask
    assert fills[1].realized_pnl == (fills[1].price - fills[0].price) * Decimal("0.002")
    assert sum(f.commission for f in fills) == sum(f.price * f.qty * Decimal("0.0005") for f in fills)
    wallet = stream.state.balances["USDT"].wallet_balance
    assert wallet == Decimal("10000") + fills[1].realized_pnl - sum(f.commission for f in fills)
    assert wallet == sim.account.wallet and stream.state.position("BTCUSDT").amount == 0


async def test_a_resting_limit_order_fills_only_when_a_replayed_trade_goes_through_it(sim, session):
    events: list[dict] = []
    sim.account.listeners.append(events.append)
    bid = Decimal(sim.state.book(sim.market.tapes["BTCUSDT"], 5)["bids"][0][0])
    window = [t for _, t in zip(range(3000), trades_after(sim, "BTCUSDT", START), strict=False)]
    low = min(trade.price for _, trade in window)
    assert low < bid - TICK  # the recording goes below the bid within the window
    price = low + TICK
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010",
         "price": str(price), "newClientOrderId": "rest-1"},
    )  # fmt: skip
    assert status == 200 and body["status"] == "NEW"
    index, trade = next((i, t) for i, t in window if t.price < price)
    advance(sim, index)
    assert sim.account.orders[body["orderId"]].status == "NEW"  # trades at or above the price do not fill it
    advance(sim, index + 1)
    order = sim.account.orders[body["orderId"]]
    filled = min(Decimal("0.010"), trade.qty)
    assert order.executed_qty == filled and order.avg_price == price
    trade_events = [e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    assert trade_events[0]["m"] is True
    assert Decimal(trade_events[0]["n"]) == (price * filled * Decimal("0.0002")).quantize(Decimal("0.00000001"))
    assert trade_events[0]["T"] == int(sim.market.timeline.exch_ms[index])


async def test_a_stop_market_triggers_on_the_contract_price_and_closes_the_position(sim, session):
    events: list[dict] = []
    sim.account.listeners.append(events.append)
    await call(
        session,
        sim,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.003"},
    )
    last = sim.account.last_price("BTCUSDT")
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/algoOrder",
        {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
         "triggerPrice": str(last + TICK), "closePosition": "true"},
    )  # fmt: skip
    assert (status, body["code"]) == (400, -2021)
    window = [t for _, t in zip(range(3000), trades_after(sim, "BTCUSDT", START), strict=False)]
    trigger = min(t.price for _, t in window) + TICK
    assert trigger < last
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/algoOrder",
        {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
         "triggerPrice": str(trigger), "closePosition": "true", "clientAlgoId": "sl-1"},
    )  # fmt: skip
    assert status == 200 and body["algoStatus"] == "NEW" and body["clientAlgoId"] == "sl-1"
    index = next(i for i, t in window if t.price <= trigger)
    advance(sim, index)
    assert sim.account.algos[body["algoId"]].status == "NEW"
    advance(sim, index + 1)
    algo_states = [e["o"]["X"] for e in events if e["e"] == "ALGO_UPDATE"]
    assert algo_states == ["NEW", "TRIGGERING", "TRIGGERED", "FINISHED"]
    finished = [e for e in events if e["e"] == "ALGO_UPDATE"][-1]["o"]
    assert finished["aq"] == "0.003" and finished["act"] == "MARKET" and finished["ai"]
    assert sim.account.positions["BTCUSDT"].amount == 0
    status, body, _ = await call(session, sim, "GET", "/fapi/v1/algoOrder", {"clientAlgoId": "sl-1"})
    assert body["algoStatus"] == "FINISHED" and body["actualOrderId"] == finished["ai"]


async def test_a_mark_price_stop_waits_for_the_served_mark_price_frames(sim, session):
    await call(
        session,
        sim,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.003"},
    )
    timeline = sim.market.timeline
    marks = [
        (i, Decimal(json.loads(timeline.raw(i))["p"]))
        for i in range(START, START + 20000)
        if timeline.streams[i] == "btcusdt@markPrice@1s"
    ]
    last = sim.account.last_price("BTCUSDT")
    trigger = max(p for _, p in marks) - TICK
    assert trigger > last
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/algoOrder",
        {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET", "quantity": "0.003",
         "reduceOnly": "true", "triggerPrice": str(trigger), "workingType": "MARK_PRICE"},
    )  # fmt: skip
    assert status == 200
    index = next(i for i, p in marks if p >= trigger)
    advance(sim, index)
    assert sim.account.algos[body["algoId"]].status == "NEW"
    advance(sim, index + 1)
    assert sim.account.algos[body["algoId"]].status == "FINISHED"
    assert sim.account.positions["BTCUSDT"].amount == 0


# ---------------------------------------------------------------------------------------------- idempotency, faults


async def test_a_client_order_id_is_unique_among_open_orders(sim, session):
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002",
              "price": str(sim.account.last_price("BTCUSDT") - 100), "newClientOrderId": "dup-1"}  # fmt: skip
    assert (await call(session, sim, "POST", "/fapi/v1/order", params))[0] == 200
    status, body, _ = await call(session, sim, "POST", "/fapi/v1/order", params)
    assert (status, body) == (400, {"code": -4116, "msg": "ClientOrderId is duplicated."})
    await call(session, sim, "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "dup-1"})
    assert (await call(session, sim, "POST", "/fapi/v1/order", params))[0] == 200  # no longer open: accepted
    assert sim.account.counters.orders_accepted == 2


@pytest.mark.parametrize("executed", [True, False])
async def test_a_503_answer_hides_whether_the_order_was_executed(sim, session, executed):
    sim.fail_next_order("503_executed" if executed else "503_not_executed")
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002", "newClientOrderId": "u-1"}
    status, body, _ = await call(session, sim, "POST", "/fapi/v1/order", params)
    assert (status, body) == (
        503,
        {"code": -1000, "msg": "Unknown error, please check your request or try again later."},
    )
    status, body, _ = await call(
        session, sim, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "u-1"}
    )
    if executed:
        assert status == 200 and body["status"] == "FILLED"
    else:
        assert (status, body) == (400, {"code": -2013, "msg": "Order does not exist."})
    assert sim.account.counters.orders_accepted == int(executed)


async def test_order_rate_limits_answer_429_with_1015_and_count_headers(sim, session):
    meter = OrderMeter(limit_10s=2, limit_1m=3)
    assert [meter.charge("k", now=100.0)[2] for _ in range(2)] == [None, None]
    count_10s, count_1m, message, retry = meter.charge("k", now=101.0)
    assert (count_10s, count_1m, retry) == (3, 3, 9.0)
    assert message == "Too many new orders; current limit is 2 orders per 10 SECOND."
    assert "per MINUTE" in meter.charge("k", now=110.0)[2]  # a new 10 s window, but 4 orders in the minute
    assert meter.charge("other", now=110.0)[2] is None  # counted per account
    assert meter.charge("k", now=120.0)[:3] == (1, 1, None)  # a new minute
    sim.fail_next_order("429")
    status, body, headers = await call(
        session,
        sim,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"},
    )
    assert status == 429 and body["code"] == -1015 and int(headers["Retry-After"]) >= 1
    assert sim.account.counters.orders_accepted == 0


# ---------------------------------------------------------------------------------------------- user data stream


async def test_listen_keys_and_the_private_stream(sim, session):
    headers = {"X-MBX-APIKEY": sim.api_key}
    async with session.post(sim.rest_url + "/fapi/v1/listenKey", headers=headers) as response:
        key = (await response.json())["listenKey"]
    async with session.post(sim.rest_url + "/fapi/v1/listenKey", headers=headers) as response:
        assert (await response.json())["listenKey"] == key  # the active key is returned again
    async with session.post(sim.rest_url + "/fapi/v1/listenKey") as response:
        assert response.status == 401
    raw = await session.ws_connect(f"{sim.ws_private_url}/ws/{key}")
    combined = await session.ws_connect(f"{sim.ws_private_url}/stream?streams={key}")
    await call(
        session,
        sim,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"},
    )
    first = json.loads((await raw.receive(timeout=5)).data)
    wrapped = json.loads((await combined.receive(timeout=5)).data)
    assert first["e"] == "TRADE_LITE" and wrapped == {"stream": key, "data": first}
    for _ in range(3):
        await raw.receive(timeout=5)
    async with session.put(sim.rest_url + "/fapi/v1/listenKey", headers=headers) as response:
        assert response.status == 200
    async with session.post(sim.rest_url + f"/_sim/expire_listen_key?listenKey={key}") as response:
        assert (await response.json())["expired"] == [key]
    expired = json.loads((await raw.receive(timeout=5)).data)
    assert expired["e"] == "listenKeyExpired" and expired["listenKey"] == key
    assert (await raw.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
    async with session.put(sim.rest_url + "/fapi/v1/listenKey", headers=headers) as response:
        assert await response.json() == {"code": -1125, "msg": "This listenKey does not exist."}
    async with session.get(f"{sim.ws_private_url}/ws/{key}") as response:
        assert response.status == 400
    async with session.post(sim.rest_url + "/fapi/v1/listenKey", headers=headers) as response:
        assert (await response.json())["listenKey"] != key
    await combined.close()
    await raw.close()


async def test_rest_views_agree_with_the_account(sim, session):
    await call(
        session,
        sim,
        "POST",
        "/fapi/v1/order",
        {"symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.05"},
    )
    price = sim.account.last_price("ETHUSDT") + 50
    sell = {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.05"}
    await call(session, sim, "POST", "/fapi/v1/order", {**sell, "price": str(price)})
    _, risk, _ = await call(session, sim, "GET", "/fapi/v3/positionRisk", {"symbol": "ETHUSDT"})
    _, account, _ = await call(session, sim, "GET", "/fapi/v3/account")
    _, orders, _ = await call(session, sim, "GET", "/fapi/v1/openOrders")
    assert risk[0]["positionAmt"] == "-0.05" and account["positions"][0]["positionAmt"] == "-0.05"
    assert Decimal(account["totalWalletBalance"]) == sim.account.wallet
    assert Decimal(account["totalOpenOrderInitialMargin"]) == price * Decimal("0.05") / 20
    assert [o["price"] for o in orders] == [f"{price:.2f}"] and orders[0]["status"] == "NEW"


async def test_time_in_force_ioc_fok_and_post_only(sim, session):
    sim.account.wallet = Decimal("1000000")
    ask, ask_qty = (Decimal(v) for v in sim.state.book(sim.market.tapes["BTCUSDT"], 5)["asks"][0])
    limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": str(ask), "newOrderRespType": "RESULT"}
    more = str(ask_qty + Decimal("0.5"))
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/order", {**limit, "timeInForce": "GTX", "quantity": "0.002"}
    )
    assert (status, body["code"]) == (400, -5022)  # post-only that would take liquidity
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/order", {**limit, "timeInForce": "FOK", "quantity": more}
    )
    assert body["status"] == "EXPIRED" and body["executedQty"] == "0.000"  # the level at the price is too small
    status, body, _ = await call(
        session, sim, "POST", "/fapi/v1/order", {**limit, "timeInForce": "IOC", "quantity": more}
    )
    assert body["status"] == "EXPIRED" and Decimal(body["executedQty"]) == ask_qty  # what was there, the rest expires
    below = {**limit, "price": str(ask - 50), "timeInForce": "GTX", "quantity": "0.002"}
    status, body, _ = await call(session, sim, "POST", "/fapi/v1/order", below)
    assert body["status"] == "NEW"  # a post-only order that does not cross rests
