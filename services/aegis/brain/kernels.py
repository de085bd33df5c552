"""The brain's hot loops: candles and ticks from a batch of ring records, in numba.

Everything here works on plain numpy arrays owned by :class:`aegis.brain.candles.CandleBook` (the layout and the
rules are described there and in ``docs/brain.md``). These functions only mutate those arrays and append what
they closed or corrected to an output buffer; no Python objects, no clock: the same records always give the same
candles.

Array layout (``NTF`` timeframes, ``S`` symbols, ``H`` history slots per symbol and timeframe; a candle with open
time ``t`` of width ``w`` lives in slot ``(t // w) % H`` and the slot remembers ``t``, so a lookup is O(1)):

* ``t[NTF, S, H]`` int64 open time (ms), -1 = empty slot
* ``v[NTF, S, H, NV]`` float64 open, high, low, close, volume, quote_volume, taker_buy_volume
* ``n[NTF, S, H]`` int64 trade count
* ``m[NTF, S, H, NM]`` int8 state (EMPTY/FORMING/CLOSED), source, partial, owner (1 = the exchange's kline)
* ``cur[NTF, S]`` int64 open time of the newest candle started per timeframe (-1 = none)
"""

from __future__ import annotations

import numpy as np
from numba import njit

# value fields
V_OPEN, V_HIGH, V_LOW, V_CLOSE, V_VOLUME, V_QUOTE, V_TAKER = 0, 1, 2, 3, 4, 5, 6
NV = 7
# meta fields
M_STATE, M_SOURCE, M_PARTIAL, M_OWNER = 0, 1, 2, 3
NM = 4
EMPTY, FORMING, CLOSED = 0, 1, 2
OWNER_DERIVED, OWNER_EXCHANGE = 0, 1
# sources, ranked: a rolled-up candle takes the highest rank of its parts (any trade-built part makes it 'trades')
SRC_STREAM, SRC_REST, SRC_TRADES, SRC_REPLAY = 1, 2, 3, 4
# output rows
O_TF, O_SYM, O_OPEN, O_COUNT, O_SOURCE, O_PARTIAL, O_KIND, O_RECV = 0, 1, 2, 3, 4, 5, 6, 7
NO = 8  # O_RECV: recv_time_ns of the record whose arrival closed the candle (0: replayed, timed out, rebuilt)
EMIT_CLOSED, EMIT_CORRECTED, EMIT_PERSIST_ONLY = 1, 2, 3
MAX_EMITS_PER_RECORD = 24
# counters
C_TRADES = 0
C_LATE_TRADES = 1  # trade for a minute older than the newest one started
C_TRADES_AFTER_CLOSE = 2  # trade for a minute the exchange's kline already closed
C_KLINES_CLOSED = 3
C_KLINE_UPDATES = 4  # klines not yet closed: not used for candles
C_KLINES_CONFIRMED = 5  # the exchange's closed kline equal to our candle
C_KLINES_CORRECTED = 6  # ... different from it (the kline wins)
C_KLINES_WITHOUT_CANDLE = 7  # closed kline for a candle we had not built (no trades)
C_KLINES_DUPLICATE = 8  # the same closed kline again (REST backfill of a minute the stream gave)
C_KLINES_IGNORED = 9  # interval not tracked, or start time not on the interval's boundary
C_KLINES_TOO_OLD = 10  # older than the in-memory history: persisted only
C_BOOK_TICKERS = 11
C_MARK_PRICES = 12
C_LIQUIDATIONS = 13
C_CONFLATED = 14  # book-ticker / mark-price updates superseded by a newer one of the same symbol in the batch
C_TIMEOUT_CLOSES = 15
C_UNKNOWN_KIND = 16
NC = 17
COUNTER_NAMES = (
    "trades",
    "late_trades",
    "trades_after_close",
    "klines_closed",
    "kline_updates",
    "klines_confirmed",
    "klines_corrected",
    "klines_without_candle",
    "klines_duplicate",
    "klines_ignored",
    "klines_too_old",
    "book_tickers",
    "mark_prices",
    "liquidations",
    "conflated",
    "timeout_closes",
    "unknown_kind",
)
# differences between our candle and the exchange's closed kline, per timeframe and field
D_OPEN, D_HIGH, D_LOW, D_CLOSE, D_VOLUME, D_QUOTE, D_TAKER, D_TRADE_COUNT = 0, 1, 2, 3, 4, 5, 6, 7
ND = 8
DIFF_NAMES = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume", "trade_count")
VOLUME_RTOL = 1e-9  # volumes summed from float trades differ from the exchange's decimal total in the last bits
# ticks
T_LAST, T_HI, T_LO, T_QTY, T_BID, T_BID_QTY, T_ASK, T_ASK_QTY, T_MARK, T_INDEX, T_FUNDING = range(11)
NTF_TICK = 11
TI_TOUCHED, TI_TRADES, TI_EVENT_MS, TI_RECV_NS, TI_NEXT_FUNDING, TI_LAST_TRADE_MS, TI_REPLAY, TI_MARK_MS = range(8)
NTI = 8
TOUCH_TRADE, TOUCH_BOOK, TOUCH_MARK = 1, 2, 4
# record kinds and flags (aegis.core.records)
K_TRADE, K_BOOK_TICKER, K_MARK_PRICE, K_KLINE, K_LIQUIDATION = 1, 2, 3, 4, 5
F_BUYER_IS_MAKER, F_KLINE_CLOSED, F_REPLAY = 0x01, 0x02, 0x80
# word offsets in a 128-byte MARKET_RECORD seen as 16 int64 / float64 words, and byte offsets
W_EVENT_MS, W_RECV_NS, W_F0, W_I0 = 2, 3, 4, 11
B_KIND, B_FLAGS, B_SYMBOL = 8, 9, 10


