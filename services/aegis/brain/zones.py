"""What GetMarketState shows of Smart Money Concepts: the zones and structure of one series, kept from events.

The strategy feeds every :class:`~aegis.analytics.smc_stream.StreamingSMC` event of a series to its
:class:`SmcView`, which keeps

* **zones**: order blocks, fair value gaps and liquidity pools (two or more equal highs or lows; direction +1 for
  a pool of highs, -1 for lows, as the ``smartmoneyconcepts`` package marks them), active until price trades
  through them, then kept as ``mitigated`` (the newest ``keep_mitigated`` of them), so a chart can still draw
  what the recent candles mitigated;
* **structure**: the latest swings and BOS/CHOCH breaks, newest first. A swing replaced by a more extreme one
  and a structure the detector withdraws (``superseded``) disappear, as they do from the detector's own state.

Times are candle open times in Unix ms, taken from the series' own bar index → open time table, so they are the
times of the candles the detector saw (no look-ahead: an event is only here once the candle that made it known
closed).

Zones and points are frozen ``msgspec`` structs (immutable, compared by value): their C constructor costs a
fraction of a frozen dataclass's, and the brain makes one for every zone and swing of every series.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

import msgspec

from aegis.analytics.smc_stream import (
    FvgEvent,
    LiquidityEvent,
    OrderBlockEvent,
    SmcEvent,
    StructureEvent,
    SwingEvent,
)


class OpenTimes(Protocol):
    """Bar index -> candle open time (Unix ms): a list, or the strategy's bounded table."""

    def __getitem__(self, index: int, /) -> int: ...


ORDER_BLOCK = "ORDER_BLOCK"
FAIR_VALUE_GAP = "FAIR_VALUE_GAP"
LIQUIDITY_POOL = "LIQUIDITY_POOL"


class SmcZone(msgspec.Struct, frozen=True, gc=False):
    """An order block, fair value gap or liquidity pool of one series."""

    zone_id: str
    kind: str
    """``ORDER_BLOCK``, ``FAIR_VALUE_GAP`` or ``LIQUIDITY_POOL``."""
    direction: int
    """+1 bullish (demand below price; a pool of lows), -1 bearish."""
    top: float
    bottom: float
    """Equal to ``top`` for a liquidity level."""
    formed_time_ms: int
    """Open time of the candle that formed the zone (a pool: its first swing)."""
    mitigated_time_ms: int | None = None
    """Open time of the candle that traded through it; None while active."""
    strength: float = 0.0
    """Order block: its volume share in percent points; pool: how many swings it holds; gap: 0."""

    @property
    def mitigated(self) -> bool:
        return self.mitigated_time_ms is not None


class StructurePoint(msgspec.Struct, frozen=True, gc=False):
    """A swing, or a BOS/CHOCH break, of one series."""

    kind: str
    """``SWING_HIGH``, ``SWING_LOW``, ``BOS`` or ``CHOCH``."""
    direction: int
    level: float
    event_time_ms: int
    """Open time of the swing's candle (for a break: of the swing that was broken)."""
    confirmed_time_ms: int
    """Open time of the candle that confirmed the swing or broke the level."""


_ZoneRow = tuple[str, int, float, float, int, float, int | None]
"""A zone as the view keeps it: kind, direction, top, bottom, formed_time_ms, strength, mitigated_time_ms (the
:class:`SmcZone`, with its id, is built when GetMarketState asks: most zones are never looked at)."""


