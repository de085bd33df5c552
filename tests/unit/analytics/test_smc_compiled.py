"""CompiledSMC == StreamingSMC: the same events (compared with ==, in order) for every candle, and the same swings."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.analytics import smc_compiled_kernels as kernels
from aegis.analytics.smc_compiled import CompiledSMC, warm_up
from aegis.analytics.smc_stream import DEFAULT_HORIZON, LiquidityEvent, StreamingSMC
from aegis.errors import ValidationError

Candle = tuple[float, float, float, float, float]


def load_rows(shared_data: Path, symbol: str) -> list[Candle]:
    # the same frame as test_smc_stream.load_ohlc, as plain float tuples
    import pandas as pd

    raw = pd.read_csv(shared_data / "binance/signalbot/data" / f"{symbol}_1m.csv")
    frame = raw[["open", "high", "low", "close", "volume"]].astype(np.float64)
    return list(frame.itertuples(index=False, name=None))


@pytest.fixture(scope="module", params=["BTCUSDT", "ETHUSDT"])
def real(request: pytest.FixtureRequest, shared_data: Path) -> list[Candle]:
    warm_up()
    return load_rows(shared_data, request.param)


def compare(rows: list[Candle], checkpoint_every: int = 997, **options: Any) -> dict[str, int]:
    """Feed both detectors; assert equal events at every candle and equal swings / bars at checkpoints."""
    python, compiled = StreamingSMC(**options), CompiledSMC(**options)
    counts: dict[str, int] = {}
    for t, row in enumerate(rows):
        expected = python.update(*row)
        got = compiled.update(*row)
        assert got == expected, (t, options)
        for e in expected:
            name = type(e).__name__ + ":" + str(getattr(e, "action", "swing"))
            counts[name] = counts.get(name, 0) + 1
        if t % checkpoint_every == 0:
            assert compiled.swings == python.swings and compiled.bars == python.bars == t + 1, t
    assert compiled.swings == python.swings and compiled.bars == python.bars == len(rows)
    assert compiled.delay == python.delay
    return counts


REAL_CONFIGURATIONS: list[dict[str, Any]] = [
    {"swing_length": 5},
    {"swing_length": 10},
    {"swing_length": 50},
    {},  # every default (swing_length 50, horizon DEFAULT_HORIZON)
    {"swing_length": 10, "close_break": False},
    {"swing_length": 10, "close_mitigation": True},
    {"swing_length": 10, "float32_levels": True},
    {"swing_length": 10, "liquidity_band": 25.0},
    {"swing_length": 10, "range_percent": 0.002},
    {"swing_length": 10, "horizon": None},
    {"swing_length": 50, "horizon": None, "close_break": False, "float32_levels": True},
    {"swing_length": 5, "horizon": 20},  # the minimum horizon: a trim every 20 candles
    {"swing_length": 10, "horizon": 40, "close_mitigation": True, "liquidity_band": 10.0},
    {"swing_length": 50, "horizon": 200},
]


@pytest.mark.parametrize("options", REAL_CONFIGURATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_same_events_as_the_python_detector_on_real_candles(real: list[Candle], options: dict[str, Any]) -> None:
    counts = compare(real, **options)
    # each concept was exercised (the 10-day files have thousands of gaps, hundreds of swings and structures)
    assert counts["FvgEvent:formed"] > 1000 and counts["FvgEvent:mitigated"] > 1000
    assert counts["SwingEvent:swing"] > 50
    assert counts["StructureEvent:broken"] > 10
    assert counts["OrderBlockEvent:formed"] > 10 and counts["OrderBlockEvent:removed"] > 5
    assert counts.get("LiquidityEvent:formed", 0) > 0


def test_the_default_horizon_trims(real: list[Candle]) -> None:
    assert len(real) > 3 * DEFAULT_HORIZON  # so the default configurations above trimmed several times
    detector = CompiledSMC(10)
    for row in real:
        detector.update(*row)
    assert int(detector._s[kernels.H_BASE]) > len(real) - 2 * DEFAULT_HORIZON


def random_candles(rng: random.Random, n: int) -> list[Candle]:
    """Integer prices on a narrow grid (halves): equal highs, equal lows, flat candles and equal levels are common."""
    rows: list[Candle] = []
    level = 20
    for _ in range(n):
        if rng.random() < 0.5:
            level = max(6, level + rng.randint(-3, 3))
            points = sorted(level + rng.randint(-4, 4) for _ in range(4))
        else:
            points = sorted(rng.randint(1, 12) for _ in range(4))
        open_, close = (points[1], points[2]) if rng.random() < 0.5 else (points[2], points[1])
        volume = rng.choice([0.0, 0.5, 1.0, 3.0, 7.25])
        rows.append((open_ * 0.5, points[3] * 0.5, points[0] * 0.5, close * 0.5, volume))
    return rows


def random_options(rng: random.Random) -> dict[str, Any]:
    length = rng.choice([1, 2, 3, 5])
    return {
        "swing_length": length,
        "horizon": rng.choice([None, 4 * length, 4 * length + 1, 50, DEFAULT_HORIZON]),
        "close_break": rng.random() < 0.5,
        "close_mitigation": rng.random() < 0.5,
        "float32_levels": rng.random() < 0.5,
        "liquidity_band": rng.choice([None, None, 0.0, 0.5, 1.0]),
        "range_percent": rng.choice([0.01, 0.1, 0.3]),
    }


@pytest.mark.parametrize("seed", range(8))
def test_same_events_on_seeded_candles_with_heavy_ties(seed: int) -> None:
    rng = random.Random(seed)
    warm_up()
    for _ in range(60):
        compare(random_candles(rng, rng.randrange(20, 700)), checkpoint_every=7, **random_options(rng))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    swing_length=st.integers(1, 4),
    horizon_extra=st.one_of(st.none(), st.integers(0, 6)),
    close_break=st.booleans(),
    close_mitigation=st.booleans(),
    float32_levels=st.booleans(),
    liquidity_band=st.one_of(st.none(), st.sampled_from([0.0, 0.5, 2.0])),
)
def test_same_events_on_generated_candles(
    seed: int,
    n: int,
    swing_length: int,
    horizon_extra: int | None,
    close_break: bool,
    close_mitigation: bool,
    float32_levels: bool,
    liquidity_band: float | None,
) -> None:
    compare(
        random_candles(random.Random(seed), n),
        checkpoint_every=1,
        swing_length=swing_length,
        horizon=None if horizon_extra is None else 4 * swing_length + horizon_extra,
        close_break=close_break,
        close_mitigation=close_mitigation,
        float32_levels=float32_levels,
        liquidity_band=liquidity_band,
    )


def test_float32_levels_round_the_probe() -> None:
    """A level between two float32 values: the break test differs with and without float32_levels, in both."""
    rng = random.Random(7)
    rows = [(o + 0.1, h + 0.1, lo + 0.1, c + 0.1, v) for o, h, lo, c, v in random_candles(rng, 3000)]
    for float32_levels in (False, True):
        compare(rows, swing_length=2, float32_levels=float32_levels, horizon=None)


def test_growth_from_python_when_nothing_is_trimmed(shared_data: Path) -> None:
    warm_up()
    rows = load_rows(shared_data, "ETHUSDT")
    python, compiled = StreamingSMC(3, horizon=None), CompiledSMC(3, horizon=None)
    initial = {r: compiled.capacity(r) for r in range(kernels.N_REGIONS)}
    for row in rows:
        assert compiled.update(*row) == python.update(*row)
    assert compiled.swings == python.swings
    assert compiled.capacity(kernels.R_CANDLE) >= len(rows) > initial[kernels.R_CANDLE]
    assert compiled.capacity(kernels.R_SWING) >= len(python.swings) > initial[kernels.R_SWING]


def test_growth_with_many_pools() -> None:
    """A falling sawtooth with band 0: every final swing high starts a pool that is never swept (hundreds live)."""
    rows: list[Candle] = []
    price = 10_000.0
    for k in range(6000):
        step = -3.0 if k % 6 < 3 else 2.0  # down 3 x 3, up 3 x 2: lower highs, lower lows
        open_, price = price, price + step
        high = price + 0.5 if step > 0 else open_  # the bar after a top stays below the top's wick
        low = price - 0.5 if step < 0 else open_
        rows.append((open_, high, low, price, 1.0 + k % 5))
    python = StreamingSMC(2, horizon=None, liquidity_band=0.0)
    compiled = CompiledSMC(2, horizon=None, liquidity_band=0.0)
    initial = compiled.capacity(kernels.R_POOL)
    for row in rows:
        assert compiled.update(*row) == python.update(*row)
    assert len(python._pools) > 4 * initial
    assert compiled.capacity(kernels.R_POOL) >= len(python._pools)
    # and a pool that gathers hundreds of members: equal swing highs inside the band, never swept
    rows = [(10.0, 12.0 if k % 8 == 4 else 11.0, 9.0, 10.0, 1.0) for k in range(2000)]
    events = compare(rows, swing_length=1, horizon=None, liquidity_band=1.0)
    assert events["LiquidityEvent:formed"] >= 1 and events["LiquidityEvent:grown"] > 100


def test_non_finite_input_changes_nothing(shared_data: Path) -> None:
    warm_up()
    rows = load_rows(shared_data, "BTCUSDT")[:3000]
    python, compiled = StreamingSMC(5, horizon=40), CompiledSMC(5, horizon=40)
    bad = [math.nan, math.inf, -math.inf]
    for t, row in enumerate(rows):
        if t % 97 == 13:
            for field in range(5):
                corrupt = list(row)
                corrupt[field] = bad[(t + field) % 3]
                with pytest.raises(ValidationError) as expected:
                    python.update(*corrupt)
                with pytest.raises(ValidationError) as got:
                    compiled.update(*corrupt)
                assert str(got.value) == str(expected.value)
            assert compiled.bars == python.bars == t
        assert compiled.update(*row) == python.update(*row)
    assert compiled.swings == python.swings
    # an overflowing sum of finite values is accepted by both (StreamingSMC checks the sum, then each value)
    assert compiled.update(1e308, 1e308, 1e308, 1e308, 1e308) == python.update(1e308, 1e308, 1e308, 1e308, 1e308)


def test_ints_and_numpy_floats_are_taken_as_floats() -> None:
    warm_up()
    rows = random_candles(random.Random(3), 500)
    python, compiled = StreamingSMC(2), CompiledSMC(2)
    for k, (o, h, lo, c, v) in enumerate(rows):
        if k % 2 and all(x == int(x) for x in (o, h, lo, c, v)):
            args: tuple[Any, ...] = (int(o), int(h), int(lo), int(c), int(v))
        else:
            args = (np.float64(o), h, lo, c, v)
        assert compiled.update(*args) == python.update(*args)


def test_the_same_validation_errors_as_the_python_detector() -> None:
    for arguments in (
        {"swing_length": 0},
        {"swing_length": 5, "horizon": 19},
        {"swing_length": 5, "liquidity_band": -1.0},
        {"swing_length": 5, "liquidity_band": math.nan},
    ):
        with pytest.raises(ValidationError) as expected:
            StreamingSMC(**arguments)
        with pytest.raises(ValidationError) as got:
            CompiledSMC(**arguments)
        assert str(got.value) == str(expected.value)
    detector = CompiledSMC(5, horizon=20)
    assert detector.horizon == 20 and detector.delay == 5 and detector.bars == 0 and detector.swings == ()
    assert CompiledSMC().horizon == DEFAULT_HORIZON and CompiledSMC().swing_length == 50


def test_pool_level_is_the_mean_in_member_order() -> None:
    """Levels whose float sum depends on the order: the compiled pool level is the Python one exactly."""
    rows: list[Candle] = []
    highs = [10.1, 10.2, 10.3, 10.1000000001, 10.7, 10.3]
    for k in range(600):
        top = highs[(k // 4) % len(highs)] if k % 4 == 2 else 9.0
        rows.append((8.5, top, 8.0, 8.6, 1.0))
    python, compiled = (
        StreamingSMC(1, horizon=None, liquidity_band=1.0),
        CompiledSMC(1, horizon=None, liquidity_band=1.0),
    )
    levels = []
    for row in rows:
        events = python.update(*row)
        assert compiled.update(*row) == events
        levels += [e.level for e in events if isinstance(e, LiquidityEvent)]
    assert len(levels) > 50
