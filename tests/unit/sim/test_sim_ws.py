"""Websocket streams over real loopback sockets: URL shapes, live methods, limits, pings and faults."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import aiohttp
import pytest
import websockets
from sim_testdata import BTC_FILE
from websockets.asyncio.client import connect as _ws_connect

from aegis.sim import Simulator


def connect(url: str, **kwargs):
    """A websockets client that keeps reading while the test is not calling recv (no TCP backpressure)."""
    kwargs.setdefault("max_queue", None)
    kwargs.setdefault("close_timeout", 2)
    return _ws_connect(url, **kwargs)


async def _frames(ws, count: int, timeout: float = 5.0) -> list[str]:
    return [await asyncio.wait_for(ws.recv(), timeout) for _ in range(count)]


async def _reply(ws, request_id: int, timeout: float = 5.0) -> dict:
    """Read until the reply to ``request_id`` arrives (frames may come first)."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if "id" in message and "stream" not in message and message.get("id") == request_id:
            return message


async def _silence(ws, seconds: float) -> list[str]:
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
    return got


@pytest.fixture
async def sim():
    async with Simulator(speed=10.0) as simulator:
        yield simulator


async def test_combined_and_raw_streams(sim):
    names = {"btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@markPrice@1s"}
    async with connect(sim.ws_market_url + "/stream?streams=" + "/".join(sorted(names))) as ws:
        frames = [json.loads(f) for f in await _frames(ws, 40)]
    assert {f["stream"] for f in frames} <= names and set(frames[0]) == {"stream", "data"}
    agg = next(f["data"] for f in frames if f["stream"] == "btcusdt@aggTrade")
    assert list(agg) == ["e", "E", "a", "s", "p", "q", "f", "l", "T", "m"] and agg["e"] == "aggTrade"
    async with connect(sim.ws_market_url + "/ws/btcusdt@trade") as ws:
        raw = [json.loads(f) for f in await _frames(ws, 5)]
    assert all(f["e"] == "trade" and f["s"] == "BTCUSDT" for f in raw)
    async with connect(sim.ws_market_url + "/ws/btcusdt@kline_1m") as ws:
        kline = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert kline["e"] == "kline" and kline["k"]["i"] == "1m" and kline["k"]["s"] == "BTCUSDT"
    async with connect(sim.ws_public_url + "/ws/ethusdt@bookTicker") as ws:
        tick = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert tick["e"] == "bookTicker" and Decimal(tick["b"]) < Decimal(tick["a"])


async def test_subscribe_list_unsubscribe_and_invalid_stream(sim):
    async with connect(sim.ws_public_url + "/stream") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1}))
        assert await _reply(ws, 1) == {"result": None, "id": 1}
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["stream"] == "btcusdt@bookTicker"
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert await _reply(ws, 2) == {"result": ["btcusdt@bookTicker"], "id": 2}
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 3}))
        assert await _reply(ws, 3) == {"result": None, "id": 3}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert await _reply(ws, 4) == {"result": [], "id": 4}
        assert await _silence(ws, 0.3) == []
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 5}))
        assert await _reply(ws, 5) == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 5}
        await ws.send("{not json")
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["error"]["code"] == 3


async def test_stream_limit_is_1024_per_connection(sim):
    names = [f"sym{i}usdt@aggTrade" for i in range(1024)]
    async with connect(sim.ws_market_url + "/stream", max_size=None) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
        assert await _reply(ws, 1) == {"result": None, "id": 1}
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2}))
        reply = await _reply(ws, 2)
        assert reply["error"]["code"] == 2 and "too many streams" in reply["error"]["msg"]
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        assert len((await _reply(ws, 3))["result"]) == 1024
    too_many = "/".join([*names, "btcusdt@aggTrade"])
    with pytest.raises(websockets.exceptions.InvalidStatus) as excinfo:
        async with connect(sim.ws_market_url + "/stream?streams=" + too_many):
            pass
    assert excinfo.value.response.status_code == 400


async def test_more_than_10_incoming_messages_per_second_disconnects(sim):
    async with connect(sim.ws_market_url + "/stream") as ws:
        for i in range(10):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        assert (await _reply(ws, 9))["result"] == []
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10}))
        with pytest.raises(websockets.exceptions.ConnectionClosed) as excinfo:
            await _silence(ws, 2.0)
            await ws.recv()
    assert excinfo.value.rcvd is not None and excinfo.value.rcvd.code == 1008
    assert excinfo.value.rcvd.reason == "Too many requests"


async def test_server_pings_and_closes_without_pong():
    async with Simulator(speed=10.0, ping_interval_s=0.2, pong_timeout_s=0.9) as sim:
        # websockets answers pings: the connection survives well past the pong timeout.
        async with connect(sim.ws_market_url + "/ws/btcusdt@aggTrade", ping_interval=None) as ws:
            await _silence(ws, 1.5)
            assert ws.state is websockets.protocol.State.OPEN
        # A client that never answers sees pings, then the close.
        pings = 0
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(sim.ws_market_url + "/ws/btcusdt@aggTrade", autoping=False) as ws,
        ):
            start = time.monotonic()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.PING:
                    pings += 1
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            elapsed = time.monotonic() - start
        assert pings >= 2 and 0.8 < elapsed < 3.0


