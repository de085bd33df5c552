"""The live account mirrored into PostgreSQL from the Binance user data stream (live mode only).

**Who owns the stream.** virtual-account: it already owns every account's state in the database (positions,
trades, the balance ledger, StreamEvents), so in live mode it also runs the one :class:`~aegis.exchange.user_stream.
UserStream` and writes what it says into the same tables as the virtual accounts. ListPositions, ListTrades,
GetAccount and StreamEvents then answer for the live account exactly as for ``learning`` and ``paper``. The brain
only places orders (aegis.brain.live); it never writes the live account's rows.

**What moves what** (one transaction per batch of stream changes, the account row locked first, like the book):

* a **fill** (``ORDER_TRADE_UPDATE`` with ``x=TRADE``) is recorded once in ``exchange_fills`` (Binance's trade id:
  a replayed event, a second replica, a reconnection's resend change nothing), then
  - money: its realised PnL (``rp``) and commission (``n``, when paid in the account's asset) are posted to the
    balance ledger, so ``wallet = start + ledger`` holds as for the virtual accounts;
  - position (one-way mode, one position per symbol): a fill on the side of the open position, or on a flat
    symbol, opens or adds to it (Binance's weighted average entry); an opposite fill reduces it, and when it is
    flat the position closes with the fills' average exit price, the sum of their ``rp`` as gross PnL, entry plus
    exit commissions as fees, and a close reason read from the order: ``STOP``/``STOP_MARKET`` → SL_HIT,
    ``TAKE_PROFIT*`` → TP_HIT, ``LIQUIDATION`` (or an ``autoclose-`` client id) → LIQUIDATED, a rotation's client
    id (``aer-``, aegis.brain.live) → ROTATED, anything else → MANUAL. A fill beyond flat opens the other side.
    A reduce-only fill with nothing open in the database changes no position (reconciliation repairs what is
    missing).
* an **order or algo order update** is kept in ``exchange_orders`` (latest by update time); a new stop-loss or
  take-profit algo order of a symbol with an open position sets its ``stop_loss_price``/``take_profit_price``.
* an **ACCOUNT_UPDATE** balance with a reason other than ``ORDER`` (funding, transfers) posts its ``bc`` to the
  ledger (funding, or an adjustment). Balances of ``ORDER`` updates are not posted: the fills carry that money,
  and Binance sends the ``ACCOUNT_UPDATE`` before the fill.
* after every (re)connection (the stream's ``Resynced``), and every ``AEGIS_LIVE_RECONCILE_INTERVAL_S``,
  :class:`aegis.virtual_account.reconcile.Reconciler` compares the exchange with the database and repairs the
  database toward the exchange. What it set is marked in ``exchange_sync_marks`` (the exchange time up to which
  a symbol's position, or the wallet, is already right), and a fill at or before a mark is recorded but not
  applied a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from aegis.errors import AegisError
from aegis.exchange.trading import BinanceTrading
from aegis.exchange.user_stream import (
    AlgoUpdate,
    Balance,
    Change,
    Fill,
    OrderUpdate,
    Resynced,
    UserStream,
)
from aegis.risk.sizing import PositionSide
from aegis.storage.postgres import Database
from aegis.virtual_account import domain as d
from aegis.virtual_account.book import _P_COLUMNS, Event, LedgerEntry, Position, Trade, _position
from aegis.virtual_account.domain import CloseReason

log = logging.getLogger(__name__)

ZERO = Decimal(0)
DEFAULT_LEVERAGE = 20
"""Binance's initial leverage of a symbol nobody changed; used when the exchange does not tell."""
ROTATION_PREFIX = "aer-"
"""Client ids of the brain's rotation closes (aegis.brain.live.client_id)."""
STOP_TYPES = frozenset({"STOP", "STOP_MARKET", "TRAILING_STOP_MARKET"})
TAKE_PROFIT_TYPES = frozenset({"TAKE_PROFIT", "TAKE_PROFIT_MARKET"})

Publish = Callable[[list[Event]], None]


def utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def close_reason_of(update: OrderUpdate | None, client_order_id: str) -> CloseReason:
    """The close reason of a position closed by a fill of this order (see the module doc)."""
    kind = (update.orig_type or update.order_type) if update is not None else ""
    if kind == "LIQUIDATION" or client_order_id.startswith("autoclose-"):
        return CloseReason.LIQUIDATED
    if kind in STOP_TYPES:
        return CloseReason.SL_HIT
    if kind in TAKE_PROFIT_TYPES:
        return CloseReason.TP_HIT
    if client_order_id.startswith(ROTATION_PREFIX):
        return CloseReason.ROTATED
    return CloseReason.MANUAL


