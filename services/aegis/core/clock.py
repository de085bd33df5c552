"""Record time: the clock of a replay, driven by the recording's timestamps instead of the host's clock.

With ``AEGIS_CLOCK=record`` (what ``aegis replay`` sets) no service reads the wall clock for a decision:

* the **brain** pushes prices in windows of record time and executes signals between them, in record order
  (:mod:`aegis.brain.prices`); its signals carry their candle's close time;
* **risk** decides "as of" the newest time its request carries (the signal's ``created_time``, the
  ``mark_price_time``), so a replayed signal is as fresh as it was when it was recorded;
* **virtual-account** keeps a :class:`RecordClock` that the price updates it applies move forward (their
  ``event_time``): positions open, close and pay funding at the recording's time, and the ledger shows it.

Before the first recorded time arrives the clock reads ``AEGIS_CLOCK_START_MS`` (the replay passes the
recording's first receive time), so the deposits that open the accounts are dated at the start of the replay.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

UTC = dt.UTC


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, UTC)


class RecordClock:
    """A clock that only moves when it is shown a newer recorded time (never backwards)."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the record clock needs an aware start time")
        self._now = start

    def __call__(self) -> dt.datetime:
        """Return the newest time shown so far (the start before any)."""
        return self._now

    def observe(self, when: dt.datetime | None) -> dt.datetime:
        """Move the clock to ``when`` if that is later; return the reading."""
        if when is not None and when > self._now:
            self._now = when
        return self._now

    def observe_all(self, times: Iterable[dt.datetime | None]) -> dt.datetime:
        for when in times:
            self.observe(when)
        return self._now


def record_clock(settings: object) -> RecordClock | None:
    """Return a :class:`RecordClock` when ``settings.clock`` is ``record`` (start: ``clock_start_ms``), else None."""
    if getattr(settings, "clock", "system") != "record":
        return None
    return RecordClock(from_ms(int(getattr(settings, "clock_start_ms", 0))))


def as_of(times: Iterable[dt.datetime | None], fallback: Callable[[], dt.datetime]) -> dt.datetime:
    """Return the newest of ``times`` (a request's own times), or ``fallback()`` when it carries none."""
    known = [t for t in times if t is not None]
    return max(known) if known else fallback()
