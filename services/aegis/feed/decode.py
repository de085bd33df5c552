"""Decode Binance USDⓈ-M market-stream frames into typed events with msgspec.

A frame is what one websocket message carries: either a *combined-stream* frame
``{"stream": "btcusdt@aggTrade", "data": {...}}`` or a bare event object ``{"e": "aggTrade", ...}`` (a raw
``/ws/<stream>`` connection). ``data`` is one event, or an array of events for ``!markPrice@arr``.

Binance sends prices and quantities as JSON strings (``"p": "61800.20"``). The decoders run in msgspec's lax mode
(``strict=False``), which turns such strings into ``float`` (and numeric strings into ``int``) while parsing, so
no Python ``float()`` call is spent per field. Lax mode also turns ``"NaN"`` and ``"Infinity"`` into floats: the
firewall (``aegis.feed.firewall``) rejects those, decoding does not.

The event structs form a tagged union on ``"e"``, so one typed decoder call parses and validates a whole frame.
When that fails, :func:`decode_frame` re-reads the frame generically to say *why*: not JSON
(``malformed_json``), JSON of the wrong shape (``malformed_frame``), an event type we do not know
(``unknown_event``) or one we know but do not publish (``unsupported_event``). It never raises, whatever the bytes.

Field names are Binance's one-letter keys (``E`` event time, ``T`` trade/transaction time, ``s`` symbol …); each
struct's docstring maps them to their meaning. Fields the ring does not carry are not declared, so msgspec skips
them without building Python objects.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

__all__ = [
    "EVENT_TYPES",
    "AggTrade",
    "BookTicker",
    "DepthUpdate",
    "Event",
    "ForceOrder",
    "ForceOrderDetail",
    "KlineBar",
    "KlineUpdate",
    "MarkPriceUpdate",
    "Rejected",
    "Trade",
    "decode_combined",
    "decode_frame",
]


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    """``<symbol>@aggTrade``: ``E`` event time ms, ``s`` symbol, ``a`` aggregate trade id, ``p`` price, ``q``
    quantity, ``f``/``l`` first/last trade id, ``T`` trade time ms, ``m`` buyer is the maker."""

    E: int
    s: str
    a: int
    p: float
    q: float
    f: int
    l: int  # noqa: E741 - Binance's key
    T: int
    m: bool


class Trade(msgspec.Struct, tag_field="e", tag="trade", gc=False):
    """``<symbol>@trade`` (what the hftbacktest recordings hold): ``t`` trade id, ``X`` order type
    (``"MARKET"`` for ordinary trades), other keys as :class:`AggTrade`."""

    E: int
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool
    X: str


class BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker", gc=False):
    """``<symbol>@bookTicker``: ``u`` order-book update id, ``b``/``B`` best bid price/qty, ``a``/``A`` best ask
    price/qty, ``T`` transaction time ms, ``E`` event time ms."""

    E: int
    s: str
    u: int
    b: float
    B: float
    a: float
    A: float
    T: int


class MarkPriceUpdate(msgspec.Struct, tag_field="e", tag="markPriceUpdate", gc=False):
    """``<symbol>@markPrice@1s`` and the elements of ``!markPrice@arr``: ``p`` mark price, ``i`` index price,
    ``P`` estimated settle price, ``r`` funding rate (``""`` for delivery contracts), ``T`` next funding time ms."""

    E: int
    s: str
    p: float
    i: float
    P: float
    r: str
    T: int


class KlineBar(msgspec.Struct, gc=False):
    """The ``k`` object of a kline event: ``t``/``T`` bar start/close time ms, ``i`` interval (``"1m"``),
    ``o h l c`` prices, ``v`` base volume, ``n`` number of trades, ``x`` bar closed, ``q`` quote volume, ``V``
    taker buy base volume."""

    t: int
    T: int
    i: str
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - Binance's key
    v: float
    n: int
    x: bool
    q: float
    V: float


class KlineUpdate(msgspec.Struct, tag_field="e", tag="kline", gc=False):
    """``<symbol>@kline_<interval>``: ``E`` event time ms, ``s`` symbol, ``k`` the bar so far."""

    E: int
    s: str
    k: KlineBar


class ForceOrderDetail(msgspec.Struct, gc=False):
    """The ``o`` object of a liquidation: ``S`` side, ``o`` order type, ``X`` status, ``q`` original quantity,
    ``p`` price, ``ap`` average price, ``l`` last filled quantity, ``z`` filled accumulated quantity, ``T`` trade
    time ms."""

    s: str
    S: Literal["BUY", "SELL"]
    o: Literal["LIMIT", "MARKET"]
    X: Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"]
    q: float
    p: float
    ap: float
    l: float  # noqa: E741 - Binance's key
    z: float
    T: int


class ForceOrder(msgspec.Struct, tag_field="e", tag="forceOrder", gc=False):
    """``<symbol>@forceOrder`` / ``!forceOrder@arr``: ``E`` event time ms, ``o`` the liquidation order."""

    E: int
    o: ForceOrderDetail


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", gc=False):
    """``<symbol>@depth…``: recognised so it can be counted, but not published (the ring has no depth kind)."""

    E: int
    s: str


class Rejected(msgspec.Struct, frozen=True, gc=False):
    """Why a frame (or one element of an array frame) yields no event: a firewall reason and what we know."""

    reason: str
    symbol: str = ""
    detail: str = ""


Event = AggTrade | Trade | BookTicker | MarkPriceUpdate | KlineUpdate | ForceOrder | DepthUpdate
"""Every event type the decoder knows."""

EVENT_TYPES: Final[dict[str, type]] = {
    "aggTrade": AggTrade,
    "trade": Trade,
    "bookTicker": BookTicker,
    "markPriceUpdate": MarkPriceUpdate,
    "kline": KlineUpdate,
    "forceOrder": ForceOrder,
    "depthUpdate": DepthUpdate,
}

_Payload = Event | list[MarkPriceUpdate]


class _Combined(msgspec.Struct, gc=False):
    data: _Payload  # "stream" is not read: it would cost a string per frame and says nothing "data" does not


_combined = msgspec.json.Decoder(_Combined, strict=False).decode
decode_combined: Final = _combined
"""The fast path alone: decode a well-formed combined-stream frame (its ``.data`` is the payload); raises on
anything else. Hot loops call it inside ``try`` and fall back to :func:`decode_frame`, which never raises."""
_bare = msgspec.json.Decoder(_Payload, strict=False).decode
_any = msgspec.json.decode
_EMPTY_ARRAY: Final = Rejected("malformed_frame", "", "empty event array")


def decode_frame(frame: bytes) -> Event | list[Event | Rejected] | Rejected:
    """Return the event(s) of one websocket frame, or a :class:`Rejected` saying why there are none.

    An array frame (``!markPrice@arr``) returns a list with one entry per element; an element that does not
    decode becomes a :class:`Rejected` in its place, so every element is accounted for. Never raises.
    """
    try:
        payload = _combined(frame).data
    except Exception:  # any failure (bad JSON, bad UTF-8, wrong types, a non-bytes input) ends in _diagnose
        try:
            payload = _bare(frame)
        except Exception:
            return _diagnose(frame)
    if payload == []:
        return _EMPTY_ARRAY
    return payload  # type: ignore[return-value]


def _diagnose(frame: Any) -> Event | list[Event | Rejected] | Rejected:
    """The slow path: find out why the typed decoders refused ``frame`` (or decode what they could not)."""
    try:
        obj = _any(frame)
    except Exception as exc:
        return Rejected("malformed_json", "", _short(exc))
    if type(obj) is dict and "data" in obj and "e" not in obj:
        obj = obj["data"]
    if type(obj) is list:
        if not obj:
            return _EMPTY_ARRAY
        return [_convert(element) for element in obj]
    return _convert(obj)


def _convert(obj: Any) -> Event | Rejected:
    if type(obj) is not dict:
        return Rejected("malformed_frame", "", f"expected an event object, got {type(obj).__name__}")
    kind = obj.get("e")
    symbol = _symbol_of(obj)
    if kind is None:
        if "lastUpdateId" in obj:  # a REST depth snapshot (the hftbacktest recordings hold one each)
            return Rejected("unsupported_event", symbol, "depth snapshot")
        return Rejected("unknown_event", symbol, "no event type `e`")
    event_type = EVENT_TYPES.get(kind) if type(kind) is str else None
    if event_type is None:
        return Rejected("unknown_event", symbol, f"event type {str(kind)[:40]!r}")
    try:
        return msgspec.convert(obj, event_type, strict=False)  # type: ignore[no-any-return]
    except Exception as exc:
        return Rejected("malformed_frame", symbol, _short(exc))


def _symbol_of(obj: Any) -> str:
    """Best-effort symbol of an undecodable event, for counting by symbol (bounded length)."""
    if type(obj) is not dict:
        return ""
    symbol = obj.get("s", obj.get("symbol"))  # REST payloads (open interest) spell it out
    if symbol is None and type(obj.get("o")) is dict:
        symbol = obj["o"].get("s")  # forceOrder keeps the symbol in the order object
    return symbol[:24] if type(symbol) is str else ""


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
