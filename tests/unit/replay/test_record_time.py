"""Record time (AEGIS_CLOCK=record): windows of record time, the order of windows and candles, the clocks."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from aegis.brain.candles import CandleBook
from aegis.brain.consumer import RingConsumer, default_record_filter
from aegis.brain.events import CandleClosed, EventBus
from aegis.brain.persistence import CandleWriter
from aegis.brain.prices import PriceWindow, RecordTimePrices
from aegis.core import records as rec
from aegis.core import ring
from aegis.core.clock import RecordClock, as_of, from_ms, record_clock
from aegis.feed import replay as feed_replay
from aegis.replay import source as replay_source

RECORDINGS = ("btcusdt_20240808.gz", "ethusdt_20240808.gz")


@pytest.fixture(scope="module")
def ring_of_both(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both real recordings merged by receive time and replayed into a ring, as `aegis replay` does."""
    tmp = tmp_path_factory.mktemp("record-time")
    paths = [shared_data / "binance/hftbacktest/examples/usdm" / name for name in RECORDINGS]
    src = replay_source.prepare(paths, tmp / "merged", repeat=1)
    path = tmp / "both.ring"
    writer = ring.create(path, rec.MARKET_RECORD, 1 << 18, layout_name=rec.MARKET_RECORD_LAYOUT)
    stats = feed_replay.replay_file(src.path, writer, ["BTCUSDT", "ETHUSDT"], speed="max")
    assert stats.published > 150_000
    return path


def replay_in_windows(path: Path, batch_records: int, window_ms: int) -> tuple[list[tuple], list[PriceWindow]]:
    """Consume the ring in batches of ``batch_records``; return the rank-3 events (candles, and price windows as
    the ApplyPriceUpdates bytes virtual-account would get), and the windows."""
    bus = EventBus()
    prices = RecordTimePrices(bus, None, None, window_ms=window_ms, timeout_s=1.0, mark_from_last=True)
    consumer = RingConsumer(
        path, CandleBook(history=64), bus, CandleWriter(None, None), batch_records=batch_records,
        record_filter=default_record_filter(), record_time=prices,
    )  # fmt: skip
    consumer.attach(ring.attach(path, rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT))
    out: list[tuple] = []
    windows: list[PriceWindow] = []
    while consumer.step():
        while (event := bus.next_event()) is not None:  # what the bus dispatches, in its order
            if isinstance(event, CandleClosed):
                out.append(("candle", event.candle.symbol, event.candle.timeframe, event.candle.open_time_ms))
            elif isinstance(event, PriceWindow):
                out.append(("window", event.sequence, tuple(p.to_pb().SerializeToString() for p in event.prices)))
                windows.append(event)
    assert len(windows) == prices.windows_sealed
    return out, windows


def test_windows_and_closed_candles_come_in_the_same_order_whatever_the_batch_sizes(ring_of_both: Path) -> None:
    runs = [replay_in_windows(ring_of_both, size, 100) for size in (4096, 613, 7)]
    first, windows = runs[0]
    assert sum(1 for e in first if e[0] == "candle") > 10
    assert len(windows) > 2000  # ~6 minutes: most 100 ms windows hold a trade
    for other, _ in runs[1:]:
        assert other == first  # the same windows (prices, high/low) between the same candles


def test_every_window_holds_its_trades_range_and_the_last_price_as_the_mark(ring_of_both: Path) -> None:
    _, sealed = replay_in_windows(ring_of_both, 4096, 1000)
    windows = [w.prices for w in sealed]
    assert len(windows) > 300
    for window in windows:
        for p in window:
            assert p.low_price <= p.last_price <= p.high_price
            assert p.mark_price == p.last_price  # last-price mode: the mark is the last trade, stated
            assert math.isfinite(p.high_price) and p.event_time_ms > 0
    last_seen: dict[str, int] = {}
    for window in windows:  # record order: event times never go back per symbol
        for p in window:
            assert p.event_time_ms >= last_seen.get(p.symbol, 0)
            last_seen[p.symbol] = p.event_time_ms
    assert set(last_seen) == {"BTCUSDT", "ETHUSDT"}


def test_the_cuts_follow_the_running_maximum_of_event_times() -> None:
    import numpy as np

    prices = RecordTimePrices(EventBus(), None, None, window_ms=100, timeout_s=1.0)
    batch = np.zeros(6, dtype=rec.MARKET_RECORD)
    batch["event_time_ms"] = [1_000, 1_050, 1_120, 1_090, 1_300, 1_301]  # 1_090 is late: it stays in 1_100's window
    assert prices.cuts(batch) == [2, 4]
    batch2 = np.zeros(2, dtype=rec.MARKET_RECORD)
    batch2["event_time_ms"] = [1_299, 1_400]  # late again, then a new window
    assert prices.cuts(batch2) == [1]


def test_the_record_clock_moves_only_forward_from_its_start() -> None:
    clock = RecordClock(from_ms(1_000))
    assert clock() == from_ms(1_000)
    assert clock.observe(from_ms(5_000)) == from_ms(5_000)
    assert clock.observe(from_ms(2_000)) == from_ms(5_000)
    assert clock.observe(None) == from_ms(5_000)
    with pytest.raises(ValueError, match="aware"):
        RecordClock(dt.datetime(2024, 1, 1))


def test_record_clock_only_with_the_record_setting() -> None:
    class Settings:
        clock = "record"
        clock_start_ms = 60_000

    assert record_clock(Settings())() == from_ms(60_000)
    Settings.clock = "system"
    assert record_clock(Settings()) is None


def test_as_of_is_the_newest_time_a_request_carries() -> None:
    fallback = from_ms(9)
    assert as_of([from_ms(3), None, from_ms(7)], lambda: fallback) == from_ms(7)
    assert as_of([None], lambda: fallback) == fallback
