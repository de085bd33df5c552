"""StreamingSMC: no look-ahead, and the documented relations with the batch functions on every prefix."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.analytics import smc
from aegis.analytics.smc import FvgEvent, LiquidityEvent, OrderBlockEvent, StreamingSMC, StructureEvent, SwingEvent
from aegis.errors import ValidationError


def load_ohlc(shared_data: Path, symbol: str) -> pd.DataFrame:
    raw = pd.read_csv(shared_data / "binance/signalbot/data" / f"{symbol}_1m.csv")
    return raw[["open", "high", "low", "close", "volume"]].astype(np.float64)


@pytest.fixture(scope="module", params=["BTCUSDT", "ETHUSDT"])
def real(request: pytest.FixtureRequest, shared_data: Path) -> pd.DataFrame:
    return load_ohlc(shared_data, request.param)


def run(ohlc: pd.DataFrame, detector: StreamingSMC, checkpoints: set[int] = frozenset()) -> tuple[list, dict]:
    """Feed every candle; return all events and the swing list seen after each checkpoint bar."""
    events: list = []
    seen: dict[int, tuple] = {}
    for t, row in enumerate(ohlc.itertuples(index=False)):
        events.extend(detector.update(row.open, row.high, row.low, row.close, row.volume))
        if t in checkpoints:
            seen[t] = detector.swings
    return events, seen


def batch_swings(ohlc: pd.DataFrame, swing_length: int) -> list[tuple[int, int, float]]:
    frame = smc.strip_edge_swings(smc.swing_highs_lows(ohlc, swing_length))
    marked = np.flatnonzero(frame["HighLow"].notna().to_numpy())
    return [(int(i), int(frame["HighLow"].iat[i]), float(frame["Level"].iat[i])) for i in marked]


def structures_frame(events: list, n: int) -> pd.DataFrame:
    """The reported-and-not-withdrawn BOS/CHOCH in the layout of ``bos_choch`` (surviving rows only)."""
    live: dict[int, StructureEvent] = {}
    for e in events:
        if isinstance(e, StructureEvent):
            if e.action == "broken":
                live[e.index] = e
            else:
                assert live.pop(e.index).broken_index == e.broken_index
    out = {name: np.full(n, np.nan) for name in ("BOS", "CHOCH", "Level", "BrokenIndex")}
    for i, e in live.items():
        out[e.kind][i] = e.direction
        out["Level"][i] = np.float32(e.level)
        out["BrokenIndex"][i] = e.broken_index
    return pd.DataFrame(out)


def fvg_frame(events: list, n: int) -> pd.DataFrame:
    out = {name: np.full(n, np.nan) for name in ("FVG", "Top", "Bottom", "MitigatedIndex")}
    for e in events:
        if isinstance(e, FvgEvent) and e.action == "formed":
            assert e.bar == e.index + 1
            out["FVG"][e.index], out["Top"][e.index], out["Bottom"][e.index] = e.direction, e.top, e.bottom
            out["MitigatedIndex"][e.index] = 0.0
        elif isinstance(e, FvgEvent):
            assert e.bar == e.mitigated_index and e.bar >= e.index + 2
            out["MitigatedIndex"][e.index] = e.mitigated_index
    return pd.DataFrame(out)


def liquidity_frame(events: list, n: int) -> pd.DataFrame:
    last: dict[int, LiquidityEvent] = {}
    for e in events:
        if isinstance(e, LiquidityEvent):
            last[e.index] = e
    out = {name: np.full(n, np.nan, dtype=np.float32) for name in ("Liquidity", "Level", "End", "Swept")}
    for i, e in last.items():
        out["Liquidity"][i], out["Level"][i], out["End"][i] = e.direction, e.level, e.end
        out["Swept"][i] = e.swept_index or 0
    return pd.DataFrame(out)


def check_against_batch(
    ohlc: pd.DataFrame, swing_length: int, close_break: bool, range_percent: float, checkpoints: set[int]
) -> dict[str, int]:
    """Assert every documented relation; return how many rows each concept produced (to see it was exercised)."""
    n = len(ohlc)
    band = (ohlc["high"].max() - ohlc["low"].min()) * range_percent
    detector = StreamingSMC(
        swing_length, close_break=close_break, liquidity_band=band, float32_levels=True, horizon=None
    )  # the whole history: the batch functions have no horizon
    events, seen = run(ohlc, detector, checkpoints)
    # swings: after bar T, the batch swings of the prefix 0..T without the synthetic edge marks ...
    for t in sorted(checkpoints):
        assert list(seen[t]) == batch_swings(ohlc.iloc[: t + 1], swing_length), f"swings differ after bar {t}"
    # ... each reported swing_length bars after its bar
    assert all(e.bar == e.index + swing_length for e in events if isinstance(e, SwingEvent))
    stripped = smc.strip_edge_swings(smc.swing_highs_lows(ohlc, swing_length))
    # FVG: the same rows as the batch function
    pd.testing.assert_frame_equal(fvg_frame(events, n), smc.fvg(ohlc), check_exact=True)
    # BOS/CHOCH: the surviving structures of bos_choch on the stripped swings
    expected = smc.bos_choch(ohlc, stripped, close_break).astype(np.float64)
    expected.loc[expected["BOS"].isna() & expected["CHOCH"].isna(), "BrokenIndex"] = np.nan
    structures = structures_frame(events, n)
    pd.testing.assert_frame_equal(structures, expected, check_exact=True)
    # liquidity: final swings only, so the newest (provisional) swing is left out
    final = stripped.copy()
    marked = np.flatnonzero(final["HighLow"].notna().to_numpy())
    if len(marked):
        final.iloc[marked[-1]] = np.nan
    pools = liquidity_frame(events, n)
    pd.testing.assert_frame_equal(pools, smc.liquidity(ohlc, final, range_percent), check_exact=True)
    return {
        "swings": len(marked),
        "structures": int(structures["BrokenIndex"].notna().sum()),
        "pools": int(pools["Liquidity"].notna().sum()),
    }


@pytest.mark.parametrize("swing_length", [5, 10, 50])
def test_streaming_equals_batch_with_the_documented_delay_on_real_candles(
    real: pd.DataFrame, swing_length: int
) -> None:
    checkpoints = set(range(swing_length, len(real), 53)) | {len(real) - 1}
    produced = check_against_batch(real, swing_length, True, 0.01, checkpoints)
    assert produced["structures"] > 10 and produced["pools"] > 5


@st.composite
def candles(draw: st.DrawFn) -> pd.DataFrame:
    """Small frames on a coarse price grid, so equal highs, equal lows and flat candles are common: either noise
    around one level or a random walk (which makes trends, hence BOS/CHOCH and order blocks)."""
    n = draw(st.integers(min_value=1, max_value=120))
    walk = draw(st.booleans())
    level = 20
    rows = []
    for _ in range(n):
        if walk:
            level = max(6, level + draw(st.integers(-3, 3)))
            points = sorted(level + draw(st.integers(-4, 4)) for _ in range(4))
        else:
            points = sorted(draw(st.lists(st.integers(1, 12), min_size=4, max_size=4)))
        low, high = points[0], points[3]
        open_, close = (points[1], points[2]) if draw(st.booleans()) else (points[2], points[1])
        volume = draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.25]))
        rows.append((open_ * 0.5, high * 0.5, low * 0.5, close * 0.5, volume))
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"])
    if draw(st.booleans()):
        frame.index = pd.date_range("2025-01-01", periods=n, freq="1min", tz="UTC")
    return frame


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ohlc=candles(),
    swing_length=st.integers(1, 5),
    close_break=st.booleans(),
    range_percent=st.sampled_from([0.05, 0.2]),
)
def test_streaming_equals_batch_on_every_prefix_of_generated_candles(
    ohlc: pd.DataFrame, swing_length: int, close_break: bool, range_percent: float
) -> None:
    check_against_batch(ohlc, swing_length, close_break, range_percent, set(range(len(ohlc))))


def test_no_look_ahead_on_random_prefixes_of_real_candles(shared_data: Path) -> None:
    ohlc = load_ohlc(shared_data, "BTCUSDT").iloc[:6000]
    rows = list(ohlc.itertuples(index=False))
    rng = random.Random(20250606)
    for swing_length in (5, 20):
        for _ in range(3):
            prefix = rng.randrange(200, len(rows) - 600)
            extra = rng.randrange(1, 600)
            short, long = StreamingSMC(swing_length), StreamingSMC(swing_length)
            short_events = [e for row in rows[:prefix] for e in short.update(*row)]
            long_events = [e for row in rows[: prefix + extra] for e in long.update(*row)]
            assert short_events == [e for e in long_events if e.bar < prefix]
            assert all(e.bar < prefix for e in short_events)
            # every swing but the newest is final: appending bars never changes it (the longer run may have
            # trimmed more of the oldest ones beyond its horizon)
            final = [s for s in short.swings[:-1] if s[0] >= long.swings[0][0]]
            assert long.swings[: len(final)] == tuple(final) and len(final) > 10


def test_the_batch_functions_do_look_ahead(shared_data: Path) -> None:
    """Why the streaming detector exists: appending bars changes batch results for earlier bars."""
    ohlc = load_ohlc(shared_data, "BTCUSDT").iloc[:3000]
    full = smc.swing_highs_lows(ohlc, 10)["HighLow"].to_numpy()
    changed = 0
    for prefix in range(500, 3000, 250):
        early = smc.swing_highs_lows(ohlc.iloc[:prefix], 10)["HighLow"].to_numpy()
        changed += not np.array_equal(early[: prefix - 1], full[: prefix - 1], equal_nan=True)
    assert changed > 0


def test_order_blocks_are_causal_and_well_formed(real: pd.DataFrame) -> None:
    events, _ = run(real.iloc[:5000], StreamingSMC(10))
    blocks: dict[tuple[int, int], str] = {}
    swings_by_bar: list[tuple[int, int]] = []
    for e in events:
        if isinstance(e, SwingEvent):
            swings_by_bar.append((e.bar, e.index))
        if not isinstance(e, OrderBlockEvent):
            continue
        key = (e.index, e.direction)
        assert e.top >= e.bottom
        assert e.index < e.bar
        if e.action == "formed":
            assert blocks.get(key) in (None, "removed")
            assert any(bar <= e.bar and index <= e.index for bar, index in swings_by_bar)
        elif e.action == "mitigated":
            assert blocks[key] == "formed"
        else:
            assert blocks[key] == "mitigated"
        blocks[key] = e.action
    assert set(blocks.values()) == {"formed", "mitigated", "removed"}


def test_update_rejects_corrupt_candles() -> None:
    detector = StreamingSMC(3)
    with pytest.raises(ValidationError, match="close"):
        detector.update(1.0, 2.0, 0.5, float("nan"), 1.0)


def sizes(detector: StreamingSMC) -> dict[str, int]:
    d = detector
    return {
        "candles": len(d._close), "swings": len(d._swings), "gaps": len(d._fvg_bull) + len(d._fvg_bear),
        "blocks": len(d._blocks), "pools": len(d._pools), "pending": len(d._pending), "broken": len(d._broken),
        "crossed": len(d._crossed),
    }  # fmt: skip


def test_memory_stays_bounded_over_100k_candles() -> None:
    rng = np.random.default_rng(1)
    n = 100_000
    close = 100 * np.exp(np.cumsum(rng.standard_t(3, n) * 0.001))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0005, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0005, n)))
    volume = rng.uniform(1, 10, n)
    horizon = 1000
    detector = StreamingSMC(3, horizon=horizon)
    seen: list[dict[str, int]] = []
    for i in range(n):
        detector.update(open_[i], high[i], low[i], close[i], volume[i])
        if i % 10_000 == 9_999:
            seen.append(sizes(detector))
    assert detector.bars == n
    for got in seen:
        assert got["candles"] <= 2 * horizon
        for name in ("swings", "gaps", "blocks", "pending", "broken", "crossed"):
            assert got[name] <= horizon, (name, got)
        assert got["pools"] <= 2 / 0.01  # the band (1% of the range) bounds them, not the horizon
    # flat, not growing: the second half holds no more than the first
    first, second = seen[: len(seen) // 2], seen[len(seen) // 2 :]
    for name in ("swings", "gaps", "blocks", "pools", "crossed"):
        assert max(s[name] for s in second) <= 1.5 * max(max(s[name] for s in first), 10), name
    unbounded = StreamingSMC(3, horizon=None)
    for i in range(20_000):
        unbounded.update(open_[i], high[i], low[i], close[i], volume[i])
    assert len(unbounded._close) == 20_000 and len(unbounded._swings) > 2 * sizes(detector)["swings"]


@pytest.mark.parametrize("swing_length, horizon", [(3, 2000), (5, 500), (10, 200)])
def test_the_horizon_changes_no_event_about_a_candle_within_it(
    real: pd.DataFrame, swing_length: int, horizon: int
) -> None:
    """On the real 10-day klines (14,400 candles, many trims): bounded == unbounded, except events beyond it."""
    bounded, unbounded = StreamingSMC(swing_length, horizon=horizon), StreamingSMC(swing_length, horizon=None)
    dropped = kept = 0
    for row in real.itertuples(index=False):
        mine = bounded.update(*row)
        full = unbounded.update(*row)
        assert mine == [e for e in full if e in mine]  # nothing new, same order
        for e in full:
            if e in mine:
                kept += 1
            else:
                assert e.bar - e.index > horizon, e  # only what lies beyond the horizon is left out
                dropped += 1
    assert kept > 1000 and len(bounded._close) <= 2 * horizon
