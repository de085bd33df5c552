"""Reconciliation of the live account: the exchange against the database, differences resolved toward the exchange.

:meth:`Reconciler.run` locks the live account's row (so the stream mirror, in this replica or another, waits),
reads the exchange (``GET /fapi/v3/positionRisk``, ``/fapi/v1/openOrders``, ``/fapi/v1/openAlgoOrders``,
``/fapi/v3/account``), reads the database's open positions, open orders and wallet, and compares them with the
pure :func:`compare`. Each difference is reported item by item (``aegis.v1.ReconcileDifference``) with what was
done about it; ``dry_run`` reports the same items with action NONE and changes nothing.

What each difference gets in the database:

* a position on the exchange, none in the database (MISSING_IN_DATABASE): the position inserted (quantity, entry
  and leverage from the exchange, SL/TP from its open algo orders);
* an open database position the exchange does not have (MISSING_ON_EXCHANGE): closed, reason MANUAL (SL_HIT or
  TP_HIT when its stop or take-profit algo order is known to have triggered), at the symbol's last known mark
  price, else its entry price: an *estimate*, said in the detail. No money is posted for it: the wallet
  comparison sets the money;
* quantity or entry price differ (QUANTITY_MISMATCH, ENTRY_PRICE_MISMATCH): set to the exchange's values (a side
  that differs is a close plus an insert);
* an open order or algo order the database does not know (ORDER_MISSING_IN_DATABASE): recorded in
  ``exchange_orders``;
* an order open in the database but not on the exchange (ORDER_MISSING_ON_EXCHANGE): queried by id and marked
  with its final status (FILLED, CANCELED, FINISHED …), or ``GONE`` when the exchange no longer knows it;
* the wallet differs (BALANCE_MISMATCH): an ``adjustment`` ledger entry of the difference, so
  ``wallet = start + ledger`` still holds;
* a position without an open stop order on the exchange (MISSING_PROTECTIVE_ORDER): nothing, NEEDS_REVIEW
  (reconciliation never places or cancels orders).

What it corrected is marked in ``exchange_sync_marks`` with the exchange time it is right up to: the position's
``updateTime`` (positionRisk), or the wallet's (the account asset's ``updateTime``, which every fill moves) for a
position that is gone and for the wallet; the client's estimate of the exchange clock only when the exchange gave
no time. A fill of the stream at or before its mark is already counted by the correction and is not applied again
(aegis.virtual_account.live). Exchange times, not this host's clock: a fill read in the snapshot is never later
than the change it caused, and one that was not is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from aegis.errors import AegisError
from aegis.exchange.trading import AlgoOrder, Order, PositionRisk
from aegis.exchange.user_stream import AlgoUpdate, OrderUpdate
from aegis.risk.sizing import PositionSide
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.virtual_account import domain as d
from aegis.virtual_account.book import _P_COLUMNS, Position, _position
from aegis.virtual_account.domain import CloseReason
from aegis.virtual_account.live import (
    STOP_TYPES,
    TAKE_PROFIT_TYPES,
    close_position,
    insert_position,
    lock_account,
    open_positions,
    set_mark,
    upsert_orders,
    utc,
    write_account,
)
from aegis.wire import timestamp

if TYPE_CHECKING:
    from aegis.virtual_account.live import LiveMirror

ZERO = Decimal(0)


class Kind(StrEnum):
    """``aegis.v1.ReconcileDifferenceKind`` without its prefix."""

    MISSING_IN_DATABASE = "MISSING_IN_DATABASE"
    MISSING_ON_EXCHANGE = "MISSING_ON_EXCHANGE"
    QUANTITY_MISMATCH = "QUANTITY_MISMATCH"
    ENTRY_PRICE_MISMATCH = "ENTRY_PRICE_MISMATCH"
    BALANCE_MISMATCH = "BALANCE_MISMATCH"
    MISSING_PROTECTIVE_ORDER = "MISSING_PROTECTIVE_ORDER"
    ORDER_MISSING_IN_DATABASE = "ORDER_MISSING_IN_DATABASE"
    ORDER_MISSING_ON_EXCHANGE = "ORDER_MISSING_ON_EXCHANGE"


class Action(StrEnum):
    """``aegis.v1.ReconcileAction`` without its prefix."""

    NONE = "NONE"
    UPDATED_DATABASE = "UPDATED_DATABASE"
    CLOSED_IN_DATABASE = "CLOSED_IN_DATABASE"
    NEEDS_REVIEW = "NEEDS_REVIEW"


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Kind
    symbol: str
    action: Action
    detail: str
    field: str = ""
    exchange_value: str = ""
    database_value: str = ""
    position_id: str = ""
    order_id: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    account: str
    dry_run: bool
    start_time: dt.datetime
    end_time: dt.datetime
    differences: tuple[Difference, ...]

    @property
    def in_sync(self) -> bool:
        return not self.differences


@dataclass(frozen=True, slots=True)
class ExchangeView:
    """What the exchange said, and when (its clock, as the client estimates it) it was asked."""

    read_ms: int
    positions: tuple[PositionRisk, ...]
    orders: tuple[Order, ...]
    algo_orders: tuple[AlgoOrder, ...]
    wallet: Decimal
    wallet_time_ms: int = 0
    """The exchange's time of the wallet's last change (0: not told)."""


@dataclass(frozen=True, slots=True)
class DatabaseView:
    positions: Mapping[str, Position]
    open_orders: Mapping[tuple[bool, int], str]
    """(algo, exchange id) -> client id of the orders the database holds as open."""
    wallet: Decimal


def _t(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def compare(ex: ExchangeView, db: DatabaseView) -> list[Difference]:
    """Return the differences, each with the action a repair takes (the pure core of :meth:`Reconciler.run`)."""
    out: list[Difference] = []
    on_exchange = {p.symbol: p for p in ex.positions if p.position_amt}
    for symbol in sorted(set(on_exchange) | set(db.positions)):
        e, p = on_exchange.get(symbol), db.positions.get(symbol)
        side = (PositionSide.LONG if e.position_amt > 0 else PositionSide.SHORT) if e is not None else None
        if p is not None and (e is None or side is not p.side):
            out.append(Difference(
                Kind.MISSING_ON_EXCHANGE, symbol, Action.CLOSED_IN_DATABASE,
                f"the database's open {p.side.value.lower()} of {_t(p.quantity)} is not on the exchange: closed in the "
                "database (exit price estimated from the last known mark price, else the entry price; the wallet is "
                "corrected from the exchange's separately)",
                "position", "" if e is None else _t(e.position_amt), _t(p.quantity), str(p.position_id),
            ))  # fmt: skip
            p = None
        if e is None:
            continue
        if p is None:
            out.append(Difference(
                Kind.MISSING_IN_DATABASE, symbol, Action.UPDATED_DATABASE,
                f"the exchange holds {_t(e.position_amt)} {symbol} at {_t(e.entry_price)} that the database did not "
                "have: inserted",
                "position", f"{_t(e.position_amt)}@{_t(e.entry_price)}", "",
            ))  # fmt: skip
        else:
            if abs(e.position_amt) != p.quantity:
                out.append(Difference(
                    Kind.QUANTITY_MISMATCH, symbol, Action.UPDATED_DATABASE, "quantity set to the exchange's",
                    "quantity", _t(abs(e.position_amt)), _t(p.quantity), str(p.position_id),
                ))  # fmt: skip
            if e.entry_price and e.entry_price != p.entry_price:
                out.append(Difference(
                    Kind.ENTRY_PRICE_MISMATCH, symbol, Action.UPDATED_DATABASE, "entry price set to the exchange's",
                    "entry_price", _t(e.entry_price), _t(p.entry_price), str(p.position_id),
                ))  # fmt: skip
        stops = [a for a in ex.algo_orders if a.symbol == symbol and a.is_open and a.order_type in STOP_TYPES]
        if not stops:
            out.append(Difference(
                Kind.MISSING_PROTECTIVE_ORDER, symbol, Action.NEEDS_REVIEW,
                "the position has no open stop order on the exchange; reconciliation never places orders",
                "stop_loss", "", "",
            ))  # fmt: skip
    exchange_orders = {(False, o.order_id): o for o in ex.orders if o.is_open}
    exchange_orders.update({(True, a.algo_id): a for a in ex.algo_orders if a.is_open})
    for key, o in sorted(exchange_orders.items()):
        if key not in db.open_orders:
            client_id = o.client_algo_id if isinstance(o, AlgoOrder) else o.client_order_id
            kind = o.order_type if isinstance(o, AlgoOrder) else o.type
            out.append(Difference(
                Kind.ORDER_MISSING_IN_DATABASE, o.symbol, Action.UPDATED_DATABASE,
                f"open {'algo ' if key[0] else ''}order {client_id} ({o.side} {kind}) unknown to the database: "
                "recorded",
                "algo_order" if key[0] else "order", "OPEN", "", order_id=str(key[1]),
            ))  # fmt: skip
    for key, client_id in sorted(db.open_orders.items()):
        if key not in exchange_orders:
            out.append(Difference(
                Kind.ORDER_MISSING_ON_EXCHANGE, "", Action.UPDATED_DATABASE,
                f"{'algo ' if key[0] else ''}order {client_id} is open in the database, not on the exchange: marked "
                "with its final status",
                "algo_order" if key[0] else "order", "", "OPEN", order_id=str(key[1]),
            ))  # fmt: skip
    return out


def _with_balance(differences: list[Difference], ex: ExchangeView, db: DatabaseView) -> list[Difference]:
    if ex.wallet != db.wallet:
        differences.append(Difference(
            Kind.BALANCE_MISMATCH, "", Action.UPDATED_DATABASE,
            f"wallet set to the exchange's with an adjustment of {_t(ex.wallet - db.wallet)}",
            "wallet_balance", _t(ex.wallet), _t(db.wallet),
        ))  # fmt: skip
    return differences


class Reconciler:
    """Compare and repair the live account (see the module doc)."""

    def __init__(self, mirror: LiveMirror) -> None:
        self.mirror = mirror

    async def _exchange(self) -> ExchangeView:
        client = self.mirror.client
        read_ms = client.now_ms()
        positions, orders, algos, account = await asyncio.gather(
            client.position_risk(), client.open_orders(), client.open_algo_orders(), client.account()
        )
        asset = account.asset(self.mirror.asset)
        wallet = asset.wallet_balance if asset is not None else account.total_wallet_balance
        wallet_ms = asset.update_time if asset is not None else 0
        return ExchangeView(read_ms, tuple(positions), tuple(orders), tuple(algos), wallet, wallet_ms)

    async def run(self, *, dry_run: bool) -> Report:
        """Compare the exchange with the database; repair the database unless ``dry_run``; report every item."""
        m = self.mirror
        start = dt.datetime.now(dt.UTC)
        await m.ensure_account()
        async with m.lock, m.db.connection() as conn, conn.transaction():
            a = await lock_account(conn, m.account)
            if a is None:
                raise AegisError(f"live account {m.account!r} has no row")
            ex = await self._exchange()
            db_positions = await open_positions(conn, m.account)
            rows = await conn.fetch(
                "SELECT algo, exchange_id, client_id FROM exchange_orders WHERE account_id = $1 AND is_open",
                m.account,
            )
            db = DatabaseView(db_positions, {(r["algo"], r["exchange_id"]): r["client_id"] for r in rows}, a.wallet)
            differences = _with_balance(compare(ex, db), ex, db)
            if dry_run:
                differences = [_dry(x) for x in differences]
            else:
                differences = [await self._repair(conn, a, x, ex, db) for x in differences]
                await write_account(conn, a)
            m.counts["reconciliations"] += 1
        if not dry_run:
            m.emit(a.events)
        report = Report(m.account, dry_run, start, dt.datetime.now(dt.UTC), tuple(differences))
        m.last_report = report
        return report

    async def _repair(self, conn, a, x: Difference, ex: ExchangeView, db: DatabaseView) -> Difference:
        m = self.mirror
        e = next((p for p in ex.positions if p.symbol == x.symbol and p.position_amt), None)
        # marks are exchange times: everything up to the position's (or the wallet's) last change is in what was read
        wallet_mark = ex.wallet_time_ms or ex.read_ms
        mark = (e.update_time or ex.read_ms) if e is not None else wallet_mark
        now = utc(ex.read_ms)
        if x.kind is Kind.MISSING_ON_EXCHANGE:
            p = db.positions[x.symbol]
            price = await conn.fetchval("SELECT mark_price FROM account_prices WHERE symbol = $1", p.symbol)
            exit_price = price or p.entry_price
            reason = await self._reason_of_vanished(conn, p)
            gross = d.gross_pnl(p.side, p.quantity, p.entry_price, exit_price)
            await close_position(conn, a, p, closed_quantity=p.quantity, exit_price=exit_price, gross=gross,
                                 exit_fees=ZERO, reason=reason, closed_at=now)  # fmt: skip
            await set_mark(conn, m.account, f"position:{x.symbol}", mark)
            return x if reason is CloseReason.MANUAL else _detail(x, f"{x.detail}; reason {reason.value}")
        if x.kind is Kind.MISSING_IN_DATABASE:
            assert e is not None
            side = PositionSide.LONG if e.position_amt > 0 else PositionSide.SHORT
            notional = abs(e.position_amt) * e.entry_price
            leverage = max(1, min(125, round(notional / e.initial_margin))) if e.initial_margin else 20
            stops = [o for o in ex.algo_orders if o.symbol == x.symbol and o.is_open]
            sl = next((o.trigger_price for o in stops if o.order_type in STOP_TYPES), None)
            tp = next((o.trigger_price for o in stops if o.order_type in TAKE_PROFIT_TYPES), None)
            inserted = await insert_position(
                conn, account=m.account, key=f"reconcile:{x.symbol}:{ex.read_ms}", symbol=x.symbol, side=side,
                quantity=abs(e.position_amt), entry_price=e.entry_price, leverage=leverage, entry_fee=ZERO,
                sl_price=sl, tp_price=tp, working_type=m.working_type,
                opened_at=utc(e.update_time) if e.update_time else now, source="reconcile",
            )  # fmt: skip
            a.event("POSITION_OPENED", now, x.symbol, inserted)
            await set_mark(conn, m.account, f"position:{x.symbol}", mark)
            return _with_position(x, str(inserted.position_id))
        if x.kind in (Kind.QUANTITY_MISMATCH, Kind.ENTRY_PRICE_MISMATCH):
            assert e is not None
            p = db.positions[x.symbol]
            quantity = abs(e.position_amt)
            entry = e.entry_price or p.entry_price
            row = await conn.fetchrow(
                "UPDATE positions SET quantity = $2, entry_price = $3, margin = $4, revision = revision + 1, "
                f"updated_at = now() WHERE position_id = $1 RETURNING {_P_COLUMNS.replace('p.', '')}",
                p.position_id,
                quantity,
                entry,
                d.initial_margin(quantity, entry, p.leverage),
            )
            a.event("POSITION_UPDATED", now, x.symbol, _position(row))
            await set_mark(conn, m.account, f"position:{x.symbol}", mark)
            return x
        if x.kind is Kind.ORDER_MISSING_IN_DATABASE:
            if x.field == "algo_order":
                o = next(o for o in ex.algo_orders if o.algo_id == int(x.order_id))
                update: OrderUpdate | AlgoUpdate = AlgoUpdate(
                    o.symbol, o.algo_id, o.client_algo_id, o.side, o.order_type, o.algo_status, o.quantity,
                    o.trigger_price, o.price, o.working_type, o.actual_order_id, o.actual_price, ZERO,
                    o.close_position, o.reduce_only, "", o.update_time or ex.read_ms,
                )  # fmt: skip
            else:
                r = next(o for o in ex.orders if o.order_id == int(x.order_id))
                update = OrderUpdate(
                    r.symbol, r.order_id, r.client_order_id, r.side, r.type, r.orig_type or r.type, r.time_in_force,
                    r.status, "SNAPSHOT", r.orig_qty, r.price, r.avg_price, r.stop_price, r.executed_qty, ZERO, ZERO,
                    ZERO, "", ZERO, 0, False, r.reduce_only, r.close_position, r.update_time or ex.read_ms,
                )  # fmt: skip
            await upsert_orders(conn, m.account, [update], "reconcile", "found open on the exchange by reconciliation")
            return x
        if x.kind is Kind.ORDER_MISSING_ON_EXCHANGE:
            status = await self._final_status(conn, x)
            return _detail(x, f"{x.detail}: {status}", exchange_value=status)
        if x.kind is Kind.BALANCE_MISMATCH:
            a.post("adjustment", ex.wallet - a.wallet, None, "reconciliation: wallet set to the exchange's", now)
            await set_mark(conn, m.account, "wallet", wallet_mark)
            return x
        return x

    async def _reason_of_vanished(self, conn, p: Position) -> CloseReason:
        """SL_HIT/TP_HIT when the position's stop or take-profit algo order triggered (as the database knows it)."""
        rows = await conn.fetch(
            "SELECT order_type FROM exchange_orders WHERE account_id = $1 AND symbol = $2 AND algo "
            "AND status IN ('TRIGGERED', 'FINISHED') AND update_time >= $3 ORDER BY update_time DESC",
            p.account_id,
            p.symbol,
            p.opened_at,
        )
        for r in rows:
            if r["order_type"] in STOP_TYPES:
                return CloseReason.SL_HIT
            if r["order_type"] in TAKE_PROFIT_TYPES:
                return CloseReason.TP_HIT
        return CloseReason.MANUAL

    async def _final_status(self, conn, x: Difference) -> str:
        """Query an order the database holds open; mark it with what the exchange says (GONE when unknown)."""
        m = self.mirror
        row = await conn.fetchrow(
            "SELECT algo, exchange_id, symbol, client_id FROM exchange_orders "
            "WHERE account_id = $1 AND algo = $2 AND exchange_id = $3 AND is_open",
            m.account,
            x.field == "algo_order",
            int(x.order_id),
        )
        if row is None:
            return "GONE"
        try:
            if row["algo"]:
                found = await m.client.query_algo_order(algo_id=row["exchange_id"])
                status = found.algo_status if found is not None else "GONE"
            else:
                order = await m.client.query_order(row["symbol"], order_id=row["exchange_id"])
                status = order.status if order is not None else "GONE"
        except AegisError as exc:
            status = f"UNKNOWN ({exc})"[:200]
        await conn.execute(
            "UPDATE exchange_orders SET status = $3, is_open = false, note = 'closed by reconciliation', "
            "update_time = now() WHERE account_id = $1 AND algo = $2 AND exchange_id = $4",
            m.account,
            row["algo"],
            status.split(" ")[0],
            row["exchange_id"],
        )
        return status


