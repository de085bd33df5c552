"""Technical indicators over float64 arrays, equal to TA-Lib's, in batch and streaming form.

Batch functions take 1-D ``numpy.float64`` arrays and return arrays of the same length. Bars before an
indicator has enough history are NaN, exactly where TA-Lib puts NaN, and every other value is what TA-Lib computes
(the kernels repeat TA-Lib's arithmetic operation for operation; see docs/indicators.md):

* ``sma(close, period)``, ``ema(close, period)``, ``rsi(close, period)``, ``atr(high, low, close, period)``,
  ``macd(close, fast, slow, signal) -> (macd, signal, hist)``, ``bbands(close, period, nbdev) -> (upper, middle,
  lower)``, ``adx(high, low, close, period)``;
* volume features: ``obv(close, volume)`` (TA-Lib's OBV), ``volume_ratio(volume, period)``,
  ``taker_buy_ratio(volume, taker_buy_volume, period)``, ``vwap(high, low, close, volume, reset)`` (anchored,
  restarting where ``reset`` is true, e.g. at each UTC day from :func:`day_starts`) and
  ``rolling_vwap(high, low, close, volume, period)``.

Like TA-Lib, leading NaNs are not data: the indicator starts at the first bar where every input is a number (so
indicators can be chained, ``sma(rsi(close, 14), 5)``). A NaN after that, or an infinity anywhere, raises: TA-Lib
would let one such value poison every later output, and corrupt data is worse than no data.

:class:`StreamingIndicators` keeps the state of the seven indicators for many symbols in numpy arrays and advances
all of them by one closed bar per symbol in one compiled call; after every bar its values equal the batch values
at that bar (bit for bit, warm-up NaNs included).

Invalid arguments raise :class:`IndicatorArgumentError`, a ``ValueError`` (and an :class:`aegis.errors.
ValidationError`) whose message starts with the argument's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aegis.analytics import indicators_kernels as k
from aegis.errors import ValidationError

__all__ = [
    "IndicatorArgumentError",
    "StreamingIndicators",
    "adx",
    "atr",
    "bbands",
    "day_starts",
    "ema",
    "macd",
    "obv",
    "rolling_vwap",
    "rsi",
    "sma",
    "taker_buy_ratio",
    "volume_ratio",
    "vwap",
]


class IndicatorArgumentError(ValidationError, ValueError):
    """An indicator argument is invalid; ``field`` names it."""


# ------------------------------------------------------------------------------------------------------------
# Validation


def _series(name: str, value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise IndicatorArgumentError(name, f"must be a numpy float64 array, got {type(value).__name__}")
    if value.dtype != np.float64:
        raise IndicatorArgumentError(name, f"must be a float64 array, got dtype {value.dtype}")
    if value.ndim != 1:
        raise IndicatorArgumentError(name, f"must be 1-dimensional, got shape {value.shape}")
    return value


def _inputs(**named: Any) -> tuple[list[np.ndarray], int, int]:
    """Validate equal-length float64 series; return them, their length and the first bar where all are numbers."""
    arrays = [_series(name, value) for name, value in named.items()]
    names = list(named)
    n = arrays[0].shape[0]
    for name, array in zip(names[1:], arrays[1:], strict=True):
        if array.shape[0] != n:
            raise IndicatorArgumentError(name, f"has length {array.shape[0]}, expected {n} (length of {names[0]})")
    nan = np.zeros(n, dtype=bool)
    for array in arrays:
        nan |= np.isnan(array)
    begin = int(np.argmin(nan)) if n and not nan.all() else n
    for name, array in zip(names, arrays, strict=True):
        tail = array[begin:]
        if not np.isfinite(tail).all():
            bad = begin + int(np.argmin(np.isfinite(tail)))
            raise IndicatorArgumentError(
                name, f"is {array[bad]} at index {bad}; only leading NaNs are allowed, and no infinities"
            )
    # The kernels view each series as one row of a 2-D buffer, which needs contiguous memory.
    return [np.ascontiguousarray(array) for array in arrays], n, begin


def _period(name: str, value: Any, n: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise IndicatorArgumentError(name, f"must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise IndicatorArgumentError(name, f"must be >= {minimum} (TA-Lib's minimum), got {value}")
    if value > n:
        raise IndicatorArgumentError(name, f"is {value}, longer than the series ({n} bars)")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise IndicatorArgumentError(name, f"must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise IndicatorArgumentError(name, f"must be finite, got {value}")
    return value


def _k(period: int) -> float:
    return 2.0 / (period + 1)  # TA-Lib's PER_TO_K


def _empty(n: int) -> np.ndarray:
    return np.full(n, np.nan)


# ------------------------------------------------------------------------------------------------------------
# Batch: the seven indicators


def sma(close: np.ndarray, period: int) -> np.ndarray:
    """Return the simple moving average of the last ``period`` closes (TA-Lib ``SMA``); first value at period-1."""
    (close,), n, begin = _inputs(close=close)
    period = _period("period", period, n, 1)
    out = _empty(n)
    if n - begin >= period:
        k.sma_batch(close[begin:], period, out[begin:])
    return out


def ema(close: np.ndarray, period: int) -> np.ndarray:
    """Return the exponential moving average (TA-Lib ``EMA``): seeded with the SMA of the first ``period`` closes,
    then ``ema += (close - ema) * 2 / (period + 1)``."""
    (close,), n, begin = _inputs(close=close)
    period = _period("period", period, n, 1)
    out = _empty(n)
    if n - begin >= period:
        k.ema_batch(close[begin:], period, _k(period), out[begin:])
    return out


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Return Wilder's relative strength index, 0..100 (TA-Lib ``RSI``); first value at index ``period``."""
    (close,), n, begin = _inputs(close=close)
    period = _period("period", period, n, 2)
    out = _empty(n)
    if n - begin > period:
        k.rsi_batch(close[begin:], period, out[begin:])
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Return Wilder's average true range (TA-Lib ``ATR``); first value at index ``period``."""
    (high, low, close), n, begin = _inputs(high=high, low=low, close=close)
    period = _period("period", period, n, 1)
    out = _empty(n)
    if n - begin > period:
        k.atr_batch(high[begin:], low[begin:], close[begin:], period, out[begin:])
    return out


def macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(macd, signal, hist)`` as TA-Lib ``MACD`` does; first values at index ``slow + signal - 2``.

    As in TA-Lib, ``fast`` and ``slow`` are swapped when ``fast > slow``.
    """
    (close,), n, begin = _inputs(close=close)
    fast = _period("fast", fast, n, 2)
    slow = _period("slow", slow, n, 2)
    signal = _period("signal", signal, n, 1)
    if fast > slow:
        fast, slow = slow, fast
    line, sig, hist = _empty(n), _empty(n), _empty(n)
    if n - begin >= slow + signal - 1:
        x = close[begin:]
        k.macd_batch(x, fast, slow, signal, _k(fast), _k(slow), _k(signal), line[begin:], sig[begin:], hist[begin:])
    return line, sig, hist


def bbands(close: np.ndarray, period: int, nbdev: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return Bollinger bands ``(upper, middle, lower)``: SMA ± ``nbdev`` population standard deviations
    (TA-Lib ``BBANDS`` with ``nbdevup = nbdevdn = nbdev``, ``matype = 0``)."""
    (close,), n, begin = _inputs(close=close)
    period = _period("period", period, n, 2)
    nbdev = _number("nbdev", nbdev)
    upper, middle, lower = _empty(n), _empty(n), _empty(n)
    if n - begin >= period:
        k.bbands_batch(close[begin:], period, nbdev, upper[begin:], middle[begin:], lower[begin:])
    return upper, middle, lower


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Return Wilder's average directional index, 0..100 (TA-Lib ``ADX``); first value at index 2*period-1."""
    (high, low, close), n, begin = _inputs(high=high, low=low, close=close)
    period = _period("period", period, n, 2)
    out = _empty(n)
    if n - begin >= 2 * period:
        k.adx_batch(high[begin:], low[begin:], close[begin:], period, out[begin:])
    return out


# ------------------------------------------------------------------------------------------------------------
# Batch: volume features


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """Return on-balance volume (TA-Lib ``OBV``): the first bar's volume, then ± each bar's volume as the close
    rises or falls (unchanged on an equal close)."""
    (close, volume), n, begin = _inputs(close=close, volume=volume)
    out = _empty(n)
    if n > begin:
        k.obv_batch(close[begin:], volume[begin:], out[begin:])
    return out


