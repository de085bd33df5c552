"""The orchestrator service process.

At start it brings the PostgreSQL schema up to date (and repairs it), retrying with backoff while PostgreSQL is
down; it reports SERVING only once the schema is current. Every other service waits for that schema version in
its own health check, so on a fresh database the whole system becomes SERVING right after the orchestrator's
migration.
"""

from __future__ import annotations

import asyncio
import logging

from aegis.errors import DependencyUnavailable
from aegis.server import ServiceContext, ServiceDefinition, ServiceParts, unbuilt_registration
from aegis.storage.migrate import MigrationError, migrate
from aegis.v1 import orchestrator_pb2_grpc as orchestrator_grpc

log = logging.getLogger("aegis.orchestrator")


async def migrate_at_start(ctx: ServiceContext, max_delay_s: float = 10.0) -> None:
    """Apply and repair the schema, retrying while PostgreSQL is unavailable."""
    assert ctx.db is not None
    delay = 0.25
    while True:
        try:
            async with ctx.db.connection() as conn:
                report = await migrate(conn)
        except (DependencyUnavailable, OSError) as exc:
            log.warning("migrations postponed, PostgreSQL unavailable: %s (retry in %.1f s)", exc, delay)
        else:
            log.info(
                "schema at version %d",
                report.schema_version,
                extra={"applied": report.applied, "repaired": report.repaired, "left_alone": report.left_alone},
            )
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)


async def setup(ctx: ServiceContext) -> ServiceParts:
    async def migrations() -> None:
        try:
            await migrate_at_start(ctx)
        except MigrationError:
            raise  # a history that does not match this code is fatal: stop with the reason

    return ServiceParts(
        registrations=[unbuilt_registration(orchestrator_grpc, "OrchestratorService")],
        background=[migrations],
    )


DEFINITION = ServiceDefinition(name="orchestrator", setup=setup, needs_postgres=True, needs_redis=True)
