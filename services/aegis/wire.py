"""Small conversions between domain values and ``aegis.v1`` messages, shared by every servicer.

Decimals travel as plain strings (never exponent notation: ``format(d, "f")``), times as
``google.protobuf.Timestamp`` in UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from google.protobuf import timestamp_pb2

from aegis.errors import ValidationError


def dec_text(value: Decimal | None) -> str:
    """Return a decimal as a plain string (``""`` for None)."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def timestamp(when: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    """Return ``when`` as a Timestamp (None for None)."""
    if when is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when.astimezone(dt.UTC))
    return stamp


def when(message: Any, name: str) -> dt.datetime | None:
    """Return the Timestamp field ``name`` of ``message`` as an aware UTC datetime, or None when unset."""
    if not message.HasField(name):
        return None
    try:
        return getattr(message, name).ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise ValidationError(name, "is not a valid time (years 1 to 9999)") from None
