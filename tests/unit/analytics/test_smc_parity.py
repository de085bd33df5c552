"""aegis.analytics.smc against the smartmoneyconcepts package: the same frame, value for value, dtype for dtype."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from aegis.analytics import smc
from aegis.errors import ValidationError

with contextlib.redirect_stdout(io.StringIO()):  # the package greets on import
    from smartmoneyconcepts import smc as pkg


def load_ohlc(shared_data: Path, symbol: str) -> pd.DataFrame:
    raw = pd.read_csv(shared_data / "binance/signalbot/data" / f"{symbol}_1m.csv")
    return raw[["open", "high", "low", "close", "volume"]].astype(np.float64)


@pytest.fixture(scope="module", params=["BTCUSDT", "ETHUSDT"])
def real(request: pytest.FixtureRequest, shared_data: Path) -> pd.DataFrame:
    return load_ohlc(shared_data, request.param)


def same(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert_frame_equal(got, expected, check_dtype=True, check_exact=True)


@pytest.mark.parametrize("swing_length", [5, 10, 50])
def test_every_function_matches_the_package_on_real_candles(real: pd.DataFrame, swing_length: int) -> None:
    swings = pkg.swing_highs_lows(real, swing_length)
    same(swings, smc.swing_highs_lows(real, swing_length))
    for close_break in (True, False):
        same(pkg.bos_choch(real, swings, close_break), smc.bos_choch(real, swings, close_break))
    for close_mitigation in (False, True):
        same(pkg.ob(real, swings, close_mitigation), smc.ob(real, swings, close_mitigation))
    for range_percent in (0.01, 0.005):
        same(pkg.liquidity(real, swings, range_percent), smc.liquidity(real, swings, range_percent))


def test_fvg_matches_the_package_on_real_candles(real: pd.DataFrame) -> None:
    for join_consecutive in (False, True):
        same(pkg.fvg(real, join_consecutive), smc.fvg(real, join_consecutive))


def test_real_candles_exercise_the_quirks(real: pd.DataFrame) -> None:
    """The parity above is only worth something if the data reaches the package's odd corners."""
    swings = smc.swing_highs_lows(real, 5)
    structure = smc.bos_choch(real, swings)
    cleared = structure["BrokenIndex"].notna() & structure["BOS"].isna() & structure["CHOCH"].isna()
    assert cleared.any(), "no structure cleared by a later one (BrokenIndex kept without BOS/CHOCH)"
    gaps = smc.fvg(real)
    assert ((gaps["FVG"].notna()) & (gaps["MitigatedIndex"] == 0)).any(), "no unmitigated FVG (MitigatedIndex 0)"
    assert np.isfinite(swings["HighLow"].iloc[[0, -1]]).all(), "first and last bar carry the synthetic marks"


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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ohlc=candles(), swing_length=st.integers(1, 6))
def test_every_function_matches_the_package_on_generated_candles(ohlc: pd.DataFrame, swing_length: int) -> None:
    swings = pkg.swing_highs_lows(ohlc, swing_length)
    same(swings, smc.swing_highs_lows(ohlc, swing_length))
    for join_consecutive in (False, True):
        same(pkg.fvg(ohlc, join_consecutive), smc.fvg(ohlc, join_consecutive))
    for close_break in (True, False):
        same(pkg.bos_choch(ohlc, swings, close_break), smc.bos_choch(ohlc, swings, close_break))
    for close_mitigation in (False, True):
        same(pkg.ob(ohlc, swings, close_mitigation), smc.ob(ohlc, swings, close_mitigation))
    for range_percent in (0.01, 0.005, 0.2):
        same(pkg.liquidity(ohlc, swings, range_percent), smc.liquidity(ohlc, swings, range_percent))


def test_column_names_are_matched_case_insensitively_like_the_package(shared_data: Path) -> None:
    ohlc = load_ohlc(shared_data, "ETHUSDT").iloc[:2000]
    shouting = ohlc.rename(columns=str.upper)
    same(pkg.swing_highs_lows(shouting, 10), smc.swing_highs_lows(shouting, 10))
    same(pkg.fvg(shouting), smc.fvg(shouting))


def test_corrupt_candles_raise_instead_of_flowing_through() -> None:
    ohlc = pd.DataFrame({"open": [1.0, 2.0], "high": [2.0, np.nan], "low": [0.5, 1.0], "close": [1.5, 1.5]})
    with pytest.raises(ValidationError, match="ohlc.high"):
        smc.fvg(ohlc)
    with pytest.raises(ValidationError, match="volume"):
        smc.ob(ohlc.fillna(2.0), smc.swing_highs_lows(ohlc.fillna(2.0), 1))
    with pytest.raises(ValidationError, match="swing_length"):
        smc.swing_highs_lows(ohlc.fillna(2.0), 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ohlc=candles(), data=st.data())
def test_structure_functions_match_the_package_on_arbitrary_swing_frames(
    ohlc: pd.DataFrame, data: st.DataObject
) -> None:
    """Any swings frame, not only one swing_highs_lows can produce: consecutive same-type swings, a swing on every
    bar, the same candle picked by both order-block passes."""
    n = len(ohlc)
    marks = np.array(data.draw(st.lists(st.sampled_from([np.nan, np.nan, 1.0, -1.0]), min_size=n, max_size=n)))
    level = np.where(marks == 1, ohlc["high"].to_numpy(), np.where(marks == -1, ohlc["low"].to_numpy(), np.nan))
    swings = pd.DataFrame({"HighLow": marks, "Level": level})
    for close_break in (True, False):
        same(pkg.bos_choch(ohlc, swings, close_break), smc.bos_choch(ohlc, swings, close_break))
    for close_mitigation in (False, True):
        same(pkg.ob(ohlc, swings, close_mitigation), smc.ob(ohlc, swings, close_mitigation))
    for range_percent in (0.01, 0.2):
        same(pkg.liquidity(ohlc, swings, range_percent), smc.liquidity(ohlc, swings, range_percent))
