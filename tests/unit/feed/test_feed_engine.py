"""KlineGate: each closed 1m kline published once per symbol, in time order, gaps held until filled."""

from __future__ import annotations

from aegis.core import records
from aegis.feed.engine import MINUTE_MS, KlineGate


class Sink:
    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.symbols: list[str] = []

    def add_symbol(self, name: str) -> int:
        self.symbols.append(name)
        return len(self.symbols) - 1

    def write_bytes(self, record: bytes) -> int:
        self.records.append(record)
        return len(self.records)


def closed(symbol_id: int, start: int, close: float = 100.0) -> bytes:
    return records.pack_kline(
        symbol_id,
        start + MINUTE_MS,
        0,
        start,
        start + MINUTE_MS - 1,
        MINUTE_MS,
        open=close,
        high=close,
        low=close,
        close=close,
        base_volume=1.0,
        quote_volume=close,
        number_of_trades=1,
        taker_buy_base_volume=0.5,
        closed=True,
    )


def starts(sink: Sink) -> list[int]:
    return [int(records.from_bytes(r)[records.Kline.start_time_ms][0]) for r in sink.records]


def rest_row(start: int) -> list:
    return [start, "1", "2", "0.5", "1.5", "10", start + MINUTE_MS - 1, "15", 3, "4", "6", "0"]


def test_duplicates_are_dropped_and_counted_as_rejections() -> None:
    sink, rejected = Sink(), []
    gate = KlineGate(sink)
    gate.bind_rejections(lambda reason, symbol: rejected.append((reason, symbol)))
    sid = gate.add_symbol("BTCUSDT")
    t0 = 1_723_161_240_000
    for start in (t0, t0, t0 + MINUTE_MS, t0):
        gate.write_bytes(closed(sid, start))
    assert starts(sink) == [t0, t0 + MINUTE_MS]
    assert rejected == [("duplicate_kline", "BTCUSDT")] * 2 and gate.duplicates == 2


def test_open_klines_and_other_kinds_pass_untouched() -> None:
    sink = Sink()
    gate = KlineGate(sink)
    sid = gate.add_symbol("BTCUSDT")
    open_kline = records.pack_kline(
        sid,
        1,
        0,
        0,
        MINUTE_MS - 1,
        MINUTE_MS,
        open=1,
        high=1,
        low=1,
        close=1,
        base_volume=1,
        quote_volume=1,
        number_of_trades=1,
        taker_buy_base_volume=0,
        closed=False,
    )
    trade = records.pack_trade(sid, 1, 0, 1.0, 1.0, 1, 1, 1, 1, False)
    gate.write_bytes(open_kline)
    gate.write_bytes(open_kline)
    gate.write_bytes(trade)
    assert len(sink.records) == 3


def test_a_gap_holds_later_klines_until_the_backfill_publishes_the_missing_ones_in_order() -> None:
    sink, gaps = Sink(), []
    gate = KlineGate(sink, on_gap=lambda sid, first, last: gaps.append((sid, first, last)))
    sid = gate.add_symbol("ETHUSDT")
    t0 = 1_723_161_240_000
    gate.write_bytes(closed(sid, t0))
    gate.write_bytes(closed(sid, t0 + 3 * MINUTE_MS))  # t0+1 and t0+2 are missing
    gate.write_bytes(closed(sid, t0 + 4 * MINUTE_MS))  # held behind the gap too
    assert gaps == [(sid, t0 + MINUTE_MS, t0 + 2 * MINUTE_MS)]
    assert starts(sink) == [t0]
    published = gate.publish_rest(sid, [rest_row(t0 + m * MINUTE_MS) for m in range(0, 4)], 0)
    assert published == 3  # t0 was already there; t0+1, t0+2 and t0+3 come from REST
    gate.release([sid])
    assert starts(sink) == [t0 + m * MINUTE_MS for m in range(5)]
    rest_flags = [bool(records.from_bytes(r)["flags"][0] & records.FLAG_REST) for r in sink.records]
    assert rest_flags == [False, True, True, True, False]
    assert gate.duplicates == 1  # the held t0+3 from the stream duplicated the REST one


def test_the_gate_counts_under_the_firewalls_reason_name() -> None:
    from aegis.feed import engine, firewall

    assert engine.DUPLICATE_KLINE == firewall.DUPLICATE_KLINE


def test_the_first_backfill_starts_at_the_exchange_time_of_the_first_record() -> None:
    sink = Sink()
    gate = KlineGate(sink)
    sid = gate.add_symbol("BTCUSDT")
    exchange_ms = 1_723_161_255_123  # a replaying exchange's clock, far from this host's
    gate.write_bytes(records.pack_trade(sid, exchange_ms, 1_900_000_000_000_000_000, 1.0, 1.0, 1, 1, 1, 1, False))
    gate.write_bytes(records.pack_trade(sid, exchange_ms + 5, 0, 1.0, 1.0, 2, 2, 2, 2, False))
    assert gate.first_event_ms == exchange_ms
