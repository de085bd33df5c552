"""The brain's execution path end to end over real gRPC: ring → candles → strategy → signal → RiskService (real, in
process, on real PostgreSQL with the real exchange rules) → VirtualAccountService (a fake keeping idempotency the
way the real one promises), plus ApplyPriceUpdates batches, MarketService signals and market state.

Records: the real ETHUSDT 1m klines (2025-06), each minute preceded by a mark price record at its close, through a
real ring. The brain, risk and the test share a virtual clock set one second after the second signal of those
klines (1m trigger, no zone needed, no cooldown): the first signal, a day older, must not be emitted (a stale
candle re-read from the ring), the second must be executed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2

from aegis import config, testing
from aegis.brain import settings as brain_settings
from aegis.brain.events import EventBus, SignalGenerated
from aegis.brain.execution import Executor, open_key, rotate_key
from aegis.brain.servicer import Runtime, registration
from aegis.brain.strategy import Strategy, signal_id_for
from aegis.core import records as rec
from aegis.core import ring
from aegis.risk.testing import FakeAccount, FakeVirtualAccounts, grpc_server, risk_server, store_rules_files
from aegis.server import ServiceContext
from aegis.storage.cache import Cache
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import market_pb2 as market_pb
from aegis.v1 import market_pb2_grpc as market_grpc
from aegis.v1 import risk_pb2_grpc as risk_grpc
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

MIN = 60_000
SYMBOL = "ETHUSDT"
NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"
LOOPBACK = {"AEGIS_BINANCE_REST_URL": "http://127.0.0.1:9"}  # tests never reach the real exchange
LOOSE_ENV = {
    "AEGIS_STRATEGY_TRIGGER_TIMEFRAME": "1m",
    "AEGIS_STRATEGY_REQUIRE_ZONE": "false",
    "AEGIS_STRATEGY_COOLDOWN_S": "0",
}


# ------------------------------------------------------------------------------------------------ the fakes


class VirtualClock:
    """Wall-clock time moved to ``start_ns`` when :meth:`start` is called (monotonic time stays real)."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def start(self, start_ns: int) -> None:
        self.offset_ns = time.time_ns() - start_ns

    def time_ns(self) -> int:
        return time.time_ns() - self.offset_ns

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time_ns() / 1e9, dt.UTC)


def stamp_ms(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


class FakeAccounts(FakeVirtualAccounts):
    """GetAccount/ListPositions (for risk) plus OpenPosition/ClosePosition with idempotency keys, and
    ApplyPriceUpdates recording its batches. ``lose_first_reply``: accounts whose first OpenPosition is applied but
    answered UNAVAILABLE (a reply lost on the way), so the brain must retry with the same key."""

    def __init__(self, accounts: dict[str, FakeAccount], lose_first_reply: set[str] | None = None) -> None:
        super().__init__(accounts)
        self.opens: list[va_pb.OpenPositionRequest] = []
        self.closes: list[va_pb.ClosePositionRequest] = []
        self.by_key: dict[str, tuple[Any, Any]] = {}
        self.price_batches: list[list[va_pb.PriceUpdate]] = []
        self.lose_first_reply = set(lose_first_reply or ())
        self.counter = 0

    async def OpenPosition(self, request: va_pb.OpenPositionRequest, context: grpc.aio.ServicerContext) -> Any:
        self.opens.append(request)
        seen = self.by_key.get(request.idempotency_key)
        if seen is not None:
            if seen[0] != request:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, "idempotency key reused with other fields")
            return va_pb.OpenPositionResponse(position=seen[1], replayed=True)
        self.counter += 1
        position = common_pb.Position(
            position_id=f"pos-{self.counter}",
            account=request.account,
            symbol=request.symbol,
            side=request.side,
            status=common_pb.POSITION_STATUS_OPEN,
            quantity=request.quantity,
            entry_price="2600",
            mark_price="2600",
            leverage=request.leverage,
            stop_loss_price=request.stop_loss_price,
            take_profit_price=request.take_profit_price,
            signal_id=request.signal_id,
            confidence=request.confidence,
            model_version=request.model_version,
            opened_time=stamp_ms(1_700_000_000_000),
            fees="0.5",
        )
        self.by_key[request.idempotency_key] = (request, position)
        self.accounts[request.account].positions.append(position)
        if request.account in self.lose_first_reply:
            self.lose_first_reply.discard(request.account)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "reply lost (the position was opened)")
        return va_pb.OpenPositionResponse(position=position)

    async def ClosePosition(self, request: va_pb.ClosePositionRequest, context: grpc.aio.ServicerContext) -> Any:
        self.closes.append(request)
        account = self.accounts[request.account]
        held = [p for p in account.positions if p.position_id == request.position_id]
        if not held:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no open position {request.position_id}")
        account.positions.remove(held[0])
        closed = common_pb.Position()
        closed.CopyFrom(held[0])
        closed.status = common_pb.POSITION_STATUS_CLOSED
        closed.exit_price = held[0].mark_price
        closed.close_reason = request.reason
        trade = common_pb.Trade(position_id=closed.position_id, exit_price=closed.exit_price, fees="1")
        return va_pb.ClosePositionResponse(position=closed, trade=trade)

    async def ApplyPriceUpdates(self, request: va_pb.ApplyPriceUpdatesRequest, context: Any) -> Any:
        self.price_batches.append(list(request.updates))
        return va_pb.ApplyPriceUpdatesResponse(positions_updated=len(request.updates))


