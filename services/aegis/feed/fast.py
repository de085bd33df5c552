"""The feed's batch fast path: many frames parsed, checked and turned into ``MARKET_RECORD``s in one numba call.

:meth:`FramePipeline.process <aegis.feed.pipeline.FramePipeline.process>` costs about a microsecond per frame in
Python (a msgspec decode, the firewall's checks, a ``struct.pack_into``). When frames come in bulk (a replay reads
a recording; the benchmark) :func:`run_frames` does the same work for a whole batch in compiled code: frames are
byte ranges of one ``uint8`` buffer (zero-copy over the bytes read), and for each frame it

1. parses the Binance JSON of the three high-rate kinds — ``aggTrade``, ``trade``, ``bookTicker``, as a
   combined-stream frame ``{"stream":"…","data":{…}}`` or as a bare event — and recognises ``depthUpdate`` (counted
   as ``unsupported_event``, as the per-frame path does);
2. applies exactly the firewall's checks, in the firewall's order, over ordering-state arrays the caller keeps in
   step with :meth:`Firewall.ordering_state <aegis.feed.firewall.Firewall.ordering_state>`;
3. writes each accepted event as a ``MARKET_RECORD`` into an output array (published with
   ``RingWriter.write_batch``) and each rejected one as a reason code, counted per reason and symbol.

Anything it does not fully understand is **FALLBACK**: the kernel stops there, the caller flushes what came before
and gives that frame to the per-frame path, then resumes after it — so records leave in frame order, and a
fallback frame is decided by the very code that decides it without this module. FALLBACK is, among others: other
event kinds (markPrice, kline, forceOrder, arrays, REST snapshots), a key missing, repeated or unknown, ``"e"``
not the first key, any whitespace, any string with an escape, a control or a non-ASCII byte, a number given as
anything but the plain forms below, and malformed JSON.

Numbers are taken only in forms whose value is known exactly: integers ``0`` or ``-?[1-9][0-9]{0,17}`` (fits
int64), and price/quantity strings ``"-?D+(.D+)?"`` without superfluous leading zeros whose digits form an integer
m <= 2**53 with k <= 22 fraction digits. Then ``m / 10.0**k`` is one correctly rounded IEEE division of two exact
doubles, i.e. exactly what Python's ``float()`` (and msgspec) give for that string. ``"-0"``-like strings (zero with
a sign) fall back, because msgspec reads ``"-0"`` as ``0.0`` but ``"-0.0"`` as ``-0.0``.

Every kernel is compiled with ``_nrt=False``: it allocates nothing, and without numba's reference counting the
inlined helpers that take arrays do not pay an atomic incref/decref per call (that was 60% of a bookTicker's cost).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit

from aegis.core import records as rec
from aegis.feed import firewall as fw

__all__ = [
    "ACCEPTED",
    "FALLBACK",
    "STREAM_AGG",
    "STREAM_BOOK",
    "STREAM_TRADE",
    "FastPath",
    "run_frames",
    "split_lines",
    "warm_up",
]

ACCEPTED: Final = 0
"""Status of a frame whose event was published (rejections carry ``firewall.REASON_CODES``)."""
FALLBACK: Final = 255
"""Status of the frame the kernel stopped at: the per-frame path must decide it."""

STREAM_AGG: Final = 0
STREAM_TRADE: Final = 1
STREAM_BOOK: Final = 2
"""Rows of the ordering-state array ``state[stream, symbol] = (last id, last time)``."""

_UNKNOWN_SYMBOL = fw.REASON_CODES[fw.UNKNOWN_SYMBOL]
_UNSUPPORTED = fw.REASON_CODES[fw.UNSUPPORTED_EVENT]
_BAD_PRICE = fw.REASON_CODES[fw.BAD_PRICE]
_BAD_QUANTITY = fw.REASON_CODES[fw.BAD_QUANTITY]
_BAD_ID = fw.REASON_CODES[fw.BAD_ID]
_BAD_TIMESTAMP = fw.REASON_CODES[fw.BAD_TIMESTAMP]
_BACKWARDS = fw.REASON_CODES[fw.TIME_WENT_BACKWARDS]
_OUT_OF_SEQUENCE = fw.REASON_CODES[fw.OUT_OF_SEQUENCE]
_CROSSED = fw.REASON_CODES[fw.CROSSED_BOOK]
_MIN_MS = fw.MIN_EXCHANGE_TIME_MS
_TRADE = rec.TRADE
_BOOK_TICKER = rec.BOOK_TICKER

_POW10 = np.array([10.0**k for k in range(23)])
_MAX_MANTISSA = 1 << 53
_MAX_INT_DIGITS = 18

# kinds the kernel parses
_K_AGG, _K_TRADE, _K_BOOK, _K_DEPTH = 0, 1, 2, 3

_COMBINED = np.frombuffer(b'{"stream":"', np.uint8)
_DATA = np.frombuffer(b'","data":{"e":"', np.uint8)
_BARE = np.frombuffer(b'{"e":"', np.uint8)
_AGG_TRADE = np.frombuffer(b'aggTrade"', np.uint8)
_TRADE_KIND = np.frombuffer(b'trade"', np.uint8)
_BOOK_KIND = np.frombuffer(b'bookTicker"', np.uint8)
_DEPTH_KIND = np.frombuffer(b'depthUpdate"', np.uint8)
_MARKET = np.frombuffer(b"MARKET", np.uint8)

# one bit per key; the full set of each kind (every key exactly once)
_B_E, _B_T, _B_s, _B_m = 1, 2, 4, 8
_B_a, _B_p, _B_q, _B_f, _B_l = 16, 32, 64, 128, 256
_B_t, _B_X = 512, 1024
_B_u, _B_b, _B_B, _B_A = 2048, 4096, 8192, 16384
_B_U, _B_pu = 32768, 65536
_ALL_AGG = _B_E | _B_a | _B_s | _B_p | _B_q | _B_f | _B_l | _B_T | _B_m
_ALL_TRADE = _B_E | _B_T | _B_s | _B_t | _B_p | _B_q | _B_X | _B_m
_ALL_BOOK = _B_u | _B_s | _B_b | _B_B | _B_a | _B_A | _B_T | _B_E
_ALL_DEPTH = _B_E | _B_T | _B_s | _B_U | _B_u | _B_pu | _B_b | _B_a

_Q = 34  # "
_BACKSLASH = 92


@njit(cache=True, inline="always", _nrt=False)
def _match(buf, p, end, lit):
    """Return the position after ``lit`` if ``buf[p:]`` starts with it, else -1."""
    n = lit.shape[0]
    if p + n > end:
        return -1
    for j in range(n):
        if buf[p + j] != lit[j]:
            return -1
    return p + n


_PLAIN = np.zeros(256, np.uint8)
_PLAIN[32:127] = 1
_PLAIN[_Q] = 0
_PLAIN[_BACKSLASH] = 0
"""Bytes a string may hold on the fast path: printable ASCII but the quote and the backslash."""


@njit(cache=True, inline="always", _nrt=False)
def _string_end(buf, p, end):
    """``p`` is just after an opening quote: return the closing quote's position, or -1 (escape, control or
    non-ASCII byte, or no closing quote)."""
    while p < end and _PLAIN[buf[p]]:
        p += 1
    if p < end and buf[p] == _Q:
        return p
    return -1


@njit(cache=True, inline="always", _nrt=False)
def _int(buf, p, end):
    """Parse a plain JSON integer at ``p``: return ``(value, next position)``; next is -1 if not plain/too long."""
    neg = False
    if p < end and buf[p] == 45:  # -
        neg = True
        p += 1
    if p >= end:
        return 0, -1
    c = buf[p]
    if c == 48:  # 0: only "0" itself (no leading zeros, no "-0")
        if neg:
            return 0, -1
        p += 1
        if p < end and 48 <= buf[p] <= 57:
            return 0, -1
        return 0, p
    value = 0
    digits = 0
    while p < end:
        c = buf[p]
        if c < 48 or c > 57:
            break
        value = value * 10 + (c - 48)
        digits += 1
        p += 1
    if digits == 0 or digits > _MAX_INT_DIGITS:
        return 0, -1
    if p < end and (buf[p] == 46 or buf[p] == 101 or buf[p] == 69):  # . e E: not an integer literal
        return 0, -1
    return (-value if neg else value), p


@njit(cache=True, inline="always", _nrt=False)
def _decimal(buf, p, end):
    """Parse a decimal string ``"-?D+(.D+)?"`` at ``p`` (on its opening quote) exactly: ``(value, next)``,
    next = -1 when the form or the size is not one whose float() is known exactly."""
    if p >= end or buf[p] != _Q:
        return 0.0, -1
    p += 1
    neg = False
    if p < end and buf[p] == 45:
        neg = True
        p += 1
    mantissa = 0
    int_digits = 0
    first = p
    while p < end:
        c = buf[p]
        if c < 48 or c > 57:
            break
        mantissa = mantissa * 10 + (c - 48)
        if mantissa > _MAX_MANTISSA:
            return 0.0, -1
        int_digits += 1
        p += 1
    if int_digits == 0 or (int_digits > 1 and buf[first] == 48):  # "" or a leading zero ("01.5")
        return 0.0, -1
    frac_digits = 0
    if p < end and buf[p] == 46:  # .
        p += 1
        while p < end:
            c = buf[p]
            if c < 48 or c > 57:
                break
            mantissa = mantissa * 10 + (c - 48)
            if mantissa > _MAX_MANTISSA:
                return 0.0, -1
            frac_digits += 1
            p += 1
        if frac_digits == 0 or frac_digits > 22:
            return 0.0, -1
    if p >= end or buf[p] != _Q:
        return 0.0, -1
    if neg and mantissa == 0:
        return 0.0, -1
    value = float(mantissa) / _POW10[frac_digits]
    return (-value if neg else value), p + 1


@njit(cache=True, inline="always", _nrt=False)
def _bool(buf, p, end):
    """``true`` → (1, next), ``false`` → (0, next), else (0, -1)."""
    if p + 4 <= end and buf[p] == 116 and buf[p + 1] == 114 and buf[p + 2] == 117 and buf[p + 3] == 101:
        return 1, p + 4
    if (
        p + 5 <= end
        and buf[p] == 102
        and buf[p + 1] == 97
        and buf[p + 2] == 108
        and buf[p + 3] == 115
        and buf[p + 4] == 101
    ):
        return 0, p + 5
    return 0, -1


@njit(cache=True, inline="always", _nrt=False)
def _pairs(buf, p, end):
    """Skip a depth side ``[["price","qty"],…]`` (strings of plain ASCII only): return the next position or -1."""
    if p >= end or buf[p] != 91:  # [
        return -1
    p += 1
    if p < end and buf[p] == 93:  # ]
        return p + 1
    while True:
        if p + 1 >= end or buf[p] != 91 or buf[p + 1] != _Q:
            return -1
        q = _string_end(buf, p + 2, end)
        if q < 0 or q + 2 >= end or buf[q + 1] != 44 or buf[q + 2] != _Q:
            return -1
        q = _string_end(buf, q + 3, end)
        if q < 0 or q + 2 >= end or buf[q + 1] != 93:
            return -1
        p = q + 2
        c = buf[p]
        if c == 93:
            return p + 1
        if c != 44:
            return -1
        p += 1


@njit(cache=True, inline="always", _nrt=False)
def _is_digit(x):
    return (np.uint8(x - np.uint8(48)) < np.uint8(10)) | (x == 46)  # a digit or "."


@njit(cache=True, inline="always", _nrt=False)
def _depth_side_ok(r, s, e):
    """Whether ``r[s:e]`` is ``[]`` or ``[[S(,S)*](,[S(,S)*])*]`` with S a string of digits and dots: valid JSON.

    Branch-free over byte trigrams (so the compiler can vectorise it): the role of every byte follows from the
    two before it (a quote after ``[`` or ``,`` opens a string, after a digit or an opening quote closes it; a
    comma after ``]`` separates levels, after a closing quote separates strings; ``]]`` only at the end), which
    pins the whole text to that grammar. Unsigned indices keep numba from adding negative-index wraparound.
    """
    n = e - s
    if n == 2:
        return r[s] == 91 and r[s + 1] == 93
    if n < 6 or r[s] != 91 or r[s + 1] != 91 or r[e - 2] != 93 or r[e - 1] != 93:
        return False
    bad = np.uint8(0)
    for j in range(s + 2, e - 1):
        i = np.uint64(j)
        a = r[i - np.uint64(2)]
        p = r[i - np.uint64(1)]
        c = r[i]
        c_d = _is_digit(c)
        p_d = _is_digit(p)
        a_d = _is_digit(a)
        c_q = c == 34
        p_q = p == 34
        a_q = a == 34
        c_c = c == 44
        p_c = p == 44
        a_c = a == 44
        c_o = c == 91
        p_o = p == 91
        a_o = a == 91
        c_x = c == 93
        p_x = p == 93
        a_x = a == 93
        ok = (
            (p_o & c_q)
            | (p_x & c_c)
            | (p_c & ((c_o & a_x) | (c_q & a_q)))
            | (p_d & (c_d | c_q))
            | (p_q & (((c_d | c_q) & (a_o | a_c)) | ((c_c | c_x) & (a_d | a_q))))
        )
        bad |= np.uint8(1) ^ np.uint8(ok)
    return bad == 0


@njit(cache=True, inline="always", _nrt=False)
def _depth_sides(buf, v, close):
    """``buf[v:close]`` as ``<bids>,"a":<asks>`` (the last two keys of a depthUpdate, as Binance orders them), both
    sides checked by :func:`_depth_side_ok`: return ``close`` or -1."""
    colons = 0
    at = 0
    for j in range(v, close):  # the one colon must be the one of "a": (a side holds none)
        i = np.uint64(j)
        hit = buf[i] == 58
        colons += hit
        at = max(at, j * hit)
    if colons != 1 or at - 4 < v + 2:
        return -1
    if buf[at - 4] != 44 or buf[at - 3] != _Q or buf[at - 2] != 97 or buf[at - 1] != _Q:
        return -1
    if not (_depth_side_ok(buf, v, at - 4) and _depth_side_ok(buf, at + 1, close)):
        return -1
    return close


@njit(cache=True, inline="always", _nrt=False)
def _symbol(table, lengths, buf, s0, s1):
    """Index of the symbol ``buf[s0:s1]`` in the known-symbol table, or -1."""
    n = s1 - s0
    for k in range(table.shape[0]):
        if lengths[k] != n:
            continue
        same = True
        for j in range(n):
            if table[k, j] != buf[s0 + j]:
                same = False
                break
        if same:
            return k
    return -1


@njit(cache=True, _nrt=False)
def split_lines(buf, newlines, prev_recv, starts, ends, recv):
    """Split ``buf`` into hftbacktest ``<local_ns> <json>`` lines as ``read_hftbacktest`` does.

    ``newlines``: the positions of every ``\n`` in ``buf`` (``np.flatnonzero(buf == 10)``, vectorised). Each line
    (split after ``\n``) is stripped of trailing ``\r``/``\n``; empty lines are skipped; a line whose text
    before the first space is all digits (and has text after it) gives ``(int(stamp), rest)``, any other line is
    itself the frame with the previous receive time. Fills ``starts``/``ends``/``recv`` (one entry per line at
    most: ``len(newlines) + 1``) and returns ``(frames, last receive time)``; frames = -1 when a stamp does not
    fit int64 (the caller then splits in Python).
    """
    n = 0
    p = 0
    size = buf.shape[0]
    lines = newlines.shape[0]
    for line in range(lines + 1):
        q = newlines[line] if line < lines else size
        nxt = q + 1
        while q > p and (buf[q - 1] == 10 or buf[q - 1] == 13):
            q -= 1
        if q > p:
            space = p
            while space < q and buf[space] != 32:
                space += 1
            digits = space > p and space + 1 < q
            if digits:
                for j in range(p, space):
                    c = buf[j]
                    if c < 48 or c > 57:
                        digits = False
                        break
            if digits:
                if space - p > 19:
                    return -1, prev_recv
                value = 0
                for j in range(p, space - 1):
                    value = value * 10 + (buf[j] - 48)
                last = buf[space - 1] - 48
                if value > 922337203685477580 or (value == 922337203685477580 and last > 7):
                    return -1, prev_recv  # beyond int64
                value = value * 10 + last
                prev_recv = value
                starts[n] = space + 1
            else:
                starts[n] = p
            ends[n] = q
            recv[n] = prev_recv
            n += 1
        p = nxt
    return n, prev_recv


@njit(cache=True, _nrt=False)
def run_frames(
    buf, starts, ends, recv, now_ms, wall, skew_ms, flags, table, lengths, ring_ids, state,
    out, status, sym_index, sym_start, sym_end, last_recv, first_accept, begin, n_out,
):  # fmt: skip
    """Parse, check and convert frames ``begin…`` until the first FALLBACK frame or the end.

    ``buf[starts[i]:ends[i]]`` is frame *i*, received at ``recv[i]``; the firewall's "now" is ``recv[i] // 1e6``
    when ``wall`` else ``now_ms``. ``table``/``lengths``: the known symbols' bytes, ``ring_ids`` their ring ids;
    ``state[stream, k] = (last id, last time)`` is read and advanced like ``Firewall``'s lists. Accepted events
    are written to ``out[n_out…]``; per frame ``status`` gets 0, a reason code or FALLBACK, ``sym_index`` the known
    symbol's index (-1: unknown, its bytes at ``sym_start``/``sym_end``). ``last_recv``/``first_accept`` track
    the accepted receive times per known symbol. Returns ``(index of the FALLBACK frame or len, records out)``.
    """
    total = starts.shape[0]
    for i in range(begin, total):
        p = starts[i]
        end = ends[i]
        status[i] = FALLBACK
        combined = False
        q = _match(buf, p, end, _COMBINED)
        if q >= 0:
            q = _string_end(buf, q, end)  # the stream name: ignored, like the per-frame decoder does
            if q < 0:
                return i, n_out
            q = _match(buf, q, end, _DATA)
            if q < 0:
                return i, n_out
            combined = True
        else:
            q = _match(buf, p, end, _BARE)
            if q < 0:
                return i, n_out
        kind = _K_BOOK
        r = _match(buf, q, end, _BOOK_KIND)
        if r < 0:
            kind = _K_TRADE
            r = _match(buf, q, end, _TRADE_KIND)
            if r < 0:
                kind = _K_AGG
                r = _match(buf, q, end, _AGG_TRADE)
                if r < 0:
                    kind = _K_DEPTH
                    r = _match(buf, q, end, _DEPTH_KIND)
                    if r < 0:
                        return i, n_out
        q = r
        seen = 0
        event_time = 0
        stream_time = 0
        seq_id = 0
        first_id = 0
        last_id = 0
        price = 0.0
        qty = 0.0
        ask = 0.0
        ask_qty = 0.0
        maker = 0
        market = False
        s0 = 0
        s1 = 0
        ok = True
        while True:
            if q >= end:
                ok = False
                break
            c = buf[q]
            if c == 125:  # }
                q += 1
                break
            if c != 44 or q + 1 >= end or buf[q + 1] != _Q:  # , "
                ok = False
                break
            k0 = q + 2
            k1 = _string_end(buf, k0, end)
            if k1 < 0 or k1 + 1 >= end or buf[k1 + 1] != 58:  # :
                ok = False
                break
            v = k1 + 2
            klen = k1 - k0
            key = buf[k0]
            bit = 0
            nxt = -1
            if klen == 1:
                if key == 69:  # E
                    bit = _B_E
                    event_time, nxt = _int(buf, v, end)
                elif key == 84:  # T
                    bit = _B_T
                    stream_time, nxt = _int(buf, v, end)
                elif key == 115:  # s
                    bit = _B_s
                    if v < end and buf[v] == _Q:
                        s0 = v + 1
                        s1 = _string_end(buf, s0, end)
                        nxt = s1 + 1 if s1 >= 0 else -1
                elif kind == _K_AGG:
                    if key == 97:  # a
                        bit = _B_a
                        seq_id, nxt = _int(buf, v, end)
                    elif key == 112:  # p
                        bit = _B_p
                        price, nxt = _decimal(buf, v, end)
                    elif key == 113:  # q
                        bit = _B_q
                        qty, nxt = _decimal(buf, v, end)
                    elif key == 102:  # f
                        bit = _B_f
                        first_id, nxt = _int(buf, v, end)
                    elif key == 108:  # l
                        bit = _B_l
                        last_id, nxt = _int(buf, v, end)
                    elif key == 109:  # m
                        bit = _B_m
                        maker, nxt = _bool(buf, v, end)
                elif kind == _K_TRADE:
                    if key == 116:  # t
                        bit = _B_t
                        seq_id, nxt = _int(buf, v, end)
                    elif key == 112:
                        bit = _B_p
                        price, nxt = _decimal(buf, v, end)
                    elif key == 113:
                        bit = _B_q
                        qty, nxt = _decimal(buf, v, end)
                    elif key == 88:  # X
                        bit = _B_X
                        if v < end and buf[v] == _Q:
                            x1 = _string_end(buf, v + 1, end)
                            if x1 >= 0:
                                market = x1 - v - 1 == 6 and _match(buf, v + 1, x1, _MARKET) == x1
                                nxt = x1 + 1
                    elif key == 109:
                        bit = _B_m
                        maker, nxt = _bool(buf, v, end)
                elif kind == _K_BOOK:
                    if key == 117:  # u
                        bit = _B_u
                        seq_id, nxt = _int(buf, v, end)
                    elif key == 98:  # b
                        bit = _B_b
                        price, nxt = _decimal(buf, v, end)
                    elif key == 66:  # B
                        bit = _B_B
                        qty, nxt = _decimal(buf, v, end)
                    elif key == 97:  # a
                        bit = _B_a
                        ask, nxt = _decimal(buf, v, end)
                    elif key == 65:  # A
                        bit = _B_A
                        ask_qty, nxt = _decimal(buf, v, end)
                else:  # depthUpdate: only E and s matter; the rest must be well-formed
                    if key == 85:  # U
                        bit = _B_U
                        _, nxt = _int(buf, v, end)
                    elif key == 117:  # u
                        bit = _B_u
                        _, nxt = _int(buf, v, end)
                    elif key == 98:  # b
                        bit = _B_b | _B_a
                        nxt = _depth_sides(buf, v, end - 2 if combined else end - 1)
                        if nxt < 0:  # not the last two keys (or odd content): one side at a time
                            bit = _B_b
                            nxt = _pairs(buf, v, end)
                    elif key == 97:  # a
                        bit = _B_a
                        nxt = _pairs(buf, v, end)
            elif klen == 2 and kind == _K_DEPTH and key == 112 and buf[k0 + 1] == 117:  # pu
                bit = _B_pu
                _, nxt = _int(buf, v, end)
            if bit == 0 or nxt < 0 or seen & bit:
                ok = False
                break
            seen |= bit
            q = nxt
        if not ok:
            return i, n_out
        if combined:
            if q >= end or buf[q] != 125:
                return i, n_out
            q += 1
        if q != end:
            return i, n_out
        if kind == _K_AGG:
            full = _ALL_AGG
        elif kind == _K_TRADE:
            full = _ALL_TRADE
        elif kind == _K_BOOK:
            full = _ALL_BOOK
        else:
            full = _ALL_DEPTH
        if seen != full:
            return i, n_out

        # -- the firewall's checks, in its order (Firewall.check_agg_trade / check_trade / check_book_ticker)
        k = _symbol(table, lengths, buf, s0, s1)
        sym_index[i] = k
        sym_start[i] = s0
        sym_end[i] = s1
        if kind == _K_DEPTH:
            status[i] = _UNSUPPORTED
            continue
        if k < 0:
            status[i] = _UNKNOWN_SYMBOL
            continue
        recv_ns = recv[i]
        limit = (recv_ns // 1_000_000 if wall else now_ms) + skew_ms
        reason = 0
        if kind == _K_AGG:
            stream = STREAM_AGG
            if not price > 0.0:
                reason = _BAD_PRICE
            elif not qty >= 0.0:
                reason = _BAD_QUANTITY
            elif not (seq_id >= 0 and 0 <= first_id <= last_id):
                reason = _BAD_ID
        elif kind == _K_TRADE:
            stream = STREAM_TRADE
            if not market:
                reason = _UNSUPPORTED
            elif not price > 0.0:
                reason = _BAD_PRICE
            elif not qty >= 0.0:
                reason = _BAD_QUANTITY
            elif seq_id < 0:
                reason = _BAD_ID
        else:
            stream = STREAM_BOOK
            if not (price > 0.0 and ask > 0.0):
                reason = _BAD_PRICE
            elif not (qty >= 0.0 and ask_qty >= 0.0):
                reason = _BAD_QUANTITY
            elif price > ask:
                reason = _CROSSED
            elif seq_id < 0:
                reason = _BAD_ID
        if reason == 0:
            if not (_MIN_MS <= event_time <= limit and _MIN_MS <= stream_time <= limit):
                reason = _BAD_TIMESTAMP
            elif stream_time < state[stream, k, 1]:
                reason = _BACKWARDS
            elif seq_id <= state[stream, k, 0]:
                reason = _OUT_OF_SEQUENCE
        if reason != 0:
            status[i] = reason
            continue
        state[stream, k, 0] = seq_id
        state[stream, k, 1] = stream_time
        r = out[n_out]
        r.seq = 0
        r.flags = flags
        r.symbol_id = ring_ids[k]
        r.code0 = 0
        r.code1 = 0
        r.reserved = 0
        r.event_time_ms = event_time
        r.recv_time_ns = recv_ns
        r.f0 = price
        r.f1 = qty
        r.f4 = 0.0
        r.f5 = 0.0
        r.f6 = 0.0
        r.i4 = 0
        if kind == _K_BOOK:
            r.kind = _BOOK_TICKER
            r.f2 = ask
            r.f3 = ask_qty
            r.i0 = seq_id
            r.i1 = stream_time
            r.i2 = 0
            r.i3 = 0
        else:
            r.kind = _TRADE
            r.flags = flags | maker
            r.f2 = 0.0
            r.f3 = 0.0
            r.i0 = seq_id
            if kind == _K_AGG:
                r.i1 = first_id
                r.i2 = last_id
            else:
                r.i1 = seq_id
                r.i2 = seq_id
            r.i3 = stream_time
        n_out += 1
        status[i] = ACCEPTED
        last_recv[k] = recv_ns
        if first_accept[k] < 0:
            first_accept[k] = i
    return total, n_out


# --------------------------------------------------------------------------------------------------------------
# The driver: runs the kernel over a batch, hands FALLBACK frames to the per-frame path, keeps the firewall's
# counters and ordering state exactly as the per-frame path leaves them.

_REASON_NAMES: Final = ("", *fw.REASONS)


class FastPath:
    """Batch processing for one :class:`~aegis.feed.pipeline.FramePipeline` (built by it; see its batch methods).

    ``names``/``ring_ids``: the pipeline's symbols and their ring ids. ``firewall``: the pipeline's firewall; its
    ordering-state lists (``Firewall.ordering_state``) stay the single source of truth: they are copied into
    the kernel's arrays before each compiled run and back after it, so a FALLBACK frame handled in between by
    ``process_one`` sees (and moves) the same state the kernel does.
    """

    def __init__(
        self,
        firewall: fw.Firewall,
        ring_ids: dict[str, int],
        *,
        flags: int,
        wall: bool,
        wall_ns,
        writer,
        process_one,
        last_recv: dict[str, int],
        count_frames,
    ) -> None:
        self.names = list(ring_ids)
        encoded = [name.encode("utf-8") for name in self.names]
        width = max((len(b) for b in encoded), default=1) or 1
        self._table = np.zeros((len(encoded), width), np.uint8)
        self._lengths = np.zeros(len(encoded), np.int64)
        for k, b in enumerate(encoded):
            self._table[k, : len(b)] = np.frombuffer(b, np.uint8)
            self._lengths[k] = len(b) if b.isascii() else -1  # a non-ASCII name never matches (its frames fall back)
        self._ring_ids = np.array([ring_ids[name] for name in self.names], np.int64)
        self._lists = [firewall.ordering_state(stream) for stream in ("aggTrade", "trade", "bookTicker")]
        self._state = np.zeros((3, len(self.names), 2), np.int64)
        self._last_recv_arr = np.zeros(len(self.names), np.int64)
        self._first_accept = np.full(len(self.names), -1, np.int64)
        self._fw = firewall
        self._flags = flags
        self._wall = wall
        self._wall_ns = wall_ns
        self._skew = firewall.max_future_skew_ms
        self._write_batch = writer.write_batch
        self._process_one = process_one
        self._last_recv = last_recv
        self._count_frames = count_frames
        self._cap = 0
        self._grow(1024)

    def _grow(self, n: int) -> None:
        if n <= self._cap:
            return
        self._cap = max(n, 2 * self._cap)
        self._out = np.zeros(self._cap, rec.MARKET_RECORD)
        self._status = np.zeros(self._cap, np.uint8)
        self._sym_index = np.zeros(self._cap, np.int64)
        self._sym_start = np.zeros(self._cap, np.int64)
        self._sym_end = np.zeros(self._cap, np.int64)

    def run(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, recv: np.ndarray) -> None:
        """Process frames ``buf[starts[i]:ends[i]]`` received at ``recv[i]`` (int64 Unix/monotonic ns), in order."""
        n = starts.shape[0]
        if n == 0:
            return
        self._grow(n)
        out, status = self._out, self._status
        sym_index, sym_start, sym_end = self._sym_index, self._sym_start, self._sym_end
        state, lists, names = self._state, self._lists, self.names
        begin = 0
        while begin < n:
            for s, by_symbol in enumerate(lists):  # the firewall's lists → the kernel's arrays
                for k, name in enumerate(names):
                    pair = by_symbol[name]
                    state[s, k, 0] = pair[0]
                    state[s, k, 1] = pair[1]
            self._first_accept.fill(-1)
            now_ms = 0 if self._wall else self._wall_ns() // 1_000_000
            stop, n_out = run_frames(
                buf, starts, ends, recv, now_ms, self._wall, self._skew, self._flags, self._table, self._lengths,
                self._ring_ids, state, out, status, sym_index, sym_start, sym_end, self._last_recv_arr,
                self._first_accept, begin, 0,
            )  # fmt: skip
            if n_out:
                self._write_batch(out[:n_out])
            for s, by_symbol in enumerate(lists):  # … and back, into the same lists
                for k, name in enumerate(names):
                    pair = by_symbol[name]
                    pair[0] = int(state[s, k, 0])
                    pair[1] = int(state[s, k, 1])
            self._count_frames(stop - begin)
            if n_out < stop - begin:
                self._count_rejections(buf, begin, stop)
            if n_out:
                self._note_receive_times()
            if stop < n:  # the FALLBACK frame: the per-frame path decides it, in its place
                self._process_one(bytes(buf[starts[stop] : ends[stop]]), int(recv[stop]))
            begin = stop + 1

    def _count_rejections(self, buf: np.ndarray, begin: int, stop: int) -> None:
        codes = self._status[begin:stop]
        rejected = np.flatnonzero(codes)
        if rejected.size == 0:
            return
        codes = codes[rejected].astype(np.int64)
        symbols = self._sym_index[begin:stop][rejected]
        known = symbols >= 0
        reject = self._fw.reject
        if not known.all():
            starts = self._sym_start[begin:stop]
            ends = self._sym_end[begin:stop]
            for j in np.flatnonzero(~known).tolist():
                i = int(rejected[j])
                symbol = bytes(buf[starts[i] : ends[i]]).decode("ascii")
                reject(_REASON_NAMES[codes[j]], symbol)
        if known.any():
            nsym = len(self.names)
            keys, counts = np.unique(codes[known] * nsym + symbols[known], return_counts=True)
            reject_many = self._fw.reject_many
            for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
                code, k = divmod(key, nsym)
                reject_many(_REASON_NAMES[code], self.names[k], count)

    def _note_receive_times(self) -> None:
        first = self._first_accept
        accepted = np.flatnonzero(first >= 0)
        if accepted.size > 1:
            accepted = accepted[np.argsort(first[accepted], kind="stable")]  # dict order of first acceptance
        last_recv, names, values = self._last_recv, self.names, self._last_recv_arr
        for k in accepted.tolist():
            last_recv[names[k]] = int(values[k])


_warm = False


def warm_up() -> None:
    """Load (or, the first time on this machine, compile) the kernels on a tiny input, outside any timed region.

    The argument types are those :class:`FastPath` and ``FramePipeline.process_lines`` pass, so the real calls
    find the same compiled code (``cache=True`` keeps it on disk between processes).
    """
    global _warm
    if _warm:
        return
    data = b'1 {"e":"trade","E":1,"T":1,"s":"X","t":1,"p":"1.5","q":"1","X":"MARKET","m":true}\n'
    buf = np.frombuffer(data, np.uint8)
    starts, ends, recv = (np.zeros(2, np.int64) for _ in range(3))
    n, _ = split_lines(buf, np.flatnonzero(buf == 10), 0, starts, ends, recv)
    one = np.zeros(1, np.int64)
    run_frames(
        buf, starts[:n], ends[:n], recv[:n], 0, True, 0, 0, np.zeros((1, 1), np.uint8), one.copy(), one.copy(),
        np.zeros((3, 1, 2), np.int64), np.zeros(n, rec.MARKET_RECORD), np.zeros(n, np.uint8), one.copy(),
        one.copy(), one.copy(), one.copy(), one.copy(), 0, 0,
    )  # fmt: skip
    _warm = True
