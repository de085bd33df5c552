"""Multi-timeframe candles per symbol, kept in numpy arrays and updated by numba kernels.

The rules (``docs/brain.md`` explains them with examples):

* **Alignment.** A candle of width ``w`` opens at ``floor(t / w) * w`` (Unix ms, UTC), like Binance's klines.
* **1m from trades.** Each trade (``TRADE`` record: price ``f0``, quantity ``f1``, trade time ``i3``) updates the
  1m candle of its trade time. Taker-buy volume counts trades whose buyer was not the maker; the trade count adds
  ``last_trade_id - first_trade_id + 1`` (an aggTrade stands for that many trades).
* **Closing.** A candle closes at the first of: a trade or kline with a later open time, or the exchange's
  closed kline for that candle. Both are record times, so a replay closes exactly the same candles at the same
  points. (A wall-clock timeout exists only for symbols that go quiet on the live path: :meth:`close_due`.)
* **Reconciliation.** The exchange's closed kline (``KLINE`` with ``FLAG_KLINE_CLOSED``, from the stream or
  backfilled over REST by the feed) always wins: it replaces the trade-built candle, closed or not, and each field
  that differed is counted. A closed kline without trades (a symbol whose trades we did not get) is taken as is.
* **Roll-ups.** 5m is rolled up from closed 1m candles, 15m from 5m, 1h from 15m, 1d from 1h. A bucket closes
  when its last part closes or when a part of a later bucket closes; when a part changes after its bucket closed
  (a kline correction), the bucket is recomputed and re-emitted as a correction. An exchange kline of a wider
  timeframe (if the feed subscribes one) wins over the roll-up the same way.
* **Partial candles.** The first 1m candle of a symbol after the brain (re)attached or lost records may miss
  trades, and so may a rolled-up bucket with a missing part; such candles are flagged ``partial``. They are kept
  and shown, but a partial candle never replaces a stored complete one (in memory or in PostgreSQL).

Per symbol and timeframe the book keeps the last ``history`` candles in a direct-mapped array (slot
``(open_time // width) % history``), which is also what GetMarketState and the recent part of ListCandles read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from aegis.brain import timeframes as tfs
from aegis.brain.events import Candle, CandleClosed, TickUpdate

SOURCE_NAMES = {1: "stream", 2: "rest", 3: "trades", 4: "replay"}
SOURCE_CODES = {name: code for code, name in SOURCE_NAMES.items()}

# Keep in step with aegis.brain.kernels (which is imported lazily: numba costs ~0.3 s to import, and the service
# binds its port before anything slow happens).
_NV, _NM, _NC, _ND, _NO = 7, 4, 17, 8, 8
_NTF_TICK, _NTI = 11, 8
_EMPTY, _FORMING, _CLOSED = 0, 1, 2
_M_STATE, _M_SOURCE, _M_PARTIAL, _M_OWNER = 0, 1, 2, 3
_C_CONFLATED = 14
_T_LAST, _T_HI, _T_LO, _T_QTY, _T_BID, _T_BID_QTY, _T_ASK, _T_ASK_QTY, _T_MARK, _T_INDEX, _T_FUNDING = range(11)
_TI_TOUCHED, _TI_TRADES, _TI_EVENT_MS, _TI_RECV_NS, _TI_NEXT_FUNDING = range(5)
_TI_MARK_MS = 7
_TOUCH_TRADE = 1


_KERNELS: Any = None


def _kernels() -> Any:
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    from aegis.brain import kernels as k

    assert (k.NV, k.NM, k.NC, k.ND, k.NO, k.NTF_TICK, k.NTI) == (_NV, _NM, _NC, _ND, _NO, _NTF_TICK, _NTI)
    assert (k.C_CONFLATED, k.T_FUNDING, k.TI_NEXT_FUNDING, k.TI_MARK_MS, k.TOUCH_TRADE) == (
        _C_CONFLATED, _T_FUNDING, _TI_NEXT_FUNDING, _TI_MARK_MS, _TOUCH_TRADE
    )  # fmt: skip
    _KERNELS = k
    return k


def warm_up() -> None:
    """Compile (or load from numba's cache) the candle kernels on a tiny book, so the first batch is not slow."""
    from aegis.core import records as rec

    book = CandleBook(history=8, symbol_capacity=1)
    book.symbol_index("WARMUP")
    batch = np.zeros(3, dtype=rec.MARKET_RECORD)
    batch[0] = np.frombuffer(rec.pack_trade(0, 60_000, 0, 1.0, 1.0, 1, 1, 1, 60_000, False), rec.MARKET_RECORD)[0]
    batch[1] = np.frombuffer(
        rec.pack_kline(0, 120_000, 0, 60_000, 119_999, 60_000, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1, 0.0, True),
        rec.MARKET_RECORD,
    )[0]
    batch[2] = np.frombuffer(rec.pack_trade(0, 130_000, 0, 1.0, 1.0, 2, 2, 2, 130_000, False), rec.MARKET_RECORD)[0]
    book.process(batch, np.zeros(3, dtype=np.int64))
    book.take_ticks()
    raw = batch.view(np.uint8).reshape(3, batch.dtype.itemsize)
    words = batch.view(np.float64).reshape(3, batch.dtype.itemsize // 8)
    k = _kernels()
    k.map_symbols(raw, np.zeros(1, dtype=np.int64), np.zeros(3, dtype=np.int64))
    k.map_plausible(raw, words, words.view(np.int64), np.zeros(1, dtype=np.int64), np.zeros(3, dtype=np.int64), 1, 0, 1)
    book.close_due(10**12, 0)
    book.rebuild("WARMUP")


class CandleBook:
    """Per-symbol candle state for every tracked timeframe, plus the newest prices per symbol.

    ``rest_flag``: the record flag bit the feed sets on klines it backfilled over REST (0 = none: such klines are
    recorded with source 'stream').
    """

    def __init__(
        self,
        *,
        history: int = 1024,
        symbol_capacity: int = 64,
        timeframes: Sequence[tfs.TimeframeSpec] = tfs.TIMEFRAMES,
        rest_flag: int = 0,
    ) -> None:
        if history < 2:
            raise ValueError("history must hold at least 2 candles")
        self.history = history
        self.timeframes = tuple(timeframes)
        self.names = tuple(tf.name for tf in self.timeframes)
        self.widths = np.array([tf.width_ms for tf in self.timeframes], dtype=np.int64)
        self._width_list: list[int] = self.widths.tolist()
        self.rest_flag = rest_flag
        self.symbols: list[str] = []
        self._index: dict[str, int] = {}
        ntf = len(self.timeframes)
        self.counters = np.zeros(_NC, dtype=np.int64)
        self.tf_counts = np.zeros((2, ntf), dtype=np.int64)  # [closed, corrected] per timeframe
        self.diffs = np.zeros((ntf, _ND), dtype=np.int64)
        self._out_i = np.zeros((4096, _NO), dtype=np.int64)
        self._out_f = np.zeros((4096, _NV), dtype=np.float64)
        self._tick_s = np.zeros(0, dtype=np.int64)  # take_ticks' output: symbol, float and int rows
        self._tick_of = np.zeros((0, _NTF_TICK), dtype=np.float64)
        self._tick_oi = np.zeros((0, _NTI), dtype=np.int64)
        self._capacity = 0
        self._allocate(max(1, symbol_capacity))

    # -- symbols ---------------------------------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        ntf, h, old = len(self.timeframes), self.history, self._capacity
        t = np.full((ntf, capacity, h), -1, dtype=np.int64)
        v = np.zeros((ntf, capacity, h, _NV), dtype=np.float64)
        n = np.zeros((ntf, capacity, h), dtype=np.int64)
        m = np.zeros((ntf, capacity, h, _NM), dtype=np.int8)
        cur = np.full((ntf, capacity), -1, dtype=np.int64)
        fresh = np.ones(capacity, dtype=np.uint8)
        slot0 = np.zeros(capacity, dtype=np.int64)  # hint: slot of each symbol's newest 1m candle (see the kernel)
        tick_f = np.full((capacity, _NTF_TICK), math.nan, dtype=np.float64)
        tick_i = np.zeros((capacity, _NTI), dtype=np.int64)
        if old:
            t[:, :old], v[:, :old], n[:, :old], m[:, :old] = self.t, self.v, self.n, self.m
            cur[:, :old], fresh[:old], tick_f[:old], tick_i[:old] = self.cur, self.fresh, self.tick_f, self.tick_i
            slot0[:old] = self.slot0
        self.t, self.v, self.n, self.m, self.cur, self.fresh, self.slot0 = t, v, n, m, cur, fresh, slot0
        self.tick_f, self.tick_i = tick_f, tick_i
        self._capacity = capacity

    def symbol_index(self, name: str) -> int:
        """Return the book's index of ``name``, adding the symbol if it is new."""
        index = self._index.get(name)
        if index is None:
            index = len(self.symbols)
            if index >= self._capacity:
                self._allocate(self._capacity * 2)
            self.symbols.append(name)
            self._index[name] = index
        return index

    def has_symbol(self, name: str) -> bool:
        return name in self._index

    def mark_gap(self) -> None:
        """Records may have been lost (attach, overrun, writer restart): flag the candles they could belong to."""
        self.fresh[:] = 1
        h = self.history
        w = self.widths[0]
        for s in range(len(self.symbols)):
            current = self.cur[0, s]
            if current >= 0:
                slot = (current // w) % h
                if self.t[0, s, slot] == current and self.m[0, s, slot, _M_STATE] == _FORMING:
                    self.m[0, s, slot, _M_PARTIAL] = 1

    # -- the hot path ----------------------------------------------------------------------------------------

    def process(
        self,
        batch: np.ndarray,
        symbol_index: np.ndarray,
        views: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> list[CandleClosed]:
        """Apply a batch of ``MARKET_RECORD`` s (``symbol_index``: the book's index of each record's symbol).

        Return the candles the batch closed or corrected, in the order it did so. Each event's ``recv_time_ns`` is
        the feed's receive time of the record whose arrival closed it (0 for a replayed record: the recording's
        receive time is not a latency), the start of the tick-to-signal latency. ``views``: the batch already seen
        as bytes and as float64 / int64 words (the consumer keeps them for its buffer), else they are made here.
        """
        k = _kernels()
        count = batch.shape[0]
        if count == 0:
            return []
        if views is None:
            raw = batch.view(np.uint8).reshape(count, batch.dtype.itemsize)
            fw = batch.view(np.float64).reshape(count, batch.dtype.itemsize // 8)
            iw = batch.view(np.int64).reshape(count, batch.dtype.itemsize // 8)
        else:
            raw, fw, iw = views
        sym = symbol_index
        if sym.dtype != np.int64 or not sym.flags.c_contiguous:
            sym = np.ascontiguousarray(symbol_index, dtype=np.int64)
        out: list[CandleClosed] = []
        start = 0
        while start < count:
            start, rows = k.process_records(
                raw, fw, iw, sym, start, self.rest_flag, self.fresh, self.widths, self.t, self.v, self.n, self.m,
                self.cur, self.counters, self.tf_counts, self.diffs, self.tick_f, self.tick_i, self._out_i,
                self._out_f, self.slot0,
            )  # fmt: skip
            out += self._closed(rows)
        return out

    def close_due(self, now_ms: int, grace_ms: int) -> list[CandleClosed]:
        """Close forming candles that ended more than ``grace_ms`` before ``now_ms`` (quiet symbols, live only)."""
        k = _kernels()
        out: list[CandleClosed] = []
        while True:
            rows = k.close_due(
                now_ms, grace_ms, self.widths, self.t, self.v, self.n, self.m, self.cur, self.counters,
                self.tf_counts, self._out_i, self._out_f,
            )  # fmt: skip
            out += self._closed(rows)
            if rows + k.MAX_EMITS_PER_RECORD <= self._out_i.shape[0]:
                return out

    def _closed(self, rows: int) -> list[CandleClosed]:
        widths, names, symbols, sources = self._width_list, self.names, self.symbols, SOURCE_NAMES
        # two conversions per call, not two per candle; the events are built positionally, in field order
        # (Candle: symbol, timeframe, open_time_ms, close_time_ms, open, high, low, close, volume, quote_volume,
        # trade_count, taker_buy_volume, source, closed, partial; CandleClosed: candle, corrected, recv_time_ns)
        return [
            CandleClosed(
                Candle(
                    symbols[s],
                    names[ti],
                    open_ms,
                    open_ms + widths[ti] - 1,
                    o,
                    h,
                    lo,
                    c,
                    vol,
                    quote,
                    count,
                    taker,
                    sources[source],
                    True,
                    partial != 0,
                ),
                kind != 1,
                recv_ns,
            )
            for (ti, s, open_ms, count, source, partial, kind, recv_ns), (o, h, lo, c, vol, quote, taker) in zip(
                self._out_i[:rows].tolist(), self._out_f[:rows].tolist(), strict=True
            )
        ]

    def take_ticks(self) -> list[TickUpdate]:
        """Return one tick update per symbol touched since the last call (in-batch conflation happened here)."""
        k = _kernels()
        nsym = len(self.symbols)
        if self._tick_s.shape[0] < nsym:
            self._tick_s = np.zeros(self._capacity, dtype=np.int64)
            self._tick_of = np.zeros((self._capacity, _NTF_TICK), dtype=np.float64)
            self._tick_oi = np.zeros((self._capacity, _NTI), dtype=np.int64)
        # one kernel call collects the touched symbols' rows and clears their touched bits (a symbol without a trade
        # since the last take gets no trade range, volume or count); the loop below only builds the events
        rows = k.take_ticks(self.tick_f, self.tick_i, nsym, self._tick_s, self._tick_of, self._tick_oi)
        if rows == 0:
            return []
        symbols = self.symbols
        # positionally, in TickUpdate's field order: symbol, event_time_ms, recv_time_ns, last_price, trade_high,
        # trade_low, trade_volume, trade_count, bid_price, bid_qty, ask_price, ask_qty, mark_price, index_price,
        # funding_rate, next_funding_time_ms, mark_time_ms
        return [
            TickUpdate(
                symbols[s],
                i[_TI_EVENT_MS],
                i[_TI_RECV_NS],
                f[_T_LAST],
                f[_T_HI],
                f[_T_LO],
                f[_T_QTY],
                i[_TI_TRADES],
                f[_T_BID],
                f[_T_BID_QTY],
                f[_T_ASK],
                f[_T_ASK_QTY],
                f[_T_MARK],
                f[_T_INDEX],
                f[_T_FUNDING],
                i[_TI_NEXT_FUNDING],
                i[_TI_MARK_MS],
            )
            for s, f, i in zip(
                self._tick_s[:rows].tolist(), self._tick_of[:rows].tolist(), self._tick_oi[:rows].tolist(), strict=True
            )
        ]

    # -- history ---------------------------------------------------------------------------------------------

    def load(self, candles: Iterable[Candle]) -> int:
        """Put stored candles (PostgreSQL, REST) into memory; return how many were taken.

        A candle is taken when its slot is empty or holds an older candle, or holds a partial one of the same
        time; newer data already in memory is never overwritten.
        """
        taken = 0
        h = self.history
        for candle in candles:
            ti = tfs.INDEX_BY_NAME.get(candle.timeframe)
            if ti is None or ti >= len(self.timeframes):
                continue
            s = self.symbol_index(candle.symbol)
            width = int(self.widths[ti])
            t0 = candle.open_time_ms
            if t0 % width:
                continue
            slot = (t0 // width) % h
            stored = int(self.t[ti, s, slot])
            if stored > t0 or (stored == t0 and self.m[ti, s, slot, _M_PARTIAL] == 0 and candle.partial):
                continue
            if stored == t0 and self.m[ti, s, slot, _M_STATE] == _FORMING:
                continue  # being built live right now
            self.t[ti, s, slot] = t0
            self.v[ti, s, slot] = (
                candle.open,
                candle.high,
                candle.low,
                candle.close,
                candle.volume,
                candle.quote_volume,
                candle.taker_buy_volume,
            )
            self.n[ti, s, slot] = candle.trade_count
            self.m[ti, s, slot] = (
                _CLOSED,
                SOURCE_CODES[candle.source],
                int(candle.partial),
                1 if candle.source in ("stream", "rest") else 0,
            )
            if t0 > self.cur[ti, s]:
                self.cur[ti, s] = t0
            taken += 1
        return taken

    def rebuild(self, symbol: str) -> list[CandleClosed]:
        """Roll up what loaded history completes (wider buckets missing from storage); return what closed."""
        if symbol not in self._index:
            return []
        k = _kernels()
        rows = k.rebuild_derived(
            self._index[symbol], self.widths, self.t, self.v, self.n, self.m, self.cur, self.tf_counts,
            self._out_i, self._out_f,
        )  # fmt: skip
        return self._closed(rows)

    def _row(self, ti: int, s: int, slot: int, closed: bool) -> Candle:
        o, h, lo, c, vol, quote, taker = self.v[ti, s, slot].tolist()
        open_ms = int(self.t[ti, s, slot])
        return Candle(
            symbol=self.symbols[s],
            timeframe=self.names[ti],
            open_time_ms=open_ms,
            close_time_ms=open_ms + int(self.widths[ti]) - 1,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=vol,
            quote_volume=quote,
            trade_count=int(self.n[ti, s, slot]),
            taker_buy_volume=taker,
            source=SOURCE_NAMES.get(int(self.m[ti, s, slot, _M_SOURCE]), "trades"),
            closed=closed,
            partial=bool(self.m[ti, s, slot, _M_PARTIAL]),
        )

    def forming(self, symbol: str, timeframe: str) -> Candle | None:
        """Return the candle still forming on ``timeframe`` (rolled up with the forming parts below it), or None."""
        s = self._index.get(symbol)
        ti = tfs.INDEX_BY_NAME.get(timeframe)
        if s is None or ti is None:
            return None
        return self._forming(ti, s)

    def _forming(self, ti: int, s: int) -> Candle | None:
        h = self.history
        width = int(self.widths[ti])
        if ti == 0:
            current = int(self.cur[0, s])
            if current < 0:
                return None
            slot = (current // width) % h
            if self.t[0, s, slot] != current or self.m[0, s, slot, _M_STATE] != _FORMING:
                return None
            return self._row(0, s, slot, closed=False)
        part = self._forming(ti - 1, s)
        if part is not None:
            bucket = part.open_time_ms - part.open_time_ms % width
        else:
            current = int(self.cur[ti, s])
            if current < 0:
                return None
            slot = (current // width) % h
            if self.t[ti, s, slot] != current or self.m[ti, s, slot, _M_STATE] != _FORMING:
                return None
            bucket = current
        child_width = int(self.widths[ti - 1])
        parts: list[Candle] = []
        for child in range(bucket, bucket + width, child_width):
            cs = (child // child_width) % h
            if self.t[ti - 1, s, cs] == child and self.m[ti - 1, s, cs, _M_STATE] == _CLOSED:
                parts.append(self._row(ti - 1, s, cs, closed=True))
        if part is not None and part.open_time_ms >= bucket:
            parts.append(part)
        if not parts:
            return None
        return Candle(
            symbol=self.symbols[s],
            timeframe=self.names[ti],
            open_time_ms=bucket,
            close_time_ms=bucket + width - 1,
            open=parts[0].open,
            high=max(p.high for p in parts),
            low=min(p.low for p in parts),
            close=parts[-1].close,
            volume=math.fsum(p.volume for p in parts),
            quote_volume=math.fsum(p.quote_volume for p in parts),
            trade_count=sum(p.trade_count for p in parts),
            taker_buy_volume=math.fsum(p.taker_buy_volume for p in parts),
            source=max((p.source for p in parts), key=lambda name: SOURCE_CODES[name]),
            closed=False,
            partial=len(parts) < width // child_width or any(p.partial for p in parts),
        )

    def candles(
        self,
        symbol: str,
        timeframe: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        include_forming: bool = True,
    ) -> list[Candle]:
        """Return the candles in memory with ``start_ms <= open_time < end_ms``, oldest first.

        The last one may be still forming (``closed=False``) when ``include_forming``.
        """
        s = self._index.get(symbol)
        ti = tfs.INDEX_BY_NAME.get(timeframe)
        if s is None or ti is None or ti >= len(self.timeframes):
            return []
        lo = -1 if start_ms is None else start_ms
        hi = np.iinfo(np.int64).max if end_ms is None else end_ms
        times = self.t[ti, s]
        states = self.m[ti, s, :, _M_STATE]
        slots = np.flatnonzero((times >= lo) & (times < hi) & (states == _CLOSED))
        slots = slots[np.argsort(times[slots], kind="stable")]
        out = [self._row(ti, s, int(slot), closed=True) for slot in slots]
        if include_forming:
            forming = self._forming(ti, s)
            if forming is not None and lo <= forming.open_time_ms < hi:
                out = [c for c in out if c.open_time_ms != forming.open_time_ms]
                out.append(forming)
                out.sort(key=lambda c: c.open_time_ms)
        return out

    def recent(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        """Return the ``limit`` most recent candles in memory (oldest first; the last may be forming)."""
        return self.candles(symbol, timeframe)[-limit:] if limit > 0 else []

    def oldest_open_ms(self, symbol: str, timeframe: str) -> int | None:
        """Return the open time of the oldest candle memory holds for ``symbol``/``timeframe`` (None: nothing)."""
        s = self._index.get(symbol)
        ti = tfs.INDEX_BY_NAME.get(timeframe)
        if s is None or ti is None:
            return None
        times = self.t[ti, s]
        held = times[times >= 0]
        return int(held.min()) if held.size else None

    # -- prices and counters ---------------------------------------------------------------------------------

    def prices(self, symbol: str) -> dict[str, float | int] | None:
        """Return the newest last/mark price, funding rate and next funding time of ``symbol`` (NaN: unknown)."""
        s = self._index.get(symbol)
        if s is None:
            return None
        f = self.tick_f[s]
        return {
            "last_price": float(f[_T_LAST]),
            "bid_price": float(f[_T_BID]),
            "ask_price": float(f[_T_ASK]),
            "mark_price": float(f[_T_MARK]),
            "funding_rate": float(f[_T_FUNDING]),
            "next_funding_time_ms": int(self.tick_i[s, _TI_NEXT_FUNDING]),
            "event_time_ms": int(self.tick_i[s, _TI_EVENT_MS]),
            "mark_time_ms": int(self.tick_i[s, _TI_MARK_MS]),
        }

    def stats(self) -> dict[str, Any]:
        k = _kernels()
        counters = dict(zip(k.COUNTER_NAMES, self.counters.tolist(), strict=True))
        counters["candles_closed"] = dict(zip(self.names, self.tf_counts[0].tolist(), strict=True))
        counters["candles_corrected"] = dict(zip(self.names, self.tf_counts[1].tolist(), strict=True))
        counters["kline_differences"] = {
            name: dict(zip(k.DIFF_NAMES, self.diffs[i].tolist(), strict=True)) for i, name in enumerate(self.names)
        }
        return counters

    @property
    def candles_closed(self) -> int:
        return int(self.tf_counts[0].sum())

    @property
    def conflated(self) -> int:
        return int(self.counters[_C_CONFLATED])
