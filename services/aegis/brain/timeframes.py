"""The timeframes the brain builds, their widths and their names on the wire.

Every candle is aligned on exchange (UTC) boundaries: ``open_time = floor(t / width) * width`` in Unix ms, which is
what Binance does for every interval up to 1d. Each timeframe after the first is rolled up from the one before it
(5m from 1m, 15m from 5m, 1h from 15m, 1d from 1h), so each width must divide the next one.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Protocol

from aegis.v1 import common_pb2 as common_pb


@dataclass(frozen=True, slots=True)
class TimeframeSpec:
    name: str
    """Binance interval name, also the ``candles.timeframe`` value: ``"1m"``."""
    width_ms: int
    proto: int
    """``aegis.v1.Timeframe`` value."""


TIMEFRAMES: tuple[TimeframeSpec, ...] = (
    TimeframeSpec("1m", 60_000, common_pb.TIMEFRAME_1M),
    TimeframeSpec("5m", 300_000, common_pb.TIMEFRAME_5M),
    TimeframeSpec("15m", 900_000, common_pb.TIMEFRAME_15M),
    TimeframeSpec("1h", 3_600_000, common_pb.TIMEFRAME_1H),
    TimeframeSpec("1d", 86_400_000, common_pb.TIMEFRAME_1D),
)
"""Tracked timeframes, narrowest first; index = the timeframe index used in the brain's arrays."""

TIMEFRAME_NAMES: tuple[str, ...] = tuple(tf.name for tf in TIMEFRAMES)
WIDTHS_MS: tuple[int, ...] = tuple(tf.width_ms for tf in TIMEFRAMES)
INDEX_BY_NAME: dict[str, int] = {tf.name: i for i, tf in enumerate(TIMEFRAMES)}
INDEX_BY_PROTO: dict[int, int] = {tf.proto: i for i, tf in enumerate(TIMEFRAMES)}

for _narrow, _wide in itertools.pairwise(WIDTHS_MS):
    assert _wide % _narrow == 0, "each timeframe must be a whole number of the previous one"


def open_time_ms(time_ms: int, width_ms: int) -> int:
    """Return the open time of the candle of width ``width_ms`` that contains ``time_ms``."""
    return time_ms - time_ms % width_ms


def close_time_ms(open_ms: int, width_ms: int) -> int:
    """Return the close time of a candle (inclusive, Binance convention: open + width - 1 ms)."""
    return open_ms + width_ms - 1


class Clock(Protocol):
    """The time sources the brain needs; tests and replays inject their own."""

    def time_ns(self) -> int:
        """Wall-clock time, Unix ns."""
        ...

    def monotonic_ns(self) -> int:
        """CLOCK_MONOTONIC ns (what the ring's ``recv_time_ns`` holds on the live path)."""
        ...


class SystemClock:
    """The real clocks."""

    time_ns = staticmethod(time.time_ns)
    monotonic_ns = staticmethod(time.monotonic_ns)
