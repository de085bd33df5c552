"""The versioned feature schema and the pure, causal feature function (aegis.brain.features)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest

from aegis.brain import features as feat
from aegis.brain.candles import CandleBook
from aegis.brain.strategy import Strategy
from aegis.core import records as rec

MIN = 60_000
SIGNED = {
    "t_macd_hist_pct",
    "t_body_atr",
    "choch_break_atr",
    "m15_structure",
    "zone_distance_atr",
    "h1_trend",
    "h1_ema_distance_pct",
    "d1_bias",
    "d1_prev_return_pct",
}


@pytest.fixture(scope="module")
def recorded_inputs(shared_data: Path) -> list[feat.FeatureInputs]:
    """The feature inputs of every signal the strategy makes on the real ETHUSDT klines."""
    df = pd.read_csv(shared_data / "binance/signalbot/data/ETHUSDT_1m.csv", parse_dates=["open_time"])
    opens = (pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    raw = b"".join(
        rec.pack_kline(
            0,
            int(t) + MIN,
            0,
            int(t),
            int(t) + MIN - 1,
            MIN,
            r.open,
            r.high,
            r.low,
            r.close,
            r.volume,
            0.0,
            1,
            r.taker_buy_base_asset_volume,
            True,
        )
        for t, r in zip(opens, df.itertuples(index=False), strict=True)
    )
    book = CandleBook(history=64, symbol_capacity=1)
    book.symbol_index("ETHUSDT")
    batch = np.frombuffer(raw, dtype=rec.MARKET_RECORD).copy()
    strategy = Strategy(record_inputs=True)
    for event in book.process(batch, np.zeros(len(batch), dtype=np.int64)):
        strategy.on_candle_closed(event)
    assert strategy.inputs
    return list(strategy.inputs.values())


def test_the_schema_is_versioned_ordered_and_documented() -> None:
    assert feat.FEATURE_SCHEMA_VERSION == 1
    assert feat.SCHEMAS[1] == feat.FEATURE_NAMES == tuple(f.name for f in feat.FEATURES)
    assert len(set(feat.FEATURE_NAMES)) == len(feat.FEATURE_NAMES) == 33
    assert all(f.unit and f.meaning.endswith(".") for f in feat.FEATURES)
    assert {f.name for f in feat.FEATURES if "signed" in f.unit} == SIGNED | {"t_taker_ratio"}
    assert feat.FEATURE_INDEX["side"] == 0
    with pytest.raises(KeyError):
        feat.names_of(2)


def test_the_feature_function_is_pure_and_its_inputs_are_read_only(
    recorded_inputs: list[feat.FeatureInputs],
) -> None:
    inputs = recorded_inputs[0]
    first, again = feat.compute(inputs), feat.compute(inputs)
    assert first.dtype == np.float64 and first.shape == (len(feat.FEATURE_NAMES),)
    np.testing.assert_array_equal(first, again)
    assert not first.flags.writeable and not inputs.trigger.close.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.side = -1  # type: ignore[misc]
    with pytest.raises(TypeError):
        inputs.indicators["1h"] = inputs.indicators["15m"]  # type: ignore[index]


def test_features_of_real_signals_are_finite_and_in_their_ranges(recorded_inputs: list[feat.FeatureInputs]) -> None:
    f = feat.FEATURE_INDEX
    zones_missing = 0
    for inputs in recorded_inputs:
        inputs.check_causal()
        v = feat.compute(inputs)
        assert np.isfinite(v).all()
        for name in ("t_rsi", "t_adx", "m15_rsi", "h1_rsi", "h1_adx"):
            assert 0 <= v[f[name]] <= 100, name
        for name in ("sweep_pool", "zone_ob", "zone_fvg"):
            assert v[f[name]] in (0.0, 1.0), name
        for name in ("h1_trend", "d1_bias", "m15_structure", "hour_sin", "hour_cos"):
            assert -1 <= v[f[name]] <= 1, name
        assert 0 <= v[f["t_taker_ratio"]] <= 1 and v[f["t_volume_ratio"]] > 0
        assert v[f["sweep_depth_atr"]] > 0 and v[f["choch_break_atr"]] > 0 and v[f["sweep_age_bars"]] >= 1
        if v[f["zone_ob"]] + v[f["zone_fvg"]] == 0:  # no zone (the default rules do not require one)
            zones_missing += 1
            assert v[f["zone_height_atr"]] == v[f["zone_age_bars"]] == v[f["zone_distance_atr"]] == 0.0
    assert 0 < zones_missing < len(recorded_inputs)  # both kinds of signal occur on the real klines


def test_signed_features_change_sign_with_the_side(recorded_inputs: list[feat.FeatureInputs]) -> None:
    inputs = recorded_inputs[0]
    here = feat.compute(inputs)
    there = feat.compute(dataclasses.replace(inputs, side=-inputs.side))
    for i, name in enumerate(feat.FEATURE_NAMES):
        if name in SIGNED or name == "side":
            assert there[i] == pytest.approx(-here[i]), name
        elif name == "t_taker_ratio":
            assert there[i] == pytest.approx(1 - here[i])
        else:
            assert there[i] == here[i], name


def test_an_indicator_still_warming_up_gives_nan_features(recorded_inputs: list[feat.FeatureInputs]) -> None:
    inputs = recorded_inputs[0]
    cold_1h = dataclasses.replace(inputs.indicators["1h"], values=(math.nan,) * len(inputs.indicators["1h"].values))
    cold = dataclasses.replace(inputs, indicators=MappingProxyType({**inputs.indicators, "1h": cold_1h}))
    values = feat.compute(cold)
    nan = {feat.FEATURE_NAMES[i] for i in np.flatnonzero(np.isnan(values))}
    assert nan == {"h1_trend", "h1_ema_distance_pct", "h1_rsi", "h1_adx"}
    no_day = dataclasses.replace(inputs, daily=feat.CandleWindow.of("1d", 86_400_000, []))
    nan = {feat.FEATURE_NAMES[i] for i in np.flatnonzero(np.isnan(feat.compute(no_day)))}
    assert nan == {"d1_bias", "d1_range_position", "d1_prev_return_pct"}


def test_a_flat_market_gives_finite_defaults_not_divisions_by_zero(recorded_inputs: list[feat.FeatureInputs]) -> None:
    inputs = recorded_inputs[0]
    w = inputs.trigger
    rows = [(int(t), 10.0, 10.0, 10.0, 10.0, 0.0, 0.0) for t in w.open_time_ms]
    flat = dataclasses.replace(inputs, trigger=feat.CandleWindow.of(w.timeframe, w.width_ms, rows))
    values = feat.compute(flat)
    f = feat.FEATURE_INDEX
    assert values[f["t_volume_ratio"]] == 1.0 and values[f["t_taker_ratio"]] in (0.5,)
    assert values[f["t_body_atr"]] == 0.0


def test_inputs_known_after_the_signal_time_are_refused(recorded_inputs: list[feat.FeatureInputs]) -> None:
    inputs = next(i for i in recorded_inputs if i.sweep.zone is not None)  # a signal whose sweep reached a zone
    t = inputs.as_of_ms
    later_day = dataclasses.replace(
        inputs.daily, open_time_ms=np.array([t - 86_400_000 + 2], dtype=np.int64)
    )  # closes 1 ms after t
    later_1h = dataclasses.replace(inputs.indicators["1h"], close_time_ms=t + 3_600_000)
    sweep = inputs.sweep
    assert sweep.zone is not None
    bad = [
        dataclasses.replace(inputs, daily=later_day),
        dataclasses.replace(inputs, indicators=MappingProxyType({**inputs.indicators, "1h": later_1h})),
        dataclasses.replace(inputs, sweep=dataclasses.replace(sweep, confirmed_ms=t + 1)),
        dataclasses.replace(
            inputs,
            sweep=dataclasses.replace(sweep, zone=dataclasses.replace(sweep.zone, confirmed_ms=sweep.confirmed_ms + 1)),
        ),
        dataclasses.replace(inputs, as_of_ms=t - 1),
    ]
    if inputs.structure is not None:
        bad.append(dataclasses.replace(inputs, structure=dataclasses.replace(inputs.structure, confirmed_ms=t + 1)))
    for case in bad:
        with pytest.raises(AssertionError):
            case.check_causal()


def test_a_feature_vector_names_its_values() -> None:
    values = tuple(float(i) for i in range(len(feat.FEATURE_NAMES)))
    vector = feat.FeatureVector(1, values)
    assert vector.names == feat.FEATURE_NAMES and vector["tp_pct"] == 2.0
    np.testing.assert_array_equal(vector.array(), values)


def test_numpy_mean_is_numpys_mean_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    for n in [*range(0, 40), 63, 64, 65, 127, 128, 129, 200, 255, 256, 257, 1000]:
        for _ in range(20):
            values = (rng.random(n) * 10.0 ** rng.integers(-4, 7, n)).tolist()
            expected = float(np.array(values, dtype=np.float64).mean()) if n else math.nan
            got = feat.numpy_mean(values)
            assert got.hex() == expected.hex(), (n, values)
