"""Live execution end to end on loopback: a signal through the brain's executor, RiskService in live mode (real, in
process, reading the live equity from the exchange simulator), Binance orders on the simulator (entry, then the
stop-loss and take-profit algo orders), the fills mirrored into PostgreSQL by virtual-account's user-stream mirror
(real VirtualAccountService over gRPC), and retries that never place twice.

The exchange is the project's simulator on 127.0.0.1 (held replay, moved by hand); no test reaches Binance.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from aegis import config, testing
from aegis.brain.events import EventBus, SignalGenerated
from aegis.brain.execution import Executor, open_key
from aegis.brain.live import LiveTrader, client_id
from aegis.errors import ConfigError
from aegis.exchange.trading import BinanceTrading
from aegis.risk.testing import grpc_server, risk_server, store_rules_files
from aegis.sim import Simulator
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import risk_pb2_grpc as risk_grpc
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc
from aegis.virtual_account import settings as account_settings
from aegis.virtual_account.book import AccountBook
from aegis.virtual_account.domain import Tick
from aegis.virtual_account.events import EventHub
from aegis.virtual_account.live import LiveMirror, running
from aegis.virtual_account.servicer import VirtualAccountServicer, registration

START = 3000
SYMBOL = "ETHUSDT"
NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"


def advance(sim: Simulator, position: int) -> None:
    replay = sim.state.replay
    start = replay.position
    replay.position = position
    sim.state.after_advance(start, position)


async def until(check: Any, timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not (await check() if asyncio.iscoroutinefunction(check) else check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=None, start_on_subscribe=True) as simulator:
        advance(simulator, START)
        yield simulator


@pytest_asyncio.fixture
async def dsn(admin_dsn: str, shared_data: Path) -> AsyncIterator[str]:
    name = await testing.create_database(admin_dsn, "aegis_brain_live")
    conn = await connect_once(name)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    db = Database(name)
    await store_rules_files(db, None, shared_data / NOV, shared_data / TIERS)
    await db.close()
    yield name
    await testing.drop_database(admin_dsn, name)


def live_env(sim: Simulator, dsn: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_MODE": "live",
        "BINANCE_API_KEY": sim.api_key,
        "BINANCE_API_SECRET": sim.api_secret,
        "AEGIS_LIVE_CONFIRM": config.LIVE_CONFIRMATION,
        "AEGIS_BINANCE_REST_URL": sim.rest_url,
        "AEGIS_BINANCE_WS_PRIVATE_URL": sim.ws_private_url,
        "AEGIS_RISK_FETCH_RULES": "false",
        **extra,
    }


def signal_for(sim: Simulator, symbol: str = SYMBOL, side: str = "LONG") -> SignalGenerated:
    now_ns = time.time_ns()
    candle = now_ns // 10**6 // 900_000 * 900_000
    return SignalGenerated(
        signal_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"live-test-{symbol}-{now_ns}")),
        symbol=symbol,
        timeframe="15m",
        side=side,
        entry_price=sim.account.last_price(symbol),
        sl_pct=2.0,
        tp_pct=4.0,
        confidence=0.9,
        candle_open_time_ms=candle,
        created_time_ns=now_ns,
        predicted_return_pct=2.0,
        model_version="rules-v1",
    )


@dataclass
class Stack:
    executor: Executor
    trader: LiveTrader
    mirror: LiveMirror
    accounts: va_grpc.VirtualAccountServiceStub
    risk: risk_grpc.RiskServiceStub
    bus: EventBus


@pytest_asyncio.fixture
async def stack(sim: Simulator, dsn: str, redis_url: str) -> AsyncIterator[Stack]:
    db = Database(dsn)
    hub = EventHub(None)
    book = AccountBook(db, account_settings.load({}), accounts={"learning": "learning", "paper": "paper",
                                                                 "live": "live"}, publish=hub.publish)  # fmt: skip
    mirror_client = BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret)
    mirror = LiveMirror(db, mirror_client, ws_private_url=sim.ws_private_url, reconcile_interval_s=0,
                        publish=hub.publish)  # fmt: skip
    servicer = VirtualAccountServicer(book, hub, live=mirror)
    last = sim.account.last_price(SYMBOL)
    await book.apply_price_updates([Tick(SYMBOL, last, last, last, last, _now())])  # learning fills at market
    try:
        async with running(mirror), grpc_server([registration(servicer)]) as va_address:
            await asyncio.wait_for(mirror.ready.wait(), 20)
            await until(lambda: mirror.stream is not None and mirror.stream.connected.is_set(), what="user stream")
            settings = config.load(live_env(sim, dsn, redis_url, AEGIS_VIRTUAL_ACCOUNT_ADDRESS=va_address))
            settings.check_live_mode()
            async with (
                risk_server(settings) as risk,
                grpc.aio.insecure_channel(risk.address) as risk_channel,
                grpc.aio.insecure_channel(va_address) as va_channel,
            ):
                await risk.wait_rules()
                bus = EventBus()
                trader = LiveTrader(BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret))
                marks = {s: float(sim.account.last_price(s)) for s in ("BTCUSDT", SYMBOL)}
                executor = Executor(
                    bus,
                    risk=risk_grpc.RiskServiceStub(risk_channel),
                    accounts=va_grpc.VirtualAccountServiceStub(va_channel),
                    marks=lambda symbol: (marks[symbol], time.time_ns() // 10**6),
                    mode="live",
                    live=trader,
                    retry_base_s=0.02,
                )
                tasks = [asyncio.create_task(bus.run()), asyncio.create_task(executor.run())]
                try:
                    yield Stack(executor, trader, mirror, va_grpc.VirtualAccountServiceStub(va_channel),
                                risk_grpc.RiskServiceStub(risk_channel), bus)  # fmt: skip
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await trader.close()
    finally:
        await servicer.close()
        await mirror.client.close()
        await db.close()


def _now():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def order_requests(sim: Simulator) -> int:
    return sim.stats()["trading"].get("order_requests", 0)


async def test_a_signal_is_placed_on_the_simulator_with_its_stops_and_mirrored_and_a_retry_places_nothing(
    sim: Simulator, stack: Stack
) -> None:
    signal = signal_for(sim)
    stack.bus.publish(signal)
    await until(lambda: stack.trader.counts["opened"] == 1, what="the live entry")
    assert await stack.executor.idle()
    assert stack.executor.counts["learning_opened"] == 1 and stack.executor.counts["live_refused"] == 0

    key = open_key(signal.signal_id, "live")
    async with BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret) as client:
        await client.sync_time()
        entry = await client.query_order(SYMBOL, client_order_id=client_id("open", key))
        algos = {a.client_algo_id: a for a in await client.open_algo_orders(SYMBOL)}
        held = [p for p in await client.position_risk() if p.symbol == SYMBOL]
    assert entry is not None and entry.status == "FILLED" and entry.side == "BUY" and entry.type == "MARKET"
    assert held and held[0].position_amt == entry.executed_qty > 0
    stop, take = algos[client_id("stop_loss", key)], algos[client_id("take_profit", key)]
    assert (stop.order_type, stop.side, take.order_type, take.side) == ("STOP_MARKET", "SELL", "TAKE_PROFIT_MARKET",
                                                                        "SELL")  # fmt: skip
    assert stop.close_position and take.close_position and stop.working_type == take.working_type == "MARK_PRICE"
    assert stop.trigger_price < entry.avg_price < take.trigger_price and len(algos) == 2

    # the fill, over the user data stream, is the live account's position in the database (and over gRPC)
    async def mirrored() -> bool:
        reply = await stack.accounts.ListPositions(va_pb.ListPositionsRequest(
            account="live", status=common_pb.POSITION_STATUS_OPEN))  # fmt: skip
        return len(reply.positions) == 1 and reply.positions[0].take_profit_price != ""

    await until(mirrored, what="the mirrored live position with its stops")
    (position,) = (await stack.accounts.ListPositions(va_pb.ListPositionsRequest(account="live"))).positions
    assert position.symbol == SYMBOL and position.side == common_pb.POSITION_SIDE_LONG
    assert Decimal(position.quantity) == entry.executed_qty and Decimal(position.entry_price) == entry.avg_price
    assert Decimal(position.stop_loss_price) == stop.trigger_price
    assert Decimal(position.take_profit_price) == take.trigger_price
    account = (await stack.accounts.GetAccount(va_pb.GetAccountRequest(account="live"))).account
    assert account.kind == common_pb.ACCOUNT_KIND_LIVE and Decimal(account.wallet_balance) == sim.account.wallet
    assert Decimal(account.fees) > 0 and account.open_positions == 1
    report = (await stack.accounts.Reconcile(va_pb.ReconcileRequest(account="live", dry_run=True))).report
    assert report.in_sync and report.dry_run, report

    # a retried order (its reply lost) and a restarted process (a new trader, nothing in memory) place nothing new
    sent = order_requests(sim)
    order = stack.executor._open_order(signal, "live", _decision_for(entry, stop, take))
    for trader in (stack.trader, LiveTrader(BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret))):
        filled = await trader.send(order)
        assert not isinstance(filled, str) and filled.replayed and filled.quantity == entry.executed_qty
        if trader is not stack.trader:
            assert trader.counts["protective_existing"] == 2 and trader.counts["orders_sent"] == 0
            await trader.close()
    assert order_requests(sim) == sent
    # the same signal re-emitted (a restart of the brain): risk sees the live position, nothing is sent
    stack.executor.on_signal(signal)
    assert await stack.executor.idle()
    assert stack.trader.counts["refused"] == 1 and order_requests(sim) == sent
    assert stack.trader.refusals == {"POSITION_EXISTS": 1}


def _decision_for(entry: Any, stop: Any, take: Any) -> Any:
    """Risk's decision as it sized the entry (what a retry of the same order carries)."""
    from aegis.v1 import risk_pb2 as risk_pb

    return risk_pb.RiskDecision(
        approved=True,
        decision_id="retry",
        order=common_pb.Order(
            quantity=format(entry.orig_qty, "f"),
            type=common_pb.ORDER_TYPE_MARKET,
            stop_loss_price=format(stop.trigger_price, "f"),
            take_profit_price=format(take.trigger_price, "f"),
            leverage=5,
        ),
    )


