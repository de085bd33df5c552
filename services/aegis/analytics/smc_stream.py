"""Streaming SMC: one closed candle at a time, reporting only what is known at that candle.

:class:`StreamingSMC` applies the batch rules of :mod:`aegis.analytics.smc` (the ``smartmoneyconcepts`` rules)
without looking ahead. Every event carries ``bar`` (the candle whose close produced it, counted from 0 at the
first ``update``) and ``index`` (the candle it is about); ``bar - index`` is the delay.

Exact relations with the batch functions, for ``L = swing_length`` (tested in ``tests/unit/analytics``):

* Swings: after bar T the detector's swing list equals ``swing_highs_lows(prefix 0..T, L)`` without the synthetic
  marks on bars 0 and T (:func:`aegis.analytics.smc.strip_edge_swings`). A swing at bar t is reported at bar
  ``t + L`` (its window ``t-L+1 .. t+L`` is complete then). Only the newest swing is provisional: while no swing
  of the other type follows, a more extreme one of the same type replaces it (``SwingEvent.replaces``).
* FVG: the gap at bar i is reported at bar i+1 (it needs candle i+1) and its mitigation at the mitigating bar:
  the same rows as ``fvg(ohlc, join_consecutive=False)`` (MitigatedIndex 0 there = never reported here).
* BOS/CHOCH: patterns are checked on the swing list as it stands (a pattern that matches keeps matching when the
  newest swing is replaced, so no report is withdrawn for that reason); a structure is reported when it is both
  known and broken, and withdrawn (``superseded``) when the package's rule would clear it: a later structure broke
  no later than it did. Reported-and-not-withdrawn structures at the end equal ``bos_choch`` on the stripped swings
  (with ``float32_levels=True``; by default the break is tested against the exact float64 level).
* Liquidity uses final swings only (a swing is final once a swing of the other type is confirmed after it), so a
  pool never loses a member: with ``liquidity_band = (max high - min low) * range_percent`` of the same frame,
  the pools at the end equal ``liquidity(ohlc, swings, range_percent)`` on the stripped swings without the newest
  (provisional) swing.
* Order blocks follow the package's rule on the swings known at each bar (the package uses a swing from the bar
  after it, ``L - 1`` bars before anyone could know it), with its quirks fixed: no duplicates, a mitigation is
  dated at the mitigating bar on both sides, the fallback candle keeps top = high and bottom = low.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right, insort
from collections import deque
from typing import Literal

import msgspec
import numpy as np

from aegis.errors import ValidationError

# The events are frozen msgspec structs (immutable, compared by value, ``repr`` like a dataclass's): their C
# constructor costs a fraction of a frozen dataclass's, and a detector runs on every closed candle of its series.


class SwingEvent(msgspec.Struct, frozen=True, gc=False):
    """A swing confirmed at ``bar`` (= index + swing_length); ``replaces`` is the swing it supersedes, if any."""

    bar: int
    index: int
    high_low: int
    level: float
    replaces: int | None = None


class FvgEvent(msgspec.Struct, frozen=True, gc=False):
    """A fair value gap at candle ``index``: formed (reported at index+1) or mitigated (at ``mitigated_index``)."""

    bar: int
    index: int
    direction: int
    top: float
    bottom: float
    action: Literal["formed", "mitigated"]
    mitigated_index: int | None = None


class StructureEvent(msgspec.Struct, frozen=True, gc=False):
    """A BOS or CHOCH marked at swing ``index``: broken at ``broken_index``, or later superseded (withdrawn)."""

    bar: int
    index: int
    kind: Literal["BOS", "CHOCH"]
    direction: int
    level: float
    broken_index: int
    action: Literal["broken", "superseded"]


class OrderBlockEvent(msgspec.Struct, frozen=True, gc=False):
    """An order block on candle ``index``: formed, mitigated (price through its far side) or removed."""

    bar: int
    index: int
    direction: int
    top: float
    bottom: float
    volume: float
    percentage: float
    action: Literal["formed", "mitigated", "removed"]


class LiquidityEvent(msgspec.Struct, frozen=True, gc=False):
    """A pool of two or more final swings near the level of swing ``index``: formed, grown or swept."""

    bar: int
    index: int
    direction: int
    level: float
    end: int
    members: int
    swept_index: int | None
    action: Literal["formed", "grown", "swept"]


SmcEvent = SwingEvent | FvgEvent | StructureEvent | OrderBlockEvent | LiquidityEvent


class _Mark:
    __slots__ = ("broken", "direction", "kind", "level", "probe", "reported", "swing")

    def __init__(self, swing: int, kind: str, direction: int, level: float, probe: float) -> None:
        self.swing = swing
        self.kind = kind
        self.direction = direction
        self.level = level
        self.probe = probe  # the value closes are compared with (float32-rounded in parity mode)
        self.broken = -1
        self.reported = False


class _Block:
    __slots__ = ("bottom", "breaker", "direction", "index", "percentage", "top", "volume")

    def __init__(self, index: int, direction: int, top: float, bottom: float, volume: float, pct: float) -> None:
        self.index = index
        self.direction = direction
        self.top = top
        self.bottom = bottom
        self.volume = volume
        self.percentage = pct
        self.breaker = False


class _Pool:
    """A liquidity pool: its members are summed (level total, count, newest), so a pool is O(1) memory."""

    __slots__ = ("count", "direction", "high", "last", "level_sum", "low", "root", "swept")

    def __init__(self, root: int, direction: int, level: float, band: float) -> None:
        self.root = root
        self.direction = direction
        self.level_sum = level  # added in member order: the same float as the package's mean of the levels
        self.count = 1
        self.last = root
        self.low = level - band
        self.high = level + band
        self.swept = -1


DEFAULT_HORIZON = 2000
"""Bars of history a :class:`StreamingSMC` keeps by default: at least this many, at most twice (it trims every
``horizon`` bars, see :meth:`StreamingSMC._trim`). The brain's strategy reads 15m zones at most
``AEGIS_STRATEGY_ZONE_MAX_AGE_BARS`` (96) bars old, far inside it."""


def check_options(swing_length: int, liquidity_band: float | None, horizon: int | None) -> None:
    """Raise ValidationError for options no detector takes (StreamingSMC's and CompiledSMC's constructors)."""
    if int(swing_length) < 1:
        raise ValidationError("swing_length", f"must be >= 1, got {swing_length}")
    if horizon is not None and int(horizon) < 4 * int(swing_length):
        raise ValidationError("horizon", f"must be >= 4 * swing_length = {4 * int(swing_length)}, got {horizon}")
    if liquidity_band is not None and not liquidity_band >= 0:
        raise ValidationError("liquidity_band", f"must be >= 0, got {liquidity_band}")


def raise_if_not_finite(open: float, high: float, low: float, close: float, volume: float) -> None:
    """Raise ValidationError naming the first of a candle's values that is NaN or infinite (a detector refuses it)."""
    for name, value in (("open", open), ("high", high), ("low", low), ("close", close), ("volume", volume)):
        if not math.isfinite(value):
            raise ValidationError(name, f"must be finite, got {value}")