@njit(cache=True, inline="always")
def _slot(t, w, h):
    return (t // w) % h


@njit(cache=True)
def _emit(out_i, out_f, n_out, kind, k, s, slot, t, v, n, m):
    out_i[n_out, O_TF] = k
    out_i[n_out, O_SYM] = s
    out_i[n_out, O_OPEN] = t[k, s, slot]
    out_i[n_out, O_COUNT] = n[k, s, slot]
    out_i[n_out, O_SOURCE] = m[k, s, slot, M_SOURCE]
    out_i[n_out, O_PARTIAL] = m[k, s, slot, M_PARTIAL]
    out_i[n_out, O_KIND] = kind
    out_i[n_out, O_RECV] = 0
    for f in range(NV):
        out_f[n_out, f] = v[k, s, slot, f]
    return n_out + 1


@njit(cache=True)
def _recompute(k, s, p, widths, t, v, n, m):
    """Roll bucket ``p`` of timeframe ``k`` up from the closed candles of timeframe ``k - 1``.

    Return 1 if the bucket changed, 0 if not (or it is the exchange's, or a complete candle would become partial),
    -1 if it has no closed part yet.
    """
    h = t.shape[2]
    w = widths[k]
    wc = widths[k - 1]
    slot = _slot(p, w, h)
    existing = t[k, s, slot] == p and m[k, s, slot, M_STATE] != EMPTY
    if existing and m[k, s, slot, M_OWNER] == OWNER_EXCHANGE:
        return 0
    present = 0
    partial = 0
    src = 0
    o = 0.0
    hi = 0.0
    lo = 0.0
    c = 0.0
    vol = 0.0
    quote = 0.0
    taker = 0.0
    count = 0
    for child in range(p, p + w, wc):
        cs = _slot(child, wc, h)
        if t[k - 1, s, cs] != child or m[k - 1, s, cs, M_STATE] != CLOSED:
            continue
        if present == 0:
            o = v[k - 1, s, cs, V_OPEN]
            hi = v[k - 1, s, cs, V_HIGH]
            lo = v[k - 1, s, cs, V_LOW]
        else:
            hi = max(hi, v[k - 1, s, cs, V_HIGH])
            lo = min(lo, v[k - 1, s, cs, V_LOW])
        c = v[k - 1, s, cs, V_CLOSE]
        vol += v[k - 1, s, cs, V_VOLUME]
        quote += v[k - 1, s, cs, V_QUOTE]
        taker += v[k - 1, s, cs, V_TAKER]
        count += n[k - 1, s, cs]
        if m[k - 1, s, cs, M_PARTIAL] != 0:
            partial = 1
        src = max(src, m[k - 1, s, cs, M_SOURCE])
        present += 1
    if present == 0:
        return -1
    if present < w // wc:
        partial = 1
    if existing:
        if m[k, s, slot, M_STATE] == CLOSED and m[k, s, slot, M_PARTIAL] == 0 and partial == 1:
            return 0  # never replace a complete candle by a partial one
        changed = (
            v[k, s, slot, V_OPEN] != o
            or v[k, s, slot, V_HIGH] != hi
            or v[k, s, slot, V_LOW] != lo
            or v[k, s, slot, V_CLOSE] != c
            or v[k, s, slot, V_VOLUME] != vol
            or v[k, s, slot, V_QUOTE] != quote
            or v[k, s, slot, V_TAKER] != taker
            or n[k, s, slot] != count
            or m[k, s, slot, M_PARTIAL] != partial
            or m[k, s, slot, M_SOURCE] != src
        )
    else:
        if t[k, s, slot] > p:
            return -1  # older than what memory holds
        t[k, s, slot] = p
        m[k, s, slot, M_STATE] = FORMING
        m[k, s, slot, M_OWNER] = OWNER_DERIVED
        changed = True
    v[k, s, slot, V_OPEN] = o
    v[k, s, slot, V_HIGH] = hi
    v[k, s, slot, V_LOW] = lo
    v[k, s, slot, V_CLOSE] = c
    v[k, s, slot, V_VOLUME] = vol
    v[k, s, slot, V_QUOTE] = quote
    v[k, s, slot, V_TAKER] = taker
    n[k, s, slot] = count
    m[k, s, slot, M_PARTIAL] = partial
    m[k, s, slot, M_SOURCE] = src
    return 1 if changed else 0


@njit(cache=True)
def _notify_parent(k, s, child, widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out, push, n_push):
    """A candle of timeframe ``k - 1`` opening at ``child`` closed or changed: update its bucket in ``k``.

    Closed or corrected buckets are emitted and pushed (their open times) for timeframe ``k + 1``.
    Return (n_out, n_push).
    """
    h = t.shape[2]
    w = widths[k]
    p = child - child % w
    slot = _slot(p, w, h)
    if t[k, s, slot] > p:
        return n_out, n_push
    current = cur[k, s]
    if current < p:
        if current >= 0:
            cslot = _slot(current, w, h)
            if t[k, s, cslot] == current and m[k, s, cslot, M_STATE] == FORMING:
                _recompute(k, s, current, widths, t, v, n, m)
                m[k, s, cslot, M_STATE] = CLOSED
                n_out = _emit(out_i, out_f, n_out, EMIT_CLOSED, k, s, cslot, t, v, n, m)
                tf_counts[0, k] += 1
                push[n_push] = current
                n_push += 1
        cur[k, s] = p
    status = _recompute(k, s, p, widths, t, v, n, m)
    if status < 0:
        return n_out, n_push
    if m[k, s, slot, M_STATE] == CLOSED:
        if status == 1:
            n_out = _emit(out_i, out_f, n_out, EMIT_CORRECTED, k, s, slot, t, v, n, m)
            tf_counts[1, k] += 1
            push[n_push] = p
            n_push += 1
    elif child == p + w - widths[k - 1] or p < cur[k, s]:
        # its last part closed, or a later bucket has started
        m[k, s, slot, M_STATE] = CLOSED
        n_out = _emit(out_i, out_f, n_out, EMIT_CLOSED, k, s, slot, t, v, n, m)
        tf_counts[0, k] += 1
        push[n_push] = p
        n_push += 1
    return n_out, n_push


@njit(cache=True)
def _propagate(k0, s, first, n_first, widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out):
    """Roll the candles of timeframe ``k0 - 1`` listed in ``first`` up through every wider timeframe."""
    ntf = widths.shape[0]
    work = np.empty(16, dtype=np.int64)
    nxt = np.empty(16, dtype=np.int64)
    n_work = n_first
    for i in range(n_first):
        work[i] = first[i]
    for k in range(k0, ntf):
        if n_work == 0:
            break
        n_next = 0
        for i in range(n_work):
            n_out, n_next = _notify_parent(
                k, s, work[i], widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out, nxt, n_next
            )
        for i in range(n_next):
            work[i] = nxt[i]
        n_work = n_next
    return n_out


@njit(cache=True)
def _same_volume(a, b):
    return abs(a - b) <= VOLUME_RTOL * max(abs(a), abs(b)) + 1e-12


@njit(cache=True)
def _on_trade(s, trade_ms, price, qty, count, taker_buy, src, fresh, widths, t, v, n, m, cur, counters, tf_counts,
              out_i, out_f, n_out):  # fmt: skip
    h = t.shape[2]
    w = widths[0]
    ot = trade_ms - trade_ms % w
    slot = _slot(ot, w, h)
    current = cur[0, s]
    if ot < current:
        counters[C_LATE_TRADES] += 1
        return n_out
    if ot == current:
        if t[0, s, slot] == ot and m[0, s, slot, M_STATE] == FORMING:
            if price > v[0, s, slot, V_HIGH]:
                v[0, s, slot, V_HIGH] = price
            if price < v[0, s, slot, V_LOW]:
                v[0, s, slot, V_LOW] = price
            v[0, s, slot, V_CLOSE] = price
            v[0, s, slot, V_VOLUME] += qty
            v[0, s, slot, V_QUOTE] += price * qty
            if taker_buy:
                v[0, s, slot, V_TAKER] += qty
            n[0, s, slot] += count
        else:
            counters[C_TRADES_AFTER_CLOSE] += 1
        return n_out
    push = np.empty(1, dtype=np.int64)
    if current >= 0:
        cslot = _slot(current, w, h)
        if t[0, s, cslot] == current and m[0, s, cslot, M_STATE] == FORMING:
            m[0, s, cslot, M_STATE] = CLOSED
            n_out = _emit(out_i, out_f, n_out, EMIT_CLOSED, 0, s, cslot, t, v, n, m)
            tf_counts[0, 0] += 1
            push[0] = current
            n_out = _propagate(1, s, push, 1, widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out)
    cur[0, s] = ot
    if t[0, s, slot] >= ot:  # already there (closed by a kline that came first): a trade after the close
        counters[C_TRADES_AFTER_CLOSE] += 1
        return n_out
    t[0, s, slot] = ot
    v[0, s, slot, V_OPEN] = price
    v[0, s, slot, V_HIGH] = price
    v[0, s, slot, V_LOW] = price
    v[0, s, slot, V_CLOSE] = price
    v[0, s, slot, V_VOLUME] = qty
    v[0, s, slot, V_QUOTE] = price * qty
    v[0, s, slot, V_TAKER] = qty if taker_buy else 0.0
    n[0, s, slot] = count
    m[0, s, slot, M_STATE] = FORMING
    m[0, s, slot, M_SOURCE] = src
    m[0, s, slot, M_PARTIAL] = fresh[s]
    m[0, s, slot, M_OWNER] = OWNER_DERIVED
    fresh[s] = 0
    return n_out


@njit(cache=True)
def _on_closed_kline(k, s, kt, o, hi, lo, c, vol, quote, taker, count, src, widths, t, v, n, m, cur, counters,
                     tf_counts, diffs, out_i, out_f, n_out):  # fmt: skip
    h = t.shape[2]
    w = widths[k]
    slot = _slot(kt, w, h)
    if t[k, s, slot] > kt:
        counters[C_KLINES_TOO_OLD] += 1
        out_i[n_out, O_TF] = k
        out_i[n_out, O_SYM] = s
        out_i[n_out, O_OPEN] = kt
        out_i[n_out, O_COUNT] = count
        out_i[n_out, O_SOURCE] = src
        out_i[n_out, O_PARTIAL] = 0
        out_i[n_out, O_KIND] = EMIT_PERSIST_ONLY
        out_i[n_out, O_RECV] = 0
        out_f[n_out, V_OPEN] = o
        out_f[n_out, V_HIGH] = hi
        out_f[n_out, V_LOW] = lo
        out_f[n_out, V_CLOSE] = c
        out_f[n_out, V_VOLUME] = vol
        out_f[n_out, V_QUOTE] = quote
        out_f[n_out, V_TAKER] = taker
        return n_out + 1
    push = np.empty(2, dtype=np.int64)
    n_push = 0
    current = cur[k, s]
    if kt > current:
        if current >= 0:
            cslot = _slot(current, w, h)
            if t[k, s, cslot] == current and m[k, s, cslot, M_STATE] == FORMING:
                if k > 0:
                    _recompute(k, s, current, widths, t, v, n, m)
                m[k, s, cslot, M_STATE] = CLOSED
                n_out = _emit(out_i, out_f, n_out, EMIT_CLOSED, k, s, cslot, t, v, n, m)
                tf_counts[0, k] += 1
                push[n_push] = current
                n_push += 1
        cur[k, s] = kt
    existing = t[k, s, slot] == kt and m[k, s, slot, M_STATE] != EMPTY
    was_forming = False
    if existing:
        d_open = v[k, s, slot, V_OPEN] != o
        d_high = v[k, s, slot, V_HIGH] != hi
        d_low = v[k, s, slot, V_LOW] != lo
        d_close = v[k, s, slot, V_CLOSE] != c
        d_vol = not _same_volume(v[k, s, slot, V_VOLUME], vol)
        d_quote = not _same_volume(v[k, s, slot, V_QUOTE], quote)
        d_taker = not _same_volume(v[k, s, slot, V_TAKER], taker)
        d_count = n[k, s, slot] != count
        differs = d_open or d_high or d_low or d_close or d_vol or d_quote or d_taker or d_count
        if m[k, s, slot, M_OWNER] == OWNER_EXCHANGE:
            if not differs:
                counters[C_KLINES_DUPLICATE] += 1
                if n_push > 0:
                    n_out = _propagate(k + 1, s, push, n_push, widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out)
                return n_out
        elif differs:
            counters[C_KLINES_CORRECTED] += 1
            diffs[k, D_OPEN] += d_open
            diffs[k, D_HIGH] += d_high
            diffs[k, D_LOW] += d_low
            diffs[k, D_CLOSE] += d_close
            diffs[k, D_VOLUME] += d_vol
            diffs[k, D_QUOTE] += d_quote
            diffs[k, D_TAKER] += d_taker
            diffs[k, D_TRADE_COUNT] += d_count
        else:
            counters[C_KLINES_CONFIRMED] += 1
        was_forming = m[k, s, slot, M_STATE] == FORMING
    else:
        counters[C_KLINES_WITHOUT_CANDLE] += 1
    t[k, s, slot] = kt
    v[k, s, slot, V_OPEN] = o
    v[k, s, slot, V_HIGH] = hi
    v[k, s, slot, V_LOW] = lo
    v[k, s, slot, V_CLOSE] = c
    v[k, s, slot, V_VOLUME] = vol
    v[k, s, slot, V_QUOTE] = quote
    v[k, s, slot, V_TAKER] = taker
    n[k, s, slot] = count
    m[k, s, slot, M_STATE] = CLOSED
    m[k, s, slot, M_SOURCE] = src
    m[k, s, slot, M_PARTIAL] = 0
    m[k, s, slot, M_OWNER] = OWNER_EXCHANGE
    if existing and not was_forming:
        n_out = _emit(out_i, out_f, n_out, EMIT_CORRECTED, k, s, slot, t, v, n, m)
        tf_counts[1, k] += 1
    else:
        n_out = _emit(out_i, out_f, n_out, EMIT_CLOSED, k, s, slot, t, v, n, m)
        tf_counts[0, k] += 1
    push[n_push] = kt
    n_push += 1
    return _propagate(k + 1, s, push, n_push, widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out)


@njit(cache=True)
def process_records(raw, fw, iw, sym, start, rest_flag, fresh, widths, t, v, n, m, cur, counters, tf_counts, diffs,
                    tick_f, tick_i, out_i, out_f, slot0):  # fmt: skip
    """Process records ``start..`` of a batch; return (next record index, rows written to ``out_*``).

    ``raw`` is the batch as bytes (n, 128), ``fw``/``iw`` the same memory as float64/int64 words (n, 16), ``sym``
    the brain's symbol index of each record. Stops early when ``out_*`` might overflow: call again from the index
    returned after draining the output. ``slot0[s]``: a hint, the slot of symbol ``s``'s newest 1m candle
    (``cur[0, s]``), kept here; a trade in that candle's minute updates it without the three integer divisions of
    the slot arithmetic. A stale hint is harmless: the slot is used only when it holds that candle (a candle is
    only ever stored in its own slot), else the trade takes the full path and the hint is refreshed.
    """
    nrec = raw.shape[0]
    ntf = widths.shape[0]
    cap = out_i.shape[0]
    h = t.shape[2]
    w0 = widths[0]
    n_out = 0
    i = start
    while i < nrec:
        if n_out + MAX_EMITS_PER_RECORD > cap:
            break
        first_out = n_out
        s = sym[i]
        kind = raw[i, B_KIND]
        flags = raw[i, B_FLAGS]
        event_ms = iw[i, W_EVENT_MS]
        if event_ms > tick_i[s, TI_EVENT_MS]:
            tick_i[s, TI_EVENT_MS] = event_ms
        tick_i[s, TI_RECV_NS] = iw[i, W_RECV_NS]
        tick_i[s, TI_REPLAY] = 1 if flags & F_REPLAY else 0
        if kind == K_TRADE:
            price = fw[i, W_F0]
            qty = fw[i, W_F0 + 1]
            trade_ms = iw[i, W_I0 + 3]
            count = iw[i, W_I0 + 2] - iw[i, W_I0 + 1] + 1
            if count < 1:
                count = 1
            taker_buy = (flags & F_BUYER_IS_MAKER) == 0
            src = SRC_REPLAY if flags & F_REPLAY else SRC_TRADES
            counters[C_TRADES] += 1
            # the common case inline (a trade in the forming 1m candle): a call with a dozen array arguments
            # costs more than the update itself. cur[0, s] is aligned to the minute, so trade_ms in
            # [cur, cur + w0) is the same test as floor(trade_ms / w0) * w0 == cur, without a division
            current = cur[0, s]
            slot = slot0[s]
            if (
                current >= 0
                and trade_ms >= current
                and trade_ms - current < w0
                and t[0, s, slot] == current
                and m[0, s, slot, M_STATE] == FORMING
            ):
                if price > v[0, s, slot, V_HIGH]:
                    v[0, s, slot, V_HIGH] = price
                if price < v[0, s, slot, V_LOW]:
                    v[0, s, slot, V_LOW] = price
                v[0, s, slot, V_CLOSE] = price
                v[0, s, slot, V_VOLUME] += qty
                v[0, s, slot, V_QUOTE] += price * qty
                if taker_buy:
                    v[0, s, slot, V_TAKER] += qty
                n[0, s, slot] += count
            else:
                n_out = _on_trade(s, trade_ms, price, qty, count, taker_buy, src, fresh, widths, t, v, n, m, cur,
                                  counters, tf_counts, out_i, out_f, n_out)  # fmt: skip
                if cur[0, s] >= 0:
                    slot0[s] = _slot(cur[0, s], w0, h)
            touched = tick_i[s, TI_TOUCHED]
            if touched & TOUCH_TRADE:
                if price > tick_f[s, T_HI]:
                    tick_f[s, T_HI] = price
                if price < tick_f[s, T_LO]:
                    tick_f[s, T_LO] = price
                tick_f[s, T_QTY] += qty
                tick_i[s, TI_TRADES] += count
            else:
                tick_f[s, T_HI] = price
                tick_f[s, T_LO] = price
                tick_f[s, T_QTY] = qty
                tick_i[s, TI_TRADES] = count
            tick_i[s, TI_TOUCHED] = touched | TOUCH_TRADE
            if trade_ms >= tick_i[s, TI_LAST_TRADE_MS]:
                tick_f[s, T_LAST] = price
                tick_i[s, TI_LAST_TRADE_MS] = trade_ms
        elif kind == K_KLINE:
            if flags & F_KLINE_CLOSED:
                interval = iw[i, W_I0 + 3]
                k = -1
                for j in range(ntf):
                    if widths[j] == interval:
                        k = j
                kt = iw[i, W_I0]
                if k < 0 or kt < 0 or kt % interval != 0:
                    counters[C_KLINES_IGNORED] += 1
                else:
                    counters[C_KLINES_CLOSED] += 1
                    if flags & F_REPLAY:
                        src = SRC_REPLAY
                    elif rest_flag != 0 and flags & rest_flag:
                        src = SRC_REST
                    else:
                        src = SRC_STREAM
                    n_out = _on_closed_kline(
                        k, s, kt, fw[i, W_F0 + 2], fw[i, W_F0 + 3], fw[i, W_F0 + 4], fw[i, W_F0],
                        fw[i, W_F0 + 1], fw[i, W_F0 + 5], fw[i, W_F0 + 6], iw[i, W_I0 + 2], src,
                        widths, t, v, n, m, cur, counters, tf_counts, diffs, out_i, out_f, n_out,
                    )  # fmt: skip
            else:
                counters[C_KLINE_UPDATES] += 1
        elif kind == K_BOOK_TICKER:
            counters[C_BOOK_TICKERS] += 1
            touched = tick_i[s, TI_TOUCHED]
            if touched & TOUCH_BOOK:
                counters[C_CONFLATED] += 1
            tick_f[s, T_BID] = fw[i, W_F0]
            tick_f[s, T_BID_QTY] = fw[i, W_F0 + 1]
            tick_f[s, T_ASK] = fw[i, W_F0 + 2]
            tick_f[s, T_ASK_QTY] = fw[i, W_F0 + 3]
            tick_i[s, TI_TOUCHED] = touched | TOUCH_BOOK
        elif kind == K_MARK_PRICE:
            counters[C_MARK_PRICES] += 1
            touched = tick_i[s, TI_TOUCHED]
            if touched & TOUCH_MARK:
                counters[C_CONFLATED] += 1
            if event_ms >= tick_i[s, TI_MARK_MS]:  # the mark price's own time: risk refuses a stale one
                tick_i[s, TI_MARK_MS] = event_ms
            tick_f[s, T_MARK] = fw[i, W_F0]
            tick_f[s, T_INDEX] = fw[i, W_F0 + 2]
            tick_f[s, T_FUNDING] = fw[i, W_F0 + 4]
            tick_i[s, TI_NEXT_FUNDING] = iw[i, W_I0]
            tick_i[s, TI_TOUCHED] = touched | TOUCH_MARK
        elif kind == K_LIQUIDATION:
            counters[C_LIQUIDATIONS] += 1
        else:
            counters[C_UNKNOWN_KIND] += 1
        if n_out > first_out and not flags & F_REPLAY:
            for r in range(first_out, n_out):
                out_i[r, O_RECV] = iw[i, W_RECV_NS]
        i += 1
    return i, n_out


@njit(cache=True)
def close_due(now_ms, grace_ms, widths, t, v, n, m, cur, counters, tf_counts, out_i, out_f):
    """Close every forming candle whose end is more than ``grace_ms`` before ``now_ms``; return rows written.

    The live consumer calls this only when it has read everything published (so nothing that could still change
    these candles is waiting in the ring) and only for symbols that went quiet; replays never call it.
    """
    h = t.shape[2]
    ntf = widths.shape[0]
    nsym = t.shape[1]
    cap = out_i.shape[0]
    n_out = 0
    push = np.empty(1, dtype=np.int64)
    for s in range(nsym):
        for k in range(ntf):
            if n_out + MAX_EMITS_PER_RECORD > cap:
                return n_out
            current = cur[k, s]
            if current < 0:
                continue
            slot = _slot(current, widths[k], h)
            if t[k, s, slot] != current or m[k, s, slot, M_STATE] != FORMING:
                continue
            if current + widths[k] + grace_ms > now_ms:
                continue
            if k > 0:
                _recompute(k, s, current, widths, t, v, n, m)
            m[k, s, slot, M_STATE] = CLOSED
            n_out = _emit(out_i, out_f, n_out, EMIT_CLOSED, k, s, slot, t, v, n, m)
            tf_counts[0, k] += 1
            counters[C_TIMEOUT_CLOSES] += 1
            push[0] = current
            if k + 1 < ntf:
                n_out = _propagate(k + 1, s, push, 1, widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out)
    return n_out


@njit(cache=True)
def rebuild_derived(s, widths, t, v, n, m, cur, tf_counts, out_i, out_f):
    """After loading history for symbol ``s``: roll up every wider bucket that its narrower candles complete.

    Buckets at or after the newest stored candle of each wider timeframe are recomputed from their parts, in time
    order, with the usual closing rules. Return rows written (closed or corrected wider candles).
    """
    h = t.shape[2]
    ntf = widths.shape[0]
    n_out = 0
    nxt = np.empty(16, dtype=np.int64)
    for k in range(1, ntf):
        newest = cur[k, s]
        children = np.empty(h, dtype=np.int64)
        nc = 0
        for slot in range(h):
            child = t[k - 1, s, slot]
            if child >= 0 and m[k - 1, s, slot, M_STATE] == CLOSED and child >= newest:
                children[nc] = child
                nc += 1
        children = np.sort(children[:nc])
        for i in range(nc):
            if n_out + MAX_EMITS_PER_RECORD > out_i.shape[0]:
                return n_out
            # wider timeframes are handled by the next turn of the outer loop, so the pushes are not needed
            n_out, _ = _notify_parent(
                k, s, children[i], widths, t, v, n, m, cur, tf_counts, out_i, out_f, n_out, nxt, 0
            )
    return n_out


@njit(cache=True, inline="always")
def _pos(x):
    return x > 0.0 and x < np.inf  # False for NaN


@njit(cache=True, inline="always")
def _nonneg(x):
    return x >= 0.0 and x < np.inf


@njit(cache=True)
def first_implausible(raw, fw, iw, symbol_count, min_time_ms, max_time_ms):
    """Return the index of the first record the feed's firewall would refuse, or -1 when it accepts them all.

    The same checks as ``aegis.feed.firewall.check_records`` (known kind, symbol id below ``symbol_count`` when it
    is >= 0, prices, quantities, ids, event time in [``min_time_ms``, ``max_time_ms``], candle logic, bid <= ask),
    in one pass without temporaries: the consumer runs this first and calls the firewall itself (which names and
    counts the reasons) only for a batch with a refused record. ``tests/unit/brain/test_brain_firewall.py`` checks
    on fuzzed batches that both always agree.
    """
    for i in range(raw.shape[0]):
        kind = raw[i, B_KIND]
        if kind < K_TRADE or kind > K_LIQUIDATION:
            return i
        if symbol_count >= 0 and (raw[i, B_SYMBOL] | (np.int64(raw[i, B_SYMBOL + 1]) << 8)) >= symbol_count:
            return i
        f0 = fw[i, W_F0]
        f1 = fw[i, W_F0 + 1]
        f2 = fw[i, W_F0 + 2]
        f3 = fw[i, W_F0 + 3]
        f4 = fw[i, W_F0 + 4]
        if not (_pos(f0) and _nonneg(f1)):
            return i
        event_ms = iw[i, W_EVENT_MS]
        if event_ms < min_time_ms or event_ms > max_time_ms:
            return i
        if kind == K_TRADE:
            if not (iw[i, W_I0] >= 0 and iw[i, W_I0 + 1] >= 0 and iw[i, W_I0 + 1] <= iw[i, W_I0 + 2]):
                return i
        elif kind == K_BOOK_TICKER:
            if not (_pos(f2) and _nonneg(f3) and iw[i, W_I0] >= 0 and f0 <= f2):
                return i
        elif kind == K_MARK_PRICE:
            if not (_pos(f2) and _nonneg(f3) and np.isfinite(f4)):
                return i
        elif kind == K_KLINE:
            f5 = fw[i, W_F0 + 5]
            f6 = fw[i, W_F0 + 6]
            if not (_pos(f2) and _pos(f3) and _pos(f4) and _nonneg(f5) and _nonneg(f6) and iw[i, W_I0 + 2] >= 0):
                return i
            interval = iw[i, W_I0 + 3]
            if not (interval > 0 and iw[i, W_I0 + 1] == iw[i, W_I0] + interval - 1):
                return i
            if not (f3 >= f2 and f3 >= f0 and f4 <= f2 and f4 <= f0 and f6 <= f1):
                return i
        else:  # liquidation
            if not (_nonneg(f2) and _nonneg(f3) and _nonneg(f4)):
                return i
    return -1


@njit(cache=True)
def take_ticks(tick_f, tick_i, nsym, out_s, out_f, out_i):
    """Collect the pending tick update of every touched symbol below ``nsym`` and clear its touched bits.

    Row ``r`` of ``out_f``/``out_i`` gets the symbol ``out_s[r]``'s prices and counters; a symbol without a trade
    since its last update gets no trade range (NaN high/low), volume or count. Return the rows written (one pass,
    no temporaries: what the NumPy form did with a dozen array operations per call).
    """
    rows = 0
    for s in range(nsym):
        touched = tick_i[s, TI_TOUCHED]
        if touched == 0:
            continue
        out_s[rows] = s
        for f in range(NTF_TICK):
            out_f[rows, f] = tick_f[s, f]
        for f in range(NTI):
            out_i[rows, f] = tick_i[s, f]
        if (touched & TOUCH_TRADE) == 0:
            out_f[rows, T_HI] = np.nan
            out_f[rows, T_LO] = np.nan
            out_f[rows, T_QTY] = 0.0
            out_i[rows, TI_TRADES] = 0
        tick_i[s, TI_TOUCHED] = 0
        rows += 1
    return rows


@njit(cache=True)
def map_plausible(raw, fw, iw, ring_ids, out, symbol_count, min_time_ms, max_time_ms):
    """:func:`map_symbols`, then :func:`first_implausible`, in one call: True when every record's id mapped and the
    feed's firewall would accept every record (the consumer's common case); False sends it to the slow path."""
    return map_symbols(raw, ring_ids, out) == 0 and first_implausible(raw, fw, iw, symbol_count, min_time_ms,
                                                                      max_time_ms) < 0  # fmt: skip


@njit(cache=True)
def map_symbols(raw, ring_ids, out):
    """Write the book's index of each record's ring symbol id into ``out``; return how many ids ``ring_ids`` lacks.

    A record whose id is beyond the table gets -1 (the caller refreshes the table, or takes the slow path).
    """
    missing = 0
    n_ids = ring_ids.shape[0]
    for i in range(raw.shape[0]):
        sid = np.int64(raw[i, B_SYMBOL]) | (np.int64(raw[i, B_SYMBOL + 1]) << 8)
        if sid >= n_ids:
            out[i] = -1
            missing += 1
        else:
            out[i] = ring_ids[sid]
    return missing
