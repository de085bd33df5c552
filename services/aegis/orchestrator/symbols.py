"""The symbol universe in PostgreSQL: every exchangeInfo symbol in ``symbols``, the followed ones with their shard.

The universe is computed exactly as each feed computes its own share at start (:func:`aegis.feed.universe.select`
with ``AEGIS_SYMBOLS`` / ``AEGIS_SYMBOL_COUNT``), and shard ``i`` is the block of ``AEGIS_SHARD_SIZE`` consecutive
symbols starting at ``i * shard_size``: symbol number ``n`` of the universe belongs to shard ``n // shard_size``.
So the table tells which feed-brain pod follows which symbol without asking any pod.

Rows: one per symbol exchangeInfo lists. ``active`` and a ``shard`` for the followed symbols; ``shard`` NULL for
the rest, whose exclusion reason is derived from the row (:func:`exclusion_reason`). A symbol gone from
exchangeInfo is deleted. One refresh is one transaction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aegis.feed import universe
from aegis.storage.postgres import Database

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class SymbolRow:
    symbol: str
    status: str
    contract_type: str
    base_asset: str
    quote_asset: str
    shard: int | None
    active: bool
    onboard_time: dt.datetime | None


@dataclass(frozen=True, slots=True)
class UniverseChange:
    """How a new layout differs from the stored one."""

    included: int
    shard_count: int
    added: tuple[str, ...]
    """Symbols followed now that were not before."""
    removed: tuple[str, ...]
    """Symbols followed before that are not now (still listed, or gone from the exchange)."""
    moved: tuple[str, ...]
    """Symbols followed before and now, by another shard."""
    rows_changed: int
    """Rows inserted, updated or deleted (what a refresh writes)."""

    @property
    def symbols_changed(self) -> int:
        return len(self.added) + len(self.removed) + len(self.moved)


def plan(exchange_info: Mapping[str, Any], *, explicit: Sequence[str], count: int, shard_size: int) -> list[SymbolRow]:
    """Return one row per exchangeInfo symbol, the followed ones with their shard (pure)."""
    chosen = universe.select(exchange_info, explicit=explicit, count=count)
    shards = universe.shard_of(chosen, shard_size)
    rows = []
    for raw in exchange_info.get("symbols", []):
        symbol = str(raw["symbol"])
        onboard = raw.get("onboardDate")
        rows.append(
            SymbolRow(
                symbol=symbol,
                status=str(raw.get("status", "")),
                contract_type=str(raw.get("contractType", "")),
                base_asset=str(raw.get("baseAsset", "")),
                quote_asset=str(raw.get("quoteAsset", "")),
                shard=shards.get(symbol),
                active=symbol in shards,
                onboard_time=dt.datetime.fromtimestamp(int(onboard) / 1000, dt.UTC) if onboard else None,
            )
        )
    return rows


def shards_needed(included: int, shard_size: int) -> int:
    return math.ceil(included / shard_size) if included else 0


def compare(stored: Mapping[str, SymbolRow], rows: Sequence[SymbolRow]) -> UniverseChange:
    """Compare a planned layout with the stored one (pure)."""
    new = {r.symbol: r for r in rows}
    before = {s: r.shard for s, r in stored.items() if r.active and r.shard is not None}
    after = {s: r.shard for s, r in new.items() if r.active and r.shard is not None}
    added = tuple(sorted(set(after) - set(before)))
    removed = tuple(sorted(set(before) - set(after)))
    moved = tuple(sorted(s for s in set(before) & set(after) if before[s] != after[s]))
    changed = sum(1 for s, r in new.items() if _content(stored.get(s)) != _content(r))
    changed += sum(1 for s in stored if s not in new)
    shard_count = max(after.values()) + 1 if after else 0
    return UniverseChange(len(after), shard_count, added, removed, moved, changed)


def _content(row: SymbolRow | None) -> tuple[Any, ...] | None:
    if row is None:
        return None
    return (row.status, row.contract_type, row.base_asset, row.quote_asset, row.shard, row.active, row.onboard_time)


async def stored_rows(db: Database) -> dict[str, SymbolRow]:
    async with db.connection() as conn:
        records = await conn.fetch(
            "SELECT symbol, status, contract_type, base_asset, quote_asset, shard, active, onboard_time FROM symbols"
        )
    return {r["symbol"]: SymbolRow(**dict(r)) for r in records}


async def save(db: Database, rows: Sequence[SymbolRow]) -> None:
    """Replace the stored universe by ``rows`` in one transaction (rows absent from ``rows`` are deleted)."""
    async with db.connection() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO symbols (symbol, status, contract_type, base_asset, quote_asset, shard, active, onboard_time, "
            "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) ON CONFLICT (symbol) DO UPDATE SET "
            "status = EXCLUDED.status, contract_type = EXCLUDED.contract_type, base_asset = EXCLUDED.base_asset, "
            "quote_asset = EXCLUDED.quote_asset, shard = EXCLUDED.shard, active = EXCLUDED.active, "
            "onboard_time = EXCLUDED.onboard_time, updated_at = now() "
            "WHERE (symbols.status, symbols.contract_type, symbols.base_asset, symbols.quote_asset, symbols.shard, "
            "symbols.active, symbols.onboard_time) IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.contract_type, "
            "EXCLUDED.base_asset, EXCLUDED.quote_asset, EXCLUDED.shard, EXCLUDED.active, EXCLUDED.onboard_time)",
            [
                (r.symbol, r.status, r.contract_type, r.base_asset, r.quote_asset, r.shard, r.active, r.onboard_time)
                for r in rows
            ],
        )
        await conn.execute("DELETE FROM symbols WHERE NOT (symbol = ANY($1::text[]))", [r.symbol for r in rows])


def exclusion_reason(row: SymbolRow, explicit: Sequence[str]) -> str:
    """Return why a symbol is not followed ("" when it is), from its row and the configured symbol list."""
    if row.active and row.shard is not None:
        return ""
    if row.status != "TRADING":
        return "NOT_TRADING"
    if row.contract_type != "PERPETUAL":
        return "NOT_PERPETUAL"
    if row.quote_asset != "USDT":
        return "NOT_USDT_QUOTED"
    if explicit:
        return "NOT_IN_SYMBOL_LIST"
    return "BEYOND_SYMBOL_COUNT"


@dataclass(frozen=True, slots=True)
class SymbolPage:
    rows: list[SymbolRow]
    more: bool
    shard_count: int


async def list_page(db: Database, *, after: str, limit: int, shard: int | None, include_excluded: bool) -> SymbolPage:
    """Return up to ``limit`` rows with symbol > ``after``, by symbol name (keyset paging: stable while it changes)."""
    conditions = ["symbol > $1"]
    args: list[Any] = [after]
    if not include_excluded:
        conditions.append("active AND shard IS NOT NULL")
    if shard is not None:
        args.append(shard)
        conditions.append(f"shard = ${len(args)}")
    args.append(limit + 1)
    query = (
        "SELECT symbol, status, contract_type, base_asset, quote_asset, shard, active, onboard_time FROM symbols "
        f"WHERE {' AND '.join(conditions)} ORDER BY symbol LIMIT ${len(args)}"
    )
    async with db.connection() as conn:
        records = await conn.fetch(query, *args)
        shard_count = await conn.fetchval("SELECT coalesce(max(shard) + 1, 0) FROM symbols WHERE active")
    rows = [SymbolRow(**dict(r)) for r in records]
    return SymbolPage(rows[:limit], len(rows) > limit, int(shard_count))


async def shard_sizes(db: Database) -> dict[int, int]:
    """Return the number of followed symbols per shard."""
    async with db.connection() as conn:
        records = await conn.fetch(
            "SELECT shard, count(*) AS n FROM symbols WHERE active AND shard IS NOT NULL GROUP BY shard"
        )
    return {int(r["shard"]): int(r["n"]) for r in records}
