"""Maintenance tasks, run on demand (RunMaintenance) and, three of them, on the leader's schedule.

Each task reports what it did (or would do, in a dry run) as a :class:`TaskResult`; tasks run in the order asked,
and once one fails the rest are SKIPPED (a later task may depend on an earlier one, e.g. MIGRATE before
RETENTION). The same task never runs twice at once in one process: a scheduled refresh and a RunMaintenance call
take turns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aegis.config import Settings
from aegis.errors import AegisError, ValidationError
from aegis.orchestrator import kube, retention
from aegis.storage.cache import Cache
from aegis.storage.migrate import current_schema_version, migrate, shipped_migrations
from aegis.storage.postgres import Database

log = logging.getLogger("aegis.orchestrator.maintenance")

REFRESH_RULES = "REFRESH_RULES"
REFRESH_UNIVERSE = "REFRESH_UNIVERSE"
RETENTION = "RETENTION"
VACUUM = "VACUUM"
MIGRATE = "MIGRATE"
REBALANCE_SHARDS = "REBALANCE_SHARDS"
TASKS: tuple[str, ...] = (REFRESH_RULES, REFRESH_UNIVERSE, RETENTION, VACUUM, MIGRATE, REBALANCE_SHARDS)
SCHEDULED: tuple[str, ...] = (REFRESH_RULES, REFRESH_UNIVERSE, RETENTION)
"""What an empty task list means: the tasks the leader also runs on its schedule."""

SUCCEEDED, FAILED, SKIPPED = "SUCCEEDED", "FAILED", "SKIPPED"


@dataclass(frozen=True, slots=True)
class TaskResult:
    task: str
    status: str
    items_affected: int
    summary: str
    error: str
    started_at: dt.datetime
    duration_s: float


@dataclass(frozen=True, slots=True)
class Done:
    """What a task function returns: how many items it touched and a plain-English summary."""

    items: int
    summary: str


class Maintenance:
    """The orchestrator's housekeeping, with its dependencies passed in."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        cache: Cache | None,
        kube_client: kube.KubeClient | None,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.db = db
        self.cache = cache
        self.kube = kube_client
        self.clock = clock
        self._locks = {task: asyncio.Lock() for task in TASKS}
        self._run: dict[str, Callable[[bool], Awaitable[Done]]] = {
            REFRESH_RULES: self.refresh_rules,
            REFRESH_UNIVERSE: self.refresh_universe,
            RETENTION: self.retention,
            VACUUM: self.vacuum,
            MIGRATE: self.migrate,
            REBALANCE_SHARDS: self.rebalance_shards,
        }

    # ----------------------------------------------------------------------------------------- running

    async def run_task(self, task: str, dry_run: bool = False) -> TaskResult:
        """Run one task; its failure is reported in the result, never raised."""
        if task not in self._run:
            raise ValidationError("task", f"unknown maintenance task {task!r}")
        started = self.clock()
        t0 = time.monotonic()
        try:
            done = await self.perform(task, dry_run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = str(exc) if isinstance(exc, AegisError) else f"{type(exc).__name__}: {exc}"
            log.error("maintenance %s failed: %s", task, error, exc_info=not isinstance(exc, AegisError))
            return TaskResult(task, FAILED, 0, f"{task} failed", error, started, time.monotonic() - t0)
        return TaskResult(task, SUCCEEDED, done.items, done.summary, "", started, time.monotonic() - t0)

    async def perform(self, task: str, dry_run: bool = False) -> Done:
        """Run one task and return what it did; raise when it fails (the scheduled duties use this)."""
        if task not in self._run:
            raise ValidationError("task", f"unknown maintenance task {task!r}")
        async with self._locks[task]:
            return await self._run[task](dry_run)

    async def run(self, tasks: Sequence[str], dry_run: bool = False) -> list[TaskResult]:
        """Run ``tasks`` in order (the scheduled set when empty); after a failure the rest are SKIPPED."""
        for task in tasks:
            if task not in self._run:
                raise ValidationError("tasks", f"unknown maintenance task {task!r}")
        results: list[TaskResult] = []
        failed = ""
        for task in tasks or SCHEDULED:
            if failed:
                results.append(
                    TaskResult(task, SKIPPED, 0, f"not run: {failed} failed before it", "", self.clock(), 0.0)
                )
                continue
            result = await self.run_task(task, dry_run)
            results.append(result)
            if result.status == FAILED:
                failed = task
        return results

    # ----------------------------------------------------------------------------------------- tasks

    # The exchange clients (aiohttp) are imported on first use: a process binds its port before anything slow.

    async def refresh_rules(self, dry_run: bool) -> Done:
        from aegis.orchestrator import exchange

        outcome = await exchange.refresh_exchange_rules(self.settings, self.db, self.cache, dry_run=dry_run)
        return Done(outcome.symbols, outcome.summary)

    async def refresh_universe(self, dry_run: bool) -> Done:
        from aegis.orchestrator import exchange

        outcome = await exchange.refresh_universe(self.settings, self.db, self.kube, dry_run=dry_run)
        return Done(outcome.change.symbols_changed, outcome.summary)

    async def rebalance_shards(self, dry_run: bool) -> Done:
        # Shards are contiguous blocks of AEGIS_SHARD_SIZE in universe order, the layout every feed computes for
        # itself; rebalancing recomputes that layout (after a shard size change or symbols leaving) and sizes the
        # StatefulSet to it. Moving a symbol between shards takes effect when the two pods restart.
        from aegis.orchestrator import exchange

        outcome = await exchange.refresh_universe(self.settings, self.db, self.kube, dry_run=dry_run)
        changed = outcome.change.symbols_changed
        summary = f"shard layout: {outcome.summary}"
        if changed and not dry_run:
            summary += "; the feed-brain pods of the changed shards follow their new symbols after a restart"
        return Done(changed, summary)

    async def retention(self, dry_run: bool) -> Done:
        results = await retention.run(self.db, self.settings.orchestrator, self.clock(), dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        parts = []
        for r in results:
            if r.cutoff is None:
                parts.append(f"{r.rule}: kept forever")
            else:
                batches = "" if dry_run else f" in {len(r.batch_sizes)} batches"
                parts.append(f"{r.rule}: {verb} {r.deleted} rows before {r.cutoff:%Y-%m-%d %H:%M}Z{batches}")
        return Done(sum(r.deleted for r in results), "; ".join(parts))

    async def vacuum(self, dry_run: bool) -> Done:
        async with self.db.connection() as conn:
            tables = [
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
                )
            ]
            if not dry_run:
                for table in tables:
                    # VACUUM cannot run inside a transaction block; each statement runs on its own.
                    await conn.execute(f'VACUUM (ANALYZE) "{table.replace(chr(34), chr(34) * 2)}"', timeout=3600)
        verb = "would VACUUM ANALYZE" if dry_run else "VACUUM ANALYZEd"
        return Done(len(tables), f"{verb} {len(tables)} tables")

    async def migrate(self, dry_run: bool) -> Done:
        async with self.db.connection() as conn:
            if dry_run:
                version = await current_schema_version(conn)
                pending = [f"{m.version:04d}_{m.name}" for m in shipped_migrations() if m.version > version]
                text = f"would apply {', '.join(pending)}" if pending else f"schema already at version {version}"
                return Done(len(pending), text)
            report = await migrate(conn)
        summary = f"schema at version {report.schema_version}"
        if report.applied:
            summary += f"; applied {', '.join(report.applied)}"
        if report.repaired:
            summary += f"; repaired {len(report.repaired)} objects"
        return Done(len(report.applied) + len(report.repaired), summary)
