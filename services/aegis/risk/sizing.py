"""Equity and position sizing: how much to trade, from total equity, in exact ``Decimal`` arithmetic.

This module also holds the small vocabulary the other risk modules share (reason codes, sides, account kinds,
open positions), so that :mod:`aegis.risk.leverage`, :mod:`aegis.risk.rotation`, :mod:`aegis.risk.protections`
and :mod:`aegis.risk.engine` depend on it and not on each other. Formulas and worked examples: docs/risk.md.

Sizing methods (all return an unrounded quantity; the engine rounds it down to the step grid):

- FIXED_FRACTION: ``notional = equity * fraction``; ``quantity = notional / entry``.
- FIXED_RISK: ``quantity = equity * risk_pct / 100 / per_unit_loss`` where ``per_unit_loss = |entry - stop|``
  plus, when fees are configured, ``fee_rate * (entry + stop)`` (taker fee on the way in and on the way out).
- ATR: FIXED_RISK with the stop ``atr_stop_multiple * ATR`` away from the entry instead of the signal's sl_pct.
- KELLY: Kelly fraction of equity to risk, from the predicted return and the win rate, scaled by confidence and
  by the fraction of Kelly configured, capped, spent over a stop no tighter than ``atr_stop_multiple * ATR``.
- FIXED_NOTIONAL: ``quantity = fixed_notional / entry``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from aegis.errors import ValidationError
from aegis.exchange.rules import Side, SymbolRules, to_decimal

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


# --------------------------------------------------------------------------------------------- shared vocabulary


class ReasonCode(StrEnum):
    """Why a signal was refused or what was adjusted; ``aegis.v1.RiskReasonCode`` is ``RISK_REASON_CODE_<value>``."""

    PRICE_FILTER = "PRICE_FILTER"
    LOT_SIZE = "LOT_SIZE"
    MARKET_LOT_SIZE = "MARKET_LOT_SIZE"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    PERCENT_PRICE = "PERCENT_PRICE"
    MAX_NUM_ORDERS = "MAX_NUM_ORDERS"
    SYMBOL_NOT_TRADING = "SYMBOL_NOT_TRADING"
    LEVERAGE_CLAMPED = "LEVERAGE_CLAMPED"
    QUANTITY_REDUCED = "QUANTITY_REDUCED"
    QUANTITY_TOO_SMALL = "QUANTITY_TOO_SMALL"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    POSITION_EXISTS = "POSITION_EXISTS"
    MAX_POSITIONS = "MAX_POSITIONS"
    ROTATION_REPLACE = "ROTATION_REPLACE"
    MAX_OPEN_NOTIONAL = "MAX_OPEN_NOTIONAL"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    COOLDOWN = "COOLDOWN"
    HALTED = "HALTED"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    LOW_EXPECTED_RETURN = "LOW_EXPECTED_RETURN"
    STALE_SIGNAL = "STALE_SIGNAL"
    STALE_PRICE = "STALE_PRICE"
    INVALID_SIGNAL = "INVALID_SIGNAL"

    @property
    def is_adjustment(self) -> bool:
        """True for codes that change the order without refusing it."""
        return self in ADJUSTMENTS

    @property
    def proto_name(self) -> str:
        """The name of the matching ``aegis.v1.RiskReasonCode`` value."""
        return f"RISK_REASON_CODE_{self.value}"


ADJUSTMENTS = frozenset({ReasonCode.LEVERAGE_CLAMPED, ReasonCode.QUANTITY_REDUCED, ReasonCode.ROTATION_REPLACE})
"""Reason codes that adjust an approved order; every other code refuses it."""


@dataclass(frozen=True, slots=True)
class Reason:
    """A machine-readable code with one plain-English sentence (``aegis.v1.Reason``)."""

    code: ReasonCode
    message: str


class PositionSide(StrEnum):
    """Direction of a position or trade idea: long profits when the price rises."""

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def entry_side(self) -> Side:
        """Order side that opens the position."""
        return Side.BUY if self is PositionSide.LONG else Side.SELL

    @property
    def exit_side(self) -> Side:
        """Order side that closes it (stop-loss and take-profit orders)."""
        return Side.SELL if self is PositionSide.LONG else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for long, -1 for short: PnL = sign * quantity * (exit - entry)."""
        return 1 if self is PositionSide.LONG else -1


