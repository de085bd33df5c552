"""RecentSignals keeps exactly the newest ``capacity`` signals, whatever order they arrive in, with chunked drops."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.brain.signals import RecentSignals, SignalFilter
from aegis.brain.strategy import Signal

_FIELDS = {
    "timeframe": "1m", "side": "LONG", "entry_price": Decimal("100"), "sl_pct": 1.0, "tp_pct": 2.0, "confidence": 0.6,
    "predicted_return_pct": 0.5, "model_version": "rules-v1", "feature_schema_version": 1, "features": (),
    "reasons": (),
}  # fmt: skip


def _signal(created: int, n: int, symbol: str) -> Signal:
    fields = {**_FIELDS, "signal_id": f"00000000-0000-5000-8000-{n:012d}", "symbol": symbol, "created_time_ns": created}
    return msgspec.convert(fields, Signal)


@settings(max_examples=300)
@given(
    capacity=st.integers(1, 6),
    arrivals=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 12), st.sampled_from("AB")), max_size=60),
    before=st.one_of(st.none(), st.tuples(st.integers(0, 31), st.just("00000000-0000-5000-8000-000000000006"))),
    limit=st.integers(1, 8),
)
def test_recent_signals_hold_the_newest_capacity_whatever_the_arrival_order(
    capacity: int, arrivals: list[tuple[int, int, str]], before: tuple[int, str] | None, limit: int
) -> None:
    recent = RecentSignals(capacity)
    kept: dict[tuple[int, str], Signal] = {}  # the reference: a sorted store trimmed to the newest after each add
    for created, n, symbol in arrivals:
        signal = _signal(created, n, symbol)
        recent.add(signal)
        key = (signal.created_time_ns, signal.signal_id)
        if key not in kept:
            kept[key] = signal
            for old in sorted(kept)[: max(0, len(kept) - capacity)]:
                del kept[old]
        assert len(recent) == len(kept)
    for where in (SignalFilter(), SignalFilter(symbol="A")):
        expected = [kept[k] for k in sorted(kept, reverse=True) if (before is None or k < before)]
        expected = [s for s in expected if where.matches(s)][:limit]
        assert recent.newest(where, before, limit) == expected


def test_a_full_store_takes_each_new_signal_in_constant_time_and_stays_exact() -> None:
    recent = RecentSignals(1000)
    for i in range(10_000):
        recent.add(_signal(i, i, "A"))
        assert len(recent) == min(i + 1, 1000)
    assert len(recent._keys) < 2000  # the dropped prefix is cut off in chunks
    newest = recent.newest(SignalFilter(), None, 2000)
    assert [s.created_time_ns for s in newest] == list(range(9999, 8999, -1))
