"""Binance USDⓈ-M trading rules: exchangeInfo filters and leverage brackets, as exact ``Decimal`` values.

Everything here is pure: it reads a parsed response (or a JSON file) and answers questions about one order.

Filters (Binance USDⓈ-M "Filters" documentation; a rule whose parameter is 0 is disabled, as Binance says):

- PRICE_FILTER: ``price >= minPrice``, ``price <= maxPrice``, ``(price - minPrice) % tickSize == 0``.
- LOT_SIZE (limit orders) and MARKET_LOT_SIZE (market orders): ``qty >= minQty``, ``qty <= maxQty``,
  ``(qty - minQty) % stepSize == 0``. The grid is anchored at minQty, as Binance anchors it.
- MIN_NOTIONAL: ``price * qty >= notional``; a market order has no price, so the mark price is used; reduce-only
  orders are exempt.
- PERCENT_PRICE: one bound per side, against the mark price: BUY ``price <= markPrice * multiplierUp``, SELL
  ``price >= markPrice * multiplierDown`` (a buy has no floor and a sell no ceiling in this filter).

Rounding is exact (integer division of ``Decimal``s, never floats) and always in the safe direction: a quantity
rounds down; a limit BUY price rounds down and a limit SELL price rounds up, so the order never pays more (or
receives less) than the caller asked. Stop-loss and take-profit prices are rounded by :mod:`aegis.risk.sizing`
with :meth:`SymbolRules.price_down` / :meth:`SymbolRules.price_up`, toward the entry.

Leverage brackets come from ``/fapi/v1/leverageBracket`` (``[{"symbol", "brackets": [...]}]``) or from the
freqtrade/ccxt ``binance_leverage_tiers.json`` wrapper, whose tiers carry the raw bracket in ``info``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aegis.errors import ValidationError

ZERO = Decimal(0)

# Precision for the rounding arithmetic: far more digits than any price or quantity Binance publishes, so the
# integer divisions below stay exact (Decimal raises rather than round an integer quotient that does not fit).
_PRECISION = 60


class Side(StrEnum):
    """Direction of an order."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """Binance USDⓈ-M order types."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"

    @property
    def is_market(self) -> bool:
        """True when the order executes at market (checked against MARKET_LOT_SIZE and the mark price)."""
        return self in _MARKET_TYPES


_MARKET_TYPES = frozenset(
    {OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET, OrderType.TRAILING_STOP_MARKET}
)

PRICE_FILTER = "PRICE_FILTER"
LOT_SIZE = "LOT_SIZE"
MARKET_LOT_SIZE = "MARKET_LOT_SIZE"
MIN_NOTIONAL = "MIN_NOTIONAL"
PERCENT_PRICE = "PERCENT_PRICE"
FILTER_NAMES: tuple[str, ...] = (PRICE_FILTER, PERCENT_PRICE, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL)
"""Names :meth:`SymbolRules.violations` can return, in the order it returns them."""


# --------------------------------------------------------------------------------------------- value parsing


