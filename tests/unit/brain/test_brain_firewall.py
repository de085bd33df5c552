"""The consumer's one-pass firewall pre-check (kernels.first_implausible) agrees with the feed's check_records."""

from __future__ import annotations

import numpy as np

from aegis.brain import kernels as k
from aegis.core import records as rec
from aegis.feed.firewall import MIN_EXCHANGE_TIME_MS, check_records

T0 = 1_723_161_240_000


def valid_records(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` records of every kind, each one the firewall accepts."""
    out = []
    for i in range(n):
        kind = int(rng.integers(1, 6))
        t = T0 + int(rng.integers(0, 10**7))
        p = float(rng.uniform(1, 100))
        sid = int(rng.integers(0, 8))
        if kind == rec.TRADE:
            out.append(rec.pack_trade(sid, t, 0, p, 1.5, i, i, i + 2, t, bool(i % 2)))
        elif kind == rec.BOOK_TICKER:
            out.append(rec.pack_book_ticker(sid, t, 0, i, p, 1.0, p * 1.001, 2.0, t))
        elif kind == rec.MARK_PRICE:
            out.append(rec.pack_mark_price(sid, t, 0, p, p, p, 0.0001, t + 3_600_000))
        elif kind == rec.KLINE:
            o = t - t % 60_000
            out.append(rec.pack_kline(sid, t, 0, o, o + 59_999, 60_000, p, p * 1.01, p * 0.99, p, 10, 10 * p, 5, 4,
                                      True))  # fmt: skip
        else:
            out.append(rec.pack_liquidation(sid, t, 0, "SELL", "LIMIT", "FILLED", p, p, 1.0, 1.0, 1.0, t))
    return np.frombuffer(b"".join(out), dtype=rec.MARKET_RECORD).copy()


BAD_FLOATS = (np.nan, np.inf, -np.inf, -1.0, 0.0, 1e300)
BAD_INTS = (-1, 0, 1, 10**15, -(10**15), MIN_EXCHANGE_TIME_MS - 1)


def mutate(rng: np.random.Generator, batch: np.ndarray) -> None:
    """Change one field of one record to a value that is often, not always, refused."""
    i = int(rng.integers(0, len(batch)))
    field = str(rng.choice(["kind", "symbol_id", "event_time_ms", *[f"f{j}" for j in range(7)],
                            *[f"i{j}" for j in range(5)]]))  # fmt: skip
    if field == "kind":
        batch[field][i] = int(rng.choice([0, 6, 255, 1, 2, 3, 4, 5]))
    elif field == "symbol_id":
        batch[field][i] = int(rng.choice([7, 8, 9, 65535]))
    elif field.startswith("f"):
        batch[field][i] = float(rng.choice(BAD_FLOATS)) if rng.random() < 0.7 else batch[field][i] * rng.uniform(0, 3)
    else:
        batch[field][i] = int(rng.choice(BAD_INTS)) if rng.random() < 0.7 else int(batch[field][i]) + 1


def fast(batch: np.ndarray, symbol_count: int, max_time_ms: int) -> int:
    n = len(batch)
    return int(
        k.first_implausible(
            batch.view(np.uint8).reshape(n, 128), batch.view(np.float64).reshape(n, 16),
            batch.view(np.int64).reshape(n, 16), symbol_count, MIN_EXCHANGE_TIME_MS, max_time_ms,
        )
    )  # fmt: skip


def test_the_one_pass_precheck_refuses_exactly_the_records_the_firewall_refuses() -> None:
    rng = np.random.default_rng(7)
    refused = accepted = 0
    for _ in range(3000):
        batch = valid_records(rng, 6)
        for _ in range(int(rng.integers(0, 3))):
            mutate(rng, batch)
        symbol_count = int(rng.choice([-1, 8]))
        max_time_ms = int(rng.choice([T0 + 10**8, T0 + 5 * 10**6, np.iinfo(np.int64).max]))
        ok, _ = check_records(
            batch, symbol_count=None if symbol_count < 0 else symbol_count,
            max_time_ms=None if max_time_ms == np.iinfo(np.int64).max else max_time_ms,
        )  # fmt: skip
        first = fast(batch, symbol_count, max_time_ms)
        expected = -1 if ok.all() else int(np.argmin(ok))
        assert first == expected, (batch, ok)
        refused += first >= 0
        accepted += first < 0
    assert refused > 500 and accepted > 500  # both outcomes were exercised


def test_map_plausible_is_map_symbols_then_the_precheck() -> None:
    """The consumer's one call: True exactly when every id maps (ids 0-7 known; 8 and beyond are not) and no
    record is refused; the ids are mapped as map_symbols maps them either way."""
    rng = np.random.default_rng(11)
    ring_ids = np.arange(100, 108, dtype=np.int64)
    outcomes = set()
    for _ in range(2000):
        batch = valid_records(rng, 6)
        for _ in range(int(rng.integers(0, 4))):
            mutate(rng, batch)
        n = len(batch)
        raw, fw, iw = (
            batch.view(np.uint8).reshape(n, 128),
            batch.view(np.float64).reshape(n, 16),
            batch.view(np.int64).reshape(n, 16),
        )
        mapped, expected_map = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        missing = k.map_symbols(raw, ring_ids, expected_map)
        plausible = fast(batch, -1, T0 + 10**8) < 0
        got = k.map_plausible(raw, fw, iw, ring_ids, mapped, -1, MIN_EXCHANGE_TIME_MS, T0 + 10**8)
        assert got == (missing == 0 and plausible)
        if missing == 0:
            assert mapped.tolist() == expected_map.tolist()
        outcomes.add((missing == 0, plausible))
    assert outcomes == {(True, True), (True, False), (False, True), (False, False)}
