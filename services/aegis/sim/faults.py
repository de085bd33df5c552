"""Malformed frames for fault injection: each kind turns a real frame into one a data firewall must reject.

Pure functions: a frame's stream and payload text in, the malformed text out (or None when the kind does not apply
to that frame, e.g. ``crossed_book`` on a trade). Injected frames are SYNTHETIC and sent in addition to the real
frame they were made from, never instead of it.
"""

from __future__ import annotations

import json
from decimal import Decimal

KINDS: tuple[str, ...] = (
    "truncated",
    "wrong_types",
    "negative_price",
    "nan",
    "crossed_book",
    "unknown_symbol",
    "time_backwards",
)

UNKNOWN_SYMBOL = "NOSUCHUSDT"
BACKWARDS_MS = 60_000


def _price_slot(data: dict) -> tuple[dict | list, str | int] | None:
    """Return (container, key) of the main price field of a payload, or None."""
    event = data.get("e")
    if event in ("trade", "aggTrade", "markPriceUpdate"):
        return data, "p"
    if event == "bookTicker" or ("b" in data and "a" in data and isinstance(data.get("b"), str)):
        return data, "b"
    if event == "kline":
        return data["k"], "c"
    if event == "depthUpdate":
        for side in ("b", "a"):
            if data.get(side):
                return data[side][0], 0
    return None


def applies(kind: str, data_text: str) -> bool:
    return malform_payload(kind, data_text) is not None


def malform_payload(kind: str, data_text: str) -> str | None:
    """Return the malformed payload text for ``kind``, or None if ``kind`` does not fit this payload."""
    if kind == "truncated":
        return data_text[: max(1, len(data_text) // 2)]
    data = json.loads(data_text)
    if not isinstance(data, dict):
        return None
    slot = _price_slot(data)
    if kind == "unknown_symbol":
        if "s" not in data:
            return None
        data["s"] = UNKNOWN_SYMBOL
        if isinstance(data.get("k"), dict):
            data["k"]["s"] = UNKNOWN_SYMBOL
    elif kind == "time_backwards":
        if "E" not in data:
            return None
        for key in ("E", "T"):
            if isinstance(data.get(key), int):
                data[key] -= BACKWARDS_MS
    elif kind == "crossed_book":
        if data.get("e") != "bookTicker":
            return None
        ask = Decimal(data["a"])
        spread = max(ask - Decimal(data["b"]), Decimal(1).scaleb(ask.as_tuple().exponent))  # type: ignore[arg-type]
        data["b"] = format(ask + spread, "f")  # best bid above best ask
    elif kind in ("wrong_types", "negative_price", "nan"):
        if slot is None:
            return None
        container, key = slot
        price = container[key]  # type: ignore[index]
        if kind == "wrong_types":
            container[key] = float(price)  # type: ignore[index]  # a JSON number where Binance sends a string
            if "E" in data:
                data["E"] = str(data["E"])
        elif kind == "negative_price":
            container[key] = "-" + str(price).lstrip("-")  # type: ignore[index]
        else:
            container[key] = "NaN"  # type: ignore[index]
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; expected one of {', '.join(KINDS)}")
    return json.dumps(data, separators=(",", ":"))


def wrap(stream: str, payload_text: str, combined: bool, kind: str) -> str:
    """Return the text to send: the payload, wrapped as a combined-stream frame when ``combined``.

    A truncated frame is cut after wrapping, so that on a combined stream the envelope itself is broken too.
    """
    if kind == "truncated":
        return payload_text if not combined else ('{"stream":"' + stream + '","data":' + payload_text)
    return ('{"stream":"' + stream + '","data":' + payload_text + "}") if combined else payload_text