async def test_an_entry_answered_503_is_found_by_query_and_never_sent_twice(sim: Simulator, stack: Stack) -> None:
    signal = signal_for(sim, "BTCUSDT", "SHORT")
    sim.fail_next_order("503_executed")  # executed on the exchange, answered "Unknown error"
    sent = order_requests(sim)
    stack.bus.publish(signal)
    await until(lambda: stack.trader.counts["opened"] == 1, what="the recovered entry")
    assert await stack.executor.idle()
    async with BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret) as client:
        await client.sync_time()
        held = [p for p in await client.position_risk() if p.symbol == "BTCUSDT"]
        algos = await client.open_algo_orders("BTCUSDT")
    assert order_requests(sim) == sent + 3  # the entry once (recovered by query), then its two algo orders
    assert held and held[0].position_amt < 0 and len(algos) == 2
    assert {a.side for a in algos} == {"BUY"}


def test_live_mode_is_refused_without_the_opt_in() -> None:
    base = {"AEGIS_MODE": "live", "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"}
    with pytest.raises(ConfigError, match="AEGIS_LIVE_CONFIRM=I_UNDERSTAND_THIS_TRADES_REAL_MONEY"):
        config.load(base).check_live_mode()
    with pytest.raises(ConfigError, match="BINANCE_API_SECRET"):
        config.load(
            {**base, "BINANCE_API_SECRET": "", "AEGIS_LIVE_CONFIRM": config.LIVE_CONFIRMATION}
        ).check_live_mode()
    config.load({**base, "AEGIS_LIVE_CONFIRM": config.LIVE_CONFIRMATION}).check_live_mode()  # confirmed: allowed


