"""The brain's wiring around the strategy: StreamSignals over gRPC, SMC zones for GetMarketState, price conflation,
the model hook, and the engine's warm-up and stale-candle rules."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from aegis import config
from aegis.analytics.smc_stream import FvgEvent, LiquidityEvent, OrderBlockEvent, StructureEvent, SwingEvent
from aegis.brain import settings as brain_settings
from aegis.brain.events import Candle, CandleClosed, EventBus, TickUpdate
from aegis.brain.model import ModelHook
from aegis.brain.prices import PendingPrice, PricePusher
from aegis.brain.servicer import Runtime, registration
from aegis.brain.signals import SignalHub
from aegis.brain.strategy import Signal
from aegis.brain.zones import SmcView
from aegis.server import ServiceContext, create_server
from aegis.v1 import market_pb2 as market_pb
from aegis.v1 import market_pb2_grpc as market_grpc

NAN = math.nan


def signal(i: int, symbol: str = "BTCUSDT", confidence: float = 0.7) -> Signal:
    from decimal import Decimal

    from aegis.brain import features as feat
    from aegis.brain.strategy import signal_id_for

    return Signal(
        signal_id=signal_id_for(symbol, "5m", 1_750_000_000_000 + i * 300_000, "LONG"),
        symbol=symbol,
        timeframe="5m",
        side="LONG",
        entry_price=Decimal("100.5"),
        sl_pct=1.0,
        tp_pct=2.0,
        confidence=confidence,
        predicted_return_pct=0.5,
        model_version="rules-v1",
        feature_schema_version=feat.FEATURE_SCHEMA_VERSION,
        features=tuple(float(j) for j in range(len(feat.names_of(feat.FEATURE_SCHEMA_VERSION)))),
        reasons=("SWEEP_SSL", "CHOCH_UP"),
        created_time_ns=(1_750_000_000_000 + i * 300_000) * 1_000_000,
        candle_open_time_ms=1_750_000_000_000 + i * 300_000,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def served_hub() -> AsyncIterator[tuple[SignalHub, market_grpc.MarketServiceStub]]:
    hub = SignalHub(None, queue_size=2)
    runtime = Runtime()
    runtime.hub = hub
    server, port, _ = create_server([registration(runtime)], "127.0.0.1", 0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield hub, market_grpc.MarketServiceStub(channel)
    finally:
        await server.stop(0)


async def wait_for_subscribers(hub: SignalHub, n: int) -> None:
    for _ in range(500):
        if hub.fanout.subscribers == n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{hub.fanout.subscribers} subscribers, expected {n}")


async def test_stream_signals_delivers_filtered_signals_with_complete_features(served_hub: Any) -> None:
    hub, stub = served_hub
    stream = stub.StreamSignals(market_pb.StreamSignalsRequest(symbols=["ethusdt"], include_features=True))
    await wait_for_subscribers(hub, 1)
    hub.publish(signal(1, "BTCUSDT"))
    hub.publish(signal(2, "ETHUSDT"))
    reply = await asyncio.wait_for(stream.read(), 5)
    s = reply.signal
    assert s.symbol == "ETHUSDT" and s.entry_price == "100.5" and list(s.reasons) == ["SWEEP_SSL", "CHOCH_UP"]
    assert len(s.features.names) == len(s.features.values) == 33 and s.features.schema_version == "1"
    stream.cancel()
    await wait_for_subscribers(hub, 0)  # the client went away: its subscription is closed


async def test_a_slow_stream_subscriber_is_dropped_with_resource_exhausted(served_hub: Any) -> None:
    hub, stub = served_hub
    stream = stub.StreamSignals(market_pb.StreamSignalsRequest())
    await wait_for_subscribers(hub, 1)
    for i in range(10, 14):  # queue of 2: the third one finds it full (the client reads nothing meanwhile)
        hub.publish(signal(i))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:
            await asyncio.wait_for(stream.read(), 5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "did not keep up" in caught.value.details() and hub.fanout.dropped >= 1


async def test_signal_requests_with_bad_fields_are_invalid_argument_naming_the_field(served_hub: Any) -> None:
    _, stub = served_hub
    for call, field in (
        (stub.StreamSignals(market_pb.StreamSignalsRequest(min_confidence=1.5)).read(), "min_confidence"),
        (stub.StreamSignals(market_pb.StreamSignalsRequest(symbols=["BTC-USDT"])).read(), "symbol"),
        (stub.ListSignals(market_pb.ListSignalsRequest(page_token="nope")), "page_token"),
        (stub.ListSignals(market_pb.ListSignalsRequest(timeframe=8)), "timeframe"),
        (stub.ListSignals(market_pb.ListSignalsRequest(page_size=-1)), "page_size"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"{field}:"), caught.value.details()


async def test_list_signals_pages_newest_first_from_memory(served_hub: Any) -> None:
    hub, stub = served_hub
    for i in range(20, 25):
        hub.publish(signal(i, "SOLUSDT"))
    first = await stub.ListSignals(market_pb.ListSignalsRequest(symbol="SOLUSDT", page_size=3))
    second = await stub.ListSignals(
        market_pb.ListSignalsRequest(symbol="SOLUSDT", page_size=3, page_token=first.next_page_token)
    )
    times = [s.created_time.ToNanoseconds() for s in [*first.signals, *second.signals]]
    assert len(times) == 5 and times == sorted(times, reverse=True) and second.next_page_token == ""
    assert not first.signals[0].HasField("features")  # only when asked: they are large


# ------------------------------------------------------------------------------------------------ SMC view


def test_the_smc_view_keeps_active_zones_mitigations_and_structure_from_events() -> None:
    view = SmcView("BTCUSDT:15m")
    open_ms = [1000 * i for i in range(20)]
    view.apply([FvgEvent(3, 2, 1, 110.0, 105.0, "formed")], open_ms)
    view.apply([OrderBlockEvent(5, 4, -1, 120.0, 118.0, 50.0, 42.5, "formed")], open_ms)
    view.apply([SwingEvent(6, 3, 1, 121.0), SwingEvent(7, 4, 1, 122.0, replaces=3)], open_ms)
    view.apply([LiquidityEvent(9, 1, -1, 99.0, 6, 2, None, "formed")], open_ms)
    view.apply([StructureEvent(10, 4, "BOS", 1, 122.0, 10, "broken")], open_ms)
    assert [(z.kind, z.direction, z.top, z.bottom, z.mitigated) for z in view.zones()] == [
        ("LIQUIDITY_POOL", -1, 99.0, 99.0, False),
        ("FAIR_VALUE_GAP", 1, 110.0, 105.0, False),
        ("ORDER_BLOCK", -1, 120.0, 118.0, False),
    ]
    ob = next(z for z in view.zones() if z.kind == "ORDER_BLOCK")
    assert ob.strength == 42.5 and ob.formed_time_ms == 4000 and ob.zone_id == "BTCUSDT:15m:ORDER_BLOCK:4000:bear"
    view.apply([FvgEvent(12, 2, 1, 110.0, 105.0, "mitigated", 12)], open_ms)
    assert [z.kind for z in view.zones()] == ["LIQUIDITY_POOL", "ORDER_BLOCK"]  # active only
    gap = next(z for z in view.zones(mitigated_since_ms=11_000) if z.kind == "FAIR_VALUE_GAP")
    assert gap.mitigated and gap.mitigated_time_ms == 12_000
    assert view.zones(mitigated_since_ms=13_000) == view.zones()  # mitigated before the candles shown: left out
    assert [(p.kind, p.level, p.event_time_ms, p.confirmed_time_ms) for p in view.structure()] == [
        ("BOS", 122.0, 4000, 10_000),
        ("SWING_HIGH", 122.0, 4000, 7000),  # the replaced swing (bar 3) is gone
    ]
    view.apply([StructureEvent(13, 4, "BOS", 1, 122.0, 10, "superseded")], open_ms)
    assert [p.kind for p in view.structure()] == ["SWING_HIGH"]


# ------------------------------------------------------------------------------------------------ prices


def tick(symbol: str, last: float, high: float, low: float, trades: int, mark: float, t: int) -> TickUpdate:
    return TickUpdate(symbol=symbol, event_time_ms=t, recv_time_ns=t, last_price=last, trade_high=high,
                      trade_low=low, trade_volume=1.0, trade_count=trades, bid_price=NAN, bid_qty=NAN, ask_price=NAN,
                      ask_qty=NAN, mark_price=mark, index_price=NAN, funding_rate=0.0001,
                      next_funding_time_ms=0)  # fmt: skip


class FlakyAccounts:
    def __init__(self, fail: grpc.StatusCode | None) -> None:
        self.fail = fail
        self.requests: list[Any] = []

    async def ApplyPriceUpdates(self, request: Any, timeout: float) -> Any:
        from aegis.v1 import virtual_account_pb2 as va_pb

        self.requests.append(request)
        if self.fail is not None:
            raise grpc.aio.AioRpcError(self.fail, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")
        return va_pb.ApplyPriceUpdatesResponse(positions_updated=len(request.updates))


async def test_prices_are_conflated_per_symbol_with_the_high_and_low_since_the_last_push() -> None:
    accounts = FlakyAccounts(grpc.StatusCode.UNAVAILABLE)
    bus = EventBus()
    pusher = PricePusher(bus, accounts, interval_s=1.0, timeout_s=1.0)
    bus.publish(tick("BTCUSDT", 100.0, 101.0, 99.5, 3, 100.2, 1))
    await bus.drain()
    bus.publish(tick("BTCUSDT", 100.5, 100.5, 98.0, 1, NAN, 2))  # a mark price not seen in this tick keeps the last
    bus.publish(tick("ETHUSDT", NAN, NAN, NAN, 0, 2600.0, 3))  # mark only: no trade, so no high/low
    await bus.drain()
    assert pusher.pending == 2 and not await pusher.push()  # UNAVAILABLE: put back for the next push
    pusher.on_tick(tick("BTCUSDT", 102.0, 102.5, 101.0, 2, 101.9, 4))
    accounts.fail = None
    assert await pusher.push()
    (request,) = accounts.requests[-1:]
    btc, eth = sorted(request.updates, key=lambda u: u.symbol)
    assert (btc.last_price, btc.high_price, btc.low_price, btc.mark_price) == ("102.0", "102.5", "98.0", "101.9")
    assert (eth.last_price, eth.high_price, eth.low_price, eth.mark_price) == ("", "", "", "2600.0")
    assert btc.event_time.ToMilliseconds() == 4 and btc.funding_rate == "0.0001"
    assert pusher.failures == {"UNAVAILABLE": 1} and pusher.pushes == 1 and pusher.pending == 0


def test_a_merged_pending_price_keeps_every_touched_price() -> None:
    a = PendingPrice.of(tick("X", 10.0, 12.0, 9.0, 5, 10.1, 1))
    b = PendingPrice.of(tick("X", 11.0, 11.5, 10.5, 1, 10.9, 2))
    merged = a.merge(b)
    assert (merged.last_price, merged.high_price, merged.low_price, merged.mark_price) == (11.0, 12.0, 9.0, 10.9)
    assert merged.updates == 2


# ------------------------------------------------------------------------------------------------ model hook


async def test_the_model_hook_runs_a_watcher_and_sets_the_predictor_on_each_reload() -> None:
    set_calls: list[Any] = []

    class Watcher:
        def __init__(self, db: Any, on_reload: Any) -> None:  # takes only what it names
            self.db, self.on_reload = db, on_reload

        async def run(self) -> None:
            self.on_reload(lambda features: (1.5, "m-7"), "m-7")
            self.on_reload(None)

    hook = ModelHook(set_calls.append, dependencies={"db": "DB", "cache": "C"}, watcher_cls=Watcher)
    await hook.run()
    assert len(set_calls) == 2 and set_calls[0](None) == (1.5, "m-7") and set_calls[1] is None
    assert hook.reloads == 2 and hook.version == "" and hook.state == "watching"

    class Broken:
        def __init__(self, needed: Any) -> None: ...

    hook = ModelHook(set_calls.append, watcher_cls=Broken)
    await hook.run()  # logged, rule-based: never a crash of the brain
    assert hook.state == "unusable"


async def test_the_learning_packages_watcher_is_found_and_built_or_the_brain_stays_rule_based() -> None:
    from aegis.brain import model

    cls = model.watcher_class()
    if not model.LEARNING_AVAILABLE:
        assert cls is None
        hook = ModelHook(lambda p: None)
        await hook.run()
        assert hook.state == "rules" and hook.version == ""
        return
    assert cls is not None and cls.__name__ == "ActiveModelWatcher"
    hook = ModelHook(lambda p: None, dependencies={"db": object(), "cache": None, "settings": None, "poll_s": 5.0})
    watcher = hook._build(cls)  # the constructor takes what the brain offers (nothing connects yet)
    assert callable(watcher.run)
    hook = ModelHook(lambda p: None, dependencies={"db": None, "cache": None})
    await hook.run()  # without PostgreSQL there is no active model to read
    assert hook.state == "no database"


# ------------------------------------------------------------------------------------------------ the engine


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def time_ns(self) -> int:
        return self.now_ms * 1_000_000

    def monotonic_ns(self) -> int:
        return self.now_ms * 1_000_000


def candle(open_ms: int, source: str = "stream", tf: str = "1h") -> CandleClosed:
    c = Candle(symbol="BTCUSDT", timeframe=tf, open_time_ms=open_ms, close_time_ms=open_ms + 3_599_999, open=1.0,
               high=2.0, low=0.5, close=1.5, volume=1.0, quote_volume=1.0, trade_count=1, taker_buy_volume=0.5,
               source=source)  # fmt: skip
    return CandleClosed(candle=c)


async def test_the_engine_feeds_the_strategy_only_warmed_up_symbols_and_never_emits_for_stale_candles(
    tmp_path: Path,
) -> None:
    from aegis.brain.engine import BrainEngine

    settings = config.load({"AEGIS_SYMBOLS": "BTCUSDT", "AEGIS_RING_PATH": str(tmp_path / "r.ring")})
    ctx = ServiceContext("brain", settings, None, None, dt.datetime.now(dt.UTC))
    hour = 3_600_000
    clock = Clock(100 * hour)
    engine = BrainEngine(ctx, brain_settings.load({"AEGIS_BRAIN_EXECUTION": "false"}), clock=clock)
    taken: list[tuple[int, bool]] = []
    engine.strategy.on_candle_closed = lambda event, emit=True: taken.append((event.candle.open_time_ms, emit)) or []
    engine._on_candle_closed(candle(90 * hour))
    assert taken == [] and engine.counts["candles_before_warm_up"] == 1
    engine.warmed.add("BTCUSDT")
    engine._on_candle_closed(candle(90 * hour))  # closed 9 h ago: re-read after a restart
    engine._on_candle_closed(candle(99 * hour - 30_000))  # closed 30 s ago
    engine._on_candle_closed(candle(50 * hour, source="replay"))  # a replay's times are the recording's
    assert taken == [(90 * hour, False), (99 * hour - 30_000, True), (50 * hour, True)]
    assert engine.counts["stale_candles"] == 1 and engine.executor.risk is None
    await engine.stop(0.1)
