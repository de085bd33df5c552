"""Retention: delete market data and service events older than their configured ages, a batch at a time.

Each batch is its own short transaction deleting at most ``batch_rows`` rows (picked by ``ctid`` from the oldest
matching ones), with a ``lock_timeout``, so retention never holds locks for long and never queues behind a busy
writer: the brain keeps inserting candles while old ones go. A rule whose age is 0 keeps its rows forever.

What goes, by default (docs/orchestrator.md, "Retention"):

* ``candles`` of timeframe 1m older than ``AEGIS_ORCHESTRATOR_RETENTION_1M_DAYS`` (30);
* ``candles`` of the larger timeframes older than ``AEGIS_ORCHESTRATOR_RETENTION_CANDLES_DAYS`` (365): they are
  few and the indicators' warm-up on restart reads them;
* ``service_events`` older than ``AEGIS_ORCHESTRATOR_RETENTION_EVENTS_DAYS`` (30).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from aegis.config import OrchestratorSettings
from aegis.storage.postgres import Database

log = logging.getLogger("aegis.orchestrator.retention")


@dataclass(frozen=True, slots=True)
class RetentionRule:
    name: str
    table: str
    predicate: str
    """SQL condition over the table's rows with ``$1`` the cutoff time."""
    keep_days: int


@dataclass(frozen=True, slots=True)
class RetentionResult:
    rule: str
    cutoff: dt.datetime | None
    """None when the rule keeps everything (age 0)."""
    deleted: int
    """Rows deleted (would be deleted, in a dry run)."""
    batch_sizes: tuple[int, ...]
    """Rows deleted by each transaction (empty in a dry run)."""


def rules(settings: OrchestratorSettings) -> list[RetentionRule]:
    return [
        RetentionRule("candles 1m", "candles", "timeframe = '1m' AND open_time < $1", settings.retention_1m_days),
        RetentionRule(
            "candles 5m and larger", "candles", "timeframe <> '1m' AND open_time < $1", settings.retention_candles_days
        ),
        RetentionRule("service_events", "service_events", "created_at < $1", settings.retention_events_days),
    ]


async def prune(
    db: Database,
    rule: RetentionRule,
    now: dt.datetime,
    *,
    batch_rows: int,
    dry_run: bool = False,
    pause_s: float = 0.0,
    lock_timeout_ms: int = 5000,
) -> RetentionResult:
    """Delete the rows ``rule`` no longer keeps, ``batch_rows`` per transaction; return what went."""
    if rule.keep_days <= 0:
        return RetentionResult(rule.name, None, 0, ())
    cutoff = now - dt.timedelta(days=rule.keep_days)
    if dry_run:
        async with db.connection() as conn:
            count = await conn.fetchval(f"SELECT count(*) FROM {rule.table} WHERE {rule.predicate}", cutoff)
        return RetentionResult(rule.name, cutoff, int(count), ())
    statement = (
        f"DELETE FROM {rule.table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {rule.table} WHERE {rule.predicate} LIMIT $2))"
    )
    sizes: list[int] = []
    while True:
        async with db.connection() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            status = await conn.execute(statement, cutoff, batch_rows)
        deleted = int(status.split()[-1])
        if deleted:
            sizes.append(deleted)
        if deleted < batch_rows:
            break
        # Let the other writers' transactions through between batches (and the event loop serve calls).
        await asyncio.sleep(pause_s)
    total = sum(sizes)
    if total:
        log.info("retention: %s deleted %d rows older than %s in %d batches", rule.name, total, cutoff, len(sizes))
    return RetentionResult(rule.name, cutoff, total, tuple(sizes))


async def run(
    db: Database, settings: OrchestratorSettings, now: dt.datetime, *, dry_run: bool = False
) -> list[RetentionResult]:
    """Apply every retention rule in turn."""
    return [
        await prune(db, rule, now, batch_rows=settings.retention_batch_rows, dry_run=dry_run)
        for rule in rules(settings)
    ]
