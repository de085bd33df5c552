"""Kline derivation and roll-ups (pure code over the real recordings and CSVs)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from sim_testdata import BTC_FILE, direct_minute_aggregation

from aegis.sim.klines import MINUTE_MS, Bar, Precision, Trade, bar_from_trades, kline_row, rollup, select


def test_recording_line_counts_match_the_files(market):
    counts = market.line_counts["btcusdt_20240808.gz"]
    assert counts == {"lines": 93_954, "stream_frames": 93_953, "snapshots": 1}
    assert market.line_counts["ethusdt_20240808.gz"] == {"lines": 74_655, "stream_frames": 74_654, "snapshots": 1}
    recorded = int(np.count_nonzero(market.timeline.recorded))
    assert recorded == 93_953 + 74_654


def test_derived_1m_bars_equal_a_direct_aggregation_of_the_recorded_trades(market):
    tape = market.tapes["BTCUSDT"]
    assert tape.late_trades == 0
    direct = direct_minute_aggregation(BTC_FILE)
    # Closed bars plus the trades of the still open minute, if any (the recording ends at 00:00:01).
    last_trades = tape.trades[tape.bar_trade_end[-1] :]
    bars = list(tape.bars)
    if last_trades:
        bars.append(bar_from_trades(tape.bars[-1].open_time + MINUTE_MS, last_trades, tape.bars[-1].close))
    assert [b.open_time for b in bars] == sorted(direct)
    for bar in bars:
        want = direct[bar.open_time]
        row = kline_row(bar, tape.precision)
        assert row[1] == want["open"] and row[4] == want["close"]
        assert Decimal(row[2]) == want["high"] and Decimal(row[3]) == want["low"]
        assert Decimal(row[5]) == want["volume"] and Decimal(row[7]) == want["quote"]
        assert row[8] == want["count"]
        assert Decimal(row[9]) == want["taker_buy"] and Decimal(row[10]) == want["taker_buy_quote"]
    assert sum(b.trades for b in bars) == 21_313


def test_closed_kline_frames_carry_the_rest_bars(market):
    import json

    tape = market.tapes["BTCUSDT"]
    for bar, index in zip(tape.bars, tape.bar_close_index, strict=True):
        frame = json.loads(market.timeline.frames[int(index)])
        assert frame["stream"] == "btcusdt@kline_1m"
        k = frame["data"]["k"]
        assert k["x"] is True and k["t"] == bar.open_time
        row = kline_row(bar, tape.precision)
        assert [k["o"], k["h"], k["l"], k["c"], k["v"], k["q"], k["n"], k["V"], k["Q"]] == [
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[7],
            row[8],
            row[9],
            row[10],
        ]


def test_rollup_matches_the_1m_bars_on_utc_boundaries(csv_market):
    tape = csv_market.tapes["BTCUSDT"]
    minutes = tape.bars[:2000]
    for interval_ms in (5 * MINUTE_MS, 15 * MINUTE_MS, 60 * MINUTE_MS, 1440 * MINUTE_MS):
        rolled = rollup(minutes, interval_ms)
        assert all(b.open_time % interval_ms == 0 for b in rolled)
        assert sum(b.volume for b in rolled) == sum(b.volume for b in minutes)
        for bar in rolled[1:-1]:  # whole groups
            group = [m for m in minutes if bar.open_time <= m.open_time < bar.open_time + interval_ms]
            assert len(group) == interval_ms // MINUTE_MS
            assert bar.open == group[0].open and bar.close == group[-1].close
            assert bar.high == max(m.high for m in group) and bar.low == min(m.low for m in group)
            assert bar.close_time == bar.open_time + interval_ms - 1


def test_select_follows_binance_start_end_limit_rules():
    bars = [Bar(i * MINUTE_MS, MINUTE_MS, *(Decimal(1),) * 6, 0, Decimal(0), Decimal(0)) for i in range(10)]
    assert [b.open_time for b in select(bars, None, None, 3)] == [7 * MINUTE_MS, 8 * MINUTE_MS, 9 * MINUTE_MS]
    assert [b.open_time for b in select(bars, 2 * MINUTE_MS, None, 2)] == [2 * MINUTE_MS, 3 * MINUTE_MS]
    assert [b.open_time for b in select(bars, 1, None, 1)] == [MINUTE_MS]  # open time at or after startTime
    assert [b.open_time for b in select(bars, None, 4 * MINUTE_MS, 2)] == [3 * MINUTE_MS, 4 * MINUTE_MS]


def test_empty_minute_is_flat_at_the_previous_close():
    bar = bar_from_trades(0, [], Decimal("61800.30"))
    row = kline_row(bar, Precision.of(2, 3))
    assert row[1:6] == ["61800.30", "61800.30", "61800.30", "61800.30", "0.000"]
    assert row[7:11] == ["0.00000", 0, "0.000", "0.00000"]


def test_bar_from_trades_counts_taker_buys():
    trades = [Trade(1, 5, Decimal("10.0"), Decimal("0.5"), False), Trade(2, 6, Decimal("9.5"), Decimal("1.0"), True)]
    bar = bar_from_trades(0, trades)
    assert (bar.open, bar.high, bar.low, bar.close) == (
        Decimal("10.0"),
        Decimal("10.0"),
        Decimal("9.5"),
        Decimal("9.5"),
    )
    assert bar.taker_buy_volume == Decimal("0.5") and bar.trades == 2
    assert (bar.first_trade_id, bar.last_trade_id) == (1, 2)
