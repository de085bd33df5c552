"""The arithmetic of a virtual account: fills, fees, funding, liquidation, TP/SL triggers, ROI and reward.

Pure functions over ``Decimal`` and frozen values; no I/O. docs/accounts.md explains every formula with worked
numbers. Money amounts that reach the wallet (fees, funding, PnL, margin) are rounded to 8 decimals (USDT's
precision on Binance) once, where they are computed; the ledger stores those same values, so the balance
identity ``wallet = start + realised PnL - fees + funding`` holds exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from aegis.risk.sizing import PositionSide

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
MONEY = Decimal("1e-8")
"""Wallet amounts are kept to 8 decimals, as Binance keeps USDT balances."""
PCT = Decimal("1e-6")


class CloseReason(StrEnum):
    TP_HIT = "TP_HIT"
    SL_HIT = "SL_HIT"
    LIQUIDATED = "LIQUIDATED"
    ROTATED = "ROTATED"
    MANUAL = "MANUAL"


class WorkingType(StrEnum):
    """Which price triggers TP and SL (Binance's ``workingType``)."""

    MARK_PRICE = "MARK_PRICE"
    CONTRACT_PRICE = "CONTRACT_PRICE"


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


def money(value: Decimal) -> Decimal:
    """Round a wallet amount to 8 decimals (half-even, so no direction is favoured over many trades)."""
    return value.quantize(MONEY, rounding=ROUND_HALF_EVEN)


def pct(value: Decimal) -> Decimal:
    return value.quantize(PCT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fee rates and slippage, as fractions (0.0005 = 0.05 %)."""

    taker_rate: Decimal = Decimal("0.0005")
    maker_rate: Decimal = Decimal("0.0002")
    slippage_rate: Decimal = Decimal("0.0001")

    def rate(self, liquidity: Liquidity) -> Decimal:
        return self.maker_rate if liquidity is Liquidity.MAKER else self.taker_rate


def order_side_sign(side: PositionSide, *, opening: bool) -> int:
    """+1 when the order buys, -1 when it sells (a long opens with a buy and closes with a sell)."""
    return side.sign if opening else -side.sign


def slipped(price: Decimal, buys: bool, slippage_rate: Decimal) -> Decimal:
    """Return ``price`` made worse by the slippage: a buy pays more, a sell receives less."""
    return price * (ONE + slippage_rate) if buys else price * (ONE - slippage_rate)


def fee(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """Fee of a fill: ``quantity * price * rate`` (positive = paid)."""
    return money(quantity * price * rate)


def initial_margin(quantity: Decimal, entry_price: Decimal, leverage: int) -> Decimal:
    """Isolated margin locked at entry: ``quantity * entry_price / leverage``."""
    return money(quantity * entry_price / leverage)


def gross_pnl(side: PositionSide, quantity: Decimal, entry_price: Decimal, exit_price: Decimal) -> Decimal:
    """PnL from prices only: ``sign * quantity * (exit - entry)``."""
    return money(side.sign * quantity * (exit_price - entry_price))


def unrealised_pnl(side: PositionSide, quantity: Decimal, entry_price: Decimal, mark_price: Decimal) -> Decimal:
    return side.sign * quantity * (mark_price - entry_price)


def maintenance_margin(notional: Decimal, maint_margin_ratio: Decimal, cum: Decimal) -> Decimal:
    """Binance's maintenance margin of a position: ``notional * maintMarginRatio - cum`` of its bracket."""
    return max(notional * maint_margin_ratio - cum, ZERO)


def liquidation_price(
    side: PositionSide,
    quantity: Decimal,
    entry_price: Decimal,
    margin: Decimal,
    maint_margin_ratio: Decimal,
    cum: Decimal,
) -> Decimal | None:
    """Binance's liquidation price of an isolated one-way position (None when it can never be liquidated).

    Binance: ``LP = (WB - TMM1 + UPNL1 + cumB - Side1 * Position1 * EP1) / (Position1 * MMR - Side1 * Position1)``
    with, for an isolated position, ``WB`` its isolated margin, ``TMM1 = UPNL1 = 0``, ``Side1`` +1 long -1 short,
    ``Position1`` the absolute quantity, ``MMR``/``cumB`` of the position's bracket. So

    * long:  ``LP = (EP * Q - margin - cum) / (Q * (1 - MMR))``
    * short: ``LP = (EP * Q + margin + cum) / (Q * (1 + MMR))``

    Rounded to 8 decimals towards the entry (the account is liquidated no later than Binance would).
    """
    s = side.sign
    lp = (margin + cum - s * quantity * entry_price) / (quantity * maint_margin_ratio - s * quantity)
    if lp <= 0:
        return None  # a long at low leverage: the margin covers a fall to zero
    return lp.quantize(MONEY, rounding=ROUND_CEILING if s > 0 else ROUND_FLOOR)


def funding_amount(side: PositionSide, quantity: Decimal, mark_price: Decimal, funding_rate: Decimal) -> Decimal:
    """Funding received by a position (negative = paid): longs pay shorts when the rate is positive.

    ``amount = -sign * quantity * mark_price * funding_rate``.
    """
    return money(-side.sign * quantity * mark_price * funding_rate)


# --------------------------------------------------------------------------------------------- round trip


REWARD_BUCKETS: tuple[tuple[Decimal, int], ...] = (
    (Decimal(10), 8),
    (Decimal(5), 5),
    (Decimal(2), 3),
    (ZERO, 1),
)
"""Gains: ROI % on margin in (0, 2] -> +1, (2, 5] -> +3, (5, 10] -> +5, above 10 -> +8."""

LOSS_BUCKETS: tuple[tuple[Decimal, int], ...] = (
    (Decimal(-10), -10),
    (Decimal(-5), -7),
    (Decimal(-2), -3),
    (ZERO, -1),
)
"""Losses, symmetric: [-2, 0) -> -1, [-5, -2) -> -3, [-10, -5) -> -7, below -10 -> -10."""


def reward_score(roi_margin_pct: Decimal) -> int:
    """The seeds' reward of a closed trade from its net ROI % on margin (0 for exactly break-even)."""
    if roi_margin_pct > 0:
        for edge, score in REWARD_BUCKETS:
            if roi_margin_pct > edge:
                return score
    if roi_margin_pct < 0:
        for edge, score in LOSS_BUCKETS:
            if roi_margin_pct < edge:
                return score
        return -1
    return 0


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """The money of one closed position."""

    exit_price: Decimal
    gross_pnl: Decimal
    exit_fee: Decimal
    fees: Decimal
    """Entry plus exit fee (positive = paid)."""
    funding: Decimal
    """Over the position's life (positive = received)."""
    net_pnl: Decimal
    roi_margin_pct: Decimal
    roi_price_pct: Decimal
    return_pct: Decimal
    """Net PnL on the entry notional, percent (what the model predicts)."""
    reward: int


def round_trip(
    side: PositionSide,
    quantity: Decimal,
    entry_price: Decimal,
    margin: Decimal,
    entry_fee: Decimal,
    funding: Decimal,
    exit_price: Decimal,
    exit_fee: Decimal,
    *,
    liquidated: bool = False,
) -> RoundTrip:
    """Close a position at ``exit_price``: PnL, ROI on margin and on price, reward.

    A liquidated isolated position loses its whole margin: ``gross_pnl = -margin`` (the price loss down to the
    liquidation price plus the maintenance margin left, which Binance keeps as the liquidation clearance fee).
    """
    gross = -margin if liquidated else gross_pnl(side, quantity, entry_price, exit_price)
    fees = entry_fee + exit_fee
    net = gross - fees + funding
    roi_margin = pct(net * HUNDRED / margin) if margin > 0 else ZERO
    roi_price = pct(side.sign * (exit_price - entry_price) * HUNDRED / entry_price)
    return_pct = pct(net * HUNDRED / (quantity * entry_price))
    return RoundTrip(exit_price, gross, exit_fee, fees, funding, net, roi_margin, roi_price, return_pct,
                     reward_score(roi_margin))  # fmt: skip


# --------------------------------------------------------------------------------------------- triggers


@dataclass(frozen=True, slots=True)
class Tick:
    """One price update of one symbol (``aegis.v1.PriceUpdate``), validated."""

    symbol: str
    last_price: Decimal
    mark_price: Decimal
    high_price: Decimal
    low_price: Decimal
    event_time: dt.datetime
    funding_rate: Decimal | None = None
    next_funding_time: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Exit:
    reason: CloseReason
    price: Decimal
    """Fill price, slippage included (the liquidation price for a liquidation)."""
    gap: bool = False
    """True when the price jumped past the level and the fill is worse than the level."""


def _level_exit(
    side: PositionSide, level: Decimal, falling: bool, tick: Tick, working_type: WorkingType
) -> tuple[Decimal, bool] | None:
    """Return (fill before slippage, gap) when ``level`` is reached by ``tick``, else None.

    A level below the price (a long's stop, a short's target) is reached when the trigger price falls to it;
    one above when it rises to it. The trigger price is the mark price, or with CONTRACT_PRICE every traded
    price since the previous update (``low``..``high``). The fill is the worse, for the position, of the level
    and the market at the trigger: with the mark price that market is the last price; with the contract price
    it is the level when trades happened at it, or the first price beyond it when the price gapped past it
    (the whole range beyond the level: the nearest end of the range is the first price we can know).
    """
    if working_type is WorkingType.MARK_PRICE:
        if (tick.mark_price > level) if falling else (tick.mark_price < level):
            return None
        market = tick.last_price
    else:
        if (tick.low_price > level) if falling else (tick.high_price < level):
            return None
        if falling:
            market = tick.high_price if tick.high_price < level else level
        else:
            market = tick.low_price if tick.low_price > level else level
    # The exit sells a long (worse = lower) and buys back a short (worse = higher).
    fill = min(level, market) if side is PositionSide.LONG else max(level, market)
    return fill, fill != level


def check_exit(
    side: PositionSide,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    liquidation: Decimal | None,
    tick: Tick,
    working_type: WorkingType,
    slippage_rate: Decimal,
) -> Exit | None:
    """Return how ``tick`` closes an open position, or None.

    Order of precedence (conservative where one update cannot tell what came first):
    the stop-loss before the take-profit; liquidation (mark price crossing the liquidation price) unless the
    stop-loss fills at a price better than the liquidation price, so the stop saved the position.
    """
    long = side is PositionSide.LONG
    sells = long  # the closing order of a long sells
    sl = None
    if stop_loss is not None:
        hit = _level_exit(side, stop_loss, long, tick, working_type)
        if hit is not None:
            sl = Exit(CloseReason.SL_HIT, slipped(hit[0], not sells, slippage_rate), hit[1])
    if liquidation is not None and (tick.mark_price <= liquidation if long else tick.mark_price >= liquidation):
        saved = sl is not None and (sl.price > liquidation if long else sl.price < liquidation)
        if not saved:
            return Exit(CloseReason.LIQUIDATED, liquidation)
    if sl is not None:
        return sl
    if take_profit is not None:
        hit = _level_exit(side, take_profit, not long, tick, working_type)
        if hit is not None:
            return Exit(CloseReason.TP_HIT, slipped(hit[0], not sells, slippage_rate), hit[1])
    return None


def funding_due(funding_time: dt.datetime | None, tick_time: dt.datetime) -> bool:
    """True when the update at ``tick_time`` is at or past the pending funding time."""
    return funding_time is not None and tick_time >= funding_time
