"""The brain's event bus (priority dispatch, tick conflation) and the consumer's conflation and lag figures."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

from aegis.brain.candles import CandleBook
from aegis.brain.consumer import RingConsumer
from aegis.brain.events import (
    Candle,
    CandleClosed,
    EventBus,
    OrderFilled,
    OrderRequest,
    SignalGenerated,
    TickUpdate,
)
from aegis.brain.persistence import CandleWriter
from aegis.core import records as rec
from aegis.core import ring

MIN = 60_000
T0 = 1_723_161_240_000


def candle_closed(i: int) -> CandleClosed:
    candle = Candle(symbol="BTCUSDT", timeframe="1m", open_time_ms=T0 + i * MIN, close_time_ms=T0 + (i + 1) * MIN - 1,
                    open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, quote_volume=1.0, trade_count=1,
                    taker_buy_volume=0.0, source="trades")  # fmt: skip
    return CandleClosed(candle=candle)


def tick(symbol: str, price: float, *, trades: int = 1, event_ms: int = T0) -> TickUpdate:
    return TickUpdate(symbol=symbol, event_time_ms=event_ms, recv_time_ns=0, last_price=price, trade_high=price,
                      trade_low=price, trade_volume=float(trades), trade_count=trades, bid_price=price - 0.1,
                      bid_qty=1.0, ask_price=price + 0.1, ask_qty=1.0, mark_price=price, index_price=price,
                      funding_rate=0.0001, next_funding_time_ms=T0 + 3_600_000)  # fmt: skip


def order(client_order_id: str = "o-1") -> OrderRequest:
    return OrderRequest(client_order_id=client_order_id, account="paper", symbol="BTCUSDT", side="BUY",
                        order_type="MARKET", quantity=Decimal("0.001"), created_time_ns=1)  # fmt: skip


async def test_an_order_published_behind_ten_thousand_analytics_events_is_handled_first() -> None:
    bus = EventBus()
    handled: list[object] = []
    bus.subscribe(CandleClosed, handled.append)

    async def on_order(event: OrderRequest) -> None:
        handled.append(event)

    bus.subscribe(OrderRequest, on_order)
    for i in range(10_000):
        bus.publish(candle_closed(i))
    bus.publish(order())
    assert bus.pending == 10_001
    assert await bus.drain() == 10_001
    assert isinstance(handled[0], OrderRequest)
    # Analytics keep their publication order behind it.
    assert [e.candle.open_time_ms for e in handled[1:]] == [T0 + i * MIN for i in range(10_000)]


async def test_dispatch_order_is_orders_then_exits_then_signals_then_analytics() -> None:
    bus = EventBus()
    seen: list[str] = []
    for kind in (CandleClosed, SignalGenerated, TickUpdate, OrderRequest, OrderFilled):
        bus.subscribe(kind, lambda e: seen.append(type(e).__name__))
    signal = SignalGenerated(signal_id="s", symbol="BTCUSDT", timeframe="1m", side="LONG",
                             entry_price=Decimal("1"), sl_pct=1.0, tp_pct=2.0, confidence=0.5,
                             candle_open_time_ms=T0, created_time_ns=1)  # fmt: skip
    fill = OrderFilled(client_order_id="o-1", account="paper", symbol="BTCUSDT", side="BUY", price=Decimal("1"),
                       quantity=Decimal("1"), fee=Decimal("0"), fill_time_ms=T0)  # fmt: skip
    for event in (candle_closed(0), signal, tick("BTCUSDT", 1.0), fill, order()):
        bus.publish(event)
    await bus.drain()
    assert seen == ["OrderFilled", "OrderRequest", "TickUpdate", "SignalGenerated", "CandleClosed"]
    assert bus.stats()["signals"] == 1


async def test_a_failing_subscriber_is_counted_and_the_others_still_run() -> None:
    bus = EventBus()
    seen: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(CandleClosed, broken)
    bus.subscribe(CandleClosed, seen.append)
    bus.publish(candle_closed(0))
    await bus.drain()
    assert len(seen) == 1 and bus.handler_errors == 1


async def test_pending_ticks_of_a_symbol_merge_and_keep_the_traded_range() -> None:
    bus = EventBus()
    seen: list[TickUpdate] = []
    bus.subscribe(TickUpdate, seen.append)
    bus.publish(tick("BTCUSDT", 100.0))
    bus.publish(tick("ETHUSDT", 10.0))
    bus.publish(tick("BTCUSDT", 90.0, trades=2))
    bus.publish(tick("BTCUSDT", 95.0))
    bus.publish(candle_closed(0))
    assert bus.conflated == 2
    await bus.drain()
    btc = next(t for t in seen if t.symbol == "BTCUSDT")
    assert (btc.last_price, btc.trade_high, btc.trade_low, btc.trade_count, btc.merged) == (95.0, 100.0, 90.0, 4, 2)
    assert [t.symbol for t in seen] == ["BTCUSDT", "ETHUSDT"]  # first come, first served within a rank


# ------------------------------------------------------------------------------------------- the consumer


def test_under_a_burst_book_tickers_are_conflated_but_every_trade_and_kline_is_processed(tmp_path: Path) -> None:
    writer = ring.create(tmp_path / "r.ring", rec.MARKET_RECORD, 1 << 14, layout_name=rec.MARKET_RECORD_LAYOUT)
    btc, eth = writer.add_symbol("BTCUSDT"), writer.add_symbol("ETHUSDT")
    book = CandleBook(history=16)
    bus = EventBus()
    consumer = RingConsumer(tmp_path / "r.ring", book, bus, CandleWriter(None, None), batch_records=8192)
    consumer.attach(ring.attach(tmp_path / "r.ring", rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT))
    volume = 0.0
    prices = []
    for i in range(3000):  # a burst: all of it published before the brain looks
        t = T0 + i * 10
        price = 100.0 + (i % 37) * 0.1
        writer.write_bytes(rec.pack_book_ticker(btc, t, 0, i, price - 0.1, 1.0, price + 0.1, 2.0, t))
        writer.write_bytes(rec.pack_mark_price(eth, t, 0, 10.0 + i, 10.0, 10.0, 0.0001, T0 + 3_600_000))
        if i % 3 == 0:
            writer.write_bytes(rec.pack_trade(btc, t, 0, price, 0.5, i, i, i, t, False))
            volume += 0.5
            prices.append(price)
    writer.write_bytes(rec.pack_kline(eth, T0 + MIN, 0, T0, T0 + MIN - 1, MIN, 1, 2, 0.5, 1.5, 7, 10, 3, 1, True))
    assert consumer.step() == 3000 * 2 + 1000 + 1
    stats = book.stats()
    assert stats["trades"] == 1000 and stats["klines_closed"] == 1
    assert stats["conflated"] == 2 * (3000 - 1)  # one book ticker and one mark price per symbol survive the batch
    forming = book.forming("BTCUSDT", "1m")
    assert forming.volume == volume and forming.trade_count == 1000
    assert (forming.high, forming.low, forming.close) == (max(prices), min(prices), prices[-1])
    ticks = {t.symbol: t for t in iter(bus.next_event, None) if isinstance(t, TickUpdate)}
    assert ticks["BTCUSDT"].ask_price == 100.0 + (2999 % 37) * 0.1 + 0.1
    assert (ticks["BTCUSDT"].trade_high, ticks["BTCUSDT"].trade_low) == (max(prices), min(prices))
    assert ticks["BTCUSDT"].trade_count == 1000
    assert ticks["ETHUSDT"].mark_price == 10.0 + 2999 and math.isnan(ticks["ETHUSDT"].trade_high)
    assert book.candles("ETHUSDT", "1m")[0].close == 1.5


def test_lag_figures_come_from_the_ring_and_the_receive_times(tmp_path: Path) -> None:
    class Clock:
        mono = 5_000_000_000

        def time_ns(self) -> int:
            return T0 * 1_000_000

        def monotonic_ns(self) -> int:
            return self.mono

    clock = Clock()
    writer = ring.create(tmp_path / "r.ring", rec.MARKET_RECORD, 64, layout_name=rec.MARKET_RECORD_LAYOUT)
    sid = writer.add_symbol("BTCUSDT")
    consumer = RingConsumer(tmp_path / "r.ring", CandleBook(history=8), EventBus(), CandleWriter(None, None),
                            clock=clock, batch_records=10)  # fmt: skip
    consumer.attach(ring.attach(tmp_path / "r.ring", rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT))
    for i in range(25):
        writer.write_bytes(rec.pack_trade(sid, T0, 4_000_000_000 + i, 1.0, 1.0, i, i, i, T0, False))
    assert consumer.step() == 10
    status = consumer.status()
    assert status["lag_records"] == 15 and status["lag_ns"] == 1_000_000_000 - 9
    for i in range(100):  # lap the reader: 64 slots
        writer.write_bytes(rec.pack_trade(sid, T0, 4_500_000_000, 1.0, 1.0, i, i, i, T0, False))
    consumer.step()
    status = consumer.status()
    assert status["overruns"] >= 1 and status["resyncs"] >= 1 and status["records_lost"] > 0
    assert status["writer_epoch"] == writer.epoch
    # A wall-clock receive time (Unix ns) is measured against the wall clock.
    writer.write_bytes(rec.pack_trade(sid, T0, T0 * 1_000_000 - 250_000_000, 1.0, 1.0, 1, 1, 1, T0, False))
    while consumer.step():
        pass
    assert consumer.status()["lag_ns"] == 250_000_000
    assert consumer.book.forming("BTCUSDT", "1m").partial  # the lost records may belong to it
