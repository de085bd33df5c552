"""The brain service process: MarketService, and the data path as a background task.

The gRPC server binds first; the engine (numba kernels, ring consumer, candle writer, hydration, strategy, signal
hub, execution) is imported and started by a background task, so a slow start never delays the port or the health
service.

Readiness: SERVING needs PostgreSQL and Redis (the runtime checks them) and the brain's own start-up: kernels
loaded and the history PostgreSQL holds for the configured symbols read. It does *not* wait for the feed's
ring. While the feed has not created the ring yet the brain still answers everything it can — ListCandles from
PostgreSQL, GetBrainStatus saying no ring is attached (no ``shards``) — so reporting NOT_SERVING would hide a
working API, and in Kubernetes it would flap the pod on every feed restart. The ring's absence is visible in
GetBrainStatus and in the status the brain publishes to Redis (``ring.state = "waiting"``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from aegis import observability
from aegis.brain import settings as brain_settings
from aegis.brain.servicer import Runtime, registration
from aegis.server import ServiceContext, ServiceDefinition, ServiceParts

log = logging.getLogger("aegis.brain")


class BrainProcess:
    """The brain's background start-up and run, with its readiness."""

    def __init__(self, ctx: ServiceContext, settings: brain_settings.BrainSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.runtime = Runtime()
        self.engine: Any = None

    async def run(self) -> None:
        engine_module = await asyncio.to_thread(importlib.import_module, "aegis.brain.engine")
        self.engine = await engine_module.start(self.ctx, self.settings)
        self.runtime.queries = self.engine.queries
        self.runtime.hub = self.engine.hub
        log.info("candle engine loaded; ring %s", self.ctx.settings.ring_file)
        await self.engine.run()

    def ready(self) -> bool:
        return self.engine is not None and self.engine.ready

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop(min(3.0, self.ctx.settings.grpc.shutdown_grace_s))


async def setup(ctx: ServiceContext) -> ServiceParts:
    process = BrainProcess(ctx, brain_settings.load())
    brain_data_path = process.run
    return ServiceParts(
        registrations=[registration(process.runtime)],
        background=[brain_data_path],
        ready=process.ready,
        on_stop=process.stop,
        metrics=observability.brain_collectors(_LoadedEngine(process)),
    )


class _LoadedEngine:
    """The brain engine once loaded (it loads after the port is bound); before that its metrics are simply absent."""

    def __init__(self, process: BrainProcess) -> None:
        self._process = process

    def __getattr__(self, name: str) -> Any:
        engine = self._process.engine
        if engine is None:
            raise observability.NotLoadedYet(name)
        return getattr(engine, name)


DEFINITION = ServiceDefinition(name="brain", setup=setup, needs_postgres=True, needs_redis=True)
