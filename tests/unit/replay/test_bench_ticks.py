"""The NautilusTrader side of `aegis bench replay` gets the same ticks the feed publishes (checked without nautilus)."""

from __future__ import annotations

from pathlib import Path

from aegis.bench import _nautilus_replay as nautilus_side
from aegis.feed import replay as feed_replay
from aegis.feed.decode import BookTicker, Trade, decode_frame
from aegis.replay import source as replay_source

RECORDING = "binance/hftbacktest/examples/usdm/btcusdt_20240808.gz"


def test_ticks_are_the_trades_and_book_tickers_our_decoder_sees(shared_data: Path) -> None:
    path = shared_data / RECORDING
    ours = []
    for recv_ns, frame in feed_replay.read_frames(path):
        decoded = decode_frame(frame)
        for e in decoded if type(decoded) is list else (decoded,):
            if type(e) is Trade and e.X == "MARKET":
                ours.append(("trade", e.s, e.p, e.q, e.m, str(e.t), e.T * 1_000_000, recv_ns))
            elif type(e) is BookTicker:
                ours.append(("quote", e.s, e.b, e.a, e.B, e.A))
    theirs = list(nautilus_side.ticks_from_frames(nautilus_side.read_lines(path)))
    assert len(theirs) == len(ours) > 80_000
    for mine, tick in zip(ours, theirs, strict=True):  # the decoder holds float64 prices, the ticks the text
        numbers = (2, 3) if tick[0] == "trade" else (2, 3, 4, 5)
        assert tuple(float(v) if i in numbers else v for i, v in enumerate(tick[: len(mine)])) == mine
    assert {t[0] for t in theirs} == {"trade", "quote"}


def test_repetitions_shift_times_and_ids_as_the_replay_does(shared_data: Path) -> None:
    path = shared_data / RECORDING
    frames = list(feed_replay.read_frames(path))[:2000]
    period = nautilus_side.span_period_ns([path])
    once = list(nautilus_side.ticks_from_frames(frames))
    again = list(nautilus_side.ticks_from_frames(frames, period, nautilus_side.ID_SPAN))
    shifted_frames = [
        (n + period, replay_source.shift_frame(f, period // 1_000_000, replay_source.ID_SPAN)) for n, f in frames
    ]
    assert list(nautilus_side.ticks_from_frames(shifted_frames)) == again  # the same ticks the replay's repeat makes
    for a, b in zip(once, again, strict=True):
        assert b[-1] - a[-1] == b[-2] - a[-2] == period
        if a[0] == "trade":
            assert int(b[5]) - int(a[5]) == nautilus_side.ID_SPAN


def test_trades_from_klines_rebuild_the_klines_exactly(shared_data: Path, tmp_path: Path) -> None:
    import csv
    from decimal import Decimal

    klines = shared_data / "binance/signalbot/data/BTCUSDT_1m.csv"
    out = replay_source.trades_from_klines([klines], tmp_path / "k.hft", minutes=None)
    candles = replay_source.batch_candles_1m([out])
    with klines.open() as f:
        rows = list(csv.DictReader(f))
    assert len(candles) == len(rows) == 14_400
    import datetime as dt

    for row in rows[:500]:
        key = ("BTCUSDT", int(dt.datetime.fromisoformat(row["open_time"]).timestamp() * 1000))
        o, h, lo, c, v = candles[key]
        assert (o, h, lo, c) == tuple(float(row[k]) for k in ("open", "high", "low", "close"))
        assert Decimal(str(round(v, 3))) == max(Decimal(row["volume"]), Decimal("0.004"))
