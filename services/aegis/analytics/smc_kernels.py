"""Numba kernels behind :mod:`aegis.analytics.smc`: the five batch SMC computations over numpy arrays.

Each kernel reproduces one method of the ``smartmoneyconcepts`` package (0.0.27) value for value, quirks
included; the wrappers in ``smc.py`` only unpack the DataFrame and build the result frame. Where a kernel uses a
different algorithm from the package (the package often rescans or re-loops), the comment says why the result is
the same. Float32 storage is deliberate wherever the package stores into float32 arrays: later comparisons use
the rounded value, as the package's do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Forward searches ("first bar at or after s whose low is <= v") skip whole blocks using per-block extrema, so
# an FVG, structure or pool that is never touched costs n/64 steps instead of n.
_BLOCK = 64


@njit(cache=True)
def block_max(values):
    nblocks = (values.shape[0] + _BLOCK - 1) // _BLOCK
    out = np.full(nblocks, -np.inf)
    for i in range(values.shape[0]):
        b = i // _BLOCK
        if values[i] > out[b]:
            out[b] = values[i]
    return out


@njit(cache=True)
def block_min(values):
    nblocks = (values.shape[0] + _BLOCK - 1) // _BLOCK
    out = np.full(nblocks, np.inf)
    for i in range(values.shape[0]):
        b = i // _BLOCK
        if values[i] < out[b]:
            out[b] = values[i]
    return out


@njit(cache=True)
def first_gt(values, bmax, start, level):
    """Return the first index >= start with values[index] > level, or -1."""
    n = values.shape[0]
    i = start
    while i < n:
        if i % _BLOCK == 0 and not bmax[i // _BLOCK] > level:
            i += _BLOCK
            continue
        if values[i] > level:
            return i
        i += 1
    return -1


@njit(cache=True)
def first_ge(values, bmax, start, level):
    """Return the first index >= start with values[index] >= level, or -1."""
    n = values.shape[0]
    i = start
    while i < n:
        if i % _BLOCK == 0 and not bmax[i // _BLOCK] >= level:
            i += _BLOCK
            continue
        if values[i] >= level:
            return i
        i += 1
    return -1


@njit(cache=True)
def first_lt(values, bmin, start, level):
    """Return the first index >= start with values[index] < level, or -1."""
    n = values.shape[0]
    i = start
    while i < n:
        if i % _BLOCK == 0 and not bmin[i // _BLOCK] < level:
            i += _BLOCK
            continue
        if values[i] < level:
            return i
        i += 1
    return -1


@njit(cache=True)
def first_le(values, bmin, start, level):
    """Return the first index >= start with values[index] <= level, or -1."""
    n = values.shape[0]
    i = start
    while i < n:
        if i % _BLOCK == 0 and not bmin[i // _BLOCK] <= level:
            i += _BLOCK
            continue
        if values[i] <= level:
            return i
        i += 1
    return -1


# --------------------------------------------------------------------------------------------------- swings


@njit(cache=True)
def swing_highs_lows(high, low, swing_length):
    """Return (HighLow, Level) float64 arrays exactly as ``smc.swing_highs_lows``.

    The package marks bar t when its high (else its low) equals the extreme of ``high[t-L+1 .. t+L]``
    (``shift(-L).rolling(2L)``), which also needs ``t >= 2L-1`` because the rolling window counts the shifted
    series from its start. Its removal loop deletes, pass after pass, the lower of two consecutive highs (the later
    one on ties) and the higher of two consecutive lows (the later one on ties) until no two neighbours share a
    type; what survives is, in each run of same-type candidates, the first bar holding the run's extreme, which is
    what the single pass below keeps. Finally bar 0 gets the type opposite to the first swing and bar n-1 the
    type opposite to the last one.
    """
    n = high.shape[0]
    L = swing_length
    w = 2 * L
    hl = np.full(n, np.nan)
    level = np.full(n, np.nan)
    # sliding max/min over windows of w bars ending at e (monotone deques of indices)
    dq_max = np.empty(n, dtype=np.int64)
    dq_min = np.empty(n, dtype=np.int64)
    hmax_head = 0
    hmax_tail = 0
    hmin_head = 0
    hmin_tail = 0
    run_type = 0.0
    run_best = -1
    first_pos = -1
    last_pos = -1
    for e in range(n):
        while hmax_tail > hmax_head and high[dq_max[hmax_tail - 1]] <= high[e]:
            hmax_tail -= 1
        dq_max[hmax_tail] = e
        hmax_tail += 1
        if dq_max[hmax_head] <= e - w:
            hmax_head += 1
        while hmin_tail > hmin_head and low[dq_min[hmin_tail - 1]] >= low[e]:
            hmin_tail -= 1
        dq_min[hmin_tail] = e
        hmin_tail += 1
        if dq_min[hmin_head] <= e - w:
            hmin_head += 1
        t = e - L
        if t < w - 1:
            continue
        kind = 0.0
        if high[t] == high[dq_max[hmax_head]]:
            kind = 1.0
        elif low[t] == low[dq_min[hmin_head]]:
            kind = -1.0
        else:
            continue
        if kind != run_type:
            if run_best >= 0:
                hl[run_best] = run_type
                if first_pos < 0:
                    first_pos = run_best
                last_pos = run_best
            run_type = kind
            run_best = t
        elif (kind == 1.0 and high[t] > high[run_best]) or (kind == -1.0 and low[t] < low[run_best]):
            run_best = t
    if run_best >= 0:
        hl[run_best] = run_type
        if first_pos < 0:
            first_pos = run_best
        last_pos = run_best
    if first_pos >= 0:
        # first_pos >= 2L-1 >= 1 and last_pos <= n-1-L < n-1, so these never overwrite a real swing
        hl[0] = -hl[first_pos]
        hl[n - 1] = -hl[last_pos]
    for i in range(n):
        if hl[i] == 1.0:
            level[i] = high[i]
        elif hl[i] == -1.0:
            level[i] = low[i]
    return hl, level


# ------------------------------------------------------------------------------------------------------ FVG


@njit(cache=True)
def fvg(open_, high, low, close, join_consecutive):
    """Return (FVG, Top, Bottom, MitigatedIndex) float64 arrays exactly as ``smc.fvg``.

    Quirk kept: an FVG that is never mitigated has MitigatedIndex 0, not NaN.
    """
    n = high.shape[0]
    kind = np.full(n, np.nan)
    top = np.full(n, np.nan)
    bottom = np.full(n, np.nan)
    for i in range(1, n - 1):
        up = close[i] > open_[i]
        if up and high[i - 1] < low[i + 1]:
            kind[i] = 1.0
            top[i] = low[i + 1]
            bottom[i] = high[i - 1]
        elif close[i] < open_[i] and low[i - 1] > high[i + 1]:
            kind[i] = -1.0
            top[i] = low[i - 1]
            bottom[i] = high[i + 1]
    if join_consecutive:
        for i in range(n - 1):
            if kind[i] == kind[i + 1]:
                top[i + 1] = max(top[i], top[i + 1])
                bottom[i + 1] = min(bottom[i], bottom[i + 1])
                kind[i] = np.nan
                top[i] = np.nan
                bottom[i] = np.nan
    mitigated = np.full(n, np.nan)
    bmin = block_min(low)
    bmax = block_max(high)
    for i in range(n):
        if kind[i] == 1.0:
            j = first_le(low, bmin, i + 2, top[i])
            mitigated[i] = j if j >= 0 else 0.0
        elif kind[i] == -1.0:
            j = first_ge(high, bmax, i + 2, bottom[i])
            mitigated[i] = j if j >= 0 else 0.0
    return kind, top, bottom, mitigated


# ------------------------------------------------------------------------------------------------ BOS/CHOCH


@njit(cache=True)
def bos_choch(high, low, close, hl, swing_level, close_break):
    """Return (BOS f64, CHOCH f64, Level f32, BrokenIndex f64) exactly as ``smc.bos_choch``.

    A pattern of four consecutive swings marks the second of them (position p) with that swing's level, stored as
    float32 and compared as float32 (so a close exactly at the level can count as a break). The package then, for
    each marked p in order, finds its break j_p (first bar >= p+2 beyond the level) and clears every earlier mark
    k with ``broken[k] >= j_p``; it does not clear ``broken[k]``, so such a k keeps its BrokenIndex. A mark k is
    therefore cleared iff some later mark broke no later than k did, which one backward pass with the running
    minimum of later breaks decides. Unbroken marks are cleared at the end.
    """
    n = close.shape[0]
    bos = np.zeros(n, dtype=np.int32)
    choch = np.zeros(n, dtype=np.int32)
    level = np.zeros(n, dtype=np.float32)
    broken = np.zeros(n, dtype=np.int64)
    npos = 0
    positions = np.empty(n, dtype=np.int64)
    for i in range(n):
        if not np.isnan(hl[i]):
            positions[npos] = i
            npos += 1
    for m in range(3, npos):
        p = positions[m - 2]
        h4 = hl[positions[m - 3]]
        h3 = hl[p]
        h2 = hl[positions[m - 1]]
        h1 = hl[positions[m]]
        l4 = swing_level[positions[m - 3]]
        l3 = swing_level[p]
        l2 = swing_level[positions[m - 1]]
        l1 = swing_level[positions[m]]
        bull = h4 == -1.0 and h3 == 1.0 and h2 == -1.0 and h1 == 1.0
        bear = h4 == 1.0 and h3 == -1.0 and h2 == 1.0 and h1 == -1.0
        b = 0
        if bull and l4 < l2 and l2 < l3 and l3 < l1:
            b = 1
        if bear and l4 > l2 and l2 > l3 and l3 > l1:
            b = -1
        c = 0
        if bull and l1 > l3 and l3 > l4 and l4 > l2:
            c = 1
        if bear and l1 < l3 and l3 < l4 and l4 < l2:
            c = -1
        bos[p] = b
        choch[p] = c
        level[p] = np.float32(l3) if (b != 0 or c != 0) else np.float32(0.0)
    series_up = close if close_break else high
    series_down = close if close_break else low
    bmax = block_max(series_up)
    bmin = block_min(series_down)
    nmarks = 0
    marks = np.empty(n, dtype=np.int64)
    for i in range(n):
        if bos[i] != 0 or choch[i] != 0:
            marks[nmarks] = i
            nmarks += 1
            lv = np.float64(level[i])
            if bos[i] == 1 or choch[i] == 1:
                j = first_gt(series_up, bmax, i + 2, lv)
            else:
                j = first_lt(series_down, bmin, i + 2, lv)
            if j >= 0:
                broken[i] = j
    earliest_later_break = n + 1
    for q in range(nmarks - 1, -1, -1):
        k = marks[q]
        if broken[k] == 0 or broken[k] >= earliest_later_break:
            bos[k] = 0
            choch[k] = 0
            level[k] = np.float32(0.0)
        if broken[k] != 0 and broken[k] < earliest_later_break:
            earliest_later_break = broken[k]
    out_bos = np.full(n, np.nan)
    out_choch = np.full(n, np.nan)
    out_level = np.full(n, np.float32(np.nan), dtype=np.float32)
    out_broken = np.full(n, np.nan)
    for i in range(n):
        if bos[i] != 0:
            out_bos[i] = bos[i]
        if choch[i] != 0:
            out_choch[i] = choch[i]
        if level[i] != 0:
            out_level[i] = level[i]
        if broken[i] != 0:
            out_broken[i] = broken[i]
    return out_bos, out_choch, out_level, out_broken


# ------------------------------------------------------------------------------------------------ order blocks


@njit(cache=True)
def _ob_volumes(volume, close_index, bullish):
    vol_cur = volume[close_index]
    vol_prev1 = volume[close_index - 1] if close_index >= 1 else 0.0
    vol_prev2 = volume[close_index - 2] if close_index >= 2 else 0.0
    total = np.float32(vol_cur + vol_prev1 + vol_prev2)
    if bullish:
        low_volume = np.float32(vol_prev2)
        high_volume = np.float32(vol_cur + vol_prev1)
    else:
        low_volume = np.float32(vol_cur + vol_prev1)
        high_volume = np.float32(vol_prev2)
    max_vol = max(high_volume, low_volume)
    if max_vol != 0:
        # float32 / float32 * 100.0 in numpy is float32 arithmetic; one float64 operation rounded to float32 gives
        # the same correctly rounded result for each step
        ratio = np.float32(np.float64(min(high_volume, low_volume)) / np.float64(max_vol))
        pct = np.float32(np.float64(ratio) * 100.0)
    else:
        pct = np.float32(100.0)
    return total, pct


@njit(cache=True)
def ob(open_, high, low, close, volume, hl, close_mitigation):
    """Return (OB f64, Top f32, Bottom f32, OBVolume f32, MitigatedIndex f64, Percentage f32) as ``smc.ob``.

    A straight transcription of the package's two passes (bullish, then bearish) over shared arrays, including:
    the active list may hold an index twice (two swings choosing the same candle), and each copy is processed;
    ``breaker`` is never cleared, so a candle reused as an order block starts out as a breaker; a bullish
    mitigation is recorded at the bar before the mitigating bar, a bearish one at the mitigating bar; when the
    swing is the bar just before the crossing bar, the bullish block is that bar with top=low and bottom=high.
    """
    n = close.shape[0]
    crossed = np.zeros(n, dtype=np.bool_)
    kind = np.zeros(n, dtype=np.int32)
    top = np.zeros(n, dtype=np.float32)
    bottom = np.zeros(n, dtype=np.float32)
    ob_volume = np.zeros(n, dtype=np.float32)
    percentage = np.zeros(n, dtype=np.float32)
    mitigated = np.zeros(n, dtype=np.int32)
    breaker = np.zeros(n, dtype=np.bool_)
    highs = np.empty(n, dtype=np.int64)
    lows = np.empty(n, dtype=np.int64)
    nh = 0
    nl = 0
    for i in range(n):
        if hl[i] == 1.0:
            highs[nh] = i
            nh += 1
        elif hl[i] == -1.0:
            lows[nl] = i
            nl += 1
    active = np.empty(n + 1, dtype=np.int64)

    # ---- bullish pass
    count = 0
    ptr = 0
    for i in range(n):
        keep = 0
        for a in range(count):
            idx = active[a]
            removed = False
            if breaker[idx]:
                if high[i] > top[idx]:
                    kind[idx] = 0
                    top[idx] = 0.0
                    bottom[idx] = 0.0
                    ob_volume[idx] = 0.0
                    mitigated[idx] = 0
                    percentage[idx] = 0.0
                    removed = True
            else:
                if (not close_mitigation and low[i] < bottom[idx]) or (
                    close_mitigation and min(open_[i], close[i]) < bottom[idx]
                ):
                    breaker[idx] = True
                    mitigated[idx] = i - 1
            if not removed:
                active[keep] = idx
                keep += 1
        count = keep
        while ptr < nh and highs[ptr] < i:
            ptr += 1
        if ptr > 0:
            last_top = highs[ptr - 1]
            if close[i] > high[last_top] and not crossed[last_top]:
                crossed[last_top] = True
                ob_index = i - 1
                ob_btm = high[ob_index]
                ob_top = low[ob_index]
                if i - last_top > 1:
                    best = last_top + 1
                    for c in range(last_top + 2, i):
                        if low[c] <= low[best]:
                            best = c
                    ob_btm = low[best]
                    ob_top = high[best]
                    ob_index = best
                kind[ob_index] = 1
                top[ob_index] = ob_top
                bottom[ob_index] = ob_btm
                total, pct = _ob_volumes(volume, i, True)
                ob_volume[ob_index] = total
                percentage[ob_index] = pct
                active[count] = ob_index
                count += 1

    # ---- bearish pass (same arrays: the package shares them)
    count = 0
    ptr = 0
    for i in range(n):
        keep = 0
        for a in range(count):
            idx = active[a]
            removed = False
            if breaker[idx]:
                if low[i] < bottom[idx]:
                    kind[idx] = 0
                    top[idx] = 0.0
                    bottom[idx] = 0.0
                    ob_volume[idx] = 0.0
                    mitigated[idx] = 0
                    percentage[idx] = 0.0
                    removed = True
            else:
                if (not close_mitigation and high[i] > top[idx]) or (
                    close_mitigation and max(open_[i], close[i]) > top[idx]
                ):
                    breaker[idx] = True
                    mitigated[idx] = i
            if not removed:
                active[keep] = idx
                keep += 1
        count = keep
        while ptr < nl and lows[ptr] < i:
            ptr += 1
        if ptr > 0:
            last_btm = lows[ptr - 1]
            if close[i] < low[last_btm] and not crossed[last_btm]:
                crossed[last_btm] = True
                ob_index = i - 1
                ob_top = high[ob_index]
                ob_btm = low[ob_index]
                if i - last_btm > 1:
                    best = last_btm + 1
                    for c in range(last_btm + 2, i):
                        if high[c] >= high[best]:
                            best = c
                    ob_top = high[best]
                    ob_btm = low[best]
                    ob_index = best
                kind[ob_index] = -1
                top[ob_index] = ob_top
                bottom[ob_index] = ob_btm
                total, pct = _ob_volumes(volume, i, False)
                ob_volume[ob_index] = total
                percentage[ob_index] = pct
                active[count] = ob_index
                count += 1

    nan32 = np.float32(np.nan)
    out_kind = np.full(n, np.nan)
    out_top = np.full(n, nan32, dtype=np.float32)
    out_bottom = np.full(n, nan32, dtype=np.float32)
    out_volume = np.full(n, nan32, dtype=np.float32)
    out_mitigated = np.full(n, np.nan)
    out_pct = np.full(n, nan32, dtype=np.float32)
    for i in range(n):
        if kind[i] != 0:
            out_kind[i] = kind[i]
            out_top[i] = top[i]
            out_bottom[i] = bottom[i]
            out_volume[i] = ob_volume[i]
            out_mitigated[i] = mitigated[i]
            out_pct[i] = percentage[i]
    return out_kind, out_top, out_bottom, out_volume, out_mitigated, out_pct


# ------------------------------------------------------------------------------------------------- liquidity


@njit(cache=True)
def _liquidity_side(prices, bext, hl, swing_level, side, pip_range, out_kind, out_level, out_end, out_swept):
    n = prices.shape[0]
    idx = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if hl[i] == side:
            idx[m] = i
            m += 1
    used = np.zeros(m, dtype=np.bool_)
    for a in range(m):
        if used[a]:
            continue
        i = idx[a]
        lv = swing_level[i]
        range_low = lv - pip_range
        range_high = lv + pip_range
        swept = first_ge(prices, bext, i + 1, range_high) if side == 1.0 else first_le(prices, bext, i + 1, range_low)
        if swept < 0:
            swept = 0
        total = lv
        count = 1
        end = i
        for b in range(a + 1, m):
            j = idx[b]
            if swept != 0 and j >= swept:
                break
            if not used[b] and range_low <= swing_level[j] and swing_level[j] <= range_high:
                total += swing_level[j]
                count += 1
                end = j
                used[b] = True
        if count > 1:
            out_kind[i] = side
            out_level[i] = np.float32(total / count)
            out_end[i] = end
            out_swept[i] = swept


@njit(cache=True)
def liquidity(high, low, hl, swing_level, range_percent):
    """Return (Liquidity, Level, End, Swept) float32 arrays exactly as ``smc.liquidity``.

    The band is ``range_percent`` of the whole frame's high-low range (so it depends on bars after the swing);
    Swept is 0 when the pool is never swept; Level is the float64 mean of the grouped levels, stored as float32.
    """
    n = high.shape[0]
    nan32 = np.float32(np.nan)
    out_kind = np.full(n, nan32, dtype=np.float32)
    out_level = np.full(n, nan32, dtype=np.float32)
    out_end = np.full(n, nan32, dtype=np.float32)
    out_swept = np.full(n, nan32, dtype=np.float32)
    if n == 0:
        return out_kind, out_level, out_end, out_swept
    pip_range = (high.max() - low.min()) * range_percent
    _liquidity_side(high, block_max(high), hl, swing_level, 1.0, pip_range, out_kind, out_level, out_end, out_swept)
    _liquidity_side(low, block_min(low), hl, swing_level, -1.0, pip_range, out_kind, out_level, out_end, out_swept)
    return out_kind, out_level, out_end, out_swept
