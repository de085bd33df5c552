"""The order book behind ``GET /fapi/v1/depth``: the recorded REST snapshot plus the recorded diff updates.

The book is advanced lazily, when a request asks for it, to the replay position: updates whose ``u`` is not newer
than the snapshot's ``lastUpdateId`` are skipped (Binance's own rule for syncing a local book), the rest are applied
in order. ``lastUpdateId`` is then the ``u`` of the last update applied, so a client can continue the diff stream
from the snapshot exactly as on Binance.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from aegis.sim.recording import SymbolTape


class LazyBook:
    def __init__(self, tape: SymbolTape) -> None:
        self._tape = tape
        self._reset()

    def _reset(self) -> None:
        snapshot = self._tape.snapshot or {}
        self._bids: dict[str, str] = {p: q for p, q in snapshot.get("bids", [])}
        self._asks: dict[str, str] = {p: q for p, q in snapshot.get("asks", [])}
        self._last_id: int = int(snapshot.get("lastUpdateId", 0))
        self._time_ms: int = int(snapshot.get("T", 0))
        self._applied = 0  # number of tape.depth_updates considered so far

    def advance(self, position: int) -> None:
        """Apply every recorded update sent before timeline ``position``."""
        updates = self._tape.depth_updates
        end = int(np.searchsorted(self._tape.depth_index, position, side="left"))
        if end < self._applied:
            self._reset()
        for update in updates[self._applied : end]:
            if update.last_id <= self._last_id:
                continue
            for side, levels in ((self._bids, update.bids), (self._asks, update.asks)):
                for price, qty in levels:
                    if Decimal(qty) == 0:
                        side.pop(price, None)
                    else:
                        side[price] = qty
            self._last_id = update.last_id
            self._time_ms = update.time_ms
        self._applied = max(self._applied, end)

    def snapshot(self, position: int, limit: int, event_time: int) -> dict | None:
        """Return Binance's depth response at ``position``; None when the recording has no snapshot."""
        if self._tape.snapshot is None:
            return None
        self.advance(position)
        bids = sorted(self._bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:limit]
        asks = sorted(self._asks.items(), key=lambda kv: Decimal(kv[0]))[:limit]
        return {
            "lastUpdateId": self._last_id,
            "E": event_time,
            "T": self._time_ms,
            "bids": [list(level) for level in bids],
            "asks": [list(level) for level in asks],
        }
