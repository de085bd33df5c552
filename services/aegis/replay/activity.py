"""The brain's work clock in a replay: the wall-clock time it last did work, for ``aegis replay``'s timing.

The replay's end is when the brain has read the ring's last record and everything that follows from the records
has settled: candles written, signals stored and executed, price windows pushed. The runner sees that in the
brain's Redis status, which is published every ``AEGIS_BRAIN_STATUS_INTERVAL_S`` and polled — timing the end by
when the runner *saw* it would add up to one status interval and one poll of detection to the figure.

:class:`WorkClock` runs in the brain's event loop (record time only) and every ``CHECK_S`` compares the counters
the work moves — records read, candles closed and written, signals stored and executed, windows sealed and pushed,
queues and backlogs — with the previous check's; when any moved it stamps ``last_work_ns`` (``time.time_ns()``,
the host's wall clock, the same as the feed's ``replay_started_ns``). The brain publishes the stamp in its status
(``work``), and the runner takes the replay's end from it once the completion check has seen everything settled:
the end is the last work, late by at most one check (plus the batch the loop was busy with when it was due).
It also keeps the largest ring lag (records published but not read yet) it saw at a check: how far the brain
fell behind the feed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

CHECK_S = 0.002


class WorkClock:
    """Stamp the wall-clock time at which ``counters()`` last changed (checked every ``check_s``)."""

    def __init__(
        self, counters: Callable[[], Any], lag: Callable[[], int | None] | None = None, *, check_s: float = CHECK_S
    ) -> None:
        """``counters``: a cheap snapshot of what the work moves (compared with ``==``); ``lag``: the ring's
        unread records now (None before the ring is attached)."""
        self._counters = counters
        self._lag = lag
        self.check_s = check_s
        self._last: Any = None
        self.last_work_ns: int | None = None
        self.changes = 0
        self.checks = 0
        self.max_lag_records = 0

    def check(self) -> bool:
        """Compare the counters with the last check's; stamp the time if they moved. True if they did."""
        self.checks += 1
        if self._lag is not None:
            lag = self._lag()
            if lag is not None and lag > self.max_lag_records:
                self.max_lag_records = lag
        now = self._counters()
        if now == self._last:
            return False
        self._last = now
        self.last_work_ns = time.time_ns()
        self.changes += 1
        return True

    async def run_for(self, seconds: float) -> None:
        """Check every ``check_s`` for ``seconds`` (the brain's status publisher runs this between publications)."""
        end = time.monotonic() + seconds
        while True:
            await asyncio.sleep(self.check_s)
            self.check()
            if time.monotonic() >= end:
                return

    def status(self) -> dict[str, Any]:
        return {
            "last_work_ns": self.last_work_ns,
            "changes": self.changes,
            "checks": self.checks,
            "check_s": self.check_s,
            "max_lag_records": self.max_lag_records,
        }


def brain_counters(engine: Any) -> Callable[[], tuple[Any, ...]]:
    """The counters a replay's brain moves when it works (``engine``: an :class:`aegis.brain.engine.BrainEngine`):
    the ring consumer's records and batches, the closed candles, the candle and signal writers, the executor and
    the record-time sequencer — every part of the status the runner's completion check watches."""
    consumer, book, writer, hub, executor, prices = (
        engine.consumer,
        engine.book,
        engine.writer,
        engine.hub,
        engine.executor,
        engine.prices,
    )

    def counters() -> tuple[Any, ...]:
        return (
            consumer.records_processed,
            consumer.batches,
            book.candles_closed,
            writer.stats(),
            hub.stats(),
            executor.stats_snapshot(),
            prices.stats(),
        )

    return counters


def ring_lag(engine: Any) -> Callable[[], int | None]:
    """The ring's unread records as the brain's consumer sees them now (None before it attached)."""
    consumer = engine.consumer

    def lag() -> int | None:
        reader = consumer.reader
        return None if reader is None else int(reader.lag)

    return lag
