"""MarketService logic (aegis.brain.market) and its gRPC translation (aegis.brain.servicer), without storage."""

from __future__ import annotations

import grpc
import pytest

from aegis.brain.candles import CandleBook
from aegis.brain.events import Candle
from aegis.brain.market import MarketQueries
from aegis.brain.servicer import Runtime, registration
from aegis.errors import DependencyUnavailable, NotFoundError, ValidationError
from aegis.server import create_server
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import market_pb2 as market_pb
from aegis.v1 import market_pb2_grpc as market_grpc

MIN = 60_000
T0 = 1_749_168_000_000  # 2025-06-06 00:00 UTC


class FixedClock:
    def time_ns(self) -> int:
        return (T0 + 2000 * MIN) * 1_000_000

    def monotonic_ns(self) -> int:
        return 0


def candle(i: int, price: float = 100.0) -> Candle:
    return Candle(symbol="BTCUSDT", timeframe="1m", open_time_ms=T0 + i * MIN, close_time_ms=T0 + (i + 1) * MIN - 1,
                  open=price, high=price + 0.5, low=price - 0.5, close=price + 0.25, volume=0.018000000000000002,
                  quote_volume=1.5, trade_count=3, taker_buy_volume=0.006, source="stream")  # fmt: skip


@pytest.fixture
def queries() -> MarketQueries:
    book = CandleBook(history=2048)
    book.load([candle(i, 100.0 + i) for i in range(1200)])
    book.rebuild("BTCUSDT")
    return MarketQueries(book, None, configured_symbols=("ETHUSDT",), clock=FixedClock())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"symbol": ""}, "symbol"),
        ({"symbol": "BTC/USDT"}, "symbol"),
        ({"timeframe": common_pb.TIMEFRAME_UNSPECIFIED}, "timeframe"),
        ({"timeframe": common_pb.TIMEFRAME_4H}, "timeframe"),
        ({"page_size": -1}, "page_size"),
        ({"start_ms": T0 + MIN, "end_ms": T0}, "end_time"),
        ({"start_ms": -5}, "start_time"),
        ({"page_token": "not a token"}, "page_token"),
    ],
)
async def test_invalid_list_candles_arguments_name_the_field(queries: MarketQueries, kwargs: dict, field: str) -> None:
    args = {"symbol": "BTCUSDT", "timeframe": common_pb.TIMEFRAME_1M, "start_ms": None, "end_ms": None, **kwargs}
    with pytest.raises(ValidationError) as caught:
        await queries.list_candles(**args)
    assert caught.value.field == field


async def test_an_unknown_symbol_is_not_found_and_a_configured_one_is_known(queries: MarketQueries) -> None:
    with pytest.raises(NotFoundError):
        await queries.list_candles("DOGEUSDT", common_pb.TIMEFRAME_1M, None, None)
    page = await queries.list_candles("ethusdt", common_pb.TIMEFRAME_1M, None, None)
    assert page.candles == [] and page.next_page_token == ""


async def test_candles_page_oldest_first_and_a_token_only_fits_its_own_request(queries: MarketQueries) -> None:
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = await queries.list_candles("BTCUSDT", common_pb.TIMEFRAME_1M, T0 + 100 * MIN, None, 500, token)
        seen += [c.open_time_ms for c in page.candles]
        pages += 1
        token = page.next_page_token
        if not token:
            break
        with pytest.raises(ValidationError) as caught:
            await queries.list_candles("BTCUSDT", common_pb.TIMEFRAME_5M, T0 + 100 * MIN, None, 500, token)
        assert caught.value.field == "page_token"
    assert pages == 3 and seen == [T0 + i * MIN for i in range(100, 1200)]
    page = await queries.list_candles("BTCUSDT", common_pb.TIMEFRAME_1M, T0, T0 + 10 * MIN, 99_999)
    assert len(page.candles) == 10 and page.next_page_token == ""  # page sizes above the maximum are clamped


async def test_market_state_returns_recent_candles_and_no_made_up_analytics(queries: MarketQueries) -> None:
    state = await queries.market_state("BTCUSDT", common_pb.TIMEFRAME_5M, 3)
    assert [c.open_time_ms for c in state.candles] == [T0 + i * 5 * MIN for i in range(237, 240)]
    assert all(c.closed for c in state.candles)
    assert state.last_price != state.last_price  # NaN: no trade seen yet, so no price is invented
    with pytest.raises(ValidationError) as caught:
        await queries.market_state("BTCUSDT", common_pb.TIMEFRAME_5M, -1)
    assert caught.value.field == "limit"


async def test_the_servicer_translates_and_maps_errors_to_status_codes(queries: MarketQueries) -> None:
    runtime = Runtime()
    server, port, _ = create_server([registration(runtime)], "127.0.0.1", 0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = market_grpc.MarketServiceStub(channel)
            request = market_pb.ListCandlesRequest(symbol="BTCUSDT", timeframe=common_pb.TIMEFRAME_1M, page_size=2)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListCandles(request)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # still starting
            runtime.queries = queries
            reply = await stub.ListCandles(request)
            assert [c.open for c in reply.candles] == ["100.0", "101.0"]
            assert reply.candles[0].volume == "0.018" and reply.candles[0].taker_buy_volume == "0.006"
            assert reply.candles[0].close_time.ToMilliseconds() == T0 + MIN - 1 and reply.candles[0].closed
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListCandles(market_pb.ListCandlesRequest(symbol="BTCUSDT", timeframe=common_pb.TIMEFRAME_4H))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details().startswith("timeframe:")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetMarketState(market_pb.GetMarketStateRequest(symbol="XYZUSDT", timeframe=1))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListSignals(market_pb.ListSignalsRequest())
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # no signal hub yet: still starting
            status = await stub.GetBrainStatus(market_pb.GetBrainStatusRequest())
            assert list(status.shards) == [] and status.symbol_count == 1 and status.active_model_version == ""
            assert list(status.timeframes) == [1, 3, 4, 6, 12]
    finally:
        await server.stop(0)


async def test_without_postgresql_only_what_memory_holds_is_served(queries: MarketQueries) -> None:
    class DownStore:
        async def range(self, *args: object) -> list[Candle]:
            raise DependencyUnavailable("down")

        async def has_symbol(self, symbol: str) -> bool:
            raise DependencyUnavailable("down")

    queries.store = DownStore()  # type: ignore[assignment]
    page = await queries.list_candles("BTCUSDT", common_pb.TIMEFRAME_1M, T0 + 1100 * MIN, None)
    assert len(page.candles) == 100
    with pytest.raises(DependencyUnavailable):
        await queries.list_candles("BTCUSDT", common_pb.TIMEFRAME_1M, T0 - 10 * MIN, None)