# --------------------------------------------------------------------------------------------- account rows


@dataclass(slots=True)
class AccountRow:
    """The live account's row, locked by the transaction, changed in memory and written back once."""

    account_id: str
    wallet: Decimal
    realised: Decimal
    fees: Decimal
    funding: Decimal
    revision: int
    trade_count: int
    win_count: int
    ledger: list[LedgerEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    changed: bool = False

    def post(
        self, kind: str, amount: Decimal, position_id: uuid.UUID | None, reference: str, when: dt.datetime
    ) -> None:
        if not amount:
            return
        self.wallet += amount
        entry = LedgerEntry(self.account_id, kind, amount, self.wallet, position_id, reference, when)
        self.ledger.append(entry)
        if kind == "realised_pnl":
            self.realised += amount
        elif kind == "fee":
            self.fees -= amount
        elif kind == "funding":
            self.funding += amount
        self.event("BALANCE_CHANGED", when, "", entry)

    def event(self, type_: str, when: dt.datetime, symbol: str, payload: Any) -> None:
        self.changed = True
        self.revision += 1
        self.events.append(Event(self.account_id, self.revision, type_, when, symbol, payload))


async def lock_account(conn: asyncpg.Connection, account: str) -> AccountRow | None:
    row = await conn.fetchrow(
        "SELECT account_id, wallet_balance, realised_pnl, fees, funding, revision, trade_count, win_count "
        "FROM accounts WHERE account_id = $1 FOR UPDATE",
        account,
    )
    if row is None:
        return None
    return AccountRow(row["account_id"], row["wallet_balance"], row["realised_pnl"], row["fees"], row["funding"],
                      row["revision"], row["trade_count"], row["win_count"])  # fmt: skip


async def write_account(conn: asyncpg.Connection, a: AccountRow) -> None:
    if not a.changed:
        return
    await conn.execute(
        "UPDATE accounts SET wallet_balance = $2, realised_pnl = $3, fees = $4, funding = $5, revision = $6, "
        "trade_count = $7, win_count = $8, updated_at = now() WHERE account_id = $1",
        a.account_id, a.wallet, a.realised, a.fees, a.funding, a.revision, a.trade_count, a.win_count,
    )  # fmt: skip
    if a.ledger:
        await conn.executemany(
            "INSERT INTO balance_ledger (account_id, kind, amount, balance_after, position_id, reference, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [(e.account_id, e.kind, e.amount, e.balance_after, e.position_id, e.reference, e.created_at)
             for e in a.ledger],
        )  # fmt: skip


async def sync_marks(conn: asyncpg.Connection, account: str) -> dict[str, int]:
    rows = await conn.fetch("SELECT scope, synced_ms FROM exchange_sync_marks WHERE account_id = $1", account)
    return {r["scope"]: r["synced_ms"] for r in rows}


async def set_mark(conn: asyncpg.Connection, account: str, scope: str, synced_ms: int) -> None:
    await conn.execute(
        "INSERT INTO exchange_sync_marks (account_id, scope, synced_ms) VALUES ($1, $2, $3) "
        "ON CONFLICT (account_id, scope) DO UPDATE SET synced_ms = greatest(exchange_sync_marks.synced_ms, $3)",
        account,
        scope,
        synced_ms,
    )


async def open_position_of(conn: asyncpg.Connection, account: str, symbol: str) -> Position | None:
    row = await conn.fetchrow(
        f"SELECT {_P_COLUMNS}, ap.mark_price FROM positions p LEFT JOIN account_prices ap ON ap.symbol = p.symbol "
        "WHERE p.account_id = $1 AND p.symbol = $2 AND p.status = 'OPEN' ORDER BY p.opened_at LIMIT 1 FOR UPDATE OF p",
        account,
        symbol,
    )
    return _position(row) if row is not None else None


async def open_positions(conn: asyncpg.Connection, account: str) -> dict[str, Position]:
    rows = await conn.fetch(
        f"SELECT {_P_COLUMNS}, ap.mark_price FROM positions p LEFT JOIN account_prices ap ON ap.symbol = p.symbol "
        "WHERE p.account_id = $1 AND p.status = 'OPEN' ORDER BY p.opened_at FOR UPDATE OF p",
        account,
    )
    return {r["symbol"]: _position(r) for r in rows}


