"""Numba kernel behind :class:`aegis.analytics.smc_compiled.CompiledSMC`: one ``StreamingSMC.update`` per call.

The whole state of a detector lives in one flat int64 array ``state``, read as ``ints`` (itself) and as ``floats``
(its float64 view, the same memory): every slot is either an int or a float, never both.

* a header of scalars (``H_*`` int slots, then ``F_*`` float slots);
* a region table (``H_REGIONS``): for each variable-size collection the offset of its int slots, of its float
  slots, its capacity (rows) and its row count. A row has ``STRIDE_I[r]`` ints and ``STRIDE_F[r]`` floats (an
  event row holds its four floats in its last four int slots, so that one ``struct`` read gives the whole event).

Each helper below mirrors the method of :class:`aegis.analytics.smc_stream.StreamingSMC` with the same name and
the same comparisons in the same order (so float results, ties and event order are identical). The differences are
only in the representation:

* candles: one row per stored bar (bar ``j`` at row ``j - base``), with an int of flags per bar that replaces the
  Python detector's ``_block_keys`` set (bit 1: a bullish block on that candle, bit 2: a bearish one) and its
  ``_crossed`` set (bit 4: the swing on that candle has formed its block). Both sets only ever hold bars at or
  after ``base`` and are trimmed exactly with the candles, so the flags are the same sets.
* bearish gaps are stored in descending (bottom, index) order, so that the mitigated ones are a suffix of the
  storage on both sides (the Python list is ascending and loses a prefix): the same set, and the mitigation events
  are sorted by candle index as the Python detector does.
* the header keeps copies of what every candle reads (the newest two swings, the highest bullish gap top and the
  lowest bearish gap bottom), so that a candle that changes nothing touches few cache lines; the window maximum
  of the swing test is a scan that stops at the first higher high (the same answer, usually a few steps).
* a sorted insertion scans from the end (a new gap lands at the end: the ones it would precede were mitigated
  by the same candle); the position is the one ``insort`` gives.

Every helper is inlined into :func:`smc_update` (``inline="always"``): no call boundaries, no reference counting
of the state array inside an update.

:func:`smc_update` first checks that every collection can take the worst case of one update; if one cannot, it
writes the capacities it needs into the ``H_NEED`` slots and returns -1 without changing any state, so the caller
can grow the arrays and call again; a NaN or infinite value returns -2, also without changing anything. Otherwise
it returns the number of events written into the event region.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# int header
H_T = 0  # candles seen
H_BASE = 1  # bar of the oldest stored candle
H_NEXT_TRIM = 2
H_HORIZON = 3  # -1: unbounded
H_LEN = 4  # swing_length
H_CLOSE_BREAK = 5
H_CLOSE_MIT = 6
H_F32 = 7
H_HAS_BAND = 8
H_LAST_MARK = 9
H_POOLS_DROP = 10  # BIG stands for the Python detector's math.inf
H_SWING_1 = 11  # index, high_low of the newest swing (-1, 0 if none): copies of the swing region's last rows,
H_SWING_2 = 13  # and of the one before, read at every candle without touching that region
H_REGIONS = 16  # 4 slots per region: offset in ints, offset in floats, capacity, count
N_REGIONS = 10
HEADER_I = H_REGIONS + 4 * N_REGIONS

# float header (read through the float64 view of the same array, right after the int header)
F_MAX_HIGH = HEADER_I
F_MIN_LOW = HEADER_I + 1
F_RANGE_PCT = HEADER_I + 2
F_BAND = HEADER_I + 3
F_OB = HEADER_I + 4  # 4 slots: StreamingSMC._ob_limits
F_POOL_UP = HEADER_I + 8
F_POOL_DOWN = HEADER_I + 9
F_SWING_1 = HEADER_I + 10  # the newest swing's level
F_SWING_2 = HEADER_I + 11
F_BULL_TOP = HEADER_I + 12  # top of the last bullish gap (the highest), -inf if none: mitigated at or below it
F_BEAR_BOTTOM = HEADER_I + 13  # bottom of the last bearish gap (the lowest), +inf if none
HEADER_F = HEADER_I + 14
H_NEED = HEADER_F  # rows each region needs, written when the kernel asks for room (ints, after the floats)
HEADER = H_NEED + N_REGIONS  # the regions start here

# regions
R_CANDLE = 0  # ints: flags; floats: open, high, low, close, volume
R_SWING = 1  # ints: index, high_low; floats: level
R_BULL = 2  # ints: index; floats: top, bottom (ascending by (top, index))
R_BEAR = 3  # ints: index; floats: bottom, top (descending by (bottom, index))
R_PENDING = 4  # ints: swing, kind (0 BOS, 1 CHOCH), direction, broken; floats: level, probe
R_BROKEN = 5  # same layout as R_PENDING
R_BLOCK = 6  # ints: index, direction, breaker; floats: top, bottom, volume, percentage
R_POOL = 7  # ints: root, direction, count, last, swept; floats: level_sum, low, high
R_EVENT = 8  # 12 slots a row: type, bar, index, a, b, c, d, e as ints, then four floats (see smc_compiled)
R_SCRATCH = 9  # ints: pending row of a newly broken mark, survivor flag
STRIDE_I = (1, 2, 1, 1, 4, 4, 3, 5, 12, 2)
STRIDE_F = (5, 1, 2, 2, 2, 2, 4, 3, 0, 0)

# event types
EV_SWING = 0
EV_FVG = 1
EV_STRUCTURE = 2
EV_BLOCK = 3
EV_POOL = 4

FLAG_BULL_BLOCK = 1
FLAG_BEAR_BLOCK = 2
FLAG_CROSSED = 4

BIG = 1 << 62


@njit(inline="always", cache=True)
def _room(ints, r, rows):
    """True if region r holds ``rows`` rows; otherwise record the need and return False."""
    if rows > ints[H_REGIONS + 4 * r + 2]:
        ints[H_NEED + r] = rows
        return False
    return True


@njit(inline="always", cache=True)
def _emit(ints, floats, kind, bar, index, a, b, c, d, e, f0, f1, f2, f3):
    slot = H_REGIONS + 4 * R_EVENT
    n = ints[slot + 3]
    oi = ints[slot] + 12 * n
    of = oi + 8
    ints[oi] = kind
    ints[oi + 1] = bar
    ints[oi + 2] = index
    ints[oi + 3] = a
    ints[oi + 4] = b
    ints[oi + 5] = c
    ints[oi + 6] = d
    ints[oi + 7] = e
    floats[of] = f0
    floats[of + 1] = f1
    floats[of + 2] = f2
    floats[of + 3] = f3
    ints[slot + 3] = n + 1


@njit(cache=True)
def smc_update(state, o, h, lo, c, v):
    """One candle for the detector whose state is ``state``; see the module docstring for the return value."""
    ints = state
    floats = state.view(np.float64)
    if not (np.isfinite(o) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(c) and np.isfinite(v)):
        return -2  # the caller says which value (nothing changed)
    t = ints[H_T]
    base = ints[H_BASE]
    horizon = ints[H_HORIZON]
    trim = horizon >= 0 and t == ints[H_NEXT_TRIM]
    stored = t - base
    if trim and t - horizon > base:
        stored = horizon
    n_bull = ints[H_REGIONS + 4 * R_BULL + 3]
    n_bear = ints[H_REGIONS + 4 * R_BEAR + 3]
    n_pending = ints[H_REGIONS + 4 * R_PENDING + 3]
    n_broken = ints[H_REGIONS + 4 * R_BROKEN + 3]
    n_blocks = ints[H_REGIONS + 4 * R_BLOCK + 3]
    n_pools = ints[H_REGIONS + 4 * R_POOL + 3]
    ok = _room(ints, R_CANDLE, stored + 1)
    ok = _room(ints, R_SWING, ints[H_REGIONS + 4 * R_SWING + 3] + 1) and ok
    ok = _room(ints, R_BULL, n_bull + 1) and ok
    ok = _room(ints, R_BEAR, n_bear + 1) and ok
    ok = _room(ints, R_PENDING, n_pending + 1) and ok
    ok = _room(ints, R_BROKEN, n_broken + n_pending + 1) and ok
    ok = _room(ints, R_BLOCK, n_blocks + 2) and ok
    ok = _room(ints, R_POOL, n_pools + 1) and ok
    ok = _room(ints, R_EVENT, n_bull + n_bear + n_pending + n_broken + n_blocks + n_pools + 8) and ok
    ok = _room(ints, R_SCRATCH, n_pending + 1) and ok
    if not ok:
        return -1
    ints[H_REGIONS + 4 * R_EVENT + 3] = 0
    ints[H_T] = t + 1
    if trim:
        _trim(ints, floats, t)
        base = ints[H_BASE]
    k = t - base
    p = ints[H_REGIONS + 4 * R_CANDLE + 1] + 5 * k
    floats[p] = o
    floats[p + 1] = h
    floats[p + 2] = lo
    floats[p + 3] = c
    floats[p + 4] = v
    ints[H_REGIONS + 4 * R_CANDLE + 3] = k + 1
    if h > floats[F_MAX_HIGH]:
        floats[F_MAX_HIGH] = h
    if lo < floats[F_MIN_LOW]:
        floats[F_MIN_LOW] = lo
    if t >= 3 * ints[H_LEN] - 1:
        _update_swings(ints, floats, t)
    _update_fvgs(ints, floats, t)
    if ints[H_REGIONS + 4 * R_PENDING + 3] > 0:
        _update_structures(ints, floats, t)
    _update_blocks(ints, floats, t)
    if ints[H_REGIONS + 4 * R_POOL + 3] > 0:
        _update_pools(ints, floats, t)
    return ints[H_REGIONS + 4 * R_EVENT + 3]


@njit(inline="always", cache=True)
def _compact(ints, floats, r, keep_min, field):
    """Keep the rows of region r whose int ``field`` is >= keep_min, in order."""
    slot = H_REGIONS + 4 * r
    oi = ints[slot]
    of = ints[slot + 1]
    n = ints[slot + 3]
    si = STRIDE_I[r]
    sf = STRIDE_F[r]
    kept = 0
    for i in range(n):
        if ints[oi + si * i + field] >= keep_min:
            if kept != i:
                for x in range(si):
                    ints[oi + si * kept + x] = ints[oi + si * i + x]
                for x in range(sf):
                    floats[of + sf * kept + x] = floats[of + sf * i + x]
            kept += 1
    ints[slot + 3] = kept


@njit(inline="always", cache=True)
def _trim(ints, floats, t):
    horizon = ints[H_HORIZON]
    oldest = t - horizon
    base = ints[H_BASE]
    drop = oldest - base
    if drop > 0:
        slot = H_REGIONS + 4 * R_CANDLE
        oi = ints[slot]
        of = ints[slot + 1]
        n = ints[slot + 3]
        keep = n - drop
        for i in range(keep):
            ints[oi + i] = ints[oi + i + drop]
            for x in range(5):
                floats[of + 5 * i + x] = floats[of + 5 * (i + drop) + x]
        for i in range(keep, n):
            ints[oi + i] = 0  # the flags of the candles appended next
        ints[slot + 3] = keep
        ints[H_BASE] = oldest
    slot = H_REGIONS + 4 * R_SWING
    oi = ints[slot]
    of = ints[slot + 1]
    n = ints[slot + 3]
    keep = n - 4
    remove = 0
    while keep > 0 and ints[oi + 2 * remove] < oldest:
        remove += 1
        keep -= 1
    if remove > 0:
        for i in range(n - remove):
            ints[oi + 2 * i] = ints[oi + 2 * (i + remove)]
            ints[oi + 2 * i + 1] = ints[oi + 2 * (i + remove) + 1]
            floats[of + i] = floats[of + i + remove]
        ints[slot + 3] = n - remove
    _compact(ints, floats, R_BULL, oldest, 0)
    _compact(ints, floats, R_BEAR, oldest, 0)
    _gap_limits(ints, floats)
    _compact(ints, floats, R_PENDING, oldest, 0)
    _compact(ints, floats, R_BROKEN, oldest, 0)
    _compact(ints, floats, R_BLOCK, oldest, 0)
    _block_limits(ints, floats)
    ints[H_NEXT_TRIM] = t + horizon


# ---------------------------------------------------------------------------------------------------- swings


@njit(inline="always", cache=True)
def _update_swings(ints, floats, t):
    length = ints[H_LEN]
    s = t - length
    if s < 2 * length - 1:
        return
    base = ints[H_BASE]
    oc = ints[H_REGIONS + 4 * R_CANDLE + 1]
    high = floats[oc + 5 * (s - base) + 1]
    low = floats[oc + 5 * (s - base) + 2]
    kind = 0
    level = 0.0
    # ``high == max(window)`` (bar s lies in the window) is ``no high in the window exceeds it``: stop at the first
    # one that does, scanning from the newest candle back
    if high >= floats[oc + 5 * (t - base) + 1]:
        kind = 1
        for j in range(t - 1 - base, t - 2 * length - base, -1):
            if floats[oc + 5 * j + 1] > high:
                kind = 0
                break
        if kind == 1:
            level = high
    if kind == 0 and low <= floats[oc + 5 * (t - base) + 2]:
        kind = -1
        for j in range(t - 1 - base, t - 2 * length - base, -1):
            if floats[oc + 5 * j + 2] < low:
                kind = 0
                break
        if kind == -1:
            level = low
    if kind == 0:
        return
    slot = H_REGIONS + 4 * R_SWING
    oi = ints[slot]
    of = ints[slot + 1]
    n = ints[slot + 3]
    if n == 0 or ints[oi + 2 * (n - 1) + 1] != kind:
        ints[oi + 2 * n] = s
        ints[oi + 2 * n + 1] = kind
        floats[of + n] = level
        ints[slot + 3] = n + 1
        ints[H_SWING_2] = ints[H_SWING_1]
        ints[H_SWING_2 + 1] = ints[H_SWING_1 + 1]
        floats[F_SWING_2] = floats[F_SWING_1]
        ints[H_SWING_1] = s
        ints[H_SWING_1 + 1] = kind
        floats[F_SWING_1] = level
        _emit(ints, floats, EV_SWING, t, s, kind, -1, 0, 0, 0, level, 0.0, 0.0, 0.0)
        _check_pattern(ints, floats, t)
        if n + 1 >= 2:
            _add_final_swing(ints, floats, t, ints[oi + 2 * (n - 1)], ints[oi + 2 * (n - 1) + 1], floats[of + n - 1])
    else:
        last = floats[of + n - 1]
        if (kind == 1 and level > last) or (kind == -1 and level < last):
            replaced = ints[oi + 2 * (n - 1)]
            ints[oi + 2 * (n - 1)] = s
            floats[of + n - 1] = level
            ints[H_SWING_1] = s
            floats[F_SWING_1] = level
            _emit(ints, floats, EV_SWING, t, s, kind, replaced, 0, 0, 0, level, 0.0, 0.0, 0.0)
            _check_pattern(ints, floats, t)


# ------------------------------------------------------------------------------------------------------- FVG


@njit(inline="always", cache=True)
def _update_fvgs(ints, floats, t):
    base = ints[H_BASE]
    oc = ints[H_REGIONS + 4 * R_CANDLE + 1]
    row = oc + 5 * (t - base)
    high = floats[row + 1]
    low = floats[row + 2]
    sb = H_REGIONS + 4 * R_BULL
    sr = H_REGIONS + 4 * R_BEAR
    bi = ints[sb]
    bf = ints[sb + 1]
    ri = ints[sr]
    rf = ints[sr + 1]
    nb = ints[sb + 3]
    nr = ints[sr + 3]
    first = ints[H_REGIONS + 4 * R_EVENT + 3]
    changed = False
    if low <= floats[F_BULL_TOP]:  # nb > 0 and low <= the last top
        k = nb
        while k > 0 and floats[bf + 2 * (k - 1)] >= low:  # the bullish gaps with top >= low: a suffix
            k -= 1
        for i in range(k, nb):
            _emit(
                ints,
                floats,
                EV_FVG,
                t,
                ints[bi + i],
                1,
                1,
                t,
                0,
                0,
                floats[bf + 2 * i],
                floats[bf + 2 * i + 1],
                0.0,
                0.0,
            )
        nb = k
        ints[sb + 3] = nb
        changed = True
    if high >= floats[F_BEAR_BOTTOM]:  # nr > 0 and high >= the last bottom
        k = nr
        while k > 0 and floats[rf + 2 * (k - 1)] <= high:  # the bearish gaps with bottom <= high: a suffix
            k -= 1
        for i in range(k, nr):
            _emit(
                ints,
                floats,
                EV_FVG,
                t,
                ints[ri + i],
                -1,
                1,
                t,
                0,
                0,
                floats[rf + 2 * i + 1],
                floats[rf + 2 * i],
                0.0,
                0.0,
            )
        nr = k
        ints[sr + 3] = nr
        changed = True
    last = ints[H_REGIONS + 4 * R_EVENT + 3]
    if last - first > 1:  # in the order the gaps formed (insertion sort on the candle index)
        ei = ints[H_REGIONS + 4 * R_EVENT]
        for a in range(first + 1, last):
            j = a
            while j > first and ints[ei + 12 * (j - 1) + 2] > ints[ei + 12 * j + 2]:
                for x in range(12):  # the float slots move as their bits
                    tmp = ints[ei + 12 * j + x]
                    ints[ei + 12 * j + x] = ints[ei + 12 * (j - 1) + x]
                    ints[ei + 12 * (j - 1) + x] = tmp
                j -= 1
    if t - 1 >= 1 and _form_gap(ints, floats, t, row, nb, nr):
        changed = True
    if changed:
        _gap_limits(ints, floats)


@njit(inline="always", cache=True)
def _gap_limits(ints, floats):
    sb = H_REGIONS + 4 * R_BULL
    sr = H_REGIONS + 4 * R_BEAR
    nb = ints[sb + 3]
    nr = ints[sr + 3]
    floats[F_BULL_TOP] = floats[ints[sb + 1] + 2 * (nb - 1)] if nb > 0 else -np.inf
    floats[F_BEAR_BOTTOM] = floats[ints[sr + 1] + 2 * (nr - 1)] if nr > 0 else np.inf


@njit(inline="always", cache=True)
def _insert_gap(ints, floats, gi, gf, n, pos, index, level, other):
    """Put gap ``index`` (sort ``level``, ``other`` side) at row ``pos`` of a gap list of ``n`` rows (ints from
    ``gi``, float pairs from ``gf``), moving the rows from ``pos`` on one down."""
    for x in range(n, pos, -1):
        ints[gi + x] = ints[gi + x - 1]
        floats[gf + 2 * x] = floats[gf + 2 * (x - 1)]
        floats[gf + 2 * x + 1] = floats[gf + 2 * (x - 1) + 1]
    ints[gi + pos] = index
    floats[gf + 2 * pos] = level
    floats[gf + 2 * pos + 1] = other


@njit(inline="always", cache=True)
def _form_gap(ints, floats, t, row, nb, nr):
    i = t - 1
    sb = H_REGIONS + 4 * R_BULL
    sr = H_REGIONS + 4 * R_BEAR
    bi = ints[sb]
    bf = ints[sb + 1]
    ri = ints[sr]
    rf = ints[sr + 1]
    high = floats[row + 1]
    low = floats[row + 2]
    o_i = floats[row - 5]
    c_i = floats[row - 5 + 3]
    if c_i > o_i and floats[row - 10 + 1] < low:
        top = low
        bottom = floats[row - 10 + 1]
        pos = nb
        while pos > 0 and floats[bf + 2 * (pos - 1)] > top:
            pos -= 1
        _insert_gap(ints, floats, bi, bf, nb, pos, i, top, bottom)
        ints[sb + 3] = nb + 1
        _emit(ints, floats, EV_FVG, t, i, 1, 0, -1, 0, 0, top, bottom, 0.0, 0.0)
        return True
    elif c_i < o_i and floats[row - 10 + 2] > high:
        top = floats[row - 10 + 2]
        bottom = high
        pos = nr
        while pos > 0 and floats[rf + 2 * (pos - 1)] <= bottom:
            pos -= 1
        _insert_gap(ints, floats, ri, rf, nr, pos, i, bottom, top)
        ints[sr + 3] = nr + 1
        _emit(ints, floats, EV_FVG, t, i, -1, 0, -1, 0, 0, top, bottom, 0.0, 0.0)
        return True
    return False


# ------------------------------------------------------------------------------------------------- BOS/CHOCH


@njit(inline="always", cache=True)
def _check_pattern(ints, floats, t):
    slot = H_REGIONS + 4 * R_SWING
    si = ints[slot]
    sf = ints[slot + 1]
    n = ints[slot + 3]
    if n < 4:
        return
    p = ints[si + 2 * (n - 3)]
    if p == ints[H_LAST_MARK]:
        return
    base = ints[H_BASE]
    if p < base:
        return
    h4 = ints[si + 2 * (n - 4) + 1]
    h3 = ints[si + 2 * (n - 3) + 1]
    h2 = ints[si + 2 * (n - 2) + 1]
    h1 = ints[si + 2 * (n - 1) + 1]
    l4 = floats[sf + n - 4]
    l3 = floats[sf + n - 3]
    l2 = floats[sf + n - 2]
    l1 = floats[sf + n - 1]
    kind = -1
    direction = 0
    if h4 == -1 and h3 == 1 and h2 == -1 and h1 == 1:
        direction = 1
        if l4 < l2 and l2 < l3 and l3 < l1:
            kind = 0
        elif l1 > l3 and l3 > l4 and l4 > l2:
            kind = 1
    elif h4 == 1 and h3 == -1 and h2 == 1 and h1 == -1:
        direction = -1
        if l4 > l2 and l2 > l3 and l3 > l1:
            kind = 0
        elif l1 < l3 and l3 < l4 and l4 < l2:
            kind = 1
    if kind < 0:
        return
    probe = np.float64(np.float32(l3)) if ints[H_F32] != 0 else l3
    ints[H_LAST_MARK] = p
    field = 3 if ints[H_CLOSE_BREAK] != 0 else (1 if direction == 1 else 2)
    oc = ints[H_REGIONS + 4 * R_CANDLE + 1]
    broken = -1
    for j in range(p + 2, t):
        x = floats[oc + 5 * (j - base) + field]
        if (direction == 1 and x > probe) or (direction == -1 and x < probe):
            broken = j
            break
    ps = H_REGIONS + 4 * R_PENDING
    n = ints[ps + 3]
    pi = ints[ps] + 4 * n
    pf = ints[ps + 1] + 2 * n
    ints[pi] = p
    ints[pi + 1] = kind
    ints[pi + 2] = direction
    ints[pi + 3] = broken
    floats[pf] = l3
    floats[pf + 1] = probe
    ints[ps + 3] = n + 1


@njit(inline="always", cache=True)
def _structure_event(ints, floats, t, oi, of, action):
    _emit(
        ints,
        floats,
        EV_STRUCTURE,
        t,
        ints[oi],
        ints[oi + 1],
        ints[oi + 2],
        ints[oi + 3],
        action,
        0,
        floats[of],
        0.0,
        0.0,
        0.0,
    )


@njit(inline="always", cache=True)
def _update_structures(ints, floats, t):
    ps = H_REGIONS + 4 * R_PENDING
    pi = ints[ps]
    pf = ints[ps + 1]
    n_pending = ints[ps + 3]
    if n_pending == 0:
        return
    base = ints[H_BASE]
    row = ints[H_REGIONS + 4 * R_CANDLE + 1] + 5 * (t - base)
    close_break = ints[H_CLOSE_BREAK] != 0
    xi = ints[H_REGIONS + 4 * R_SCRATCH]
    n_new = 0
    for i in range(n_pending):
        r = pi + 4 * i
        if ints[r + 3] < 0 and ints[r] + 2 <= t:
            direction = ints[r + 2]
            value = floats[row + 3] if close_break else (floats[row + 1] if direction == 1 else floats[row + 2])
            probe = floats[pf + 2 * i + 1]
            if (direction == 1 and value > probe) or (direction == -1 and value < probe):
                ints[r + 3] = t
        if ints[r + 3] >= 0:
            ints[xi + 2 * n_new] = i
            n_new += 1
    if n_new == 0:
        return
    earliest_later = BIG
    newest_swing = -1
    for k in range(n_new - 1, -1, -1):
        r = pi + 4 * ints[xi + 2 * k]
        broken = ints[r + 3]
        ints[xi + 2 * k + 1] = 1 if broken < earliest_later else 0
        if broken < earliest_later:
            earliest_later = broken
        if ints[r] > newest_swing:
            newest_swing = ints[r]
    bs = H_REGIONS + 4 * R_BROKEN
    bi = ints[bs]
    bf = ints[bs + 1]
    n_broken = ints[bs + 3]
    kept = 0
    for i in range(n_broken):
        swing = ints[bi + 4 * i]
        broken = ints[bi + 4 * i + 3]
        cleared = False
        for k in range(n_new):
            r = pi + 4 * ints[xi + 2 * k]
            if ints[r] > swing and (broken < 0 or ints[r + 3] <= broken):
                cleared = True
                break
        if cleared:
            _structure_event(ints, floats, t, bi + 4 * i, bf + 2 * i, 1)
        else:
            if kept != i:
                for x in range(4):
                    ints[bi + 4 * kept + x] = ints[bi + 4 * i + x]
                floats[bf + 2 * kept] = floats[bf + 2 * i]
                floats[bf + 2 * kept + 1] = floats[bf + 2 * i + 1]
            kept += 1
    for k in range(n_new):
        if ints[xi + 2 * k + 1] != 0:
            j = ints[xi + 2 * k]
            _structure_event(ints, floats, t, pi + 4 * j, pf + 2 * j, 0)
            for x in range(4):
                ints[bi + 4 * kept + x] = ints[pi + 4 * j + x]
            floats[bf + 2 * kept] = floats[pf + 2 * j]
            floats[bf + 2 * kept + 1] = floats[pf + 2 * j + 1]
            kept += 1
    ints[bs + 3] = kept
    # a pending structure marked before a newly broken one is cleared (it can only break later)
    still = 0
    for i in range(n_pending):
        r = pi + 4 * i
        if ints[r + 3] < 0 and not newest_swing > ints[r]:
            if still != i:
                for x in range(4):
                    ints[pi + 4 * still + x] = ints[r + x]
                floats[pf + 2 * still] = floats[pf + 2 * i]
                floats[pf + 2 * still + 1] = floats[pf + 2 * i + 1]
            still += 1
    ints[ps + 3] = still
    ss = H_REGIONS + 4 * R_SWING
    n_swings = ints[ss + 3]
    floor = ints[ints[ss] + 2 * (n_swings - 3)] + 2 if n_swings >= 3 else 0
    _compact(ints, floats, R_BROKEN, floor, 3)


# ---------------------------------------------------------------------------------------------- order blocks


@njit(inline="always", cache=True)
def _block_event(ints, floats, t, i, action):
    slot = H_REGIONS + 4 * R_BLOCK
    oi = ints[slot] + 3 * i
    of = ints[slot + 1] + 4 * i
    _emit(
        ints,
        floats,
        EV_BLOCK,
        t,
        ints[oi],
        ints[oi + 1],
        action,
        0,
        0,
        0,
        floats[of],
        floats[of + 1],
        floats[of + 2],
        floats[of + 3],
    )


@njit(inline="always", cache=True)
def _update_blocks(ints, floats, t):
    base = ints[H_BASE]
    ci = ints[H_REGIONS + 4 * R_CANDLE]
    oc = ints[H_REGIONS + 4 * R_CANDLE + 1]
    row = oc + 5 * (t - base)
    o = floats[row]
    h = floats[row + 1]
    lo = floats[row + 2]
    c = floats[row + 3]
    slot = H_REGIONS + 4 * R_BLOCK
    ki = ints[slot]
    kf = ints[slot + 1]
    n = ints[slot + 3]
    if n > 0:
        if ints[H_CLOSE_MIT] != 0:
            low_probe = c if c < o else o  # min(o, c)
            high_probe = c if c > o else o  # max(o, c)
        else:
            low_probe = lo
            high_probe = h
        if low_probe < floats[F_OB] or h > floats[F_OB + 1] or high_probe > floats[F_OB + 2] or lo < floats[F_OB + 3]:
            kept = 0
            for i in range(n):
                direction = ints[ki + 3 * i + 1]
                removed = False
                if direction == 1:
                    if ints[ki + 3 * i + 2] != 0:
                        removed = h > floats[kf + 4 * i]
                    elif low_probe < floats[kf + 4 * i + 1]:
                        ints[ki + 3 * i + 2] = 1
                        _block_event(ints, floats, t, i, 1)
                else:
                    if ints[ki + 3 * i + 2] != 0:
                        removed = lo < floats[kf + 4 * i + 1]
                    elif high_probe > floats[kf + 4 * i]:
                        ints[ki + 3 * i + 2] = 1
                        _block_event(ints, floats, t, i, 1)
                if removed:
                    _block_event(ints, floats, t, i, 2)
                    bit = FLAG_BULL_BLOCK if direction == 1 else FLAG_BEAR_BLOCK
                    ints[ci + ints[ki + 3 * i] - base] &= ~bit
                else:
                    if kept != i:
                        for x in range(3):
                            ints[ki + 3 * kept + x] = ints[ki + 3 * i + x]
                        for x in range(4):
                            floats[kf + 4 * kept + x] = floats[kf + 4 * i + x]
                    kept += 1
            ints[slot + 3] = kept
            _block_limits(ints, floats)
    last_high = -1
    last_low = -1
    high_level = 0.0
    low_level = 0.0
    for k in range(2):  # swings[-2:] reversed (a missing swing has index -1 < base)
        index = ints[H_SWING_1 + 2 * k]
        if index < base:
            continue
        kind = ints[H_SWING_1 + 2 * k + 1]
        if kind == 1 and last_high < 0:
            last_high = index
            high_level = floats[F_SWING_1 + k]  # = the high of that candle
        elif kind == -1 and last_low < 0:
            last_low = index
            low_level = floats[F_SWING_1 + k]
    if last_high >= 0 and c > high_level and ints[ci + last_high - base] & FLAG_CROSSED == 0:
        ints[ci + last_high - base] |= FLAG_CROSSED
        _form_block(ints, floats, t, last_high, 1)
    if last_low >= 0 and c < low_level and ints[ci + last_low - base] & FLAG_CROSSED == 0:
        ints[ci + last_low - base] |= FLAG_CROSSED
        _form_block(ints, floats, t, last_low, -1)


@njit(inline="always", cache=True)
def _form_block(ints, floats, t, swing, direction):
    base = ints[H_BASE]
    ci = ints[H_REGIONS + 4 * R_CANDLE]
    oc = ints[H_REGIONS + 4 * R_CANDLE + 1]
    best = t - 1
    if t - swing > 1:
        field = 2 if direction == 1 else 1
        extreme = floats[oc + 5 * (swing + 1 - base) + field]
        for j in range(swing + 2, t):
            x = floats[oc + 5 * (j - base) + field]
            if (direction == 1 and x < extreme) or (direction == -1 and x > extreme):
                extreme = x
        best = t - 1
        while floats[oc + 5 * (best - base) + field] != extreme:
            best -= 1
    bit = FLAG_BULL_BLOCK if direction == 1 else FLAG_BEAR_BLOCK
    if ints[ci + best - base] & bit != 0:
        return
    row = oc + 5 * (t - base)
    recent = floats[row + 4] + (floats[row - 5 + 4] if t >= 1 else 0.0)
    older = floats[row - 10 + 4] if t >= 2 else 0.0
    total = recent + older
    bigger = older if older > recent else recent  # max(recent, older)
    smaller = older if older < recent else recent  # min(recent, older)
    pct = smaller / bigger * 100.0 if bigger != 0 else 100.0
    top = floats[oc + 5 * (best - base) + 1]
    bottom = floats[oc + 5 * (best - base) + 2]
    slot = H_REGIONS + 4 * R_BLOCK
    n = ints[slot + 3]
    ki = ints[slot] + 3 * n
    kf = ints[slot + 1] + 4 * n
    ints[ki] = best
    ints[ki + 1] = direction
    ints[ki + 2] = 0
    floats[kf] = top
    floats[kf + 1] = bottom
    floats[kf + 2] = total
    floats[kf + 3] = pct
    ints[slot + 3] = n + 1
    ints[ci + best - base] |= bit
    if direction == 1:
        if bottom > floats[F_OB]:
            floats[F_OB] = bottom
    elif top < floats[F_OB + 2]:
        floats[F_OB + 2] = top
    _block_event(ints, floats, t, n, 0)


@njit(inline="always", cache=True)
def _block_limits(ints, floats):
    slot = H_REGIONS + 4 * R_BLOCK
    ki = ints[slot]
    kf = ints[slot + 1]
    lim0 = -np.inf
    lim1 = np.inf
    lim2 = np.inf
    lim3 = -np.inf
    for i in range(ints[slot + 3]):
        top = floats[kf + 4 * i]
        bottom = floats[kf + 4 * i + 1]
        if ints[ki + 3 * i + 1] == 1:
            if ints[ki + 3 * i + 2] != 0:
                if top < lim1:
                    lim1 = top
            elif bottom > lim0:
                lim0 = bottom
        elif ints[ki + 3 * i + 2] != 0:
            if bottom > lim3:
                lim3 = bottom
        elif top < lim2:
            lim2 = top
    floats[F_OB] = lim0
    floats[F_OB + 1] = lim1
    floats[F_OB + 2] = lim2
    floats[F_OB + 3] = lim3


# ------------------------------------------------------------------------------------------------- liquidity


@njit(inline="always", cache=True)
def _pool_event(ints, floats, t, i, action):
    slot = H_REGIONS + 4 * R_POOL
    oi = ints[slot] + 5 * i
    of = ints[slot + 1] + 3 * i
    level = floats[of] / ints[oi + 2]
    _emit(
        ints,
        floats,
        EV_POOL,
        t,
        ints[oi],
        ints[oi + 1],
        ints[oi + 3],
        ints[oi + 2],
        ints[oi + 4],
        action,
        level,
        0.0,
        0.0,
        0.0,
    )


@njit(inline="always", cache=True)
def _add_final_swing(ints, floats, t, index, direction, level):
    slot = H_REGIONS + 4 * R_POOL
    li = ints[slot]
    lf = ints[slot + 1]
    n = ints[slot + 3]
    for i in range(n):
        swept = ints[li + 5 * i + 4]
        if ints[li + 5 * i + 1] != direction or (swept >= 0 and index >= swept):
            continue
        if floats[lf + 3 * i + 1] <= level <= floats[lf + 3 * i + 2]:
            floats[lf + 3 * i] += level
            ints[li + 5 * i + 2] += 1
            ints[li + 5 * i + 3] = index
            _pool_event(ints, floats, t, i, 0 if ints[li + 5 * i + 2] == 2 else 1)
            return
    base = ints[H_BASE]
    if index < base:
        return
    if ints[H_HAS_BAND] != 0:  # noqa: SIM108 (the Python detector's two branches)
        band = floats[F_BAND]
    else:
        band = (floats[F_MAX_HIGH] - floats[F_MIN_LOW]) * floats[F_RANGE_PCT]
    low = level - band
    high = level + band
    oc = ints[H_REGIONS + 4 * R_CANDLE + 1]
    swept = -1
    for j in range(index + 1, t + 1):
        if (direction == 1 and floats[oc + 5 * (j - base) + 1] >= high) or (
            direction == -1 and floats[oc + 5 * (j - base) + 2] <= low
        ):
            swept = j
            break
    r = li + 5 * n
    ints[r] = index
    ints[r + 1] = direction
    ints[r + 2] = 1
    ints[r + 3] = index
    ints[r + 4] = swept
    floats[lf + 3 * n] = level
    floats[lf + 3 * n + 1] = low
    floats[lf + 3 * n + 2] = high
    ints[slot + 3] = n + 1
    if swept >= 0:
        if swept < ints[H_POOLS_DROP]:
            ints[H_POOLS_DROP] = swept
    elif direction == 1:
        if high < floats[F_POOL_UP]:
            floats[F_POOL_UP] = high
    elif low > floats[F_POOL_DOWN]:
        floats[F_POOL_DOWN] = low


@njit(inline="always", cache=True)
def _update_pools(ints, floats, t):
    slot = H_REGIONS + 4 * R_POOL
    li = ints[slot]
    lf = ints[slot + 1]
    n = ints[slot + 3]
    if n == 0:
        return
    row = ints[H_REGIONS + 4 * R_CANDLE + 1] + 5 * (t - ints[H_BASE])
    h = floats[row + 1]
    lo = floats[row + 2]
    newest_final = ints[H_SWING_2]  # swings[-2][0], -1 if none
    if h < floats[F_POOL_UP] and lo > floats[F_POOL_DOWN] and newest_final < ints[H_POOLS_DROP]:
        return
    up = np.inf
    down = -np.inf
    drop = BIG
    kept = 0
    for i in range(n):
        r = li + 5 * i
        direction = ints[r + 1]
        high = floats[lf + 3 * i + 2]
        low = floats[lf + 3 * i + 1]
        reached = h >= high if direction == 1 else lo <= low
        if ints[r + 4] < 0 and reached:
            ints[r + 4] = t
            if ints[r + 2] >= 2:
                _pool_event(ints, floats, t, i, 2)
        swept = ints[r + 4]
        keep = False
        if swept < 0:
            keep = True
            if direction == 1:
                if high < up:
                    up = high
            elif low > down:
                down = low
        elif swept > newest_final:
            keep = True
            if swept < drop:
                drop = swept
        if keep:
            if kept != i:
                for x in range(5):
                    ints[li + 5 * kept + x] = ints[r + x]
                for x in range(3):
                    floats[lf + 3 * kept + x] = floats[lf + 3 * i + x]
            kept += 1
    ints[slot + 3] = kept
    floats[F_POOL_UP] = up
    floats[F_POOL_DOWN] = down
    ints[H_POOLS_DROP] = drop
