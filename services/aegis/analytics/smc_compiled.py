"""Compiled twin of :class:`aegis.analytics.smc_stream.StreamingSMC`: the same events, one numba call per candle.

:class:`CompiledSMC` takes the same arguments, raises the same :class:`aegis.errors.ValidationError` and returns
the same :mod:`msgspec` event structs, equal field for field and in the same order, for every candle (tested
event for event against :class:`StreamingSMC` on the real klines and on generated candles with many equal
prices, see ``tests/unit/analytics/test_smc_compiled.py``), horizon trimming included. Its whole state is one
flat int64 array (layout in :mod:`aegis.analytics.smc_compiled_kernels`), so an update is a single call of
:func:`~aegis.analytics.smc_compiled_kernels.smc_update`, which writes the events as numbers; the structs are
built here only for the candles that produce one. When a collection is full the kernel changes nothing and asks
for room: the full regions are doubled here and the call repeated, so with ``horizon=None`` everything grows
without bound, as in the Python detector.

Prices and volumes are taken as float64 (an int or a numpy float32 is converted, as ``float()`` does). The Python
detector stores them as float64 too, except its running max high / min low, which keep the value given: the
liquidity band of the two detectors can differ only for numpy float32 input (the Python one then computes it in
float32) or for ints beyond 2**53.
"""

from __future__ import annotations

import math
import struct
from typing import Literal

import numpy as np

from aegis.analytics import smc_compiled_kernels as _k
from aegis.analytics.smc_stream import (
    DEFAULT_HORIZON,
    FvgEvent,
    LiquidityEvent,
    OrderBlockEvent,
    SmcEvent,
    StructureEvent,
    SwingEvent,
    check_options,
    raise_if_not_finite,
)

__all__ = ["CompiledSMC", "warm_up"]

_KINDS: tuple[Literal["BOS", "CHOCH"], ...] = ("BOS", "CHOCH")
_FVG_ACTIONS: tuple[Literal["formed", "mitigated"], ...] = ("formed", "mitigated")
_STRUCTURE_ACTIONS: tuple[Literal["broken", "superseded"], ...] = ("broken", "superseded")
_BLOCK_ACTIONS: tuple[Literal["formed", "mitigated", "removed"], ...] = ("formed", "mitigated", "removed")
_POOL_ACTIONS: tuple[Literal["formed", "grown", "swept"], ...] = ("formed", "grown", "swept")
_INITIAL_ROWS = (1024, 64, 32, 32, 8, 8, 16, 16, 32, 8)  # per region, see smc_compiled_kernels.R_*
# memory order: the event rows next to the header, the candles (the big region) last
_ORDER = (_k.R_EVENT, _k.R_BULL, _k.R_BEAR, _k.R_PENDING, _k.R_SCRATCH, _k.R_BROKEN, _k.R_BLOCK, _k.R_POOL, _k.R_SWING)
_ORDER += (_k.R_CANDLE,)
_ROW = struct.Struct("<8q4d")  # an event row: type, bar, index, a, b, c, d, e, four floats
_SIGNATURE = "int64(int64[::1], float64, float64, float64, float64, float64)"
_update = _k.smc_update
_compiled = False


def _compile() -> None:
    """Compile (or load from numba's cache) the kernel for float64 values only, once: the dispatcher then converts
    an int or a float32 to float64 (as ``float()`` does) instead of compiling another specialization."""
    global _compiled
    if not _compiled:
        _update.compile(_SIGNATURE)
        _update.disable_compile()
        _compiled = True


def _allocate(rows: list[int]) -> np.ndarray:
    """A fresh state array whose regions have the given capacities (header zeroed, counts 0)."""
    size = _k.HEADER
    offsets = [(0, 0)] * _k.N_REGIONS
    for r in _ORDER:
        offsets[r] = (size, size + rows[r] * _k.STRIDE_I[r])
        size += rows[r] * (_k.STRIDE_I[r] + _k.STRIDE_F[r])
    state = np.zeros(size, dtype=np.int64)
    for r, cap in enumerate(rows):
        slot = _k.H_REGIONS + 4 * r
        state[slot], state[slot + 1] = offsets[r]
        state[slot + 2] = cap
    return state