async def insert_position(
    conn: asyncpg.Connection,
    *,
    account: str,
    key: str,
    symbol: str,
    side: PositionSide,
    quantity: Decimal,
    entry_price: Decimal,
    leverage: int,
    entry_fee: Decimal,
    sl_price: Decimal | None,
    tp_price: Decimal | None,
    working_type: str,
    opened_at: dt.datetime,
    source: str,
) -> Position:
    """Insert an open live position (margin: notional / leverage, cross margin as Binance's default)."""
    margin = d.initial_margin(quantity, entry_price, leverage)
    row = await conn.fetchrow(
        "INSERT INTO positions (position_id, account_id, idempotency_key, symbol, side, status, quantity, entry_price, "
        "leverage, margin, sl_price, tp_price, working_type, entry_fee, funding, opened_at, margin_type, updated_at, "
        "source) VALUES ($1, $2, $3, $4, $5, 'OPEN', $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, 'CROSSED', $14, $15) "
        f"RETURNING {_P_COLUMNS.replace('p.', '')}",
        uuid.uuid4(), account, key, symbol, "BUY" if side is PositionSide.LONG else "SELL", quantity, entry_price,
        Decimal(leverage), margin, sl_price, tp_price, working_type, entry_fee, opened_at, source,
    )  # fmt: skip
    return _position(row)


async def close_position(
    conn: asyncpg.Connection,
    a: AccountRow,
    p: Position,
    *,
    closed_quantity: Decimal,
    exit_price: Decimal,
    gross: Decimal,
    exit_fees: Decimal,
    reason: CloseReason,
    closed_at: dt.datetime,
) -> Trade:
    """Close ``p`` (all of ``closed_quantity``) and write its trade row; the money was posted by the caller."""
    margin = d.initial_margin(closed_quantity, p.entry_price, p.leverage)
    fees = p.entry_fee + exit_fees
    net = gross - fees + p.funding
    roi_margin = d.pct(net * d.HUNDRED / margin) if margin > 0 else ZERO
    roi_price = d.pct(p.side.sign * (exit_price - p.entry_price) * d.HUNDRED / p.entry_price)
    reward = d.reward_score(roi_margin)
    closed_at = max(closed_at, p.opened_at)
    await conn.execute(
        "UPDATE positions SET status = 'CLOSED', quantity = $2, margin = $3, closed_at = $4, exit_price = $5, "
        "close_reason = $6, exit_fee = $7, gross_pnl = $8, realised_pnl = $9, revision = revision + 1, "
        "updated_at = $4 WHERE position_id = $1",
        p.position_id, closed_quantity, margin, closed_at, exit_price, reason.value, exit_fees, gross, net,
    )  # fmt: skip
    trade_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO trades (trade_id, position_id, account_id, symbol, side, quantity, entry_price, exit_price, "
        "leverage, margin, opened_at, closed_at, close_reason, gross_pnl, fees, funding, realised_pnl, roi_margin_pct, "
        "roi_price_pct, reward_score, signal_id, confidence) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
        trade_id, p.position_id, p.account_id, p.symbol, "BUY" if p.side is PositionSide.LONG else "SELL",
        closed_quantity, p.entry_price, exit_price, Decimal(p.leverage), margin, p.opened_at, closed_at, reason.value,
        gross, fees, p.funding, net, roi_margin, roi_price, reward, p.signal_id, p.confidence,
    )  # fmt: skip
    a.trade_count += 1
    if net > 0:
        a.win_count += 1
    trade = Trade(trade_id, p.position_id, p.account_id, "live", p.symbol, p.side, closed_quantity, p.entry_price,
                  exit_price, p.leverage, margin, p.opened_at, closed_at, reason, gross, fees, p.funding, net,
                  roi_margin, roi_price, reward, p.signal_id, p.confidence, None, None, None)  # fmt: skip
    a.event("LIQUIDATION" if reason is CloseReason.LIQUIDATED else "POSITION_CLOSED", closed_at, p.symbol, trade)
    return trade


