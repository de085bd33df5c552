"""Binance USD-M trading client: signed REST, idempotent order placement, rate-limit tracking, reconciliation.

What it does on each kind of answer (docs/live-trading.md has the table):

* **-1021** (timestamp ahead of the server or outside ``recvWindow``): the request was refused before it reached the
  matching engine, so the client re-reads the server time (``GET /fapi/v1/time``), corrects its offset and sends
  the same request once more, with the same ``newClientOrderId``.
* **429 / 418**: the client records ``Retry-After`` and sends nothing at all until it has passed; the call raises
  :class:`TradingRateLimited`. It also refuses, without sending, an order while the ``X-MBX-ORDER-COUNT-10S`` /
  ``-1M`` counts the exchange reported (or its own count since) have reached the exchangeInfo ``ORDERS`` limits, and
  any request while ``X-MBX-USED-WEIGHT-1M`` is at the ``REQUEST_WEIGHT`` limit, so a 429 should never happen and a
  418 ban never can.
* **503 "Unknown error"**, a timeout or a dropped connection while placing an order: the order may or may not
  exist. The client never sends it again; it queries it by its client id (``GET /fapi/v1/order`` with
  ``origClientOrderId``, or ``GET /fapi/v1/algoOrder`` with ``clientAlgoId``) and reports what it found.
* **-4116** "ClientOrderId is duplicated.": the id belongs to an open order, i.e. this order was already placed by an
  earlier attempt; the client returns that order (found by query) as ``ALREADY_PLACED``.

Every order carries a client id (``newClientOrderId`` / ``clientAlgoId``); pass your own (derived from the decision
that wants the order) to make retries across restarts idempotent. Binance only rejects a duplicate id among OPEN
orders, so a filled MARKET order's id can be reused: the query-before-resend rule, not -4116, is what prevents a
second order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

import aiohttp
import msgspec

from aegis.errors import ExchangeError, OrderStatusUnknown, RateLimited, ValidationError
from aegis.exchange.binance import encode_params, sign
from aegis.exchange.rest import BinanceRest, WeightTracker

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW_MS = 5000
DEFAULT_ORDER_LIMIT_10S = 300
DEFAULT_ORDER_LIMIT_1M = 1200
ZERO = Decimal(0)
_json = msgspec.json.Decoder()
T = TypeVar("T")


# --------------------------------------------------------------------------------------------- errors


class BinanceApiError(ExchangeError):
    """Binance refused the request with ``{"code": …, "msg": …}`` (a definite answer: nothing was executed)."""

    def __init__(self, path: str, status: int, code: int, msg: str) -> None:
        super().__init__(f"{path}: HTTP {status}, code {code}: {msg}")
        self.path = path
        self.status = status
        self.code = code
        self.msg = msg


class TradingRateLimited(RateLimited):
    """A rate limit stops this request: ``sent`` tells whether it reached the exchange (a 429) or not."""

    def __init__(self, message: str, retry_after_s: float, sent: bool) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.sent = sent


# --------------------------------------------------------------------------------------------- signing


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A SIGNED request ready to send: ``signature`` is appended to the body when there is one, else the query."""

    method: str
    path: str
    query: str
    body: str
    signature: str

    @property
    def total_params(self) -> str:
        """What was signed: the query string followed by the body, with nothing in between."""
        return self.query + self.body

    def url(self, base_url: str) -> str:
        query = self.query if self.body else _join(self.query, f"signature={self.signature}")
        return f"{base_url.rstrip('/')}{self.path}" + (f"?{query}" if query else "")

    @property
    def body_to_send(self) -> str:
        return _join(self.body, f"signature={self.signature}") if self.body else ""


def _join(left: str, right: str) -> str:
    return f"{left}&{right}" if left else right


Params = Mapping[str, object] | Iterable[tuple[str, object]]


