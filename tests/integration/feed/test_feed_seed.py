"""A restarted feed continues the closed 1m klines of the ring it re-opens: seeded gate, REST backfill, once, in order.

A real ring file (the first writer publishes closed klines up to minute M, then goes away as a killed feed does), a
second writer on the same file (new epoch, old records still there), a new :class:`KlineGate` seeded from the ring
and a :class:`Backfiller` against the simulator's REST API (the real recordings at x1000, so its klines of minutes
after M have closed): the ring must then hold every minute's closed kline exactly once, in time order, across both
writers, including a stream resend of the newest backfilled kline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from aegis.core import records
from aegis.core.records import FLAG_KLINE_CLOSED, FLAG_REST, KLINE, MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.core.ring import RingReader, RingWriter
from aegis.exchange.rest import BinanceRest
from aegis.feed.engine import MINUTE_MS, Backfiller, KlineGate, minute_klines
from aegis.sim.server import Simulator


def kline(symbol_id: int, start: int, *, closed: bool = True, interval: int = MINUTE_MS) -> bytes:
    return records.pack_kline(
        symbol_id, start + interval, 0, start, start + interval - 1, interval,
        open=1.0, high=1.0, low=1.0, close=1.0, base_volume=1.0, quote_volume=1.0, number_of_trades=1,
        taker_buy_base_volume=0.5, closed=closed,
    )  # fmt: skip


def ring_klines(path: Path) -> list[tuple[int, int, int]]:
    """(symbol id, open time, flags) of every closed 1m kline in the ring, in sequence order."""
    reader = RingReader(path, MARKET_RECORD, layout_name=MARKET_RECORD_LAYOUT, start="oldest")
    try:
        out = []
        while (raw := reader.read_one_bytes()) is not None:
            r = records.from_bytes(raw)[0]
            if r["kind"] == KLINE and r["flags"] & FLAG_KLINE_CLOSED and r[records.Kline.interval_ms] == MINUTE_MS:
                out.append((int(r["symbol_id"]), int(r[records.Kline.start_time_ms]), int(r["flags"])))
        return out
    finally:
        reader.close()


def test_a_new_ring_or_one_without_1m_klines_seeds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    with RingWriter(path, MARKET_RECORD, 64, layout_name=MARKET_RECORD_LAYOUT) as writer:
        gate = KlineGate(writer)
        assert gate.seed(writer.retained(minute_klines)) == {} and gate.last_closed == {}
        sid = gate.add_symbol("BTCUSDT")
        writer.write_bytes(kline(sid, 0, interval=5 * MINUTE_MS))  # a 5m kline and a trade do not count
        writer.write_bytes(records.pack_trade(sid, 1, 0, 1.0, 1.0, 1, 1, 1, 1, False))
    with RingWriter(path, MARKET_RECORD, 64, layout_name=MARKET_RECORD_LAYOUT) as writer:
        gate = KlineGate(writer)
        assert gate.seed(writer.retained(minute_klines)) == {}
        assert writer.epoch == 2 and len(writer.retained()) == 2


def test_a_symbol_whose_first_minute_never_closed_in_the_ring_resumes_at_the_first_minute_seen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ring"
    with RingWriter(path, MARKET_RECORD, 64, layout_name=MARKET_RECORD_LAYOUT) as writer:
        sid = writer.add_symbol("BTCUSDT")
        for start in (5 * MINUTE_MS, 5 * MINUTE_MS, 6 * MINUTE_MS):  # open updates only: killed before a close
            writer.write_bytes(kline(sid, start, closed=False))
    with RingWriter(path, MARKET_RECORD, 64, layout_name=MARKET_RECORD_LAYOUT) as writer:
        gate = KlineGate(writer)
        assert gate.seed(writer.retained(minute_klines)) == {sid: 4 * MINUTE_MS}
        gate.write_bytes(kline(sid, 5 * MINUTE_MS))  # the first minute seen closes: it is the next one expected
        assert gate.gaps == 0 and gate.last_closed == {sid: 5 * MINUTE_MS}


def test_seed_takes_the_newest_closed_kline_per_symbol_still_in_the_ring(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    with RingWriter(path, MARKET_RECORD, 8, layout_name=MARKET_RECORD_LAYOUT) as writer:
        btc, eth = writer.add_symbol("BTCUSDT"), writer.add_symbol("ETHUSDT")
        for m in range(10):  # 10 closed BTC klines into 8 slots: the ring keeps the last 8 (and ETH's one)
            writer.write_bytes(kline(btc, m * MINUTE_MS))
        writer.write_bytes(kline(eth, 3 * MINUTE_MS))
        writer.write_bytes(kline(btc, 10 * MINUTE_MS, closed=False))  # newer, but not closed
        writer.write_bytes(kline(btc, 20 * MINUTE_MS, interval=5 * MINUTE_MS))  # closed, but not 1m
    with RingWriter(path, MARKET_RECORD, 8, layout_name=MARKET_RECORD_LAYOUT) as writer:
        kept = writer.retained(minute_klines)
        assert np.all(np.diff(kept["seq"].astype(np.int64)) > 0) and len(kept) == 7
        assert len(writer.retained()) == 8
        gate = KlineGate(writer)
        assert gate.seed(kept) == {btc: 9 * MINUTE_MS, eth: 3 * MINUTE_MS}
        assert gate.last_closed == {btc: 9 * MINUTE_MS, eth: 3 * MINUTE_MS}


async def test_a_gate_seeded_from_the_ring_backfills_the_missed_minutes_once_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "ring"
    async with Simulator(speed=1000.0) as sim:  # the 6 recorded minutes close within half a second
        rest = BinanceRest(sim.rest_url)
        try:
            server_now = await rest.server_time_ms()
            while True:
                rows = await rest.klines("BTCUSDT", "1m", start_ms=0, end_ms=server_now, limit=1000)
                closed = [int(r[0]) for r in rows if int(r[6]) < server_now]
                if len(closed) >= 5:
                    break
                await asyncio.sleep(0.1)
                server_now = await rest.server_time_ms()
            t0, minute_m = closed[0], closed[1]

            # The killed process: published the closed klines up to minute M (and a trade after it), nothing more.
            first = RingWriter(path, MARKET_RECORD, 1 << 10, layout_name=MARKET_RECORD_LAYOUT)
            gate = KlineGate(first)
            btc, eth = gate.add_symbol("BTCUSDT"), gate.add_symbol("ETHUSDT")
            for start in (t0, minute_m):
                gate.write_bytes(kline(btc, start))
            gate.write_bytes(records.pack_trade(btc, minute_m + MINUTE_MS + 5, 0, 1.0, 1.0, 1, 1, 1, 1, False))
            first.close()

            # The next process: same file, new epoch; its gate is seeded from the ring, then it backfills.
            second = RingWriter(path, MARKET_RECORD, 1 << 10, layout_name=MARKET_RECORD_LAYOUT)
            try:
                assert second.epoch == 2
                gate = KlineGate(second)
                assert (gate.add_symbol("BTCUSDT"), gate.add_symbol("ETHUSDT")) == (btc, eth)
                assert gate.seed(second.retained(minute_klines)) == {btc: minute_m}
                backfiller = Backfiller(rest, gate, lambda: None)
                published = await backfiller.fill([btc])
                fetched = [start for start in closed if start > minute_m]
                assert published == len(fetched) >= 3 and backfiller.failures == 0
                assert gate.last_closed[btc] == fetched[-1]
                # The stream then resends the newest closed kline (dropped), and the next one follows it.
                gate.write_bytes(kline(btc, fetched[-1]))
                gate.write_bytes(kline(btc, fetched[-1] + MINUTE_MS))
                assert gate.duplicates == 1 and gate.gaps == 0 and not gate.held
            finally:
                second.close()
        finally:
            await rest.close()

    got = ring_klines(path)
    assert [s for s, _, _ in got] == [btc] * len(got)
    starts = [start for _, start, _ in got]
    assert starts == list(range(t0, fetched[-1] + 2 * MINUTE_MS, MINUTE_MS))  # every minute once, in order
    from_rest = [bool(flags & FLAG_REST) for _, _, flags in got]
    assert from_rest == [False, False] + [True] * len(fetched) + [False]
