"""The shared replay clock: which frame of the timeline is "now", and pacing frames out to the hub.

Frames are released when their recorded receive time (``local_ns``), scaled by ``speed``, has come; with speed
``None`` (max) as fast as the slowest subscriber drains its queue. The simulator's clock is the highest exchange
event time (``E``) released so far.

With a state file the position survives restarts: the file keeps the wall-clock anchor of the replay, so a
restarted simulator computes where the replay would be now and continues there (frames "sent" while it was down are
missed, as on a real outage; the REST klines still hold every minute). Paused or max-speed replays keep their exact
position instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aegis.sim.state import SimState

log = logging.getLogger(__name__)

BATCH = 2048
SAVE_EVERY_S = 1.0


class Replay:
    def __init__(self, state: SimState) -> None:
        self.state = state
        timeline = state.market.timeline
        self._local_ns = timeline.local_ns
        self._clock_at = np.maximum.accumulate(timeline.exch_ms) if len(timeline) else np.zeros(0, np.int64)
        self.speed = state.config.speed
        self.position = state.market.start_index
        self.paused = False
        self.started = False
        self.finished = len(timeline) == 0
        self._anchor_wall = time.time()
        self._anchor_ns = self._ns_at(self.position)
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._subscribed = asyncio.Event()
        self._last_save = 0.0
        self._restored_from: dict | None = None
        self._restore()

    # ------------------------------------------------------------------ clock

    def _ns_at(self, position: int) -> int:
        n = len(self._local_ns)
        if n == 0:
            return 0
        return int(self._local_ns[min(position, n - 1)])

    @property
    def clock_ms(self) -> int:
        """The simulator's time: the latest exchange time among the frames released so far."""
        if self.position > 0:
            return int(self._clock_at[min(self.position, len(self._clock_at)) - 1])
        return int(self.state.market.timeline.exch_ms[0]) - 1 if len(self._clock_at) else int(time.time() * 1000)

    def note_subscriber(self) -> None:
        self._subscribed.set()

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._resumed.clear()
            self.save()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._reanchor()
            self._resumed.set()
            self.save()

    def _reanchor(self) -> None:
        self._anchor_wall = time.time()
        self._anchor_ns = self._ns_at(self.position)

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        n = len(self._local_ns)
        if not self.started and self.state.config.holds_until_subscribed():
            await self._subscribed.wait()
        if not self.started:
            self.started = True
            self._reanchor()
        self.save()
        hub = self.state.hub
        try:
            while self.position < n:
                if self.paused:
                    await self._resumed.wait()
                    continue
                if self.speed is None:
                    await hub.wait_writable()
                    if self.paused:
                        continue
                    end = min(n, self.position + 256)
                else:
                    due_ns = self._anchor_ns + (time.time() - self._anchor_wall) * self.speed * 1e9
                    end = int(np.searchsorted(self._local_ns, due_ns, side="right"))
                    if end <= self.position:
                        wait_s = (int(self._local_ns[self.position]) - due_ns) / 1e9 / self.speed
                        await asyncio.sleep(min(max(wait_s, 0.0005), 0.25))
                        continue
                    end = min(end, self.position + BATCH)
                start = self.position
                for index in range(start, end):
                    hub.dispatch(index)
                self.position = end
                self.state.after_advance(start, end)
                if time.monotonic() - self._last_save > SAVE_EVERY_S:
                    self.save()
                await asyncio.sleep(0)
            self.finished = True
        finally:
            self.save()

    # ------------------------------------------------------------------ persistence

    def save(self) -> None:
        path = self.state.config.state_file
        if path is None:
            return
        self._last_save = time.monotonic()
        data = {
            "fingerprint": self.state.market.fingerprint,
            "position": self.position,
            "paused": self.paused,
            "started": self.started,
            "speed": self.speed,
            "anchor_wall": self._anchor_wall,
            "anchor_ns": self._anchor_ns,
            "saved_wall": time.time(),
        }
        tmp = Path(str(path) + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def _restore(self) -> None:
        path = self.state.config.state_file
        if path is None or not Path(path).exists():
            return
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            log.warning("replay state file %s is unreadable; starting from the beginning", path)
            return
        if data.get("fingerprint") != self.state.market.fingerprint:
            log.warning("replay state file %s belongs to other recordings; starting from the beginning", path)
            return
        self._restored_from = data
        position = int(data.get("position", 0))
        if data.get("started") and not data.get("paused") and data.get("speed"):
            # Wall-clock position: where the replay would be now had it never stopped.
            due_ns = data["anchor_ns"] + (time.time() - data["anchor_wall"]) * data["speed"] * 1e9
            position = max(position, int(np.searchsorted(self._local_ns, due_ns, side="right")))
        self.position = min(position, len(self._local_ns))
        self.started = bool(data.get("started"))
        self.paused = bool(data.get("paused"))
        if self.paused:
            self._resumed.clear()
        self.finished = self.position >= len(self._local_ns)
        self._reanchor()

    def describe(self) -> dict:
        return {
            "position": self.position,
            "frames_total": len(self._local_ns),
            "clock_ms": self.clock_ms,
            "speed": "max" if self.speed is None else self.speed,
            "mode": self.state.config.replay_mode,
            "paused": self.paused,
            "started": self.started,
            "finished": self.finished,
            "restored": self._restored_from is not None,
        }


async def cancel(task: asyncio.Task | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
