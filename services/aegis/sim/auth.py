"""Signed-endpoint security, as Binance checks it: API key, HMAC-SHA256 signature, timestamp and recvWindow.

The signature covers the "total params": the raw query string followed by the raw request body, each without its
``signature`` parameter, with nothing in between (Binance's documented rule; :func:`aegis.exchange.binance.sign`
computes the same digest). The raw text is verified, not re-encoded parameters, so a client that encodes a value
differently from how it signed it is caught here as it would be on Binance.

Timestamps are checked against the simulator's clock (the one ``GET /fapi/v1/time`` serves, i.e. the replay clock):
a request more than 1 000 ms ahead of it, or older than ``recvWindow`` (default 5 000 ms, at most 60 000), gets
-1021 with one of Binance's two messages.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web

from aegis.exchange.binance import sign
from aegis.sim.errors import BinanceError

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
AHEAD_TOLERANCE_MS = 1000


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request that passed the checks: who sent it and its parameters (query and body merged, in order)."""

    api_key: str
    params: dict[str, str]


def strip_signature(raw: str) -> tuple[str, str | None]:
    """Return ``raw`` without its ``signature=`` parameter, and the signature (None when absent)."""
    if "signature=" not in raw:
        return raw, None
    kept, signature = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def api_key_of(request: web.Request, keys: dict[str, str]) -> str:
    """Return the request's API key, or raise -2014 (missing/malformed) or -2015 (unknown)."""
    key = request.headers.get(API_KEY_HEADER, "")
    if not key:
        raise BinanceError(401, -2014, "API-key format invalid.")
    if key not in keys:
        raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    return key


async def verify(request: web.Request, keys: dict[str, str], now_ms: int) -> SignedRequest:
    """Check a SIGNED request; raise :class:`BinanceError` the way Binance answers each failure."""
    key = api_key_of(request, keys)
    query = request.rel_url.raw_query_string
    body = (await request.read()).decode("utf-8", errors="replace") if request.can_read_body else ""
    query_unsigned, query_signature = strip_signature(query)
    body_unsigned, body_signature = strip_signature(body)
    params: dict[str, str] = {}
    for text in (query_unsigned, body_unsigned):
        for name, value in parse_qsl(text, keep_blank_values=True):
            params[name] = value
    timestamp = params.get("timestamp", "")
    if not timestamp.strip().isdigit():
        raise BinanceError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    signature = query_signature or body_signature
    if not signature:
        raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    expected = sign(keys[key], query_unsigned + body_unsigned)
    if not hmac.compare_digest(expected, signature.lower()):
        raise BinanceError(400, -1022, "Signature for this request is not valid.")
    recv_window_text = params.get("recvWindow", "")
    recv_window = DEFAULT_RECV_WINDOW_MS
    if recv_window_text:
        if not recv_window_text.isdigit():
            raise BinanceError(
                400, -1100, "Illegal characters found in parameter 'recvWindow'; legal range is '^[0-9]{1,20}$'."
            )
        recv_window = min(int(recv_window_text), MAX_RECV_WINDOW_MS)
    sent_ms = int(timestamp)
    if sent_ms >= now_ms + AHEAD_TOLERANCE_MS:
        raise BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - sent_ms > recv_window:
        raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return SignedRequest(key, params)
