"""Live execution in the brain: risk-approved signals become Binance orders (``AEGIS_MODE=live`` only).

The :class:`~aegis.brain.execution.Executor` keeps doing what it does in paper mode for the ``learning`` account
(every signal, virtual). For the live account it hands over to a :class:`LiveTrader`:

1. **decide** — RiskService.EvaluateSignal for the live account (``ACCOUNT_KIND_LIVE``: risk reads the live equity
   and positions from the exchange itself). A refusal is counted by reason and nothing is sent.
2. **rotate** — a REPLACE rotation names the live position to close (risk calls it ``live:<symbol>:BOTH``, with
   ``close_symbol``): a MARKET ``reduceOnly`` order for the whole amount ``positionRisk`` reports, then the
   position's open stop-loss and take-profit algo orders (ours: client ids ``aes-``/``aet-``) are cancelled.
   Nothing is opened when the close fails.
3. **enter** — the entry order exactly as risk sized it (quantity and price already on the exchange's grids,
   MARKET unless risk says LIMIT), after ``POST /fapi/v1/leverage`` with risk's leverage;
4. **protect** — the stop-loss as a ``STOP_MARKET`` and the take-profit as a ``TAKE_PROFIT_MARKET`` algo order
   (``POST /fapi/v1/algoOrder``), ``closePosition=true`` (``AEGIS_LIVE_PROTECTION=close_position``, the default)
   or the filled quantity ``reduceOnly``, triggered by ``AEGIS_LIVE_WORKING_TYPE`` (MARK_PRICE by default).

Orders take the bus's priority path as on paper: each is an :class:`~aegis.brain.events.OrderRequest` (rank 0) and
its execution comes back as an :class:`~aegis.brain.events.OrderFilled`. The fill's commission and realised PnL are
not known from the REST answer: virtual-account records them from the user data stream (aegis.virtual_account.
live), which is also where the live positions, trades and balance are written.

**Never twice.** Client ids are derived from the executor's idempotency keys (``<signal id>:<account>``, a
rotation's ``…:rotate:<position id>``), hashed to fit Binance's 36 characters: ``ae<leg>-`` plus 28 hex digits of
SHA-256 of the key, with leg ``o`` (entry), ``s`` (stop-loss), ``t`` (take-profit), ``r`` (rotation close). Before
sending any of them the trader looks the id up (``GET /fapi/v1/order?origClientOrderId=``, ``GET
/fapi/v1/algoOrder?clientAlgoId=``): Binance rejects a duplicate id only among *open* orders, so a filled MARKET
entry's id would be accepted again; the look-up is what makes a retried signal, or one re-emitted after a
restart, find the first order instead of placing a second. An answer that leaves the status unknown (503, a
timeout) is reconciled by the client by query and never resent (aegis.exchange.trading); an id that was not found
after such an answer is treated as spent for the life of the process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from decimal import Decimal
from typing import Any

from aegis.brain.events import OrderFilled, OrderRequest, SignalGenerated
from aegis.errors import AegisError, ExchangeError, OrderStatusUnknown, RateLimited
from aegis.exchange.trading import BinanceApiError, BinanceTrading, Order, Outcome
from aegis.v1 import common_pb2 as common_pb

log = logging.getLogger("aegis.brain.live")

ZERO = Decimal(0)
LEGS = {"open": "o", "stop_loss": "s", "take_profit": "t", "rotate": "r"}


def client_id(leg: str, key: str) -> str:
    """Return the Binance client id of ``leg`` (open, stop_loss, take_profit, rotate) for idempotency ``key``."""
    return f"ae{LEGS[leg]}-{hashlib.sha256(key.encode()).hexdigest()[:28]}"


def _opposite(side: str) -> str:
    return "SELL" if side == "BUY" else "BUY"


class LiveTrader:
    """Send the live account's orders to Binance with ``client`` (see the module doc)."""

    def __init__(
        self,
        client: BinanceTrading,
        *,
        account: str = "live",
        working_type: str = "MARK_PRICE",
        protection: str = "close_position",
    ) -> None:
        if protection not in ("close_position", "reduce_only"):
            raise ValueError(f"protection must be close_position or reduce_only, got {protection!r}")
        self.client = client
        self.account = account
        self.working_type = working_type.upper()
        self.protection = protection
        self._started = False
        self._start_lock = asyncio.Lock()
        self._spent: set[str] = set()
        self.counts: dict[str, int] = dict.fromkeys(
            ("approved", "refused", "decisions_failed", "opened", "replayed", "rotations", "rotation_failed",
             "entries_refused", "entries_unknown", "protective_placed", "protective_existing", "protective_failed",
             "orders_sent", "queries"),
            0,
        )  # fmt: skip
        self.refusals: dict[str, int] = {}

    async def start(self) -> None:
        """Measure the clock offset and read the order-rate limits (once; before the first order)."""
        async with self._start_lock:
            if self._started:
                return
            await self.client.sync_time()
            await self.client.exchange_info()
            self._started = True

    async def close(self) -> None:
        await self.client.close()

    # ------------------------------------------------------------------ the decision (on the executor's worker)

    async def decide(self, executor: Any, signal: SignalGenerated, mark: tuple[float, int] | None) -> None:
        """Ask risk about ``signal`` for the live account; rotate and enter through the bus when it approves (the
        executor's trading leg, counted here)."""
        await executor.trade(
            signal, mark, account=self.account, mode=common_pb.ACCOUNT_KIND_LIVE, label="live",
            counts=self.counts, refusals=self.refusals,
        )  # fmt: skip

    # ------------------------------------------------------------------ orders (on the executor's order worker)

    async def send(self, order: OrderRequest) -> OrderFilled | str:
        """Execute one live order; return its fill, or why there is none (a status-like word, counted by the caller)."""
        try:
            await self.start()
            if order.position_id:
                return await self._close(order)
            return await self._enter(order)
        except RateLimited as exc:
            log.warning("live: order %s not sent: %s", order.client_order_id, exc)
            return "RESOURCE_EXHAUSTED"
        except OrderStatusUnknown as exc:
            self.counts["entries_unknown"] += 1
            log.error("live: order %s: status unknown after reconciling by query (%s); not resent, the user stream "
                      "and the next reconciliation will show it", order.client_order_id, exc)  # fmt: skip
            return "UNKNOWN"
        except ExchangeError as exc:
            log.warning("live: order %s failed: %s", order.client_order_id, exc)
            return "UNAVAILABLE"

    async def _existing(self, symbol: str, cid: str) -> Order | None:
        self.counts["queries"] += 1
        return await self.client.query_order(symbol, client_order_id=cid)

    async def _enter(self, order: OrderRequest) -> OrderFilled | str:
        cid = client_id("open", order.client_order_id)
        if cid in self._spent:
            return "NOT_FOUND"
        entry = await self._existing(order.symbol, cid)
        replayed = entry is not None
        if entry is None:
            if order.leverage:
                try:
                    await self.client.set_leverage(order.symbol, order.leverage)
                except BinanceApiError as exc:
                    self.counts["entries_refused"] += 1
                    log.warning("live: %s leverage %dx refused (%s); entry %s not sent", order.symbol,
                                order.leverage, exc.msg, order.client_order_id)  # fmt: skip
                    return "FAILED_PRECONDITION"
            try:
                self.counts["orders_sent"] += 1
                placed = await self.client.place_order(
                    order.symbol, order.side, order.order_type or "MARKET", order.quantity,
                    price=order.price if order.order_type == "LIMIT" else None, client_order_id=cid,
                )  # fmt: skip
            except BinanceApiError as exc:
                self.counts["entries_refused"] += 1
                log.warning("live: entry %s (%s %s %s) refused by Binance: %s", order.client_order_id, order.side,
                            order.quantity, order.symbol, exc)  # fmt: skip
                return "FAILED_PRECONDITION"
            if placed.outcome is Outcome.NOT_FOUND or placed.order is None:
                self._spent.add(cid)
                self.counts["entries_unknown"] += 1
                log.error("live: entry %s: unknown answer and no order found by its id; the id is spent, nothing "
                          "is resent", order.client_order_id)  # fmt: skip
                return "NOT_FOUND"
            assert isinstance(placed.order, Order)
            entry = placed.order
            replayed = placed.outcome is Outcome.ALREADY_PLACED
        await self._protect(order, entry)
        return OrderFilled(
            client_order_id=order.client_order_id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            price=entry.avg_price or entry.price,
            quantity=entry.executed_qty,
            fee=ZERO,  # the commission arrives over the user data stream (virtual-account records it)
            fill_time_ms=entry.update_time or entry.time,
            position_id=f"live:{order.symbol}:BOTH",
            replayed=replayed,
        )

    async def _protect(self, order: OrderRequest, entry: Order) -> None:
        """Place the stop-loss and take-profit algo orders of an entry, each once (looked up by its id first)."""
        executed = entry.executed_qty
        for leg, kind, trigger in (
            ("stop_loss", "STOP_MARKET", order.stop_loss_price),
            ("take_profit", "TAKE_PROFIT_MARKET", order.take_profit_price),
        ):
            if trigger is None:
                continue
            acid = client_id(leg, order.client_order_id)
            self.counts["queries"] += 1
            if await self.client.query_algo_order(client_algo_id=acid) is not None:
                self.counts["protective_existing"] += 1
                continue
            if self.protection == "reduce_only" and executed <= 0:
                log.warning("live: %s %s not placed: reduce_only protection needs a filled entry (%s is %s)",
                            leg, order.client_order_id, entry.client_order_id, entry.status)  # fmt: skip
                self.counts["protective_failed"] += 1
                continue
            sized: dict[str, Any] = (
                {"close_position": True} if self.protection == "close_position"
                else {"quantity": executed, "reduce_only": True}
            )  # fmt: skip
            try:
                self.counts["orders_sent"] += 1
                placed = await self.client.place_algo_order(
                    order.symbol, _opposite(order.side), kind, trigger_price=trigger, working_type=self.working_type,
                    client_algo_id=acid, **sized,
                )  # fmt: skip
            except (BinanceApiError, AegisError) as exc:
                self.counts["protective_failed"] += 1
                log.error("live: %s of %s (%s at %s) FAILED: %s; the position has no %s on the exchange",
                          kind, order.client_order_id, _opposite(order.side), trigger, exc, leg)  # fmt: skip
                continue
            if placed.order is None:
                self.counts["protective_failed"] += 1
                log.error("live: %s of %s: unknown answer and not found; not resent", kind, order.client_order_id)
                continue
            self.counts["protective_placed"] += 1

    async def _close(self, order: OrderRequest) -> OrderFilled | str:
        """Close the named live position (a rotation): reduce-only MARKET for what the exchange holds."""
        cid = client_id("rotate", order.client_order_id)
        done = await self._existing(order.symbol, cid)
        replayed = done is not None
        if done is None:
            risks = await self.client.position_risk(order.symbol)
            amount = sum((r.position_amt for r in risks if r.symbol == order.symbol), ZERO)
            if amount == 0:
                log.info("live: %s holds no %s position any more: nothing to close", self.account, order.symbol)
                return OrderFilled(client_order_id=order.client_order_id, account=order.account, symbol=order.symbol,
                                   side="", price=ZERO, quantity=ZERO, fee=ZERO, fill_time_ms=0, reduce_only=True,
                                   position_id=order.position_id, replayed=True)  # fmt: skip
            try:
                self.counts["orders_sent"] += 1
                placed = await self.client.place_order(order.symbol, "SELL" if amount > 0 else "BUY", "MARKET",
                                                       abs(amount), reduce_only=True, client_order_id=cid)  # fmt: skip
            except BinanceApiError as exc:
                log.warning("live: rotation close of %s refused: %s", order.symbol, exc)
                return "FAILED_PRECONDITION"
            if placed.order is None:
                self._spent.add(cid)
                return "NOT_FOUND"
            assert isinstance(placed.order, Order)
            done = placed.order
        await self._cancel_protection(order.symbol)
        return OrderFilled(
            client_order_id=order.client_order_id,
            account=order.account,
            symbol=order.symbol,
            side=done.side,
            price=done.avg_price,
            quantity=done.executed_qty,
            fee=ZERO,
            fill_time_ms=done.update_time or done.time,
            reduce_only=True,
            position_id=order.position_id,
            replayed=replayed,
        )

    async def _cancel_protection(self, symbol: str) -> None:
        """Cancel our open stop-loss and take-profit algo orders of ``symbol`` (its position was closed)."""
        prefixes = (f"ae{LEGS['stop_loss']}-", f"ae{LEGS['take_profit']}-")
        try:
            for algo in await self.client.open_algo_orders(symbol):
                if algo.client_algo_id.startswith(prefixes):
                    await self.client.cancel_algo_order(algo_id=algo.algo_id)
        except ExchangeError as exc:
            log.warning("live: cancelling the protective orders of %s failed: %s", symbol, exc)

    def snapshot(self) -> dict[str, Any]:
        return {"account": self.account, **self.counts, "refusals": dict(self.refusals)}


def trader_for(settings: Any) -> LiveTrader | None:
    """Return the live trader of a process's settings in live mode (keys checked at start), else None."""
    if settings.mode != "live":
        return None
    client = BinanceTrading(
        settings.feed.rest_url, settings.binance_api_key.reveal(), settings.binance_api_secret.reveal()
    )
    live = settings.live
    return LiveTrader(client, account=live.account, working_type=live.working_type, protection=live.protection)
