"""Candle building, roll-ups, reconciliation and closing rules of the brain (aegis.brain.candles / kernels)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis.brain.candles import CandleBook
from aegis.brain.consumer import RingConsumer, default_record_filter
from aegis.brain.events import Candle, CandleClosed, EventBus
from aegis.brain.persistence import CandleWriter
from aegis.core import records as rec
from aegis.core import ring

MIN = 60_000
T0 = 1_723_161_240_000  # 2024-08-08 23:54 UTC, a whole minute


def trade(t_ms: int, price: float, qty: float, *, trade_id: int = 1, sell: bool = False, symbol_id: int = 0) -> bytes:
    return rec.pack_trade(symbol_id, t_ms, 0, price, qty, trade_id, trade_id, trade_id, t_ms, sell)


def kline(open_ms: int, o: float, h: float, low: float, c: float, v: float, *, width: int = MIN, n: int = 1,
          quote: float = 0.0, taker: float = 0.0, closed: bool = True, flags: int = 0) -> bytes:  # fmt: skip
    return rec.pack_kline(
        0, open_ms + width, 0, open_ms, open_ms + width - 1, width, o, h, low, c, v, quote, n, taker, closed, flags
    )


def batch_of(records: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(records), dtype=rec.MARKET_RECORD).copy()


def run(book: CandleBook, records: list[bytes], chunk: int | None = None) -> list[CandleClosed]:
    batch = batch_of(records)
    chunk = chunk or len(batch)
    out: list[CandleClosed] = []
    for i in range(0, len(batch), chunk):
        part = batch[i : i + chunk]
        out += book.process(part, np.zeros(len(part), dtype=np.int64))
    return out


def new_book(history: int = 1024, symbol: str = "BTCUSDT") -> CandleBook:
    book = CandleBook(history=history, symbol_capacity=2)
    book.symbol_index(symbol)
    return book


def ms_index(index: pd.Index) -> np.ndarray:
    return np.asarray((index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1), dtype=np.int64)


# ------------------------------------------------------------------------------------------- roll-ups, real klines


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_rolling_ten_days_of_real_1m_klines_up_equals_a_pandas_resample_on_utc_boundaries(
    shared_data: Path, symbol: str
) -> None:
    df = pd.read_csv(shared_data / "binance/signalbot/data" / f"{symbol}_1m.csv", parse_dates=["open_time"])
    opens = ms_index(pd.DatetimeIndex(df["open_time"]))
    records = [
        kline(int(t), r.open, r.high, r.low, r.close, r.volume, taker=r.taker_buy_base_asset_volume)
        for t, r in zip(opens, df.itertuples(index=False), strict=True)
    ]
    book = new_book(symbol=symbol)
    closed = run(book, records, chunk=4096)
    assert not any(e.corrected for e in closed)
    by_tf: dict[str, dict[int, Candle]] = {}
    for event in closed:
        by_tf.setdefault(event.candle.timeframe, {})[event.candle.open_time_ms] = event.candle
    assert len(by_tf["1m"]) == len(df)

    frame = df.set_index("open_time")
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
           "taker_buy_base_asset_volume": "sum"}  # fmt: skip
    for timeframe, rule in (("5m", "5min"), ("15m", "15min"), ("1h", "1h"), ("1d", "1D")):
        expected = frame.resample(rule, label="left", closed="left").agg(agg).dropna()
        got = by_tf[timeframe]
        # Every bucket closes, except the last one when the data ends inside it (it is still forming).
        expected_ms = ms_index(expected.index)
        last_complete = frame.index[-1] + pd.Timedelta(minutes=1) == expected.index[-1] + pd.Timedelta(rule)
        assert sorted(got) == list(expected_ms if last_complete else expected_ms[:-1])
        rows = expected.loc[[pd.Timestamp(t, unit="ms", tz="UTC") for t in sorted(got)]]
        candles = [got[t] for t in sorted(got)]
        for field in ("open", "high", "low", "close"):
            assert [getattr(c, field) for c in candles] == rows[field].tolist(), (timeframe, field)
        np.testing.assert_allclose([c.volume for c in candles], rows["volume"], rtol=1e-12)
        np.testing.assert_allclose(
            [c.taker_buy_volume for c in candles], rows["taker_buy_base_asset_volume"], rtol=1e-12
        )
        # Only the first bucket (the data starts inside it) misses parts.
        assert [c.partial for c in candles] == [t < opens[0] for t in sorted(got)]
        assert {c.source for c in candles} == {"stream"}
        if not last_complete:
            forming = book.forming(symbol, timeframe)
            assert forming is not None and not forming.closed
            assert forming.open_time_ms == expected_ms[-1]
            assert forming.close == expected["close"].iloc[-1]
            assert forming.high == expected["high"].iloc[-1]


# ------------------------------------------------------------------------------------ trades, real hftbacktest


def hftbacktest_trades(path: Path) -> list[tuple[int, int, int, float, float, int, bool]]:
    """(local_ns, E, T, price, qty, trade id, buyer is maker) of every ``trade`` event of a recording."""
    out = []
    with gzip.open(path, "rb") as lines:
        for line in lines:
            local_ns, _, frame = line.partition(b" ")
            if b'"e":"trade"' not in frame:
                continue
            d = json.loads(frame)["data"]
            out.append((int(local_ns), d["E"], d["T"], float(d["p"]), float(d["q"]), d["t"], d["m"]))
    return out


def batch_candles(trades: list[tuple[int, int, int, float, float, int, bool]], width: int) -> list[dict]:
    """Recompute candles from the whole trade list at once (a plain loop, in trade order, like the exchange)."""
    candles: dict[int, dict] = {}
    for _, _, t, price, qty, _, maker in trades:
        key = t - t % width
        c = candles.get(key)
        if c is None:
            candles[key] = c = {"open_time_ms": key, "open": price, "high": price, "low": price, "volume": 0.0,
                                "quote_volume": 0.0, "taker_buy_volume": 0.0, "trade_count": 0}  # fmt: skip
        c["high"] = max(c["high"], price)
        c["low"] = min(c["low"], price)
        c["close"] = price
        c["volume"] += qty
        c["quote_volume"] += price * qty
        c["taker_buy_volume"] += 0.0 if maker else qty
        c["trade_count"] += 1
    return [candles[k] for k in sorted(candles)]


FIELDS = ("open_time_ms", "open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume", "trade_count")


def as_dict(c: Candle) -> dict:
    return {f: getattr(c, f) for f in FIELDS}


def consume_all(consumer: RingConsumer) -> None:
    while consumer.step():
        pass


def test_replaying_real_hftbacktest_trades_through_a_ring_gives_the_batch_recomputed_candles(
    shared_data: Path, tmp_path: Path
) -> None:
    trades = hftbacktest_trades(shared_data / "binance/hftbacktest/examples/usdm/btcusdt_20240808.gz")
    assert len(trades) > 20_000
    writer = ring.create(tmp_path / "brain.ring", rec.MARKET_RECORD, 1 << 16, layout_name=rec.MARKET_RECORD_LAYOUT)
    symbol_id = writer.add_symbol("BTCUSDT")
    book = CandleBook(history=64)
    bus = EventBus()
    consumer = RingConsumer(
        tmp_path / "brain.ring", book, bus, CandleWriter(None, None), batch_records=512,
        record_filter=default_record_filter(),
    )  # fmt: skip
    reader = ring.attach(tmp_path / "brain.ring", rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT)
    consumer.attach(reader)
    for i, (local_ns, e, t, price, qty, trade_id, maker) in enumerate(trades):
        writer.write_bytes(rec.pack_trade(symbol_id, e, local_ns, price, qty, trade_id, trade_id, trade_id, t, maker))
        if i % 997 == 0:  # the consumer runs while the feed publishes, in uneven batches
            consume_all(consumer)
    consume_all(consumer)
    assert consumer.records_processed == len(trades) and consumer.records_rejected == 0

    closed = [e for e in bus_events(bus) if isinstance(e, CandleClosed)]
    for width, timeframe in ((MIN, "1m"), (5 * MIN, "5m")):
        expected = batch_candles(trades, width)
        got = [e.candle for e in closed if e.candle.timeframe == timeframe]
        forming = book.forming("BTCUSDT", timeframe)
        assert forming is not None
        assert all(c.source == "trades" for c in got)
        assert [c.partial for c in got] == [i == 0 for i in range(len(got))]  # we joined the first minute late
        mine = [as_dict(c) for c in [*got, forming]]
        if timeframe == "1m":
            # Every closed candle plus the one still forming = the batch recomputation, to the last bit.
            assert mine == expected
        else:
            # 5m sums 1m sums: the same numbers added in another order differ in the last bits only.
            sums = ("volume", "quote_volume", "taker_buy_volume")
            assert [{k: v for k, v in c.items() if k not in sums} for c in mine] == [
                {k: v for k, v in c.items() if k not in sums} for c in expected
            ]
            for name in sums:
                np.testing.assert_allclose([c[name] for c in mine], [c[name] for c in expected], rtol=1e-12)
    assert book.stats()["trades"] == len(trades)


def bus_events(bus: EventBus) -> list:
    out = []
    while (event := bus.next_event()) is not None:
        out.append(event)
    return out


def test_replaying_the_real_recording_through_the_feed_pipeline_gives_the_same_candles(
    shared_data: Path, tmp_path: Path
) -> None:
    replay = pytest.importorskip("aegis.feed.replay")
    path = shared_data / "binance/hftbacktest/examples/usdm/btcusdt_20240808.gz"
    trades = hftbacktest_trades(path)
    writer = ring.create(tmp_path / "feed.ring", rec.MARKET_RECORD, 1 << 18, layout_name=rec.MARKET_RECORD_LAYOUT)
    stats = replay.replay_file(path, writer, ["BTCUSDT"], speed="max")
    book = CandleBook(history=64)
    bus = EventBus()
    consumer = RingConsumer(tmp_path / "feed.ring", book, bus, CandleWriter(None, None))
    consumer.attach(ring.attach(tmp_path / "feed.ring", rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT))
    consume_all(consumer)
    assert consumer.records_processed == stats.published
    got = [e.candle for e in bus_events(bus) if isinstance(e, CandleClosed) and e.candle.timeframe == "1m"]
    forming = book.forming("BTCUSDT", "1m")
    assert [as_dict(c) for c in [*got, forming]] == batch_candles(trades, MIN)
    assert {c.source for c in got} == {"replay"}
    assert consumer.status()["lag_ns"] is None  # replayed receive times are not a lag


# ------------------------------------------------------------------------------------------- closing rules


def test_a_trade_of_a_later_minute_closes_the_candle_and_its_buckets() -> None:
    book = new_book()
    first = run(book, [trade(T0 + 1_000, 100.0, 1.0), trade(T0 + 59_999, 101.0, 2.0)])
    assert first == []
    closed = run(book, [trade(T0 + 5 * MIN + 1, 102.0, 1.0)])
    c = closed[0].candle
    assert (c.timeframe, c.open_time_ms, c.open, c.high, c.low, c.close, c.volume) == (
        "1m", T0, 100.0, 101.0, 100.0, 101.0, 3.0
    )  # fmt: skip
    assert c.close_time_ms == T0 + MIN - 1 and c.quote_volume == 100.0 + 202.0 and c.trade_count == 2
    assert c.taker_buy_volume == 3.0  # neither trade had a maker buyer
    # T0 is 23:54: its 5m bucket (23:50) closes with it because a later bucket started; it misses parts.
    assert [(e.candle.timeframe, e.candle.open_time_ms, e.candle.partial) for e in closed[1:]] == [
        ("5m", T0 - 4 * MIN, True)
    ]


def test_the_same_records_close_the_same_candles_whatever_the_batch_sizes(shared_data: Path) -> None:
    trades = hftbacktest_trades(shared_data / "binance/hftbacktest/examples/usdm/btcusdt_20240808.gz")[:6000]
    records = [rec.pack_trade(0, e, n, p, q, i, i, i, t, m) for n, e, t, p, q, i, m in trades]
    records.insert(3000, kline(trades[2999][2] // MIN * MIN - MIN, 61000.0, 62000.0, 60000.0, 61500.0, 10.0))
    results = []
    for chunk in (1, 7, 500, None):
        book = new_book()
        results.append([(e.candle, e.corrected) for e in run(book, records, chunk)])
    assert results[0] and all(r == results[0] for r in results)


def test_a_late_trade_is_counted_and_not_applied() -> None:
    book = new_book()
    run(book, [trade(T0 + 1_000, 100.0, 1.0), trade(T0 + MIN + 1, 101.0, 1.0), trade(T0 + 2_000, 50.0, 9.0)])
    assert book.stats()["late_trades"] == 1
    assert book.candles("BTCUSDT", "1m")[0].low == 100.0


def test_the_first_candle_after_attaching_is_partial_and_so_is_one_after_lost_records() -> None:
    book = new_book()
    closed = run(book, [trade(T0 + 1_000, 100.0, 1.0), trade(T0 + MIN, 100.0, 1.0), trade(T0 + 2 * MIN, 1.0, 1.0)])
    assert [e.candle.partial for e in closed if e.candle.timeframe == "1m"] == [True, False]
    book.mark_gap()  # what the consumer does after an overrun resync
    closed = run(book, [trade(T0 + 3 * MIN, 100.0, 1.0)])
    assert [e.candle.partial for e in closed if e.candle.timeframe == "1m"] == [True]


def test_a_quiet_symbol_closes_only_after_the_grace_period() -> None:
    book = new_book()
    run(book, [trade(T0 + 1_000, 100.0, 1.0)])
    assert book.close_due(T0 + MIN + 9_999, 10_000) == []
    closed = book.close_due(T0 + MIN + 10_000, 10_000)
    assert [e.candle.timeframe for e in closed] == ["1m", "5m"]  # 23:54 was the last minute of its 5m bucket
    assert book.stats()["timeout_closes"] == 1


# ------------------------------------------------------------------------------------------- reconciliation


def test_the_exchanges_closed_kline_overrides_a_closed_trade_built_candle_and_the_differences_are_counted() -> None:
    book = new_book()
    run(book, [trade(T0 + 1_000, 100.0, 1.0, trade_id=1), trade(T0 + 2_000, 101.0, 1.0, trade_id=2)])
    run(book, [trade(T0 + MIN + 5, 102.0, 1.0, trade_id=3)])  # closes the minute from trades
    # The exchange saw a trade we missed: high 103, volume 3, 3 trades.
    closed = run(book, [kline(T0, 100.0, 103.0, 100.0, 101.0, 3.0, n=3, quote=304.0, taker=3.0)])
    one = closed[0]
    assert one.corrected and one.candle.timeframe == "1m" and one.candle.source == "stream"
    assert (one.candle.high, one.candle.volume, one.candle.trade_count) == (103.0, 3.0, 3)
    assert not one.candle.partial  # the exchange's candle is complete even though ours was not
    stats = book.stats()
    assert stats["klines_corrected"] == 1 and stats["klines_confirmed"] == 0
    assert stats["kline_differences"]["1m"] == {
        "open": 0, "high": 1, "low": 0, "close": 0, "volume": 1, "quote_volume": 1, "taker_buy_volume": 1,
        "trade_count": 1,
    }  # fmt: skip
    assert book.candles("BTCUSDT", "1m", include_forming=False)[0] == one.candle
    # The 5m bucket already closed (a later bucket had started): it is recomputed and re-emitted.
    assert [(e.candle.timeframe, e.corrected, e.candle.high) for e in closed[1:]] == [("5m", True, 103.0)]


def test_a_closed_kline_that_arrives_first_closes_the_forming_candle_and_a_matching_one_is_confirmed() -> None:
    book = new_book()
    run(book, [trade(T0 + 1_000, 100.0, 1.0), trade(T0 + 2_000, 101.0, 1.0, sell=True)])
    closed = run(book, [kline(T0, 100.0, 101.0, 100.0, 101.0, 2.0, n=2, quote=201.0, taker=1.0)])
    # 23:54 is the last minute of the 23:50 bucket: that closes too.
    assert [(e.candle.timeframe, e.corrected) for e in closed] == [("1m", False), ("5m", False)]
    stats = book.stats()
    assert stats["klines_confirmed"] == 1 and stats["klines_corrected"] == 0
    # A trade of that minute arriving after the exchange closed it is counted, not applied.
    run(book, [trade(T0 + 3_000, 500.0, 1.0)])
    assert book.stats()["trades_after_close"] == 1
    assert book.candles("BTCUSDT", "1m")[-1].high == 101.0


def test_closed_klines_without_trades_build_candles_and_roll_up() -> None:
    book = new_book()
    start = T0 - 4 * MIN  # 23:50
    closed = run(book, [kline(start + i * MIN, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 1.0) for i in range(5)])
    assert book.stats()["klines_without_candle"] == 5
    five = [e.candle for e in closed if e.candle.timeframe == "5m"]
    assert len(five) == 1 and not five[0].partial
    assert (five[0].open, five[0].high, five[0].low, five[0].close, five[0].volume) == (10.0, 15.0, 9.0, 14.5, 5.0)


def test_the_exchanges_kline_of_a_wider_timeframe_wins_over_the_roll_up() -> None:
    book = new_book()
    start = T0 - 4 * MIN
    run(book, [kline(start, 10.0, 11.0, 9.0, 10.0, 1.0, width=5 * MIN)])
    run(book, [kline(start + i * MIN, 10.0, 12.0, 9.0, 10.0, 1.0) for i in range(5)])
    assert book.candles("BTCUSDT", "5m")[0].high == 11.0


def test_a_rest_backfilled_kline_is_recorded_with_source_rest() -> None:
    flag = getattr(rec, "FLAG_REST", 0x08)
    book = CandleBook(history=64, rest_flag=flag)
    book.symbol_index("BTCUSDT")
    closed = run(book, [kline(T0, 1.0, 1.0, 1.0, 1.0, 1.0, flags=flag)])
    assert closed[0].candle.source == "rest"


def test_history_older_than_memory_is_still_handed_over_for_persistence() -> None:
    book = new_book(history=8)
    run(book, [trade(T0 + 8 * MIN, 1.0, 1.0)])
    run(book, [trade(T0 + 9 * MIN, 1.0, 1.0)])
    closed = run(book, [kline(T0, 2.0, 2.0, 2.0, 2.0, 2.0)])  # 8 minutes back: its slot holds a newer candle
    assert [(e.candle.open_time_ms, e.corrected) for e in closed] == [(T0, True)]
    assert book.stats()["klines_too_old"] == 1


# ------------------------------------------------------------------------------------------- loading history


def stored(open_ms: int, timeframe: str = "1m", price: float = 10.0, source: str = "stream") -> Candle:
    width = {"1m": MIN, "5m": 5 * MIN}[timeframe]
    return Candle(symbol="BTCUSDT", timeframe=timeframe, open_time_ms=open_ms, close_time_ms=open_ms + width - 1,
                  open=price, high=price, low=price, close=price, volume=1.0, quote_volume=price, trade_count=1,
                  taker_buy_volume=0.5, source=source)  # fmt: skip


def test_loaded_history_never_overwrites_newer_memory_and_completes_wider_buckets() -> None:
    book = new_book()
    run(book, [trade(T0 + MIN + 1, 99.0, 1.0)])  # live: 23:55 forming
    start = T0 - 4 * MIN
    taken = book.load([stored(start + i * MIN) for i in range(5)] + [stored(T0 + MIN, price=1.0)])
    assert taken == 5  # the forming live minute was kept
    assert book.forming("BTCUSDT", "1m").close == 99.0
    rebuilt = book.rebuild("BTCUSDT")
    assert [(e.candle.timeframe, e.candle.open_time_ms, e.candle.partial) for e in rebuilt] == [("5m", start, False)]
    assert book.candles("BTCUSDT", "5m")[0].volume == 5.0


def test_the_book_builds_its_events_in_field_order() -> None:
    """The book builds Candle, CandleClosed and TickUpdate positionally (its hot path): their field order is fixed."""
    from aegis.brain.events import Candle, CandleClosed, TickUpdate

    assert Candle.__struct_fields__ == (
        "symbol", "timeframe", "open_time_ms", "close_time_ms", "open", "high", "low", "close", "volume",
        "quote_volume", "trade_count", "taker_buy_volume", "source", "closed", "partial",
    )  # fmt: skip
    assert CandleClosed.__struct_fields__ == ("candle", "corrected", "recv_time_ns")
    assert TickUpdate.__struct_fields__ == (
        "symbol", "event_time_ms", "recv_time_ns", "last_price", "trade_high", "trade_low", "trade_volume",
        "trade_count", "bid_price", "bid_qty", "ask_price", "ask_qty", "mark_price", "index_price", "funding_rate",
        "next_funding_time_ms", "mark_time_ms", "merged",
    )  # fmt: skip
