"""The compiled feature vector equals :func:`aegis.brain.features.feature_values` bit for bit, edge cases included."""

from __future__ import annotations

import math
import random

import numpy as np

from aegis.analytics.indicators import StreamingIndicators
from aegis.brain import features as feat
from aegis.brain.feature_kernel import CONFIDENCE, FINITE, N_FEATURES, OUT_SIZE, SCORE, feature_row
from aegis.brain.strategy import (
    CONFIDENCE_CENTER,
    CONFIDENCE_SLOPE,
    CONFLUENCE_WEIGHTS,
    confidence_of,
    confluence,
)

WEIGHTS = np.array(
    [CONFLUENCE_WEIGHTS[k] for k in ("d1_bias", "h1_trend", "m15_structure", "zone", "sweep_pool", "volume")]
    + [CONFIDENCE_CENTER, CONFIDENCE_SLOPE]
)

SPECIAL = (0.0, -0.0, math.nan, math.inf, -math.inf, 1.0, -1.0)


def compiled_feature_values(
    out: np.ndarray,
    weights: np.ndarray,
    *,
    side: int,
    entry: float,
    sl_pct: float,
    tp_pct: float,
    trigger_indicators: np.ndarray,
    m15_indicators: np.ndarray,
    h1: tuple[float, np.ndarray],
    candle: tuple[float, float, float, float],
    mean_volume: float,
    day: tuple[float, float, float, float] | None,
    sweep: feat.Sweep,
    structure: feat.Structure | None,
    choch_bar: int,
    as_of_ms: int,
) -> tuple[float, ...]:
    """:func:`feature_row` called with :func:`~aegis.brain.features.feature_values`' keywords (indicator rows as
    float64 arrays), as ``Strategy._features`` calls it with its state."""
    zone = sweep.zone
    d = day if day is not None else (math.nan, math.nan, math.nan, math.nan)
    feature_row(
        out, weights, trigger_indicators, m15_indicators, h1[1], side, entry, sl_pct, tp_pct, *candle, mean_volume,
        h1[0], day is not None, *d, sweep.direction, sweep.open_time_ms, sweep.bar, sweep.level, sweep.extreme,
        sweep.pool, sweep.ref_level, zone is not None,
        zone is not None and zone.order_block, zone is not None and zone.fair_value_gap,
        zone.top if zone is not None else 0.0, zone.bottom if zone is not None else 0.0,
        zone.formed_time_ms if zone is not None else 0, structure.direction if structure is not None else 0,
        choch_bar, as_of_ms,
    )  # fmt: skip
    return tuple(out[:N_FEATURES].tolist())


def _value(rng: random.Random) -> float:
    """Mostly ordinary prices and indicator values, often a zero, a NaN or an infinity (the branches)."""
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(SPECIAL)
    if roll < 0.4:
        return float(rng.randint(-3, 3))  # equal values: zero differences and denominators
    return rng.uniform(-2.0, 2.0) * 10 ** rng.randint(-3, 5)


def _case(rng: random.Random) -> dict:
    width = len(StreamingIndicators.COLUMNS)
    zone = None
    if rng.random() < 0.6:
        zone = feat.Zone(
            direction=rng.choice((1, -1)),
            order_block=rng.random() < 0.5,
            fair_value_gap=rng.random() < 0.5,
            top=_value(rng),
            bottom=_value(rng),
            formed_time_ms=rng.randint(0, 2**41),
            confirmed_ms=0,
        )
    sweep = feat.Sweep(
        direction=rng.choice((1, -1)),
        open_time_ms=rng.randint(0, 2**41),
        confirmed_ms=0,
        bar=rng.randint(0, 10_000),
        level=_value(rng),
        extreme=_value(rng),
        pool=rng.random() < 0.5,
        ref_level=_value(rng),
        ref_confirmed_ms=0,
        zone=zone,
    )
    structure = None
    if rng.random() < 0.6:
        structure = feat.Structure(rng.choice((1, -1)), rng.choice(("BOS", "CHOCH")), _value(rng), 0)
    entry = _value(rng)
    if entry == 0 or rng.random() < 0.7:
        entry = rng.uniform(0.001, 100_000.0)  # the Python form divides by the entry (and by the day's open)
    day = None
    if rng.random() < 0.8:
        day = (rng.uniform(0.001, 1e5), _value(rng), _value(rng), _value(rng))
    rows = [np.array([_value(rng) for _ in range(width)]) for _ in range(3)]
    return {
        "side": rng.choice((1, -1)),
        "entry": entry,
        "sl_pct": _value(rng),
        "tp_pct": _value(rng),
        "trigger_indicators": rows[0],
        "m15_indicators": rows[1],
        "h1": (_value(rng), rows[2]),
        "candle": (_value(rng), _value(rng), _value(rng), _value(rng)),
        "mean_volume": _value(rng),
        "day": day,
        "sweep": sweep,
        "structure": structure,
        "choch_bar": rng.randint(0, 10_000),
        "as_of_ms": rng.randint(0, 2**41),
    }


def test_the_compiled_features_equal_the_python_function_bit_for_bit() -> None:
    rng = random.Random(20261122)
    out = np.empty(OUT_SIZE)
    nan_seen = zero_den_seen = scored = 0
    for _ in range(20_000):
        case = _case(rng)
        python_form = {**case, "trigger_indicators": tuple(case["trigger_indicators"].tolist())}
        python_form["m15_indicators"] = tuple(case["m15_indicators"].tolist())
        python_form["h1"] = (case["h1"][0], tuple(case["h1"][1].tolist()))
        expected = feat.feature_values(**python_form)
        got = compiled_feature_values(out, WEIGHTS, **case)
        assert [v.hex() for v in got] == [v.hex() for v in expected], case
        # and what the strategy decides on next: all finite? the confluence score, the confidence
        finite = all(map(math.isfinite, expected))
        assert out[FINITE] == (1.0 if finite else 0.0)
        if finite:
            score = confluence(expected)
            assert out[SCORE].hex() == score.hex() and out[CONFIDENCE].hex() == confidence_of(score).hex()
            scored += 1
        nan_seen += any(math.isnan(v) for v in expected)
        zero_den_seen += case["candle"][2] == 0  # the taker share's default
    assert len(got) == len(feat.FEATURES)
    assert nan_seen > 1000 and zero_den_seen > 1000  # the edge branches were taken, not just the ordinary one
    assert scored > 100
