"""The trading client end to end against the local simulator on 127.0.0.1 (never a real exchange).

The simulator's replay is held and moved by hand (:func:`advance`), so fills and triggers are deterministic. Its
clock then stands still while the wall clock runs, so the client meets -1021 now and then and resyncs: the same
path as a drifting clock on Binance.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from aegis.errors import ValidationError
from aegis.exchange.trading import (
    AlgoOrder,
    BinanceApiError,
    BinanceTrading,
    Order,
    OrderCountTracker,
    Outcome,
    TradingRateLimited,
)
from aegis.exchange.user_stream import Fill, UserStream
from aegis.sim import Simulator

START = 3000
TICK = Decimal("0.1")


def advance(sim: Simulator, position: int) -> None:
    replay = sim.state.replay
    start = replay.position
    replay.position = position
    sim.state.after_advance(start, position)


@pytest.fixture
async def sim():
    async with Simulator(speed=None, start_on_subscribe=True) as simulator:
        advance(simulator, START)
        yield simulator


def client_for(sim: Simulator, **kwargs) -> BinanceTrading:
    kwargs.setdefault("reconcile_delay_s", 0.05)
    return BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret, **kwargs)


async def eventually(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def order_requests(sim: Simulator) -> int:
    return sim.stats()["trading"].get("order_requests", 0)


async def test_market_limit_and_stop_orders_the_stream_and_rest_agree(sim):
    changes: list = []
    async with client_for(sim) as client:
        await client.exchange_info()
        async with UserStream(client, sim.ws_private_url, changes.extend) as stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            market = await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.004"), client_order_id="e2e-mkt")
            assert market.outcome is Outcome.PLACED and isinstance(market.order, Order)
            assert market.order.status == "FILLED" and market.order.executed_qty == Decimal("0.004")
            last = sim.account.last_price("BTCUSDT")
            resting = await client.place_order(
                "BTCUSDT", "BUY", "LIMIT", Decimal("0.002"), price=last - 200, client_order_id="e2e-lmt"
            )
            assert resting.order.status == "NEW"
            tape = sim.market.tapes["BTCUSDT"]
            window = [
                (int(i), t) for i, t in zip(tape.trade_index, tape.trades, strict=True) if START <= i < START + 3000
            ]
            trigger = min(t.price for _, t in window) + TICK
            stop = await client.place_algo_order(
                "BTCUSDT", "SELL", "STOP_MARKET", trigger_price=trigger, close_position=True, client_algo_id="e2e-sl"
            )
            assert stop.outcome is Outcome.PLACED and isinstance(stop.order, AlgoOrder) and stop.order.is_open
            advance(sim, next(i for i, t in window if t.price <= trigger) + 1)  # the replay crosses the trigger

            def settled() -> bool:
                state = stream.state.state
                algo = state.algo_orders.get(stop.order.algo_id)
                position = state.position("BTCUSDT")
                return algo is not None and algo.status == "FINISHED" and position is not None and position.amount == 0

            await eventually(settled)
            state = stream.state.state
            account, positions = await client.account(), await client.position_risk()
            open_orders, open_algos = await client.open_orders("BTCUSDT"), await client.open_algo_orders()
            queried = await client.query_order("BTCUSDT", client_order_id="e2e-mkt")
            algo = await client.query_algo_order(client_algo_id="e2e-sl")

    assert state.balances["USDT"].wallet_balance == account.total_wallet_balance == sim.account.wallet
    assert positions == [] and account.positions == ()
    assert [o.order_id for o in open_orders] == [o.order_id for o in state.open_orders()] == [resting.order.order_id]
    assert open_algos == [] and algo.algo_status == "FINISHED" and not state.open_algo_orders()
    assert queried == market.order.__class__(**{**_fields(market.order), "time": queried.time})
    fills = [c for c in changes if isinstance(c, Fill)]
    assert {f.client_order_id for f in fills} == {"e2e-mkt", "e2e-sl"}
    assert sum(f.qty for f in fills if f.side == "SELL") == Decimal("0.004")
    realized = sum(f.realized_pnl for f in fills)
    fees = sum(f.commission for f in fills)
    assert account.total_wallet_balance == Decimal("10000") + realized - fees
    assert algo.actual_order_id == str(next(f.order_id for f in fills if f.client_order_id == "e2e-sl"))


def _fields(struct) -> dict:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


async def test_a_stale_clock_gets_minus_1021_resyncs_once_and_places_one_order(sim):
    # The client starts at offset 0 (wall clock, 2026); the simulator's clock is 2024-08-08.
    async with client_for(sim) as client:
        placed = await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
        assert placed.outcome is Outcome.PLACED and client.time_resyncs == 1
        assert abs(client.now_ms() - sim.clock_ms) < 1000
    assert sim.account.counters.orders_accepted == 1 and order_requests(sim) == 1


async def test_a_duplicate_client_id_means_already_placed(sim):
    async with client_for(sim) as client:
        await client.sync_time()
        price = sim.account.last_price("BTCUSDT") - 300
        first = await client.place_order(
            "BTCUSDT", "BUY", "LIMIT", Decimal("0.002"), price=price, client_order_id="d-1"
        )
        again = await client.place_order(
            "BTCUSDT", "BUY", "LIMIT", Decimal("0.002"), price=price, client_order_id="d-1"
        )
        assert (first.outcome, again.outcome) == (Outcome.PLACED, Outcome.ALREADY_PLACED)
        assert again.order.order_id == first.order.order_id and again.order.is_open
        trigger = sim.account.last_price("BTCUSDT") - 500
        stop = {"trigger_price": trigger, "quantity": Decimal("0.002"), "reduce_only": True, "client_algo_id": "d-a"}
        algo = await client.place_algo_order("BTCUSDT", "SELL", "STOP_MARKET", **stop)
        algo_again = await client.place_algo_order("BTCUSDT", "SELL", "STOP_MARKET", **stop)
        assert algo_again.outcome is Outcome.ALREADY_PLACED and algo_again.order.algo_id == algo.order.algo_id
        with pytest.raises(BinanceApiError) as refused:
            await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.001"))
        assert refused.value.code == -4164  # a definite refusal is raised as is
        with pytest.raises(ValidationError):
            await client.place_order("BTCUSDT", "SELL", "STOP_MARKET", Decimal("0.002"))
    assert sim.account.counters.orders_accepted == 1 and sim.account.counters.algo_orders_accepted == 1
    assert len(sim.account.open_orders("BTCUSDT")) == 1


@pytest.mark.parametrize("executed", [True, False])
async def test_an_unknown_answer_is_reconciled_by_query_never_by_a_second_order(sim, executed):
    sim.fail_next_order("503_executed" if executed else "503_not_executed")
    async with client_for(sim) as client:
        await client.sync_time()
        placed = await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"), client_order_id="u-1")
    if executed:
        assert placed.outcome is Outcome.RECOVERED and placed.order.status == "FILLED"
        assert placed.order.client_order_id == "u-1"
    else:
        assert placed.outcome is Outcome.NOT_FOUND and placed.order is None
    assert order_requests(sim) == 1  # one placement request, whatever happened
    assert sim.account.counters.orders_accepted == int(executed)


async def test_an_unknown_answer_on_an_algo_order_is_reconciled_too(sim):
    sim.fail_next_order("503_executed")
    async with client_for(sim) as client:
        await client.sync_time()
        await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
        sim.fail_next_order("503_executed")
        trigger = sim.account.last_price("BTCUSDT") - 500
        placed = await client.place_algo_order(
            "BTCUSDT", "SELL", "STOP_MARKET", trigger_price=trigger, close_position=True, client_algo_id="u-a"
        )
    assert placed.outcome is Outcome.RECOVERED and placed.order.client_algo_id == "u-a" and placed.order.is_open
    assert sim.account.counters.algo_orders_accepted == 1 and order_requests(sim) == 2


async def test_a_429_stops_all_sending_until_retry_after(sim):
    async with client_for(sim) as client:
        await client.sync_time()
        sim.fail_next_order("429")
        with pytest.raises(TradingRateLimited) as first:
            await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
        assert first.value.sent and first.value.retry_after_s >= 1
        sent = client.requests_sent
        with pytest.raises(TradingRateLimited) as held:
            await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
        with pytest.raises(TradingRateLimited):
            await client.account()  # nothing at all goes out, not only orders
        assert not held.value.sent and client.requests_sent == sent
        await asyncio.sleep(first.value.retry_after_s + 0.05)
        placed = await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
        assert placed.outcome is Outcome.PLACED
    assert order_requests(sim) == 2 and sim.account.counters.orders_accepted == 1


async def test_the_order_count_limit_holds_orders_back_without_sending(sim):
    frozen = time.time()
    tracker = OrderCountTracker(limit_10s=1, limit_1m=1200, clock=lambda: frozen)
    async with client_for(sim, orders=tracker) as client:
        await client.sync_time()
        await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
        assert tracker.count_10s == 1  # the exchange's X-MBX-ORDER-COUNT-10S
        with pytest.raises(TradingRateLimited) as held:
            await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
        assert not held.value.sent
        assert (await client.account()).total_wallet_balance < Decimal("10000")  # other requests still go
    assert order_requests(sim) == 1
