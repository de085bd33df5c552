"""How float64 market values become ``Decimal`` (PostgreSQL ``NUMERIC``, proto decimal strings).

Prices arrive from Binance as decimal strings, are parsed once into float64 for analytics, and every candle price
(open, high, low, close) is one of those parsed values, never the result of arithmetic. Python's ``repr`` of a
float is the shortest decimal string that reads back as the same float, and for the at most 15 significant digits
Binance sends that string is the one Binance sent: ``Decimal(repr(61800.3)) == Decimal("61800.3")`` exactly. So
prices use :func:`price_decimal` and come back out of PostgreSQL equal to the exchange's text.

Volumes are sums of many float quantities and carry binary rounding noise (``0.006 + 0.012`` is
``0.018000000000000002``). Binance quotes no USD-M quantity or notional with more than 8 decimals, so
:func:`volume_decimal` rounds to 8 decimals before the same ``repr`` step: the noise goes, every digit the exchange
could have sent stays. A volume taken straight from an exchange kline is unchanged by that rounding.
"""

from __future__ import annotations

import math
from decimal import Decimal

VOLUME_DECIMALS = 8


def price_decimal(value: float) -> Decimal:
    """Return the exact decimal the float64 price ``value`` was parsed from; raise ValueError for NaN/inf."""
    if not math.isfinite(value):
        raise ValueError(f"price {value!r} is not finite")
    return Decimal(repr(float(value)))


def volume_decimal(value: float) -> Decimal:
    """Return the float64 volume ``value`` as a decimal rounded to 8 places (float summation noise removed)."""
    if not math.isfinite(value):
        raise ValueError(f"volume {value!r} is not finite")
    rounded = round(float(value), VOLUME_DECIMALS)
    return Decimal(repr(rounded + 0.0))  # + 0.0 turns -0.0 into 0.0


def decimal_text(value: Decimal) -> str:
    """Return ``value`` as plain decimal text (no exponent): the form of the API's decimal strings."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def price_text(value: float) -> str:
    """Return a float64 price as the API's decimal string; empty when unknown (NaN)."""
    return "" if not math.isfinite(value) else decimal_text(price_decimal(value))


def volume_text(value: float) -> str:
    return decimal_text(volume_decimal(value))
