"""The strategy's feature vector in one numba call: :func:`aegis.brain.features.feature_values`, compiled.

With the vector, the same call gives what the strategy decides on next: whether every feature is finite, the
confluence score and the confidence (:func:`aegis.brain.strategy.confluence` and ``confidence_of``, the same
operations in the same order, from the weights the strategy passes), in the three slots after the features.

The signal path reads the indicator rows straight from the indicator banks' arrays and takes the candle, the
sweep, the zone and the structure as scalars, so a trade idea's 33 features cost one call instead of a few
dozen Python calls and tuples. Every operation is the Python function's, in the same order (IEEE float64, no
fast-math, the same libm ``sin``/``cos``), so the values are the same bit for bit, NaN and -0.0 included:
``tests/unit/brain/test_feature_kernel.py`` checks crafted edge cases (zero and NaN denominators, no day, no
zone, no structure) and ``tests/unit/brain/test_strategy.py`` every trigger of the real klines against
:func:`aegis.brain.features.compute`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from aegis.brain import features as feat

N_FEATURES = len(feat.FEATURES)
FINITE, SCORE, CONFIDENCE = N_FEATURES, N_FEATURES + 1, N_FEATURES + 2
"""Slots of ``out`` after the features: 1.0 when every feature is finite (else 0.0, and the next two are NaN), the
confluence score, the confidence."""
OUT_SIZE = N_FEATURES + 3
_I = feat.FEATURE_INDEX
D1_BIAS, H1_TREND, M15_STRUCTURE, ZONE_OB = _I["d1_bias"], _I["h1_trend"], _I["m15_structure"], _I["zone_ob"]
ZONE_FVG, SWEEP_POOL, VOLUME_RATIO = _I["zone_fvg"], _I["sweep_pool"], _I["t_volume_ratio"]
ATR, RSI, ADX = feat._ATR, feat._RSI, feat._ADX
EMA, MACD, MACD_HIST = feat._EMA, feat._MACD, feat._MACD_HIST
BB_UPPER, BB_LOWER, BB_MIDDLE = feat._BB_UPPER, feat._BB_LOWER, feat._BB_MIDDLE
DAY_MS, HOUR_MS = feat._DAY_MS, feat._HOUR_MS


# the Python form's own helpers, compiled (one definition: features._sign and features._ratio)
_sign = njit(cache=True)(feat._sign)
_ratio = njit(cache=True)(feat._ratio)


@njit(cache=True)
def feature_row(
    out: np.ndarray,
    weights: np.ndarray,
    t_ind: np.ndarray,
    m15: np.ndarray,
    h1_ind: np.ndarray,
    side: int,
    entry: float,
    sl_pct: float,
    tp_pct: float,
    o: float,
    c: float,
    volume: float,
    taker: float,
    mean_volume: float,
    h1_close: float,
    has_day: bool,
    d_open: float,
    d_high: float,
    d_low: float,
    d_close: float,
    sweep_direction: int,
    sweep_open_ms: int,
    sweep_bar: int,
    sweep_level: float,
    sweep_extreme: float,
    sweep_pool: bool,
    sweep_ref_level: float,
    has_zone: bool,
    zone_ob: bool,
    zone_fvg: bool,
    zone_top: float,
    zone_bottom: float,
    zone_formed_ms: int,
    structure_direction: int,
    choch_bar: int,
    as_of_ms: int,
) -> None:
    """Write the feature vector into ``out`` and the three slots after it (``weights``: see :func:`_score`; ``t_ind``,
    ``m15``, ``h1_ind``: indicator rows; ``structure_direction`` 0 for no structure); the other arguments are
    :func:`~aegis.brain.features.feature_values`' unpacked."""
    s = float(side)
    t_atr = t_ind[ATR]
    taker_share = _ratio(taker, volume, 0.5)
    upper, lower, middle = t_ind[BB_UPPER], t_ind[BB_LOWER], t_ind[BB_MIDDLE]
    m15_atr = m15[ATR]
    if has_zone:
        zone_height = _ratio(zone_top - zone_bottom, m15_atr, 0.0)
        zone_age = (sweep_open_ms - zone_formed_ms) / 900_000
        zone_distance = _ratio((entry - (zone_top + zone_bottom) / 2) * s, m15_atr, 0.0)
    else:
        zone_height = zone_age = zone_distance = 0.0
    h1_ema = h1_ind[EMA]
    h1_trend = (_sign(h1_close - h1_ema) + _sign(h1_ind[MACD])) / 2 * s
    if has_day:
        d1_bias = (_sign(entry - (d_high + d_low) / 2) + _sign(d_close - d_open)) / 2 * s
        d1_position = _ratio(entry - d_low, d_high - d_low, 0.5)
        d1_return = (d_close / d_open - 1.0) * 100.0 * s
    else:
        d1_bias = d1_position = d1_return = math.nan
    hour = ((as_of_ms + 1) % DAY_MS) / HOUR_MS
    structure_sign = 0.0 if structure_direction == 0 else float(structure_direction) * s
    out[0] = s
    out[1] = sl_pct
    out[2] = tp_pct
    out[3] = t_atr / entry * 100.0
    out[4] = t_ind[RSI]
    out[5] = t_ind[ADX]
    out[6] = t_ind[MACD_HIST] / entry * 100.0 * s
    out[7] = _ratio(entry - lower, upper - lower, 0.5)
    out[8] = _ratio(upper - lower, middle, 0.0) * 100.0
    out[9] = _ratio(volume, mean_volume, 1.0)
    out[10] = taker_share if s > 0 else 1.0 - taker_share
    out[11] = _ratio((c - o) * s, t_atr, 0.0)
    out[12] = _ratio((sweep_level - sweep_extreme) * sweep_direction, t_atr, 0.0)
    out[13] = float(choch_bar - sweep_bar)
    out[14] = 1.0 if sweep_pool else 0.0
    out[15] = _ratio((c - sweep_ref_level) * s, t_atr, 0.0)
    out[16] = structure_sign
    out[17] = m15[RSI]
    out[18] = m15_atr / entry * 100.0
    out[19] = 1.0 if has_zone and zone_ob else 0.0
    out[20] = 1.0 if has_zone and zone_fvg else 0.0
    out[21] = zone_height
    out[22] = zone_age
    out[23] = zone_distance
    out[24] = h1_trend
    out[25] = _ratio(h1_close - h1_ema, h1_ema, 0.0) * 100.0 * s
    out[26] = h1_ind[RSI]
    out[27] = h1_ind[ADX]
    out[28] = d1_bias
    out[29] = d1_position
    out[30] = d1_return
    out[31] = math.sin(2 * math.pi * hour / 24)
    out[32] = math.cos(2 * math.pi * hour / 24)
    _score(out, weights)


