"""The data firewall: every market event is checked before it reaches the ring, and every rejection is counted.

"Corrupt data is worse than no data": a NaN price or a crossed book that reaches the brain can move an indicator,
fire a signal and size an order. So the feed checks each decoded event (:class:`Firewall`) and the brain checks
each batch it reads (:func:`check_records`, the same numeric checks, vectorised) — two independent gates, so a
bug in one does not let bad numbers through.

A rejection is never an exception: the event is dropped, counted under one reason from the fixed set
:data:`REASONS` (``counts[reason]`` and ``counts_by_symbol[(symbol, reason)]``), and a warning is logged at most
once per reason per minute (with how many were suppressed in between), so a flood of bad frames cannot flood the
logs. The per-kind checks, in the order they are applied, are tabled in ``docs/feed.md``.

Which timestamps must not go backwards, per (symbol, stream):

============  ==============================  ==========================================================
stream        time that must not decrease      id that must strictly increase
============  ==============================  ==========================================================
aggTrade      ``T`` trade time                 ``a`` aggregate trade id
trade         ``T`` trade time                 ``t`` trade id
bookTicker    ``T`` transaction time           ``u`` order-book update id
markPrice     ``E`` event time                 (none: a repeated ``E`` is let through)
kline         ``E`` event time and ``t`` bar   (none; state is kept per interval, so ``kline_1m`` and
              start time                       ``kline_5m`` of one symbol are separate streams)
forceOrder    ``o.T`` trade time               (none)
============  ==============================  ==========================================================

Equal times pass (Binance stamps many events in one millisecond). A time decreasing is ``time_went_backwards``;
an id not increasing (a duplicate or replayed event) is ``out_of_sequence``. Only accepted events move the state,
so one bad event cannot poison the checks of the good ones after it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Final, Protocol

import numpy as np

from aegis.core import records as rec
from aegis.feed.decode import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    ForceOrder,
    KlineUpdate,
    MarkPriceUpdate,
    Rejected,
    Trade,
)

__all__ = [
    "DEFAULT_MAX_FUTURE_SKEW_MS",
    "INTERVAL_MS",
    "MIN_EXCHANGE_TIME_MS",
    "REASONS",
    "REASON_CODES",
    "Clock",
    "Firewall",
    "RecordChecker",
    "SystemClock",
    "check_records",
    "parse_funding_rate",
]

# -- reasons ---------------------------------------------------------------------------------------------------

MALFORMED_JSON: Final = "malformed_json"
MALFORMED_FRAME: Final = "malformed_frame"
UNKNOWN_EVENT: Final = "unknown_event"
UNSUPPORTED_EVENT: Final = "unsupported_event"
UNKNOWN_SYMBOL: Final = "unknown_symbol"
BAD_PRICE: Final = "bad_price"
BAD_QUANTITY: Final = "bad_quantity"
BAD_ID: Final = "bad_id"
BAD_TIMESTAMP: Final = "bad_timestamp"
TIME_WENT_BACKWARDS: Final = "time_went_backwards"
OUT_OF_SEQUENCE: Final = "out_of_sequence"
BAD_CANDLE: Final = "bad_candle"
CROSSED_BOOK: Final = "crossed_book"
DUPLICATE_KLINE: Final = "duplicate_kline"
"""A closed 1m kline the feed already published (resent after a reconnect or already fetched over REST)."""

REASONS: Final[tuple[str, ...]] = (
    MALFORMED_JSON,
    MALFORMED_FRAME,
    UNKNOWN_EVENT,
    UNSUPPORTED_EVENT,
    UNKNOWN_SYMBOL,
    BAD_PRICE,
    BAD_QUANTITY,
    BAD_ID,
    BAD_TIMESTAMP,
    TIME_WENT_BACKWARDS,
    OUT_OF_SEQUENCE,
    BAD_CANDLE,
    CROSSED_BOOK,
    DUPLICATE_KLINE,
)
"""Every reason a frame can be rejected for (the order is the code order of :data:`REASON_CODES`)."""

REASON_CODES: Final[dict[str, int]] = {reason: code for code, reason in enumerate(REASONS, start=1)}
"""Reason → small integer code used by :func:`check_records` (0 means accepted)."""

# -- bounds ----------------------------------------------------------------------------------------------------

MIN_EXCHANGE_TIME_MS: Final = 1_483_228_800_000
"""2017-01-01T00:00:00Z: no Binance event is older (USDⓈ-M futures opened in 2019)."""

DEFAULT_MAX_FUTURE_SKEW_MS: Final = 10 * 60 * 1000
"""How far an exchange time may lie ahead of the receive time (clock skew between Binance and us)."""

_MAX_ID: Final = 1 << 63  # ids and counts go into int64 record fields
_INF: Final = math.inf
_OTHER_SYMBOL: Final = "<other>"
_WARN_INTERVAL_NS: Final = 60 * 1_000_000_000
_LOG: Final = logging.getLogger("aegis.feed.firewall")

INTERVAL_MS: Final[dict[str, int]] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 0,  # calendar month: the bar's own length (28..31 days) is used instead
}
"""Binance kline intervals and their length in ms (``1M`` varies, see :meth:`Firewall.kline_interval_ms`)."""

_MONTH_MS_RANGE: Final = (28 * 86_400_000, 31 * 86_400_000)


class Clock(Protocol):
    """The time sources the feed needs; inject a fake one in tests and replays."""

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


def parse_funding_rate(rate: str) -> float:
    """Return a markPrice funding rate as a float: ``""`` (delivery contracts) is 0.0, garbage is NaN."""
    if not rate:
        return 0.0
    try:
        return float(rate)
    except (ValueError, TypeError):
        return math.nan


class _Warner:
    """Log a warning per reason at most once per interval, saying how many were suppressed in between."""

    def __init__(self, clock: Clock, logger: logging.Logger, interval_ns: int, counts: dict[str, int]) -> None:
        self._monotonic_ns = clock.monotonic_ns
        self._log = logger
        self._interval_ns = interval_ns
        self._counts = counts  # the owner's counts by reason: suppressed = counted since the last warning - 1
        self._next_ns: dict[str, int] = {}
        self._count_at_warning: dict[str, int] = {}

    def maybe_warn(self, reason: str, symbol: str, detail: str) -> None:
        """Warn about one rejection (already counted) unless this reason was warned about within the interval."""
        now = self._monotonic_ns()
        if now < self._next_ns.get(reason, now):
            return
        self._next_ns[reason] = now + self._interval_ns
        count = self._counts.get(reason, 0)
        suppressed = max(0, count - self._count_at_warning.get(reason, 0) - 1)
        self._count_at_warning[reason] = count
        self._log.warning(
            "market data rejected: %s%s%s",
            reason,
            f" ({symbol})" if symbol else "",
            f": {detail}" if detail else "",
            extra={"reason": reason, "symbol": symbol, "suppressed_since_last": suppressed},
        )


class Firewall:
    """Check decoded events against the symbol table, numeric sanity, time bounds and per-stream ordering.

    ``symbols`` are the known symbol names (a ``Mapping`` such as the ring's name → id table works too). The
    ``check_*`` methods return ``None`` when the event passes (and then advance the per-stream ordering state) or
    the reason it fails; they never raise for a decoded event and do not count — :meth:`reject` counts.
    ``now_ms`` is the wall-clock receive time in Unix ms: exchange times more than ``max_future_skew_ms`` after it
    are ``bad_timestamp``.
    """

    def __init__(
        self,
        symbols: Iterable[str] | Mapping[str, int],
        *,
        clock: Clock | None = None,
        max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
        logger: logging.Logger | None = None,
        warn_interval_ns: int = _WARN_INTERVAL_NS,
        max_symbol_keys: int = 4096,
    ) -> None:
        names = list(symbols)
        self.symbols: frozenset[str] = frozenset(names)
        self.max_future_skew_ms = max_future_skew_ms
        self.counts: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.counts_by_symbol: dict[tuple[str, str], int] = {}
        self._max_symbol_keys = max_symbol_keys
        warner = _Warner(clock or SystemClock(), logger or _LOG, warn_interval_ns, self.counts)
        self._maybe_warn = warner.maybe_warn
        # Ordering state per stream, pre-filled for every known symbol: a dict miss doubles as the symbol check.
        t0 = MIN_EXCHANGE_TIME_MS
        self._agg: dict[str, list[int]] = {s: [-1, t0] for s in names}  # last agg trade id, last trade time
        self._trade: dict[str, list[int]] = {s: [-1, t0] for s in names}  # last trade id, last trade time
        self._book: dict[str, list[int]] = {s: [-1, t0] for s in names}  # last update id, last transaction time
        self._mark: dict[str, list[int]] = {s: [0] for s in names}  # last event time
        self._kline: dict[str, dict[str, list[int]]] = {s: {} for s in names}  # interval -> [bar start, event time]
        self._liq: dict[str, list[int]] = {s: [0] for s in names}  # last trade time
        self._by_type = {
            AggTrade: self.check_agg_trade,
            Trade: self.check_trade,
            BookTicker: self.check_book_ticker,
            MarkPriceUpdate: self.check_mark_price,
            KlineUpdate: self.check_kline,
            ForceOrder: self.check_force_order,
        }

    def ordering_state(self, stream: str) -> dict[str, list[int]]:
        """Return the live ordering state of ``"aggTrade"``, ``"trade"`` or ``"bookTicker"``: symbol → [last id,
        last time], one entry per known symbol (a miss is an unknown symbol).

        For :class:`~aegis.feed.pipeline.FramePipeline`'s fused path, which tries the same shortcut condition as
        ``check_*`` over this same state and moves it the same way; do not replace the dict or its lists.
        """
        return {"aggTrade": self._agg, "trade": self._trade, "bookTicker": self._book}[stream]

    # -- counting ----------------------------------------------------------------------------------------------

    def reject(self, reason: str, symbol: str = "", detail: str = "") -> None:
        """Count one rejected event under ``reason`` and ``symbol``; warn at most once per reason per minute."""
        key = (symbol, reason)
        by_symbol = self.counts_by_symbol
        n = by_symbol.get(key) if type(symbol) is str else None
        if n is None:
            self._count_new(reason, symbol, detail)
            return
        by_symbol[key] = n + 1
        self.counts[reason] += 1
        self._maybe_warn(reason, symbol, detail)

    def reject_many(self, reason: str, symbol: str, n: int) -> None:
        """Count ``n`` rejected events of one reason and symbol at once (the batch path); warn as :meth:`reject`
        would for the first of them."""
        if n <= 0:
            return
        key = (symbol, reason)
        by_symbol = self.counts_by_symbol
        count = by_symbol.get(key) if type(symbol) is str else None
        if count is None:
            self._count_new(reason, symbol, "", n)
            return
        by_symbol[key] = count + n
        self.counts[reason] += n
        self._maybe_warn(reason, symbol, "")

    def _count_new(self, reason: str, symbol: object, detail: str, n: int = 1) -> None:
        """``reject`` for a (symbol, reason) not seen yet: validate both before they become keys."""
        if reason not in self.counts:  # a caller's typo must not grow the reason set
            detail = f"unlisted reason {reason!r}; {detail}"
            reason = MALFORMED_FRAME
        if type(symbol) is not str:
            symbol = ""
        elif len(symbol) > 24:
            symbol = symbol[:24]
        key = (symbol, reason)
        by_symbol = self.counts_by_symbol
        if key not in by_symbol and len(by_symbol) >= self._max_symbol_keys:
            key = (_OTHER_SYMBOL, reason)  # junk symbols must not grow memory without bound
        by_symbol[key] = by_symbol.get(key, 0) + n
        self.counts[reason] += n
        self._maybe_warn(reason, symbol, detail)

    @property
    def rejected(self) -> int:
        """How many events were rejected in total."""
        return sum(self.counts.values())

    # -- checks ------------------------------------------------------------------------------------------------

    def check(self, event: object, now_ms: int) -> str | None:
        """Return why ``event`` (anything :func:`~aegis.feed.decode.decode_frame` returns) fails, or None."""
        check = self._by_type.get(type(event))
        if check is not None:
            return check(event, now_ms)
        if type(event) is Rejected:
            return event.reason
        if type(event) is DepthUpdate:
            return UNSUPPORTED_EVENT
        return MALFORMED_FRAME

    # The three high-rate kinds (bookTicker, trade, aggTrade) first try one combined condition that is the
    # conjunction of all their checks, so an accepted event costs one branch; only a failing event walks the
    # checks one by one (the ``_*_reason`` methods) to name the reason. The ordering state starts at id -1 and
    # time MIN_EXCHANGE_TIME_MS, so "id > last id" implies id >= 0 and "time >= last time" implies time >= 2017.

    def check_agg_trade(self, ev: AggTrade, now_ms: int) -> str | None:
        """Check an aggTrade: symbol, price, quantity, ids, times, then ordering."""
        state = self._agg.get(ev.s)
        if state is not None:
            agg_id = ev.a
            trade_time = ev.T
            limit = now_ms + self.max_future_skew_ms
            if (
                0.0 < ev.p < _INF
                and 0.0 <= ev.q < _INF
                and state[0] < agg_id < _MAX_ID
                and 0 <= ev.f <= ev.l < _MAX_ID
                and MIN_EXCHANGE_TIME_MS <= ev.E <= limit
                and state[1] <= trade_time <= limit
            ):
                state[0] = agg_id
                state[1] = trade_time
                return None
        return self._agg_trade_reason(ev, now_ms, state)

    def _agg_trade_reason(self, ev: AggTrade, now_ms: int, state: list[int] | None) -> str | None:
        if state is None:
            return UNKNOWN_SYMBOL
        if not 0.0 < ev.p < _INF:
            return BAD_PRICE
        if not 0.0 <= ev.q < _INF:
            return BAD_QUANTITY
        if not (0 <= ev.a < _MAX_ID and 0 <= ev.f <= ev.l < _MAX_ID):
            return BAD_ID
        return self._order_reason(ev.E, ev.T, ev.a, now_ms, state)

    def check_trade(self, ev: Trade, now_ms: int) -> str | None:
        """Check a trade (``@trade`` stream); trades other than ``X == "MARKET"`` are ``unsupported_event``."""
        state = self._trade.get(ev.s)
        if state is not None:
            trade_id = ev.t
            trade_time = ev.T
            limit = now_ms + self.max_future_skew_ms
            if (
                ev.X == "MARKET"
                and 0.0 < ev.p < _INF
                and 0.0 <= ev.q < _INF
                and state[0] < trade_id < _MAX_ID
                and MIN_EXCHANGE_TIME_MS <= ev.E <= limit
                and state[1] <= trade_time <= limit
            ):
                state[0] = trade_id
                state[1] = trade_time
                return None
        return self._trade_reason(ev, now_ms, state)

    def _trade_reason(self, ev: Trade, now_ms: int, state: list[int] | None) -> str | None:
        if state is None:
            return UNKNOWN_SYMBOL
        if ev.X != "MARKET":  # insurance-fund / ADL fills at the bankruptcy price are not market trades
            return UNSUPPORTED_EVENT
        if not 0.0 < ev.p < _INF:
            return BAD_PRICE
        if not 0.0 <= ev.q < _INF:
            return BAD_QUANTITY
        if not 0 <= ev.t < _MAX_ID:
            return BAD_ID
        return self._order_reason(ev.E, ev.T, ev.t, now_ms, state)

    def check_book_ticker(self, ev: BookTicker, now_ms: int) -> str | None:
        """Check a bookTicker: symbol, prices, quantities, bid <= ask, update id, times, then ordering."""
        state = self._book.get(ev.s)
        if state is not None:
            update_id = ev.u
            tx_time = ev.T
            limit = now_ms + self.max_future_skew_ms
            if (
                0.0 < ev.b <= ev.a < _INF
                and 0.0 <= ev.B < _INF
                and 0.0 <= ev.A < _INF
                and state[0] < update_id < _MAX_ID
                and MIN_EXCHANGE_TIME_MS <= ev.E <= limit
                and state[1] <= tx_time <= limit
            ):
                state[0] = update_id
                state[1] = tx_time
                return None
        return self._book_ticker_reason(ev, now_ms, state)

    def _book_ticker_reason(self, ev: BookTicker, now_ms: int, state: list[int] | None) -> str | None:
        if state is None:
            return UNKNOWN_SYMBOL
        if not (0.0 < ev.b < _INF and 0.0 < ev.a < _INF):
            return BAD_PRICE
        if not (0.0 <= ev.B < _INF and 0.0 <= ev.A < _INF):
            return BAD_QUANTITY
        if ev.b > ev.a:
            return CROSSED_BOOK
        if not 0 <= ev.u < _MAX_ID:
            return BAD_ID
        return self._order_reason(ev.E, ev.T, ev.u, now_ms, state)

    def _order_reason(
        self, event_time: int, stream_time: int, seq_id: int, now_ms: int, state: list[int]
    ) -> str | None:
        """Time bounds, then ordering: the tail of the slow path of the three high-rate kinds."""
        limit = now_ms + self.max_future_skew_ms
        if not (MIN_EXCHANGE_TIME_MS <= event_time <= limit and MIN_EXCHANGE_TIME_MS <= stream_time <= limit):
            return BAD_TIMESTAMP
        if stream_time < state[1]:
            return TIME_WENT_BACKWARDS
        if seq_id <= state[0]:
            return OUT_OF_SEQUENCE
        state[0] = seq_id  # every check passed (the fast condition is only a shortcut): accept
        state[1] = stream_time
        return None

    def check_mark_price(self, ev: MarkPriceUpdate, now_ms: int) -> str | None:
        """Check a markPrice update: mark and index price > 0, settle price >= 0, funding rate finite, times."""
        state = self._mark.get(ev.s)
        if state is None:
            return UNKNOWN_SYMBOL
        if not (0.0 < ev.p < _INF and 0.0 < ev.i < _INF and 0.0 <= ev.P < _INF):
            return BAD_PRICE
        if not -_INF < parse_funding_rate(ev.r) < _INF:
            return BAD_PRICE
        event_time = ev.E
        if not (MIN_EXCHANGE_TIME_MS <= event_time <= now_ms + self.max_future_skew_ms and 0 <= ev.T < _MAX_ID):
            return BAD_TIMESTAMP
        if event_time < state[0]:
            return TIME_WENT_BACKWARDS
        state[0] = event_time
        return None

    def check_kline(self, ev: KlineUpdate, now_ms: int) -> str | None:
        """Check a kline: prices, volumes, trade count, bar window, candle logic, then ordering per interval."""
        by_interval = self._kline.get(ev.s)
        if by_interval is None:
            return UNKNOWN_SYMBOL
        k = ev.k
        o, h, low, c = k.o, k.h, k.l, k.c
        if not (0.0 < o < _INF and 0.0 < h < _INF and 0.0 < low < _INF and 0.0 < c < _INF):
            return BAD_PRICE
        if not (0.0 <= k.v < _INF and 0.0 <= k.q < _INF and 0.0 <= k.V < _INF):
            return BAD_QUANTITY
        if not 0 <= k.n < _MAX_ID:
            return BAD_ID
        interval_ms = self.kline_interval_ms(ev)
        if interval_ms is None:
            return MALFORMED_FRAME
        event_time = ev.E
        limit = now_ms + self.max_future_skew_ms
        start = k.t
        if not (
            MIN_EXCHANGE_TIME_MS <= event_time <= limit
            and MIN_EXCHANGE_TIME_MS <= start <= limit
            and interval_ms > 0
            and start + interval_ms - 1 == k.T
        ):
            return BAD_TIMESTAMP
        if not (h >= o and h >= c and low <= o and low <= c and k.v >= k.V):  # high >= low follows
            return BAD_CANDLE
        state = by_interval.get(k.i)
        if state is None:
            state = by_interval[k.i] = [0, 0]  # k.i is one of the INTERVAL_MS keys: bounded
        if start < state[0] or event_time < state[1]:
            return TIME_WENT_BACKWARDS
        state[0] = start
        state[1] = event_time
        return None

    @staticmethod
    def kline_interval_ms(ev: KlineUpdate) -> int | None:
        """Return the bar length in ms (``1M``: the bar's own length, -1 unless 28..31 days); None if unknown."""
        interval_ms = INTERVAL_MS.get(ev.k.i)
        if interval_ms == 0:
            length = ev.k.T - ev.k.t + 1
            return length if _MONTH_MS_RANGE[0] <= length <= _MONTH_MS_RANGE[1] else -1
        return interval_ms

    def check_force_order(self, ev: ForceOrder, now_ms: int) -> str | None:
        """Check a liquidation: symbol, price > 0, average price >= 0, quantities >= 0, times, ordering."""
        o = ev.o
        state = self._liq.get(o.s)
        if state is None:
            return UNKNOWN_SYMBOL
        if not (0.0 < o.p < _INF and 0.0 <= o.ap < _INF):
            return BAD_PRICE
        if not (0.0 <= o.q < _INF and 0.0 <= o.l < _INF and 0.0 <= o.z < _INF):
            return BAD_QUANTITY
        limit = now_ms + self.max_future_skew_ms
        trade_time = o.T
        if not (MIN_EXCHANGE_TIME_MS <= ev.E <= limit and MIN_EXCHANGE_TIME_MS <= trade_time <= limit):
            return BAD_TIMESTAMP
        if trade_time < state[0]:
            return TIME_WENT_BACKWARDS
        state[0] = trade_time
        return None


# --------------------------------------------------------------------------------------------------------------
# The consumer-side firewall: the same numeric checks over a batch of MARKET_RECORDs.


class RecordChecker:
    """Check ``MARKET_RECORD`` batches read from the ring and count rejections by reason (and by symbol id).

    ``symbol_count``: ids at or above it are ``unknown_symbol`` (None: not checked). ``max_future_skew_ms``: with
    ``now_ms`` passed to :meth:`check`, event times further ahead are ``bad_timestamp``.
    """

    def __init__(
        self,
        symbol_count: int | None = None,
        *,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
        warn_interval_ns: int = _WARN_INTERVAL_NS,
    ) -> None:
        self.symbol_count = symbol_count
        self.max_future_skew_ms = max_future_skew_ms
        self.counts: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.counts_by_symbol: dict[tuple[int, str], int] = {}
        warner = _Warner(clock or SystemClock(), logger or _LOG, warn_interval_ns, self.counts)
        self._maybe_warn = warner.maybe_warn

    def check(self, batch: np.ndarray, now_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ok_mask, reason_codes)`` for ``batch`` and count its rejections (codes: :data:`REASON_CODES`)."""
        max_time_ms = None if now_ms is None else now_ms + self.max_future_skew_ms
        ok, codes = check_records(batch, symbol_count=self.symbol_count, max_time_ms=max_time_ms)
        if not ok.all():
            bad = ~ok
            for code, n in zip(*np.unique(codes[bad], return_counts=True), strict=True):
                self.counts[REASONS[code - 1]] += int(n)
            for symbol_id, code in zip(batch["symbol_id"][bad].tolist(), codes[bad].tolist(), strict=True):
                key = (symbol_id, REASONS[code - 1])
                self.counts_by_symbol[key] = self.counts_by_symbol.get(key, 0) + 1
            first = int(np.argmax(bad))
            self._maybe_warn(REASONS[codes[first] - 1], f"id {int(batch['symbol_id'][first])}", "in a ring batch")
        return ok, codes


def check_records(
    batch: np.ndarray, *, symbol_count: int | None = None, max_time_ms: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ok_mask, reason_codes)`` for a ``MARKET_RECORD`` batch: the firewall's numeric checks, vectorised.

    Checked, first failure wins (codes from :data:`REASON_CODES`, 0 = ok): known kind (``unknown_event``),
    ``symbol_id < symbol_count`` (``unknown_symbol``), prices finite and > 0 (index/avg >= 0 where the feed allows
    it, funding rate finite: ``bad_price``), quantities finite and >= 0 (``bad_quantity``), ids >= 0
    (``bad_id``), event time in [2017, ``max_time_ms``] (``bad_timestamp``), candle logic (``bad_candle``), and
    bid <= ask (``crossed_book``). Pure: counts nothing (see :class:`RecordChecker`).
    """
    if batch.dtype != rec.MARKET_RECORD:
        raise TypeError(f"expected a MARKET_RECORD array, got {batch.dtype}")
    n = batch.shape[0]
    codes = np.zeros(n, dtype=np.uint8)
    if n == 0:
        return np.ones(0, dtype=bool), codes
    kind = batch["kind"]
    f = [batch[f"f{i}"] for i in range(7)]
    ids = [batch[f"i{i}"] for i in range(5)]
    trade = kind == rec.TRADE
    book = kind == rec.BOOK_TICKER
    mark = kind == rec.MARK_PRICE
    kline = kind == rec.KLINE
    liq = kind == rec.LIQUIDATION
    known = trade | book | mark | kline | liq

    def positive(x: np.ndarray) -> np.ndarray:
        return (x > 0.0) & (x < _INF)  # False for NaN

    def non_negative(x: np.ndarray) -> np.ndarray:
        return (x >= 0.0) & (x < _INF)

    with np.errstate(invalid="ignore"):
        price_ok = positive(f[0])  # f0 is every kind's price
        price_ok &= ~book | positive(f[2])
        price_ok &= ~mark | (positive(f[2]) & non_negative(f[3]) & np.isfinite(f[4]))
        price_ok &= ~kline | (positive(f[2]) & positive(f[3]) & positive(f[4]))
        price_ok &= ~liq | non_negative(f[2])
        qty_ok = non_negative(f[1])
        qty_ok &= ~book | non_negative(f[3])
        qty_ok &= ~kline | (non_negative(f[5]) & non_negative(f[6]))
        qty_ok &= ~liq | (non_negative(f[3]) & non_negative(f[4]))
        id_ok = ~trade | ((ids[0] >= 0) & (ids[1] >= 0) & (ids[1] <= ids[2]))
        id_ok &= ~book | (ids[0] >= 0)
        id_ok &= ~kline | (ids[2] >= 0)
        event_time = batch["event_time_ms"]
        time_ok = event_time >= MIN_EXCHANGE_TIME_MS
        if max_time_ms is not None:
            time_ok &= event_time <= max_time_ms
        time_ok &= ~kline | ((ids[3] > 0) & (ids[1] == ids[0] + ids[3] - 1))
        o, h, low, c = f[2], f[3], f[4], f[0]
        candle_ok = ~kline | ((h >= o) & (h >= c) & (low <= o) & (low <= c) & (f[6] <= f[1]))
        book_ok = ~book | (f[0] <= f[2])

    checks: list[tuple[str, np.ndarray]] = [(UNKNOWN_EVENT, known)]
    if symbol_count is not None:
        checks.append((UNKNOWN_SYMBOL, batch["symbol_id"] < symbol_count))
    checks += [
        (BAD_PRICE, price_ok),
        (BAD_QUANTITY, qty_ok),
        (BAD_ID, id_ok),
        (BAD_TIMESTAMP, time_ok),
        (BAD_CANDLE, candle_ok),
        (CROSSED_BOOK, book_ok),
    ]
    for reason, ok in reversed(checks):  # the first failing check (in the list order) is the one that sticks
        codes[~ok] = REASON_CODES[reason]
    return codes == 0, codes
