"""The virtual accounts' book: every mutation in one PostgreSQL transaction, many requests per transaction.

:class:`AccountBook` holds no state of its own beyond caches of reference data (which accounts exist, leverage
brackets): positions, balances, prices and idempotency keys live in PostgreSQL, so any replica can serve any
call and a killed process loses nothing that was acknowledged.

Locking (docs/accounts.md, "Consistency"): a transaction locks the account rows it changes
(``SELECT ... FOR UPDATE``, in account-id order so two transactions never wait on each other in a circle), and
only then reads and changes that account's positions. Opens, closes and price-driven closes of one account
therefore happen one transaction after another, whatever replica runs them: a position is closed once, an
idempotency key is inserted once, a fee is never lost. ``ApplyPriceUpdates`` also locks the price rows of its
symbols first (symbol order), so two replicas applying updates of the same symbol take turns.

Batching: every method takes a list and does one transaction for all of it, with set-based statements
(``unnest`` arrays: one round trip per table, not per row). :class:`aegis.virtual_account.batcher.Batcher`
gathers concurrent single requests into such lists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import struct
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import grpc
import msgspec

from aegis.errors import AegisError, AlreadyExistsError, NotFoundError, ValidationError
from aegis.risk.sizing import PositionSide
from aegis.storage.postgres import Database
from aegis.virtual_account import domain as d
from aegis.virtual_account.domain import CloseReason, FeeSchedule, Liquidity, Tick, WorkingType
from aegis.virtual_account.settings import AccountSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

KINDS = ("learning", "paper", "live")
"""``live``: mirrored from the exchange (aegis.virtual_account.live); never opened, closed or revalued here."""
DEFAULT_ACCOUNTS: Mapping[str, str] = {"learning": "learning", "paper": "paper"}
_DB_SIDE = {PositionSide.LONG: "BUY", PositionSide.SHORT: "SELL"}
_SIDE_OF = {"BUY": PositionSide.LONG, "SELL": PositionSide.SHORT}
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class AccountRefusal(AegisError):
    """The request is well formed but the account's state refuses it (position closed, no price, no margin)."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """A validated ``OpenPositionRequest``."""

    idempotency_key: str
    account: str
    symbol: str
    side: PositionSide
    quantity: Decimal
    leverage: int
    entry_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    signal_id: str | None = None
    confidence: float | None = None
    predicted_return_pct: float | None = None
    model_version: str = ""
    feature_schema_version: int | None = None
    features: tuple[float, ...] | None = None
    decision_id: str = ""

    def fingerprint(self) -> str:
        """Hash of every field but the key: a retry must carry the same one."""
        parts = (
            self.account, self.symbol, self.side.value, _norm(self.quantity), self.leverage, _norm(self.entry_price),
            _norm(self.stop_loss_price), _norm(self.take_profit_price), self.signal_id, self.confidence,
            self.predicted_return_pct, self.model_version, self.feature_schema_version,
            None if self.features is None else struct.pack(f"<{len(self.features)}d", *self.features),
            self.decision_id,
        )  # fmt: skip
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """A validated ``ClosePositionRequest``."""

    idempotency_key: str
    account: str
    position_id: str
    reason: CloseReason = CloseReason.MANUAL
    price: Decimal | None = None

    def fingerprint(self) -> str:
        return hashlib.sha256(repr((self.position_id, self.reason.value, _norm(self.price))).encode()).hexdigest()[:32]


