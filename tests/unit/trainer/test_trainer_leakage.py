"""Leakage: no feature a trade carries uses data from after its signal time.

On the real 10-day BTCUSDT/ETHUSDT 1m klines, the brain's strategy (1m trigger, no zone needed, no cooldown: many
signals) makes signals whose inputs pass FeatureInputs.check_causal; then every bar after a cut is shuffled (the
future replaced by a scrambled one) and the signals made up to the cut must come out with the very same feature
vectors. The synthetic-from-real trade generator's causal parts (side, stop, target, entry) pass the same test;
its planted feature is derived from the outcome on purpose and is labelled synthetic everywhere it is used.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis.brain import features as feat
from aegis.brain.candles import CandleBook
from aegis.brain.events import CandleClosed
from aegis.brain.strategy import Signal, Strategy
from aegis.config import StrategySettings
from aegis.core import records as rec
from aegis.trainer.synthetic import Klines, trades_from_klines
from aegis.trainer.testing import KLINES_DIR, real_klines

MIN = 60_000
LOOSE = dataclasses.replace(StrategySettings(), trigger_timeframe="1m", require_zone=False, cooldown_s=0.0)


def read(shared_data: Path, symbol: str) -> pd.DataFrame:
    return pd.read_csv(shared_data / KLINES_DIR / f"{symbol}_1m.csv", parse_dates=["open_time"])


def shuffled_after(df: pd.DataFrame, cut: int, seed: int) -> pd.DataFrame:
    """Keep the first ``cut`` bars; scramble the OHLCV rows after them (times stay in order)."""
    out = df.copy()
    values = ["open", "high", "low", "close", "volume", "taker_buy_base_asset_volume"]
    future = out.loc[cut:, values].to_numpy()
    out.loc[cut:, values] = future[np.random.default_rng(seed).permutation(len(future))]
    return out


def candle_events(df: pd.DataFrame) -> list[CandleClosed]:
    """Roll 1m klines up through the brain's CandleBook, as the brain does."""
    opens = (pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    raw = []
    for t, r in zip(opens, df.itertuples(index=False), strict=True):
        start = int(t)
        prices = (r.open, r.high, r.low, r.close, r.volume, r.volume * r.close, 1, r.taker_buy_base_asset_volume)
        raw.append(rec.pack_kline(0, start + MIN, 0, start, start + MIN - 1, MIN, *prices, True))
    book = CandleBook(history=64, symbol_capacity=1)
    book.symbol_index("X")
    batch = np.frombuffer(b"".join(raw), dtype=rec.MARKET_RECORD).copy()
    return book.process(batch, batch["symbol_id"].astype(np.int64))


def signals_of(events: list[CandleClosed]) -> tuple[Strategy, list[Signal]]:
    strategy = Strategy(LOOSE, record_inputs=True)
    out: list[Signal] = []
    for event in events:
        out += strategy.on_candle_closed(event)
    return strategy, out


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_strategy_features_do_not_change_when_the_future_is_shuffled(shared_data: Path, symbol: str) -> None:
    df = read(shared_data, symbol)
    strategy, signals = signals_of(candle_events(df))
    assert len(signals) >= 20 and strategy.inputs is not None
    for signal in signals:
        inputs = strategy.inputs[signal.signal_id]
        inputs.check_causal()  # every input became known at or before the signal time
        assert inputs.as_of_ms * 1_000_000 < signal.created_time_ns
        assert tuple(feat.compute(inputs).tolist()) == signal.features
    start_ms = int(pd.Timestamp(df["open_time"].iloc[0]).value // 1_000_000)
    for cut in (len(df) // 3, 2 * len(df) // 3):
        cut_ms = start_ms + cut * MIN  # the first scrambled bar opens here
        _, scrambled = signals_of(candle_events(shuffled_after(df, cut, seed=cut)))
        before = [s for s in signals if s.created_time_ns <= cut_ms * 1_000_000]
        assert len(before) >= 5
        assert [(s.signal_id, s.features) for s in before] == [
            (s.signal_id, s.features) for s in scrambled if s.created_time_ns <= cut_ms * 1_000_000
        ]
        assert [s.features for s in scrambled] != [s.features for s in signals]  # the future did change


def test_synthetic_trades_decide_side_stop_and_entry_from_the_past_only(shared_data: Path) -> None:
    klines = real_klines(shared_data)
    cut = 7000

    def scramble(k: Klines) -> Klines:
        order = np.r_[np.arange(cut), cut + np.random.default_rng(1).permutation(len(k) - cut)]
        return dataclasses.replace(
            k, open=k.open[order], high=k.high[order], low=k.low[order], close=k.close[order], volume=k.volume[order]
        )

    def causal_parts(ks: list[Klines]) -> list[tuple]:
        trades = trades_from_klines(ks, seed=3, balance_symbols=False, max_hold_minutes=60)
        cut_time = min(pd.Timestamp(int(k.open_ms[cut]), unit="ms", tz="UTC") for k in ks)
        return sorted(
            (t.symbol, t.opened_at, t.side, t.entry_price, t.features[1], t.features[2])
            for t in trades
            if t.opened_at < cut_time - pd.Timedelta(hours=2)  # exits (not causal parts) may reach past the cut
        )

    real, scrambled = causal_parts(klines), causal_parts([scramble(k) for k in klines])
    assert len(real) > 100 and real == scrambled
