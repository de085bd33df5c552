"""The feature vector of a trade idea, computed from what was known when the idea was made.

:func:`compute` is a pure function of one :class:`FeatureInputs` — the state at time ``t`` (``as_of_ms``):

* closed candles whose close time is at or before ``t`` (:class:`CandleWindow`),
* streaming indicator values after the last of those candles (:class:`IndicatorSnapshot`),
* Smart Money Concepts facts confirmed by ``t`` (:class:`Sweep`, :class:`Zone`, :class:`Structure`), each
  carrying the time it became known (``confirmed_ms``),
* the trade plan decided from the same inputs (side, entry, stop and target distances).

Nothing else goes in: no clock, no forming candle, no later bar. :meth:`FeatureInputs.check_causal` asserts
those times, so a leakage test (and the strategy itself) can prove it.

The schema is versioned: :data:`FEATURE_SCHEMA_VERSION` names the ordered tuple :data:`FEATURES` of
``(name, unit, meaning)``. A model only accepts vectors of its own schema; changing a feature's definition, its
order or an indicator period it depends on makes a new version. Features are raw (the trainer standardises them
with statistics stored with the model) and finite once every input has warmed up; during warm-up some are NaN
and the strategy emits nothing. Features marked *signed* are multiplied by the side (+1 long, -1 short), so a
positive value always favours the trade and one model serves both directions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from aegis.analytics.indicators import StreamingIndicators

FEATURE_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    unit: str
    meaning: str


FEATURES: tuple[Feature, ...] = (
    Feature("side", "sign", "+1 long, -1 short."),
    Feature("sl_pct", "%", "Stop-loss distance from the entry."),
    Feature("tp_pct", "%", "Take-profit distance from the entry."),
    Feature("t_atr_pct", "%", "ATR(14) of the trigger timeframe / entry."),
    Feature("t_rsi", "0-100", "RSI(14) of the trigger timeframe."),
    Feature("t_adx", "0-100", "ADX(14) of the trigger timeframe."),
    Feature("t_macd_hist_pct", "%, signed", "MACD(12,26,9) histogram of the trigger timeframe / entry."),
    Feature("t_bb_position", "fraction", "Entry within the trigger Bollinger bands (20, 2): 0 lower, 1 upper."),
    Feature("t_bb_width_pct", "%", "Trigger Bollinger band width / middle band."),
    Feature("t_volume_ratio", "ratio", "Volume of the trigger candle / mean volume of the last N trigger candles."),
    Feature("t_taker_ratio", "fraction, signed", "Taker volume on the trade's side / volume, trigger candle."),
    Feature("t_body_atr", "ATRs, signed", "Body (close - open) of the trigger (CHOCH) candle in trigger ATRs."),
    Feature("sweep_depth_atr", "ATRs", "How far the sweep went beyond the swept level, in trigger ATRs."),
    Feature("sweep_age_bars", "candles", "Trigger candles from the sweep to the CHOCH."),
    Feature("sweep_pool", "0/1", "1 when the sweep took a pool of two or more equal highs or lows."),
    Feature("choch_break_atr", "ATRs, signed", "Close of the CHOCH candle beyond the broken swing, in trigger ATRs."),
    Feature("m15_structure", "sign, signed", "Direction of the latest 15m BOS/CHOCH (0 when none yet)."),
    Feature("m15_rsi", "0-100", "RSI(14) on 15m."),
    Feature("m15_atr_pct", "%", "ATR(14) on 15m / entry."),
    Feature("zone_ob", "0/1", "1 when the sweep reached a 15m order block of the trade's direction."),
    Feature("zone_fvg", "0/1", "1 when the sweep reached a 15m fair value gap of the trade's direction."),
    Feature("zone_height_atr", "15m ATRs", "Height of the zone the stop is placed against (0 without a zone)."),
    Feature("zone_age_bars", "15m candles", "Age of that zone at the sweep (0 without a zone)."),
    Feature("zone_distance_atr", "15m ATRs, signed", "Entry beyond the zone's middle (0 without a zone)."),
    Feature("h1_trend", "-1..1, signed", "(sign(close - EMA20) + sign(MACD line)) / 2 on 1h."),
    Feature("h1_ema_distance_pct", "%, signed", "1h close beyond its EMA(20), in percent of the EMA."),
    Feature("h1_rsi", "0-100", "RSI(14) on 1h."),
    Feature("h1_adx", "0-100", "ADX(14) on 1h."),
    Feature("d1_bias", "-1..1, signed", "(sign(entry - previous day's middle) + sign(previous day's body)) / 2."),
    Feature("d1_range_position", "fraction", "Entry within the previous day's range: 0 its low, 1 its high."),
    Feature("d1_prev_return_pct", "%, signed", "Previous day's close / open - 1."),
    Feature("hour_sin", "-1..1", "sin(2 pi hour / 24) of the signal time (UTC)."),
    Feature("hour_cos", "-1..1", "cos(2 pi hour / 24) of the signal time (UTC)."),
)
"""Version 1 of the feature schema, in vector order."""

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: Mapping[str, int] = MappingProxyType({name: i for i, name in enumerate(FEATURE_NAMES)})
SCHEMAS: Mapping[int, tuple[str, ...]] = MappingProxyType({FEATURE_SCHEMA_VERSION: FEATURE_NAMES})
"""Feature names of every schema version this code knows (stored vectors carry only their version)."""

_COLUMN = {name: i for i, name in enumerate(StreamingIndicators.COLUMNS)}
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000


def names_of(version: int) -> tuple[str, ...]:
    """Return the feature names of schema ``version``; raise KeyError for a version this code does not know."""
    return SCHEMAS[version]


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """Feature values in the order of schema ``schema_version`` (what a predictor receives)."""

    schema_version: int
    values: tuple[float, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return names_of(self.schema_version)

    def array(self) -> np.ndarray:
        return np.array(self.values, dtype=np.float64)

    def __getitem__(self, name: str) -> float:
        return self.values[self.names.index(name)]


# ------------------------------------------------------------------------------------------------ the inputs


def _frozen(values: np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=np.float64 if values.dtype.kind == "f" else np.int64)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True)
class CandleWindow:
    """The last closed candles of one timeframe, oldest first (read-only arrays of equal length)."""

    timeframe: str
    width_ms: int
    open_time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_volume: np.ndarray

    @classmethod
    def of(cls, timeframe: str, width_ms: int, rows: list[tuple[int, float, float, float, float, float, float]]) -> Any:
        """Build from ``(open_time_ms, open, high, low, close, volume, taker_buy_volume)`` rows, oldest first."""
        # one conversion for the whole window (open times are whole ms, exact in float64), then read-only rows
        table = np.array(rows, dtype=np.float64).T.copy() if rows else np.zeros((7, 0))
        times = table[0].astype(np.int64)
        times.flags.writeable = False
        table.flags.writeable = False
        return cls(timeframe, width_ms, times, *table[1:])

    def __len__(self) -> int:
        return int(self.open_time_ms.shape[0])

    @property
    def last_close_time_ms(self) -> int:
        """Close time (inclusive) of the newest candle; -1 when empty."""
        return int(self.open_time_ms[-1]) + self.width_ms - 1 if len(self) else -1


@dataclass(frozen=True, slots=True)
class IndicatorSnapshot:
    """The streaming indicator values of one timeframe after the candle opening at ``candle_open_time_ms``."""

    timeframe: str
    candle_open_time_ms: int
    close_time_ms: int
    close: float
    """Close price of that candle."""
    values: tuple[float, ...]
    """In the order of ``StreamingIndicators.COLUMNS``; NaN while warming up."""

    def __getitem__(self, name: str) -> float:
        return self.values[_COLUMN[name]]


@dataclass(frozen=True, slots=True)
class Zone:
    """A 15m order block and/or fair value gap the sweep reached (the stop is placed against ``top``/``bottom``)."""

    direction: int
    order_block: bool
    fair_value_gap: bool
    top: float
    bottom: float
    formed_time_ms: int
    """Open time of the candle that formed the zone."""
    confirmed_ms: int
    """Close time of the 15m candle whose close reported the zone."""


@dataclass(frozen=True, slots=True)
class Structure:
    """The latest 15m break of structure or change of character."""

    direction: int
    kind: str
    level: float
    confirmed_ms: int
    """Close time of the 15m candle that broke the level."""


@dataclass(frozen=True, slots=True)
class Sweep:
    """A liquidity sweep on the trigger timeframe: price ran past a swing (or a pool) and closed back inside."""

    direction: int
    """+1: sell-side liquidity (lows) taken, a long setup; -1: buy-side (highs) taken, a short setup."""
    open_time_ms: int
    confirmed_ms: int
    """Close time of the sweep candle."""
    bar: int
    level: float
    extreme: float
    pool: bool
    ref_level: float
    """The swing on the other side that a CHOCH must close beyond."""
    ref_confirmed_ms: int
    zone: Zone | None


@dataclass(frozen=True, slots=True)
class FeatureInputs:
    """Everything :func:`compute` may read: the state of one symbol at ``as_of_ms``."""

    symbol: str
    as_of_ms: int
    """Close time (inclusive) of the trigger candle: the signal time."""
    side: int
    entry_price: float
    sl_pct: float
    tp_pct: float
    trigger: CandleWindow
    """Closed trigger candles, the last one being the CHOCH candle."""
    daily: CandleWindow
    """Closed 1d candles (the last one is the previous day)."""
    indicators: Mapping[str, IndicatorSnapshot]
    """By timeframe name; must hold the trigger timeframe, "15m" and "1h"."""
    sweep: Sweep
    structure: Structure | None
    choch_bar: int

    def check_causal(self) -> None:
        """Raise AssertionError when any input became known after ``as_of_ms``."""
        check_known_by(
            self.as_of_ms,
            trigger_close_ms=self.trigger.last_close_time_ms,
            daily_close_ms=self.daily.last_close_time_ms,
            indicator_close_ms={tf: snapshot.close_time_ms for tf, snapshot in self.indicators.items()},
            sweep=self.sweep,
            structure=self.structure,
        )


def check_known_by(
    t: int,
    *,
    trigger_close_ms: int,
    daily_close_ms: int,
    indicator_close_ms: Mapping[str, int],
    sweep: Sweep,
    structure: Structure | None,
) -> None:
    """Raise AssertionError when an input of a feature vector at ``t`` became known after ``t``.

    :meth:`FeatureInputs.check_causal` on extracted times; the strategy's fast path calls it with the times its
    streaming state holds, so every signal is checked whether or not its :class:`FeatureInputs` are built.
    """
    assert trigger_close_ms == t, "the last trigger candle must close at as_of_ms"
    assert daily_close_ms <= t, "a daily candle closes after as_of_ms"
    for timeframe, close_ms in indicator_close_ms.items():
        assert close_ms <= t, f"{timeframe} indicators are from after as_of_ms"
    assert sweep.confirmed_ms <= t and sweep.ref_confirmed_ms <= t, "the sweep is from the future"
    if sweep.zone is not None:
        assert sweep.zone.confirmed_ms <= sweep.confirmed_ms, "the zone was not known at the sweep"
    if structure is not None:
        assert structure.confirmed_ms <= t, "the 15m structure is from the future"


# ---------------------------------------------------------------------------------------------- the features


def _sign(x: float) -> float:
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0 if x == 0 else math.nan


def _ratio(num: float, den: float, default: float) -> float:
    """num / den, ``default`` when den is 0 (a flat market), NaN when either is NaN."""
    if math.isnan(num) or math.isnan(den):
        return math.nan
    return default if den == 0 else num / den


def compute(inputs: FeatureInputs) -> np.ndarray:
    """Return the feature vector of schema :data:`FEATURE_SCHEMA_VERSION` (float64, NaN where not warmed up)."""
    trig = inputs.trigger
    last = len(trig) - 1
    window = trig.volume
    daily = inputs.daily
    values = feature_values(
        side=inputs.side,
        entry=inputs.entry_price,
        sl_pct=inputs.sl_pct,
        tp_pct=inputs.tp_pct,
        trigger_indicators=inputs.indicators[trig.timeframe].values,
        m15_indicators=inputs.indicators["15m"].values,
        h1=inputs.indicators["1h"],
        candle=(
            float(trig.open[last]),
            float(trig.close[last]),
            float(trig.volume[last]),
            float(trig.taker_buy_volume[last]),
        ),
        mean_volume=float(window.mean()) if len(window) else math.nan,
        day=(
            (float(daily.open[-1]), float(daily.high[-1]), float(daily.low[-1]), float(daily.close[-1]))
            if len(daily)
            else None
        ),
        sweep=inputs.sweep,
        structure=inputs.structure,
        choch_bar=inputs.choch_bar,
        as_of_ms=inputs.as_of_ms,
    )
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


def numpy_mean(values: Sequence[float]) -> float:
    """Return ``float(np.mean(np.array(values, dtype=np.float64)))`` bit for bit, in plain Python (NaN when empty).

    NumPy sums float64 pairwise: below 8 values one by one from -0.0; up to 128 in 8 interleaved accumulators
    combined as ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`` and the remainder added one by one; above
    that, two halves (the first a multiple of 8 long) summed recursively. The strategy's fast path uses it for
    ``t_volume_ratio`` so its vectors equal :func:`compute`'s exactly (a test checks it against NumPy).
    """
    n = len(values)
    return _pairwise_sum(values, 0, n) / n if n else math.nan


def _pairwise_sum(a: Sequence[float], start: int, n: int) -> float:
    if n <= 128:
        return _pairwise_block(a, start, n)
    half = n // 2
    half -= half % 8
    return _pairwise_sum(a, start, half) + _pairwise_sum(a, start + half, n - half)


def _pairwise_block(a: Sequence[float], start: int, n: int) -> float:
    """NumPy's sum of ``a[start:start + n]`` for ``n <= 128`` (also compiled by the strategy's decision kernel)."""
    if n < 8:
        total = -0.0
        for i in range(start, start + n):
            total += a[i]
        return total
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for j in range(start + i, start + n):
        total += a[j]
    return total


_ATR, _RSI, _ADX = _COLUMN["atr"], _COLUMN["rsi"], _COLUMN["adx"]
_EMA, _MACD, _MACD_HIST = _COLUMN["ema"], _COLUMN["macd"], _COLUMN["macd_hist"]
_BB_UPPER, _BB_LOWER, _BB_MIDDLE = _COLUMN["bb_upper"], _COLUMN["bb_lower"], _COLUMN["bb_middle"]


def feature_values(
    *,
    side: int,
    entry: float,
    sl_pct: float,
    tp_pct: float,
    trigger_indicators: tuple[float, ...],
    m15_indicators: tuple[float, ...],
    h1: IndicatorSnapshot | tuple[float, tuple[float, ...]],
    candle: tuple[float, float, float, float],
    mean_volume: float,
    day: tuple[float, float, float, float] | None,
    sweep: Sweep,
    structure: Structure | None,
    choch_bar: int,
    as_of_ms: int,
) -> tuple[float, ...]:
    """The features from scalars: what :func:`compute` reads out of its :class:`FeatureInputs`, already extracted.

    ``*_indicators`` are indicator rows in ``StreamingIndicators.COLUMNS`` order, ``h1`` the 1h snapshot (or its
    ``(close, values)``), ``candle`` the trigger (CHOCH) candle's ``(open, close, volume, taker_buy_volume)``,
    ``mean_volume`` the mean volume of the trigger window, ``day`` the previous day's ``(open, high, low, close)``
    (None without one). :func:`compute` is this function applied to its inputs, so both give the same vector; the
    strategy calls it directly with the values its streaming state already holds (no arrays built per signal).
    """
    s = float(side)
    t_ind = trigger_indicators
    m15 = m15_indicators
    h1_close, h1_ind = (h1.close, h1.values) if isinstance(h1, IndicatorSnapshot) else h1
    zone = sweep.zone

    t_atr = t_ind[_ATR]
    o, c, volume, taker = candle
    taker_share = _ratio(taker, volume, 0.5)

    upper, lower, middle = t_ind[_BB_UPPER], t_ind[_BB_LOWER], t_ind[_BB_MIDDLE]
    m15_atr = m15[_ATR]

    if zone is not None:
        zone_height = _ratio(zone.top - zone.bottom, m15_atr, 0.0)
        zone_age = (sweep.open_time_ms - zone.formed_time_ms) / 900_000
        zone_distance = _ratio((entry - (zone.top + zone.bottom) / 2) * s, m15_atr, 0.0)
    else:
        zone_height = zone_age = zone_distance = 0.0

    h1_ema = h1_ind[_EMA]
    h1_trend = (_sign(h1_close - h1_ema) + _sign(h1_ind[_MACD])) / 2 * s

    if day is not None:
        d_open, d_high, d_low, d_close = day
        d1_bias = (_sign(entry - (d_high + d_low) / 2) + _sign(d_close - d_open)) / 2 * s
        d1_position = _ratio(entry - d_low, d_high - d_low, 0.5)
        d1_return = (d_close / d_open - 1.0) * 100.0 * s
    else:
        d1_bias = d1_position = d1_return = math.nan

    hour = ((as_of_ms + 1) % _DAY_MS) / _HOUR_MS
    structure_sign = 0.0 if structure is None else float(structure.direction) * s
    return (
        s,
        sl_pct,
        tp_pct,
        t_atr / entry * 100.0,
        t_ind[_RSI],
        t_ind[_ADX],
        t_ind[_MACD_HIST] / entry * 100.0 * s,
        _ratio(entry - lower, upper - lower, 0.5),
        _ratio(upper - lower, middle, 0.0) * 100.0,
        _ratio(volume, mean_volume, 1.0),
        taker_share if s > 0 else 1.0 - taker_share,
        _ratio((c - o) * s, t_atr, 0.0),
        _ratio((sweep.level - sweep.extreme) * sweep.direction, t_atr, 0.0),
        float(choch_bar - sweep.bar),
        1.0 if sweep.pool else 0.0,
        _ratio((c - sweep.ref_level) * s, t_atr, 0.0),
        structure_sign,
        m15[_RSI],
        m15_atr / entry * 100.0,
        1.0 if zone is not None and zone.order_block else 0.0,
        1.0 if zone is not None and zone.fair_value_gap else 0.0,
        zone_height,
        zone_age,
        zone_distance,
        h1_trend,
        _ratio(h1_close - h1_ema, h1_ema, 0.0) * 100.0 * s,
        h1_ind[_RSI],
        h1_ind[_ADX],
        d1_bias,
        d1_position,
        d1_return,
        math.sin(2 * math.pi * hour / 24),
        math.cos(2 * math.pi * hour / 24),
    )
