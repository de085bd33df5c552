from __future__ import annotations

from aegis.exchange.rest import WeightTracker, klines_weight


def test_klines_weight_follows_the_published_table() -> None:
    assert [klines_weight(n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)] == [1, 1, 2, 2, 5, 5, 10, 10]


def test_weight_tracker_waits_for_the_next_minute_near_the_limit() -> None:
    now = [120.0]
    tracker = WeightTracker(limit_1m=100, clock=lambda: now[0])
    tracker.record(5, "85")  # the exchange's count wins
    assert tracker.used == 85
    assert tracker.seconds_until_room(5) == 0.0
    assert 59 < tracker.seconds_until_room(10) <= 60.05
    now[0] = 181.0  # a new minute starts from zero
    assert tracker.seconds_until_room(10) == 0.0