async def upsert_orders(
    conn: asyncpg.Connection, account: str, updates: Iterable[OrderUpdate | AlgoUpdate], source: str, note: str = ""
) -> None:
    """Keep the latest state of each order and algo order (by update time) in ``exchange_orders``."""
    rows = []
    for u in updates:
        if isinstance(u, AlgoUpdate):
            rows.append((account, u.client_algo_id, True, u.algo_id, u.symbol, u.side, u.order_type, u.status,
                         u.is_open, u.quantity, u.price, u.trigger_price, u.filled_qty, u.avg_price, u.reduce_only,
                         u.close_position, u.working_type, source, note, utc(u.time_ms)))  # fmt: skip
        else:
            rows.append((account, u.client_order_id, False, u.order_id, u.symbol, u.side, u.orig_type or u.order_type,
                         u.status, u.is_open, u.quantity, u.price, u.stop_price, u.filled_qty, u.avg_price,
                         u.reduce_only, u.close_position, "", source, note, utc(u.time_ms)))  # fmt: skip
    if not rows:
        return
    await conn.executemany(
        "INSERT INTO exchange_orders (account_id, client_id, algo, exchange_id, symbol, side, order_type, status, "
        "is_open, quantity, price, trigger_price, filled_quantity, average_price, reduce_only, close_position, "
        "working_type, source, note, update_time) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) "
        "ON CONFLICT (account_id, algo, exchange_id) DO UPDATE SET status = EXCLUDED.status, "
        "is_open = EXCLUDED.is_open, quantity = EXCLUDED.quantity, price = EXCLUDED.price, "
        "trigger_price = EXCLUDED.trigger_price, filled_quantity = EXCLUDED.filled_quantity, "
        "average_price = EXCLUDED.average_price, update_time = EXCLUDED.update_time, "
        "note = CASE WHEN EXCLUDED.note = '' THEN exchange_orders.note ELSE EXCLUDED.note END "
        "WHERE exchange_orders.update_time <= EXCLUDED.update_time",
        rows,
    )


async def protective_levels(conn: asyncpg.Connection, account: str, symbol: str) -> tuple[Decimal | None, ...]:
    """(stop-loss, take-profit) trigger prices of the symbol's open algo orders, newest first; None when absent."""
    rows = await conn.fetch(
        "SELECT order_type, trigger_price FROM exchange_orders WHERE account_id = $1 AND symbol = $2 AND is_open "
        "AND algo ORDER BY update_time DESC",
        account,
        symbol,
    )
    sl = next((r["trigger_price"] for r in rows if r["order_type"] in STOP_TYPES), None)
    tp = next((r["trigger_price"] for r in rows if r["order_type"] in TAKE_PROFIT_TYPES), None)
    return sl, tp


# --------------------------------------------------------------------------------------------- the mirror