def _swing(r: tuple) -> SmcEvent:
    return SwingEvent(r[1], r[2], r[3], r[8], None if r[4] < 0 else r[4])


def _fvg(r: tuple) -> SmcEvent:
    return FvgEvent(r[1], r[2], r[3], r[8], r[9], _FVG_ACTIONS[r[4]], None if r[5] < 0 else r[5])


def _structure(r: tuple) -> SmcEvent:
    return StructureEvent(r[1], r[2], _KINDS[r[3]], r[4], r[8], r[5], _STRUCTURE_ACTIONS[r[6]])


def _block(r: tuple) -> SmcEvent:
    return OrderBlockEvent(r[1], r[2], r[3], r[8], r[9], r[10], r[11], _BLOCK_ACTIONS[r[4]])


def _pool(r: tuple) -> SmcEvent:
    return LiquidityEvent(r[1], r[2], r[3], r[8], r[4], r[5], None if r[6] < 0 else r[6], _POOL_ACTIONS[r[7]])


_MAKERS = (_swing, _fvg, _structure, _block, _pool)  # by event type (smc_compiled_kernels.EV_*)


class CompiledSMC:
    """Causal SMC detector for one symbol and one timeframe, equal to :class:`StreamingSMC` event for event."""

    __slots__ = (
        "_bytes",
        "_event",
        "_s",
        "close_break",
        "close_mitigation",
        "float32_levels",
        "horizon",
        "liquidity_band",
        "range_percent",
        "swing_length",
    )

    def __init__(
        self,
        swing_length: int = 50,
        *,
        close_break: bool = True,
        close_mitigation: bool = False,
        range_percent: float = 0.01,
        liquidity_band: float | None = None,
        float32_levels: bool = False,
        horizon: int | None = DEFAULT_HORIZON,
    ) -> None:
        check_options(swing_length, liquidity_band, horizon)
        self.swing_length = int(swing_length)
        self.close_break = close_break
        self.close_mitigation = close_mitigation
        self.range_percent = float(range_percent)
        self.liquidity_band = liquidity_band
        self.float32_levels = float32_levels
        self.horizon = None if horizon is None else int(horizon)
        _compile()
        rows = list(_INITIAL_ROWS)
        if self.horizon is not None:
            rows[_k.R_CANDLE] = 2 * self.horizon + 1  # the most candles it ever holds (before a trim, plus one)
        state = _allocate(rows)
        state[_k.H_NEXT_TRIM] = -1 if self.horizon is None else 2 * self.horizon
        state[_k.H_HORIZON] = -1 if self.horizon is None else self.horizon
        state[_k.H_LEN] = self.swing_length
        state[_k.H_CLOSE_BREAK] = bool(close_break)
        state[_k.H_CLOSE_MIT] = bool(close_mitigation)
        state[_k.H_F32] = bool(float32_levels)
        state[_k.H_HAS_BAND] = liquidity_band is not None
        state[_k.H_LAST_MARK] = -1
        state[_k.H_POOLS_DROP] = _k.BIG
        floats = state.view(np.float64)
        floats[_k.F_MAX_HIGH] = -math.inf
        floats[_k.F_MIN_LOW] = math.inf
        floats[_k.F_RANGE_PCT] = self.range_percent
        floats[_k.F_BAND] = 0.0 if liquidity_band is None else float(liquidity_band)
        floats[_k.F_OB : _k.F_OB + 4] = (-math.inf, math.inf, math.inf, -math.inf)
        floats[_k.F_POOL_UP] = math.inf
        floats[_k.F_POOL_DOWN] = -math.inf
        state[[_k.H_SWING_1, _k.H_SWING_2]] = -1
        floats[_k.F_BULL_TOP] = -math.inf
        floats[_k.F_BEAR_BOTTOM] = math.inf
        self._set_state(state)

    def _set_state(self, state: np.ndarray) -> None:
        self._s = state
        self._bytes = memoryview(state).cast("B")
        self._event = 8 * int(state[_k.H_REGIONS + 4 * _k.R_EVENT])  # byte offset of the first event row

    @property
    def delay(self) -> int:
        """Bars between a swing and the bar that confirms it."""
        return self.swing_length

    @property
    def bars(self) -> int:
        """Candles seen so far."""
        return int(self._s[_k.H_T])

    @property
    def swings(self) -> tuple[tuple[int, int, float], ...]:
        """The swings known now as ``(index, high_low, level)``; the last one may still be replaced."""
        slot = _k.H_REGIONS + 4 * _k.R_SWING
        oi, of, _, n = self._s[slot : slot + 4].tolist()
        ints = self._s[oi : oi + 2 * n].tolist()
        levels = self._s.view(np.float64)[of : of + n].tolist()
        return tuple((ints[2 * k], ints[2 * k + 1], levels[k]) for k in range(n))

    def capacity(self, region: int) -> int:
        """Rows region ``region`` (``smc_compiled_kernels.R_*``) can hold now (for tests and diagnostics)."""
        return int(self._s[_k.H_REGIONS + 4 * region + 2])

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> list[SmcEvent]:
        """Take the next closed candle; return what became known at it, in a fixed order."""
        n = _update(self._s, open, high, low, close, volume)  # numba converts the values to float64
        if n == 0:  # most candles
            return []
        if n < 0:
            n = self._retry(n, open, high, low, close, volume)
            if n == 0:
                return []
        if n == 1:
            r = _ROW.unpack_from(self._bytes, self._event)
            if r[0] == 1:  # a gap, the most common event: built here (a call less)
                return [FvgEvent(r[1], r[2], r[3], r[8], r[9], _FVG_ACTIONS[r[4]], None if r[5] < 0 else r[5])]
            return [_MAKERS[r[0]](r)]
        events: list[SmcEvent] = []
        for r in _ROW.iter_unpack(self._bytes[self._event : self._event + _ROW.size * n]):
            if r[0] == 1:
                events.append(FvgEvent(r[1], r[2], r[3], r[8], r[9], _FVG_ACTIONS[r[4]], None if r[5] < 0 else r[5]))
            else:
                events.append(_MAKERS[r[0]](r))
        return events

    def _retry(self, n: int, open: float, high: float, low: float, close: float, volume: float) -> int:
        """The kernel changed nothing: raise for a non-finite value (-2), or grow the arrays until it fits (-1)."""
        if n == -2:
            raise_if_not_finite(open, high, low, close, volume)
        while n == -1:
            self._grow()
            n = _update(self._s, open, high, low, close, volume)
        return n

    def _grow(self) -> None:
        """Double every region the kernel found too small (at least to what it needs), keeping its rows."""
        old = self._s
        rows = []
        for r in range(_k.N_REGIONS):
            cap = int(old[_k.H_REGIONS + 4 * r + 2])
            need = int(old[_k.H_NEED + r])
            rows.append(max(2 * cap, need) if need > cap else cap)
        new = _allocate(rows)
        new[: _k.H_REGIONS] = old[: _k.H_REGIONS]
        new[_k.HEADER_I : _k.HEADER_F] = old[_k.HEADER_I : _k.HEADER_F]  # the float header, as bits
        for r in range(_k.N_REGIONS):
            slot = _k.H_REGIONS + 4 * r
            count = int(old[slot + 3])
            new[slot + 3] = count
            si, sf = _k.STRIDE_I[r], _k.STRIDE_F[r]
            oi, of = int(old[slot]), int(old[slot + 1])
            ni, nf = int(new[slot]), int(new[slot + 1])
            new[ni : ni + si * count] = old[oi : oi + si * count]
            new[nf : nf + sf * count] = old[of : of + sf * count]
        self._set_state(new)


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernel, so the first real candle does not pay for it."""
    detector = CompiledSMC(1, horizon=4, liquidity_band=1.0)
    for k in range(12):
        x = float(k % 3)
        detector.update(x, x + 1.0, x - 1.0, x + 0.5, 1.0)
