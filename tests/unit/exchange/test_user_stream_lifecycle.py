"""The user data stream's lifecycle against the simulator: keepalive, listenKeyExpired, -1125, the 24 h cut,
drops, and the REST resync after every (re)connection."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from aegis.exchange.trading import BinanceTrading
from aegis.exchange.user_stream import Fill, Resynced, UserStream
from aegis.sim import Simulator


@pytest.fixture
async def sim():
    async with Simulator(speed=None, start_on_subscribe=True) as simulator:
        simulator.state.replay.position = 3000
        yield simulator


async def eventually(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def client_for(sim: Simulator) -> BinanceTrading:
    return BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret)


async def test_keepalive_expiry_and_recreation(sim):
    changes: list = []
    async with client_for(sim) as client:
        await client.sync_time()
        async with UserStream(client, sim.ws_private_url, changes.extend, keepalive_interval_s=0.1) as stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            first_key = stream.listen_key
            await eventually(lambda: stream.stats.keepalives >= 2)
            entry = sim.state.user_streams.keys[first_key]
            assert entry.expires_at > time.monotonic() + 3500  # extended to 60 min by each PUT
            assert sim.expire_listen_key() == [first_key]  # the stream says listenKeyExpired
            await eventually(lambda: stream.stats.recreated_after_expiry == 1 and stream.connected.is_set())
            assert stream.listen_key != first_key and stream.stats.connects == 2
            await client.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"))
            await eventually(lambda: any(isinstance(c, Fill) for c in changes))
            assert stream.stats.resyncs == 2 and sum(isinstance(c, Resynced) for c in changes) == 2


async def test_a_keepalive_answered_minus_1125_creates_a_new_key(sim):
    async with client_for(sim) as client:
        await client.sync_time()
        async with UserStream(client, sim.ws_private_url, keepalive_interval_s=0.1, resync=False) as stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            first_key = stream.listen_key
            sim.state.user_streams.keys[first_key].expired = True  # expired silently: no event reached us
            await eventually(lambda: stream.stats.recreated_after_expiry == 1 and stream.connected.is_set())
            assert stream.listen_key != first_key


async def test_the_stream_reconnects_before_its_lifetime_and_after_a_drop(sim):
    async with client_for(sim) as client:
        await client.sync_time()
        async with UserStream(client, sim.ws_private_url, max_lifetime_s=0.3, resync=False) as stream:
            await eventually(lambda: stream.stats.planned_reconnects >= 2, timeout=10)
            assert stream.stats.listen_keys_created == 1  # the same key serves the new connection
        async with UserStream(client, sim.ws_private_url, resync=False) as stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            assert sim.drop() == 1  # cut without a close frame
            await eventually(lambda: stream.stats.connects == 2 and stream.connected.is_set(), timeout=10)
            assert stream.stats.drops == 1 and stream.stats.planned_reconnects == 0
