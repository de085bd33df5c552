"""A trigger candle's whole decision in one numba call: the sweep-then-CHOCH machine, the plan, the features, the score.

The strategy keeps, per symbol row, its pending liquidity sweeps (:data:`SWEEP_SLOTS`) and the context a decision
reads (:data:`CONTEXT_SLOTS`: the cooldown, the latest 15m structure, the previous day's candle, the 1h close and
the higher timeframes' close times) in two float64 arrays, written when they change (a sweep when the candle that
made it is settled, the context at the 15m, 1h and 1d closes), never on the signal path. A trigger candle is one
call of :func:`take_trigger`: it advances the candle's indicators and volume window and, with a sweep pending, runs
:func:`decide`, which does what the strategy once did step by step in Python:

1. the pending sweeps a close beyond their reference swing completes (a CHOCH), long first;
2. the sweeps spent, expired (older than the window) or failed (a close beyond their extreme), cleared;
3. for each candidate: the stop and target (:func:`aegis.brain.strategy.plan_trade`), the causality check
   (:func:`aegis.brain.features.check_known_by`), the feature vector, its finite flag, confluence score and
   confidence (:func:`aegis.brain.feature_kernel.feature_row`), the confidence floor, the cooldown, and for a
   signal the rule-based return estimate (:func:`aegis.brain.strategy.rule_based_return_pct`).

It writes one row of :data:`OUT_COLUMNS` per candidate and returns ``candidates | 4 * long_cleared |
8 * short_cleared | 16 * causality_error``; Python counts the outcomes and builds a :class:`Signal` from a
``SIGNAL`` row. A trigger candle's decision is thereby one call reading a few cache lines of flat arrays instead of
a few hundred Python attribute reads over objects that have left the cache since the symbol's last candle (the
brain sees 300 symbols in turn): ``docs/brain.md`` has the measurements.

Exactness: the same IEEE operations in the same order as the Python code (no fast-math); comparisons and ``min``/
``max`` written out with Python's tie and NaN behaviour; ``plan_trade``'s ``round(x, 6)`` is :func:`round6`, Python's
rounding bit for bit (the settings bound the stop at 100 % and the reward/risk at 100, far inside its range).
``tests/unit/brain/test_strategy.py`` compares every trigger of the real klines with ``plan_trade``,
:func:`aegis.brain.features.compute`, ``confluence``, ``confidence_of`` and ``rule_based_return_pct``, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from aegis.analytics.indicators_kernels import stream_update_one
from aegis.brain import features as feat
from aegis.brain.feature_kernel import CONFIDENCE, FINITE, OUT_SIZE, feature_row

# a pending sweep, per symbol row and side (index 0: the long setup, +1; index 1: the short one, -1)
SWEEP_SLOTS = (
    "active", "bar", "open_ms", "confirmed_ms", "level", "extreme", "pool", "ref_level", "ref_confirmed_ms",
    "has_zone", "zone_ob", "zone_fvg", "zone_top", "zone_bottom", "zone_formed_ms", "zone_confirmed_ms",
)  # fmt: skip
(
    ACTIVE, BAR, OPEN_MS, CONFIRMED_MS, LEVEL, EXTREME, POOL, REF_LEVEL, REF_CONFIRMED_MS,
    HAS_ZONE, ZONE_OB, ZONE_FVG, ZONE_TOP, ZONE_BOTTOM, ZONE_FORMED_MS, ZONE_CONFIRMED_MS,
) = range(len(SWEEP_SLOTS))  # fmt: skip
SWEEP_SIZE = len(SWEEP_SLOTS)

# what a decision reads besides the sweeps and the indicator rows, per symbol row (times in ms, exact in float64)
CONTEXT_SLOTS = (
    "has_last_signal", "last_signal_ms", "has_structure", "structure_direction", "structure_confirmed_ms",
    "has_day", "day_open", "day_high", "day_low", "day_close", "day_close_ms", "h1_close", "h1_close_ms",
    "m15_close_ms",
)  # fmt: skip
(
    HAS_LAST_SIGNAL, LAST_SIGNAL_MS, HAS_STRUCTURE, STRUCTURE_DIRECTION, STRUCTURE_CONFIRMED_MS,
    HAS_DAY, DAY_OPEN, DAY_HIGH, DAY_LOW, DAY_CLOSE, DAY_CLOSE_MS, H1_CLOSE, H1_CLOSE_MS, M15_CLOSE_MS,
) = range(len(CONTEXT_SLOTS))  # fmt: skip
CONTEXT_SIZE = len(CONTEXT_SLOTS)


def empty_context() -> list[float]:
    """A new symbol's context: no signal, structure, day or 1h close yet (close times -1, as the series' own)."""
    row = [0.0] * CONTEXT_SIZE
    row[DAY_CLOSE_MS] = row[H1_CLOSE_MS] = row[M15_CLOSE_MS] = -1.0
    row[H1_CLOSE] = math.nan
    return row


# the settings the kernel applies
PARAM_SLOTS = ("sweep_window_bars", "sl_atr_buffer", "min_sl_pct", "max_sl_pct", "reward_risk", "min_confidence",
               "cooldown_ms", "round_trip_fee_pct")  # fmt: skip
(
    WINDOW, SL_ATR_BUFFER, MIN_SL_PCT, MAX_SL_PCT, REWARD_RISK, MIN_CONFIDENCE, COOLDOWN_MS, FEE_PCT,
) = range(len(PARAM_SLOTS))  # fmt: skip

# one candidate per row of ``out``
SIDE, OUTCOME, SL, TP, STOP, RULE_RETURN, F0 = range(7)
"""``SL``, ``TP``, ``STOP``: the plan (:func:`aegis.brain.strategy.plan_trade`'s, rounded as it rounds);
``RULE_RETURN``: :func:`aegis.brain.strategy.rule_based_return_pct` of a signal; ``F0``: where the feature kernel's
output (the vector, then its finite flag, score and confidence) starts."""
OUT_COLUMNS = F0 + OUT_SIZE
SIGNAL, WARMING_UP, STOP_TOO_FAR, NOT_FINITE, LOW_CONFIDENCE, COOLDOWN = range(6)
"""Outcomes of a candidate: a signal, or which check stopped it (in the order they are made)."""

CAUSALITY_ERRORS = (
    "",
    "the last trigger candle must close at as_of_ms",
    "a daily candle closes after as_of_ms",
    "15m indicators are from after as_of_ms",
    "1h indicators are from after as_of_ms",
    "the sweep is from the future",
    "the zone was not known at the sweep",
    "the 15m structure is from the future",
)
"""Messages of :func:`aegis.brain.features.check_known_by`, by the error code :func:`decide` returns."""


_SPLIT = 134_217_729.0
"""2**27 + 1: Veltkamp's splitting constant (a float64 into two 26-bit halves whose products are exact)."""
ROUND6_LIMIT = 2.0**52 / 1e6
"""Below this magnitude ``x * 10**6`` is below 2**52, where :func:`round6` is exact."""


@njit(cache=True)
def round6(x: float) -> float:
    """Python's ``round(x, 6)``, bit for bit, for finite ``|x| < ROUND6_LIMIT`` (NaN otherwise).

    Python rounds the exact binary value of ``x`` to 6 decimals, ties to even (David Gay's correctly rounded
    ``dtoa``), and reads the digits back (``strtod``). Here: ``x * 10**6`` exactly, as the product ``p`` plus its
    rounding error ``err`` (Dekker's product, no FMA needed); ``p`` rounded half to even, moved by one where ``p``
    was an exact half and ``err`` says the true product lies beyond it; the integer ``q`` divided by ``10**6``,
    which IEEE division rounds correctly, as ``strtod`` does (``q`` and ``10**6`` are exact). A zero keeps the
    sign of ``x``, as Python's does. ``tests/unit/brain/test_decision_kernel.py`` compares it with ``round`` on
    millions of values, decimal and binary ties included. numba's own ``round(x, 6)`` scales in floating point and
    differs on some ties; Python's, called on the signal path, cost ~13 µs there (its ``dtoa`` code out of cache).
    """
    if not math.isfinite(x) or abs(x) >= ROUND6_LIMIT:
        return math.nan
    p = x * 1e6
    c = _SPLIT * x
    x_hi = c - (c - x)
    x_lo = x - x_hi
    c = _SPLIT * 1e6
    y_hi = c - (c - 1e6)
    y_lo = 1e6 - y_hi
    err = ((x_hi * y_hi - p) + x_hi * y_lo + x_lo * y_hi) + x_lo * y_lo
    q = np.rint(p)
    half = p - q  # exact: |p - q| <= 0.5 and q is p's nearest integer
    if half == 0.5 and err > 0.0:
        q += 1.0
    elif half == -0.5 and err < 0.0:
        q -= 1.0
    if q == 0.0:
        return math.copysign(0.0, x)
    return q / 1e6


_pairwise_block = njit(cache=True)(feat._pairwise_block)  # NumPy's summation, one definition (features.py)


@njit(cache=True)
def _pairwise_sum(a, start: int, n: int) -> float:  # type: ignore[no-untyped-def]
    """:func:`aegis.brain.features._pairwise_sum` (NumPy's float64 sum) with an explicit stack instead of recursion:
    numba's cache cannot hold a recursive function (loaded from the cache, it crashed)."""
    if n <= 128:  # one block, as NumPy sums it (the volume window is far shorter): no stack to allocate
        return _pairwise_block(a, start, n)
    starts = np.empty(64, dtype=np.int64)
    sizes = np.empty(64, dtype=np.int64)
    phase = np.zeros(64, dtype=np.int64)  # 0: not split yet, 1: summing the left half, 2: the right half
    left = np.empty(64)
    top = 0
    starts[0], sizes[0], phase[0] = start, n, 0
    value = 0.0
    returning = False
    while top >= 0:
        if returning:
            if phase[top] == 1:  # the left half is done: now the right one
                left[top] = value
                phase[top] = 2
                half = sizes[top] // 2
                half -= half % 8
                top += 1
                starts[top], sizes[top], phase[top] = starts[top - 1] + half, sizes[top - 1] - half, 0
                returning = False
            else:  # both halves done: left + right, as the recursion adds them
                value = left[top] + value
                top -= 1
            continue
        if sizes[top] <= 128:
            value = _pairwise_block(a, starts[top], sizes[top])
            top -= 1
            returning = True
            continue
        half = sizes[top] // 2
        half -= half % 8
        phase[top] = 1
        top += 1
        starts[top], sizes[top], phase[top] = starts[top - 1], half, 0
    return value


@njit(cache=True)
def decide(out, sweeps, context, params, weights, t_ind, m15, h1_ind, volumes, row, bar, open_ms, close_ms, width, o, c,
           volume, taker):  # type: ignore[no-untyped-def]  # fmt: skip
    """Decide trigger candle ``bar`` of symbol ``row`` (see the module doc); ``volumes``: the trigger series' recent
    volumes, oldest first, this candle's last."""
    long_sweep, short_sweep = sweeps[row, 0], sweeps[row, 1]
    # 1. a CHOCH completes a pending sweep
    long_candidate = long_sweep[ACTIVE] != 0.0 and bar > long_sweep[BAR] and (c - long_sweep[REF_LEVEL]) * 1.0 > 0
    short_candidate = short_sweep[ACTIVE] != 0.0 and bar > short_sweep[BAR] and (c - short_sweep[REF_LEVEL]) * -1.0 > 0
    code = 0
    for k in range(2):  # 2. a sweep is spent, expires or fails
        sw = long_sweep if k == 0 else short_sweep
        side = 1.0 if k == 0 else -1.0
        candidate = long_candidate if k == 0 else short_candidate
        if sw[ACTIVE] != 0.0 and (candidate or bar - sw[BAR] > params[WINDOW] or (c - sw[EXTREME]) * side < 0):
            sw[ACTIVE] = 0.0
            code |= 4 << k
    n = 0
    for k in range(2):  # 3. the candidates, long first
        if long_candidate if k == 0 else short_candidate:
            candle = (bar, open_ms, close_ms, width, o, c, volume, taker)
            error = _evaluate(out[n], sweeps[row, k], context[row], params, weights, (t_ind, m15, h1_ind), volumes,
                              1 - 2 * k, candle)  # fmt: skip
            n += 1
            if error:
                return code | n | (error << 4)
    return code | n


@njit(cache=True)
def push_volume(window: np.ndarray, window_n: np.ndarray, row: int, volume: float) -> np.ndarray:
    """Add ``volume`` to row ``row``'s window; return the newest ``keep`` volumes (fewer at first), oldest first.

    ``window[row]`` holds a ring of ``keep = window.shape[1] // 2`` volumes twice over, so the newest ``keep`` are
    always one contiguous slice (a view: no copy, no shifting); ``window_n[row]`` counts the volumes taken.
    """
    keep = window.shape[1] // 2
    taken = window_n[row]
    at = taken % keep
    window[row, at] = volume
    window[row, at + keep] = volume
    taken += 1
    window_n[row] = taken
    start = taken % keep if taken >= keep else 0
    return window[row, start : start + min(taken, keep)]


NOT_UPDATED = -1
"""What :func:`take_trigger` returns when the candle's high, low or close is not finite (nothing moved)."""


@njit(cache=True)
def take_trigger(ind_state, ind_ring, ind_bars, ind_positions, ind_ip, ind_fp, ind_values, local, window, window_n, out,
                 sweeps, context, params, weights, m15, h1_ind, row, bar, open_ms, close_ms, width, o, h, lo, c, volume,
                 taker):  # type: ignore[no-untyped-def]  # fmt: skip
    """A closed trigger candle of symbol ``row``, all of it that comes before the signals, in one call.

    1. its trigger-timeframe indicators (``ind_*``: the arrays of the symbol's
       :class:`~aegis.analytics.indicators.StreamingIndicators` block, in the order of its ``kernel_args``;
       ``local``: the symbol's row in the block) advance by the candle, as
       :func:`~aegis.analytics.indicators_kernels.stream_update_one` does them;
    2. its volume joins the symbol's volume window (``window[row]``: two copies of a ring of ``keep`` volumes, so
       the newest ``keep``, oldest first, are always one contiguous slice; ``window_n[row]``: volumes taken);
    3. with a pending sweep, :func:`decide` over the window, the code it returns (0 without one).

    :data:`NOT_UPDATED` when high, low or close is not finite: nothing moved.
    """
    if not stream_update_one(ind_state, ind_ring, ind_bars, ind_positions, ind_ip, ind_fp, local, h, lo, c, ind_values):
        return NOT_UPDATED
    volumes = push_volume(window, window_n, row, volume)
    if sweeps[row, 0, ACTIVE] == 0.0 and sweeps[row, 1, ACTIVE] == 0.0:
        return 0
    return decide(
        out, sweeps, context, params, weights, ind_values[local], m15, h1_ind, volumes, row, bar, open_ms, close_ms,
        width, o, c, volume, taker,
    )  # fmt: skip


@njit(cache=True)
def _evaluate(r, sw, ctx, params, weights, indicators, volumes, side, candle):  # type: ignore[no-untyped-def]
    """One candidate (the pending sweep ``sw`` of ``side``) into row ``r``; return a causality error code (0: none).

    ``indicators``: the trigger, 15m and 1h indicator rows; ``candle``: the trigger candle's bar index, open and
    close times, width, open, close, volume and taker-buy volume; the rest as :func:`decide` has them.
    """
    t_ind, m15, h1_ind = indicators
    bar, open_ms, t, width, o, c, volume, taker = candle
    s = float(side)
    r[SIDE] = s
    # the plan (plan_trade, but for the final rounding)
    anchor = sw[EXTREME]
    if sw[HAS_ZONE] != 0.0:
        if side > 0:
            anchor = sw[ZONE_BOTTOM] if sw[ZONE_BOTTOM] < anchor else anchor  # min(anchor, bottom)
        else:
            anchor = sw[ZONE_TOP] if sw[ZONE_TOP] > anchor else anchor  # max(anchor, top)
    stop = anchor - s * params[SL_ATR_BUFFER] * t_ind[feat._ATR]
    sl_pct = (c - stop) * s / c * 100.0
    r[STOP] = stop
    if not math.isfinite(sl_pct):
        r[OUTCOME] = WARMING_UP
        return 0
    if sl_pct > params[MAX_SL_PCT]:
        r[OUTCOME] = STOP_TOO_FAR
        return 0
    sl = round6(params[MIN_SL_PCT] if params[MIN_SL_PCT] > sl_pct else sl_pct)  # round(max(sl_pct, min), 6)
    tp = round6(params[REWARD_RISK] * sl)
    r[SL] = sl
    r[TP] = tp
    # the causality check (check_known_by)
    has_day = ctx[HAS_DAY] != 0.0
    has_structure = ctx[HAS_STRUCTURE] != 0.0
    if open_ms + width - 1 != t:
        return 1
    if (ctx[DAY_CLOSE_MS] if has_day else -1.0) > t:
        return 2
    if ctx[M15_CLOSE_MS] > t:
        return 3
    if ctx[H1_CLOSE_MS] > t:
        return 4
    if sw[CONFIRMED_MS] > t or sw[REF_CONFIRMED_MS] > t:
        return 5
    if sw[HAS_ZONE] != 0.0 and sw[ZONE_CONFIRMED_MS] > sw[CONFIRMED_MS]:
        return 6
    if has_structure and ctx[STRUCTURE_CONFIRMED_MS] > t:
        return 7
    # the features, finite flag, score and confidence
    n = len(volumes)
    day_open = ctx[DAY_OPEN] if has_day else math.nan
    day_high = ctx[DAY_HIGH] if has_day else math.nan
    day_low = ctx[DAY_LOW] if has_day else math.nan
    day_close = ctx[DAY_CLOSE] if has_day else math.nan
    structure_direction = np.int64(ctx[STRUCTURE_DIRECTION]) if has_structure else np.int64(0)
    mean_volume = _pairwise_sum(volumes, 0, n) / n
    f = r[F0:]
    feature_row(
        f, weights, t_ind, m15, h1_ind, side, c, sl, tp, o, c, volume, taker,
        mean_volume, ctx[H1_CLOSE], has_day, day_open, day_high, day_low, day_close, side,
        np.int64(sw[OPEN_MS]), np.int64(sw[BAR]), sw[LEVEL], sw[EXTREME], sw[POOL] != 0.0, sw[REF_LEVEL],
        sw[HAS_ZONE] != 0.0, sw[ZONE_OB] != 0.0, sw[ZONE_FVG] != 0.0, sw[ZONE_TOP], sw[ZONE_BOTTOM],
        np.int64(sw[ZONE_FORMED_MS]), structure_direction, bar, t,
    )  # fmt: skip
    if f[FINITE] != 1.0:
        r[OUTCOME] = NOT_FINITE
    elif f[CONFIDENCE] < params[MIN_CONFIDENCE]:
        r[OUTCOME] = LOW_CONFIDENCE
    elif ctx[HAS_LAST_SIGNAL] != 0.0 and t - np.int64(ctx[LAST_SIGNAL_MS]) < params[COOLDOWN_MS]:
        r[OUTCOME] = COOLDOWN
    else:
        r[OUTCOME] = SIGNAL
        confidence = f[CONFIDENCE]
        r[RULE_RETURN] = confidence * tp - (1.0 - confidence) * sl - params[FEE_PCT]
    return 0


def warm_up() -> None:
    """Compile (or load from numba's cache) :func:`take_trigger`, with :func:`decide` inside it, for the argument
    types the strategy passes (the strategy calls nothing else of this module from Python)."""
    row = np.zeros(len(feat.StreamingIndicators.COLUMNS))
    sweeps = np.zeros((1, 2, SWEEP_SIZE))
    sweeps[0, :, ACTIVE] = 1.0
    sweeps[0, 1, BAR] = -1.0
    context = np.array([empty_context()])
    indicators = feat.StreamingIndicators(1)
    take_trigger(
        *indicators.kernel_args(), 0, np.zeros((1, 4)), np.zeros(1, dtype=np.int64), np.zeros((2, OUT_COLUMNS)),
        sweeps, context, np.zeros(len(PARAM_SLOTS)), np.ones(8), row, row, 0, 0, 0, 59_999, 60_000, 1.0, 1.0, 1.0, 1.0,
        1.0, 0.5,
    )  # fmt: skip
