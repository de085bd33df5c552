"""Fixed-size market records carried by the feed → brain ring.

Every market event the feed publishes becomes one 128-byte ``MARKET_RECORD``. The layout is one numpy
structured dtype with a common header and *generic* kind-specific fields (``f0``…``f6`` float64, ``i0``…``i4``
int64). We chose generic fields over overlapping named fields because numpy copies, compares and views a dtype
without overlaps as plain bytes (fast, and the same on every path), and because one flat layout is easy to
fingerprint and to read from numba. The per-kind meaning of each generic field is fixed in this module by the
``Trade``, ``BookTicker``, ``MarkPrice``, ``Kline`` and ``Liquidation`` name maps, so code reads
``batch[Trade.price]`` rather than ``batch["f0"]``.

Byte layout (little-endian, 128 bytes, every field naturally aligned)::

    offset  field           type  meaning
    0       seq             u8    ring sequence number; set by the ring writer, written last
    8       kind            u1    TRADE=1, BOOK_TICKER=2, MARK_PRICE=3, KLINE=4, LIQUIDATION=5
    9       flags           u1    FLAG_* bits below
    10      symbol_id       u2    index into the ring's symbol table
    12      code0           u1    LIQUIDATION: order type (ORDER_TYPE_CODES)
    13      code1           u1    LIQUIDATION: order status (ORDER_STATUS_CODES)
    14      reserved        u2    zero
    16      event_time_ms   i8    exchange event time ("E"), Unix ms
    24      recv_time_ns    i8    local receive time, Unix ns (wall clock) of the feed host; replay: recorded
    32      f0 … f6         f8×7  kind-specific floats
    88      i0 … i4         i8×5  kind-specific integers

Per kind (``f0`` is always the kind's price and ``f1`` its quantity, so ``batch["f0"]`` is a usable price
column across kinds)::

    TRADE        f0 price  f1 qty  i0 agg_trade_id  i1 first_trade_id  i2 last_trade_id  i3 trade_time_ms
                 flags & FLAG_BUYER_IS_MAKER
    BOOK_TICKER  f0 bid_price  f1 bid_qty  f2 ask_price  f3 ask_qty  i0 update_id  i1 transaction_time_ms
    MARK_PRICE   f0 mark_price  f2 index_price  f3 estimated_settle_price  f4 funding_rate
                 i0 next_funding_time_ms   (f1 is 0: a mark price has no quantity)
    KLINE        f0 close  f1 base_volume  f2 open  f3 high  f4 low  f5 quote_volume  f6 taker_buy_base_volume
                 i0 start_time_ms  i1 close_time_ms  i2 number_of_trades  i3 interval_ms
                 flags & FLAG_KLINE_CLOSED
    LIQUIDATION  f0 price  f1 qty  f2 avg_price  f3 filled_qty  f4 last_filled_qty  i0 trade_time_ms
                 flags & FLAG_SELL (side), code0 order type, code1 order status

Prices and quantities are float64 here: these records feed analytics. Money in orders and accounts is
``Decimal`` elsewhere; convert at that boundary, never the other way round.

The ``pack_*`` builders return the record as ``bytes`` (with ``seq`` = 0), ready for
``RingWriter.write_bytes``; they cost one ``struct.pack`` call. The feed's hot path skips the ``bytes``: the
``*_FIELDS`` structs describe each kind's record after its ``seq`` word, with pad bytes for the fields the kind
leaves zero, and ``RingWriter.packed_writer(BOOK_TICKER_FIELDS)`` returns a function that packs those values
straight into the ring slot.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np

TRADE: Final = 1
BOOK_TICKER: Final = 2
MARK_PRICE: Final = 3
KLINE: Final = 4
LIQUIDATION: Final = 5

KIND_NAMES: Final[dict[int, str]] = {
    TRADE: "TRADE",
    BOOK_TICKER: "BOOK_TICKER",
    MARK_PRICE: "MARK_PRICE",
    KLINE: "KLINE",
    LIQUIDATION: "LIQUIDATION",
}

FLAG_BUYER_IS_MAKER: Final = 0x01  # TRADE: the buyer was the maker ("m": true), i.e. an aggressive sell
FLAG_KLINE_CLOSED: Final = 0x02  # KLINE: this is the final update of the bar ("x": true)
FLAG_SELL: Final = 0x04  # LIQUIDATION: side is SELL (a long was liquidated)
FLAG_REST: Final = 0x08  # KLINE: fetched over REST by the feed to fill a gap after a reconnect (always closed)
FLAG_REPLAY: Final = 0x80  # the record came from a replay source, not a live stream

ORDER_TYPE_CODES: Final[dict[str, int]] = {"LIMIT": 1, "MARKET": 2}
ORDER_STATUS_CODES: Final[dict[str, int]] = {
    "NEW": 1,
    "PARTIALLY_FILLED": 2,
    "FILLED": 3,
    "CANCELED": 4,
    "EXPIRED": 5,
}

_FLOAT_FIELDS = [(f"f{i}", "<f8") for i in range(7)]
_INT_FIELDS = [(f"i{i}", "<i8") for i in range(5)]

MARKET_RECORD: Final = np.dtype(
    [
        ("seq", "<u8"),
        ("kind", "u1"),
        ("flags", "u1"),
        ("symbol_id", "<u2"),
        ("code0", "u1"),
        ("code1", "u1"),
        ("reserved", "<u2"),
        ("event_time_ms", "<i8"),
        ("recv_time_ns", "<i8"),
        *_FLOAT_FIELDS,
        *_INT_FIELDS,
    ]
)
"""The feed → brain record: 128 bytes, layout in the module docstring."""

MARKET_RECORD_LAYOUT: Final = "aegis.market_record/1"
"""Layout name stored in the ring header beside the dtype fingerprint."""

assert MARKET_RECORD.itemsize == 128


class Trade:
    """Field names of an aggTrade inside ``MARKET_RECORD``."""

    price: Final = "f0"
    qty: Final = "f1"
    agg_trade_id: Final = "i0"
    first_trade_id: Final = "i1"
    last_trade_id: Final = "i2"
    trade_time_ms: Final = "i3"


class BookTicker:
    """Field names of a bookTicker inside ``MARKET_RECORD``."""

    bid_price: Final = "f0"
    bid_qty: Final = "f1"
    ask_price: Final = "f2"
    ask_qty: Final = "f3"
    update_id: Final = "i0"
    transaction_time_ms: Final = "i1"


class MarkPrice:
    """Field names of a markPrice update inside ``MARKET_RECORD``."""

    mark_price: Final = "f0"
    index_price: Final = "f2"
    estimated_settle_price: Final = "f3"
    funding_rate: Final = "f4"
    next_funding_time_ms: Final = "i0"


class Kline:
    """Field names of a kline update inside ``MARKET_RECORD``."""

    close: Final = "f0"
    base_volume: Final = "f1"
    open: Final = "f2"
    high: Final = "f3"
    low: Final = "f4"
    quote_volume: Final = "f5"
    taker_buy_base_volume: Final = "f6"
    start_time_ms: Final = "i0"
    close_time_ms: Final = "i1"
    number_of_trades: Final = "i2"
    interval_ms: Final = "i3"


class Liquidation:
    """Field names of a forceOrder (liquidation) inside ``MARKET_RECORD``."""

    price: Final = "f0"
    qty: Final = "f1"
    avg_price: Final = "f2"
    filled_qty: Final = "f3"
    last_filled_qty: Final = "f4"
    trade_time_ms: Final = "i0"
    order_type: Final = "code0"
    order_status: Final = "code1"


KIND_FIELDS: Final[dict[int, type]] = {
    TRADE: Trade,
    BOOK_TICKER: BookTicker,
    MARK_PRICE: MarkPrice,
    KLINE: Kline,
    LIQUIDATION: Liquidation,
}

# seq, kind, flags, symbol_id, code0, code1, reserved, event_time_ms, recv_time_ns, f0..f6, i0..i4
_RECORD = struct.Struct("<QBBHBBHqq7d5q")
assert _RECORD.size == MARKET_RECORD.itemsize

# Per kind, the record after its seq word as one struct whose pad bytes (``x``, packed as zeros) stand for the
# fields the kind leaves zero, so a record is packed from only the values it carries. Every one starts with
# kind, flags, symbol_id, event_time_ms, recv_time_ns; then the kind's values in the order given.
TRADE_FIELDS: Final = struct.Struct("<BBH4xqq2d40x4q8x")
"""TRADE after ``seq``: kind, flags, symbol_id, event_time_ms, recv_time_ns, price, qty, agg_trade_id,
first_trade_id, last_trade_id, trade_time_ms (``RingWriter.packed_writer(TRADE_FIELDS)`` publishes it)."""
BOOK_TICKER_FIELDS: Final = struct.Struct("<BBH4xqq4d24x2q24x")
"""BOOK_TICKER after ``seq``: kind, flags, symbol_id, event_time_ms, recv_time_ns, bid_price, bid_qty,
ask_price, ask_qty, update_id, transaction_time_ms."""
MARK_PRICE_FIELDS: Final = struct.Struct("<BBH4xqqd8x3d16xq32x")
"""MARK_PRICE after ``seq``: kind, flags, symbol_id, event_time_ms, recv_time_ns, mark_price, index_price,
estimated_settle_price, funding_rate, next_funding_time_ms."""
KLINE_FIELDS: Final = struct.Struct("<BBH4xqq7d4q8x")
"""KLINE after ``seq``: kind, flags, symbol_id, event_time_ms, recv_time_ns, close, base_volume, open, high,
low, quote_volume, taker_buy_base_volume, start_time_ms, close_time_ms, number_of_trades, interval_ms."""
LIQUIDATION_FIELDS: Final = struct.Struct("<BBHBB2xqq5d16xq32x")
"""LIQUIDATION after ``seq``: kind, flags, symbol_id, order type code, order status code, event_time_ms,
recv_time_ns, price, qty, avg_price, filled_qty, last_filled_qty, trade_time_ms."""

for _fields in (TRADE_FIELDS, BOOK_TICKER_FIELDS, MARK_PRICE_FIELDS, KLINE_FIELDS, LIQUIDATION_FIELDS):
    assert _fields.size == MARKET_RECORD.itemsize - 8, _fields.format


def whole_record(fields: struct.Struct) -> struct.Struct:
    """Return the struct of a whole record (``seq`` = 0 first) for one of the ``*_FIELDS`` structs."""
    return struct.Struct("<8x" + fields.format.lstrip("<"))


_TRADE = whole_record(TRADE_FIELDS).pack
_BOOK_TICKER = whole_record(BOOK_TICKER_FIELDS).pack
_MARK_PRICE = whole_record(MARK_PRICE_FIELDS).pack
_KLINE = whole_record(KLINE_FIELDS).pack
_LIQUIDATION = whole_record(LIQUIDATION_FIELDS).pack


def pack_trade(
    symbol_id: int,
    event_time_ms: int,
    recv_time_ns: int,
    price: float,
    qty: float,
    agg_trade_id: int,
    first_trade_id: int,
    last_trade_id: int,
    trade_time_ms: int,
    buyer_is_maker: bool,
    flags: int = 0,
) -> bytes:
    """Return an aggTrade as ``MARKET_RECORD`` bytes."""
    if buyer_is_maker:
        flags |= FLAG_BUYER_IS_MAKER
    return _TRADE(
        TRADE, flags, symbol_id, event_time_ms, recv_time_ns,
        price, qty, agg_trade_id, first_trade_id, last_trade_id, trade_time_ms,
    )  # fmt: skip


def pack_book_ticker(
    symbol_id: int,
    event_time_ms: int,
    recv_time_ns: int,
    update_id: int,
    bid_price: float,
    bid_qty: float,
    ask_price: float,
    ask_qty: float,
    transaction_time_ms: int,
    flags: int = 0,
) -> bytes:
    """Return a bookTicker as ``MARKET_RECORD`` bytes."""
    return _BOOK_TICKER(
        BOOK_TICKER, flags, symbol_id, event_time_ms, recv_time_ns,
        bid_price, bid_qty, ask_price, ask_qty, update_id, transaction_time_ms,
    )  # fmt: skip


def pack_mark_price(
    symbol_id: int,
    event_time_ms: int,
    recv_time_ns: int,
    mark_price: float,
    index_price: float,
    estimated_settle_price: float,
    funding_rate: float,
    next_funding_time_ms: int,
    flags: int = 0,
) -> bytes:
    """Return a markPrice update as ``MARKET_RECORD`` bytes."""
    return _MARK_PRICE(
        MARK_PRICE, flags, symbol_id, event_time_ms, recv_time_ns,
        mark_price, index_price, estimated_settle_price, funding_rate, next_funding_time_ms,
    )  # fmt: skip


def pack_kline(
    symbol_id: int,
    event_time_ms: int,
    recv_time_ns: int,
    start_time_ms: int,
    close_time_ms: int,
    interval_ms: int,
    open: float,
    high: float,
    low: float,
    close: float,
    base_volume: float,
    quote_volume: float,
    number_of_trades: int,
    taker_buy_base_volume: float,
    closed: bool,
    flags: int = 0,
) -> bytes:
    """Return a kline update as ``MARKET_RECORD`` bytes."""
    if closed:
        flags |= FLAG_KLINE_CLOSED
    return _KLINE(
        KLINE, flags, symbol_id, event_time_ms, recv_time_ns,
        close, base_volume, open, high, low, quote_volume, taker_buy_base_volume,
        start_time_ms, close_time_ms, number_of_trades, interval_ms,
    )  # fmt: skip


def pack_liquidation(
    symbol_id: int,
    event_time_ms: int,
    recv_time_ns: int,
    side: str,
    order_type: str,
    order_status: str,
    price: float,
    avg_price: float,
    qty: float,
    filled_qty: float,
    last_filled_qty: float,
    trade_time_ms: int,
    flags: int = 0,
) -> bytes:
    """Return a forceOrder (liquidation) as ``MARKET_RECORD`` bytes; ``side`` is ``"BUY"`` or ``"SELL"``."""
    if side == "SELL":
        flags |= FLAG_SELL
    elif side != "BUY":
        raise ValueError(f"liquidation side must be BUY or SELL, not {side!r}")
    return _LIQUIDATION(
        LIQUIDATION, flags, symbol_id, ORDER_TYPE_CODES[order_type], ORDER_STATUS_CODES[order_status],
        event_time_ms, recv_time_ns,
        price, qty, avg_price, filled_qty, last_filled_qty, trade_time_ms,
    )  # fmt: skip


def from_bytes(records: bytes | bytearray | memoryview) -> np.ndarray:
    """Return a read-only ``MARKET_RECORD`` array viewing ``records`` (a multiple of 128 bytes)."""
    return np.frombuffer(records, dtype=MARKET_RECORD)


def to_dict(record: np.void | bytes) -> dict[str, Any]:
    """Return one record as a dict with its kind's field names (for logs and tests, not hot paths)."""
    if isinstance(record, bytes | bytearray | memoryview):
        record = np.frombuffer(record, dtype=MARKET_RECORD)[0]
    kind = int(record["kind"])
    flags = int(record["flags"])
    out: dict[str, Any] = {
        "seq": int(record["seq"]),
        "kind": KIND_NAMES.get(kind, str(kind)),
        "flags": flags,
        "symbol_id": int(record["symbol_id"]),
        "event_time_ms": int(record["event_time_ms"]),
        "recv_time_ns": int(record["recv_time_ns"]),
    }
    names = KIND_FIELDS.get(kind)
    if names is None:
        return out
    for name, field in vars(names).items():
        if name.startswith("_"):
            continue
        value = record[field]
        out[name] = float(value) if field.startswith("f") else int(value)
    if kind == TRADE:
        out["buyer_is_maker"] = bool(flags & FLAG_BUYER_IS_MAKER)
    elif kind == KLINE:
        out["closed"] = bool(flags & FLAG_KLINE_CLOSED)
    elif kind == LIQUIDATION:
        out["side"] = "SELL" if flags & FLAG_SELL else "BUY"
        out["order_type"] = _name_of(ORDER_TYPE_CODES, out["order_type"])
        out["order_status"] = _name_of(ORDER_STATUS_CODES, out["order_status"])
    return out


def _name_of(codes: dict[str, int], code: int) -> str:
    for name, value in codes.items():
        if value == code:
            return name
    return str(code)