def _norm(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _builder(cls: type[T]) -> Callable[..., T]:
    """A constructor of the frozen, slotted dataclass ``cls`` taking the same arguments (positional or by name, the
    same defaults) and building an equal instance at a fifth of the cost.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (~65 ns a field: 2.5 µs for a
    :class:`Position`, built two or three times per round trip). This one sets them on a plain twin class with the
    same slots (``STORE_ATTR``, ~10 ns a field) and then makes the object a ``cls`` (``__class__`` assignment,
    allowed between classes of identical slot layout); the result is frozen like any other (tested).
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if getattr(cls, "__slots__", None) != tuple(f.name for f in fields):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": cls.__slots__})
    defaults: dict[str, Any] = {}
    params = []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            defaults[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: default factories are not supported")
        else:
            params.append(f.name)
    body = "".join(f"    o.{f.name} = {f.name}\n" for f in fields)
    source = f"def build({', '.join(params)}):\n    o = _new(_twin)\n{body}    o.__class__ = _cls\n    return o\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls, **defaults}
    exec(source, namespace)  # generated from the dataclass's own field names only
    build = namespace["build"]
    build.__qualname__ = build.__name__ = f"new_{cls.__name__.lower()}"
    return build  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Position:
    """A position row (``positions``), plus the symbol's latest mark price when known."""

    position_id: uuid.UUID
    account_id: str
    idempotency_key: str
    symbol: str
    side: PositionSide
    status: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin: Decimal
    sl_price: Decimal | None
    tp_price: Decimal | None
    liquidation_price: Decimal | None
    working_type: WorkingType
    signal_id: uuid.UUID | None
    confidence: float | None
    entry_fee: Decimal
    funding: Decimal
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    exit_price: Decimal | None
    close_reason: CloseReason | None
    request_hash: str | None
    margin_type: str
    maint_margin_ratio: Decimal
    maint_cum: Decimal
    funding_from: dt.datetime | None
    model_version: str | None
    predicted_return_pct: float | None
    feature_schema_version: int | None
    exit_fee: Decimal | None
    gross_pnl: Decimal | None
    realised_pnl: Decimal | None
    close_idempotency_key: str | None
    close_request_hash: str | None
    updated_at: dt.datetime | None
    mark_price: Decimal | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "OPEN"

    @property
    def notional(self) -> Decimal:
        return self.quantity * (self.mark_price if self.mark_price is not None else self.entry_price)

    @property
    def unrealised_pnl(self) -> Decimal:
        if not self.is_open or self.mark_price is None:
            return d.ZERO
        return d.unrealised_pnl(self.side, self.quantity, self.entry_price, self.mark_price)

    @property
    def maintenance_margin(self) -> Decimal:
        return d.maintenance_margin(self.notional, self.maint_margin_ratio, self.maint_cum) if self.is_open else d.ZERO


_make_position = _builder(Position)


_POSITION_COLUMNS = (
    "position_id, account_id, idempotency_key, symbol, side, status, quantity, entry_price, leverage, margin, "
    "sl_price, tp_price, liquidation_price, working_type, signal_id, confidence, entry_fee, funding, opened_at, "
    "closed_at, exit_price, close_reason, request_hash, margin_type, maint_margin_ratio, maint_cum, funding_from, "
    "model_version, predicted_return_pct, feature_schema_version, exit_fee, gross_pnl, realised_pnl, "
    "close_idempotency_key, close_request_hash, updated_at"
)
_P_COLUMNS = ", ".join(f"p.{c.strip()}" for c in _POSITION_COLUMNS.split(","))
_POSITION_COLUMN_COUNT = len(_POSITION_COLUMNS.split(","))


_WORKING_TYPE_OF = {w.value: w for w in WorkingType}
_REASON_OF = {r.value: r for r in CloseReason}
# the other way, without the enum's ``value`` descriptor (~0.1 us a call, several per round trip)
_WORKING_TYPE_TEXT = {w: w.value for w in WorkingType}
_REASON_TEXT = {r: r.value for r in CloseReason}


def _position(row: Mapping[str, Any], mark_price: Decimal | None = None) -> Position:
    """A :class:`Position` from a row of ``_POSITION_COLUMNS`` (a record or a dict; ``mark_price`` if it has one).

    Positional arguments and dictionary lookups instead of ``Position(**dict(row))`` and enum calls: price updates
    build one per closed position (``aegis bench account``).
    """
    g = row.__getitem__
    reason = g("close_reason")
    return _make_position(
        g("position_id"), g("account_id"), g("idempotency_key"), g("symbol"), _SIDE_OF[g("side")], g("status"),
        g("quantity"), g("entry_price"), int(g("leverage")), g("margin"), g("sl_price"), g("tp_price"),
        g("liquidation_price"), _WORKING_TYPE_OF[g("working_type")], g("signal_id"), g("confidence"), g("entry_fee"),
        g("funding"), g("opened_at"), g("closed_at"), g("exit_price"), _REASON_OF[reason] if reason else None,
        g("request_hash"), g("margin_type"), g("maint_margin_ratio") or d.ZERO, g("maint_cum") or d.ZERO,
        g("funding_from"), g("model_version"), g("predicted_return_pct"), g("feature_schema_version"), g("exit_fee"),
        g("gross_pnl"), g("realised_pnl"), g("close_idempotency_key"), g("close_request_hash"), g("updated_at"),
        row.get("mark_price", mark_price),
    )  # fmt: skip


def _position_row(row: asyncpg.Record, mark_price: Decimal | None = None) -> Position:
    """:func:`_position` of a record whose first columns are ``_POSITION_COLUMNS`` in their order (the book's hot
    reads: the positions a price update or a ClosePosition closes), unpacked at once instead of read by name
    (~2 us less a row)."""
    (position_id, account_id, idempotency_key, symbol, side, status, quantity, entry_price, leverage, margin, sl, tp,
     liquidation, working_type, signal_id, confidence, entry_fee, funding, opened_at, closed_at, exit_price, reason,
     request_hash, margin_type, mmr, cum, funding_from, model_version, predicted, schema_version, exit_fee, gross,
     realised, close_key, close_hash, updated_at) = tuple(row)[:_POSITION_COLUMN_COUNT]  # fmt: skip
    return _make_position(
        position_id, account_id, idempotency_key, symbol, _SIDE_OF[side], status, quantity, entry_price, int(leverage),
        margin, sl, tp, liquidation, _WORKING_TYPE_OF[working_type], signal_id, confidence, entry_fee, funding,
        opened_at, closed_at, exit_price, _REASON_OF[reason] if reason else None, request_hash, margin_type,
        mmr or d.ZERO, cum or d.ZERO, funding_from, model_version, predicted, schema_version, exit_fee, gross,
        realised, close_key, close_hash, updated_at, mark_price,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip (``trades``) with its account's kind."""

    trade_id: uuid.UUID
    position_id: uuid.UUID
    account_id: str
    account_kind: str
    symbol: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    leverage: int
    margin: Decimal
    opened_at: dt.datetime
    closed_at: dt.datetime
    close_reason: CloseReason
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    realised_pnl: Decimal
    roi_margin_pct: Decimal
    roi_price_pct: Decimal
    reward_score: int
    signal_id: uuid.UUID | None
    confidence: float | None
    predicted_return_pct: float | None
    model_version: str | None
    feature_schema_version: int | None
    features: tuple[float, ...] | None = None

    @property
    def return_pct(self) -> Decimal:
        """Net PnL on the entry notional, percent."""
        return d.pct(self.realised_pnl * d.HUNDRED / (self.quantity * self.entry_price))


_make_trade = _builder(Trade)


_TRADE_COLUMNS = (
    "t.trade_id, t.position_id, t.account_id, a.kind AS account_kind, t.symbol, t.side, t.quantity, t.entry_price, "
    "t.exit_price, t.leverage, t.margin, t.opened_at, t.closed_at, t.close_reason, t.gross_pnl, t.fees, t.funding, "
    "t.realised_pnl, t.roi_margin_pct, t.roi_price_pct, t.reward_score, t.signal_id, t.confidence, "
    "t.predicted_return_pct, t.model_version, t.feature_schema_version"
)


def _trade(row: Mapping[str, Any]) -> Trade:
    values = dict(row)
    values["side"] = _SIDE_OF[values["side"]]
    values["leverage"] = int(values["leverage"])
    values["close_reason"] = CloseReason(values["close_reason"])
    if values.get("features") is not None:
        values["features"] = tuple(values["features"])
    return Trade(**values)


@dataclass(frozen=True, slots=True)
class AccountView:
    """Balance, equity and its parts (``aegis.v1.Account``); equity as in :mod:`aegis.risk.sizing`."""

    name: str
    kind: str
    asset: str
    starting_balance: Decimal
    wallet_balance: Decimal
    realised_price_pnl: Decimal
    """Price PnL of closed positions (liquidation losses included), before fees and funding."""
    fees: Decimal
    funding: Decimal
    unrealised_pnl: Decimal
    margin_used: Decimal
    maintenance_margin: Decimal
    open_positions: int
    max_open_positions: int
    trade_count: int
    win_count: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def equity(self) -> Decimal:
        """Total equity = wallet balance + unrealised PnL (``aegis.risk.sizing.equity_breakdown``)."""
        return self.wallet_balance + self.unrealised_pnl

    @property
    def available_balance(self) -> Decimal:
        return self.wallet_balance - self.margin_used

    @property
    def realised_pnl(self) -> Decimal:
        """Everything realised, net: ``wallet - start = realised price PnL - fees + funding``."""
        return self.wallet_balance - self.starting_balance


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A ``balance_ledger`` row: ``amount`` changed the wallet to ``balance_after``.

    ``fee`` is the part of ``amount`` that is a fee, on rows that are not wholly one: a close's single row carries
    its price PnL and its exit fee (``amount = price PnL + fee``, ``fee = -exit fee``); a ``fee`` row's fee is its
    ``amount`` and this stays 0 (docs/accounts.md, "Money and the balance identity").
    """

    account_id: str
    kind: str
    amount: Decimal
    balance_after: Decimal
    position_id: uuid.UUID | None
    reference: str
    created_at: dt.datetime
    fee: Decimal = d.ZERO


_make_ledger_entry = _builder(LedgerEntry)


@dataclass(frozen=True, slots=True)
class FundingPayment:
    account_id: str
    position_id: uuid.UUID
    symbol: str
    funding_rate: Decimal
    mark_price: Decimal
    amount: Decimal
    funding_time: dt.datetime


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to an account; ``payload`` follows ``type`` (see ``aegis.v1.AccountEvent``)."""

    account: str
    sequence: int
    type: str
    """POSITION_OPENED, POSITION_CLOSED, LIQUIDATION, FUNDING or BALANCE_CHANGED."""
    time: dt.datetime
    symbol: str
    payload: Position | Trade | FundingPayment | LedgerEntry


@dataclass(frozen=True, slots=True)
class OpenOutcome:
    position: Position
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class CloseOutcome:
    position: Position
    trade: Trade
    replayed: bool = False


_make_open_outcome = _builder(OpenOutcome)
_make_close_outcome = _builder(CloseOutcome)


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    positions_updated: int
    closed_trades: tuple[Trade, ...]
    funding_payments: int
    stale_updates: int


# --------------------------------------------------------------------------------------------- batch state


@dataclass(slots=True)
class _Account:
    """An account row locked by the transaction, changed in memory and written back once."""

    account_id: str
    kind: str
    wallet: Decimal
    realised: Decimal
    fees: Decimal
    funding: Decimal
    revision: int
    trade_count: int
    win_count: int
    ledger: list[LedgerEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    written: int = 0
    """How many of ``ledger`` are already sent to PostgreSQL (with a chunk of positions or closes)."""
    record: bool = True
    """Build :class:`Event` objects (False while nobody could receive them: only the revision counts)."""
    changed: bool = False

    def post(
        self,
        kind: str,
        amount: Decimal,
        position_id: uuid.UUID | None,
        reference: str,
        when: dt.datetime,
        fee: Decimal = d.ZERO,
    ) -> LedgerEntry:
        """Change the wallet by ``amount`` (of which ``fee``, <= 0, is a fee: see :class:`LedgerEntry`)."""
        self.wallet += amount
        entry = _make_ledger_entry(self.account_id, kind, amount, self.wallet, position_id, reference, when, fee)
        self.ledger.append(entry)
        if kind in ("realised_pnl", "liquidation"):
            self.realised += amount - fee
            self.fees -= fee
        elif kind == "fee":
            self.fees -= amount
        elif kind == "funding":
            self.funding += amount
        self.event("BALANCE_CHANGED", when, "", entry)
        return entry

    def event(self, type_: str, when: dt.datetime, symbol: str, payload: Any) -> None:
        self.revision += 1
        self.changed = True
        if self.record:
            self.events.append(Event(self.account_id, self.revision, type_, when, symbol, payload))


# The wallet's parts from the ledger rows alone (see LedgerEntry; docs/accounts.md "Money and the balance identity").
_LEDGER_PARTS = """
SELECT coalesce(sum(amount), 0) AS ledger,
    coalesce(sum(amount - fee) FILTER (WHERE kind IN ('realised_pnl', 'liquidation')), 0) AS ledger_realised,
    -coalesce(sum(CASE WHEN kind = 'fee' THEN amount ELSE fee END), 0) AS ledger_fees,
    coalesce(sum(amount) FILTER (WHERE kind = 'funding'), 0) AS ledger_funding
FROM balance_ledger"""

_LOCK_ACCOUNTS = """
SELECT account_id, kind, wallet_balance, realised_pnl, fees, funding, revision, trade_count, win_count
FROM accounts WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR UPDATE
"""

# The statements that write one row per operation take each column as one array literal (text, ``$1::text::uuid[]``),
# built by :func:`_array` and friends: asyncpg's binary encoder spends ~1.5 µs per Decimal (``as_tuple``) and an ABC
# check per element of any list, while ``str(Decimal)`` is exact and PostgreSQL parses the literal faster
# (``aegis bench account``, docs/accounts.md "Performance"). Never inside a per-row condition:
# ``x = ANY($1::text::uuid[])`` parses the literal again for every row; arrays compared with ``= ANY`` stay binary.
#
# Ledger rows never travel alone: they ride with the statement that writes what caused them (a chunk of new
# positions, a chunk of closes, the accounts), as a data-modifying CTE (run once, to completion, whether read or not).


def _ledger_cte(first: int) -> str:
    """``ledger_rows AS (INSERT INTO balance_ledger ...)`` taking its 8 arrays as ``$first`` .. ``$first+7``."""
    n = [f"${first + i}" for i in range(8)]
    return f"""ledger_rows AS (
    INSERT INTO balance_ledger (account_id, kind, amount, balance_after, position_id, reference, created_at, fee)
    SELECT * FROM unnest({n[0]}::text::text[], {n[1]}::text::text[], {n[2]}::text::numeric[], {n[3]}::text::numeric[],
                         {n[4]}::text::uuid[], {n[5]}::text::text[], {n[6]}::text::timestamptz[],
                         {n[7]}::text::numeric[])
)"""


_WRITE_ACCOUNTS = f"""
WITH {_ledger_cte(9)}
UPDATE accounts a SET wallet_balance = u.wallet, realised_pnl = u.realised, fees = u.fees, funding = u.funding,
    revision = u.revision, trade_count = u.trades, win_count = u.wins, updated_at = now()
FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::numeric[], $5::numeric[], $6::bigint[], $7::bigint[],
            $8::bigint[]) AS u(account_id, wallet, realised, fees, funding, revision, trades, wins)
WHERE a.account_id = u.account_id
"""

# The feature vectors travel as one flat float8[] literal of the chunk ($28, parsed once, in a materialized CTE) with
# each row's start and length ($25, $27): a text[] of per-row vector literals cost PostgreSQL a quoted-string scan
# of every vector before parsing it again as float8[] (~3 us more per open, aegis bench account).
_INSERT_POSITIONS = f"""
WITH feats AS MATERIALIZED (SELECT $28::text::float8[] AS flat), {_ledger_cte(29)}
INSERT INTO positions (position_id, account_id, idempotency_key, symbol, side, status, quantity, entry_price, leverage,
    margin, sl_price, tp_price, liquidation_price, working_type, signal_id, confidence, entry_fee, funding, opened_at,
    request_hash, margin_type, maint_margin_ratio, maint_cum, funding_from, model_version, predicted_return_pct,
    feature_schema_version, features, decision_id, updated_at)
SELECT u.position_id, u.account_id, u.idempotency_key, u.symbol, u.side, 'OPEN', u.quantity, u.entry_price, u.leverage,
    u.margin, u.sl_price, u.tp_price, u.liquidation_price, u.working_type, u.signal_id, u.confidence, u.entry_fee, 0,
    u.opened_at, u.request_hash, 'ISOLATED', u.mmr, u.cum, u.funding_from, u.model_version, u.predicted_return_pct,
    u.schema_version, CASE WHEN u.f_start IS NOT NULL THEN f.flat[u.f_start : u.f_start + u.f_len - 1] END,
    u.decision_id, u.opened_at
FROM unnest($1::text::uuid[], $2::text::text[], $3::text::text[], $4::text::text[], $5::text::text[],
            $6::text::numeric[], $7::text::numeric[], $8::text::numeric[], $9::text::numeric[], $10::text::numeric[],
            $11::text::numeric[], $12::text::numeric[], $13::text::text[], $14::text::uuid[], $15::text::float8[],
            $16::text::numeric[], $17::text::timestamptz[], $18::text::text[], $19::text::numeric[],
            $20::text::numeric[], $21::text::timestamptz[], $22::text::text[], $23::text::float8[], $24::text::int[],
            $25::text::int[], $26::text::text[], $27::text::int[])
    AS u(position_id, account_id, idempotency_key, symbol, side, quantity, entry_price, leverage, margin, sl_price,
         tp_price, liquidation_price, working_type, signal_id, confidence, entry_fee, opened_at, request_hash, mmr,
         cum, funding_from, model_version, predicted_return_pct, schema_version, f_start, decision_id, f_len),
    feats f
"""

# One statement closes the positions and inserts their trades from the updated rows (no second pass over positions).
# The OPEN guard compares with a column of the materialized input, not a constant: with the constant, the planner
# proves the partial index positions_open_idx (... WHERE status = 'OPEN') usable and ANDs a bitmap scan of all of it
# (every open position, and the dead entries closes leave until a vacuum) with the primary-key lookups, for every
# chunk; as a join key it looks up the primary key only (aegis bench account: ~6 µs of PostgreSQL CPU per round trip).
_CLOSE_POSITIONS = f"""
WITH u AS MATERIALIZED (
    SELECT *, 'OPEN'::text AS open
    FROM unnest($1::uuid[], $2::text::timestamptz[], $3::text::numeric[], $4::text::text[],
                $5::text::numeric[], $6::text::numeric[], $7::text::numeric[], $8::text::numeric[],
                $9::text::text[], $10::text::text[], $11::text::uuid[], $12::text::numeric[],
                $13::text::numeric[], $14::text::numeric[], $15::text::int[])
        AS u(position_id, closed_at, exit_price, reason, exit_fee, gross, net, funding, ckey, chash, trade_id, fees,
             roi_m, roi_p, reward)
), {_ledger_cte(16)}, closed AS (
    UPDATE positions p SET status = 'CLOSED', closed_at = u.closed_at, exit_price = u.exit_price,
        close_reason = u.reason, exit_fee = u.exit_fee, gross_pnl = u.gross, realised_pnl = u.net, funding = u.funding,
        close_idempotency_key = u.ckey, close_request_hash = u.chash, revision = p.revision + 1, updated_at = now()
    FROM u
    WHERE p.position_id = u.position_id AND p.status = u.open AND p.position_id = ANY($1::uuid[])
    RETURNING p.*, u.trade_id, u.fees AS trade_fees, u.roi_m, u.roi_p, u.reward
)
INSERT INTO trades (trade_id, position_id, account_id, symbol, side, quantity, entry_price, exit_price, leverage,
    margin, opened_at, closed_at, close_reason, gross_pnl, fees, funding, realised_pnl, roi_margin_pct, roi_price_pct,
    reward_score, signal_id, confidence, predicted_return_pct, model_version, feature_schema_version, features)
SELECT c.trade_id, c.position_id, c.account_id, c.symbol, c.side, c.quantity, c.entry_price, c.exit_price, c.leverage,
    c.margin, c.opened_at, c.closed_at, c.close_reason, c.gross_pnl, c.trade_fees, c.funding, c.realised_pnl, c.roi_m,
    c.roi_p, c.reward, c.signal_id, c.confidence, c.predicted_return_pct, c.model_version, c.feature_schema_version,
    c.features
FROM closed c
"""

_ADD_FUNDING = """
UPDATE positions p SET funding = p.funding + u.amount, updated_at = now()
FROM unnest($1::uuid[], $2::numeric[]) AS u(position_id, amount)
WHERE p.position_id = u.position_id AND p.position_id = ANY($1::uuid[])
"""

_LOCK_PRICES = """
SELECT symbol, last_price, mark_price, funding_rate, next_funding_time, event_time
FROM account_prices WHERE symbol = ANY($1::text[]) ORDER BY symbol FOR UPDATE
"""

_WRITE_PRICES = """
INSERT INTO account_prices (symbol, last_price, mark_price, funding_rate, next_funding_time, event_time, updated_at)
SELECT u.*, now() FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::numeric[], $5::timestamptz[],
                              $6::timestamptz[]) AS u
ON CONFLICT (symbol) DO UPDATE SET last_price = EXCLUDED.last_price, mark_price = EXCLUDED.mark_price,
    funding_rate = EXCLUDED.funding_rate, next_funding_time = EXCLUDED.next_funding_time,
    event_time = EXCLUDED.event_time, updated_at = now()
WHERE account_prices.event_time < EXCLUDED.event_time
"""

# One row: how many open positions the updates revalue, and which of them the batch's price ranges may close
# (or must charge funding). The exact, ordered check runs in Python on those few rows only.
_CANDIDATES = """
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::numeric[], $5::numeric[], $6::bool[])
        AS u(symbol, lo_last, hi_last, lo_mark, hi_mark, funding)
), m AS (
    SELECT p.position_id, p.account_id,
        u.funding
        OR (p.side = 'BUY' AND (
            p.sl_price >= CASE WHEN p.working_type = 'MARK_PRICE' THEN u.lo_mark ELSE u.lo_last END
            OR p.tp_price <= CASE WHEN p.working_type = 'MARK_PRICE' THEN u.hi_mark ELSE u.hi_last END
            OR p.liquidation_price >= u.lo_mark))
        OR (p.side = 'SELL' AND (
            p.sl_price <= CASE WHEN p.working_type = 'MARK_PRICE' THEN u.hi_mark ELSE u.hi_last END
            OR p.tp_price >= CASE WHEN p.working_type = 'MARK_PRICE' THEN u.lo_mark ELSE u.lo_last END
            OR p.liquidation_price <= u.hi_mark)) AS hit
    FROM positions p JOIN u ON p.symbol = u.symbol
    WHERE p.status = 'OPEN' AND p.account_id = ANY($7::text[]) AND p.symbol = ANY($1::text[])
)
SELECT count(*) AS revalued,
       coalesce(array_agg(position_id) FILTER (WHERE hit), '{}') AS ids,
       coalesce(array_agg(DISTINCT account_id) FILTER (WHERE hit), '{}') AS accounts
FROM m
"""


_CHUNK = 125
_CHUNKS = 8


def _chunk_size(n: int) -> int:
    """Rows per write statement for a batch of ``n``: PostgreSQL writes one chunk while Python builds the next
    (:class:`_Pipeline`). The first chunk's Python work and the last chunk's SQL are not overlapped, and every
    statement costs a plan and an executor start: about eight chunks, of at least ``_CHUNK`` rows
    (``aegis bench account``: faster than four or sixteen, docs/accounts.md "Performance")."""
    return max(_CHUNK, -(-n // _CHUNKS))


class _Pipeline:
    """One write statement in flight on the transaction's connection while Python builds the next one.

    asyncpg runs one statement at a time per connection; :meth:`send` waits for the previous statement, starts the
    next one and returns once its message is on the socket (one pass of the event loop: the Bind and Execute are
    written before the protocol waits), so PostgreSQL executes it while the caller computes. A statement's error
    surfaces at the next :meth:`send` or :meth:`drain`, inside the transaction, which then rolls back as usual.
    Any other use of the connection must :meth:`drain` first.
    """

    __slots__ = ("_conn", "_expect", "_pending")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._pending: asyncio.Future[str] | None = None
        self._expect: int | None = None

    async def send(self, query: str, *args: Any, expect: int | None = None) -> None:
        """Start ``query``; ``expect``: the row count its status must report (else the transaction fails)."""
        await self.drain()
        self._pending = asyncio.ensure_future(self._conn.execute(query, *args))
        self._expect = expect
        await asyncio.sleep(0)

    async def drain(self) -> None:
        """Wait for the statement in flight, if any; raise its error."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        status = await pending
        if self._expect is not None and int(status.split()[-1]) != self._expect:
            # every row is locked by us: anything else is a bug, not a race
            raise AegisError(f"wrote {status.split()[-1]} of {self._expect} rows: rolled back")

    async def settle(self) -> None:
        """After an error elsewhere: let the statement in flight finish so the transaction can roll back."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(Exception):
                await pending


@dataclass(slots=True)
class _Close:
    position: Position
    exit: d.Exit
    closed_at: dt.datetime
    funding: Decimal
    liquidity: Liquidity
    key: str | None = None
    request_hash: str | None = None


@dataclass(slots=True)
class _SymbolState:
    last_price: Decimal | None
    mark_price: Decimal | None
    funding_rate: Decimal | None
    next_funding_time: dt.datetime | None
    event_time: dt.datetime | None
    changed: bool = False


# --------------------------------------------------------------------------------------------- the book


class AccountBook:
    """Open, close and revalue positions of the virtual accounts, in PostgreSQL."""

    def __init__(
        self,
        db: Database,
        settings: AccountSettings,
        *,
        accounts: Mapping[str, str] = DEFAULT_ACCOUNTS,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        publish: Callable[[list[Event]], None] | None = None,
        listening: Callable[[], bool] | None = None,
    ) -> None:
        """``publish`` receives each committed transaction's events; ``listening`` (default: always, when there is
        a ``publish``) says whether anyone could receive them now: while not, the events are not even built (the
        accounts' revisions, the events' sequence numbers, still count them)."""
        for name, kind in accounts.items():
            if kind not in KINDS:
                raise ValueError(f"account {name!r}: kind must be one of {KINDS}, got {kind!r}")
        self._db = db
        self.settings = settings
        self.accounts = dict(accounts)
        self.fees = FeeSchedule(settings.taker_fee_rate, settings.maker_fee_rate, settings.slippage_rate)
        self.working_type = WorkingType(settings.working_type.upper())
        self.now = clock
        self._publish = publish
        self._listening = listening
        self._ensured: set[str] = set()
        self._brackets: dict[str, tuple[float, list[tuple[Decimal, Decimal, int, Decimal, Decimal]]]] = {}

    def max_open_positions(self, account: str) -> int:
        return self.settings.paper_max_open_positions if self.accounts.get(account) == "paper" else 0

    def check_account(self, name: str, field_name: str = "account") -> str:
        if name not in self.accounts:
            known = ", ".join(sorted(self.accounts))
            raise ValidationError(field_name, f"no account named {name!r} (known: {known})")
        return name

    # ----------------------------------------------------------------------------------- plumbing

    async def _transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, retried when PostgreSQL breaks a deadlock or a serialization conflict."""
        for attempt in range(4):
            try:
                async with self._db.connection() as conn, conn.transaction():
                    return await work(conn)
            except _RETRYABLE as exc:
                if attempt == 3:
                    raise
                log.warning("transaction retried after %s", type(exc).__name__)
        raise AssertionError("unreachable")

    def _emit(self, accounts: Iterable[_Account]) -> None:
        if self._publish is None:
            return
        events = [e for a in accounts for e in a.events]
        if events:
            try:
                self._publish(events)
            except Exception:  # a lost notification must never undo a committed trade
                log.exception("publishing %d account events failed", len(events))

    async def ensure_accounts(self, names: Iterable[str] | None = None) -> None:
        """Create the named (default: every configured) accounts that do not exist yet, each with its deposit."""
        candidates = set(self.accounts if names is None else names) - self._ensured
        wanted = sorted(n for n in candidates if self.accounts.get(n) != "live")  # the live mirror creates its own
        if not wanted:
            return
        start = self.settings.starting_balance
        when = self.now()

        async def work(conn: asyncpg.Connection) -> None:
            created = await conn.fetch(
                "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance, peak_equity) "
                "SELECT u.name, u.kind, $3, $3, $3 FROM unnest($1::text[], $2::text[]) AS u(name, kind) "
                "ON CONFLICT (account_id) DO NOTHING RETURNING account_id",
                wanted,
                [self.accounts[n] for n in wanted],
                start,
            )
            ids = [r["account_id"] for r in created]
            if ids:
                await conn.execute(
                    "INSERT INTO balance_ledger (account_id, kind, amount, balance_after, reference, created_at) "
                    "SELECT id, 'deposit', $2, $2, 'starting balance', $3 FROM unnest($1::text[]) AS id",
                    ids,
                    start,
                    when,
                )
                log.info("created accounts %s with %s USDT each", ", ".join(ids), start)

        await self._transaction(work)
        self._ensured.update(wanted)

    async def _lock_accounts(self, conn: asyncpg.Connection, names: Iterable[str]) -> dict[str, _Account]:
        rows = await conn.fetch(_LOCK_ACCOUNTS, sorted(set(names)))
        record = self._publish is not None and (self._listening is None or self._listening())
        return {
            r["account_id"]: _Account(r["account_id"], r["kind"], r["wallet_balance"], r["realised_pnl"], r["fees"],
                                      r["funding"], r["revision"], r["trade_count"], r["win_count"], record=record)
            for r in rows
        }  # fmt: skip

    async def _write_accounts(self, pipe: _Pipeline, accounts: Iterable[_Account]) -> None:
        """Write the changed accounts and their ledger entries not sent yet; wait for it (and anything in flight)."""
        changed = [a for a in accounts if a.changed]
        if changed:
            await pipe.send(
                _WRITE_ACCOUNTS,
                [a.account_id for a in changed],
                [a.wallet for a in changed],
                [a.realised for a in changed],
                [a.fees for a in changed],
                [a.funding for a in changed],
                [a.revision for a in changed],
                [a.trade_count for a in changed],
                [a.win_count for a in changed],
                *_ledger_arrays(changed),
            )
        await pipe.drain()

    async def _brackets_of(
        self, conn: asyncpg.Connection, symbols: Iterable[str]
    ) -> dict[str, list[tuple[Decimal, Decimal, int, Decimal, Decimal]]]:
        now = time.monotonic()
        ttl = self.settings.brackets_cache_s
        missing = [s for s in set(symbols) if s not in self._brackets or now - self._brackets[s][0] > ttl]
        if missing:
            rows = await conn.fetch(
                "SELECT symbol, notional_floor, notional_cap, initial_leverage, maint_margin_ratio, cum "
                "FROM leverage_brackets WHERE symbol = ANY($1::text[]) ORDER BY symbol, notional_floor",
                missing,
            )
            found: dict[str, list[tuple[Decimal, Decimal, int, Decimal, Decimal]]] = {s: [] for s in missing}
            for r in rows:
                found[r["symbol"]].append(
                    (r["notional_floor"], r["notional_cap"], r["initial_leverage"], r["maint_margin_ratio"], r["cum"])
                )
            for s, tiers in found.items():
                self._brackets[s] = (now, tiers)
        return {s: self._brackets[s][1] for s in symbols}

    def _tier(
        self, tiers: list[tuple[Decimal, Decimal, int, Decimal, Decimal]], notional: Decimal, leverage: int, symbol: str
    ) -> tuple[Decimal, Decimal]:
        """Return (maint_margin_ratio, cum) of the bracket of ``notional``; refuse a leverage it does not allow."""
        if not tiers:
            return self.settings.default_maint_margin_ratio, d.ZERO
        for floor, cap, max_leverage, mmr, cum in tiers:
            if floor <= notional < cap:
                if leverage > max_leverage:
                    raise ValidationError(
                        "leverage",
                        f"{leverage}x is above the {max_leverage}x {symbol} allows for a notional of "
                        f"{notional.normalize():f} USDT (bracket {floor.normalize():f}-{cap.normalize():f})",
                    )
                return mmr, cum
        raise ValidationError("quantity", f"notional {notional.normalize():f} is above {symbol}'s last bracket")

    # ----------------------------------------------------------------------------------- open

    async def open_positions(self, requests: Sequence[OpenRequest]) -> list[OpenOutcome | AegisError]:
        """Open positions, all in one transaction; each request gets its outcome or its own error.

        Idempotent per (account, idempotency_key): a key already used returns the first position with
        ``replayed=True`` when every other field matches, else AlreadyExistsError.
        """
        results: list[OpenOutcome | AegisError | None] = [None] * len(requests)
        valid: list[int] = []
        for i, r in enumerate(requests):
            try:
                self.check_account(r.account)
                valid.append(i)
            except AegisError as exc:
                results[i] = exc
        if not valid:
            return results  # type: ignore[return-value]
        await self.ensure_accounts({requests[i].account for i in valid})
        names = sorted({requests[i].account for i in valid})
        symbols = sorted({requests[i].symbol for i in valid})

        async def work(conn: asyncpg.Connection) -> dict[str, _Account]:
            accounts = await self._lock_accounts(conn, names)
            for i in valid:
                results[i] = None
            keys = [(requests[i].account, requests[i].idempotency_key) for i in valid]
            existing_rows = await conn.fetch(
                f"SELECT {_P_COLUMNS}, ap.mark_price FROM positions p "
                "LEFT JOIN account_prices ap ON ap.symbol = p.symbol "
                "WHERE p.account_id = ANY($1::text[]) AND p.idempotency_key = ANY($2::text[])",
                sorted({k[0] for k in keys}),
                sorted({k[1] for k in keys}),
            )
            # ANY x ANY is a superset of the pairs (exact with one account); plain ANY keeps the plan on the index.
            wanted = set(keys)
            existing = {
                (r["account_id"], r["idempotency_key"]): _position(r)
                for r in existing_rows
                if (r["account_id"], r["idempotency_key"]) in wanted
            }
            prices = {
                r["symbol"]: r
                for r in await conn.fetch(
                    "SELECT symbol, last_price, mark_price, next_funding_time FROM account_prices "
                    "WHERE symbol = ANY($1::text[])",
                    symbols,
                )
            }
            brackets = await self._brackets_of(conn, symbols)
            usage: dict[str, list[Any]] = {}
            capped = [n for n in names if accounts[n].kind == "paper"]
            if capped:
                for r in await conn.fetch(
                    "SELECT account_id, count(*) AS n, coalesce(sum(margin), 0) AS margin FROM positions "
                    "WHERE account_id = ANY($1::text[]) AND status = 'OPEN' GROUP BY account_id",
                    capped,
                ):
                    usage[r["account_id"]] = [r["n"], r["margin"]]
            hashes: dict[tuple[str, str], str] = {}
            new: list[Position] = []
            features: list[tuple[float, ...] | None] = []
            schema_versions: list[int | None] = []
            decision_ids: list[str] = []
            now = self.now()
            sent = 0
            chunk = _chunk_size(len(valid))
            pipe = _Pipeline(conn)
            try:
                for i in valid:
                    r = requests[i]
                    key = (r.account, r.idempotency_key)
                    digest = r.fingerprint()
                    seen = existing.get(key)
                    if seen is not None:
                        if (seen.request_hash or digest) != digest:
                            results[i] = AlreadyExistsError(
                                f"idempotency_key {r.idempotency_key!r} was used for a different position "
                                f"({seen.position_id}) of account {r.account!r}"
                            )
                        else:
                            results[i] = _make_open_outcome(seen, True)
                        continue
                    if key in hashes:  # the same key twice in this batch: settled after the batch
                        continue
                    try:
                        position = self._new_position(r, digest, accounts[r.account], prices.get(r.symbol),
                                                      brackets[r.symbol], usage, now)  # fmt: skip
                    except AegisError as exc:
                        results[i] = exc
                        continue
                    hashes[key] = digest
                    existing[key] = position
                    new.append(position)
                    features.append(r.features)
                    schema_versions.append(r.feature_schema_version)
                    decision_ids.append(r.decision_id)
                    account = accounts[r.account]
                    if position.entry_fee:
                        account.post("fee", -position.entry_fee, position.position_id, "entry fee", now)
                    account.event("POSITION_OPENED", now, r.symbol, position)
                    results[i] = _make_open_outcome(position)
                    if len(new) - sent >= chunk:  # PostgreSQL writes this chunk while the loop builds the next
                        await self._insert_positions(pipe, new, features, schema_versions, decision_ids, sent, accounts)
                        sent = len(new)
                for i in valid:  # duplicates inside the batch: the first one's result, replayed
                    if results[i] is None:
                        r = requests[i]
                        first = existing[(r.account, r.idempotency_key)]
                        if first.request_hash != r.fingerprint():
                            results[i] = AlreadyExistsError(
                                f"idempotency_key {r.idempotency_key!r} was used for a different position "
                                f"({first.position_id}) of account {r.account!r}"
                            )
                        else:
                            results[i] = OpenOutcome(first, replayed=True)
                if len(new) > sent:
                    await self._insert_positions(pipe, new, features, schema_versions, decision_ids, sent, accounts)
                await self._write_accounts(pipe, accounts.values())
            finally:
                await pipe.settle()
            return accounts

        accounts = await self._transaction(work)
        self._emit(accounts.values())
        return results  # type: ignore[return-value]

    def _new_position(
        self,
        r: OpenRequest,
        digest: str,
        account: _Account,
        price: Mapping[str, Any] | None,
        tiers: list[tuple[Decimal, Decimal, int, Decimal, Decimal]],
        usage: dict[str, list[Any]],
        now: dt.datetime,
    ) -> Position:
        if r.entry_price is not None:
            entry, liquidity = r.entry_price, Liquidity.MAKER
        else:
            if price is None:
                raise AccountRefusal(
                    f"no price known for {r.symbol} yet: pass entry_price, or apply a price update of it first"
                )
            entry = d.slipped(price["last_price"], r.side is PositionSide.LONG, self.fees.slippage_rate)
            liquidity = Liquidity.TAKER
        notional = r.quantity * entry
        mmr, cum = self._tier(tiers, notional, r.leverage, r.symbol)
        margin = d.initial_margin(r.quantity, entry, r.leverage)
        entry_fee = d.fee(r.quantity, entry, self.fees.rate(liquidity))
        _check_levels(r, entry)
        if account.kind == "paper":
            count, used = usage.setdefault(account.account_id, [0, d.ZERO])
            cap = self.settings.paper_max_open_positions
            if cap and count >= cap:
                raise AccountRefusal(f"account {account.account_id!r} already holds {count} of its {cap} positions")
            free = account.wallet - used
            if margin + entry_fee > free:
                raise AccountRefusal(
                    f"account {account.account_id!r} has {free.normalize():f} USDT available, the position needs "
                    f"{(margin + entry_fee).normalize():f} (margin plus entry fee)"
                )
            usage[account.account_id] = [count + 1, used + margin]
        return _make_position(
            position_id=_uuid4(),
            account_id=r.account,
            idempotency_key=r.idempotency_key,
            symbol=r.symbol,
            side=r.side,
            status="OPEN",
            quantity=r.quantity,
            entry_price=entry,
            leverage=r.leverage,
            margin=margin,
            sl_price=r.stop_loss_price,
            tp_price=r.take_profit_price,
            liquidation_price=d.liquidation_price(r.side, r.quantity, entry, margin, mmr, cum),
            working_type=self.working_type,
            signal_id=uuid.UUID(r.signal_id) if r.signal_id else None,
            confidence=r.confidence,
            entry_fee=entry_fee,
            funding=d.ZERO,
            opened_at=now,
            closed_at=None,
            exit_price=None,
            close_reason=None,
            request_hash=digest,
            margin_type="ISOLATED",
            maint_margin_ratio=mmr,
            maint_cum=cum,
            funding_from=price["next_funding_time"] if price is not None else None,
            model_version=r.model_version or None,
            predicted_return_pct=r.predicted_return_pct,
            feature_schema_version=r.feature_schema_version,
            exit_fee=None,
            gross_pnl=None,
            realised_pnl=None,
            close_idempotency_key=None,
            close_request_hash=None,
            updated_at=now,
            mark_price=price["mark_price"] if price is not None else None,
        )

    async def _insert_positions(
        self,
        pipe: _Pipeline,
        new: list[Position],
        features: list[tuple[float, ...] | None],
        schema_versions: list[int | None],
        decision_ids: list[str],
        start: int,
        accounts: dict[str, _Account],
    ) -> None:
        """Send ``new[start:]`` (and the ledger entries not sent yet) as one statement, not waiting for it."""
        chunk = new[start:]
        starts: list[int | None] = []
        lengths: list[int | None] = []
        vectors: list[str] = []
        at = 1
        for vector in features[start:]:
            if vector is None:
                starts.append(None)
                lengths.append(None)
                continue
            starts.append(at)
            lengths.append(len(vector))
            at += len(vector)
            if vector:
                vectors.append(_float_array(vector)[1:-1])
        await pipe.send(
            _INSERT_POSITIONS,
            _uuid_array([p.position_id for p in chunk]),
            _text_array([p.account_id for p in chunk]),
            _text_array([p.idempotency_key for p in chunk]),
            _text_array([p.symbol for p in chunk]),
            _text_array([_DB_SIDE[p.side] for p in chunk]),
            _array([p.quantity for p in chunk]),
            _array([p.entry_price for p in chunk]),
            _array([p.leverage for p in chunk]),
            _array([p.margin for p in chunk]),
            _array([p.sl_price for p in chunk]),
            _array([p.tp_price for p in chunk]),
            _array([p.liquidation_price for p in chunk]),
            _text_array([_WORKING_TYPE_TEXT[p.working_type] for p in chunk]),
            _uuid_array([p.signal_id for p in chunk]),
            _array([_float(p.confidence) for p in chunk]),
            _array([p.entry_fee for p in chunk]),
            _time_array([p.opened_at for p in chunk]),
            _text_array([p.request_hash for p in chunk]),
            _array([p.maint_margin_ratio for p in chunk]),
            _array([p.maint_cum for p in chunk]),
            _time_array([p.funding_from for p in chunk]),
            _text_array([p.model_version for p in chunk]),
            _array([_float(p.predicted_return_pct) for p in chunk]),
            _array(schema_versions[start:]),
            _array(starts),
            _text_array([x or None for x in decision_ids[start:]]),
            _array(lengths),
            "{" + ",".join(vectors) + "}",
            *_ledger_arrays(accounts.values()),
            expect=len(chunk),
        )

    # ----------------------------------------------------------------------------------- close

    async def close_positions(self, requests: Sequence[CloseRequest]) -> list[CloseOutcome | AegisError]:
        """Close positions by request (manual, rotation), all in one transaction; idempotent per close key."""
        results: list[CloseOutcome | AegisError | None] = [None] * len(requests)
        valid: list[int] = []
        pids: dict[int, uuid.UUID] = {}
        for i, r in enumerate(requests):
            try:
                self.check_account(r.account)
                pids[i] = uuid.UUID(r.position_id)
                valid.append(i)
            except AegisError as exc:
                results[i] = exc
            except ValueError:
                results[i] = ValidationError("position_id", f"is not a UUID: {r.position_id!r}")
        if not valid:
            return results  # type: ignore[return-value]
        await self.ensure_accounts({requests[i].account for i in valid})
        names = sorted({requests[i].account for i in valid})

        async def work(conn: asyncpg.Connection) -> dict[str, _Account]:
            accounts = await self._lock_accounts(conn, names)
            for i in valid:
                results[i] = None
            by_key_rows = await conn.fetch(
                f"SELECT {_P_COLUMNS} FROM positions p "
                "WHERE p.account_id = ANY($1::text[]) AND p.close_idempotency_key = ANY($2::text[])",
                names,
                sorted({requests[i].idempotency_key for i in valid}),
            )
            wanted = {(requests[i].account, requests[i].idempotency_key) for i in valid}
            by_key = {
                (r["account_id"], r["close_idempotency_key"]): _position(r)
                for r in by_key_rows
                if (r["account_id"], r["close_idempotency_key"]) in wanted
            }
            ids = list({pids[i] for i in valid})
            # No row locks (as in apply_price_updates): every writer of a position locks its account first, the
            # requests' accounts are locked above, and a position of any other account is answered NotFound, never
            # written. The statement's snapshot follows the locks. (A row lock per close cost PostgreSQL a tuple
            # write and a WAL record: aegis bench account, docs/accounts.md "Performance".)
            rows = await conn.fetch(
                f"SELECT {_P_COLUMNS}, ap.last_price, ap.mark_price FROM positions p "
                "LEFT JOIN account_prices ap ON ap.symbol = p.symbol WHERE p.position_id = ANY($1::uuid[])",
                ids,
            )
            targets = {r["position_id"]: (_position_row(r, r["mark_price"]), r["last_price"]) for r in rows}
            closes: list[_Close] = []
            replays: dict[int, uuid.UUID] = {}
            first: set[int] = set()
            taken: dict[tuple[str, str], tuple[uuid.UUID, str]] = {}
            closing: set[uuid.UUID] = set()
            now = self.now()
            for i in valid:
                r = requests[i]
                key = (r.account, r.idempotency_key)
                digest = r.fingerprint()
                seen = by_key.get(key)
                prior = (seen.position_id, seen.close_request_hash or digest) if seen is not None else taken.get(key)
                if prior is not None:
                    if prior[0] == pids[i] and prior[1] == digest:
                        replays[i] = prior[0]
                    else:
                        results[i] = AlreadyExistsError(
                            f"idempotency_key {r.idempotency_key!r} already closed position {prior[0]} with "
                            "other fields"
                        )
                    continue
                found = targets.get(pids[i])
                if found is None or found[0].account_id != r.account:
                    results[i] = NotFoundError(f"account {r.account!r} has no position {r.position_id}")
                    continue
                position, last_price = found
                if not position.is_open or position.position_id in closing:
                    how = position.close_reason.value if position.close_reason else "by another request of this batch"
                    results[i] = AccountRefusal(f"position {r.position_id} is already closed ({how})")
                    continue
                if r.price is not None:
                    exit_price, liquidity = r.price, Liquidity.MAKER
                elif last_price is None:
                    results[i] = AccountRefusal(f"no price known for {position.symbol} yet: pass price")
                    continue
                else:
                    exit_price = d.slipped(last_price, position.side is PositionSide.SHORT, self.fees.slippage_rate)
                    liquidity = Liquidity.TAKER
                taken[key] = (position.position_id, digest)
                closing.add(position.position_id)
                closes.append(_Close(position, d.Exit(r.reason, exit_price), now, position.funding, liquidity,
                                     r.idempotency_key, digest))  # fmt: skip
                replays[i] = position.position_id  # filled from the written trade below
                first.add(i)
            pipe = _Pipeline(conn)
            try:
                written = await self._write_closes(pipe, closes, accounts, with_positions=True) if closes else {}
                need = sorted({pid for pid in replays.values() if pid not in written})
                if need:
                    await pipe.drain()
                    written.update(await self._closed(conn, need))
                for i, pid in replays.items():
                    position, trade = written[pid]
                    assert position is not None
                    results[i] = _make_close_outcome(position, trade, i not in first)
                await self._write_accounts(pipe, accounts.values())
            finally:
                await pipe.settle()
            return accounts

        accounts = await self._transaction(work)
        self._emit(accounts.values())
        return results  # type: ignore[return-value]

    async def _write_closes(
        self, pipe: _Pipeline, closes: list[_Close], accounts: dict[str, _Account], *, with_positions: bool
    ) -> dict[uuid.UUID, tuple[Position | None, Trade]]:
        """Send the closes (positions, trades, ledger entries) in chunks; the caller writes the accounts and waits.

        Return each position's trade, and its closed row when ``with_positions`` (ClosePosition answers with it;
        price updates only report the trades, and building the row costs as much as the trade).
        """
        out: dict[uuid.UUID, tuple[Position | None, Trade]] = {}
        rows: list[tuple[Any, ...]] = []
        chunk = _chunk_size(len(closes))
        for c in closes:
            p = c.position
            account = accounts[p.account_id]
            liquidated = c.exit.reason is CloseReason.LIQUIDATED
            exit_fee = d.ZERO if liquidated else d.fee(p.quantity, c.exit.price, self.fees.rate(c.liquidity))
            rt = d.round_trip(p.side, p.quantity, p.entry_price, p.margin, p.entry_fee, c.funding, c.exit.price,
                              exit_fee, liquidated=liquidated)  # fmt: skip
            closed_at = max(c.closed_at, p.opened_at)
            if liquidated:
                account.post("liquidation", rt.gross_pnl, p.position_id, "LIQUIDATED", closed_at)
            else:  # one row: the price PnL and the exit fee (LedgerEntry.fee)
                account.post("realised_pnl", rt.gross_pnl - exit_fee, p.position_id, _REASON_TEXT[c.exit.reason],
                             closed_at, -exit_fee)  # fmt: skip
            account.trade_count += 1
            if rt.net_pnl > 0:
                account.win_count += 1
            trade_id = _uuid4()
            closed = None
            if with_positions:
                # positionally, as dataclasses.replace(p, status="CLOSED", ...) would build it, at a tenth of the cost
                closed = _make_position(
                    p.position_id, p.account_id, p.idempotency_key, p.symbol, p.side, "CLOSED", p.quantity,
                    p.entry_price, p.leverage, p.margin, p.sl_price, p.tp_price, p.liquidation_price, p.working_type,
                    p.signal_id, p.confidence, p.entry_fee, c.funding, p.opened_at, closed_at, c.exit.price,
                    c.exit.reason, p.request_hash, p.margin_type, p.maint_margin_ratio, p.maint_cum, p.funding_from,
                    p.model_version, p.predicted_return_pct, p.feature_schema_version, exit_fee, rt.gross_pnl,
                    rt.net_pnl, c.key, c.request_hash, closed_at, p.mark_price,
                )  # fmt: skip
            trade = _make_trade(trade_id, p.position_id, p.account_id, account.kind, p.symbol, p.side, p.quantity,
                          p.entry_price, c.exit.price, p.leverage, p.margin, p.opened_at, closed_at, c.exit.reason,
                          rt.gross_pnl, rt.fees, c.funding, rt.net_pnl, rt.roi_margin_pct, rt.roi_price_pct,
                          rt.reward, p.signal_id, p.confidence, p.predicted_return_pct, p.model_version,
                          p.feature_schema_version)  # fmt: skip
            account.event("LIQUIDATION" if liquidated else "POSITION_CLOSED", closed_at, p.symbol, trade)
            out[p.position_id] = (closed, trade)
            rows.append((p.position_id, closed_at, c.exit.price, _REASON_TEXT[c.exit.reason], exit_fee, rt, c.funding,
                         c.key, c.request_hash, trade_id))  # fmt: skip
            if len(rows) >= chunk:  # PostgreSQL writes this chunk while the loop builds the next
                await self._send_closes(pipe, rows, accounts)
                rows = []
        if rows:
            await self._send_closes(pipe, rows, accounts)
        return out

    @staticmethod
    async def _send_closes(pipe: _Pipeline, rows: list[tuple[Any, ...]], accounts: dict[str, _Account]) -> None:
        await pipe.send(
            _CLOSE_POSITIONS,
            [r[0] for r in rows],  # binary: ``= ANY($1)`` must see an array, not a cast per row
            _time_array([r[1] for r in rows]),
            _array([r[2] for r in rows]),
            _text_array([r[3] for r in rows]),
            _array([r[4] for r in rows]),
            _array([r[5].gross_pnl for r in rows]),
            _array([r[5].net_pnl for r in rows]),
            _array([r[6] for r in rows]),
            _text_array([r[7] for r in rows]),
            _text_array([r[8] for r in rows]),
            _uuid_array([r[9] for r in rows]),
            _array([r[5].fees for r in rows]),
            _array([r[5].roi_margin_pct for r in rows]),
            _array([r[5].roi_price_pct for r in rows]),
            _array([r[5].reward for r in rows]),
            *_ledger_arrays(accounts.values()),
            expect=len(rows),
        )

    # ----------------------------------------------------------------------------------- prices

    async def apply_price_updates(self, ticks: Sequence[Tick]) -> ApplyOutcome:
        """Apply price updates: funding at funding times crossed, then TP, SL and liquidation, in time order.

        Updates of one symbol are applied in ``event_time`` order, each one checked (so conflated updates
        never skip a touched level); an update not newer than the symbol's last applied one is stale and ignored
        (so a retried batch changes nothing).
        """
        if not ticks:
            return ApplyOutcome(0, (), 0, 0)
        by_symbol: dict[str, list[Tick]] = defaultdict(list)
        for t in ticks:
            by_symbol[t.symbol].append(t)
        symbols = sorted(by_symbol)
        for s in symbols:
            by_symbol[s].sort(key=lambda t: t.event_time)

        async def work(conn: asyncpg.Connection) -> tuple[ApplyOutcome, dict[str, _Account]]:
            state = {
                r["symbol"]: _SymbolState(r["last_price"], r["mark_price"], r["funding_rate"],
                                          r["next_funding_time"], r["event_time"])
                for r in await conn.fetch(_LOCK_PRICES, symbols)
            }  # fmt: skip
            stale = 0
            fresh: dict[str, list[Tick]] = {}
            funding_symbols: set[str] = set()
            for s in symbols:
                last = state[s].event_time if s in state else None
                pending = state[s].next_funding_time if s in state else None
                kept = []
                for t in by_symbol[s]:
                    if last is not None and t.event_time <= last:
                        stale += 1
                        continue
                    if d.funding_due(pending, t.event_time):
                        funding_symbols.add(s)
                    pending = t.next_funding_time if t.next_funding_time is not None else (
                        None if d.funding_due(pending, t.event_time) else pending)  # fmt: skip
                    kept.append(t)
                    last = t.event_time
                if kept:
                    fresh[s] = kept
            if not fresh:
                return ApplyOutcome(0, (), 0, stale), {}
            live = sorted(fresh)
            row = await conn.fetchrow(
                _CANDIDATES,
                live,
                [min(t.low_price for t in fresh[s]) for s in live],
                [max(t.high_price for t in fresh[s]) for s in live],
                [min(t.mark_price for t in fresh[s]) for s in live],
                [max(t.mark_price for t in fresh[s]) for s in live],
                [s in funding_symbols for s in live],
                sorted(n for n, kind in self.accounts.items() if kind != "live"),  # live: the exchange closes
            )
            revalued, candidate_ids = row["revalued"], row["ids"]
            accounts: dict[str, _Account] = {}
            open_by_symbol: dict[str, list[Position]] = defaultdict(list)
            if candidate_ids:
                accounts = await self._lock_accounts(conn, row["accounts"])
                # No row locks: the account locks just taken keep every other writer of these (virtual) accounts'
                # positions out until this commits, and this statement's snapshot follows the lock.
                for r in await conn.fetch(
                    f"SELECT {_POSITION_COLUMNS} FROM positions WHERE position_id = ANY($1::uuid[]) "
                    "AND status = 'OPEN' ORDER BY position_id",
                    candidate_ids,
                ):
                    open_by_symbol[r["symbol"]].append(_position_row(r))
            closes: list[_Close] = []
            funding_paid: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
            payments = 0
            slippage = self.fees.slippage_rate
            for s in live:
                st = state.get(s) or _SymbolState(None, None, None, None, None)
                positions = open_by_symbol.get(s, [])
                for t in fresh[s]:
                    if positions and d.funding_due(st.next_funding_time, t.event_time) and st.funding_rate:
                        assert st.next_funding_time is not None and st.mark_price is not None
                        for p in positions:
                            if p.funding_from is not None and p.funding_from > st.next_funding_time:
                                continue
                            amount = d.funding_amount(p.side, p.quantity, st.mark_price, st.funding_rate)
                            if not amount:
                                continue
                            funding_paid[p.position_id] += amount
                            payment = FundingPayment(p.account_id, p.position_id, s, st.funding_rate, st.mark_price,
                                                     amount, st.next_funding_time)  # fmt: skip
                            account = accounts[p.account_id]
                            when = st.next_funding_time
                            account.post("funding", amount, p.position_id, f"funding {when.isoformat()}", when)
                            account.event("FUNDING", st.next_funding_time, s, payment)
                            payments += 1
                    crossed = d.funding_due(st.next_funding_time, t.event_time)
                    if t.funding_rate is not None:
                        st.funding_rate = t.funding_rate
                    if t.next_funding_time is not None:
                        st.next_funding_time = t.next_funding_time
                    elif crossed:
                        st.next_funding_time = None
                    st.last_price, st.mark_price, st.event_time = t.last_price, t.mark_price, t.event_time
                    if positions:
                        still = []
                        for p in positions:
                            hit = d.check_exit(p.side, p.sl_price, p.tp_price, p.liquidation_price, t,
                                               p.working_type, slippage)  # fmt: skip
                            if hit is None:
                                still.append(p)
                            else:
                                paid = p.funding + funding_paid.get(p.position_id, d.ZERO)
                                closes.append(_Close(p, hit, t.event_time, paid, Liquidity.TAKER))
                        positions = still
                        open_by_symbol[s] = still
                state[s] = st
            funded = [(pid, amount) for pid, amount in funding_paid.items()]
            pipe = _Pipeline(conn)
            try:
                if funded:
                    await pipe.send(_ADD_FUNDING, [f[0] for f in funded], [f[1] for f in funded])
                written = await self._write_closes(pipe, closes, accounts, with_positions=False) if closes else {}
                await pipe.send(
                    _WRITE_PRICES,
                    live,
                    [state[s].last_price for s in live],
                    [state[s].mark_price for s in live],
                    [state[s].funding_rate for s in live],
                    [state[s].next_funding_time for s in live],
                    [state[s].event_time for s in live],
                )
                await self._write_accounts(pipe, accounts.values())
            finally:
                await pipe.settle()
            trades = tuple(written[c.position.position_id][1] for c in closes)
            return ApplyOutcome(revalued, trades, payments, stale), accounts

        outcome, accounts = await self._transaction(work)
        self._emit(accounts.values())
        return outcome

    # ----------------------------------------------------------------------------------- queries

    async def get_account(self, name: str) -> AccountView:
        self.check_account(name)
        await self.ensure_accounts([name])
        views = await self._account_views([name])
        return views[0]

    async def list_accounts(self, page_size: int, page_token: str) -> tuple[list[AccountView], str]:
        await self.ensure_accounts()
        after = _decode_token(page_token, 1)[0] if page_token else ""
        size = _page_size(page_size)
        async with self._db.connection() as conn:
            names = [
                r["account_id"]
                for r in await conn.fetch(
                    "SELECT account_id FROM accounts WHERE kind IN ('learning', 'paper', 'live') AND account_id > $1 "
                    "ORDER BY account_id LIMIT $2",
                    after,
                    size + 1,
                )
            ]
        more = len(names) > size
        names = names[:size]
        views = await self._account_views(names) if names else []
        return views, (_encode_token(names[-1]) if more else "")

    async def _account_views(self, names: list[str]) -> list[AccountView]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                """
                SELECT a.*, o.n, o.margin, o.upnl, o.maint FROM accounts a LEFT JOIN LATERAL (
                    SELECT count(*) AS n, coalesce(sum(p.margin), 0) AS margin,
                        coalesce(sum(CASE WHEN p.side = 'BUY' THEN 1 ELSE -1 END * p.quantity
                                     * (coalesce(ap.mark_price, p.entry_price) - p.entry_price)), 0) AS upnl,
                        coalesce(sum(greatest(p.quantity * coalesce(ap.mark_price, p.entry_price)
                                              * coalesce(p.maint_margin_ratio, 0) - coalesce(p.maint_cum, 0), 0)), 0)
                            AS maint
                    FROM positions p LEFT JOIN account_prices ap ON ap.symbol = p.symbol
                    WHERE p.account_id = a.account_id AND p.status = 'OPEN') o ON true
                WHERE a.account_id = ANY($1::text[]) ORDER BY a.account_id
                """,
                names,
            )
        return [
            AccountView(
                name=r["account_id"],
                kind=r["kind"],
                asset=r["currency"],
                starting_balance=r["starting_balance"],
                wallet_balance=r["wallet_balance"],
                realised_price_pnl=r["realised_pnl"],
                fees=r["fees"],
                funding=r["funding"],
                unrealised_pnl=r["upnl"],
                margin_used=r["margin"],
                maintenance_margin=r["maint"],
                open_positions=r["n"],
                max_open_positions=self.max_open_positions(r["account_id"]),
                trade_count=r["trade_count"],
                win_count=r["win_count"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]

    async def list_positions(
        self,
        account: str,
        symbol: str | None,
        status: str | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[Position], str]:
        """Positions newest first (opened_at, then id), paged by keyset."""
        if account:
            self.check_account(account)
        size = _page_size(page_size)
        where = ["($1 = '' OR p.account_id = $1)", "($2::text IS NULL OR p.symbol = $2)",
                 "($3::text IS NULL OR p.status = $3)"]  # fmt: skip
        args: list[Any] = [account, symbol, status]
        if page_token:
            when, pid = _decode_token(page_token, 2)
            where.append("(p.opened_at, p.position_id) < ($4::timestamptz, $5::uuid)")
            args += [dt.datetime.fromisoformat(when), uuid.UUID(pid)]
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_P_COLUMNS}, ap.mark_price FROM positions p LEFT JOIN account_prices ap "
                f"ON ap.symbol = p.symbol WHERE {' AND '.join(where)} "
                f"ORDER BY p.opened_at DESC, p.position_id DESC LIMIT {size + 1}",
                *args,
            )
        positions = [_position(r) for r in rows[:size]]
        token = ""
        if len(rows) > size:
            last = positions[-1]
            token = _encode_token(last.opened_at.isoformat(), str(last.position_id))
        return positions, token

    async def list_trades(
        self,
        account: str,
        symbol: str | None,
        start: dt.datetime | None,
        end: dt.datetime | None,
        reason: CloseReason | None,
        page_size: int,
        page_token: str,
        include_features: bool,
    ) -> tuple[list[Trade], str]:
        """Closed trades newest first (closed_at, then id), paged by keyset."""
        if account:
            self.check_account(account)
        size = _page_size(page_size)
        where = [
            "($1 = '' OR t.account_id = $1)",
            "($2::text IS NULL OR t.symbol = $2)",
            "($3::timestamptz IS NULL OR t.closed_at >= $3)",
            "($4::timestamptz IS NULL OR t.closed_at < $4)",
            "($5::text IS NULL OR t.close_reason = $5)",
        ]
        args: list[Any] = [account, symbol, start, end, reason.value if reason else None]
        if page_token:
            when, tid = _decode_token(page_token, 2)
            where.append("(t.closed_at, t.trade_id) < ($6::timestamptz, $7::uuid)")
            args += [dt.datetime.fromisoformat(when), uuid.UUID(tid)]
        columns = _TRADE_COLUMNS + (", t.features" if include_features else "")
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {columns} FROM trades t JOIN accounts a ON a.account_id = t.account_id "
                f"WHERE {' AND '.join(where)} ORDER BY t.closed_at DESC, t.trade_id DESC LIMIT {size + 1}",
                *args,
            )
        trades = [_trade(r) for r in rows[:size]]
        token = ""
        if len(rows) > size:
            last = trades[-1]
            token = _encode_token(last.closed_at.isoformat(), str(last.trade_id))
        return trades, token

    async def _closed(self, conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[Position, Trade]]:
        positions = {
            r["position_id"]: _position(r)
            for r in await conn.fetch(
                f"SELECT {_P_COLUMNS}, ap.mark_price FROM positions p LEFT JOIN account_prices ap "
                "ON ap.symbol = p.symbol WHERE p.position_id = ANY($1::uuid[])",
                ids,
            )
        }
        trades = {
            r["position_id"]: _trade(r)
            for r in await conn.fetch(
                f"SELECT {_TRADE_COLUMNS} FROM trades t JOIN accounts a ON a.account_id = t.account_id "
                "WHERE t.position_id = ANY($1::uuid[])",
                ids,
            )
        }
        return {pid: (positions[pid], trades[pid]) for pid in ids if pid in positions and pid in trades}

    async def ledger_identity(self, name: str) -> dict[str, Decimal]:
        """Return the parts of ``wallet = start + realised - fees + funding``, the ledger's own sum and the same
        parts read from the ledger's rows alone (``ledger_realised``, ``ledger_fees``, ``ledger_funding``: audits)."""
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT a.starting_balance, a.wallet_balance, a.realised_pnl, a.fees, a.funding, l.ledger, "
                "l.ledger_realised, l.ledger_fees, l.ledger_funding, "
                "(SELECT balance_after FROM balance_ledger l WHERE l.account_id = a.account_id "
                " ORDER BY entry_id DESC LIMIT 1) AS last_balance "
                f"FROM accounts a CROSS JOIN ({_LEDGER_PARTS} WHERE account_id = $1) l WHERE a.account_id = $1",
                name,
            )
        if row is None:
            raise NotFoundError(f"no account {name!r}")
        return dict(row)


# --------------------------------------------------------------------------------------------- helpers


def _check_levels(r: OpenRequest, entry: Decimal) -> None:
    """A stop on the wrong side of the entry would fire at once: refuse it, naming the field."""
    long = r.side is PositionSide.LONG
    if r.stop_loss_price is not None and (r.stop_loss_price >= entry if long else r.stop_loss_price <= entry):
        raise ValidationError(
            "stop_loss_price",
            f"{r.stop_loss_price.normalize():f} must be {'below' if long else 'above'} the entry price "
            f"{entry.normalize():f} of a {r.side.value.lower()}",
        )
    if r.take_profit_price is not None and (r.take_profit_price <= entry if long else r.take_profit_price >= entry):
        raise ValidationError(
            "take_profit_price",
            f"{r.take_profit_price.normalize():f} must be {'above' if long else 'below'} the entry price "
            f"{entry.normalize():f} of a {r.side.value.lower()}",
        )


_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)
_new_object = object.__new__
_set_slot = object.__setattr__


def _uuid4() -> uuid.UUID:
    """``uuid.uuid4()`` without ``UUID.__init__``'s argument checks (two per round trip): the same random bits,
    version and variant (tested against ``uuid.UUID(int=..., version=4)``)."""
    u = _new_object(uuid.UUID)
    _set_slot(u, "int", (int.from_bytes(os.urandom(16)) & _UUID4_CLEAR) | _UUID4_SET)
    _set_slot(u, "is_safe", uuid.SafeUUID.unknown)
    return u


def _ledger_arrays(accounts: Iterable[_Account]) -> tuple[str, ...]:
    """The 8 array literals of :func:`_ledger_cte` for the accounts' entries not sent yet (marked sent)."""
    entries: list[LedgerEntry] = []
    for a in accounts:
        if a.written < len(a.ledger):
            entries += a.ledger[a.written :]
            a.written = len(a.ledger)
    return (
        _text_array([e.account_id for e in entries]),
        _text_array([e.kind for e in entries]),
        _array([e.amount for e in entries]),
        _array([e.balance_after for e in entries]),
        _uuid_array([e.position_id for e in entries]),
        _text_array([e.reference for e in entries]),
        _time_array([e.created_at for e in entries]),
        _array([e.fee for e in entries]),
    )


def _array(values: Iterable[Any]) -> str:
    """PostgreSQL array literal of numbers or UUIDs: ``str`` of each (exact for Decimal), None as NULL."""
    return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"


def _uuid_array(values: Iterable[uuid.UUID | None]) -> str:
    """PostgreSQL array literal of UUIDs as 32 hex digits (which ``uuid_in`` reads), None as NULL: a quarter of
    ``str(UUID)``'s cost (four per round trip)."""
    return "{" + ",".join(["NULL" if v is None else "%032x" % v.int for v in values]) + "}"  # noqa: UP031 (fastest)


def _text_array(values: Iterable[str | None]) -> str:
    """PostgreSQL array literal of strings: every element quoted, backslashes and double quotes escaped."""
    quoted = ["NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(quoted) + "}"


def _time_array(values: Iterable[dt.datetime | None]) -> str:
    """PostgreSQL array literal of timestamps (ISO 8601; a naive one is UTC, as asyncpg reads it).

    A batch repeats few distinct times (its ``now``, the updates' event times): each is formatted once.
    """
    formatted: dict[dt.datetime, str] = {}
    out = []
    for v in values:
        if v is None:
            out.append("NULL")
            continue
        text = formatted.get(v)
        if text is None:
            text = formatted[v] = v.isoformat() if v.tzinfo is not None else v.isoformat() + "+00:00"
        out.append(text)
    return "{" + ",".join(out) + "}"


def _float(value: float | None) -> float | None:
    """A float for an array literal (``str`` of a float is its shortest exact spelling; NaN as PostgreSQL reads it)."""
    return None if value is None else float(value)


_encode_json = msgspec.json.Encoder().encode


def _float_array(values: tuple[float, ...]) -> str:
    """PostgreSQL array text of floats, each spelled exactly (the shortest text that reads back the same double).

    msgspec's encoder does that ten times faster than ``repr``; it writes NaN and infinities as ``null``, so a
    vector holding one is spelt with ``repr`` (``nan``, ``inf``), which PostgreSQL reads too.
    """
    try:
        encoded = _encode_json(values)
    except (TypeError, msgspec.EncodeError):
        encoded = b"null"
    if b"null" in encoded:
        return "{" + ",".join(map(repr, map(float, values))) + "}"
    return "{" + encoded[1:-1].decode() + "}"


def _page_size(requested: int) -> int:
    if requested < 0:
        raise ValidationError("page_size", f"must not be negative, got {requested}")
    return 100 if requested == 0 else min(requested, 1000)


def _encode_token(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


def _decode_token(token: str, n: int) -> list[str]:
    try:
        parts = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(parts, list) or len(parts) != n or not all(isinstance(p, str) for p in parts):
            raise ValueError
        if n == 2:
            dt.datetime.fromisoformat(parts[0])
            uuid.UUID(parts[1])
        return parts
    except (ValueError, TypeError):
        raise ValidationError("page_token", "is not a token this service returned") from None
