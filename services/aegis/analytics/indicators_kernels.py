"""Numba kernels behind :mod:`aegis.analytics.indicators` (internal; call the functions there).

Every indicator is written once, as a *step*: a function that takes one bar, reads and writes its few state
fields (``state[row, offset + k]``) and returns the indicator's value at that bar (NaN during the warm-up). The
batch kernels run a step over a whole series with a one-row state; the streaming kernel runs the same steps for
many symbols, one row per symbol. Because both paths execute the same floating-point operations in the same
order, streaming and batch values are bit-identical.

The steps follow TA-Lib's C code (seeding, warm-up, Wilder smoothing, its zero tests) and, where we could
identify it, the exact arithmetic of the TA-Lib build we test against (C library 0.8.1): SMA, EMA, RSI, MACD and
ADX reproduce it bit for bit (MACD's EMAs use a fused multiply-add, RSI multiplies by ``1/period``). ATR agrees to
the last bit or two (TA-Lib restructured its recurrence). BBANDS' standard deviation is computed accurately (TA-Lib
0.8.1 no longer uses the cancelling ``E[x²] - E[x]²``), from running sums of deviations from an anchor that is reset
to the window's mean every ``period`` bars (O(1) per bar, amortised).

``i`` is always the bar's position counted from the first bar the state has seen (0 for the first bar). Values of
past bars are read from ``buf[brow, slot]``: the input itself in batch (``slot == i``), a per-symbol ring of
``window`` closes in streaming (``slot == i % window``); ``pos`` is the slot of bar ``i``.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

NAN = math.nan
# TA-Lib up to 0.6 treated |x| < 1e-8 as zero (TA_IS_ZERO); 0.8.1, the reference here, tests for exact zero
# (e.g. its RSI of a series that rose once then stayed flat stays 100 until the average gain underflows to 0).

# State fields per indicator (offsets inside one row).
SMA_FIELDS = 1  # running sum
EMA_FIELDS = 1  # running sum during the warm-up, then the EMA
RSI_FIELDS = 3  # previous close, average gain, average loss
ATR_FIELDS = 2  # previous close, sum of true ranges during the warm-up, then the ATR
MACD_FIELDS = 3  # slow EMA, fast EMA, signal EMA
BBANDS_FIELDS = 5  # running sum; anchor, sum and sum of squares of deviations from it; bars to re-anchoring
ADX_FIELDS = 7  # previous high, low, close; +DM, -DM, TR (Wilder sums); sum of DX, then the ADX

# Layout of one row of the multi-symbol streaming state.
S_SMA = 0
S_EMA = S_SMA + SMA_FIELDS
S_RSI = S_EMA + EMA_FIELDS
S_ATR = S_RSI + RSI_FIELDS
S_MACD = S_ATR + ATR_FIELDS
S_BBANDS = S_MACD + MACD_FIELDS
S_ADX = S_BBANDS + BBANDS_FIELDS
STATE_FIELDS = S_ADX + ADX_FIELDS

# Columns of the streaming output.
OUT_SMA, OUT_EMA, OUT_RSI, OUT_ATR = 0, 1, 2, 3
OUT_MACD, OUT_MACD_SIGNAL, OUT_MACD_HIST = 4, 5, 6
OUT_BB_UPPER, OUT_BB_MIDDLE, OUT_BB_LOWER = 7, 8, 9
OUT_ADX = 10
OUTPUTS = 11

# Integer parameters of the streaming kernel (float parameters: EMA k, MACD k slow/fast/signal, nbdev).
P_SMA, P_EMA, P_RSI, P_ATR, P_FAST, P_SLOW, P_SIGNAL, P_BB, P_ADX, P_WINDOW = range(10)
F_EMA_K, F_SLOW_K, F_FAST_K, F_SIGNAL_K, F_NBDEV = range(5)


# BBANDS re-anchors on the exact window whenever the variance falls below _RESYNC_REL * middle² + _RESYNC_ABS, so a
# small variance (a quiet or flat window) is always computed from the window itself, not from long-running sums.
_RESYNC_REL = 1e-12
_RESYNC_ABS = 1e-6


@intrinsic
def fma(typingctx, a, b, c):
    """Return ``a * b + c`` rounded once (LLVM's ``llvm.fma``), as TA-Lib's compiled MACD computes its EMAs."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3))
        return builder.call(fn, args)

    return sig, codegen


# ------------------------------------------------------------------------------------------------------------
# Steps (one bar)


@njit(cache=True, error_model="numpy", inline="always")
def _back(pos, k, window):
    """Slot of the bar ``k`` bars before the one in slot ``pos``."""
    j = pos - k
    if j < 0:
        j += window
    return j


@njit(cache=True, error_model="numpy", inline="always")
def _is_zero(value: float) -> bool:
    return value == 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _true_range(high: float, low: float, prev_close: float) -> float:
    # TA-Lib's TRUE_RANGE macro, comparison for comparison.
    out = high - low
    other = abs(high - prev_close)
    if other > out:
        out = other
    other = abs(low - prev_close)
    if other > out:
        out = other
    return out


@njit(cache=True, error_model="numpy", inline="always")
def sma_step(st, row, o, i, x, buf, brow, pos, window, period):
    """TA_INT_SMA: add today's value, emit total/period, then drop the oldest value of the window."""
    total = st[row, o] + x
    if i < period - 1:
        st[row, o] = total
        return NAN
    st[row, o] = total - buf[brow, _back(pos, period - 1, window)]
    return total / period


@njit(cache=True, error_model="numpy", inline="always")
def ema_step(st, row, o, j, x, period, k, fused):
    """TA_INT_EMA: seed with the mean of the first ``period`` values (j counts from the first of them), then
    ``ema += (x - ema) * k``, rounded once when ``fused``."""
    if j < 0:
        return NAN
    if j < period - 1:
        st[row, o] += x
        return NAN
    if j == period - 1:
        value = (st[row, o] + x) / period
    else:
        prev = st[row, o]
        value = fma(x - prev, k, prev) if fused else ((x - prev) * k) + prev
    st[row, o] = value
    return value


@njit(cache=True, error_model="numpy", inline="always")
def rsi_step(st, row, o, i, x, period):
    """TA_RSI with unstable period 0: mean gain/loss over the first ``period`` changes, then Wilder smoothing."""
    if i == 0:
        st[row, o] = x
        return NAN
    change = x - st[row, o]
    st[row, o] = x
    gain = st[row, o + 1]
    loss = st[row, o + 2]
    if i <= period:
        if change < 0:
            loss -= change
        else:
            gain += change
        if i < period:
            st[row, o + 1] = gain
            st[row, o + 2] = loss
            return NAN
        loss *= 1.0 / period
        gain *= 1.0 / period
    else:
        loss *= period - 1
        gain *= period - 1
        if change < 0:
            loss -= change
        else:
            gain += change
        loss *= 1.0 / period
        gain *= 1.0 / period
    st[row, o + 1] = gain
    st[row, o + 2] = loss
    total = gain + loss
    if _is_zero(total):
        return 0.0
    return 100.0 * (gain / total)


@njit(cache=True, error_model="numpy", inline="always")
def atr_step(st, row, o, i, high, low, close, period):
    """TA_ATR: mean of the first ``period`` true ranges (bars 1..period), then Wilder smoothing."""
    if i == 0:
        st[row, o] = close
        return NAN
    tr = _true_range(high, low, st[row, o])
    st[row, o] = close
    if i < period:
        st[row, o + 1] += tr
        return NAN
    if i == period:
        value = (st[row, o + 1] + tr) / period
    else:
        value = st[row, o + 1]
        value *= period - 1
        value += tr
        value /= period
    st[row, o + 1] = value
    return value


@njit(cache=True, error_model="numpy", inline="always")
def macd_step(st, row, o, i, x, fast, slow, signal, k_fast, k_slow, k_signal):
    """TA_MACD: both EMAs start at bar slow-1 (the fast one seeded on bars slow-fast..slow-1), signal on top."""
    slow_ema = ema_step(st, row, o, i, x, slow, k_slow, True)
    fast_ema = ema_step(st, row, o + 1, i - (slow - fast), x, fast, k_fast, True)
    if i < slow - 1:
        return NAN, NAN, NAN
    line = fast_ema - slow_ema
    sig = ema_step(st, row, o + 2, i - (slow - 1), line, signal, k_signal, True)
    if i < slow + signal - 2:
        return NAN, NAN, NAN
    return line, sig, line - sig


@njit(cache=True, error_model="numpy", inline="always")
def _window_sums(st, row, o, buf, brow, pos, window, period, anchor):
    """Re-anchor: recompute the sums of deviations (and their squares) from ``anchor`` over the window."""
    j = _back(pos, period - 1, window)
    s1 = 0.0
    s2 = 0.0
    for _ in range(period):
        d = buf[brow, j] - anchor
        s1 += d
        s2 += d * d
        j += 1
        if j == window:
            j = 0
    st[row, o + 1] = anchor
    st[row, o + 2] = s1
    st[row, o + 3] = s2
    st[row, o + 4] = period  # bars until the next re-anchoring


@njit(cache=True, error_model="numpy", inline="always")
def _variance(st, row, o, period):
    mean = st[row, o + 2] / period
    return st[row, o + 3] / period - mean * mean


@njit(cache=True, error_model="numpy", inline="always")
def bbands_step(st, row, o, i, x, buf, brow, pos, window, period, nbdev):
    """TA_BBANDS with an SMA middle band and ``nbdevup == nbdevdn``: middle ± nbdev population stddevs.

    The variance comes from running sums of deviations from an anchor near the window's mean (so rounding scales
    with the price *range*, not the price), re-anchored on the exact window every ``period`` bars and whenever the
    variance is small enough for the sums' rounding to matter: O(1) per bar, amortised.
    """
    total = st[row, o] + x
    if i < period - 1:
        st[row, o] = total
        return NAN, NAN, NAN
    middle = total / period
    st[row, o] = total - buf[brow, _back(pos, period - 1, window)]
    countdown = st[row, o + 4] - 1.0
    if i == period - 1 or countdown <= 0.0:
        _window_sums(st, row, o, buf, brow, pos, window, period, middle)
    else:
        anchor = st[row, o + 1]
        d_in = x - anchor
        d_out = buf[brow, _back(pos, period, window)] - anchor
        st[row, o + 2] = st[row, o + 2] + d_in - d_out
        st[row, o + 3] = st[row, o + 3] + d_in * d_in - d_out * d_out
        st[row, o + 4] = countdown
    variance = _variance(st, row, o, period)
    if variance < _RESYNC_REL * middle * middle + _RESYNC_ABS:
        _window_sums(st, row, o, buf, brow, pos, window, period, middle)
        variance = _variance(st, row, o, period)
    dev = math.sqrt(variance) if variance > 0.0 else 0.0
    width = dev * nbdev
    return middle + width, middle, middle - width


@njit(cache=True, error_model="numpy", inline="always")
def adx_step(st, row, o, i, high, low, close, period):
    """TA_ADX: Wilder sums of +DM/-DM/TR, DX averaged over bars period..2*period-1, then Wilder-smoothed."""
    if i == 0:
        st[row, o] = high
        st[row, o + 1] = low
        st[row, o + 2] = close
        return NAN
    diff_plus = high - st[row, o]
    diff_minus = st[row, o + 1] - low
    tr = _true_range(high, low, st[row, o + 2])
    st[row, o] = high
    st[row, o + 1] = low
    st[row, o + 2] = close
    plus_dm = st[row, o + 3]
    minus_dm = st[row, o + 4]
    tr_sum = st[row, o + 5]
    if i >= period:
        minus_dm -= minus_dm / period
        plus_dm -= plus_dm / period
    if diff_minus > 0 and diff_plus < diff_minus:
        minus_dm += diff_minus
    elif diff_plus > 0 and diff_plus > diff_minus:
        plus_dm += diff_plus
    if i < period:
        tr_sum += tr
    else:
        tr_sum = tr_sum - (tr_sum / period) + tr
    st[row, o + 3] = plus_dm
    st[row, o + 4] = minus_dm
    st[row, o + 5] = tr_sum
    if i < period:
        return NAN
    last_seed = 2 * period - 1
    if not _is_zero(tr_sum):
        minus_di = 100.0 * (minus_dm / tr_sum)
        plus_di = 100.0 * (plus_dm / tr_sum)
        di_sum = minus_di + plus_di
        if not _is_zero(di_sum):
            dx = 100.0 * (abs(minus_di - plus_di) / di_sum)
            if i <= last_seed:
                st[row, o + 6] += dx
            else:
                st[row, o + 6] = ((st[row, o + 6] * (period - 1)) + dx) / period
    if i < last_seed:
        return NAN
    if i == last_seed:
        st[row, o + 6] = st[row, o + 6] / period
    return st[row, o + 6]


# ------------------------------------------------------------------------------------------------------------
# Batch kernels (one series; the caller has validated it and dropped leading NaNs)


@njit(cache=True, error_model="numpy")
def sma_batch(x, period, out):
    st = np.zeros((1, SMA_FIELDS))
    buf = x.reshape((1, x.shape[0]))
    for i in range(x.shape[0]):
        out[i] = sma_step(st, 0, 0, i, x[i], buf, 0, i, x.shape[0], period)


@njit(cache=True, error_model="numpy")
def ema_batch(x, period, k, out):
    st = np.zeros((1, EMA_FIELDS))
    for i in range(x.shape[0]):
        out[i] = ema_step(st, 0, 0, i, x[i], period, k, False)


@njit(cache=True, error_model="numpy")
def rsi_batch(x, period, out):
    st = np.zeros((1, RSI_FIELDS))
    for i in range(x.shape[0]):
        out[i] = rsi_step(st, 0, 0, i, x[i], period)


@njit(cache=True, error_model="numpy")
def atr_batch(high, low, close, period, out):
    st = np.zeros((1, ATR_FIELDS))
    for i in range(close.shape[0]):
        out[i] = atr_step(st, 0, 0, i, high[i], low[i], close[i], period)


@njit(cache=True, error_model="numpy")
def macd_batch(x, fast, slow, signal, k_fast, k_slow, k_signal, line, sig, hist):
    st = np.zeros((1, MACD_FIELDS))
    for i in range(x.shape[0]):
        line[i], sig[i], hist[i] = macd_step(st, 0, 0, i, x[i], fast, slow, signal, k_fast, k_slow, k_signal)


@njit(cache=True, error_model="numpy")
def bbands_batch(x, period, nbdev, upper, middle, lower):
    st = np.zeros((1, BBANDS_FIELDS))
    buf = x.reshape((1, x.shape[0]))
    for i in range(x.shape[0]):
        upper[i], middle[i], lower[i] = bbands_step(st, 0, 0, i, x[i], buf, 0, i, x.shape[0], period, nbdev)


@njit(cache=True, error_model="numpy")
def adx_batch(high, low, close, period, out):
    st = np.zeros((1, ADX_FIELDS))
    for i in range(close.shape[0]):
        out[i] = adx_step(st, 0, 0, i, high[i], low[i], close[i], period)


@njit(cache=True, error_model="numpy")
def obv_batch(close, volume, out):
    # TA_OBV: starts at the first bar's volume, then adds or subtracts each bar's volume by the close's direction.
    total = volume[0]
    prev = close[0]
    for i in range(close.shape[0]):
        x = close[i]
        if x > prev:
            total += volume[i]
        elif x < prev:
            total -= volume[i]
        out[i] = total
        prev = x


@njit(cache=True, error_model="numpy")
def anchored_vwap_batch(high, low, close, volume, reset, out):
    pv = 0.0
    vol = 0.0
    for i in range(close.shape[0]):
        if reset[i]:
            pv = 0.0
            vol = 0.0
        typical = (high[i] + low[i] + close[i]) / 3.0
        pv += typical * volume[i]
        vol += volume[i]
        out[i] = pv / vol if vol > 0.0 else NAN


# ------------------------------------------------------------------------------------------------------------
# Streaming kernel (many symbols, one closed bar each)


@njit(cache=True, error_model="numpy")
def first_non_finite(high, low, close):
    """Return ``j * n_bars + t`` of the first bar ``[j, t]`` with a non-finite high, low or close, or -1."""
    n_bars = close.shape[1]
    for j in range(close.shape[0]):
        for t in range(n_bars):
            if not (math.isfinite(high[j, t]) and math.isfinite(low[j, t]) and math.isfinite(close[j, t])):
                return j * n_bars + t
    return -1


@njit(cache=True, error_model="numpy")
def stream_update(state, ring, bars, positions, ip, fp, symbols, high, low, close, values):
    """Advance ``symbols[j]`` by the bars ``(high[j, t], low[j, t], close[j, t])``, t = 0, 1, ... in order.

    Return -1, or ``j * n_bars + t`` of the first non-finite bar, in which case nothing was changed.
    """
    bad = first_non_finite(high, low, close)
    if bad >= 0:
        return bad
    # Parameters as locals: they stay in registers instead of being reloaded after every store to the state.
    sma_p, ema_p, rsi_p, atr_p = ip[P_SMA], ip[P_EMA], ip[P_RSI], ip[P_ATR]
    fast, slow, signal, bb_p, adx_p, window = ip[P_FAST], ip[P_SLOW], ip[P_SIGNAL], ip[P_BB], ip[P_ADX], ip[P_WINDOW]
    ema_k, k_fast, k_slow, k_signal, nbdev = fp[F_EMA_K], fp[F_FAST_K], fp[F_SLOW_K], fp[F_SIGNAL_K], fp[F_NBDEV]
    n = symbols.shape[0]
    for t in range(close.shape[1]):
        # One loop per indicator over all symbols: the symbols' dependency chains are independent, so the CPU
        # overlaps them (a loop per symbol would wait on each indicator's chain of divisions in turn).
        for j in range(n):
            ring[symbols[j], positions[symbols[j]]] = close[j, t]
        for j in range(n):
            s = symbols[j]
            values[s, OUT_SMA] = sma_step(state, s, S_SMA, bars[s], close[j, t], ring, s, positions[s], window, sma_p)
        for j in range(n):
            s = symbols[j]
            values[s, OUT_EMA] = ema_step(state, s, S_EMA, bars[s], close[j, t], ema_p, ema_k, False)
        for j in range(n):
            s = symbols[j]
            values[s, OUT_RSI] = rsi_step(state, s, S_RSI, bars[s], close[j, t], rsi_p)
        for j in range(n):
            s = symbols[j]
            values[s, OUT_ATR] = atr_step(state, s, S_ATR, bars[s], high[j, t], low[j, t], close[j, t], atr_p)
        for j in range(n):
            s = symbols[j]
            line, sig, hist = macd_step(
                state, s, S_MACD, bars[s], close[j, t], fast, slow, signal, k_fast, k_slow, k_signal
            )
            values[s, OUT_MACD] = line
            values[s, OUT_MACD_SIGNAL] = sig
            values[s, OUT_MACD_HIST] = hist
        for j in range(n):
            s = symbols[j]
            upper, middle, lower = bbands_step(
                state, s, S_BBANDS, bars[s], close[j, t], ring, s, positions[s], window, bb_p, nbdev
            )
            values[s, OUT_BB_UPPER] = upper
            values[s, OUT_BB_MIDDLE] = middle
            values[s, OUT_BB_LOWER] = lower
        for j in range(n):
            s = symbols[j]
            values[s, OUT_ADX] = adx_step(state, s, S_ADX, bars[s], high[j, t], low[j, t], close[j, t], adx_p)
        for j in range(n):
            s = symbols[j]
            bars[s] += 1
            positions[s] = positions[s] + 1 if positions[s] + 1 < window else 0
    return -1


@njit(cache=True, error_model="numpy")
def stream_update_one(state, ring, bars, positions, ip, fp, s, high, low, close, values):
    """Advance symbol row ``s`` by one bar given as scalars (no arrays to build per call); False if not finite.

    The same steps, in the same order, as :func:`stream_update` with one symbol and one bar.
    """
    if not (math.isfinite(high) and math.isfinite(low) and math.isfinite(close)):
        return False
    sma_p, ema_p, rsi_p, atr_p = ip[P_SMA], ip[P_EMA], ip[P_RSI], ip[P_ATR]
    fast, slow, signal, bb_p, adx_p, window = ip[P_FAST], ip[P_SLOW], ip[P_SIGNAL], ip[P_BB], ip[P_ADX], ip[P_WINDOW]
    ema_k, k_fast, k_slow, k_signal, nbdev = fp[F_EMA_K], fp[F_FAST_K], fp[F_SLOW_K], fp[F_SIGNAL_K], fp[F_NBDEV]
    bar = bars[s]
    position = positions[s]
    ring[s, position] = close
    values[s, OUT_SMA] = sma_step(state, s, S_SMA, bar, close, ring, s, position, window, sma_p)
    values[s, OUT_EMA] = ema_step(state, s, S_EMA, bar, close, ema_p, ema_k, False)
    values[s, OUT_RSI] = rsi_step(state, s, S_RSI, bar, close, rsi_p)
    values[s, OUT_ATR] = atr_step(state, s, S_ATR, bar, high, low, close, atr_p)
    line, sig, hist = macd_step(state, s, S_MACD, bar, close, fast, slow, signal, k_fast, k_slow, k_signal)
    values[s, OUT_MACD] = line
    values[s, OUT_MACD_SIGNAL] = sig
    values[s, OUT_MACD_HIST] = hist
    upper, middle, lower = bbands_step(state, s, S_BBANDS, bar, close, ring, s, position, window, bb_p, nbdev)
    values[s, OUT_BB_UPPER] = upper
    values[s, OUT_BB_MIDDLE] = middle
    values[s, OUT_BB_LOWER] = lower
    values[s, OUT_ADX] = adx_step(state, s, S_ADX, bar, high, low, close, adx_p)
    bars[s] = bar + 1
    positions[s] = position + 1 if position + 1 < window else 0
    return True
