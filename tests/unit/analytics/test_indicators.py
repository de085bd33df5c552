"""Tests for aegis.analytics.indicators: parity with TA-Lib, streaming == batch, argument checks, volume features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.analytics import indicators as ind
from aegis.errors import ValidationError

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PERIODS = (2, 5, 14, 20, 50, 200)
MACD_TRIPLES = ((12, 26, 9), (5, 35, 5), (3, 10, 16))
BBANDS_PAIRS = ((20, 2.0), (10, 1.5), (5, 1.0))
MAX_REL = 1e-9


def rel_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest relative difference where both have a value, after checking the NaN masks are identical."""
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), "NaN masks differ"
    mask = ~np.isnan(theirs)
    a, b = ours[mask], theirs[mask]
    if a.size == 0:
        return 0.0
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    return float(np.max(np.where(diff == 0.0, 0.0, diff / np.where(scale == 0.0, 1.0, scale))))


@pytest.fixture(scope="module", params=["BTCUSDT", "ETHUSDT"])
def klines(request, shared_data: Path) -> dict[str, np.ndarray]:
    frame = pd.read_csv(shared_data / "binance" / "signalbot" / "data" / f"{request.param}_1m.csv")
    assert len(frame) == 14_400
    columns = ("high", "low", "close", "volume", "taker_buy_base_asset_volume")
    out = {name: frame[name].to_numpy(np.float64) for name in columns}
    out["open_time_ms"] = (pd.to_datetime(frame["open_time"]).astype("int64") // 1_000_000).to_numpy()
    return out


def _pairs(k: dict[str, np.ndarray]):
    """(name, ours, theirs) for every indicator and parameter set compared with TA-Lib."""
    h, low, c = k["high"], k["low"], k["close"]
    for p in PERIODS:
        yield f"sma{p}", ind.sma(c, p), talib.SMA(c, p)
        yield f"ema{p}", ind.ema(c, p), talib.EMA(c, p)
        yield f"rsi{p}", ind.rsi(c, p), talib.RSI(c, p)
        yield f"atr{p}", ind.atr(h, low, c, p), talib.ATR(h, low, c, p)
        yield f"adx{p}", ind.adx(h, low, c, p), talib.ADX(h, low, c, p)
    for fast, slow, signal in MACD_TRIPLES:
        for part, ours, theirs in zip(
            ("macd", "signal", "hist"), ind.macd(c, fast, slow, signal), talib.MACD(c, fast, slow, signal), strict=True
        ):
            yield f"macd{fast}/{slow}/{signal}.{part}", ours, theirs
    for period, nbdev in BBANDS_PAIRS:
        for part, ours, theirs in zip(
            ("upper", "middle", "lower"),
            ind.bbands(c, period, nbdev),
            talib.BBANDS(c, period, nbdev, nbdev, 0),
            strict=True,
        ):
            yield f"bbands{period}/{nbdev}.{part}", ours, theirs
    yield "obv", ind.obv(c, k["volume"]), talib.OBV(c, k["volume"])


def test_indicators_equal_talib_on_real_klines(klines: dict[str, np.ndarray]) -> None:
    errors = {name: rel_error(ours, theirs) for name, ours, theirs in _pairs(klines)}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= MAX_REL, f"{worst}: {errors[worst]:.3g}"
    # What is bit-identical to TA-Lib 0.8.1 (see docs/indicators.md); ATR and BBANDS agree to a few ulps.
    exact = [name for name in errors if name.startswith(("sma", "ema", "rsi", "adx", "macd", "obv"))]
    assert all(errors[n] == 0.0 for n in exact), {n: errors[n] for n in exact if errors[n]}


def test_indicator_warm_up_matches_talib_lookback() -> None:
    c = np.linspace(100.0, 120.0, 60)
    h, low = c + 1.0, c - 1.0
    assert np.flatnonzero(~np.isnan(ind.sma(c, 5)))[0] == 4
    assert np.flatnonzero(~np.isnan(ind.ema(c, 5)))[0] == 4
    assert np.flatnonzero(~np.isnan(ind.rsi(c, 5)))[0] == 5
    assert np.flatnonzero(~np.isnan(ind.atr(h, low, c, 5)))[0] == 5
    assert np.flatnonzero(~np.isnan(ind.adx(h, low, c, 5)))[0] == 9
    assert np.flatnonzero(~np.isnan(ind.macd(c, 12, 26, 9)[0]))[0] == 26 + 9 - 2
    assert np.flatnonzero(~np.isnan(ind.bbands(c, 5, 2.0)[1]))[0] == 4


def test_indicator_leading_nans_are_skipped_like_talib() -> None:
    c = np.concatenate([[np.nan] * 7, 100.0 + np.cumsum(np.random.default_rng(1).normal(size=80))])
    h, low = c + 0.5, c - 0.5
    assert rel_error(ind.sma(c, 5), talib.SMA(c, 5)) == 0.0
    assert rel_error(ind.rsi(c, 5), talib.RSI(c, 5)) == 0.0
    assert rel_error(ind.adx(h, low, c, 5), talib.ADX(h, low, c, 5)) == 0.0
    assert rel_error(ind.macd(c, 3, 6, 4)[2], talib.MACD(c, 3, 6, 4)[2]) == 0.0
    assert np.isnan(ind.sma(np.full(10, np.nan), 3)).all()


def test_macd_swaps_fast_and_slow_like_talib() -> None:
    c = 100.0 + np.cumsum(np.random.default_rng(2).normal(size=120))
    for ours, theirs in zip(ind.macd(c, 26, 12, 9), ind.macd(c, 12, 26, 9), strict=True):
        assert np.array_equal(ours, theirs, equal_nan=True)


# ------------------------------------------------------------------------------------------------------------
# Streaming


def _batch_columns(h, low, c, p: dict[str, int], nbdev: float) -> list[np.ndarray]:
    return [
        ind.sma(c, p["sma"]),
        ind.ema(c, p["ema"]),
        ind.rsi(c, p["rsi"]),
        ind.atr(h, low, c, p["atr"]),
        *ind.macd(c, p["macd_fast"], p["macd_slow"], p["macd_signal"]),
        *ind.bbands(c, p["bb"], nbdev),
        ind.adx(h, low, c, p["adx"]),
    ]


def test_streaming_indicators_equal_batch_on_real_klines(shared_data: Path) -> None:
    frames = [
        pd.read_csv(shared_data / "binance" / "signalbot" / "data" / f"{s}_1m.csv") for s in ("BTCUSDT", "ETHUSDT")
    ]
    high, low, close = (np.stack([f[col].to_numpy(np.float64) for f in frames]) for col in ("high", "low", "close"))
    stream = ind.StreamingIndicators(
        2, sma_period=5, ema_period=50, rsi_period=2, atr_period=200, bb_period=10, bb_nbdev=1.5
    )
    seen = np.empty((close.shape[1], 2, len(ind.StreamingIndicators.COLUMNS)))
    for t in range(close.shape[1]):
        seen[t] = stream.update(high[:, t].copy(), low[:, t].copy(), close[:, t].copy())
    for s in range(2):
        expected = _batch_columns(high[s], low[s], close[s], stream.periods, stream.bb_nbdev)
        for column, name in enumerate(ind.StreamingIndicators.COLUMNS):
            assert np.array_equal(seen[:, s, column], expected[column], equal_nan=True), name
    # feed (the history path) ends in the same state as bar-by-bar updates
    again = ind.StreamingIndicators(
        2, sma_period=5, ema_period=50, rsi_period=2, atr_period=200, bb_period=10, bb_nbdev=1.5
    )
    again.feed(high[:, :9000], low[:, :9000], close[:, :9000])
    again.feed(high[:, 9000:], low[:, 9000:], close[:, 9000:])
    assert np.array_equal(again.values, stream.values, equal_nan=True)
    assert again.bars.tolist() == [close.shape[1]] * 2
    # update_one (the brain's path: one symbol, one bar, floats) gives the same values, to the bit
    one = ind.StreamingIndicators(
        2, sma_period=5, ema_period=50, rsi_period=2, atr_period=200, bb_period=10, bb_nbdev=1.5
    )
    for t in range(close.shape[1]):
        for s in (1, 0):
            one.update_one(s, float(high[s, t]), float(low[s, t]), float(close[s, t]))
            assert np.array_equal(one.values[s], seen[t, s], equal_nan=True)
    with pytest.raises(ind.IndicatorArgumentError, match="not finite"):
        one.update_one(0, 1.0, 1.0, float("nan"))
    assert np.array_equal(one.values, stream.values, equal_nan=True) and one.bars.tolist() == stream.bars.tolist()


@st.composite
def bars(draw, max_len: int = 260) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive OHLC series built from segments of random moves and flat stretches (constant prices)."""
    start = draw(st.floats(0.5, 90_000.0))
    segments = draw(
        st.lists(st.tuples(st.booleans(), st.integers(1, 60), st.integers(0, 2**32 - 1)), min_size=1, max_size=8)
    )
    closes, highs, lows = [], [], []
    price = start
    for flat, length, seed in segments:
        rng = np.random.default_rng(seed)
        for _ in range(length):
            if flat:
                closes.append(price)
                highs.append(price)
                lows.append(price)
                continue
            price = max(1e-3, price * float(np.exp(rng.normal(0.0, 0.02))))
            closes.append(price)
            highs.append(price * (1.0 + abs(float(rng.normal(0.0, 0.01)))))
            lows.append(price * (1.0 - min(0.5, abs(float(rng.normal(0.0, 0.01))))))
    n = min(len(closes), max_len)
    return np.array(highs[:n]), np.array(lows[:n]), np.array(closes[:n])


@HYPOTHESIS
@given(data=bars(), periods=st.tuples(st.integers(2, 30), st.integers(2, 30), st.integers(2, 30), st.integers(1, 12)))
def test_streaming_indicators_equal_batch_and_talib_on_random_series(data, periods) -> None:
    h, low, c = data
    a, b, r, signal = periods
    stream = ind.StreamingIndicators(
        1, sma_period=a, ema_period=b, rsi_period=r, atr_period=b, macd_fast=a, macd_slow=b, macd_signal=signal,
        bb_period=r, bb_nbdev=2.0, adx_period=a,
    )  # fmt: skip
    seen = np.array([stream.update(h[t : t + 1], low[t : t + 1], c[t : t + 1])[0].copy() for t in range(c.shape[0])])
    n = c.shape[0]
    fast, slow = min(a, b), max(a, b)
    expected = [
        (ind.sma(c, a) if a <= n else None, talib.SMA(c, a)),
        (ind.ema(c, b) if b <= n else None, talib.EMA(c, b)),
        (ind.rsi(c, r) if r <= n else None, talib.RSI(c, r)),
        (ind.atr(h, low, c, b) if b <= n else None, talib.ATR(h, low, c, b)),
        *zip(
            ind.macd(c, fast, slow, signal) if slow <= n and signal <= n else [None] * 3,
            talib.MACD(c, fast, slow, signal),
            strict=True,
        ),
        *zip(ind.bbands(c, r, 2.0) if r <= n else [None] * 3, talib.BBANDS(c, r, 2.0, 2.0, 0), strict=True),
        (ind.adx(h, low, c, a) if a <= n else None, talib.ADX(h, low, c, a)),
    ]
    for column, (batch, theirs) in enumerate(expected):
        name = ind.StreamingIndicators.COLUMNS[column]
        if batch is None:  # the batch form refuses a period longer than the series; the stream is still warming up
            assert np.isnan(seen[:, column]).all(), name
            continue
        assert np.array_equal(seen[:, column], batch, equal_nan=True), name
        assert rel_error(batch, theirs) <= MAX_REL, name


def test_streaming_update_of_some_symbols_leaves_the_others() -> None:
    rng = np.random.default_rng(3)
    c = 100.0 + np.cumsum(rng.normal(size=(3, 80)), axis=1)
    stream = ind.StreamingIndicators(3, sma_period=5)
    stream.feed(c, c, c)
    before = stream.values.copy()
    rows = np.array([2, 0], dtype=np.int64)
    stream.update(np.array([101.0, 99.0]), np.array([100.0, 98.0]), np.array([100.5, 98.5]), symbols=rows)
    assert np.array_equal(stream.values[1], before[1], equal_nan=True)
    assert stream.bars.tolist() == [81, 80, 81]
    assert stream.sma[2] == pytest.approx((c[2, -4:].sum() + 100.5) / 5)
    stream.reset([2])
    assert stream.bars[2] == 0 and np.isnan(stream.values[2]).all()


def test_streaming_rejects_a_non_finite_bar_and_changes_nothing() -> None:
    stream = ind.StreamingIndicators(2, sma_period=2)
    stream.update(np.array([2.0, 3.0]), np.array([1.0, 2.0]), np.array([1.5, 2.5]))
    values, bars = stream.values.copy(), stream.bars.copy()
    with pytest.raises(ValueError, match=r"^high/low/close: .*symbol 1"):
        stream.update(np.array([2.0, 3.0]), np.array([1.0, 2.0]), np.array([1.5, np.nan]))
    assert np.array_equal(stream.values, values, equal_nan=True)
    assert np.array_equal(stream.bars, bars)
    with pytest.raises(ValueError, match=r"^close: "):
        stream.update(np.array([2.0, 3.0]), np.array([1.0, 2.0]), np.array([1.5]))
    with pytest.raises(ValueError, match=r"^symbols: "):
        stream.update(np.array([2.0]), np.array([1.0]), np.array([1.5]), symbols=np.array([5], dtype=np.int64))
    with pytest.raises(ValueError, match=r"^rsi_period: "):
        ind.StreamingIndicators(2, rsi_period=1)
    with pytest.raises(ValueError, match=r"^name: "):
        stream.column("vwap")
    assert stream.column("rsi") is not None


# ------------------------------------------------------------------------------------------------------------
# Arguments


CLOSE = np.linspace(1.0, 2.0, 30)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: ind.sma(CLOSE, 0), "period"),
        (lambda: ind.ema(CLOSE, -3), "period"),
        (lambda: ind.rsi(CLOSE, 1), "period"),
        (lambda: ind.sma(CLOSE, 31), "period"),
        (lambda: ind.adx(CLOSE, CLOSE, CLOSE, 31), "period"),
        (lambda: ind.sma(CLOSE, 5.0), "period"),
        (lambda: ind.sma(CLOSE, True), "period"),
        (lambda: ind.macd(CLOSE, 1, 26, 9), "fast"),
        (lambda: ind.macd(CLOSE, 12, 40, 9), "slow"),
        (lambda: ind.macd(CLOSE, 12, 26, 0), "signal"),
        (lambda: ind.bbands(CLOSE, 20, float("nan")), "nbdev"),
        (lambda: ind.bbands(CLOSE, 20, "2"), "nbdev"),
        (lambda: ind.sma(list(CLOSE), 5), "close"),
        (lambda: ind.sma(np.arange(30), 5), "close"),
        (lambda: ind.sma(CLOSE.astype(np.float32), 5), "close"),
        (lambda: ind.sma(CLOSE.reshape(5, 6), 2), "close"),
        (lambda: ind.atr(CLOSE, CLOSE[:-1], CLOSE, 5), "low"),
        (lambda: ind.adx(CLOSE, CLOSE, CLOSE[:10], 5), "close"),
        (lambda: ind.sma(np.where(np.arange(30) == 12, np.nan, CLOSE), 5), "close"),
        (lambda: ind.sma(np.where(np.arange(30) == 0, np.inf, CLOSE), 5), "close"),
        (lambda: ind.obv(CLOSE, CLOSE[:5]), "volume"),
        (lambda: ind.taker_buy_ratio(CLOSE, CLOSE * 2.0), "taker_buy_volume"),
        (lambda: ind.vwap(CLOSE, CLOSE, CLOSE, CLOSE, reset=np.zeros(30)), "reset"),
        (lambda: ind.day_starts(np.zeros(3)), "open_time_ms"),
    ],
)
def test_indicator_invalid_argument_raises_value_error_naming_it(call, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"^{argument}: ") as raised:
        call()
    assert isinstance(raised.value, ValidationError)
    assert raised.value.field == argument


# ------------------------------------------------------------------------------------------------------------
# Volume features


def test_volume_features_on_real_klines(klines: dict[str, np.ndarray]) -> None:
    h, low, c, v, taker = (
        klines["high"],
        klines["low"],
        klines["close"],
        klines["volume"],
        klines["taker_buy_base_asset_volume"],
    )
    typical = (h + low + c) / 3.0

    ratio = ind.volume_ratio(v, 20)
    naive = v / pd.Series(v).rolling(20).mean().to_numpy()
    assert np.isnan(ratio[:19]).all()
    np.testing.assert_allclose(ratio[19:], naive[19:], rtol=1e-9)

    share = ind.taker_buy_ratio(v, taker, 60)
    naive = pd.Series(taker).rolling(60).sum().to_numpy() / pd.Series(v).rolling(60).sum().to_numpy()
    np.testing.assert_allclose(share[59:], naive[59:], rtol=1e-9)
    assert ((share[59:] >= 0.0) & (share[59:] <= 1.0)).all()

    rolling = ind.rolling_vwap(h, low, c, v, 30)
    naive = pd.Series(typical * v).rolling(30).sum().to_numpy() / pd.Series(v).rolling(30).sum().to_numpy()
    np.testing.assert_allclose(rolling[29:], naive[29:], rtol=1e-9)

    starts = ind.day_starts(klines["open_time_ms"])
    day = klines["open_time_ms"] // 86_400_000
    assert starts.sum() == len(np.unique(day))
    anchored = ind.vwap(h, low, c, v, reset=starts)
    frame = pd.DataFrame({"day": day, "pv": typical * v, "v": v})
    naive = (frame.groupby("day")["pv"].cumsum() / frame.groupby("day")["v"].cumsum()).to_numpy()
    np.testing.assert_allclose(anchored, naive, rtol=1e-9)
    assert np.all((anchored >= low.min()) & (anchored <= h.max()))


def test_vwap_is_nan_until_something_traded() -> None:
    price = np.array([10.0, 11.0, 12.0, 13.0])
    volume = np.array([0.0, 0.0, 2.0, 1.0])
    out = ind.vwap(price, price, price, volume)
    assert np.isnan(out[:2]).all()
    assert out[2] == 12.0 and out[3] == pytest.approx((24.0 + 13.0) / 3.0)
    assert np.isnan(ind.taker_buy_ratio(volume, volume * 0.5, 2)[1])
    assert np.isnan(ind.volume_ratio(volume, 2)[1])