class SmcView:
    """Zones and structure of one symbol on one timeframe (see the module doc)."""

    __slots__ = ("_active", "_mitigated", "_structure", "keep_active", "prefix")

    def __init__(
        self, prefix: str, *, keep_active: int = 128, keep_mitigated: int = 64, keep_structure: int = 32
    ) -> None:
        self.prefix = prefix
        self.keep_active = keep_active
        """Active zones kept at most (the oldest go first: a zone price never came back to stays active)."""
        self._active: dict[tuple[str, int, int], _ZoneRow] = {}
        self._mitigated: deque[_ZoneRow] = deque(maxlen=keep_mitigated)
        # (key, (kind, direction, level, event_time_ms, confirmed_time_ms)): a StructurePoint when asked
        self._structure: deque[tuple[tuple[str, int, int], tuple[str, int, float, int, int]]] = deque(
            maxlen=keep_structure
        )

    def _zone_id(self, kind: str, formed_ms: int, direction: int) -> str:
        return f"{self.prefix}:{kind}:{formed_ms}:{'bull' if direction > 0 else 'bear'}"

    def _zone(self, row: _ZoneRow) -> SmcZone:
        kind, direction, top, bottom, formed, strength, mitigated = row
        return SmcZone(
            self._zone_id(kind, formed, direction), kind, direction, top, bottom, formed, mitigated, strength
        )

    def apply(self, events: Sequence[SmcEvent], open_ms: OpenTimes) -> None:
        """Take the events one candle produced; ``open_ms[i]`` is the open time of the detector's bar ``i``."""
        active = self._active
        for e in events:
            if isinstance(e, FvgEvent):  # the commonest (formed, or mitigated): _zone_event inline
                key = (FAIR_VALUE_GAP, e.index, e.direction)
                if e.action == "formed":
                    self._add(key, (FAIR_VALUE_GAP, e.direction, e.top, e.bottom, open_ms[e.index], 0.0, None))
                else:
                    row = active.pop(key, None)
                    if row is not None:
                        self._mitigated.append((*row[:6], open_ms[e.bar]))
            elif isinstance(e, OrderBlockEvent):
                self._zone_event(ORDER_BLOCK, e.index, e.direction, e.top, e.bottom, e.percentage, e.action, e.bar,
                                 open_ms)  # fmt: skip
            elif isinstance(e, LiquidityEvent):
                direction = e.direction  # the package's convention: +1 a pool of highs, -1 a pool of lows
                key = (LIQUIDITY_POOL, e.index, direction)
                formed = open_ms[e.index]
                if e.action == "swept":
                    self._active.pop(key, None)
                    self._mitigated.append(
                        (LIQUIDITY_POOL, direction, e.level, e.level, formed, float(e.members), open_ms[e.bar])
                    )
                else:
                    self._add(key, (LIQUIDITY_POOL, direction, e.level, e.level, formed, float(e.members), None))
            elif isinstance(e, SwingEvent):
                if e.replaces is not None:
                    self._drop_structure(("SWING", e.replaces, e.high_low))
                kind = "SWING_HIGH" if e.high_low == 1 else "SWING_LOW"
                self._structure.append(
                    (("SWING", e.index, e.high_low), (kind, e.high_low, e.level, open_ms[e.index], open_ms[e.bar]))
                )
            elif isinstance(e, StructureEvent):
                key = (e.kind, e.index, e.direction)
                if e.action == "superseded":
                    self._drop_structure(key)
                else:
                    self._structure.append(
                        (key, (e.kind, e.direction, e.level, open_ms[e.index], open_ms[e.broken_index]))
                    )

    def _zone_event(
        self,
        kind: str,
        index: int,
        direction: int,
        top: float,
        bottom: float,
        strength: float,
        action: str,
        bar: int,
        open_ms: OpenTimes,
    ) -> None:
        key = (kind, index, direction)
        if action == "formed":
            self._add(key, (kind, direction, top, bottom, open_ms[index], strength, None))
            return
        row = self._active.pop(key, None)  # 'removed' (a breaker crossed back) only ends an already mitigated one
        if action == "mitigated" and row is not None:
            self._mitigated.append((*row[:6], open_ms[bar]))

    def _add(self, key: tuple[str, int, int], row: _ZoneRow) -> None:
        active = self._active
        active[key] = row
        if len(active) > self.keep_active:
            del active[min(active, key=lambda k: active[k][4])]  # the oldest formed (the first of equal ones)

    def _drop_structure(self, key: tuple[str, int, int]) -> None:
        kept = [(k, p) for k, p in self._structure if k != key]
        if len(kept) != len(self._structure):
            self._structure = deque(kept, maxlen=self._structure.maxlen)

    def zones(self, mitigated_since_ms: int | None = None) -> list[SmcZone]:
        """Return the active zones, plus those mitigated at or after ``mitigated_since_ms`` (None: none), by age."""
        rows = list(self._active.values())
        if mitigated_since_ms is not None:
            rows += [r for r in self._mitigated if r[6] is not None and r[6] >= mitigated_since_ms]
        return sorted(map(self._zone, rows), key=lambda z: (z.formed_time_ms, z.kind, z.direction))

    def structure(self) -> list[StructurePoint]:
        """Return the latest swings and breaks, newest first (by the time they became known)."""
        points = [StructurePoint(*p) for _, p in self._structure]
        return sorted(points, key=lambda p: (p.confirmed_time_ms, p.event_time_ms), reverse=True)