@njit(cache=True)
def _score(out: np.ndarray, weights: np.ndarray) -> None:
    """``out[FINITE]``, ``out[SCORE]``, ``out[CONFIDENCE]`` from the features; ``weights``: the confluence weights of
    d1_bias, h1_trend, m15_structure, zone, sweep_pool and volume, then the confidence's center and slope."""
    for i in range(N_FEATURES):
        if not math.isfinite(out[i]):
            out[FINITE] = 0.0
            out[SCORE] = math.nan
            out[CONFIDENCE] = math.nan
            return
    out[FINITE] = 1.0
    zone = 0.6 * out[ZONE_OB] + 0.4 * out[ZONE_FVG]
    zone = zone if zone < 1.0 else 1.0  # min(1.0, zone), Python's tie and all
    volume = out[VOLUME_RATIO] - 0.5
    volume = volume if volume > 0.0 else 0.0  # max(0.0, ...)
    volume = volume if volume < 1.0 else 1.0
    score = (
        weights[0] * out[D1_BIAS]
        + weights[1] * out[H1_TREND]
        + weights[2] * out[M15_STRUCTURE]
        + weights[3] * zone
        + weights[4] * out[SWEEP_POOL]
        + weights[5] * volume
    )
    out[SCORE] = score
    out[CONFIDENCE] = 1.0 / (1.0 + math.exp(-weights[7] * (score - weights[6])))


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernel."""
    row = np.zeros(len(feat.StreamingIndicators.COLUMNS))
    feature_row(
        np.zeros(OUT_SIZE), np.ones(8), row, row, row, 1, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0, True, 1.0, 1.0,
        1.0, 1.0, 1, 0, 0, 1.0, 1.0, False, 1.0, True, True, False, 1.0, 1.0, 0, 1, 1, 0,
    )  # fmt: skip