async def test_a_rotation_closes_the_live_position_reduce_only_and_the_mirror_records_rotated(
    sim: Simulator, stack: Stack
) -> None:
    from aegis.brain.events import OrderRequest
    from aegis.brain.execution import rotate_key

    signal = signal_for(sim)
    stack.bus.publish(signal)
    await until(lambda: stack.trader.counts["opened"] == 1, what="the live entry")
    assert await stack.executor.idle()
    close = OrderRequest(
        client_order_id=rotate_key("next-signal", "live", f"live:{SYMBOL}:BOTH"),
        account="live",
        symbol=SYMBOL,
        side="",
        order_type="MARKET",
        quantity=Decimal(0),
        created_time_ns=time.time_ns(),
        reduce_only=True,
        exit=True,
        position_id=f"live:{SYMBOL}:BOTH",
        reason="ROTATED",
    )
    filled = await stack.executor.place(close)  # the bus's priority path, as a REPLACE rotation sends it
    assert filled is not None and not filled.replayed and filled.reduce_only and filled.side == "SELL"
    async with BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret) as client:
        await client.sync_time()
        assert [p for p in await client.position_risk() if p.symbol == SYMBOL] == []
        assert await client.open_algo_orders(SYMBOL) == []  # its stop-loss and take-profit were cancelled
    again = await stack.trader.send(close)  # retried: found by its id, nothing sent
    assert not isinstance(again, str) and again.replayed

    async def traded() -> bool:
        reply = await stack.accounts.ListTrades(va_pb.ListTradesRequest(account="live"))
        return len(reply.trades) == 1

    await until(traded, what="the rotated trade in the mirror")
    (trade,) = (await stack.accounts.ListTrades(va_pb.ListTradesRequest(account="live"))).trades
    assert trade.close_reason == common_pb.CLOSE_REASON_ROTATED and Decimal(trade.quantity) == filled.quantity
    assert Decimal(trade.fees) > 0 and Decimal(trade.net_pnl) == Decimal(trade.gross_pnl) - Decimal(trade.fees)