def build_signed_request(
    method: str,
    path: str,
    *,
    secret: str,
    timestamp_ms: int,
    query: Params = (),
    body: Params | None = None,
    recv_window_ms: int | None = None,
) -> SignedRequest:
    """Return a SIGNED request: parameters in the given order, then ``recvWindow`` and ``timestamp``.

    ``recvWindow`` and ``timestamp`` go at the end of the body when ``body`` is given (even empty), else at the end
    of the query string, as in Binance's documented examples; the signature is
    ``sign(secret, query + body)`` (:func:`aegis.exchange.binance.sign`).
    """
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms <= 0:
        raise ValidationError("timestamp_ms", f"must be a positive int, got {timestamp_ms!r}")
    tail: list[tuple[str, object]] = []
    if recv_window_ms is not None:
        tail.append(("recvWindow", recv_window_ms))
    tail.append(("timestamp", timestamp_ms))
    query_items = list(query.items() if isinstance(query, Mapping) else query)
    if body is None:
        query_text, body_text = encode_params(query_items + tail), ""
    else:
        body_items = list(body.items() if isinstance(body, Mapping) else body)
        query_text, body_text = encode_params(query_items), encode_params(body_items + tail)
    return SignedRequest(method.upper(), path, query_text, body_text, sign(secret, query_text + body_text))


# --------------------------------------------------------------------------------------------- typed answers


class Order(msgspec.Struct, frozen=True, rename="camel"):
    """A regular order as ``/fapi/v1/order`` and ``/fapi/v1/openOrders`` return it."""

    order_id: int
    symbol: str
    status: str
    client_order_id: str
    side: str
    type: str
    orig_qty: Decimal
    executed_qty: Decimal = ZERO
    price: Decimal = ZERO
    avg_price: Decimal = ZERO
    cum_quote: Decimal = ZERO
    time_in_force: str = "GTC"
    reduce_only: bool = False
    close_position: bool = False
    position_side: str = "BOTH"
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    orig_type: str = ""
    time: int = 0
    update_time: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


class AlgoOrder(msgspec.Struct, frozen=True, rename="camel"):
    """A conditional (algo) order as ``/fapi/v1/algoOrder`` and ``/fapi/v1/openAlgoOrders`` return it."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    algo_status: str
    algo_type: str = "CONDITIONAL"
    position_side: str = "BOTH"
    time_in_force: str = "GTC"
    quantity: Decimal = ZERO
    trigger_price: Decimal = ZERO
    price: Decimal = ZERO
    actual_order_id: str = ""
    actual_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    close_position: bool = False
    price_protect: bool = False
    reduce_only: bool = False
    create_time: int = 0
    update_time: int = 0
    trigger_time: int = 0

    @property
    def is_open(self) -> bool:
        return self.algo_status == "NEW"


class AccountAsset(msgspec.Struct, frozen=True, rename="camel"):
    asset: str
    wallet_balance: Decimal
    unrealized_profit: Decimal = ZERO
    margin_balance: Decimal = ZERO
    maint_margin: Decimal = ZERO
    initial_margin: Decimal = ZERO
    position_initial_margin: Decimal = ZERO
    open_order_initial_margin: Decimal = ZERO
    cross_wallet_balance: Decimal = ZERO
    cross_un_pnl: Decimal = ZERO
    available_balance: Decimal = ZERO
    max_withdraw_amount: Decimal = ZERO
    update_time: int = 0


class AccountPosition(msgspec.Struct, frozen=True, rename="camel"):
    symbol: str
    position_amt: Decimal
    position_side: str = "BOTH"
    unrealized_profit: Decimal = ZERO
    notional: Decimal = ZERO
    initial_margin: Decimal = ZERO
    maint_margin: Decimal = ZERO
    isolated_margin: Decimal = ZERO
    update_time: int = 0


class Account(msgspec.Struct, frozen=True, rename="camel"):
    """``GET /fapi/v3/account``: totals, the assets, and the positions that are open."""

    total_wallet_balance: Decimal
    total_unrealized_profit: Decimal = ZERO
    total_margin_balance: Decimal = ZERO
    total_initial_margin: Decimal = ZERO
    total_maint_margin: Decimal = ZERO
    total_position_initial_margin: Decimal = ZERO
    total_open_order_initial_margin: Decimal = ZERO
    total_cross_wallet_balance: Decimal = ZERO
    total_cross_un_pnl: Decimal = ZERO
    available_balance: Decimal = ZERO
    max_withdraw_amount: Decimal = ZERO
    assets: tuple[AccountAsset, ...] = ()
    positions: tuple[AccountPosition, ...] = ()

    def asset(self, name: str) -> AccountAsset | None:
        return next((a for a in self.assets if a.asset == name), None)


class PositionRisk(msgspec.Struct, frozen=True, rename="camel"):
    """One position of ``GET /fapi/v3/positionRisk``."""

    symbol: str
    position_amt: Decimal
    entry_price: Decimal = ZERO
    break_even_price: Decimal = ZERO
    mark_price: Decimal = ZERO
    un_realized_profit: Decimal = ZERO
    liquidation_price: Decimal = ZERO
    notional: Decimal = ZERO
    margin_asset: str = "USDT"
    position_side: str = "BOTH"
    initial_margin: Decimal = ZERO
    maint_margin: Decimal = ZERO
    isolated_margin: Decimal = ZERO
    adl: int = 0
    update_time: int = 0


def parse(kind: type[T], raw: Any) -> T:
    """Return a Binance answer as the typed value ``kind`` (numbers from strings as Binance sends them)."""
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ExchangeError(f"unexpected {kind.__name__} from Binance: {exc}") from exc


class Outcome(StrEnum):
    """How a placement ended."""

    PLACED = "PLACED"
    """The exchange accepted the order and said so."""
    ALREADY_PLACED = "ALREADY_PLACED"
    """The client id belongs to an open order from an earlier attempt (-4116); this is that order."""
    RECOVERED = "RECOVERED"
    """The answer was unknown (503, timeout); the order was found by its client id and exists."""
    NOT_FOUND = "NOT_FOUND"
    """The answer was unknown and no order with this client id was found; nothing was resent."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Result of a placement: the order as the exchange knows it (None when NOT_FOUND), and how we learnt it."""

    outcome: Outcome
    order: Order | AlgoOrder | None
    client_id: str


