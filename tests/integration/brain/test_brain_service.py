"""The brain as a real process: it waits for the feed's ring without blocking its port, then serves over gRPC."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import asyncpg
import grpc
import pytest
import redis

from aegis import testing
from aegis.core import records as rec
from aegis.core import ring
from aegis.storage import keys
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import market_pb2 as market_pb
from aegis.v1 import market_pb2_grpc as market_grpc

MIN = 60_000


def poll(fetch, accept, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s; last value: {value}")
        time.sleep(0.1)


async def stored(dsn: str, symbol: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT open_time, high::text, source FROM candles WHERE symbol = $1 AND timeframe = '1m' ORDER BY 1",
            symbol,
        )
    finally:
        await conn.close()


def test_the_brain_serves_before_the_ring_exists_then_builds_and_stores_candles_from_it(
    service_env: dict[str, str], tmp_path: Path, migrated_database_url: str, redis_url: str
) -> None:
    import asyncio

    ring_path = tmp_path / "shm" / "shard-0.ring"
    env = {
        **service_env,
        "AEGIS_RING_PATH": str(ring_path),
        "AEGIS_BRAIN_WRITE_INTERVAL_S": "0.05",
        "AEGIS_BRAIN_STATUS_INTERVAL_S": "0.3",
        "AEGIS_BRAIN_ATTACH_INTERVAL_S": "0.1",
        "AEGIS_BRAIN_QUIET_CLOSE_S": "5",
    }
    symbol = "SVCUSDT"
    with testing.service("brain", env, tmp_path) as proc, grpc.insecure_channel(proc.address) as channel:
        assert proc.wait_status("SERVING", 60), proc.log_text()  # no ring yet: waiting for the feed is not an error
        stub = market_grpc.MarketServiceStub(channel)
        status = stub.GetBrainStatus(market_pb.GetBrainStatusRequest(), timeout=5)
        assert list(status.shards) == [] and status.version

        ring_path.parent.mkdir(parents=True)
        writer = ring.create(ring_path, rec.MARKET_RECORD, 1 << 12, layout_name=rec.MARKET_RECORD_LAYOUT)
        sid = writer.add_symbol(symbol)
        minute = time.time_ns() // 1_000_000 // MIN * MIN - 3 * MIN

        def publish(record: bytes) -> None:
            writer.write_bytes(record[:24] + time.monotonic_ns().to_bytes(8, "little") + record[32:])

        publish(rec.pack_trade(sid, minute + 1_000, 0, 61800.3, 0.006, 1, 1, 1, minute + 1_000, False))
        publish(rec.pack_trade(sid, minute + 2_000, 0, 61800.4, 0.012, 2, 2, 2, minute + 2_000, True))
        publish(rec.pack_trade(sid, minute + MIN + 5, 0, 61790.0, 0.5, 3, 3, 3, minute + MIN + 5, False))
        publish(rec.pack_kline(sid, minute + MIN + 10, 0, minute, minute + MIN - 1, MIN, 61800.3, 61805.5, 61800.3,
                               61800.4, 0.02, 1236.0, 3, 0.008, True))  # fmt: skip

        poll(
            lambda: stub.GetBrainStatus(market_pb.GetBrainStatusRequest(), timeout=5),
            lambda r: len(r.shards) == 1 and r.symbol_count == 1,
        )
        request = market_pb.ListCandlesRequest(
            symbol=symbol, timeframe=common_pb.TIMEFRAME_1M, start_time={"seconds": minute // 1000}
        )
        reply = poll(
            lambda: stub.ListCandles(request, timeout=5),
            lambda r: len(r.candles) == 2 and all(c.closed for c in r.candles),  # the second one: quiet, timed out
        )
        first, second = reply.candles
        assert first.open_time.ToMilliseconds() == minute and first.close_time.ToMilliseconds() == minute + MIN - 1
        assert (first.open, first.high, first.low, first.close) == ("61800.3", "61805.5", "61800.3", "61800.4")
        assert (first.volume, first.trade_count, first.taker_buy_volume) == ("0.02", 3, "0.008")
        assert (second.open, second.volume, second.trade_count) == ("61790.0", "0.5", 1)

        status = stub.GetBrainStatus(market_pb.GetBrainStatusRequest(), timeout=5)
        (shard,) = status.shards
        assert shard.lag_records == 0 and shard.writer_epoch == writer.epoch and shard.lost_records == 0
        assert 0 < shard.lag.ToNanoseconds() < 30 * 10**9
        assert status.symbol_count == 1 and status.ticks_per_second > 0 and status.active_model_version == ""

        state = stub.GetMarketState(
            market_pb.GetMarketStateRequest(symbol=symbol, timeframe=common_pb.TIMEFRAME_1M), timeout=5
        )
        assert state.last_price == "61790.0" and len(state.candles) == 2
        # 1m is the strategy's trigger timeframe (the default): its indicators are there, still warming up (NaN)
        assert list(state.zones) == [] and state.indicators
        assert all(math.isnan(v) for indicator in state.indicators for v in indicator.values.values())
        assert list(stub.ListSignals(market_pb.ListSignalsRequest(), timeout=5).signals) == []

        for call, expected in (
            (lambda: stub.ListCandles(market_pb.ListCandlesRequest(symbol=symbol), timeout=5), "INVALID_ARGUMENT"),
            (
                lambda: stub.ListCandles(
                    market_pb.ListCandlesRequest(symbol="NOPEUSDT", timeframe=common_pb.TIMEFRAME_1M), timeout=5
                ),
                "NOT_FOUND",
            ),
            (lambda: stub.ListSignals(market_pb.ListSignalsRequest(page_token="x"), timeout=5), "INVALID_ARGUMENT"),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code().name == expected

        rows = poll(lambda: asyncio.run(stored(migrated_database_url, symbol)), lambda r: len(r) == 2)
        assert [(r["high"], r["source"]) for r in rows] == [("61805.5", "stream"), ("61790.0", "trades")]
        client = redis.Redis.from_url(redis_url)
        try:
            latest = client.hgetall(keys.latest_ohlcv(symbol, "1m"))
            assert latest[b"open_time"] == str(minute + MIN).encode()
            published = poll(
                lambda: client.get(keys.service_status("brain", "shard-0")),
                lambda raw: raw is not None and json.loads(raw)["persistence"]["backlog"] == 0,
            )
            details = json.loads(published)
            assert details["ring"]["state"] == "attached" and details["ring"]["records_processed"] == 4
            assert details["candles"]["klines_corrected"] == 1
        finally:
            client.close()
        assert proc.stop() == 0
        writer.close()