class AccountKind(StrEnum):
    """Kind of account, which is also the rule set it trades under."""

    LEARNING = "LEARNING"
    PAPER = "PAPER"
    LIVE = "LIVE"


class SizingMethod(StrEnum):
    """How the quantity is computed (see the module docstring)."""

    FIXED_FRACTION = "FIXED_FRACTION"
    FIXED_RISK = "FIXED_RISK"
    ATR = "ATR"
    KELLY = "KELLY"
    FIXED_NOTIONAL = "FIXED_NOTIONAL"


def parse_enum(enum: type[StrEnum], field_name: str, value: Any) -> Any:
    """Return ``value`` as a member of ``enum`` (by value, case-insensitive) or raise :class:`ValidationError`."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).upper())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ValidationError(field_name, f"must be one of {allowed}; got {value!r}") from None


def money(field_name: str, value: Any, *, positive: bool = False, non_negative: bool = False) -> Decimal:
    """Return a money/price/quantity value as ``Decimal`` (floats refused), checking its sign if asked."""
    result = to_decimal(field_name, value)
    if positive and result <= 0:
        raise ValidationError(field_name, f"must be greater than 0, got {result}")
    if non_negative and result < 0:
        raise ValidationError(field_name, f"must not be negative, got {result}")
    return result


def ratio(field_name: str, value: Any, *, lo: Decimal | None = None, hi: Decimal | None = None) -> Decimal:
    """Return a ratio or percentage (floats accepted via their repr) as ``Decimal``, within [lo, hi] if given."""
    result = to_decimal(field_name, value, allow_float=True)
    if lo is not None and result < lo:
        raise ValidationError(field_name, f"must be at least {lo}, got {result}")
    if hi is not None and result > hi:
        raise ValidationError(field_name, f"must be at most {hi}, got {result}")
    return result


def aware(field_name: str, value: Any) -> datetime:
    """Return ``value`` if it is a timezone-aware datetime, else raise :class:`ValidationError`."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field_name, f"must be a timezone-aware datetime, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """An open position as risk sees it (a subset of ``aegis.v1.Position``).

    ``initial_margin`` defaults to ``quantity * entry_price / leverage``; unrealised PnL is computed at
    ``mark_price``, as Binance does.
    """

    position_id: str
    symbol: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    mark_price: Decimal
    leverage: int
    opened_time: datetime
    confidence: Decimal = ZERO
    initial_margin: Decimal | None = None

    def __post_init__(self) -> None:
        where = f"positions[{self.position_id}]"
        if not self.position_id:
            raise ValidationError("positions[].position_id", "must not be empty")
        object.__setattr__(self, "side", parse_enum(PositionSide, f"{where}.side", self.side))
        object.__setattr__(self, "quantity", money(f"{where}.quantity", self.quantity, positive=True))
        object.__setattr__(self, "entry_price", money(f"{where}.entry_price", self.entry_price, positive=True))
        object.__setattr__(self, "mark_price", money(f"{where}.mark_price", self.mark_price, positive=True))
        if isinstance(self.leverage, bool) or not isinstance(self.leverage, int) or not 1 <= self.leverage <= 125:
            raise ValidationError(f"{where}.leverage", f"must be an integer from 1 to 125, got {self.leverage!r}")
        aware(f"{where}.opened_time", self.opened_time)
        object.__setattr__(self, "confidence", ratio(f"{where}.confidence", self.confidence, lo=ZERO, hi=ONE))
        if self.initial_margin is not None:
            margin = money(f"{where}.initial_margin", self.initial_margin, non_negative=True)
            object.__setattr__(self, "initial_margin", margin)

    @property
    def notional(self) -> Decimal:
        """``quantity * mark_price`` (always positive)."""
        return self.quantity * self.mark_price

    @property
    def unrealised_pnl(self) -> Decimal:
        """PnL if closed at the mark price, before fees."""
        return self.side.sign * self.quantity * (self.mark_price - self.entry_price)

    @property
    def margin(self) -> Decimal:
        """Initial margin locked by the position."""
        if self.initial_margin is not None:
            return self.initial_margin
        return self.quantity * self.entry_price / self.leverage

    @property
    def pnl_pct_of_margin(self) -> Decimal:
        """Unrealised PnL as percent of the margin (the return on margin, "ROE")."""
        margin = self.margin
        return self.unrealised_pnl * HUNDRED / margin if margin > 0 else ZERO


