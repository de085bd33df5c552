"""Validation of every closed trade before it may teach anything (the seeds' VirtualDataValidator, made exact).

"Corrupt data is worse than no data": a trade is refused, and counted under one reason, when

* its features are not the model's (``MISSING_FEATURES``, ``SCHEMA_MISMATCH``: another feature schema version,
  ``FEATURE_COUNT``, ``NON_FINITE_FEATURES``);
* its numbers are not numbers (``NAN_PNL``: a PnL, fee or funding that is NaN or infinite; ``BAD_QUANTITY``:
  not positive; ``BAD_PRICE``: an entry or exit price that is not positive);
* its times are impossible (``BAD_TIMESTAMPS``: not opened before it closed; ``FUTURE_TIMESTAMP``: closed after
  now plus the allowed clock skew);
* its PnL does not add up, in exact ``Decimal`` arithmetic, to the last of USDT's 8 decimals
  (``GROSS_PNL_MISMATCH``: gross ≠ side × quantity × (exit − entry), or ≠ −margin for a liquidation, where the
  isolated margin is what is lost; ``REALISED_PNL_MISMATCH``: realised ≠ gross − fees + funding, with fees
  positive when paid and funding positive when received, the virtual account's convention);
* its prices are not prices the market traded (``MISSING_CANDLE``: no recorded 1m candle for the minute it opened
  or closed in, so the price cannot be checked; ``ENTRY_PRICE_OUTSIDE_CANDLE`` / ``EXIT_PRICE_OUTSIDE_CANDLE``:
  outside that minute's [low, high] widened by ``price_tolerance_pct`` — slippage and the moment a fill is stamped
  can put an honest price a little outside).

The checks run in that order and the first failure names the reason, so the counts add up to the refused trades.
Everything here is pure: the caller reads the trades and candles and passes the clock's ``now``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

MONEY = Decimal("1e-8")
"""USDT's precision on Binance: PnL identities must hold to this."""

REASONS: tuple[str, ...] = (
    "MISSING_FEATURES",
    "SCHEMA_MISMATCH",
    "FEATURE_COUNT",
    "NON_FINITE_FEATURES",
    "NAN_PNL",
    "BAD_QUANTITY",
    "BAD_PRICE",
    "BAD_TIMESTAMPS",
    "FUTURE_TIMESTAMP",
    "GROSS_PNL_MISMATCH",
    "REALISED_PNL_MISMATCH",
    "MISSING_CANDLE",
    "ENTRY_PRICE_OUTSIDE_CANDLE",
    "EXIT_PRICE_OUTSIDE_CANDLE",
)
"""Every reason a trade can be refused for, in the order the checks run."""

