"""The orchestrator service process.

At start it brings the PostgreSQL schema up to date (and repairs it), retrying with backoff while PostgreSQL is
down; it reports SERVING only once the schema is current. Every other service waits for that schema version in
its own health check, so on a fresh database the whole system becomes SERVING right after the orchestrator's
migration.

Then every replica campaigns for leadership (:mod:`.leader`); the leader alone runs the duties (:mod:`.duties`):
exchange rules and universe refreshes, retention, the heartbeat line. Every replica answers the API
(:mod:`.servicer`). docs/orchestrator.md tells the whole story.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aegis import observability
from aegis.config import Settings
from aegis.errors import DependencyUnavailable
from aegis.orchestrator import duties, kube, maintenance
from aegis.orchestrator.heartbeat import heartbeat_fields, heartbeat_line
from aegis.orchestrator.leader import LeaderElection, default_identity
from aegis.orchestrator.servicer import OrchestratorServicer
from aegis.orchestrator.status import StatusCollector
from aegis.server import Registration, ServiceContext, ServiceDefinition, ServiceParts
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.migrate import MigrationError, migrate
from aegis.storage.postgres import Database
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


@dataclass(frozen=True, slots=True)
class Orchestrator:
    """The orchestrator's parts, wired: what :func:`setup` serves and what the test kit runs in-process."""

    election: LeaderElection
    collector: StatusCollector
    maintenance: maintenance.Maintenance
    servicer: OrchestratorServicer
    schedule: list[duties.Duty]
    kube_client: kube.KubeClient | None

    def registration(self) -> Registration:
        return Registration(
            orchestrator_grpc.add_OrchestratorServiceServicer_to_server, self.servicer, "aegis.v1.OrchestratorService"
        )

    async def close(self) -> None:
        if self.kube_client is not None:
            await self.kube_client.close()


def build(
    settings: Settings,
    db: Database,
    cache: Cache,
    started_at: dt.datetime,
    *,
    identity: str | None = None,
    kube_client: kube.KubeClient | None = None,
) -> Orchestrator:
    """Wire the orchestrator from its dependencies (Kubernetes from the settings unless ``kube_client`` is given)."""
    orch = settings.orchestrator
    if kube_client is None:
        target = kube.target_from(settings)
        kube_client = kube.KubeClient(target) if target is not None else None
    if kube_client is None:
        log.info("not in a Kubernetes cluster: no pods reported, shard pods not managed")
    else:
        log.info(
            "Kubernetes: namespace %s, feed-brain StatefulSet %s",
            kube_client.target.namespace,
            kube_client.target.statefulset,
            extra={"api": kube_client.target.api_url or "in-cluster"},
        )
    election = LeaderElection(
        settings.dsn(),
        identity or default_identity(),
        retry_s=orch.leader_retry_s,
        timeout_s=max(2.0, settings.grpc.dependency_timeout_s),
    )
    collector = StatusCollector(settings, db, cache, election, kube_client)
    work = maintenance.Maintenance(settings, db, cache, kube_client)

    def scheduled(task: str) -> Callable[[], Awaitable[str | None]]:
        async def run() -> str | None:
            return (await work.perform(task)).summary

        return run

    async def heartbeat() -> None:
        snapshot = await collector.collect()
        log.warning("%s", heartbeat_line(snapshot), extra=heartbeat_fields(snapshot))

    async def leader_key() -> None:
        # Informational only (the lock in PostgreSQL decides): lets Redis-only tools see who leads.
        ttl = max(5, int(orch.leader_retry_s * 3))
        await cache.client.set(keys.leader("orchestrator"), election.identity, ex=ttl)

    schedule = [
        duties.Duty("rules refresh", orch.rules_interval_s, scheduled(maintenance.REFRESH_RULES)),
        duties.Duty("universe refresh", orch.universe_interval_s, scheduled(maintenance.REFRESH_UNIVERSE)),
        duties.Duty(
            "retention",
            orch.retention_interval_s,
            scheduled(maintenance.RETENTION),
            first_delay_s=min(60.0, orch.retention_interval_s),
        ),
        duties.Duty("heartbeat", orch.heartbeat_interval_s, heartbeat, first_delay_s=orch.heartbeat_interval_s),
        duties.Duty("leader key", orch.leader_retry_s, leader_key, retry_s=orch.leader_retry_s),
    ]
    servicer = OrchestratorServicer(settings, db, collector, work, election, started_at)
    return Orchestrator(election, collector, work, servicer, schedule, kube_client)


async def setup(ctx: ServiceContext) -> ServiceParts:
    assert ctx.db is not None and ctx.cache is not None
    parts = build(ctx.settings, ctx.db, ctx.cache, ctx.started_at)
    schema_ready = asyncio.Event()

    async def migrations() -> None:
        try:
            await migrate_at_start(ctx)
        except MigrationError:
            raise  # a history that does not match this code is fatal: stop with the reason
        schema_ready.set()

    async def leadership() -> None:
        await parts.election.run()

    async def run_duties() -> None:
        await duties.lead(parts.election, parts.schedule, schema_ready)

    return ServiceParts(
        registrations=[parts.registration()],
        background=[migrations, leadership, run_duties],
        on_stop=parts.close,
        metrics=observability.orchestrator_collectors(parts),
    )


DEFINITION = ServiceDefinition(name="orchestrator", setup=setup, needs_postgres=True, needs_redis=True)