async def test_connection_ends_at_max_lifetime():
    async with Simulator(speed=10.0, max_lifetime_s=0.5) as sim:
        async with connect(sim.ws_market_url + "/ws/btcusdt@aggTrade") as ws:
            start = time.monotonic()
            with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                while True:
                    await asyncio.wait_for(ws.recv(), 3)
        assert 0.4 < time.monotonic() - start < 2.5


async def test_stream_on_the_wrong_path_gets_nothing(sim):
    async with (
        connect(sim.ws_market_url + "/stream?streams=btcusdt@bookTicker") as wrong,
        connect(sim.ws_public_url + "/stream?streams=btcusdt@bookTicker") as right,
    ):
        assert len(await _frames(right, 20)) == 20
        assert await _silence(wrong, 0.3) == []
        await wrong.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        assert await _reply(wrong, 1) == {"result": ["btcusdt@bookTicker"], "id": 1}


async def test_drop_cuts_connections_without_close_frame(sim):
    async with connect(sim.ws_market_url + "/ws/btcusdt@aggTrade") as ws:
        await _frames(ws, 2)
        async with aiohttp.ClientSession() as session, session.post(sim.rest_url + "/_sim/drop") as response:
            assert (await response.json())["dropped"] == 1
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as excinfo:
            while True:
                await asyncio.wait_for(ws.recv(), 3)
    assert excinfo.value.rcvd is None  # no close frame: the TCP connection was cut
    stats = sim.stats()
    assert stats["connections_closed_by_reason"].get("dropped") == 1


async def test_stall_keeps_connections_open_but_silent(sim):
    async with connect(sim.ws_public_url + "/ws/btcusdt@bookTicker") as ws:
        await _frames(ws, 3)
        sim.stall(0.8)
        await _silence(ws, 0.1)  # frames already in flight
        assert await _silence(ws, 0.5) == []
        await asyncio.sleep(0.3)
        assert len(await _frames(ws, 3)) == 3
        assert ws.state is websockets.protocol.State.OPEN


async def test_malformed_injection_of_every_kind(sim):
    kinds = ["truncated", "wrong_types", "negative_price", "nan", "crossed_book", "unknown_symbol", "time_backwards"]
    async with connect(sim.ws_public_url + "/stream?streams=btcusdt@bookTicker") as ws:
        await _frames(ws, 2)
        async with aiohttp.ClientSession() as session:
            for kind in kinds:
                async with session.post(f"{sim.rest_url}/_sim/malformed?count=2&kind={kind}") as response:
                    assert response.status == 200
        seen = dict.fromkeys(kinds, 0)
        max_time = 0
        for text in await _frames(ws, 300):
            try:
                frame = json.loads(text)
            except ValueError:
                seen["truncated"] += 1
                continue
            data = frame["data"]
            if data["s"] == "NOSUCHUSDT":
                seen["unknown_symbol"] += 1
            elif not isinstance(data["b"], str):
                seen["wrong_types"] += 1
            elif data["b"].startswith("-"):
                seen["negative_price"] += 1
            elif data["b"] == "NaN":
                seen["nan"] += 1
            elif Decimal(data["b"]) > Decimal(data["a"]):
                seen["crossed_book"] += 1
            elif data["E"] < max_time - 30_000:
                seen["time_backwards"] += 1
            max_time = max(max_time, data["E"] if isinstance(data["E"], int) else 0)
            if sum(seen.values()) == 2 * len(kinds):
                break
    assert seen == dict.fromkeys(kinds, 2)
    assert sim.stats()["malformed_injected"] == dict.fromkeys(kinds, 2)


async def test_stats_count_frames_per_stream_and_connection(sim):
    async with connect(sim.ws_market_url + "/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade") as ws:
        frames = [json.loads(f) for f in await _frames(ws, 30)]
        async with aiohttp.ClientSession() as session, session.get(sim.rest_url + "/_sim/stats") as response:
            stats = await response.json()
    (conn,) = stats["connections"]
    assert conn["streams"] == ["btcusdt@aggTrade", "ethusdt@aggTrade"]
    assert conn["frames_sent"] >= len(frames)
    assert sum(conn["frames_sent_by_stream"].values()) == conn["frames_sent"]
    assert stats["replay"]["position"] > 0 and stats["replay"]["clock_ms"] > 1_723_161_000_000


async def test_each_mode_sends_every_recorded_frame_once_per_connection():
    async with Simulator(recordings=(BTC_FILE,), replay_mode="each", speed=None) as sim:
        counts = sim.market.line_counts[BTC_FILE.name]
        url_market = sim.ws_market_url + "/stream?streams=btcusdt@trade"
        url_public = sim.ws_public_url + "/stream?streams=btcusdt@bookTicker/btcusdt@depth@0ms"

        async def drain(url: str) -> dict[str, int]:
            got: dict[str, int] = {}
            async with connect(url, max_size=None) as ws:
                while True:
                    try:
                        text = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        return got
                    stream = text[11 : text.index('"', 11)]
                    got[stream] = got.get(stream, 0) + 1

        market, public = await asyncio.gather(drain(url_market), drain(url_public))
    assert market == {"btcusdt@trade": 21_313}
    assert public == {"btcusdt@bookTicker": 66_089, "btcusdt@depth@0ms": 6_551}
    assert sum(market.values()) + sum(public.values()) == counts["stream_frames"] == counts["lines"] - 1