class StreamingSMC:
    """Causal SMC detector for one symbol and one timeframe: feed closed candles to :meth:`update`."""

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
        self._t = 0  # candles seen
        self._base = 0  # bar index of the oldest candle the arrays below still hold
        self._next_trim = -1 if self.horizon is None else 2 * self.horizon
        self._open = array("d")
        self._high = array("d")
        self._low = array("d")
        self._close = array("d")
        self._volume = array("d")
        self._window_high: deque[float] = deque(maxlen=2 * self.swing_length)
        self._window_low: deque[float] = deque(maxlen=2 * self.swing_length)
        self._max_high = -math.inf
        self._min_low = math.inf
        self._swings: list[tuple[int, int, float]] = []  # (index, high_low, level); the last one is provisional
        # unmitigated gaps: bullish as (top, index, bottom) sorted by top, bearish as (bottom, index, top) by bottom
        self._fvg_bull: list[tuple[float, int, float]] = []
        self._fvg_bear: list[tuple[float, int, float]] = []
        self._pending: list[_Mark] = []  # structures known, not broken yet
        self._broken: list[_Mark] = []  # reported, could still be superseded
        self._last_mark_swing = -1
        self._blocks: list[_Block] = []
        self._block_keys: set[tuple[int, int]] = set()  # (index, direction) of every block in _blocks
        self._crossed: set[int] = set()
        self._pools: list[_Pool] = []
        # Thresholds that let a bar skip the loops over gaps, blocks and pools when it cannot touch any of them
        # (exact: a bar that could touch one runs the full loop, which recomputes them).
        self._ob_limits = [-math.inf, math.inf, math.inf, -math.inf]  # see _block_limits
        self._pool_up = math.inf  # lowest top of an unswept pool of highs: swept by a high at or above it
        self._pool_down = -math.inf  # highest bottom of an unswept pool of lows
        self._pools_drop: float = math.inf  # earliest sweep of a swept pool: it is dropped once a final swing is as new

    @property
    def delay(self) -> int:
        """Bars between a swing and the bar that confirms it."""
        return self.swing_length

    @property
    def bars(self) -> int:
        """Candles seen so far."""
        return self._t

    @property
    def swings(self) -> tuple[tuple[int, int, float], ...]:
        """The swings known now as ``(index, high_low, level)``; the last one may still be replaced."""
        return tuple(self._swings)

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> list[SmcEvent]:
        """Take the next closed candle; return what became known at it, in a fixed order."""
        if not math.isfinite(open + high + low + close + volume):  # a NaN or an infinity (or an overflowing sum)
            raise_if_not_finite(open, high, low, close, volume)
        t = self._t
        self._t = t + 1
        if t == self._next_trim:
            self._trim(t)
        self._open.append(open)
        self._high.append(high)
        self._low.append(low)
        self._close.append(close)
        self._volume.append(volume)
        self._window_high.append(high)
        self._window_low.append(low)
        if high > self._max_high:
            self._max_high = high
        if low < self._min_low:
            self._min_low = low
        events: list[SmcEvent] = []
        # each step is called only when it can do something (the checks are the first lines of each)
        if t >= 3 * self.swing_length - 1:
            self._update_swings(t, events)
        self._update_fvgs(t, events)
        if self._pending:
            self._update_structures(t, events)
        self._update_blocks(t, events)
        if self._pools:
            self._update_pools(t, events)
        return events

    def _trim(self, t: int) -> None:
        """Forget what lies more than ``horizon`` bars before bar ``t`` (runs every ``horizon`` bars).

        Candles, swings, gaps, order blocks and structures about a candle older than ``t - horizon`` are dropped
        without an event: they are no longer reported (a gap or an order block beyond the horizon is never
        mitigated, a swing beyond it never starts a structure, a block or a pool). The newest four swings are always
        kept: they carry the market structure, however old. Liquidity pools are not trimmed: a pool is O(1) memory
        (its members are summed) and their number is bounded by the price range over the band width, since a final
        swing joins the first pool whose band holds it and a swept pool goes once a newer final swing exists.
        Every event about a candle within the horizon equals the unbounded detector's (``horizon=None``), tested
        on the real klines, and the memory is tested to stay flat over 100k candles.
        """
        assert self.horizon is not None
        oldest = t - self.horizon
        drop = oldest - self._base
        if drop > 0:
            for values in (self._open, self._high, self._low, self._close, self._volume):
                del values[:drop]
            self._base = oldest
        keep = len(self._swings) - 4
        while keep > 0 and self._swings[0][0] < oldest:
            del self._swings[0]
            keep -= 1
        self._fvg_bull = [g for g in self._fvg_bull if g[1] >= oldest]  # still sorted
        self._fvg_bear = [g for g in self._fvg_bear if g[1] >= oldest]
        self._pending = [m for m in self._pending if m.swing >= oldest]
        self._broken = [m for m in self._broken if m.swing >= oldest]
        self._blocks = [b for b in self._blocks if b.index >= oldest]
        self._block_keys = {(b.index, b.direction) for b in self._blocks}
        self._block_limits()
        self._crossed = {i for i in self._crossed if i >= oldest}
        self._next_trim = t + self.horizon

    # ------------------------------------------------------------------------------------------------ swings

    def _update_swings(self, t: int, events: list[SmcEvent]) -> None:
        length = self.swing_length
        s = t - length
        if s < 2 * length - 1:  # the package's rolling window starts counting at the shifted series' start
            return
        high = self._high[-1 - length]  # bar s
        low = self._low[-1 - length]
        # the window ends at the newest candle: a high below its high (a low above its low) is no extreme, and
        # the max / min over the window is not needed (most candles)
        if high >= self._high[-1] and high == max(self._window_high):
            kind = 1
            level = high
        elif low <= self._low[-1] and low == min(self._window_low):
            kind = -1
            level = low
        else:
            return
        swings = self._swings
        if not swings or swings[-1][1] != kind:
            swings.append((s, kind, level))
            events.append(SwingEvent(t, s, kind, level))
            self._check_pattern(t)
            if len(swings) >= 2:
                self._add_final_swing(t, *swings[-2], events)
        elif (kind == 1 and level > swings[-1][2]) or (kind == -1 and level < swings[-1][2]):
            replaced = swings[-1][0]
            swings[-1] = (s, kind, level)
            events.append(SwingEvent(t, s, kind, level, replaced))
            self._check_pattern(t)

    # --------------------------------------------------------------------------------------------------- FVG

    def _update_fvgs(self, t: int, events: list[SmcEvent]) -> None:
        high = self._high[-1]
        low = self._low[-1]
        bull, bear = self._fvg_bull, self._fvg_bear
        # a bullish gap is mitigated by a low at or below its top, a bearish one by a high at or above its bottom:
        # with the gaps sorted by that level, the mitigated ones are one end of the list (found by bisection)
        if (bull and low <= bull[-1][0]) or (bear and high >= bear[0][0]):
            hits: list[tuple[int, int, float, float]] = []
            if bull and low <= bull[-1][0]:
                k = bisect_left(bull, (low,))
                hits += [(index, 1, top, bottom) for top, index, bottom in bull[k:]]
                del bull[k:]
            if bear and high >= bear[0][0]:
                k = bisect_right(bear, (high, math.inf))
                hits += [(index, -1, top, bottom) for bottom, index, top in bear[:k]]
                del bear[:k]
            hits.sort()  # in the order the gaps formed (one gap per candle at most)
            for index, direction, top, bottom in hits:
                if index + 2 <= t:
                    events.append(FvgEvent(t, index, direction, top, bottom, "mitigated", t))
                elif direction == 1:  # not mitigable yet (cannot happen: a gap is stored after this check)
                    insort(bull, (top, index, bottom))
                else:
                    insort(bear, (bottom, index, top))
        i = t - 1
        if i < 1:
            return
        o, c = self._open[-2], self._close[-2]  # bar i
        if c > o and self._high[-3] < low:
            insort(bull, (low, i, self._high[-3]))
            events.append(FvgEvent(t, i, 1, low, self._high[-3], "formed"))
        elif c < o and self._low[-3] > high:
            insort(bear, (high, i, self._low[-3]))
            events.append(FvgEvent(t, i, -1, self._low[-3], high, "formed"))

    # --------------------------------------------------------------------------------------------- BOS/CHOCH

    def _check_pattern(self, t: int) -> None:
        swings = self._swings
        if len(swings) < 4:
            return
        (_, h4, l4), (p, h3, l3), (_, h2, l2), (_, h1, l1) = swings[-4:]
        if p == self._last_mark_swing:
            return  # already matched: replacing the newest swing only makes it match harder
        base = self._base
        if p < base:
            return  # a structure on a swing beyond the horizon is not reported
        kind = None
        if (h4, h3, h2, h1) == (-1, 1, -1, 1):
            direction = 1
            if l4 < l2 < l3 < l1:
                kind = "BOS"
            elif l1 > l3 > l4 > l2:
                kind = "CHOCH"
        elif (h4, h3, h2, h1) == (1, -1, 1, -1):
            direction = -1
            if l4 > l2 > l3 > l1:
                kind = "BOS"
            elif l1 < l3 < l4 < l2:
                kind = "CHOCH"
        if kind is None:
            return
        probe = float(np.float32(l3)) if self.float32_levels else l3
        mark = _Mark(p, kind, direction, l3, probe)
        self._last_mark_swing = p
        # look back for a break that already happened (from p+2, as the package does)
        series = self._close if self.close_break else (self._high if direction == 1 else self._low)
        for j in range(p + 2, t):
            if (direction == 1 and series[j - base] > probe) or (direction == -1 and series[j - base] < probe):
                mark.broken = j
                break
        self._pending.append(mark)

    def _update_structures(self, t: int, events: list[SmcEvent]) -> None:
        if not self._pending:
            return
        newly: list[_Mark] = []
        still: list[_Mark] = []
        for mark in self._pending:
            if mark.broken < 0 and mark.swing + 2 <= t:
                value = (
                    self._close[-1] if self.close_break else (self._high[-1] if mark.direction == 1 else self._low[-1])
                )
                if (mark.direction == 1 and value > mark.probe) or (mark.direction == -1 and value < mark.probe):
                    mark.broken = t
            (newly if mark.broken >= 0 else still).append(mark)
        if not newly:
            return
        # the package clears every earlier structure that broke no earlier than a later one (or never broke)
        earliest_later = math.inf
        survivors: list[_Mark] = []
        for mark in reversed(newly):
            if mark.broken < earliest_later:
                survivors.append(mark)
            earliest_later = min(earliest_later, mark.broken)
        # a pending structure marked before a newly broken one can only break later than it: cleared either way
        self._pending = [m for m in still if not self._cleared_by(m, newly)]
        kept: list[_Mark] = []
        for mark in self._broken:
            if self._cleared_by(mark, newly):
                events.append(self._structure_event(t, mark, "superseded"))
            else:
                kept.append(mark)
        for mark in reversed(survivors):
            events.append(self._structure_event(t, mark, "broken"))
            kept.append(mark)
        # a structure can only be cleared by one marked later, which breaks at p+2 at the earliest
        floor = self._swings[-3][0] + 2 if len(self._swings) >= 3 else 0
        self._broken = [m for m in kept if m.broken >= floor]

    @staticmethod
    def _structure_event(t: int, mark: _Mark, action: Literal["broken", "superseded"]) -> StructureEvent:
        kind: Literal["BOS", "CHOCH"] = "BOS" if mark.kind == "BOS" else "CHOCH"
        return StructureEvent(t, mark.swing, kind, mark.direction, mark.level, mark.broken, action)

    @staticmethod
    def _cleared_by(mark: _Mark, newly: list[_Mark]) -> bool:
        return any(other.swing > mark.swing and (mark.broken < 0 or other.broken <= mark.broken) for other in newly)

    # ------------------------------------------------------------------------------------------ order blocks

    def _update_blocks(self, t: int, events: list[SmcEvent]) -> None:
        o, h, lo, c = self._open[-1], self._high[-1], self._low[-1], self._close[-1]
        limits = self._ob_limits
        if self._blocks and (
            (min(o, c) if self.close_mitigation else lo) < limits[0]
            or h > limits[1]
            or (max(o, c) if self.close_mitigation else h) > limits[2]
            or lo < limits[3]
        ):
            still = []
            for block in self._blocks:
                removed = False
                if block.direction == 1:
                    if block.breaker:
                        removed = h > block.top
                    elif (min(o, c) if self.close_mitigation else lo) < block.bottom:
                        block.breaker = True
                        events.append(self._block_event(t, block, "mitigated"))
                else:
                    if block.breaker:
                        removed = lo < block.bottom
                    elif (max(o, c) if self.close_mitigation else h) > block.top:
                        block.breaker = True
                        events.append(self._block_event(t, block, "mitigated"))
                if removed:
                    events.append(self._block_event(t, block, "removed"))
                    self._block_keys.discard((block.index, block.direction))
                else:
                    still.append(block)
            self._blocks = still
            self._block_limits()
        last_high = last_low = None
        base = self._base
        for index, kind, _ in reversed(self._swings[-2:]):
            if index < base:
                continue  # beyond the horizon: no block
            if kind == 1 and last_high is None:
                last_high = index
            elif kind == -1 and last_low is None:
                last_low = index
        if last_high is not None and c > self._high[last_high - base] and last_high not in self._crossed:
            self._crossed.add(last_high)
            self._form_block(t, last_high, 1, events)
        if last_low is not None and c < self._low[last_low - base] and last_low not in self._crossed:
            self._crossed.add(last_low)
            self._form_block(t, last_low, -1, events)

    def _form_block(self, t: int, swing: int, direction: int, events: list[SmcEvent]) -> None:
        base = self._base
        highs, lows = self._high, self._low
        best = t - 1
        if t - swing > 1:
            # the last candle of swing+1 .. t-1 with the lowest low (bullish) or the highest high (bearish)
            part = lows[swing + 1 - base : t - base] if direction == 1 else highs[swing + 1 - base : t - base]
            extreme = min(part) if direction == 1 else max(part)
            part.reverse()
            best = t - 1 - part.index(extreme)
        if (best, direction) in self._block_keys:
            return
        vol = self._volume
        recent = vol[-1] + (vol[-2] if t >= 1 else 0.0)
        older = vol[-3] if t >= 2 else 0.0
        total = recent + older
        bigger = max(recent, older)
        pct = min(recent, older) / bigger * 100.0 if bigger != 0 else 100.0
        block = _Block(best, direction, highs[best - base], lows[best - base], total, pct)
        self._blocks.append(block)
        self._block_keys.add((best, direction))
        if direction == 1:
            self._ob_limits[0] = max(self._ob_limits[0], block.bottom)
        else:
            self._ob_limits[2] = min(self._ob_limits[2], block.top)
        events.append(self._block_event(t, block, "formed"))

    def _block_limits(self) -> None:
        """[highest bottom of a bullish block (mitigated below it), lowest top of a bullish breaker (removed above
        it), lowest top of a bearish block, highest bottom of a bearish breaker]."""
        limits = [-math.inf, math.inf, math.inf, -math.inf]
        for b in self._blocks:
            if b.direction == 1:
                if b.breaker:
                    limits[1] = min(limits[1], b.top)
                else:
                    limits[0] = max(limits[0], b.bottom)
            elif b.breaker:
                limits[3] = max(limits[3], b.bottom)
            else:
                limits[2] = min(limits[2], b.top)
        self._ob_limits = limits

    @staticmethod
    def _block_event(t: int, block: _Block, action: Literal["formed", "mitigated", "removed"]) -> OrderBlockEvent:
        return OrderBlockEvent(
            t, block.index, block.direction, block.top, block.bottom, block.volume, block.percentage, action
        )

    # --------------------------------------------------------------------------------------------- liquidity

    def _add_final_swing(self, t: int, index: int, direction: int, level: float, events: list[SmcEvent]) -> None:
        for pool in self._pools:
            if pool.direction != direction or (pool.swept >= 0 and index >= pool.swept):
                continue
            if pool.low <= level <= pool.high:
                pool.level_sum += level
                pool.count += 1
                pool.last = index
                events.append(self._pool_event(t, pool, "formed" if pool.count == 2 else "grown"))
                return
        base = self._base
        if index < base:
            return  # a swing beyond the horizon starts no pool
        if self.liquidity_band is not None:
            band = float(self.liquidity_band)
        else:
            band = (self._max_high - self._min_low) * self.range_percent
        pool = _Pool(index, direction, level, band)
        for j in range(index + 1, t + 1):
            if (direction == 1 and self._high[j - base] >= pool.high) or (
                direction == -1 and self._low[j - base] <= pool.low
            ):
                pool.swept = j
                break
        self._pools.append(pool)
        if pool.swept >= 0:
            self._pools_drop = min(self._pools_drop, pool.swept)
        elif direction == 1:
            self._pool_up = min(self._pool_up, pool.high)
        else:
            self._pool_down = max(self._pool_down, pool.low)

    def _update_pools(self, t: int, events: list[SmcEvent]) -> None:
        if not self._pools:
            return
        h, lo = self._high[-1], self._low[-1]
        # a swept pool can still take a final swing older than its sweep; the next final swing is newer than this
        newest_final = self._swings[-2][0] if len(self._swings) >= 2 else -1
        if h < self._pool_up and lo > self._pool_down and newest_final < self._pools_drop:
            return  # nothing is swept and nothing can be dropped
        still = []
        up, down, drop = math.inf, -math.inf, math.inf
        for pool in self._pools:
            reached = h >= pool.high if pool.direction == 1 else lo <= pool.low
            if pool.swept < 0 and reached:
                pool.swept = t
                if pool.count >= 2:
                    events.append(self._pool_event(t, pool, "swept"))
            if pool.swept < 0:
                still.append(pool)
                if pool.direction == 1:
                    if pool.high < up:
                        up = pool.high
                elif pool.low > down:
                    down = pool.low
            elif pool.swept > newest_final:
                still.append(pool)
                if pool.swept < drop:
                    drop = pool.swept
        self._pools = still
        self._pool_up, self._pool_down, self._pools_drop = up, down, drop

    @staticmethod
    def _pool_event(t: int, pool: _Pool, action: Literal["formed", "grown", "swept"]) -> LiquidityEvent:
        swept = pool.swept if pool.swept >= 0 else None
        return LiquidityEvent(
            t, pool.root, pool.direction, pool.level_sum / pool.count, pool.last, pool.count, swept, action
        )