class LiveMirror:
    """Apply the user data stream's changes to the live account's rows (see the module doc)."""

    def __init__(
        self,
        db: Database,
        client: BinanceTrading,
        *,
        account: str = "live",
        ws_private_url: str = "",
        working_type: str = "MARK_PRICE",
        reconcile_interval_s: float = 60.0,
        publish: Publish | None = None,
        asset: str = "USDT",
    ) -> None:
        from aegis.virtual_account.reconcile import Reconciler

        self.db = db
        self.client = client
        self.account = account
        self.ws_private_url = ws_private_url
        self.working_type = working_type.upper()
        self.reconcile_interval_s = reconcile_interval_s
        self.asset = asset
        self._publish = publish
        self.lock = asyncio.Lock()
        """Held while a batch of changes or a reconciliation runs: one at a time in this process."""
        self.reconciler = Reconciler(self)
        self.stream: UserStream | None = None
        self.ready = asyncio.Event()
        self.counts: dict[str, int] = dict.fromkeys(
            ("fills", "fills_duplicate", "fills_already_synced", "positions_opened", "positions_closed",
             "orders_updated", "balance_changes", "reconciliations", "reconcile_failures"),
            0,
        )  # fmt: skip
        self.last_report: Any = None

    def emit(self, events: list[Event]) -> None:
        if self._publish is not None and events:
            try:
                self._publish(events)
            except Exception:  # a lost notification must never undo a committed change
                log.exception("publishing %d live account events failed", len(events))

    async def ensure_account(self) -> None:
        """Create the live account at the exchange's wallet balance (a deposit entry) if it does not exist yet."""
        async with self.db.connection() as conn:
            if await conn.fetchval("SELECT 1 FROM accounts WHERE account_id = $1", self.account):
                return
        info = await self.client.account()
        asset = info.asset(self.asset)
        wallet = asset.wallet_balance if asset is not None else info.total_wallet_balance
        async with self.db.connection() as conn, conn.transaction():
            created = await conn.fetchval(
                "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance, peak_equity, currency) "
                "VALUES ($1, 'live', $2, $2, $2, $3) ON CONFLICT (account_id) DO NOTHING RETURNING account_id",
                self.account,
                wallet,
                self.asset,
            )
            if created:
                await conn.execute(
                    "INSERT INTO balance_ledger (account_id, kind, amount, balance_after, reference) "
                    "VALUES ($1, 'deposit', $2, $2, 'exchange wallet when the mirror started')",
                    self.account,
                    wallet,
                )
                log.info("live account %r created at the exchange's wallet balance %s %s", self.account, wallet,
                         self.asset)  # fmt: skip

    # ------------------------------------------------------------------------------------ running

    async def run(self) -> None:
        """Create the account, reconcile, then follow the user data stream and reconcile periodically."""
        delay = 1.0
        while True:
            try:
                await self.client.sync_time()
                await self.ensure_account()
                break
            except Exception as exc:  # the exchange or PostgreSQL not answering yet: retry, never crash the service
                log.warning("live mirror: the live account cannot be set up yet (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        await self.reconcile_safely()
        self.ready.set()
        self.stream = UserStream(self.client, self.ws_private_url, self.on_changes)
        async with asyncio.TaskGroup() as group:
            group.create_task(self.stream.run(), name="live-user-stream")
            if self.reconcile_interval_s > 0:
                group.create_task(self._reconcile_periodically(), name="live-reconcile")

    async def stop(self) -> None:
        if self.stream is not None:
            await self.stream.stop()

    async def _reconcile_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval_s)
            await self.reconcile_safely()

    async def reconcile_safely(self) -> Any:
        """Reconcile and repair (logged, never raised: the next one tries again)."""
        try:
            report = await self.reconciler.run(dry_run=False)
        except Exception as exc:
            self.counts["reconcile_failures"] += 1
            log.warning("live reconciliation failed: %s", exc)
            return None
        if not report.in_sync:
            log.warning("live reconciliation repaired %d difference(s): %s", len(report.differences),
                        "; ".join(f"{x.kind} {x.symbol} {x.detail}" for x in report.differences))  # fmt: skip
        return report

    async def on_changes(self, changes: tuple[Change, ...]) -> None:
        """The stream's callback: apply one tuple of changes (a REST resync triggers a reconciliation)."""
        if any(isinstance(c, Resynced) for c in changes):
            await self.reconcile_safely()
        try:
            await self.apply(changes)
        except Exception:
            log.exception("live mirror: applying %d stream change(s) failed; the next reconciliation repairs it",
                          len(changes))  # fmt: skip

    async def apply(self, changes: Iterable[Change]) -> None:
        """Apply stream changes in one transaction (see the module doc)."""
        changes = list(changes)
        fills = [c for c in changes if isinstance(c, Fill)]
        orders = [c for c in changes if isinstance(c, OrderUpdate | AlgoUpdate)]
        balances = [c for c in changes if isinstance(c, Balance) and c.asset == self.asset and c.reason != "ORDER"
                    and c.reason != "SNAPSHOT" and c.balance_change]  # fmt: skip
        if not (fills or orders or balances):
            return
        known = {c.order_id: c for c in orders if isinstance(c, OrderUpdate)}
        # a fill that may open a position needs the symbol's leverage (positionRisk); a reduce-only one does not
        reducing = {o.order_id for o in known.values() if o.reduce_only or o.close_position}
        opening = {f.symbol for f in fills if f.order_id not in reducing}
        leverage = await self._leverage_for(opening) if opening else {}
        async with self.lock, self.db.connection() as conn, conn.transaction():
            a = await lock_account(conn, self.account)
            if a is None:
                raise AegisError(f"live account {self.account!r} has no row yet")
            await upsert_orders(conn, self.account, orders, "stream")
            self.counts["orders_updated"] += len(orders)
            marks = await sync_marks(conn, self.account)
            for f in fills:
                update = known.get(f.order_id)
                if update is None and self.stream is not None:
                    update = self.stream.state.state.orders.get(f.order_id)
                await self._apply_fill(conn, a, f, update, marks, leverage.get(f.symbol, DEFAULT_LEVERAGE))
            for b in balances:
                kind = "funding" if b.reason == "FUNDING_FEE" else "adjustment"
                a.post(kind, b.balance_change, None, f"exchange {b.reason}", utc(b.time_ms))
                self.counts["balance_changes"] += 1
            for algo in (o for o in orders if isinstance(o, AlgoUpdate) and o.is_open):
                await self._protect(conn, a, algo)
            await write_account(conn, a)
        self.emit(a.events)

    async def _leverage_for(self, symbols: Iterable[str]) -> dict[str, int]:
        """Leverage per symbol from ``positionRisk`` (notional / initial margin); the default when unknown."""
        out: dict[str, int] = {}
        try:
            for risk in await self.client.position_risk():
                if risk.position_amt and risk.initial_margin:
                    notional = abs(risk.position_amt) * risk.entry_price
                    out[risk.symbol] = max(1, min(125, round(notional / risk.initial_margin)))
        except AegisError as exc:
            log.debug("positionRisk for the leverage failed: %s", exc)
        return {s: out.get(s, DEFAULT_LEVERAGE) for s in symbols}

    async def _protect(self, conn: asyncpg.Connection, a: AccountRow, algo: AlgoUpdate) -> None:
        column = "sl_price" if algo.order_type in STOP_TYPES else "tp_price" if algo.order_type in TAKE_PROFIT_TYPES \
            else None  # fmt: skip
        if column is None or not algo.trigger_price:
            return
        row = await conn.fetchrow(
            f"UPDATE positions SET {column} = $3, updated_at = now(), revision = revision + 1 "
            f"WHERE account_id = $1 AND symbol = $2 AND status = 'OPEN' AND {column} IS DISTINCT FROM $3 "
            f"RETURNING {_P_COLUMNS.replace('p.', '')}",
            self.account,
            algo.symbol,
            algo.trigger_price,
        )
        if row is not None:
            a.event("POSITION_UPDATED", utc(algo.time_ms), algo.symbol, _position(row))

    async def _apply_fill(
        self,
        conn: asyncpg.Connection,
        a: AccountRow,
        f: Fill,
        update: OrderUpdate | None,
        marks: Mapping[str, int],
        leverage: int,
    ) -> None:
        position_synced = f.time_ms <= marks.get(f"position:{f.symbol}", -1)
        wallet_synced = f.time_ms <= marks.get("wallet", -1)
        applied = not (position_synced and wallet_synced)
        inserted = await conn.fetchval(
            "INSERT INTO exchange_fills (account_id, symbol, trade_id, order_id, client_order_id, side, price, "
            "quantity, commission, commission_asset, realised_pnl, maker, applied, fill_time) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
            "ON CONFLICT (account_id, symbol, trade_id) DO NOTHING RETURNING trade_id",
            self.account, f.symbol, f.trade_id, f.order_id, f.client_order_id, f.side, f.price, f.qty, f.commission,
            f.commission_asset, f.realized_pnl, f.is_maker, applied, utc(f.time_ms),
        )  # fmt: skip
        if inserted is None:
            self.counts["fills_duplicate"] += 1
            return
        self.counts["fills"] += 1
        when = utc(f.time_ms)
        fee = f.commission if f.commission_asset in ("", self.asset) else ZERO
        position = None if position_synced else await open_position_of(conn, self.account, f.symbol)
        if not wallet_synced:
            a.post("realised_pnl", f.realized_pnl, position.position_id if position else None, f"fill {f.trade_id}",
                   when)  # fmt: skip
            a.post("fee", -fee, position.position_id if position else None, f"commission of fill {f.trade_id}", when)
        if position_synced:
            self.counts["fills_already_synced"] += 1
            return
        buys = f.side == "BUY"
        remaining = f.qty
        if position is not None and (position.side is PositionSide.LONG) != buys:
            closing = min(remaining, position.quantity)
            share = closing / f.qty
            await self._reduce(conn, a, position, closing, f, update, f.realized_pnl * share, fee * share, when)
            remaining -= closing
            position = None
            if remaining <= 0:
                await self._link(conn, f, None)
                return
        elif position is not None:
            total = position.quantity + remaining
            entry = (position.quantity * position.entry_price + remaining * f.price) / total
            row = await conn.fetchrow(
                "UPDATE positions SET quantity = $2, entry_price = $3, margin = $4, entry_fee = entry_fee + $5, "
                f"revision = revision + 1, updated_at = $6 WHERE position_id = $1 RETURNING "
                f"{_P_COLUMNS.replace('p.', '')}",
                position.position_id, total, entry, d.initial_margin(total, entry, position.leverage), fee, when,
            )  # fmt: skip
            a.event("POSITION_UPDATED", when, f.symbol, _position(row))
            await self._link(conn, f, position.position_id)
            return
        if update is not None and (update.reduce_only or update.close_position) and remaining == f.qty:
            log.info("live mirror: reduce-only fill %s of %s with no open position in the database; recorded only",
                     f.trade_id, f.symbol)  # fmt: skip
            await self._link(conn, f, None)
            return
        sl, tp = await protective_levels(conn, self.account, f.symbol)
        side = PositionSide.LONG if buys else PositionSide.SHORT
        if (sl is not None and (sl >= f.price if buys else sl <= f.price)) or (
            tp is not None and (tp <= f.price if buys else tp >= f.price)
        ):
            sl = tp = None  # stops of an earlier position on the other side
        opened = await insert_position(
            conn, account=self.account, key=f"fill:{f.symbol}:{f.trade_id}", symbol=f.symbol, side=side,
            quantity=remaining, entry_price=f.price, leverage=leverage, entry_fee=fee * remaining / f.qty,
            sl_price=sl, tp_price=tp, working_type=self.working_type, opened_at=when, source="stream",
        )  # fmt: skip
        self.counts["positions_opened"] += 1
        a.event("POSITION_OPENED", when, f.symbol, opened)
        await self._link(conn, f, opened.position_id)

    async def _link(self, conn: asyncpg.Connection, f: Fill, position_id: uuid.UUID | None) -> None:
        if position_id is not None:
            await conn.execute(
                "UPDATE exchange_fills SET position_id = $4 WHERE account_id = $1 AND symbol = $2 AND trade_id = $3",
                self.account,
                f.symbol,
                f.trade_id,
                position_id,
            )

    async def _reduce(
        self,
        conn: asyncpg.Connection,
        a: AccountRow,
        p: Position,
        closing: Decimal,
        f: Fill,
        update: OrderUpdate | None,
        gross: Decimal,
        fee: Decimal,
        when: dt.datetime,
    ) -> None:
        await self._link(conn, f, p.position_id)
        row = await conn.fetchrow(
            "SELECT closed_quantity, exit_notional, exit_fees, exit_gross_pnl FROM positions WHERE position_id = $1",
            p.position_id,
        )
        closed = row["closed_quantity"] + closing
        notional = row["exit_notional"] + closing * f.price
        exit_fees = row["exit_fees"] + fee
        exit_gross = row["exit_gross_pnl"] + gross
        left = p.quantity - closing
        if left > 0:
            updated = await conn.fetchrow(
                "UPDATE positions SET quantity = $2, margin = $3, closed_quantity = $4, exit_notional = $5, "
                "exit_fees = $6, exit_gross_pnl = $7, revision = revision + 1, updated_at = $8 WHERE position_id = $1 "
                f"RETURNING {_P_COLUMNS.replace('p.', '')}",
                p.position_id, left, d.initial_margin(left, p.entry_price, p.leverage), closed, notional, exit_fees,
                exit_gross, when,
            )  # fmt: skip
            a.event("POSITION_UPDATED", when, p.symbol, _position(updated))
            return
        await conn.execute(
            "UPDATE positions SET closed_quantity = $2, exit_notional = $3, exit_fees = $4, exit_gross_pnl = $5 "
            "WHERE position_id = $1",
            p.position_id,
            closed,
            notional,
            exit_fees,
            exit_gross,
        )
        await close_position(
            conn, a, p, closed_quantity=closed, exit_price=d.money(notional / closed) if closed else p.entry_price,
            gross=exit_gross, exit_fees=exit_fees, reason=close_reason_of(update, f.client_order_id), closed_at=when,
        )  # fmt: skip
        self.counts["positions_closed"] += 1


@contextlib.asynccontextmanager
async def running(mirror: LiveMirror):
    """Run ``mirror`` in the background for the block (tests)."""
    task = asyncio.create_task(mirror.run(), name="live-mirror")
    try:
        yield mirror
    finally:
        await mirror.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
