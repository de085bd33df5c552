"""Binance USDⓈ-M REST request signing.

A SIGNED endpoint takes ``signature`` = hex HMAC-SHA256 of the "total params" keyed with the API secret. Binance
defines the total params as the query string concatenated with the request body, with nothing in between (no
``&`` at the join). Only signing lives here for now; the HTTP client comes later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from decimal import Decimal
from urllib.parse import quote

from aegis.errors import ValidationError


def sign(secret: str, payload: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret``, as Binance expects.

    The payload is signed byte for byte (UTF-8): Binance's third documented example only reproduces with the
    stray space it prints in ``timestamp= 1591702613943``, which shows that nothing is normalised.
    """
    if not isinstance(secret, str) or not secret:
        raise ValidationError("secret", "must be a non-empty string")
    if not isinstance(payload, str):
        raise ValidationError("payload", f"must be a string, got {type(payload).__name__}")
    return hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()


def _param_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise ValidationError(key, f"must be a Decimal, int or string, not the float {value!r}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValidationError(key, f"must be finite, got {value}")
        # Plain notation: Binance refuses exponents such as 1E-7.
        return format(value, "f")
    return str(value)


def encode_params(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """Return ``key=value&...`` in the given order, values percent-encoded, ``None`` values left out.

    Decimals are written in plain notation (``0.0000001``, never ``1E-7``); booleans as ``true``/``false``.
    """
    items = params.items() if isinstance(params, Mapping) else params
    parts = []
    for key, value in items:
        if value is None:
            continue
        parts.append(f"{quote(str(key), safe='')}={quote(_param_value(str(key), value), safe='')}")
    return "&".join(parts)


def total_params(query_string: str = "", body: str = "") -> str:
    """Return what Binance signs: the query string concatenated with the request body, no separator between."""
    return query_string + body


def signed_query(secret: str, params: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """Return ``params`` encoded with ``&signature=<hex>`` appended (all parameters in the query string)."""
    query = encode_params(params)
    return f"{query}&signature={sign(secret, query)}" if query else f"signature={sign(secret, query)}"
