"""The trainer service process: TrainerService, and scheduled training as a background task.

Readiness: SERVING needs PostgreSQL (at this code's schema version) and Redis, which the runtime checks. Training
itself runs in a worker thread, so the gRPC server keeps answering (reports, model lists) during a run.
"""

from __future__ import annotations

from aegis import observability
from aegis.server import ServiceContext, ServiceDefinition, ServiceParts
from aegis.trainer.runner import Trainer
from aegis.trainer.servicer import registration


def build(ctx: ServiceContext) -> Trainer:
    """Return the trainer of a service context (also what in-process tests use)."""
    assert ctx.db is not None
    return Trainer(ctx.db, ctx.cache, ctx.settings.trainer)


async def setup(ctx: ServiceContext) -> ServiceParts:
    trainer = build(ctx)

    async def trainer_schedule() -> None:
        await trainer.schedule()

    # Runs and active models come from PostgreSQL: polled in the background, served from memory on /metrics.
    metrics = observability.trainer_collectors(trainer, ctx.db)

    async def trainer_metrics() -> None:
        await metrics[1].run()

    return ServiceParts(
        registrations=[registration(trainer)],
        background=[trainer_schedule, trainer_metrics],
        on_stop=trainer.close,
        metrics=metrics,
    )


DEFINITION = ServiceDefinition(name="trainer", setup=setup, needs_postgres=True, needs_redis=True)