# --------------------------------------------------------------------------------------------- equity


@dataclass(frozen=True, slots=True)
class EquityBreakdown:
    """Equity of an account, with its parts (``aegis.v1.EquityBreakdown``).

    ``total_equity = available_balance + margin_used + unrealised_pnl = wallet_balance + unrealised_pnl``.
    ``margin_used`` is the seeds' "value of open positions" (the margin locked in them); ``position_value`` is
    the sum of ``|notional|`` at the mark price, used for exposure limits, not added to equity.
    """

    wallet_balance: Decimal
    available_balance: Decimal
    position_value: Decimal
    unrealised_pnl: Decimal
    total_equity: Decimal
    margin_used: Decimal

    @property
    def free_margin(self) -> Decimal:
        """Balance a new position may lock: available balance less any unrealised loss (gains are not spent)."""
        return self.available_balance + min(self.unrealised_pnl, ZERO)


def equity_breakdown(wallet_balance: Any, positions: Iterable[OpenPosition] = ()) -> EquityBreakdown:
    """Return the equity of an account holding ``wallet_balance`` and ``positions``.

    ``available_balance = wallet_balance - margin_used``; ``total_equity = wallet_balance + unrealised_pnl``.
    """
    wallet = money("wallet_balance", wallet_balance)
    held = tuple(positions)
    margin_used = sum((p.margin for p in held), ZERO)
    unrealised = sum((p.unrealised_pnl for p in held), ZERO)
    value = sum((p.notional for p in held), ZERO)
    return EquityBreakdown(
        wallet_balance=wallet,
        available_balance=wallet - margin_used,
        position_value=value,
        unrealised_pnl=unrealised,
        total_equity=wallet + unrealised,
        margin_used=margin_used,
    )


# --------------------------------------------------------------------------------------------- stop and target


def protective_prices(
    rules: SymbolRules, side: PositionSide, entry_price: Decimal, stop_distance: Decimal, target_distance: Decimal
) -> tuple[Decimal, Decimal]:
    """Return ``(stop_loss, take_profit)`` on the tick grid, each rounded toward the entry.

    A long's stop rounds up and its target down; a short's stop rounds down and its target up. So the loss at
    the stop is never larger than asked and the reward at the target never overstated. The caller checks that
    the stop is still on the losing side of the entry (a stop closer than one tick collapses onto it).
    """
    if side is PositionSide.LONG:
        stop_raw, target_raw = entry_price - stop_distance, entry_price + target_distance
        stop = rules.price_up(stop_raw) if stop_raw > 0 else ZERO
        target = rules.price_down(target_raw)
    else:
        stop_raw, target_raw = entry_price + stop_distance, entry_price - target_distance
        stop = rules.price_down(stop_raw)
        target = rules.price_up(target_raw) if target_raw > 0 else ZERO
    return stop, target


def per_unit_loss(entry_price: Decimal, stop_price: Decimal, fee_rate: Decimal = ZERO) -> Decimal:
    """Money lost per unit of base asset when the stop fills: the price move plus both taker fees."""
    return abs(entry_price - stop_price) + fee_rate * (entry_price + stop_price)


# --------------------------------------------------------------------------------------------- methods


