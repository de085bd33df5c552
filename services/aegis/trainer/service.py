"""The trainer service process: TrainerService, and scheduled training as a background task.

Readiness: SERVING needs PostgreSQL (at this code's schema version) and Redis, which the runtime checks. Training
itself runs in a worker thread, so the gRPC server keeps answering (reports, model lists) during a run.
"""

from __future__ import annotations

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

    return ServiceParts(registrations=[registration(trainer)], background=[trainer_schedule], on_stop=trainer.close)


DEFINITION = ServiceDefinition(name="trainer", setup=setup, needs_postgres=True, needs_redis=True)