# ------------------------------------------------------------------------------------------------ the data


def kline_and_mark_records(shared_data: Path, last: int) -> tuple[list[bytes], list[int]]:
    """Records of the real ETHUSDT 1m klines 0..last: a mark price at each close, then the closed kline."""
    df = pd.read_csv(shared_data / "binance/signalbot/data" / f"{SYMBOL}_1m.csv", parse_dates=["open_time"]).iloc[
        : last + 1
    ]
    opens = ((pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).tolist()
    out = []
    for t, r in zip(opens, df.itertuples(index=False), strict=True):
        close_ms = int(t) + MIN - 1
        out.append(rec.pack_mark_price(0, close_ms, 0, r.close, r.close, r.close, 0.0001, close_ms + 1))
        volume, taker = r.volume, r.taker_buy_base_asset_volume
        kline = (0, int(t) + MIN, 0, int(t), close_ms, MIN, r.open, r.high, r.low, r.close, volume, volume * r.close)
        out.append(rec.pack_kline(*kline, 1, taker, True))
    return out, [int(t) for t in opens]


def stamped(record: bytes) -> bytes:
    """The record with the receive time of now (CLOCK_MONOTONIC, as the feed stamps it)."""
    return record[:24] + time.monotonic_ns().to_bytes(8, "little") + record[32:]


@pytest.fixture(scope="module")
def signals_in_the_klines(shared_data: Path) -> list[Any]:
    """The signals the strategy makes on the ETHUSDT klines with the loose rules (computed offline)."""
    from aegis.brain.candles import CandleBook

    settings = config.load(LOOSE_ENV).strategy
    records, _ = kline_and_mark_records(shared_data, 3500)
    book = CandleBook(history=64, symbol_capacity=1)
    book.symbol_index(SYMBOL)
    batch = np.frombuffer(b"".join(records), dtype=rec.MARKET_RECORD).copy()
    strategy = Strategy(settings)
    out = []
    for event in book.process(batch, np.zeros(len(batch), dtype=np.int64)):
        out += strategy.on_candle_closed(event)
    return out


@pytest.fixture(scope="module")
def rules_dsn(admin_dsn: str, shared_data: Path) -> Iterator[str]:
    dsn = testing.create_database_sync(admin_dsn, "aegis_brain_exec")

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        db = Database(dsn)
        await store_rules_files(db, None, shared_data / NOV, shared_data / TIERS)
        await db.close()

    asyncio.run(run())
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


def paper_with_one_weak_position() -> dict[str, FakeAccount]:
    btc = common_pb.Position(
        position_id="p-btc",
        account="paper",
        symbol="BTCUSDT",
        side=common_pb.POSITION_SIDE_LONG,
        quantity="0.01",
        entry_price="100000",
        mark_price="100000",
        leverage=5,
        opened_time=stamp_ms(1_749_400_000_000),
        confidence=0.1,
    )
    return {"learning": FakeAccount("10000"), "paper": FakeAccount("10000", [btc])}


@dataclasses.dataclass
class Stack:
    engine: Any
    fake: FakeAccounts
    clock: VirtualClock
    market: market_grpc.MarketServiceStub
    ring_path: Path


@pytest_asyncio.fixture(loop_scope="session")
async def stack(rules_dsn: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    from aegis.brain.engine import BrainEngine

    clock = VirtualClock()
    fake = FakeAccounts(paper_with_one_weak_position(), lose_first_reply={"paper"})
    ring_path = tmp_path / "shard-0.ring"
    async with grpc_server([fake.registration()]) as va_address:
        env = {
            "DATABASE_URL": rules_dsn,
            "REDIS_URL": redis_url,
            "AEGIS_HOME": str(tmp_path / "home"),
            "AEGIS_RING_PATH": str(ring_path),
            "AEGIS_SYMBOLS": SYMBOL,
            "AEGIS_VIRTUAL_ACCOUNT_ADDRESS": va_address,
            "AEGIS_RISK_FETCH_RULES": "false",
            "AEGIS_RISK_RULES_RELOAD_S": "3600",
            "AEGIS_RISK_MAX_OPEN_POSITIONS": "1",
            **LOOPBACK,
            **LOOSE_ENV,
        }
        settings = config.load(env)
        async with risk_server(settings, clock=clock.now) as risk:
            await risk.wait_rules()
            settings = config.load({**env, "AEGIS_RISK_ADDRESS": risk.address})
            brain = brain_settings.load(
                {
                    "AEGIS_BRAIN_WRITE_INTERVAL_S": "0.05",
                    "AEGIS_BRAIN_ATTACH_INTERVAL_S": "0.05",
                    "AEGIS_BRAIN_QUIET_CLOSE_S": "0",
                    "AEGIS_BRAIN_PRICE_PUSH_MS": "50",
                    "AEGIS_BRAIN_RETRY_BASE_S": "0.02",
                    "AEGIS_BRAIN_HYDRATE_CANDLES": "50",
                }
            )
            db = Database(rules_dsn)
            cache = Cache(redis_url)
            ctx = ServiceContext("brain", settings, db, cache, dt.datetime.now(dt.UTC))
            engine = BrainEngine(ctx, brain, clock=clock)
            runtime = Runtime()
            runtime.queries, runtime.hub = engine.queries, engine.hub
            task = asyncio.create_task(engine.run())
            try:
                async with (
                    grpc_server([registration(runtime)]) as brain_address,
                    grpc.aio.insecure_channel(brain_address) as channel,
                ):
                    yield Stack(engine, fake, clock, market_grpc.MarketServiceStub(channel), ring_path)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await engine.stop(1.0)
                await db.close()
                await cache.close()


async def until(check: Any, timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------------------------ the tests


async def test_a_signal_from_the_ring_opens_a_learning_and_a_rotated_paper_position_exactly_once(
    stack: Stack, shared_data: Path, signals_in_the_klines: list[Any]
) -> None:
    first, second = signals_in_the_klines[:2]
    assert second.created_time_ns - first.created_time_ns > 86_400 * 10**9 // 2  # the first is long stale by then
    assert second.predicted_return_pct > 0.1 and second.side == "LONG"  # covers the fees: paper can take it
    engine, fake = stack.engine, stack.fake
    await until(lambda: SYMBOL in engine.warmed, what="warm-up of the configured symbol")
    stream = stack.market.StreamSignals(market_pb.StreamSignalsRequest(symbols=[SYMBOL], include_features=True))

    index = next(
        i for i, t in enumerate(kline_and_mark_records(shared_data, 3500)[1]) if t == second.candle_open_time_ms
    )
    records, _ = kline_and_mark_records(shared_data, index)
    stack.clock.start(second.created_time_ns + 10**9)
    stack.ring_path.parent.mkdir(parents=True, exist_ok=True)
    writer = ring.create(stack.ring_path, rec.MARKET_RECORD, 1 << 14, layout_name=rec.MARKET_RECORD_LAYOUT)
    try:
        assert writer.add_symbol(SYMBOL) == 0
        for record in records:
            writer.write_bytes(stamped(record))

        # StreamSignals delivers the signal, with its complete feature vector
        delivered = await asyncio.wait_for(stream.read(), 30)
        s = delivered.signal
        assert s.signal_id == second.signal_id == signal_id_for(SYMBOL, "1m", second.candle_open_time_ms, "LONG")
        assert len(s.features.values) == len(s.features.names) == 33 and all(np.isfinite(s.features.values))
        assert s.model_version == "rules-v1" and s.predicted_return_pct == pytest.approx(second.predicted_return_pct)
        await until(lambda: engine.executor.counts["paper_replayed"] + engine.executor.counts["paper_opened"] == 1,
                    what="the paper position")  # fmt: skip
        assert await engine.executor.idle()
        counts = engine.executor.counts
        assert engine.counts["stale_candles"] > 1000 and engine.hub.published == 1  # the day-old signal: not emitted

        # learning: sized by risk (SizeOrder, no gates) and opened under <signal id>:learning
        learning = [r for r in fake.opens if r.account == "learning"]
        assert [r.idempotency_key for r in learning] == [open_key(second.signal_id, "learning")]
        assert learning[0].signal_id == second.signal_id and learning[0].features.values == s.features.values
        assert learning[0].stop_loss_price and learning[0].take_profit_price and learning[0].leverage >= 1
        assert counts["learning_opened"] == 1

        # paper: approved with a REPLACE rotation: p-btc closed first (ROTATED), then the position opened; the first
        # reply was lost (UNAVAILABLE after the open), the retry reused the key and opened nothing new
        assert [(c.idempotency_key, c.position_id, c.reason) for c in fake.closes] == [
            (rotate_key(second.signal_id, "paper", "p-btc"), "p-btc", common_pb.CLOSE_REASON_ROTATED)
        ]
        paper = [r for r in fake.opens if r.account == "paper"]
        assert [r.idempotency_key for r in paper] == [open_key(second.signal_id, "paper")] * 2
        assert [p.symbol for p in fake.accounts["paper"].positions] == [SYMBOL]
        assert counts["rotations"] == 1 and counts["paper_replayed"] == 1 and counts["paper_opened"] == 0
        assert engine.executor.stats.rpcs["VirtualAccountService.OpenPosition"]["retries"] == 1
        assert paper[0].decision_id and paper[0].confidence == pytest.approx(second.confidence)

        # the same signal again (a restart re-emitting it, a retried delivery): the same keys, nothing new opened
        engine.executor.on_signal(second.to_event())
        assert await engine.executor.idle()
        assert len(fake.accounts["learning"].positions) == 1 and len(fake.accounts["paper"].positions) == 1
        # learning: sized again with another decision id, so virtual-account answers ALREADY_EXISTS for the key
        assert counts["learning_replayed"] == 1 and counts["orders_duplicate"] == 1
        assert counts["paper_refused"] == 1  # paper: risk sees the position now held (POSITION_EXISTS)
        assert engine.executor.refusals["POSITION_EXISTS"] == 1

        # prices: mark prices reached ApplyPriceUpdates, one update per symbol per batch
        await until(lambda: fake.price_batches, what="a price batch")
        assert all(len({u.symbol for u in batch}) == len(batch) for batch in fake.price_batches)
        # a burst of trades within one push interval arrives conflated: latest price, high and low of all
        before = len(fake.price_batches)
        trade_ms = second.candle_open_time_ms + MIN + 500
        for i, price in enumerate((2600.0, 2612.5, 2590.25, 2601.0)):
            writer.write_bytes(stamped(rec.pack_trade(0, trade_ms + i, 0, price, 0.1, 9000 + i, 9000 + i,
                                                      9000 + i, trade_ms + i, False)))  # fmt: skip
        await until(lambda: any(u.last_price == "2601.0" for b in fake.price_batches[before:] for u in b),
                    what="the trades' batch")  # fmt: skip
        update = next(u for b in fake.price_batches[before:] for u in b if u.last_price == "2601.0")
        assert (update.high_price, update.low_price) == ("2612.5", "2590.25")
        assert update.mark_price and update.funding_rate == "0.0001" and update.HasField("event_time")

        # MarketService: the signal is listed, and the market state has indicators and SMC zones
        listed = await stack.market.ListSignals(market_pb.ListSignalsRequest(symbol=SYMBOL, include_features=True))
        assert [x.signal_id for x in listed.signals] == [second.signal_id] and len(
            listed.signals[0].features.values
        ) == 33
        state = await stack.market.GetMarketState(
            market_pb.GetMarketStateRequest(symbol=SYMBOL, timeframe=common_pb.TIMEFRAME_15M, limit=200)
        )
        names = [i.name for i in state.indicators]
        assert names == ["SMA", "EMA", "RSI", "ATR", "MACD", "BBANDS", "ADX"]
        rsi = state.indicators[2]
        assert rsi.params["period"] == 14 and 0 < rsi.values["value"] < 100
        assert set(state.indicators[4].values) == {"macd", "signal", "hist"}
        kinds = {z.kind for z in state.zones}
        assert kinds & {market_pb.SMC_ZONE_KIND_ORDER_BLOCK, market_pb.SMC_ZONE_KIND_FAIR_VALUE_GAP}
        for zone in state.zones:
            assert float(zone.top) >= float(zone.bottom) > 0 and zone.zone_id and zone.HasField("formed_time")
            assert zone.mitigated == zone.HasField("mitigated_time")
        assert state.structure_events and all(
            e.confirmed_time.ToMilliseconds() >= e.event_time.ToMilliseconds() for e in state.structure_events
        )
        status = await stack.market.GetBrainStatus(market_pb.GetBrainStatusRequest())
        assert status.signals_total == 1 and status.last_signal_time.ToNanoseconds() == second.created_time_ns
    finally:
        stream.cancel()
        writer.close()


async def test_live_mode_places_nothing_on_the_live_account_and_says_so(
    rules_dsn: str, redis_url: str, signals_in_the_klines: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    signal = signals_in_the_klines[1]
    clock = VirtualClock()
    clock.start(signal.created_time_ns + 10**9)
    fake = FakeAccounts({"learning": FakeAccount("10000"), "paper": FakeAccount("10000"), "live": FakeAccount("1")})
    async with grpc_server([fake.registration()]) as va_address:
        env = {"DATABASE_URL": rules_dsn, "REDIS_URL": redis_url, "AEGIS_VIRTUAL_ACCOUNT_ADDRESS": va_address,
               "AEGIS_RISK_FETCH_RULES": "false", **LOOPBACK}  # fmt: skip
        async with (
            risk_server(config.load(env), clock=clock.now) as risk,
            grpc.aio.insecure_channel(risk.address) as risk_channel,
            grpc.aio.insecure_channel(va_address) as va_channel,
        ):
            await risk.wait_rules()
            bus = EventBus()
            price = float(signal.entry_price)
            executor = Executor(
                bus,
                risk=risk_grpc.RiskServiceStub(risk_channel),
                accounts=va_grpc.VirtualAccountServiceStub(va_channel),
                marks=lambda symbol: (price, signal.created_time_ns // 10**6),
                mode="live",
            )
            tasks = [asyncio.create_task(bus.run()), asyncio.create_task(executor.run())]
            try:
                with caplog.at_level(logging.WARNING, logger="aegis.brain.execution"):
                    bus.publish(signal.to_event())
                    await until(lambda: executor.counts["learning_opened"] == 1, what="the learning position")
                    assert await executor.idle()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    lines = [r.getMessage() for r in caplog.records if "live mode" in r.getMessage()]
    assert len(lines) == 1 and signal.signal_id in lines[0] and "NOT placed on the live account" in lines[0]
    assert [r.account for r in fake.opens] == ["learning"] and fake.closes == []
    assert executor.counts["live_refused"] == 1 and "RiskService.EvaluateSignal" not in executor.stats.rpcs


async def test_unbuilt_services_are_counted_and_nothing_is_made_up(signals_in_the_klines: list[Any]) -> None:
    from aegis.server import unbuilt_registration

    signal: SignalGenerated = signals_in_the_klines[1].to_event()
    async with (
        grpc_server([unbuilt_registration(va_grpc, "VirtualAccountService")]) as va_address,
        grpc_server([unbuilt_registration(risk_grpc, "RiskService")]) as risk_address,
        grpc.aio.insecure_channel(risk_address) as risk_channel,
        grpc.aio.insecure_channel(va_address) as va_channel,
    ):
        bus = EventBus()
        executor = Executor(
            bus,
            risk=risk_grpc.RiskServiceStub(risk_channel),
            accounts=va_grpc.VirtualAccountServiceStub(va_channel),
            marks=lambda symbol: None,
        )
        from aegis.brain.events import TickUpdate
        from aegis.brain.prices import PricePusher

        pusher = PricePusher(bus, va_grpc.VirtualAccountServiceStub(va_channel), interval_s=0.01, timeout_s=1)
        tasks = [asyncio.create_task(bus.run()), asyncio.create_task(executor.run())]
        try:
            bus.publish(signal)
            await until(lambda: executor.counts["decisions_failed"] == 2, what="both decisions failing")
            nan = float("nan")
            pusher.on_tick(TickUpdate(symbol=SYMBOL, event_time_ms=1, recv_time_ns=1, last_price=100.0,
                                      trade_high=101.0, trade_low=99.0, trade_volume=1.0, trade_count=2,
                                      bid_price=nan, bid_qty=nan, ask_price=nan, ask_qty=nan, mark_price=100.5,
                                      index_price=nan, funding_rate=nan, next_funding_time_ms=0))  # fmt: skip
            assert not await pusher.push()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    rpcs = executor.stats.rpcs
    assert rpcs["RiskService.SizeOrder"]["failed"] == {"UNIMPLEMENTED": 1}
    assert rpcs["RiskService.EvaluateSignal"]["failed"] == {"UNIMPLEMENTED": 1}
    assert executor.counts["orders"] == 0 and executor.counts["no_mark_price"] == 1
    assert pusher.failures == {"UNIMPLEMENTED": 1} and pusher.pending == 0  # counted and dropped, not retried