def fixed_fraction_quantity(equity: Decimal, fraction: Decimal, entry_price: Decimal) -> Decimal:
    """Return the quantity whose notional is ``fraction`` of equity: ``equity * fraction / entry_price``.

    The seeds' example: 10,000 USDT equity, 20 %, BTC at 50,000 -> 0.04 BTC (2,000 USDT notional, 0.2x).
    """
    return equity * fraction / entry_price


def fixed_risk_quantity(equity: Decimal, risk_pct: Decimal, unit_loss: Decimal) -> Decimal:
    """Return the quantity that loses ``risk_pct`` percent of equity when the stop is hit."""
    if unit_loss <= 0:
        raise ValidationError("stop_distance", "must be greater than 0")
    return equity * risk_pct / HUNDRED / unit_loss


@dataclass(frozen=True, slots=True)
class KellyResult:
    """The figures of a Kelly computation (all fractions, not percent)."""

    expected_return: Decimal
    """Edge per unit of notional after fees: min(model, track record) - round-trip fee."""
    payoff_ratio: Decimal
    """Win size / loss size = tp_pct / sl_pct."""
    full_kelly: Decimal
    """Kelly-optimal fraction of equity to lose at the stop: expected_return / win size."""
    risk_fraction: Decimal
    """What is used: min(cap, multiplier * full_kelly * confidence), 0 when there is no edge."""
    capped: bool


def kelly_risk_fraction(
    *,
    predicted_return_pct: Decimal | None,
    sl_pct: Decimal,
    tp_pct: Decimal,
    confidence: Decimal,
    win_rate: Decimal | None,
    multiplier: Decimal,
    cap: Decimal,
    fee_rate: Decimal = ZERO,
) -> KellyResult:
    """Return the fraction of equity to risk at the stop, by the Kelly criterion (docs/risk.md, "Kelly").

    A trade wins ``W = tp_pct/100`` or loses ``L = sl_pct/100`` of its notional. Its edge ``mu`` (expected
    return per unit of notional) is the model's predicted return, or, when a historical win rate ``p`` is
    known, the smaller of that and ``p*W - (1-p)*L``; the round-trip fee ``2 * fee_rate`` is subtracted. The
    Kelly notional fraction of a two-outcome bet is ``mu / (W * L)``; the loss at the stop is that times ``L``,
    so the Kelly fraction of equity to risk is ``mu / W``. It is scaled by confidence and by ``multiplier``
    (the fraction of Kelly used, e.g. 0.25) and capped at ``cap``.
    """
    win = tp_pct / HUNDRED
    loss = sl_pct / HUNDRED
    if predicted_return_pct is None and win_rate is None:
        raise ValidationError("predicted_return_pct", "Kelly sizing needs a predicted return or a win rate")
    edges = []
    if predicted_return_pct is not None:
        edges.append(predicted_return_pct / HUNDRED)
    if win_rate is not None:
        edges.append(win_rate * win - (ONE - win_rate) * loss)
    mu = min(edges)
    mu -= 2 * fee_rate
    full = mu / win if mu > 0 else ZERO
    scaled = multiplier * full * confidence
    return KellyResult(
        expected_return=mu,
        payoff_ratio=win / loss,
        full_kelly=full,
        risk_fraction=min(cap, scaled),
        capped=scaled > cap,
    )


# --------------------------------------------------------------------------------------------- details


@dataclass(frozen=True, slots=True)
class SizingDetails:
    """Figures of the sizing computation (``aegis.v1.SizingDetails``)."""

    method: SizingMethod
    risk_pct: Decimal
    """Percent of equity lost at the stop with the final quantity (fees included when configured)."""
    risk_amount: Decimal
    """Money lost at the stop with the final quantity."""
    risk_budget: Decimal | None
    """Money the method was allowed to lose at the stop (None for FIXED_FRACTION / FIXED_NOTIONAL)."""
    stop_distance: Decimal
    entry_price: Decimal
    raw_quantity: Decimal
    quantity: Decimal
    notional: Decimal
    initial_margin: Decimal
    estimated_fees: Decimal
    kelly_fraction: Decimal | None = None
    win_rate: Decimal | None = None
    payoff_ratio: Decimal | None = None
    atr: Decimal | None = None
