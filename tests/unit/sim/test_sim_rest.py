"""REST endpoints: Binance shapes (checked against real responses), closed-only klines, errors, weights."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import aiohttp
import pytest

from aegis.sim import Simulator
from aegis.sim.config import default_exchange_info
from aegis.sim.klines import MINUTE_MS


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, object, aiohttp.typedefs.LooseHeaders]:
    async with session.get(url) as response:
        return response.status, await response.json(), response.headers


@pytest.fixture
async def finished_sim():
    """A simulator whose shared replay has run to the end of the recordings."""
    async with Simulator(speed=None, start_on_subscribe=False) as sim:
        await sim.wait_position(len(sim.market.timeline))
        yield sim


async def test_ping_time_and_exchange_info(finished_sim):
    sim = finished_sim
    async with aiohttp.ClientSession() as session:
        assert (await _get(session, sim.rest_url + "/fapi/v1/ping"))[:2] == (200, {})
        status, body, _ = await _get(session, sim.rest_url + "/fapi/v1/time")
        assert status == 200 and body == {"serverTime": sim.clock_ms}
        assert sim.clock_ms == int(sim.market.timeline.exch_ms.max())
        status, info, headers = await _get(session, sim.rest_url + "/fapi/v1/exchangeInfo")
    original = json.loads(default_exchange_info().read_text())
    assert status == 200 and "X-MBX-USED-WEIGHT-1M" in headers
    assert list(info) == list(original)
    assert info["rateLimits"] == original["rateLimits"]
    assert info["symbols"] == original["symbols"]
    assert info["serverTime"] == sim.clock_ms


async def test_kline_and_depth_shapes_match_real_binance_responses(finished_sim, ccxt_responses):
    sim = finished_sim
    async with aiohttp.ClientSession() as session:
        _, rows, _ = await _get(session, sim.rest_url + "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=3")
        _, book, _ = await _get(session, sim.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=5")
    real_rows = ccxt_responses["fetchOHLCV"]
    assert len(rows) == 3
    for row in rows:
        assert [type(v) for v in row] == [type(v) for v in real_rows[0]]
        assert row[6] == row[0] + MINUTE_MS - 1 and row[11] == "0"
        # Same decimals as Binance prints for BTCUSDT: price 2, volume 3, quote volume 5.
        assert [len(row[i].split(".")[1]) for i in (1, 2, 3, 4, 5, 7, 9, 10)] == [
            len(real_rows[0][i].split(".")[1]) for i in (1, 2, 3, 4, 5, 7, 9, 10)
        ]
    real_book = ccxt_responses["fetchOrderBook"]
    assert list(book) == list(real_book)
    assert all(isinstance(book[k], int) for k in ("lastUpdateId", "E", "T"))  # numbers per the Binance docs
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert all(isinstance(p, str) and isinstance(q, str) for p, q in book["bids"] + book["asks"])
    bids = [Decimal(p) for p, _ in book["bids"]]
    asks = [Decimal(p) for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]


async def test_depth_follows_the_recorded_diff_stream(finished_sim):
    tape = finished_sim.market.tapes["BTCUSDT"]
    book = finished_sim.state.book(tape, 1000)
    assert book["lastUpdateId"] == tape.depth_updates[-1].last_id > tape.snapshot["lastUpdateId"]


async def test_klines_return_closed_bars_and_the_open_one_only():
    async with Simulator(speed=200.0, start_on_subscribe=False) as sim:
        await sim.wait_position(100_000)
        sim.pause()
        now = sim.clock_ms
        async with aiohttp.ClientSession() as session:
            _, rows, _ = await _get(session, sim.rest_url + "/fapi/v1/klines?symbol=BTCUSDT&interval=1m")
            _, later, _ = await _get(session, sim.rest_url + "/fapi/v1/time")
        assert later["serverTime"] == now  # paused clock
        assert rows, "bars expected half way through the recording"
        assert all(r[0] % MINUTE_MS == 0 for r in rows)
        assert all(r[6] < now for r in rows[:-1])  # closed
        assert rows[-1][0] <= now  # the open bar, not a future one
        opens = [r[0] for r in rows]
        assert opens == list(range(opens[0], opens[-1] + 1, MINUTE_MS))  # no gaps
        # The open bar holds exactly the trades released so far.
        tape = sim.market.tapes["BTCUSDT"]
        released = [t for t, i in zip(tape.trades, tape.trade_index, strict=True) if i < sim.state.replay.position]
        assert sum(r[8] for r in rows) == len(released)


async def test_rolled_up_klines_match_the_1m_klines(finished_sim):
    sim = finished_sim
    async with aiohttp.ClientSession() as session:
        _, ones, _ = await _get(session, sim.rest_url + "/fapi/v1/klines?symbol=ETHUSDT&interval=1m")
        _, fives, _ = await _get(session, sim.rest_url + "/fapi/v1/klines?symbol=ETHUSDT&interval=5m")
    assert all(r[0] % (5 * MINUTE_MS) == 0 for r in fives)
    for five in fives:
        group = [r for r in ones if five[0] <= r[0] < five[0] + 5 * MINUTE_MS]
        assert five[1] == group[0][1] and five[4] == group[-1][4]
        assert Decimal(five[2]) == max(Decimal(r[2]) for r in group)
        assert Decimal(five[3]) == min(Decimal(r[3]) for r in group)
        assert Decimal(five[5]) == sum(Decimal(r[5]) for r in group)
        assert five[8] == sum(r[8] for r in group)
        assert five[6] == five[0] + 5 * MINUTE_MS - 1


async def test_csv_klines_limits_alignment_and_time_windows():
    async with Simulator(kline_source="csv", speed=None, start_on_subscribe=True) as sim:
        now = sim.clock_ms
        base = sim.rest_url + "/fapi/v1/klines?symbol=BTCUSDT"
        async with aiohttp.ClientSession() as session:
            _, default, _ = await _get(session, base + "&interval=1m")
            _, capped, headers = await _get(session, base + "&interval=1m&limit=2000")
            start = default[0][0]
            _, window, _ = await _get(session, f"{base}&interval=1m&startTime={start + 1}&limit=3")
            _, hours, _ = await _get(session, base + "&interval=1h&limit=5")
            _, minutes, _ = await _get(session, f"{base}&interval=1m&startTime={hours[-2][0]}&limit=60")
        assert len(default) == 500 and len(capped) == 1441  # 1 day of closed history + the open bar (<= 1500)
        assert default[-1][0] <= now < default[-1][6] + 1  # the open bar
        assert float(default[-1][5]) == 0.0  # CSV: the open bar is flat at its open (no intra-minute data)
        assert all(r[6] < now for r in default[:-1])
        assert [r[0] for r in window] == [start + MINUTE_MS * i for i in (1, 2, 3)]
        assert all(r[0] % 3_600_000 == 0 for r in hours)
        assert Decimal(hours[-2][5]) == sum(Decimal(r[5]) for r in minutes)
        assert headers["X-MBX-USED-WEIGHT-1M"]


async def test_errors_are_binance_shaped(finished_sim):
    base = finished_sim.rest_url
    cases = {
        "/fapi/v1/klines?symbol=NOPEUSDT&interval=1m": (400, -1121, "Invalid symbol."),
        "/fapi/v1/klines?symbol=BTCUSDT&interval=7m": (400, -1120, "Invalid interval."),
        "/fapi/v1/klines?interval=1m": (400, -1102, None),
        "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=abc": (400, -1100, None),
        "/fapi/v1/depth?symbol=BTCUSDT&limit=7": (400, -1130, None),
        "/fapi/v1/depth?symbol=nope": (400, -1121, "Invalid symbol."),
    }
    async with aiohttp.ClientSession() as session:
        for path, (status, code, msg) in cases.items():
            got_status, body, _ = await _get(session, base + path)
            assert got_status == status and body["code"] == code, path
            assert set(body) == {"code", "msg"}
            if msg:
                assert body["msg"] == msg
        # A valid symbol without recorded data answers an empty list, as a symbol with no trades would.
        assert (await _get(session, base + "/fapi/v1/klines?symbol=SOLUSDT&interval=1m"))[1] == []


async def test_request_weight_header_and_429():
    if time.time() % 60 > 55:  # keep all calls inside one weight minute
        time.sleep(60 - time.time() % 60 + 0.1)
    async with Simulator(speed=None, start_on_subscribe=True, weight_limit_per_minute=40) as sim:
        base = sim.rest_url + "/fapi/v1"
        used = []
        async with aiohttp.ClientSession() as session:
            for path in (
                "/ping",
                "/klines?symbol=BTCUSDT&interval=1m&limit=1000",
                "/klines?symbol=BTCUSDT&interval=1m&limit=1500",
                "/klines?symbol=BTCUSDT&interval=1m&limit=99",
                "/depth?symbol=BTCUSDT&limit=5",
                "/depth?symbol=BTCUSDT&limit=100",
                "/exchangeInfo",
            ):
                status, _, headers = await _get(session, base + path)
                assert status == 200
                used.append(int(headers["X-MBX-USED-WEIGHT-1M"]))
            status, body, headers = await _get(session, base + "/depth?symbol=BTCUSDT&limit=1000")
        assert [b - a for a, b in zip([0, *used], used, strict=False)] == [1, 5, 10, 1, 2, 5, 1]
        assert status == 429 and body["code"] == -1003
        assert int(headers["X-MBX-USED-WEIGHT-1M"]) == used[-1] + 20
        assert 0 < int(headers["Retry-After"]) <= 60


async def test_premium_index_derives_from_the_last_trade(finished_sim):
    async with aiohttp.ClientSession() as session:
        status, body, _ = await _get(session, finished_sim.rest_url + "/fapi/v1/premiumIndex?symbol=ETHUSDT")
        _, every, _ = await _get(session, finished_sim.rest_url + "/fapi/v1/premiumIndex")
    tape = finished_sim.market.tapes["ETHUSDT"]
    assert status == 200
    assert Decimal(body["markPrice"]) == tape.trades[-1].price
    assert set(body) == {
        "symbol",
        "markPrice",
        "indexPrice",
        "estimatedSettlePrice",
        "lastFundingRate",
        "interestRate",
        "nextFundingTime",
        "time",
    }
    assert body["nextFundingTime"] % (8 * 3600 * 1000) == 0 and body["nextFundingTime"] > body["time"]
    assert [p["symbol"] for p in every] == ["BTCUSDT", "ETHUSDT"]
