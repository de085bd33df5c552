"""Leverage guard: keep a position inside the leverage its Binance bracket allows, by cutting its size.

``required leverage = position notional / total equity``. The position notional includes any position already
held on the symbol. Binance's bracket for that notional gives the maximum initial leverage; the configured
``max_leverage`` may lower it further. When the required leverage is above the allowed one, the quantity is
clamped down (never up) to the largest step-grid quantity that fits.

Because the bracket itself depends on the notional, the largest fitting notional is solved tier by tier: in a
tier ``[floor, cap)`` with allowed leverage ``L`` a position fits while ``notional <= L * equity`` and
``notional < cap``. Leverage never rises with the notional, so the positions that fit form one interval
``[0, N_max]``; walk the tiers from the lowest and stop at the first whose ``L * equity`` falls inside it (that is
``N_max``), or whose floor is already beyond ``L * equity`` (then ``N_max`` is just under the previous cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from aegis.errors import ValidationError
from aegis.exchange.rules import LeverageBracket, SymbolRules

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LeverageGuardResult:
    """What the guard computed (``aegis.v1.LeverageGuard`` plus the solved limit)."""

    required_leverage: Decimal
    """Position notional / equity with the final quantity."""
    original_required_leverage: Decimal
    """Position notional / equity with the quantity asked for."""
    bracket_max_leverage: int
    """Maximum initial leverage of the bracket the final position falls in (0 when none fits)."""
    applied_leverage: int
    """Leverage to set on the symbol: min(configured maximum, bracket maximum)."""
    clamped: bool
    """True when the quantity was cut to fit."""
    leverage_lowered: bool
    """True when the configured maximum leverage was above the bracket's and the bracket's is applied."""
    original_quantity: Decimal
    quantity: Decimal
    max_notional: Decimal
    """Largest position notional that fits (exclusive when ``max_notional_exclusive``)."""
    max_notional_exclusive: bool
    bracket: LeverageBracket | None


def max_fitting_notional(
    brackets: tuple[LeverageBracket, ...], equity: Decimal, max_leverage: int
) -> tuple[Decimal, bool]:
    """Return ``(N, exclusive)``: positions fit when ``notional <= N`` (``< N`` when exclusive)."""
    if equity <= 0 or not brackets:
        return ZERO, False
    best, exclusive = ZERO, False
    for b in brackets:
        limit = min(b.initial_leverage, max_leverage) * equity
        if limit < b.notional_floor:
            break
        if limit < b.notional_cap:
            return limit, False
        best, exclusive = b.notional_cap, True
    return best, exclusive


def fits(rules: SymbolRules, notional: Decimal, equity: Decimal, max_leverage: int) -> bool:
    """True when a position of ``notional`` stays within its bracket's and the configured leverage."""
    if notional <= 0:
        return True
    bracket = rules.bracket_for(notional)
    if bracket is None or equity <= 0:
        return False
    return notional <= min(bracket.initial_leverage, max_leverage) * equity


def guard_leverage(
    rules: SymbolRules,
    *,
    quantity: Decimal,
    price: Decimal,
    equity: Decimal,
    max_leverage: int,
    existing_notional: Decimal = ZERO,
    market: bool = False,
) -> LeverageGuardResult:
    """Return the largest step-grid quantity <= ``quantity`` whose position fits its bracket, and the leverage.

    ``price`` values the order (use the higher of entry and mark so the guard holds whichever Binance uses);
    ``existing_notional`` is the notional already held on the symbol on the same side.
    """
    if not rules.brackets:
        raise ValidationError("brackets", f"no leverage brackets known for {rules.symbol}")
    if isinstance(max_leverage, bool) or not isinstance(max_leverage, int) or max_leverage < 1:
        raise ValidationError("max_leverage", f"must be a positive integer, got {max_leverage!r}")
    if price <= 0:
        raise ValidationError("price", f"must be greater than 0, got {price}")
    original = rules.round_qty(quantity, market=market)
    n_max, exclusive = max_fitting_notional(rules.brackets, equity, max_leverage)
    room = n_max - existing_notional
    fitted = ZERO if room <= 0 else min(original, rules.round_qty(room / price, market=market))
    step = rules.market_step_size if market else rules.step_size
    # The division above is exact to 60 digits; the loop covers the exclusive cap and any last-digit rounding.
    while fitted > 0 and not fits(rules, existing_notional + fitted * price, equity, max_leverage):
        fitted = max(ZERO, fitted - step) if step > 0 else ZERO
    position = existing_notional + fitted * price
    bracket = rules.bracket_for(position) if fitted > 0 else rules.bracket_for(existing_notional)
    bracket_max = bracket.initial_leverage if bracket else 0
    applied = min(max_leverage, bracket_max) if bracket_max else 0
    return LeverageGuardResult(
        required_leverage=position / equity if equity > 0 else ZERO,
        original_required_leverage=(existing_notional + original * price) / equity if equity > 0 else ZERO,
        bracket_max_leverage=bracket_max,
        applied_leverage=applied,
        clamped=fitted < original,
        leverage_lowered=bracket_max > 0 and max_leverage > bracket_max,
        original_quantity=original,
        quantity=fitted,
        max_notional=n_max,
        max_notional_exclusive=exclusive,
        bracket=bracket,
    )
