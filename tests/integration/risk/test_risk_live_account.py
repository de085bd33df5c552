"""The live account source reads equity from the exchange (here the simulator's signed endpoints, never Binance)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aegis.errors import AegisError
from aegis.exchange.trading import BinanceTrading
from aegis.risk.accounts import LiveAccountSource
from aegis.risk.sizing import PositionSide
from aegis.sim import Simulator


@pytest.fixture
async def sim():
    async with Simulator(speed=None, start_on_subscribe=True) as simulator:
        replay = simulator.state.replay
        start = replay.position
        replay.position = 3000
        simulator.state.after_advance(start, 3000)
        yield simulator


async def test_live_equity_is_the_exchange_wallet_and_positions(sim) -> None:
    async with BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret, reconcile_delay_s=0.05) as client:
        await client.exchange_info()
        await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.004"), client_order_id="live-equity-1")
        account = await client.account()
    source = LiveAccountSource(sim.rest_url, sim.api_key, sim.api_secret)
    try:
        snapshot = await source.snapshot("live")
    finally:
        await source.close()
    usdt = account.asset("USDT")
    assert usdt is not None and snapshot.wallet_balance == usdt.wallet_balance
    assert snapshot.wallet_balance < Decimal("10000")  # the taker fee was paid
    (position,) = snapshot.positions
    assert position.symbol == "BTCUSDT" and position.side == PositionSide.LONG
    assert position.quantity == Decimal("0.004") and position.entry_price > 0 and position.mark_price > 0


async def test_without_keys_the_live_source_refuses_rather_than_invent_equity() -> None:
    source = LiveAccountSource()
    with pytest.raises(AegisError, match="never sizes on made-up equity"):
        await source.snapshot("live")