SIDES = {"BUY": 1, "SELL": -1}


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One row of ``trades`` as the trainer reads it."""

    trade_id: str
    account_id: str
    symbol: str
    side: str
    """'BUY' (long) or 'SELL' (short)."""
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    margin: Decimal
    opened_at: dt.datetime
    closed_at: dt.datetime
    close_reason: str
    gross_pnl: Decimal
    fees: Decimal
    """Positive = paid."""
    funding: Decimal
    """Positive = received."""
    realised_pnl: Decimal
    reward_score: int
    predicted_return_pct: float | None
    """What the signal predicted (the rule estimate or the model of the time): the baseline predictor."""
    model_version: str | None
    feature_schema_version: int | None
    features: tuple[float, ...] | None

    @property
    def sign(self) -> int:
        return SIDES.get(self.side, 0)

    def return_pct(self) -> float:
        """Realised PnL on the entry notional, percent points: what the model predicts (net of fees)."""
        return float(self.realised_pnl * 100 / (self.quantity * self.entry_price))


@dataclass(frozen=True, slots=True)
class MinuteRange:
    """Low and high of one recorded 1m candle."""

    low: Decimal
    high: Decimal


CandleKey = tuple[str, dt.datetime]
"""(symbol, open time of the minute)."""


def minute_of(when: dt.datetime) -> dt.datetime:
    """Return the open time of the 1m candle ``when`` falls in."""
    return when.replace(second=0, microsecond=0)


def candle_keys(trades: Sequence[ClosedTrade]) -> set[CandleKey]:
    """Return the candles the price checks of ``trades`` need."""
    out: set[CandleKey] = set()
    for t in trades:
        out.add((t.symbol, minute_of(t.opened_at)))
        out.add((t.symbol, minute_of(t.closed_at)))
    return out


@dataclass(frozen=True, slots=True)
class Rules:
    feature_schema_version: int
    feature_count: int
    price_tolerance_pct: float = 0.2
    clock_skew_s: float = 5.0


def _finite(*values: Decimal) -> bool:
    return all(v is not None and v.is_finite() for v in values)


def _inside(price: Decimal, candle: MinuteRange, tolerance: Decimal) -> bool:
    return candle.low * (1 - tolerance) <= price <= candle.high * (1 + tolerance)


def refusal(trade: ClosedTrade, candles: Mapping[CandleKey, MinuteRange], now: dt.datetime, rules: Rules) -> str | None:
    """Return why ``trade`` must not be learnt from (the first failing check), or None when it is valid."""
    if trade.features is None or trade.feature_schema_version is None:
        return "MISSING_FEATURES"
    if trade.feature_schema_version != rules.feature_schema_version:
        return "SCHEMA_MISMATCH"
    if len(trade.features) != rules.feature_count:
        return "FEATURE_COUNT"
    if not all(math.isfinite(v) for v in trade.features):
        return "NON_FINITE_FEATURES"
    if not _finite(trade.gross_pnl, trade.fees, trade.funding, trade.realised_pnl, trade.margin):
        return "NAN_PNL"
    if not _finite(trade.quantity) or trade.quantity <= 0:
        return "BAD_QUANTITY"
    if not _finite(trade.entry_price, trade.exit_price) or trade.entry_price <= 0 or trade.exit_price <= 0:
        return "BAD_PRICE"
    if trade.sign == 0:
        return "BAD_QUANTITY"  # an unknown side cannot be signed; the table's CHECK makes this unreachable
    if trade.opened_at >= trade.closed_at:
        return "BAD_TIMESTAMPS"
    if trade.closed_at > now + dt.timedelta(seconds=rules.clock_skew_s):
        return "FUTURE_TIMESTAMP"
    if trade.close_reason == "LIQUIDATED":
        gross = -trade.margin
    else:
        gross = trade.sign * trade.quantity * (trade.exit_price - trade.entry_price)
    if abs(gross - trade.gross_pnl) > MONEY:
        return "GROSS_PNL_MISMATCH"
    if abs(trade.gross_pnl - trade.fees + trade.funding - trade.realised_pnl) > MONEY:
        return "REALISED_PNL_MISMATCH"
    entry = candles.get((trade.symbol, minute_of(trade.opened_at)))
    exit_ = candles.get((trade.symbol, minute_of(trade.closed_at)))
    if entry is None or exit_ is None:
        return "MISSING_CANDLE"
    tolerance = Decimal(repr(rules.price_tolerance_pct)) / 100
    if not _inside(trade.entry_price, entry, tolerance):
        return "ENTRY_PRICE_OUTSIDE_CANDLE"
    if trade.close_reason != "LIQUIDATED" and not _inside(trade.exit_price, exit_, tolerance):
        # a liquidation's exit price is the computed liquidation price, not a traded one
        return "EXIT_PRICE_OUTSIDE_CANDLE"
    return None


@dataclass(frozen=True, slots=True)
class ValidationResult:
    valid: tuple[ClosedTrade, ...]
    invalid_by_reason: Mapping[str, int]
    refused: Mapping[str, str]
    """trade_id -> reason."""

    @property
    def total(self) -> int:
        return len(self.valid) + len(self.refused)


def validate(
    trades: Sequence[ClosedTrade], candles: Mapping[CandleKey, MinuteRange], now: dt.datetime, rules: Rules
) -> ValidationResult:
    """Split ``trades`` into valid ones (in the given order) and refused ones counted by reason."""
    valid: list[ClosedTrade] = []
    refused: dict[str, str] = {}
    for trade in trades:
        reason = refusal(trade, candles, now, rules)
        if reason is None:
            valid.append(trade)
        else:
            refused[trade.trade_id] = reason
    counts = Counter(refused.values())
    return ValidationResult(tuple(valid), {r: counts[r] for r in REASONS if counts[r]}, refused)