def to_decimal(field_name: str, value: Any, *, allow_float: bool = False) -> Decimal:
    """Return ``value`` as a finite ``Decimal`` or raise :class:`ValidationError` naming ``field_name``.

    Accepts ``Decimal``, ``int`` and decimal strings. Floats are refused unless ``allow_float`` (for ratios and
    percentages that arrive as doubles), and then converted through their shortest ``repr`` so ``0.1`` is
    ``Decimal("0.1")``.
    """
    if isinstance(value, bool):
        raise ValidationError(field_name, f"must be a decimal number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not allow_float:
            raise ValidationError(field_name, f"must be a Decimal or a decimal string, not the float {value!r}")
        if not math.isfinite(value):
            raise ValidationError(field_name, f"must be finite, got {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except ArithmeticError:
            raise ValidationError(field_name, f"is not a decimal number: {value!r}") from None
    else:
        raise ValidationError(field_name, f"must be a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValidationError(field_name, f"must be finite, got {value!r}")
    return result


def _side(value: Any) -> Side:
    try:
        return Side(str(value).upper()) if isinstance(value, str) else Side(value)
    except ValueError:
        raise ValidationError("side", f"must be BUY or SELL, got {value!r}") from None


def _order_type(value: Any) -> OrderType:
    try:
        return OrderType(str(value).upper()) if isinstance(value, str) else OrderType(value)
    except ValueError:
        raise ValidationError("order_type", f"is not a Binance order type: {value!r}") from None


def _floor_to_grid(value: Decimal, anchor: Decimal, step: Decimal) -> Decimal:
    """Largest ``anchor + n * step`` (n integer) that is <= value; ``value`` itself when step is 0 (disabled)."""
    if step <= 0:
        return value
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        n = ((value - anchor) / step).to_integral_value(rounding=ROUND_FLOOR)
        result = anchor + n * step
        # Guard against a quotient rounded across an integer boundary by the context precision.
        while result > value:
            result -= step
        return result


def _ceil_to_grid(value: Decimal, anchor: Decimal, step: Decimal) -> Decimal:
    """Smallest ``anchor + n * step`` that is >= value; ``value`` itself when step is 0 (disabled)."""
    if step <= 0:
        return value
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        n = ((value - anchor) / step).to_integral_value(rounding=ROUND_CEILING)
        result = anchor + n * step
        while result < value:
            result += step
        return result


def _on_grid(value: Decimal, anchor: Decimal, step: Decimal) -> bool:
    if step <= 0:
        return True
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return (value - anchor) % step == 0


# --------------------------------------------------------------------------------------------- brackets


@dataclass(frozen=True, slots=True)
class LeverageBracket:
    """One notional tier of a symbol: positions with ``notional_floor <= notional < notional_cap`` may use up to
    ``initial_leverage``.

    The upper end is exclusive (as in ``aegis.v1.LeverageBracket``): at exactly the cap the next, lower-leverage
    tier applies. Binance's own UI counts the cap into the lower tier; taking the next tier is the safe reading.
    """

    bracket: int
    initial_leverage: int
    notional_floor: Decimal
    notional_cap: Decimal
    maint_margin_ratio: Decimal
    cum: Decimal

    def contains(self, notional: Decimal) -> bool:
        """True when a position of this notional falls in the tier."""
        return self.notional_floor <= notional < self.notional_cap

    @classmethod
    def from_binance(cls, raw: Mapping[str, Any], where: str = "bracket") -> LeverageBracket:
        """Parse one raw ``/fapi/v1/leverageBracket`` bracket object."""
        try:
            bracket = int(raw["bracket"])
            leverage = int(Decimal(str(raw["initialLeverage"])))
            result = cls(
                bracket=bracket,
                initial_leverage=leverage,
                notional_floor=to_decimal(f"{where}.notionalFloor", str(raw["notionalFloor"])),
                notional_cap=to_decimal(f"{where}.notionalCap", str(raw["notionalCap"])),
                maint_margin_ratio=to_decimal(f"{where}.maintMarginRatio", str(raw["maintMarginRatio"])),
                cum=to_decimal(f"{where}.cum", str(raw.get("cum", "0"))),
            )
        except KeyError as exc:
            raise ValidationError(where, f"has no {exc.args[0]!r}") from None
        except ValidationError:
            raise  # already names the exact field
        except (TypeError, ValueError, ArithmeticError):
            raise ValidationError(where, f"is not a leverage bracket: {dict(raw)!r}") from None
        if result.initial_leverage < 1:
            raise ValidationError(f"{where}.initialLeverage", f"must be at least 1, got {result.initial_leverage}")
        if result.notional_cap <= result.notional_floor or result.notional_floor < 0:
            raise ValidationError(where, f"has an empty or negative notional range: {dict(raw)!r}")
        return result


def _check_brackets(symbol: str, brackets: Sequence[LeverageBracket]) -> tuple[LeverageBracket, ...]:
    ordered = tuple(sorted(brackets, key=lambda b: b.notional_floor))
    where = f"brackets[{symbol}]"
    if not ordered:
        raise ValidationError(where, "is empty")
    if ordered[0].notional_floor != 0:
        raise ValidationError(where, f"first tier starts at {ordered[0].notional_floor}, not 0")
    for prev, cur in itertools.pairwise(ordered):
        if cur.notional_floor != prev.notional_cap:
            raise ValidationError(where, f"tier {cur.bracket} starts at {cur.notional_floor}, not {prev.notional_cap}")
        if cur.initial_leverage > prev.initial_leverage:
            raise ValidationError(where, f"tier {cur.bracket} allows more leverage than tier {prev.bracket}")
    return ordered


def ccxt_symbol_to_binance(market: str) -> str:
    """Return the Binance symbol of a ccxt unified market id.

    ``"BTC/USDT:USDT"`` -> ``"BTCUSDT"``; ``"BTC/USDT:USDT-250328"`` -> ``"BTCUSDT_250328"``; ``"ETH/BTC:BTC"``
    -> ``"ETHBTC"``.
    """
    try:
        pair, settle = market.split(":", 1)
        base, quote = pair.split("/", 1)
    except ValueError:
        raise ValidationError("market", f"is not a ccxt market id like 'BTC/USDT:USDT': {market!r}") from None
    symbol = base + quote
    if "-" in settle:
        symbol += "_" + settle.split("-", 1)[1]
    return symbol


def _load_json(obj_or_path: Any, what: str) -> Any:
    if isinstance(obj_or_path, str | os.PathLike):
        path = Path(obj_or_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(what, f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(what, f"{path} is not JSON: {exc}") from None
    if isinstance(obj_or_path, bytes | bytearray):
        try:
            return json.loads(obj_or_path)
        except json.JSONDecodeError as exc:
            raise ValidationError(what, f"is not JSON: {exc}") from None
    return obj_or_path


def load_leverage_brackets(obj_or_path: Any) -> Mapping[str, tuple[LeverageBracket, ...]]:
    """Return the leverage tiers per Binance symbol, lowest notional first.

    Accepts the raw ``/fapi/v1/leverageBracket`` answer (a list of ``{"symbol", "brackets"}``, or one such object),
    the ccxt/freqtrade ``fetch_leverage_tiers`` file (``{"BTC/USDT:USDT": [{"info": {raw bracket}}, ...]}``), a
    path to either as JSON, or the JSON bytes. Tiers must start at 0, follow each other without gaps and never
    raise leverage as the notional grows; anything else raises :class:`ValidationError`.
    """
    data = _load_json(obj_or_path, "leverage_brackets")
    out: dict[str, tuple[LeverageBracket, ...]] = {}
    if isinstance(data, Mapping) and "brackets" in data and "symbol" in data:
        data = [data]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        for i, entry in enumerate(data):
            if not isinstance(entry, Mapping) or "symbol" not in entry or "brackets" not in entry:
                raise ValidationError(f"leverage_brackets[{i}]", "is not a {symbol, brackets} object")
            symbol = str(entry["symbol"])
            parsed = [LeverageBracket.from_binance(b, f"brackets[{symbol}]") for b in entry["brackets"]]
            out[symbol] = _check_brackets(symbol, parsed)
    elif isinstance(data, Mapping):
        for market, tiers in data.items():
            symbol = ccxt_symbol_to_binance(str(market))
            if not isinstance(tiers, Sequence) or isinstance(tiers, str | bytes):
                raise ValidationError(f"leverage_brackets[{market}]", "is not a list of tiers")
            parsed = []
            for tier in tiers:
                if not isinstance(tier, Mapping) or not isinstance(tier.get("info"), Mapping):
                    raise ValidationError(f"leverage_brackets[{market}]", "tier has no raw 'info' bracket")
                parsed.append(LeverageBracket.from_binance(tier["info"], f"brackets[{symbol}]"))
            out[symbol] = _check_brackets(symbol, parsed)
    else:
        raise ValidationError("leverage_brackets", f"has an unknown shape ({type(data).__name__})")
    return MappingProxyType(out)


# --------------------------------------------------------------------------------------------- symbol rules


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """The trading rules of one symbol, as published in exchangeInfo (plus its leverage brackets when known).

    A PRICE_FILTER bound or tick of 0 disables that rule (Binance's convention); ``min_notional`` 0 and
    ``multiplier_up``/``multiplier_down`` ``None`` mean the symbol publishes no such filter. ``max_num_orders`` 0
    means the exchange published 0 (seen on a few TRADING symbols); it is treated as "no limit published".
    """

    symbol: str
    status: str
    contract_type: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    price_precision: int
    quantity_precision: int
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    multiplier_up: Decimal | None
    multiplier_down: Decimal | None
    multiplier_decimal: int | None
    max_num_orders: int
    max_num_algo_orders: int | None
    order_types: tuple[str, ...] = ()
    time_in_force: tuple[str, ...] = ()
    onboard_time_ms: int | None = None
    delivery_time_ms: int | None = None
    brackets: tuple[LeverageBracket, ...] = field(default=())

    @property
    def is_trading(self) -> bool:
        """True when the symbol accepts new orders (status TRADING)."""
        return self.status == "TRADING"

    # ----------------------------------------------------------------------------------- rounding

    def round_qty(self, qty: Any, market: bool = False) -> Decimal:
        """Return ``qty`` rounded down to the step grid of LOT_SIZE (or MARKET_LOT_SIZE when ``market``).

        The grid is ``minQty + n * stepSize``, as Binance checks it. A quantity below minQty rounds to the grid
        point below it (never below 0), which :meth:`violations` then reports; the maximum is not applied here.
        """
        value = to_decimal("quantity", qty)
        if value < 0:
            raise ValidationError("quantity", f"must not be negative, got {value}")
        step, anchor = (self.market_step_size, self.market_min_qty) if market else (self.step_size, self.min_qty)
        return max(ZERO, _floor_to_grid(value, anchor, step))

    def round_price(self, price: Any, side: Any) -> Decimal:
        """Return a limit price on the tick grid, rounded in the safe direction for ``side``.

        BUY rounds down (never pay more than asked), SELL rounds up (never sell for less than asked).
        """
        return self.price_down(price) if _side(side) is Side.BUY else self.price_up(price)

    def price_down(self, price: Any) -> Decimal:
        """Return the largest tick-grid price <= ``price`` (the grid is ``minPrice + n * tickSize``)."""
        value = self._price(price)
        return _floor_to_grid(value, self.min_price, self.tick_size)

    def price_up(self, price: Any) -> Decimal:
        """Return the smallest tick-grid price >= ``price``."""
        value = self._price(price)
        return _ceil_to_grid(value, self.min_price, self.tick_size)

    @staticmethod
    def _price(price: Any) -> Decimal:
        value = to_decimal("price", price)
        if value <= 0:
            raise ValidationError("price", f"must be greater than 0, got {value}")
        return value

    # ----------------------------------------------------------------------------------- filters

    def price_filter_ok(self, price: Decimal) -> bool:
        """True when ``price`` passes PRICE_FILTER (also used for stop and take-profit trigger prices)."""
        if price <= 0:
            return False
        if self.min_price > 0 and price < self.min_price:
            return False
        if self.max_price > 0 and price > self.max_price:
            return False
        return _on_grid(price, self.min_price, self.tick_size)

    def lot_ok(self, qty: Decimal, market: bool = False) -> bool:
        """True when ``qty`` passes LOT_SIZE (or MARKET_LOT_SIZE when ``market``)."""
        if market:
            step, lo, hi = self.market_step_size, self.market_min_qty, self.market_max_qty
        else:
            step, lo, hi = self.step_size, self.min_qty, self.max_qty
        if qty <= 0 or qty < lo or (hi > 0 and qty > hi):
            return False
        return _on_grid(qty, lo, step)

    def percent_price_ok(self, side: Side, price: Decimal, mark_price: Decimal) -> bool:
        """True when a limit ``price`` is inside the PERCENT_PRICE bound of its side around the mark price."""
        if side is Side.BUY:
            return self.multiplier_up is None or price <= mark_price * self.multiplier_up
        return self.multiplier_down is None or price >= mark_price * self.multiplier_down

    def violations(
        self,
        side: Any,
        order_type: Any,
        price: Any,
        qty: Any,
        mark_price: Any,
        reduce_only: bool = False,
    ) -> list[str]:
        """Return the name of every Binance filter the order breaks; an empty list when it would be accepted.

        ``price`` is the limit price (ignored, and may be ``None``, for market-type orders). ``mark_price`` is
        required: MIN_NOTIONAL values market orders at it and PERCENT_PRICE bounds limit prices by it.
        Market-type orders (MARKET, STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING_STOP_MARKET) are checked against
        MARKET_LOT_SIZE, the others against LOT_SIZE. Reduce-only orders are exempt from MIN_NOTIONAL. Status,
        MAX_NUM_ORDERS and leverage are not filters of a single order and are not checked here.
        """
        side_ = _side(side)
        type_ = _order_type(order_type)
        quantity = to_decimal("quantity", qty)
        mark = to_decimal("mark_price", mark_price)
        if mark <= 0:
            raise ValidationError("mark_price", f"must be greater than 0, got {mark}")
        market = type_.is_market
        limit_price: Decimal | None = None
        if not market:
            if price is None:
                raise ValidationError("price", f"is required for {type_.value} orders")
            limit_price = to_decimal("price", price)

        found: list[str] = []
        if limit_price is not None:
            if not self.price_filter_ok(limit_price):
                found.append(PRICE_FILTER)
            if not self.percent_price_ok(side_, limit_price, mark):
                found.append(PERCENT_PRICE)
        if not self.lot_ok(quantity, market=market):
            found.append(MARKET_LOT_SIZE if market else LOT_SIZE)
        if not reduce_only and self.min_notional > 0:
            notional = quantity * (mark if limit_price is None else limit_price)
            if notional < self.min_notional:
                found.append(MIN_NOTIONAL)
        return found

    # ----------------------------------------------------------------------------------- brackets

    def bracket_for(self, notional: Decimal) -> LeverageBracket | None:
        """Return the tier a position of ``notional`` falls in; ``None`` past the last cap (or without brackets)."""
        size = abs(notional)
        for bracket in self.brackets:
            if bracket.contains(size):
                return bracket
        return None

    def with_brackets(self, brackets: Iterable[LeverageBracket]) -> SymbolRules:
        """Return a copy carrying these leverage tiers."""
        return replace(self, brackets=_check_brackets(self.symbol, list(brackets)))

    # ----------------------------------------------------------------------------------- parsing

    @classmethod
    def from_binance(cls, raw: Mapping[str, Any]) -> SymbolRules:
        """Parse one ``symbols[]`` entry of ``/fapi/v1/exchangeInfo``."""
        symbol = str(raw.get("symbol", ""))
        where = f"exchange_info.symbols[{symbol or '?'}]"
        if not symbol:
            raise ValidationError("exchange_info.symbols[]", "entry has no symbol")
        filters: dict[str, Mapping[str, Any]] = {}
        for f in raw.get("filters", ()):
            if isinstance(f, Mapping) and "filterType" in f:
                filters[str(f["filterType"])] = f

        def dec(filter_type: str, key: str, default: str | None = None) -> Decimal:
            f = filters.get(filter_type)
            if f is None or key not in f:
                if default is None:
                    raise ValidationError(f"{where}.filters", f"has no {filter_type}.{key}")
                return Decimal(default)
            value = to_decimal(f"{where}.{filter_type}.{key}", str(f[key]))
            if value < 0:
                raise ValidationError(f"{where}.{filter_type}.{key}", f"must not be negative, got {value}")
            return value

        lot = (dec("LOT_SIZE", "stepSize"), dec("LOT_SIZE", "minQty"), dec("LOT_SIZE", "maxQty"))
        # A symbol without MARKET_LOT_SIZE takes LOT_SIZE for market orders too (none of the recorded ones lacks it).
        has_market = "MARKET_LOT_SIZE" in filters
        market = (
            (dec("MARKET_LOT_SIZE", "stepSize"), dec("MARKET_LOT_SIZE", "minQty"), dec("MARKET_LOT_SIZE", "maxQty"))
            if has_market
            else lot
        )
        pct = filters.get("PERCENT_PRICE")
        algo = filters.get("MAX_NUM_ALGO_ORDERS")
        try:
            return cls(
                symbol=symbol,
                status=str(raw.get("status", "")),
                contract_type=str(raw.get("contractType", "")),
                base_asset=str(raw.get("baseAsset", "")),
                quote_asset=str(raw.get("quoteAsset", "")),
                margin_asset=str(raw.get("marginAsset", "")),
                price_precision=int(raw.get("pricePrecision", 0)),
                quantity_precision=int(raw.get("quantityPrecision", 0)),
                tick_size=dec("PRICE_FILTER", "tickSize"),
                min_price=dec("PRICE_FILTER", "minPrice", "0"),
                max_price=dec("PRICE_FILTER", "maxPrice", "0"),
                step_size=lot[0],
                min_qty=lot[1],
                max_qty=lot[2],
                market_step_size=market[0],
                market_min_qty=market[1],
                market_max_qty=market[2],
                min_notional=dec("MIN_NOTIONAL", "notional", "0"),
                multiplier_up=dec("PERCENT_PRICE", "multiplierUp") if pct else None,
                multiplier_down=dec("PERCENT_PRICE", "multiplierDown") if pct else None,
                multiplier_decimal=int(pct["multiplierDecimal"]) if pct and "multiplierDecimal" in pct else None,
                max_num_orders=int(filters.get("MAX_NUM_ORDERS", {}).get("limit", 0)),
                max_num_algo_orders=int(algo["limit"]) if algo and "limit" in algo else None,
                order_types=tuple(str(t) for t in raw.get("orderTypes", ())),
                time_in_force=tuple(str(t) for t in raw.get("timeInForce", ())),
                onboard_time_ms=int(raw["onboardDate"]) if "onboardDate" in raw else None,
                delivery_time_ms=int(raw["deliveryDate"]) if "deliveryDate" in raw else None,
            )
        except ValidationError:
            raise  # already names the exact field
        except (TypeError, ValueError) as exc:
            raise ValidationError(where, f"has a malformed value: {exc}") from None


def load_exchange_info(obj_or_path: Any) -> Mapping[str, SymbolRules]:
    """Return the rules of every symbol of an exchangeInfo response, keyed by symbol (read-only mapping).

    ``obj_or_path`` is the parsed response (a mapping with ``symbols``), its JSON bytes, or a path to a JSON file.
    Every symbol is kept whatever its status; check :attr:`SymbolRules.is_trading` before trading it.
    """
    data = _load_json(obj_or_path, "exchange_info")
    if not isinstance(data, Mapping) or not isinstance(data.get("symbols"), list):
        raise ValidationError("exchange_info", "has no 'symbols' list")
    out: dict[str, SymbolRules] = {}
    for raw in data["symbols"]:
        if not isinstance(raw, Mapping):
            raise ValidationError("exchange_info.symbols[]", "entry is not an object")
        rules = SymbolRules.from_binance(raw)
        out[rules.symbol] = rules
    return MappingProxyType(out)


def attach_brackets(
    rules: Mapping[str, SymbolRules], brackets: Mapping[str, Sequence[LeverageBracket]]
) -> Mapping[str, SymbolRules]:
    """Return a copy of ``rules`` where every symbol with known brackets carries them.

    Symbols without brackets keep an empty tuple (the risk engine refuses to trade them); brackets of symbols
    missing from ``rules`` (delisted or expired) are dropped.
    """
    out = {symbol: (r.with_brackets(brackets[symbol]) if symbol in brackets else r) for symbol, r in rules.items()}
    return MappingProxyType(out)