def volume_ratio(volume: np.ndarray, period: int) -> np.ndarray:
    """Return each bar's volume divided by the mean volume of the last ``period`` bars (itself included).

    NaN during the warm-up (first value at ``period - 1``, as ``sma``) and where that mean is zero.
    """
    mean = sma(volume, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = volume / mean
    out[mean == 0.0] = np.nan
    return out


def taker_buy_ratio(volume: np.ndarray, taker_buy_volume: np.ndarray, period: int = 1) -> np.ndarray:
    """Return the share of the last ``period`` bars' volume bought by takers (0..1; 0.5 is balanced).

    That is ``sum(taker_buy_volume) / sum(volume)`` over the window; NaN during the warm-up (first value at
    ``period - 1``) and where the window traded nothing.
    """
    (volume, taker_buy_volume), n, _ = _inputs(volume=volume, taker_buy_volume=taker_buy_volume)
    period = _period("period", period, n, 1)
    with np.errstate(invalid="ignore"):
        if (taker_buy_volume > volume).any() or (taker_buy_volume < 0).any():
            raise IndicatorArgumentError("taker_buy_volume", "must be between 0 and volume on every bar")
    bought = sma(taker_buy_volume, period)
    traded = sma(volume, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = bought / traded
    out[traded <= 0.0] = np.nan
    return out


def vwap(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, reset: np.ndarray | None = None
) -> np.ndarray:
    """Return the anchored volume-weighted average price of the typical price ``(high + low + close) / 3``.

    The sums start at the first bar and restart on every bar where ``reset`` (a bool array) is true, e.g.
    ``reset=day_starts(open_time_ms)`` for the usual daily (UTC) session VWAP. NaN until the session has traded.
    """
    (high, low, close, volume), n, begin = _inputs(high=high, low=low, close=close, volume=volume)
    if reset is None:
        reset = np.zeros(n, dtype=bool)
    elif not isinstance(reset, np.ndarray) or reset.dtype != np.bool_ or reset.shape != (n,):
        raise IndicatorArgumentError("reset", f"must be a bool array of length {n}")
    out = _empty(n)
    if n > begin:
        k.anchored_vwap_batch(high[begin:], low[begin:], close[begin:], volume[begin:], reset[begin:], out[begin:])
    return out


def rolling_vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, period: int) -> np.ndarray:
    """Return the volume-weighted average typical price of the last ``period`` bars.

    NaN during the warm-up (first value at ``period - 1``) and where the window traded nothing.
    """
    (high, low, close, volume), n, _ = _inputs(high=high, low=low, close=close, volume=volume)
    period = _period("period", period, n, 1)
    typical = (high + low + close) / 3.0
    weighted = sma(typical * volume, period)
    traded = sma(volume, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = weighted / traded
    out[traded <= 0.0] = np.nan
    return out


def day_starts(open_time_ms: np.ndarray) -> np.ndarray:
    """Return a bool array, true on the first bar and on every bar that opens a new UTC day (``vwap``'s reset)."""
    if not isinstance(open_time_ms, np.ndarray) or open_time_ms.dtype.kind not in "iu" or open_time_ms.ndim != 1:
        raise IndicatorArgumentError("open_time_ms", "must be a 1-dimensional integer array of epoch milliseconds")
    day = open_time_ms // 86_400_000
    out = np.ones(day.shape[0], dtype=bool)
    out[1:] = day[1:] != day[:-1]
    return out


# ------------------------------------------------------------------------------------------------------------
# Streaming


class StreamingIndicators:
    """The seven indicators for ``n_symbols`` symbols, advanced one closed bar at a time in O(1) per bar.

    All state lives in numpy arrays with one row per symbol, so one compiled call advances every symbol that
    closed a bar::

        ind = StreamingIndicators(300, rsi_period=14)
        ind.feed(high_hist, low_hist, close_hist)      # optional warm-up, shape (n_symbols, n_bars)
        values = ind.update(high, low, close)          # one bar per symbol, shape (n_symbols,)
        values[:, ind.RSI]                             # or ind.rsi; NaN while a symbol is warming up
        ind.update(h, l, c, symbols=np.array([3, 7]))  # only some symbols closed a bar

    ``values`` is one (n_symbols, 11) array updated in place; its columns are named by ``COLUMNS`` and the class
    constants ``SMA, EMA, RSI, ATR, MACD, MACD_SIGNAL, MACD_HIST, BB_UPPER, BB_MIDDLE, BB_LOWER, ADX``. After a
    symbol has been given bars ``0..t``, its row equals the batch functions' values at index ``t`` on those bars.
    A bar with a non-finite high, low or close raises and leaves every symbol as it was.
    """

    SMA, EMA, RSI, ATR = k.OUT_SMA, k.OUT_EMA, k.OUT_RSI, k.OUT_ATR
    MACD, MACD_SIGNAL, MACD_HIST = k.OUT_MACD, k.OUT_MACD_SIGNAL, k.OUT_MACD_HIST
    BB_UPPER, BB_MIDDLE, BB_LOWER = k.OUT_BB_UPPER, k.OUT_BB_MIDDLE, k.OUT_BB_LOWER
    ADX = k.OUT_ADX
    COLUMNS = (
        "sma",
        "ema",
        "rsi",
        "atr",
        "macd",
        "macd_signal",
        "macd_hist",
        "bb_upper",
        "bb_middle",
        "bb_lower",
        "adx",
    )

    def __init__(
        self,
        n_symbols: int,
        *,
        sma_period: int = 20,
        ema_period: int = 20,
        rsi_period: int = 14,
        atr_period: int = 14,
        macd_fast: int = 12,
        macd_slow: int = 26,
        macd_signal: int = 9,
        bb_period: int = 20,
        bb_nbdev: float = 2.0,
        adx_period: int = 14,
    ) -> None:
        big = np.iinfo(np.int32).max
        n_symbols = _period("n_symbols", n_symbols, big, 1)
        sma_period = _period("sma_period", sma_period, big, 1)
        ema_period = _period("ema_period", ema_period, big, 1)
        rsi_period = _period("rsi_period", rsi_period, big, 2)
        atr_period = _period("atr_period", atr_period, big, 1)
        macd_fast = _period("macd_fast", macd_fast, big, 2)
        macd_slow = _period("macd_slow", macd_slow, big, 2)
        macd_signal = _period("macd_signal", macd_signal, big, 1)
        bb_period = _period("bb_period", bb_period, big, 2)
        bb_nbdev = _number("bb_nbdev", bb_nbdev)
        adx_period = _period("adx_period", adx_period, big, 2)
        if macd_fast > macd_slow:
            macd_fast, macd_slow = macd_slow, macd_fast
        self.n_symbols = n_symbols
        self.periods = {
            "sma": sma_period,
            "ema": ema_period,
            "rsi": rsi_period,
            "atr": atr_period,
            "macd_fast": macd_fast,
            "macd_slow": macd_slow,
            "macd_signal": macd_signal,
            "bb": bb_period,
            "adx": adx_period,
        }
        self.bb_nbdev = bb_nbdev
        window = max(sma_period, bb_period + 1)  # BBANDS also reads the close leaving its window
        ip = np.zeros(10, dtype=np.int64)
        ip[k.P_SMA], ip[k.P_EMA], ip[k.P_RSI], ip[k.P_ATR] = sma_period, ema_period, rsi_period, atr_period
        ip[k.P_FAST], ip[k.P_SLOW], ip[k.P_SIGNAL] = macd_fast, macd_slow, macd_signal
        ip[k.P_BB], ip[k.P_ADX], ip[k.P_WINDOW] = bb_period, adx_period, window
        fp = np.zeros(5)
        fp[k.F_EMA_K], fp[k.F_SLOW_K], fp[k.F_FAST_K] = _k(ema_period), _k(macd_slow), _k(macd_fast)
        fp[k.F_SIGNAL_K], fp[k.F_NBDEV] = _k(macd_signal), bb_nbdev
        self._ip, self._fp = ip, fp
        self._state = np.zeros((n_symbols, k.STATE_FIELDS))
        self._ring = np.zeros((n_symbols, window))
        self._rows = np.arange(n_symbols, dtype=np.int64)
        self._positions = np.zeros(n_symbols, dtype=np.int64)  # ring slot of each symbol's next bar
        self.bars = np.zeros(n_symbols, dtype=np.int64)
        """Bars each symbol has been given."""
        self.values = np.full((n_symbols, k.OUTPUTS), np.nan)
        """The latest value of every indicator, one row per symbol, columns ``COLUMNS``."""

    def update(
        self, high: np.ndarray, low: np.ndarray, close: np.ndarray, symbols: np.ndarray | None = None
    ) -> np.ndarray:
        """Advance each symbol by one closed bar and return ``values``.

        Without ``symbols`` the arrays hold one bar for every symbol (length ``n_symbols``); with ``symbols`` (an
        int64 array of distinct row numbers) they hold the bars of those symbols, in that order.
        """
        rows = self._rows if symbols is None else self._symbols(symbols)
        n = rows.shape[0]
        for name, array in (("high", high), ("low", low), ("close", close)):
            if not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.shape != (n,):
                raise IndicatorArgumentError(name, f"must be a float64 array of shape ({n},)")
        return self._advance(rows, high.reshape(n, 1), low.reshape(n, 1), close.reshape(n, 1))

    def update_one(self, row: int, high: float, low: float, close: float) -> None:
        """Advance one symbol (row ``row``) by one closed bar given as floats: :meth:`update` of one row, without
        building arrays (the brain's path: one candle closes at a time)."""
        if not 0 <= row < self.n_symbols:
            raise IndicatorArgumentError("symbols", f"must be row numbers in 0..{self.n_symbols - 1}")
        if not k.stream_update_one(
            self._state, self._ring, self.bars, self._positions, self._ip, self._fp, row, float(high), float(low),
            float(close), self.values,
        ):  # fmt: skip
            raise IndicatorArgumentError(
                "high/low/close", f"bar of symbol {row} is not finite ({high}, {low}, {close}); it was not advanced"
            )

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """Return the arrays :func:`~aegis.analytics.indicators_kernels.stream_update_one` takes, in its order
        (state, ring, bars, positions, int params, float params, values; the row and the bar go between the last two).

        For a caller that advances one row at a time in a hot loop and has checked its inputs (finite floats, a row
        in range): the arrays are updated in place and never replaced, so the tuple stays valid.
        """
        return (self._state, self._ring, self.bars, self._positions, self._ip, self._fp, self.values)

    def feed(
        self, high: np.ndarray, low: np.ndarray, close: np.ndarray, symbols: np.ndarray | None = None
    ) -> np.ndarray:
        """Advance symbols by many bars at once (e.g. their history) and return ``values``.

        The arrays have shape ``(n_symbols, n_bars)`` (or ``(len(symbols), n_bars)``), bar ``t`` of row ``j``
        being given before bar ``t + 1``; the result is the same as ``n_bars`` calls of :meth:`update`.
        """
        rows = self._rows if symbols is None else self._symbols(symbols)
        shape = None
        for name, array in (("high", high), ("low", low), ("close", close)):
            if not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.ndim != 2:
                raise IndicatorArgumentError(name, "must be a 2-dimensional float64 array (symbols, bars)")
            if array.shape[0] != rows.shape[0] or (shape is not None and array.shape != shape):
                raise IndicatorArgumentError(name, f"must have shape ({rows.shape[0]}, n_bars), got {array.shape}")
            shape = array.shape
        return self._advance(rows, high, low, close)

    def _advance(self, rows: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
        # Contiguous 2-D inputs only, so the kernel is compiled (and cached) once.
        high, low, close = (np.ascontiguousarray(a) for a in (high, low, close))
        bad = k.stream_update(
            self._state, self._ring, self.bars, self._positions, self._ip, self._fp, rows, high, low, close,
            self.values,
        )  # fmt: skip
        if bad >= 0:
            row, bar = divmod(bad, close.shape[1])
            raise IndicatorArgumentError(
                "high/low/close",
                f"bar {bar} of symbol {int(rows[row])} is not finite ({high[row, bar]}, "
                f"{low[row, bar]}, {close[row, bar]}); no symbol was advanced",
            )
        return self.values

    def reset(self, symbols: Sequence[int] | np.ndarray | None = None) -> None:
        """Forget the history of ``symbols`` (default: all), as if they had never been given a bar."""
        rows = slice(None) if symbols is None else self._symbols(np.asarray(symbols, dtype=np.int64))
        self._state[rows] = 0.0
        self._ring[rows] = 0.0
        self.bars[rows] = 0
        self._positions[rows] = 0
        self.values[rows] = np.nan

    def column(self, name: str) -> np.ndarray:
        """Return the latest values of one indicator (a name from ``COLUMNS``), one per symbol (a view)."""
        try:
            return self.values[:, self.COLUMNS.index(name)]
        except ValueError:
            raise IndicatorArgumentError("name", f"must be one of {', '.join(self.COLUMNS)}, got {name!r}") from None

    sma = property(lambda self: self.values[:, self.SMA], doc="Latest SMA per symbol.")
    ema = property(lambda self: self.values[:, self.EMA], doc="Latest EMA per symbol.")
    rsi = property(lambda self: self.values[:, self.RSI], doc="Latest RSI per symbol.")
    atr = property(lambda self: self.values[:, self.ATR], doc="Latest ATR per symbol.")
    adx = property(lambda self: self.values[:, self.ADX], doc="Latest ADX per symbol.")

    def _symbols(self, symbols: np.ndarray) -> np.ndarray:
        if not isinstance(symbols, np.ndarray) or symbols.dtype != np.int64 or symbols.ndim != 1:
            raise IndicatorArgumentError("symbols", "must be a 1-dimensional int64 array of row numbers")
        if symbols.size and (symbols.min() < 0 or symbols.max() >= self.n_symbols):
            raise IndicatorArgumentError("symbols", f"must be row numbers in 0..{self.n_symbols - 1}")
        return symbols