async def test_reduce_only_protection_sizes_the_stops_to_the_filled_quantity(sim: Simulator) -> None:
    from aegis.brain.events import OrderRequest

    price = sim.account.last_price(SYMBOL)
    order = OrderRequest(
        client_order_id=f"{uuid.uuid4()}:live", account="live", symbol=SYMBOL, side="SELL", order_type="MARKET",
        quantity=Decimal("0.05"), created_time_ns=time.time_ns(), leverage=5,
        stop_loss_price=(price * Decimal("1.03")).quantize(Decimal("0.01")),
        take_profit_price=(price * Decimal("0.97")).quantize(Decimal("0.01")),
    )  # fmt: skip
    trader = LiveTrader(BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret), working_type="CONTRACT_PRICE",
                        protection="reduce_only")  # fmt: skip
    try:
        filled = await trader.send(order)
        assert not isinstance(filled, str) and filled.quantity == Decimal("0.05") and filled.side == "SELL"
        algos = {a.order_type: a for a in await trader.client.open_algo_orders(SYMBOL)}
    finally:
        await trader.close()
    assert set(algos) == {"STOP_MARKET", "TAKE_PROFIT_MARKET"}
    for algo in algos.values():
        assert algo.side == "BUY" and algo.reduce_only and not algo.close_position
        assert algo.quantity == Decimal("0.05") and algo.working_type == "CONTRACT_PRICE"
    assert algos["STOP_MARKET"].trigger_price == order.stop_loss_price
