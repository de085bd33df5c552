"""The simulated trading account: orders, algo (conditional) orders, one-way positions, wallet and user-data events.

Matching uses the recorded market at the replay position and never changes it (our orders have no market impact,
and the liquidity they take is not removed for the next order):

* MARKET orders (and the crossing part of a LIMIT order) take the recorded depth book (``GET /fapi/v1/depth``'s
  view at the replay position) level by level, so a large order fills at several prices; what the book cannot fill
  expires. Taker commission.
* LIMIT orders that do not cross rest and fill at their price when a replayed trade goes through it (or touches it
  with ``limit_fill_on_touch``), at most the traded quantity per trade. Maker commission.
* Algo orders (``POST /fapi/v1/algoOrder``: STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT,
  TRAILING_STOP_MARKET) trigger on the replayed trade prices (``workingType=CONTRACT_PRICE``, the default) or on the
  served ``markPrice@1s`` frames (``MARK_PRICE``), then place a MARKET (or, for STOP/TAKE_PROFIT, a LIMIT) order.

Positions are one-way (``positionSide=BOTH``), cross margin, in USDT. A fill that adds to a position moves the
entry price to the quantity-weighted average; a fill against it realises ``closed_qty * (price - entry)`` (sign of
the position). Commission is ``price * qty * rate``; both are rounded to 8 decimals, as Binance shows USDT amounts,
and the wallet moves by ``realised - commission``. Margin: initial margin ``|notional| / leverage``; maintenance
margin from the symbol's leverage bracket when the brackets file is available (else 0.4 %). No liquidation, funding
or ADL is simulated.

Every change is published as Binance's user-data events (``ORDER_TRADE_UPDATE``, ``TRADE_LITE``,
``ACCOUNT_UPDATE``, ``ALGO_UPDATE``), in the order the real capture shows for a taker fill: TRADE_LITE, the
order's NEW, ACCOUNT_UPDATE, then the TRADE update.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aegis.errors import ValidationError
from aegis.exchange.rules import (
    LOT_SIZE,
    MARKET_LOT_SIZE,
    MIN_NOTIONAL,
    PERCENT_PRICE,
    PRICE_FILTER,
    LeverageBracket,
    SymbolRules,
    load_leverage_brackets,
)
from aegis.sim.errors import BinanceError

if TYPE_CHECKING:
    from aegis.sim.state import SimState

log = logging.getLogger(__name__)

ZERO = Decimal(0)
_8DP = Decimal("0.00000001")
_AVG_DP = Decimal("0.00001")
DEFAULT_MAINT_RATIO = Decimal("0.004")

REGULAR_TYPES = ("LIMIT", "MARKET")
ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")
OPEN = ("NEW", "PARTIALLY_FILLED")
ALGO_OPEN = ("NEW",)

_DECIMAL_RANGE = "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'"
_CLIENT_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")


@functools.lru_cache(maxsize=2)
def _brackets(path: Path) -> dict[str, tuple[LeverageBracket, ...]]:
    try:
        return dict(load_leverage_brackets(path))
    except ValidationError as exc:
        log.warning("leverage brackets unavailable (%s); maintenance margin uses %s", exc, DEFAULT_MAINT_RATIO)
        return {}


# ---------------------------------------------------------------------------------------------- formatting


def money(value: Decimal) -> str:
    """USDT amounts as Binance prints them in user-data events: ``"0"`` or 8 decimals (``"-1.77340000"``)."""
    return "0" if value == 0 else format(value.quantize(_8DP), "f")


def plain(value: Decimal) -> str:
    """A value without trailing zeros and never in exponent form (``"91739.9"``, ``"0.002"``, ``"0"``)."""
    if value == 0:
        return "0"
    text = format(value.quantize(_8DP) if value.as_tuple().exponent < -8 else value, "f")  # type: ignore[operator]
    return text.rstrip("0").rstrip(".") if "." in text else text


def fixed(value: Decimal, decimals: int) -> str:
    return format(value.quantize(Decimal(1).scaleb(-decimals)), "f")


# ---------------------------------------------------------------------------------------------- records


@dataclass(slots=True)
class Fill:
    price: Decimal
    qty: Decimal
    maker: bool


@dataclass(slots=True)
class SimOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    orig_type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    stop_price: Decimal
    reduce_only: bool
    close_position: bool
    working_type: str
    price_protect: bool
    time_ms: int
    update_time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    algo_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed_qty

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO


@dataclass(slots=True)
class SimAlgo:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    trigger_price: Decimal
    working_type: str
    reduce_only: bool
    close_position: bool
    price_protect: bool
    create_time_ms: int
    update_time_ms: int
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None
    status: str = "NEW"
    actual_order_id: int | None = None
    trigger_time_ms: int = 0
    reject_reason: str = ""
    extreme: Decimal | None = None
    """TRAILING_STOP_MARKET: the highest (SELL) or lowest (BUY) price seen since activation."""

    @property
    def is_open(self) -> bool:
        return self.status in ALGO_OPEN


@dataclass(slots=True)
class SimPosition:
    amount: Decimal = ZERO
    entry_price: Decimal = ZERO
    open_fees: Decimal = ZERO
    realized: Decimal = ZERO
    """Accumulated realised PnL of the symbol (``cr`` in ACCOUNT_UPDATE)."""
    update_time_ms: int = 0

    @property
    def break_even(self) -> Decimal:
        if self.amount == 0:
            return ZERO
        per_unit = self.open_fees / abs(self.amount)
        return self.entry_price + per_unit if self.amount > 0 else self.entry_price - per_unit


@dataclass(slots=True)
class _Executed:
    fill: Fill
    commission: Decimal
    realized: Decimal
    trade_id: int
    status: str
    executed_qty: Decimal
    avg_price: Decimal


@dataclass
class Counters:
    orders_accepted: int = 0
    algo_orders_accepted: int = 0
    fills: int = 0
    events: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- parameters


def _param(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if value == "":
        raise BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _decimal(params: dict[str, str], name: str, mandatory: bool = False) -> Decimal | None:
    raw = params.get(name, "")
    if raw == "":
        if mandatory:
            _param(params, name)
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or "e" in raw.lower():
        raise BinanceError(
            400, -1100, f"Illegal characters found in parameter '{name}'; legal range is {_DECIMAL_RANGE}."
        )
    return value


def _bool(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "").lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise BinanceError(400, -1130, f"Data sent for parameter '{name}' is not valid.")


def _client_id(params: dict[str, str], name: str, prefix: str, seq: int) -> str:
    value = params.get(name, "")
    if not value:
        return f"{prefix}{seq:020d}"[:32]
    if len(value) > 36 or not set(value) <= _CLIENT_ID_CHARS:
        raise BinanceError(400, -4015, "Client order id length should not be more than 36 chars")
    return value


# ---------------------------------------------------------------------------------------------- the account


class SimAccount:
    """One simulated USD-M account (every configured API key trades it)."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        config = state.config
        self.wallet = Decimal(config.initial_balance)
        self.taker_rate = Decimal(config.taker_commission_rate)
        self.maker_rate = Decimal(config.maker_commission_rate)
        self.default_leverage = config.default_leverage
        self.orders: dict[int, SimOrder] = {}
        self._order_by_client: dict[tuple[str, str], int] = {}
        self.algos: dict[int, SimAlgo] = {}
        self._algo_by_client: dict[str, int] = {}
        self.positions: dict[str, SimPosition] = {}
        self.leverage: dict[str, int] = {}
        self._rules: dict[str, SymbolRules] = {}
        self._raw_symbols = {s["symbol"]: s for s in state.exchange_info.get("symbols", [])}
        self.listeners: list[Callable[[dict], None]] = []
        self.counters = Counters()
        self._order_ids = itertools.count(482_255_808_281)
        self._algo_ids = itertools.count(1_000_000_033_225_453)
        self._trade_ids = itertools.count(5_612_428_004)
        self._client_seq = itertools.count(1)
        self.update_time_ms = 0

    # ------------------------------------------------------------------ market views

    def rules(self, symbol: str) -> SymbolRules:
        rules = self._rules.get(symbol)
        if rules is None:
            raw = self._raw_symbols.get(symbol)
            if raw is None:
                raise BinanceError(400, -1121, "Invalid symbol.")
            rules = self._rules[symbol] = SymbolRules.from_binance(raw)
        return rules

    def now_ms(self) -> int:
        return self.state.clock_ms

    def last_price(self, symbol: str) -> Decimal | None:
        tape = self.state.market.tapes.get(symbol)
        return self.state.last_price(tape) if tape is not None else None

    def mark_price(self, symbol: str) -> Decimal | None:
        """The mark price the simulator serves (markPrice@1s, premiumIndex): the last trade price."""
        return self.last_price(symbol)

    def _book(self, symbol: str) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        tape = self.state.market.tapes.get(symbol)
        if tape is None:
            return [], []
        book = self.state.book(tape, 1000)
        bids = [(Decimal(p), Decimal(q)) for p, q in book["bids"]]
        asks = [(Decimal(p), Decimal(q)) for p, q in book["asks"]]
        return bids, asks

    def _leverage(self, symbol: str) -> int:
        return self.leverage.get(symbol, self.default_leverage)

    def _maint_margin(self, symbol: str, notional: Decimal) -> Decimal:
        size = abs(notional)
        path = self.state.config.leverage_brackets
        brackets = _brackets(Path(path)).get(symbol, ()) if path is not None else ()
        for bracket in brackets:
            if bracket.contains(size):
                return size * bracket.maint_margin_ratio - bracket.cum
        return size * DEFAULT_MAINT_RATIO

    # ------------------------------------------------------------------ events

    def _emit(self, event: dict) -> None:
        kind = event.get("e", "?")
        self.counters.events[kind] = self.counters.events.get(kind, 0) + 1
        for listener in list(self.listeners):
            listener(event)

    def _precision(self, symbol: str) -> tuple[int, int]:
        rules = self.rules(symbol)
        return rules.price_precision, rules.quantity_precision

    def _order_event(self, order: SimOrder, exec_type: str, now: int, done: _Executed | None = None) -> dict:
        pp, qp = self._precision(order.symbol)
        status = done.status if done else order.status
        executed = done.executed_qty if done else order.executed_qty
        avg = done.avg_price if done else order.avg_price
        last_qty = done.fill.qty if done else ZERO
        last_price = done.fill.price if done else ZERO
        bids = asks = ZERO
        if exec_type == "NEW" and order.type == "LIMIT":
            notional = order.price * order.qty
            bids, asks = (notional, ZERO) if order.side == "BUY" else (ZERO, notional)
        return {
            "e": "ORDER_TRADE_UPDATE",
            "T": now,
            "E": now,
            "o": {
                "s": order.symbol,
                "c": order.client_order_id,
                "S": order.side,
                "o": order.type,
                "f": order.time_in_force,
                "q": fixed(order.qty, qp),
                "p": fixed(order.price, pp) if order.type == "LIMIT" else "0",
                "ap": fixed(avg, 5) if executed else "0",
                "sp": fixed(order.stop_price, pp) if order.stop_price else "0",
                "x": exec_type,
                "X": status,
                "i": order.order_id,
                "l": fixed(last_qty, qp) if done else "0",
                "z": fixed(executed, qp) if executed else "0",
                "L": fixed(last_price, pp) if done else "0",
                "n": fixed(done.commission, 8) if done else "0",
                "N": "USDT",
                "T": now,
                "t": done.trade_id if done else 0,
                "b": plain(bids),
                "a": plain(asks),
                "m": done.fill.maker if done else False,
                "R": order.reduce_only,
                "wt": order.working_type,
                "ot": order.orig_type,
                "ps": "BOTH",
                "cp": order.close_position,
                "rp": money(done.realized) if done else "0",
                "pP": order.price_protect,
                "si": 0,
                "ss": 0,
                "V": "NONE",
                "pm": "NONE",
                "gtd": 0,
            },
        }

    def _trade_lite(self, order: SimOrder, done: _Executed, now: int) -> dict:
        pp, qp = self._precision(order.symbol)
        return {
            "e": "TRADE_LITE",
            "E": now,
            "T": now,
            "s": order.symbol,
            "q": fixed(order.qty, qp),
            "p": fixed(order.price, pp) if order.type == "LIMIT" else fixed(ZERO, pp),
            "m": done.fill.maker,
            "c": order.client_order_id,
            "S": order.side,
            "L": fixed(done.fill.price, pp),
            "l": fixed(done.fill.qty, qp),
            "t": done.trade_id,
            "i": order.order_id,
        }

    def _account_event(self, symbol: str, now: int, reason: str = "ORDER") -> dict:
        position = self.positions.get(symbol, SimPosition())
        mark = self.mark_price(symbol) or position.entry_price
        unrealized = position.amount * (mark - position.entry_price) if position.amount else ZERO
        return {
            "e": "ACCOUNT_UPDATE",
            "T": now,
            "E": now,
            "a": {
                "B": [{"a": "USDT", "wb": money(self.wallet), "cw": money(self.wallet), "bc": "0"}],
                "P": [
                    {
                        "s": symbol,
                        "pa": plain(position.amount),
                        "ep": plain(position.entry_price),
                        "cr": money(position.realized),
                        "up": money(unrealized),
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                        "ma": "USDT",
                        "bep": plain(position.break_even),
                    }
                ],
                "m": reason,
            },
        }

    def _algo_event(self, algo: SimAlgo, now: int) -> dict:
        pp, qp = self._precision(algo.symbol)
        body: dict[str, Any] = {
            "caid": algo.client_algo_id,
            "aid": algo.algo_id,
            "at": "CONDITIONAL",
            "o": algo.order_type,
            "s": algo.symbol,
            "S": algo.side,
            "ps": "BOTH",
            "f": algo.time_in_force,
            "q": fixed(algo.qty, qp) if algo.qty else "0",
            "X": algo.status,
            "ai": str(algo.actual_order_id) if algo.actual_order_id is not None else "",
        }
        if algo.status != "TRIGGERING":
            actual = self.orders.get(algo.actual_order_id) if algo.actual_order_id is not None else None
            body["ap"] = fixed(actual.avg_price, 5) if actual and actual.executed_qty else "0"
            body["aq"] = fixed(actual.executed_qty, qp) if actual and actual.executed_qty else "0"
            body["act"] = actual.type if actual else "0"
        body.update(
            {
                "tp": fixed(algo.trigger_price, pp) if algo.trigger_price else "0",
                "p": fixed(algo.price, pp) if algo.price else "0",
                "V": "EXPIRE_MAKER",
                "wt": algo.working_type,
                "pm": "NONE",
                "cp": algo.close_position,
                "pP": algo.price_protect,
                "R": algo.reduce_only,
                "tt": algo.trigger_time_ms,
                "gtd": 0,
            }
        )
        if algo.reject_reason:
            body["rm"] = algo.reject_reason
        return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": body}

    # ------------------------------------------------------------------ REST shapes

    def order_json(self, order: SimOrder, with_time: bool = True) -> dict:
        pp, qp = self._precision(order.symbol)
        out = {
            "orderId": order.order_id,
            "symbol": order.symbol,
            "status": order.status,
            "clientOrderId": order.client_order_id,
            "price": fixed(order.price, pp) if order.type == "LIMIT" else fixed(ZERO, pp),
            "avgPrice": fixed(order.avg_price, 5),
            "origQty": fixed(order.qty, qp),
            "executedQty": fixed(order.executed_qty, qp),
            "cumQty": fixed(order.executed_qty, qp),
            "cumQuote": fixed(order.cum_quote, 5),
            "timeInForce": order.time_in_force,
            "type": order.type,
            "reduceOnly": order.reduce_only,
            "closePosition": order.close_position,
            "side": order.side,
            "positionSide": "BOTH",
            "stopPrice": fixed(order.stop_price, pp),
            "workingType": order.working_type,
            "priceProtect": order.price_protect,
            "origType": order.orig_type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "updateTime": order.update_time_ms,
        }
        if with_time:
            out["time"] = order.time_ms
        return out

    def algo_json(self, algo: SimAlgo) -> dict:
        pp, qp = self._precision(algo.symbol)
        actual = self.orders.get(algo.actual_order_id) if algo.actual_order_id is not None else None
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": algo.order_type,
            "symbol": algo.symbol,
            "side": algo.side,
            "positionSide": "BOTH",
            "timeInForce": algo.time_in_force,
            "quantity": fixed(algo.qty, qp),
            "algoStatus": algo.status,
            "actualOrderId": str(algo.actual_order_id) if algo.actual_order_id is not None else "",
            "actualPrice": fixed(actual.avg_price if actual else ZERO, 5),
            "triggerPrice": fixed(algo.trigger_price, pp),
            "price": fixed(algo.price, pp),
            "icebergQuantity": None,
            "tpTriggerPrice": fixed(ZERO, pp),
            "tpPrice": fixed(ZERO, pp),
            "slTriggerPrice": fixed(ZERO, pp),
            "slPrice": fixed(ZERO, pp),
            "tpOrderType": "",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": algo.working_type,
            "priceMatch": "NONE",
            "closePosition": algo.close_position,
            "priceProtect": algo.price_protect,
            "reduceOnly": algo.reduce_only,
            "activatePrice": fixed(algo.activate_price, pp) if algo.activate_price is not None else "",
            "callbackRate": plain(algo.callback_rate) if algo.callback_rate is not None else "",
            "createTime": algo.create_time_ms,
            "updateTime": algo.update_time_ms,
            "triggerTime": algo.trigger_time_ms,
            "goodTillDate": 0,
        }

    # ------------------------------------------------------------------ margin

    def _unrealized(self, symbol: str, position: SimPosition) -> Decimal:
        if not position.amount:
            return ZERO
        mark = self.mark_price(symbol) or position.entry_price
        return position.amount * (mark - position.entry_price)

    def _open_order_margin(self) -> Decimal:
        total = ZERO
        for order in self.orders.values():
            if order.is_open and order.type == "LIMIT" and not order.reduce_only:
                total += order.price * order.remaining / self._leverage(order.symbol)
        return total

    def margins(self) -> dict[str, Decimal]:
        """Totals of the account (cross margin, USDT)."""
        unrealized = position_im = maint = ZERO
        for symbol, position in self.positions.items():
            if not position.amount:
                continue
            mark = self.mark_price(symbol) or position.entry_price
            notional = position.amount * mark
            unrealized += self._unrealized(symbol, position)
            position_im += abs(notional) / self._leverage(symbol)
            maint += self._maint_margin(symbol, notional)
        open_im = self._open_order_margin()
        margin_balance = self.wallet + unrealized
        available = margin_balance - position_im - open_im
        return {
            "wallet": self.wallet,
            "unrealized": unrealized,
            "margin_balance": margin_balance,
            "position_im": position_im,
            "open_order_im": open_im,
            "maint": maint,
            "available": available,
            "max_withdraw": max(ZERO, min(self.wallet, available)),
        }

    def account_v3(self) -> dict:
        m = self.margins()
        initial = m["position_im"] + m["open_order_im"]
        positions = []
        for symbol, position in sorted(self.positions.items()):
            if not position.amount:
                continue
            mark = self.mark_price(symbol) or position.entry_price
            notional = position.amount * mark
            positions.append(
                {
                    "symbol": symbol,
                    "positionSide": "BOTH",
                    "positionAmt": plain(position.amount),
                    "unrealizedProfit": fixed(self._unrealized(symbol, position), 8),
                    "isolatedMargin": "0",
                    "notional": fixed(notional, 8),
                    "isolatedWallet": "0",
                    "initialMargin": fixed(abs(notional) / self._leverage(symbol), 8),
                    "maintMargin": fixed(self._maint_margin(symbol, notional), 8),
                    "updateTime": position.update_time_ms,
                }
            )
        asset = {
            "asset": "USDT",
            "walletBalance": fixed(m["wallet"], 8),
            "unrealizedProfit": fixed(m["unrealized"], 8),
            "marginBalance": fixed(m["margin_balance"], 8),
            "maintMargin": fixed(m["maint"], 8),
            "initialMargin": fixed(initial, 8),
            "positionInitialMargin": fixed(m["position_im"], 8),
            "openOrderInitialMargin": fixed(m["open_order_im"], 8),
            "crossWalletBalance": fixed(m["wallet"], 8),
            "crossUnPnl": fixed(m["unrealized"], 8),
            "availableBalance": fixed(m["available"], 8),
            "maxWithdrawAmount": fixed(m["max_withdraw"], 8),
            "updateTime": self.update_time_ms,
        }
        return {
            "totalInitialMargin": fixed(initial, 8),
            "totalMaintMargin": fixed(m["maint"], 8),
            "totalWalletBalance": fixed(m["wallet"], 8),
            "totalUnrealizedProfit": fixed(m["unrealized"], 8),
            "totalMarginBalance": fixed(m["margin_balance"], 8),
            "totalPositionInitialMargin": fixed(m["position_im"], 8),
            "totalOpenOrderInitialMargin": fixed(m["open_order_im"], 8),
            "totalCrossWalletBalance": fixed(m["wallet"], 8),
            "totalCrossUnPnl": fixed(m["unrealized"], 8),
            "availableBalance": fixed(m["available"], 8),
            "maxWithdrawAmount": fixed(m["max_withdraw"], 8),
            "assets": [asset],
            "positions": positions,
        }

    def position_risk_v3(self, symbol: str | None) -> list[dict]:
        if symbol is not None:
            self.rules(symbol)
        out = []
        for name, position in sorted(self.positions.items()):
            if (symbol is not None and name != symbol) or not position.amount:
                continue
            mark = self.mark_price(name) or position.entry_price
            notional = position.amount * mark
            initial = abs(notional) / self._leverage(name)
            out.append(
                {
                    "symbol": name,
                    "positionSide": "BOTH",
                    "positionAmt": plain(position.amount),
                    "entryPrice": plain(position.entry_price),
                    "breakEvenPrice": plain(position.break_even),
                    "markPrice": fixed(mark, 8),
                    "unRealizedProfit": fixed(self._unrealized(name, position), 8),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": fixed(notional, 8),
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": fixed(initial, 8),
                    "maintMargin": fixed(self._maint_margin(name, notional), 8),
                    "positionInitialMargin": fixed(initial, 8),
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": position.update_time_ms,
                }
            )
        return out

    def set_leverage(self, symbol: str, leverage: int) -> dict:
        rules = self.rules(symbol)
        path = self.state.config.leverage_brackets
        brackets = _brackets(Path(path)).get(symbol, ()) if path is not None else ()
        maximum = brackets[0].initial_leverage if brackets else 125
        if not 1 <= leverage <= maximum:
            raise BinanceError(400, -4028, f"Leverage {leverage} is not valid")
        self.leverage[symbol] = leverage
        cap = next((b.notional_cap for b in brackets if b.initial_leverage >= leverage), Decimal(0))
        return {"leverage": leverage, "maxNotionalValue": plain(cap) if brackets else "0", "symbol": rules.symbol}

    # ------------------------------------------------------------------ filters

    def _check_filters(
        self, rules: SymbolRules, side: str, order_type: str, price: Decimal | None, qty: Decimal, reduce_only: bool
    ) -> None:
        mark = self.mark_price(rules.symbol)
        if mark is None or mark <= 0:
            raise BinanceError(400, -1112, "No orders on book for symbol.")
        market = order_type in ("MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
        found = rules.violations(side, order_type, None if market else price, qty, mark, reduce_only)
        for name in found:
            if name == PRICE_FILTER and price is not None:
                if price <= 0:
                    raise BinanceError(400, -4001, "Price less than 0.")
                if rules.min_price > 0 and price < rules.min_price:
                    raise BinanceError(400, -4013, "Price less than min price.")
                if rules.max_price > 0 and price > rules.max_price:
                    raise BinanceError(400, -4002, "Price greater than max price.")
                raise BinanceError(400, -4014, "Price not increased by tick size.")
            if name == PERCENT_PRICE and price is not None:
                if side == "BUY" and rules.multiplier_up is not None:
                    cap = rules.price_down(mark * rules.multiplier_up)
                    raise BinanceError(400, -4016, f"Limit price can't be higher than {plain(cap)}.")
                if rules.multiplier_down is not None:
                    floor = rules.price_up(mark * rules.multiplier_down)
                    raise BinanceError(400, -4024, f"Limit price can't be lower than {plain(floor)}.")
            if name in (LOT_SIZE, MARKET_LOT_SIZE):
                low, high = (rules.market_min_qty, rules.market_max_qty) if market else (rules.min_qty, rules.max_qty)
                if qty <= 0:
                    raise BinanceError(400, -4003, "Quantity less than or equal to zero.")
                if qty < low:
                    raise BinanceError(400, -4004, "Quantity less than min quantity.")
                if high > 0 and qty > high:
                    raise BinanceError(400, -4005, "Quantity greater than max quantity.")
                if -qty.as_tuple().exponent > rules.quantity_precision:  # type: ignore[operator]
                    raise BinanceError(400, -1111, "Precision is over the maximum defined for this asset.")
                raise BinanceError(400, -4023, "Quantity not increased by step size.")
            if name == MIN_NOTIONAL:
                raise BinanceError(
                    400,
                    -4164,
                    f"Order's notional must be no smaller than {format(rules.min_notional, 'f')} "
                    "(unless you choose reduce only).",
                )

    def _check_trigger_price(self, rules: SymbolRules, trigger: Decimal) -> None:
        if trigger <= 0:
            raise BinanceError(400, -4006, "Stop price less than zero.")
        if rules.max_price > 0 and trigger > rules.max_price:
            raise BinanceError(400, -4007, "Stop price greater than max price.")
        if not rules.price_filter_ok(trigger):
            raise BinanceError(400, -4014, "Price not increased by tick size.")

    def _check_margin(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> None:
        position = self.positions.get(symbol, SimPosition())
        signed = qty if side == "BUY" else -qty
        increasing = qty
        if position.amount and (position.amount > 0) != (signed > 0):
            increasing = max(ZERO, qty - abs(position.amount))
        if increasing <= 0:
            return
        required = increasing * price / self._leverage(symbol) + increasing * price * self.taker_rate
        if required > self.margins()["available"]:
            raise BinanceError(400, -2019, "Margin is insufficient.")

    def _reduce_only_qty(self, symbol: str, side: str, qty: Decimal | None) -> Decimal:
        position = self.positions.get(symbol, SimPosition())
        closing = (side == "SELL" and position.amount > 0) or (side == "BUY" and position.amount < 0)
        if not closing:
            raise BinanceError(400, -2022, "ReduceOnly Order is rejected.")
        size = abs(position.amount)
        return size if qty is None else min(qty, size)

    # ------------------------------------------------------------------ new order

    def new_order(self, params: dict[str, str]) -> dict:
        """``POST /fapi/v1/order``: validate, match, publish events; return the response body."""
        symbol = _param(params, "symbol").upper()
        rules = self.rules(symbol)
        side = _param(params, "side").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        order_type = _param(params, "type").upper()
        if order_type in ALGO_TYPES:
            raise BinanceError(
                400,
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
            )
        if order_type not in REGULAR_TYPES:
            raise BinanceError(400, -1116, "Invalid orderType.")
        if not rules.is_trading:
            raise BinanceError(400, -1122, "Invalid symbol status.")
        reduce_only = _bool(params, "reduceOnly")
        qty = _decimal(params, "quantity", mandatory=True)
        assert qty is not None
        price: Decimal | None = None
        tif = "GTC"
        if order_type == "LIMIT":
            price = _decimal(params, "price", mandatory=True)
            tif = _param(params, "timeInForce").upper()
            if tif not in TIME_IN_FORCE:
                raise BinanceError(400, -1115, "Invalid timeInForce.")
        elif params.get("price"):
            raise BinanceError(400, -1106, "Parameter 'price' sent when not required.")
        client_id = _client_id(params, "newClientOrderId", "x-sim-", next(self._client_seq))
        existing = self._order_by_client.get((symbol, client_id))
        if existing is not None and self.orders[existing].is_open:
            raise BinanceError(400, -4116, "ClientOrderId is duplicated.")
        self._check_filters(rules, side, order_type, price, qty, reduce_only)
        if reduce_only:
            qty = self._reduce_only_qty(symbol, side, qty)
        open_count = sum(1 for o in self.orders.values() if o.is_open and o.symbol == symbol)
        if rules.max_num_orders and open_count >= rules.max_num_orders:
            raise BinanceError(400, -2025, "Reach max open order limit.")
        bids, asks = self._book(symbol)
        opposite = asks if side == "BUY" else bids
        if price is None and not opposite:
            raise BinanceError(400, -1112, "No orders on book for symbol.")
        reference = price if price is not None else opposite[0][0]
        if not reduce_only:
            self._check_margin(symbol, side, qty, reference)
        if tif == "GTX" and price is not None and self._crosses(side, price, bids, asks):
            raise BinanceError(
                400,
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                "The order will not be recorded in the order history",
            )
        now = self.now_ms()
        order = SimOrder(
            order_id=next(self._order_ids),
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            type=order_type,
            orig_type=order_type,
            time_in_force=tif,
            qty=qty,
            price=price if price is not None else ZERO,
            stop_price=ZERO,
            reduce_only=reduce_only,
            close_position=False,
            working_type="CONTRACT_PRICE",
            price_protect=False,
            time_ms=now,
            update_time_ms=now,
        )
        ack = self._submit(order, bids, asks, now)
        self.counters.orders_accepted += 1
        if params.get("newOrderRespType", "ACK").upper() == "RESULT":
            return self.order_json(order, with_time=False)
        return ack

    @staticmethod
    def _crosses(side: str, price: Decimal, bids: list, asks: list) -> bool:
        if side == "BUY":
            return bool(asks) and price >= asks[0][0]
        return bool(bids) and price <= bids[0][0]

    def _taker_fills(
        self, side: str, qty: Decimal, limit: Decimal | None, bids: list, asks: list
    ) -> tuple[list[Fill], Decimal]:
        levels = asks if side == "BUY" else bids
        fills: list[Fill] = []
        remaining = qty
        for level_price, level_qty in levels:
            if remaining <= 0:
                break
            if limit is not None and (level_price > limit if side == "BUY" else level_price < limit):
                break
            take = min(remaining, level_qty)
            fills.append(Fill(level_price, take, maker=False))
            remaining -= take
        return fills, remaining

    def _submit(self, order: SimOrder, bids: list, asks: list, now: int) -> dict:
        """Register ``order``, fill its crossing part at once; return the ACK body (the order as accepted)."""
        self.orders[order.order_id] = order
        self._order_by_client[(order.symbol, order.client_order_id)] = order.order_id
        ack = self.order_json(order, with_time=False)
        limit = order.price if order.type == "LIMIT" else None
        crossing = order.type == "MARKET" or self._crosses(order.side, order.price, bids, asks)
        fills: list[Fill] = []
        remaining = order.qty
        if crossing:
            fills, remaining = self._taker_fills(order.side, order.qty, limit, bids, asks)
        if order.time_in_force == "FOK" and remaining > 0:
            fills = []
        accepted = self._order_event(order, "NEW", now)  # as accepted, before any fill
        executed = self._execute(order, fills, now)
        for done in executed:
            self._emit(self._trade_lite(order, done, now))
        self._emit(accepted)
        if executed:
            self._emit(self._account_event(order.symbol, now))
        for done in executed:
            self._emit(self._order_event(order, "TRADE", now, done))
        rests = order.type == "LIMIT" and order.time_in_force in ("GTC", "GTX")
        if order.is_open and not rests:
            order.status = "EXPIRED"
            order.update_time_ms = now
            self._emit(self._order_event(order, "EXPIRED", now))
        self._after_order_change(order, now)
        return ack

    def _execute(self, order: SimOrder, fills: list[Fill], now: int) -> list[_Executed]:
        """Book ``fills`` of ``order``: position, wallet, order progress. Return what each fill did."""
        out = []
        for fill in fills:
            rate = self.maker_rate if fill.maker else self.taker_rate
            commission = (fill.price * fill.qty * rate).quantize(_8DP)
            realized = self._apply_position(order.symbol, order.side, fill.qty, fill.price, commission, now)
            self.wallet += realized - commission
            order.executed_qty += fill.qty
            order.cum_quote += fill.price * fill.qty
            order.status = "FILLED" if order.executed_qty >= order.qty else "PARTIALLY_FILLED"
            order.update_time_ms = now
            self.update_time_ms = now
            self.counters.fills += 1
            out.append(
                _Executed(
                    fill,
                    commission,
                    realized,
                    next(self._trade_ids),
                    order.status,
                    order.executed_qty,
                    order.avg_price,
                )
            )
        return out

    def _apply_position(
        self, symbol: str, side: str, qty: Decimal, price: Decimal, commission: Decimal, now: int
    ) -> Decimal:
        position = self.positions.setdefault(symbol, SimPosition())
        signed = qty if side == "BUY" else -qty
        amount = position.amount
        realized = ZERO
        if amount == 0 or (amount > 0) == (signed > 0):
            size = abs(amount) + qty
            position.entry_price = (abs(amount) * position.entry_price + qty * price) / size
            position.open_fees += commission
            position.amount = amount + signed
        else:
            closing = min(qty, abs(amount))
            realized = (closing * (price - position.entry_price) * (1 if amount > 0 else -1)).quantize(_8DP)
            position.open_fees = position.open_fees * (abs(amount) - closing) / abs(amount)
            position.amount = amount + signed
            if position.amount == 0:
                position.entry_price = ZERO
                position.open_fees = ZERO
            elif qty > closing:  # flipped: the rest opens a position at this price
                position.entry_price = price
                position.open_fees = commission * (qty - closing) / qty
        position.realized += realized
        position.update_time_ms = now
        return realized

    def _after_order_change(self, order: SimOrder, now: int) -> None:
        """An algo order whose triggered order is done is FINISHED."""
        if order.algo_id is None or order.is_open:
            return
        algo = self.algos.get(order.algo_id)
        if algo is not None and algo.status == "TRIGGERED":
            algo.status = "FINISHED"
            algo.update_time_ms = now
            self._emit(self._algo_event(algo, now))

    # ------------------------------------------------------------------ query and cancel

    def _find_order(self, params: dict[str, str]) -> SimOrder:
        symbol = _param(params, "symbol").upper()
        self.rules(symbol)
        order_id = params.get("orderId", "")
        client_id = params.get("origClientOrderId", "")
        if not order_id and not client_id:
            raise BinanceError(
                400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        order: SimOrder | None = None
        if order_id:
            if not order_id.isdigit():
                raise BinanceError(
                    400, -1100, "Illegal characters found in parameter 'orderId'; legal range is '^[0-9]{1,20}$'."
                )
            order = self.orders.get(int(order_id))
        else:
            found = self._order_by_client.get((symbol, client_id))
            order = self.orders.get(found) if found is not None else None
        if order is None or order.symbol != symbol:
            raise BinanceError(400, -2013, "Order does not exist.")
        return order

    def query_order(self, params: dict[str, str]) -> dict:
        return self.order_json(self._find_order(params))

    def cancel_order(self, params: dict[str, str]) -> dict:
        try:
            order = self._find_order(params)
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(400, -2011, "Unknown order sent.") from None
            raise
        if not order.is_open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        now = self.now_ms()
        order.status = "CANCELED"
        order.update_time_ms = now
        self._emit(self._order_event(order, "CANCELED", now))
        self._after_order_change(order, now)
        return self.order_json(order, with_time=False)

    def open_orders(self, symbol: str | None) -> list[dict]:
        if symbol is not None:
            self.rules(symbol)
        return [
            self.order_json(o)
            for o in sorted(self.orders.values(), key=lambda o: o.order_id)
            if o.is_open and (symbol is None or o.symbol == symbol)
        ]

    # ------------------------------------------------------------------ algo orders

    def new_algo_order(self, params: dict[str, str]) -> dict:
        """``POST /fapi/v1/algoOrder`` (algoType CONDITIONAL)."""
        if _param(params, "algoType").upper() != "CONDITIONAL":
            raise BinanceError(400, -1130, "Data sent for parameter 'algoType' is not valid.")
        symbol = _param(params, "symbol").upper()
        rules = self.rules(symbol)
        side = _param(params, "side").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        order_type = _param(params, "type").upper()
        if order_type not in ALGO_TYPES:
            raise BinanceError(400, -1116, "Invalid orderType.")
        close_position = _bool(params, "closePosition")
        reduce_only = _bool(params, "reduceOnly")
        qty = _decimal(params, "quantity")
        if close_position:
            if qty is not None:
                raise BinanceError(400, -4137, "Quantity must be zero with closePosition equals true.")
            if reduce_only:
                raise BinanceError(400, -1106, "Parameter 'reduceOnly' sent when not required.")
            if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise BinanceError(400, -1106, "Parameter 'closePosition' sent when not required.")
        elif qty is None:
            _param(params, "quantity")
        working_type = params.get("workingType", "CONTRACT_PRICE").upper()
        if working_type not in ("CONTRACT_PRICE", "MARK_PRICE"):
            raise BinanceError(400, -4031, "Invalid parameter working type.")
        tif = params.get("timeInForce", "GTC").upper()
        if tif not in TIME_IN_FORCE:
            raise BinanceError(400, -1115, "Invalid timeInForce.")
        price = ZERO
        trigger = ZERO
        activate: Decimal | None = None
        callback: Decimal | None = None
        if order_type == "TRAILING_STOP_MARKET":
            callback = _decimal(params, "callbackRate", mandatory=True)
            assert callback is not None
            if not Decimal("0.1") <= callback <= Decimal("10"):
                raise BinanceError(400, -2007, "Invalid callBack rate.")
            activate = _decimal(params, "activatePrice")
            if activate is not None:
                self._check_trigger_price(rules, activate)
        else:
            trigger_value = _decimal(params, "triggerPrice", mandatory=True)
            assert trigger_value is not None
            trigger = trigger_value
            self._check_trigger_price(rules, trigger)
            if order_type in ("STOP", "TAKE_PROFIT"):
                price_value = _decimal(params, "price", mandatory=True)
                assert price_value is not None
                price = price_value
        if qty is not None:
            self._check_filters(rules, side, order_type, price if price else None, qty, reduce_only or close_position)
        client_id = _client_id(params, "clientAlgoId", "x-sim-algo-", next(self._client_seq))
        existing = self._algo_by_client.get(client_id)
        if existing is not None and self.algos[existing].is_open:
            raise BinanceError(400, -4116, "ClientOrderId is duplicated.")
        open_algos = sum(1 for a in self.algos.values() if a.is_open and a.symbol == symbol)
        if rules.max_num_algo_orders and open_algos >= rules.max_num_algo_orders:
            raise BinanceError(400, -4045, "Reach max stop order limit.")
        now = self.now_ms()
        algo = SimAlgo(
            algo_id=next(self._algo_ids),
            client_algo_id=client_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            time_in_force=tif,
            qty=qty if qty is not None else ZERO,
            price=price,
            trigger_price=trigger,
            working_type=working_type,
            reduce_only=reduce_only,
            close_position=close_position,
            price_protect=_bool(params, "priceProtect"),
            create_time_ms=now,
            update_time_ms=now,
            activate_price=activate,
            callback_rate=callback,
        )
        reference = self.mark_price(symbol)
        if reference is not None and order_type != "TRAILING_STOP_MARKET" and self._triggered(algo, reference):
            raise BinanceError(400, -2021, "Order would immediately trigger.")
        self.algos[algo.algo_id] = algo
        self._algo_by_client[client_id] = algo.algo_id
        self.counters.algo_orders_accepted += 1
        self._emit(self._algo_event(algo, now))
        return self.algo_json(algo)

    def _find_algo(self, params: dict[str, str]) -> SimAlgo:
        algo_id = params.get("algoId", "")
        client_id = params.get("clientAlgoId", "")
        if not algo_id and not client_id:
            raise BinanceError(400, -1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
        algo: SimAlgo | None = None
        if algo_id:
            if not algo_id.isdigit():
                raise BinanceError(
                    400, -1100, "Illegal characters found in parameter 'algoId'; legal range is '^[0-9]{1,20}$'."
                )
            algo = self.algos.get(int(algo_id))
        else:
            found = self._algo_by_client.get(client_id)
            algo = self.algos.get(found) if found is not None else None
        if algo is None:
            raise BinanceError(400, -2013, "Order does not exist.")
        return algo

    def query_algo(self, params: dict[str, str]) -> dict:
        return self.algo_json(self._find_algo(params))

    def cancel_algo(self, params: dict[str, str]) -> dict:
        try:
            algo = self._find_algo(params)
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(400, -2011, "Unknown order sent.") from None
            raise
        if not algo.is_open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        now = self.now_ms()
        algo.status = "CANCELED"
        algo.update_time_ms = now
        self._emit(self._algo_event(algo, now))
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_algo_id,
            "code": "200",
            "msg": "success",
        }

    def open_algo_orders(self, symbol: str | None) -> list[dict]:
        if symbol is not None:
            self.rules(symbol)
        return [
            self.algo_json(a)
            for a in sorted(self.algos.values(), key=lambda a: a.algo_id)
            if a.is_open and (symbol is None or a.symbol == symbol)
        ]

    # ------------------------------------------------------------------ the replay drives fills and triggers

    @staticmethod
    def _triggered(algo: SimAlgo, price: Decimal) -> bool:
        stop_like = algo.order_type in ("STOP", "STOP_MARKET")
        if algo.side == "BUY":
            return price >= algo.trigger_price if stop_like else price <= algo.trigger_price
        return price <= algo.trigger_price if stop_like else price >= algo.trigger_price

    def _trailing_triggered(self, algo: SimAlgo, price: Decimal) -> bool:
        if algo.extreme is None:
            activated = algo.activate_price is None or (
                price >= algo.activate_price if algo.side == "SELL" else price <= algo.activate_price
            )
            if not activated:
                return False
            algo.extreme = price
        assert algo.callback_rate is not None
        rate = algo.callback_rate / 100
        if algo.side == "SELL":
            algo.extreme = max(algo.extreme, price)
            return price <= algo.extreme * (1 - rate)
        algo.extreme = min(algo.extreme, price)
        return price >= algo.extreme * (1 + rate)

    def has_work(self) -> bool:
        return any(o.is_open for o in self.orders.values()) or any(a.is_open for a in self.algos.values())

    def on_advance(self, start: int, end: int) -> None:
        """Process the replayed frames ``[start, end)``: fill resting LIMIT orders, trigger algo orders."""
        if end <= start or not self.has_work():
            return
        market = self.state.market
        timeline = market.timeline
        symbols = {o.symbol for o in self.orders.values() if o.is_open} | {
            a.symbol for a in self.algos.values() if a.is_open
        }
        for symbol in sorted(symbols):
            tape = market.tapes.get(symbol)
            if tape is None:
                continue
            events: list[tuple[int, str, Decimal, Decimal]] = []
            lo, hi = np.searchsorted(tape.trade_index, [start, end], side="left")
            for k in range(int(lo), int(hi)):
                trade = tape.trades[k]
                events.append((int(tape.trade_index[k]), "trade", trade.price, trade.qty))
            if any(a.is_open and a.symbol == symbol and a.working_type == "MARK_PRICE" for a in self.algos.values()):
                mark_stream = f"{symbol.lower()}@markPrice@1s"
                streams = timeline.streams
                for index in range(start, min(end, len(streams))):
                    if streams[index] == mark_stream:
                        mark = Decimal(json.loads(timeline.raw(index))["p"])
                        events.append((index, "mark", mark, ZERO))
            events.sort(key=lambda e: (e[0], e[1]))
            for index, kind, price, qty in events:
                now = int(timeline.exch_ms[index])
                if kind == "trade":
                    self._match_resting(symbol, price, qty, now)
                self._check_algos(symbol, "CONTRACT_PRICE" if kind == "trade" else "MARK_PRICE", price, now)

    def _match_resting(self, symbol: str, trade_price: Decimal, trade_qty: Decimal, now: int) -> None:
        touch = self.state.config.limit_fill_on_touch
        available = trade_qty
        for order in sorted(self.orders.values(), key=lambda o: o.order_id):
            if available <= 0:
                break
            if not order.is_open or order.symbol != symbol or order.type != "LIMIT":
                continue
            if order.side == "BUY":
                crossed = trade_price < order.price or (touch and trade_price == order.price)
            else:
                crossed = trade_price > order.price or (touch and trade_price == order.price)
            if not crossed:
                continue
            qty = min(order.remaining, available)
            if order.reduce_only:
                try:
                    qty = self._reduce_only_qty(symbol, order.side, qty)
                except BinanceError:
                    order.status = "EXPIRED"
                    order.update_time_ms = now
                    self._emit(self._order_event(order, "EXPIRED", now))
                    self._after_order_change(order, now)
                    continue
            available -= qty
            executed = self._execute(order, [Fill(order.price, qty, maker=True)], now)
            for done in executed:
                self._emit(self._trade_lite(order, done, now))
            self._emit(self._account_event(symbol, now))
            for done in executed:
                self._emit(self._order_event(order, "TRADE", now, done))
            self._after_order_change(order, now)

    def _check_algos(self, symbol: str, working_type: str, price: Decimal, now: int) -> None:
        for algo in sorted(self.algos.values(), key=lambda a: a.algo_id):
            if not algo.is_open or algo.symbol != symbol or algo.working_type != working_type:
                continue
            if algo.order_type == "TRAILING_STOP_MARKET":
                hit = self._trailing_triggered(algo, price)
            else:
                hit = self._triggered(algo, price)
            if hit:
                self._trigger(algo, now)

    def _trigger(self, algo: SimAlgo, now: int) -> None:
        algo.status = "TRIGGERING"
        algo.trigger_time_ms = now
        algo.update_time_ms = now
        self._emit(self._algo_event(algo, now))
        qty: Decimal | None = algo.qty if algo.qty else None
        try:
            if algo.close_position or algo.reduce_only:
                qty = self._reduce_only_qty(algo.symbol, algo.side, qty)
        except BinanceError:
            algo.status = "REJECTED" if algo.reduce_only else "EXPIRED"
            algo.reject_reason = "Reduce Only reject" if algo.reduce_only else ""
            self._emit(self._algo_event(algo, now))
            return
        assert qty is not None
        limit = algo.order_type in ("STOP", "TAKE_PROFIT")
        order = SimOrder(
            order_id=next(self._order_ids),
            client_order_id=algo.client_algo_id,
            symbol=algo.symbol,
            side=algo.side,
            type="LIMIT" if limit else "MARKET",
            orig_type=algo.order_type,
            time_in_force=algo.time_in_force if limit else "GTC",
            qty=qty,
            price=algo.price if limit else ZERO,
            stop_price=algo.trigger_price,
            reduce_only=algo.reduce_only or algo.close_position,
            close_position=algo.close_position,
            working_type=algo.working_type,
            price_protect=algo.price_protect,
            time_ms=now,
            update_time_ms=now,
            algo_id=algo.algo_id,
        )
        algo.actual_order_id = order.order_id
        algo.status = "TRIGGERED"
        self._emit(self._algo_event(algo, now))
        bids, asks = self._book(algo.symbol)
        self._submit(order, bids, asks, now)