# --------------------------------------------------------------------------------------------- order limits


class OrderCountTracker:
    """Orders placed in the current 10 s and 1 min windows, from ``X-MBX-ORDER-COUNT-10S``/``-1M`` and own counts."""

    def __init__(
        self,
        limit_10s: int = DEFAULT_ORDER_LIMIT_10S,
        limit_1m: int = DEFAULT_ORDER_LIMIT_1M,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit_10s = limit_10s
        self.limit_1m = limit_1m
        self._clock = clock
        self._window_10s = self._window_1m = -1
        self.count_10s = 0
        self.count_1m = 0

    def _roll(self) -> None:
        now = self._clock()
        if int(now // 10) != self._window_10s:
            self._window_10s, self.count_10s = int(now // 10), 0
        if int(now // 60) != self._window_1m:
            self._window_1m, self.count_1m = int(now // 60), 0

    def seconds_until_room(self) -> float:
        """Return 0 when one more order fits under both limits, else the wait until the window that is full ends."""
        self._roll()
        now = self._clock()
        if self.count_1m >= self.limit_1m:
            return 60.0 - now % 60.0 + 0.05
        if self.count_10s >= self.limit_10s:
            return 10.0 - now % 10.0 + 0.05
        return 0.0

    def record(self, count_10s: str | None, count_1m: str | None) -> None:
        """Count one order sent; the exchange's counts win when it reports them (other clients share the account)."""
        self._roll()
        self.count_10s = int(count_10s) if count_10s and count_10s.isdigit() else self.count_10s + 1
        self.count_1m = int(count_1m) if count_1m and count_1m.isdigit() else self.count_1m + 1


# --------------------------------------------------------------------------------------------- the client


def new_client_id(prefix: str = "aegis") -> str:
    """Return a fresh client order id (``[.A-Z:/a-z0-9_-]{1,36}``, as Binance requires)."""
    return f"{prefix}-{uuid.uuid4().hex[: 30 - len(prefix)]}"


class BinanceTrading(BinanceRest):
    """Signed USD-M endpoints on top of the public client (same base URL, same weight tracking).

    ``clock`` returns seconds since the epoch (injected so tests control it); ``reconcile_attempts`` and
    ``reconcile_delay_s`` bound the queries after an unknown answer; ``max_rate_wait_s`` is how long a call may
    wait for room under a rate limit before it raises :class:`TradingRateLimited` without sending.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10.0,
        weights: WeightTracker | None = None,
        orders: OrderCountTracker | None = None,
        recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
        clock: Callable[[], float] = time.time,
        reconcile_attempts: int = 3,
        reconcile_delay_s: float = 0.5,
        max_rate_wait_s: float = 0.0,
    ) -> None:
        if not api_key or not api_secret:
            raise ValidationError("api_key", "an API key and secret are required for signed endpoints")
        super().__init__(base_url, session=session, timeout_s=timeout_s, weights=weights or WeightTracker(clock=clock))
        self._api_key = api_key
        self._api_secret = api_secret
        self.orders = orders or OrderCountTracker(clock=clock)
        self.recv_window_ms = recv_window_ms
        self._clock = clock
        self.time_offset_ms = 0
        self.time_resyncs = 0
        self._blocked_until = 0.0
        self.reconcile_attempts = reconcile_attempts
        self.reconcile_delay_s = reconcile_delay_s
        self.max_rate_wait_s = max_rate_wait_s
        self.requests_sent = 0

    def __repr__(self) -> str:  # never show the secret
        return f"BinanceTrading({self.base_url!r}, api_key={self._api_key[:4]}…)"

    # ------------------------------------------------------------------ time

    def now_ms(self) -> int:
        """The exchange's time as this client estimates it: local clock plus the measured offset."""
        return int(self._clock() * 1000) + self.time_offset_ms

    async def sync_time(self) -> int:
        """Measure the offset to the server clock (``GET /fapi/v1/time``, half the round trip); return it in ms."""
        before = self._clock()
        server = await self.server_time_ms()
        after = self._clock()
        self.time_offset_ms = server - int((before + after) / 2 * 1000)
        self.time_resyncs += 1
        log.info("server time offset %d ms", self.time_offset_ms)
        return self.time_offset_ms

    async def exchange_info(self) -> dict[str, Any]:
        info = await super().exchange_info()
        for limit in info.get("rateLimits", []):
            if limit.get("rateLimitType") != "ORDERS":
                continue
            interval, number, value = limit.get("interval"), int(limit.get("intervalNum", 1)), int(limit["limit"])
            if interval == "SECOND" and number == 10:
                self.orders.limit_10s = value
            elif interval == "MINUTE" and number == 1:
                self.orders.limit_1m = value
        return info

    # ------------------------------------------------------------------ sending

    async def get(self, path: str, params: dict[str, Any] | None = None, *, weight: int = 1) -> Any:
        """Public GET, held back like every other request while a 429's Retry-After runs."""
        await self._wait_for_room(weight, False)
        self.requests_sent += 1
        try:
            return await super().get(path, params, weight=weight)
        except RateLimited as exc:
            if isinstance(exc, TradingRateLimited):
                raise
            raise self._note_rate_limited(path, 429, None) from exc

    async def _wait_for_room(self, weight: int, order: bool) -> None:
        waits = [max(0.0, self._blocked_until - self._clock()), self.weights.seconds_until_room(weight, 1.0)]
        if order:
            waits.append(self.orders.seconds_until_room())
        wait = max(waits)
        if wait <= 0:
            return
        if wait > self.max_rate_wait_s:
            raise TradingRateLimited(f"rate limit reached: not sending for {wait:.1f} s", wait, sent=False)
        await asyncio.sleep(wait)

    def _note_rate_limited(self, path: str, status: int, retry_after: str | None) -> TradingRateLimited:
        try:
            seconds = float(retry_after) if retry_after else 60.0
        except ValueError:
            seconds = 60.0
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        log.warning("%s: HTTP %d, sending nothing for %.0f s", path, status, seconds)
        return TradingRateLimited(f"{path}: HTTP {status}, retry after {seconds:.0f} s", seconds, sent=True)

    async def _send(
        self, method: str, path: str, params: Params, *, weight: int, order: bool = False, signed: bool = True
    ) -> Any:
        """Send a request (SIGNED unless ``signed`` is False: API key only); return the decoded JSON.

        Raise :class:`TradingRateLimited`, :class:`BinanceApiError`, or :class:`OrderStatusUnknown` (HTTP 503, or
        a timeout/connection error: the request may have been executed).
        """
        for attempt in range(2):
            await self._wait_for_room(weight, order)
            if signed:
                request = build_signed_request(
                    method,
                    path,
                    secret=self._api_secret,
                    timestamp_ms=self.now_ms(),
                    query=params,
                    recv_window_ms=self.recv_window_ms,
                )
                url, body = request.url(self.base_url), request.body_to_send
            else:
                query = encode_params(params)
                url, body = self.base_url + path + (f"?{query}" if query else ""), ""
            headers = {API_KEY_HEADER: self._api_key}
            if body:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            self.requests_sent += 1
            try:
                async with self._client().request(method, url, data=body or None, headers=headers) as response:
                    payload = await response.read()
                    status = response.status
                    self.weights.record(weight, response.headers.get("X-MBX-USED-WEIGHT-1M"))
                    if order:
                        self.orders.record(
                            response.headers.get("X-MBX-ORDER-COUNT-10S"), response.headers.get("X-MBX-ORDER-COUNT-1M")
                        )
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise OrderStatusUnknown(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            if status in (418, 429):
                raise self._note_rate_limited(path, status, retry_after)
            if status == 503 or status >= 500:
                raise OrderStatusUnknown(f"{method} {path}: HTTP {status}: {payload[:200].decode(errors='replace')}")
            try:
                data = _json.decode(payload) if payload else None
            except msgspec.DecodeError as exc:
                raise ExchangeError(f"{path}: HTTP {status}, response is not JSON: {exc}") from exc
            if status >= 400:
                code = int(data.get("code", 0)) if isinstance(data, dict) else 0
                msg = str(data.get("msg", "")) if isinstance(data, dict) else payload[:200].decode(errors="replace")
                if code == -1021 and attempt == 0 and signed:
                    log.warning("%s: %s; resyncing the server time and retrying once", path, msg)
                    await self.sync_time()
                    continue
                raise BinanceApiError(path, status, code, msg)
            return data
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ orders

    async def place_order(
        self,
        symbol: str,
        side: str,
        order_type: str,
        quantity: Decimal,
        *,
        price: Decimal | None = None,
        time_in_force: str | None = None,
        reduce_only: bool = False,
        client_order_id: str | None = None,
    ) -> Placement:
        """Place a MARKET or LIMIT order (``POST /fapi/v1/order``), idempotent by ``client_order_id``.

        Conditional types (STOP*, TAKE_PROFIT*, TRAILING_STOP_MARKET) go through :meth:`place_algo_order`.
        """
        order_type = order_type.upper()
        if order_type not in ("MARKET", "LIMIT"):
            raise ValidationError("order_type", f"{order_type} goes through place_algo_order (POST /fapi/v1/algoOrder)")
        if order_type == "LIMIT" and price is None:
            raise ValidationError("price", "is required for LIMIT orders")
        client_id = client_order_id or new_client_id()
        params: list[tuple[str, object]] = [
            ("symbol", symbol),
            ("side", side.upper()),
            ("type", order_type),
            ("quantity", quantity),
            ("price", price),
            ("timeInForce", (time_in_force or "GTC") if order_type == "LIMIT" else None),
            ("reduceOnly", True if reduce_only else None),
            ("newClientOrderId", client_id),
            ("newOrderRespType", "RESULT"),
        ]
        try:
            data = await self._send("POST", "/fapi/v1/order", params, weight=0, order=True)
        except BinanceApiError as exc:
            if exc.code != -4116:
                raise
            found = await self.query_order(symbol, client_order_id=client_id)
            if found is None:
                raise
            log.info("order %s was already placed (-4116): %s", client_id, found.status)
            return Placement(Outcome.ALREADY_PLACED, found, client_id)
        except OrderStatusUnknown as exc:
            log.warning("order %s: status unknown (%s); reconciling by query, never resending", client_id, exc)
            return await self._reconcile(lambda: self.query_order(symbol, client_order_id=client_id), client_id)
        return Placement(Outcome.PLACED, parse(Order, data), client_id)

    async def place_algo_order(
        self,
        symbol: str,
        side: str,
        order_type: str,
        *,
        trigger_price: Decimal | None = None,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        close_position: bool = False,
        reduce_only: bool = False,
        working_type: str = "CONTRACT_PRICE",
        time_in_force: str | None = None,
        price_protect: bool = False,
        activate_price: Decimal | None = None,
        callback_rate: Decimal | None = None,
        client_algo_id: str | None = None,
    ) -> Placement:
        """Place a conditional order (``POST /fapi/v1/algoOrder``, algoType CONDITIONAL), idempotent by client id.

        Types: STOP_MARKET, TAKE_PROFIT_MARKET (``close_position`` closes the whole position), STOP, TAKE_PROFIT
        (with ``price``), TRAILING_STOP_MARKET (``callback_rate`` in percent, optional ``activate_price``).
        ``working_type`` picks the trigger price: CONTRACT_PRICE (last trade, the default) or MARK_PRICE.
        """
        order_type = order_type.upper()
        if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"):
            raise ValidationError("order_type", f"{order_type} is not a conditional order type")
        if close_position and quantity is not None:
            raise ValidationError("quantity", "cannot be sent with close_position")
        if not close_position and quantity is None:
            raise ValidationError("quantity", "is required unless close_position")
        client_id = client_algo_id or new_client_id("aegis-a")
        params: list[tuple[str, object]] = [
            ("algoType", "CONDITIONAL"),
            ("symbol", symbol),
            ("side", side.upper()),
            ("type", order_type),
            ("quantity", quantity),
            ("price", price),
            ("triggerPrice", trigger_price),
            ("workingType", working_type),
            ("timeInForce", time_in_force),
            ("closePosition", True if close_position else None),
            ("reduceOnly", True if reduce_only else None),
            ("priceProtect", True if price_protect else None),
            ("activatePrice", activate_price),
            ("callbackRate", callback_rate),
            ("clientAlgoId", client_id),
        ]
        try:
            data = await self._send("POST", "/fapi/v1/algoOrder", params, weight=0, order=True)
        except BinanceApiError as exc:
            if exc.code != -4116:
                raise
            found = await self.query_algo_order(client_algo_id=client_id)
            if found is None:
                raise
            return Placement(Outcome.ALREADY_PLACED, found, client_id)
        except OrderStatusUnknown as exc:
            log.warning("algo order %s: status unknown (%s); reconciling by query, never resending", client_id, exc)
            return await self._reconcile(lambda: self.query_algo_order(client_algo_id=client_id), client_id)
        return Placement(Outcome.PLACED, parse(AlgoOrder, data), client_id)

    async def _reconcile(self, query: Callable[[], Any], client_id: str) -> Placement:
        """Query an order whose placement answer was unknown; RECOVERED if it exists, NOT_FOUND otherwise.

        Raise :class:`OrderStatusUnknown` when the queries themselves cannot get an answer (the caller must
        reconcile later, e.g. from the user data stream or ``openOrders``); never resend the order.
        """
        last_error: Exception | None = None
        for attempt in range(self.reconcile_attempts):
            if attempt:
                await asyncio.sleep(self.reconcile_delay_s * attempt)
            try:
                found = await query()
            except (OrderStatusUnknown, TradingRateLimited) as exc:
                last_error = exc
                continue
            if found is not None:
                log.info("order %s found after an unknown answer: %s", client_id, found)
                return Placement(Outcome.RECOVERED, found, client_id)
            last_error = None
        if last_error is not None:
            raise OrderStatusUnknown(f"order {client_id}: status still unknown after reconciling: {last_error}")
        log.warning("order %s: not found after an unknown answer; not resent", client_id)
        return Placement(Outcome.NOT_FOUND, None, client_id)

    async def query_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> Order | None:
        """``GET /fapi/v1/order`` by ``origClientOrderId`` or ``orderId``; None when it does not exist (-2013)."""
        if client_order_id is None and order_id is None:
            raise ValidationError("client_order_id", "either client_order_id or order_id is required")
        params = [("symbol", symbol), ("orderId", order_id), ("origClientOrderId", client_order_id)]
        try:
            return parse(Order, await self._send("GET", "/fapi/v1/order", params, weight=1))
        except BinanceApiError as exc:
            if exc.code == -2013:
                return None
            raise

    async def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> Order:
        params = [("symbol", symbol), ("orderId", order_id), ("origClientOrderId", client_order_id)]
        return parse(Order, await self._send("DELETE", "/fapi/v1/order", params, weight=1))

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """``GET /fapi/v1/openOrders`` (weight 1 for one symbol, 40 for all)."""
        data = await self._send("GET", "/fapi/v1/openOrders", [("symbol", symbol)], weight=1 if symbol else 40)
        return parse(list[Order], data)

    async def query_algo_order(
        self, *, client_algo_id: str | None = None, algo_id: int | None = None
    ) -> AlgoOrder | None:
        """``GET /fapi/v1/algoOrder`` by ``clientAlgoId`` or ``algoId``; None when it does not exist."""
        if client_algo_id is None and algo_id is None:
            raise ValidationError("client_algo_id", "either client_algo_id or algo_id is required")
        params = [("algoId", algo_id), ("clientAlgoId", client_algo_id)]
        try:
            return parse(AlgoOrder, await self._send("GET", "/fapi/v1/algoOrder", params, weight=1))
        except BinanceApiError as exc:
            if exc.code == -2013:
                return None
            raise

    async def cancel_algo_order(self, *, client_algo_id: str | None = None, algo_id: int | None = None) -> Any:
        params = [("algoId", algo_id), ("clientAlgoId", client_algo_id)]
        return await self._send("DELETE", "/fapi/v1/algoOrder", params, weight=1)

    async def open_algo_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        """``GET /fapi/v1/openAlgoOrders`` (weight 1 for one symbol, 40 for all)."""
        data = await self._send("GET", "/fapi/v1/openAlgoOrders", [("symbol", symbol)], weight=1 if symbol else 40)
        return parse(list[AlgoOrder], data)

    # ------------------------------------------------------------------ account

    async def account(self) -> Account:
        """``GET /fapi/v3/account`` (weight 5)."""
        return parse(Account, await self._send("GET", "/fapi/v3/account", [], weight=5))

    async def position_risk(self, symbol: str | None = None) -> list[PositionRisk]:
        """``GET /fapi/v3/positionRisk`` (weight 5): the open positions."""
        return parse(
            list[PositionRisk], await self._send("GET", "/fapi/v3/positionRisk", [("symbol", symbol)], weight=5)
        )

    async def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        """``POST /fapi/v1/leverage``."""
        return await self._send("POST", "/fapi/v1/leverage", [("symbol", symbol), ("leverage", leverage)], weight=1)

    # ------------------------------------------------------------------ user data stream keys

    async def create_listen_key(self) -> str:
        """``POST /fapi/v1/listenKey``: a new key, or the active one (its validity extended by 60 min)."""
        data = await self._send("POST", "/fapi/v1/listenKey", [], weight=1, signed=False)
        return str(data["listenKey"])

    async def keepalive_listen_key(self) -> None:
        """``PUT /fapi/v1/listenKey``: extend the active key by 60 min; -1125 raises when it has expired."""
        await self._send("PUT", "/fapi/v1/listenKey", [], weight=1, signed=False)

    async def close_listen_key(self) -> None:
        await self._send("DELETE", "/fapi/v1/listenKey", [], weight=1, signed=False)