def _dry(x: Difference) -> Difference:
    return Difference(x.kind, x.symbol, Action.NONE, f"(dry run) {x.detail}", x.field, x.exchange_value,
                      x.database_value, x.position_id, x.order_id)  # fmt: skip


def _detail(x: Difference, detail: str, exchange_value: str | None = None) -> Difference:
    return Difference(x.kind, x.symbol, x.action, detail, x.field,
                      x.exchange_value if exchange_value is None else exchange_value, x.database_value,
                      x.position_id, x.order_id)  # fmt: skip


def _with_position(x: Difference, position_id: str) -> Difference:
    return Difference(x.kind, x.symbol, x.action, x.detail, x.field, x.exchange_value, x.database_value, position_id,
                      x.order_id)  # fmt: skip


def report_to_pb(report: Report) -> va_pb.ReconcileReport:
    """Return the ``aegis.v1.ReconcileReport`` of ``report``."""
    out = va_pb.ReconcileReport(
        account=report.account,
        dry_run=report.dry_run,
        start_time=timestamp(report.start_time),
        end_time=timestamp(report.end_time),
        in_sync=report.in_sync,
    )
    for x in report.differences:
        out.differences.append(
            va_pb.ReconcileDifference(
                kind=va_pb.ReconcileDifferenceKind.Value(f"RECONCILE_DIFFERENCE_KIND_{x.kind.value}"),
                symbol=x.symbol,
                position_id=x.position_id,
                order_id=x.order_id,
                field=x.field,
                exchange_value=x.exchange_value,
                database_value=x.database_value,
                action=va_pb.ReconcileAction.Value(f"RECONCILE_ACTION_{x.action.value}"),
                detail=x.detail,
            )
        )
    return out
