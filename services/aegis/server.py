"""The one service runtime: every ``python -m aegis.<service>`` runs through :func:`main`.

What a process gets from it:

* an asyncio gRPC server (uvloop) with the standard health service, server reflection and ``ServiceInfoService``,
  bound before anything slow happens (``SO_REUSEPORT`` off, so a taken port is an error, not a silent share);
* health NOT_SERVING until its dependencies answer — PostgreSQL (at the schema version this code expects) and
  Redis, as the service declares — then SERVING, and back to NOT_SERVING whenever one stops answering, recovering
  by itself;
* SIGTERM or SIGINT: health NOT_SERVING, new calls refused, in-flight calls given ``AEGIS_SHUTDOWN_GRACE_S`` to
  finish, exit 0;
* one line on stderr and a non-zero exit for a configuration error (2) or a port that cannot be bound (4);
* observability (:mod:`aegis.observability`): a span per gRPC call (OpenTelemetry, exported over OTLP when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set), gRPC call metrics, the health status and the service's own collectors
  (``ServiceParts.metrics``) on a Prometheus ``/metrics`` port (gRPC port + 1000 by default);
* TLS on the gRPC port when ``AEGIS_TLS_CERT``/``AEGIS_TLS_KEY`` are set (docs/security.md).

A service module describes itself with a :class:`ServiceDefinition`; its ``setup`` builds the servicers (thin
translators, STYLE habit 1) from a :class:`ServiceContext` and may add background tasks and a readiness check.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import aegis
from aegis import config, observability
from aegis import logging as aegis_logging
from aegis.errors import AegisError, ConfigError, StartupError
from aegis.storage.cache import Cache
from aegis.storage.migrate import expected_schema_version
from aegis.storage.postgres import Database
from aegis.v1 import service_info_pb2 as info_pb
from aegis.v1 import service_info_pb2_grpc as info_grpc

log = logging.getLogger("aegis.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

LIVENESS_SERVICE = "liveness"
"""Health service name that is SERVING while the process runs (for liveness probes); "" follows dependencies."""

SERVER_OPTIONS: Sequence[tuple[str, Any]] = (
    ("grpc.so_reuseport", 0),  # two processes must never share a port by accident
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


@dataclass(frozen=True, slots=True)
class Registration:
    """One gRPC service to serve: the generated ``add_*_to_server`` function, the servicer and its full name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    name: str


@dataclass(slots=True)
class ServiceParts:
    """What a service's setup returns."""

    registrations: list[Registration]
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    ready: Callable[[], bool] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None
    metrics: list[Any] = field(default_factory=list)
    """Prometheus collectors (objects with ``collect()``) or functions returning metric families; the runtime
    registers them on the process's /metrics (see :mod:`aegis.observability`)."""


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """Everything a service's setup may use; dependencies come in here, never from module globals."""

    name: str
    settings: config.Settings
    db: Database | None
    cache: Cache | None
    started_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    name: str
    setup: Callable[[ServiceContext], Awaitable[ServiceParts]]
    needs_postgres: bool = True
    needs_redis: bool = True


# --------------------------------------------------------------------------------------------- building blocks


def unimplemented_servicer(base: type, service_name: str, *, implemented: Iterable[str] = ()) -> type:
    """Return a subclass of a generated servicer whose unbuilt RPCs answer UNIMPLEMENTED with a clear message.

    The generated base methods are synchronous; the asyncio server wants coroutines (or async generators for
    server streams), so each RPC not in ``implemented`` becomes an async method that aborts.
    """
    done = set(implemented)
    namespace: dict[str, Any] = {}
    for rpc_name, _ in inspect.getmembers(base, inspect.isfunction):
        if rpc_name.startswith("_") or rpc_name in done:
            continue

        def make(rpc: str) -> Callable[..., Awaitable[None]]:
            async def rpc_not_built(self: Any, request: Any, context: grpc.aio.ServicerContext) -> None:
                await context.abort(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{service_name}/{rpc} is not available in AEGIS {aegis.__version__} yet",
                )

            rpc_not_built.__name__ = rpc
            return rpc_not_built

        namespace[rpc_name] = make(rpc_name)
    return type(f"{base.__name__}Unbuilt", (base,), namespace)


class ServiceInfo(info_grpc.ServiceInfoServiceServicer):
    def __init__(self, name: str, settings: config.Settings, grpc_services: list[str], started_at: dt.datetime):
        start = timestamp_pb2.Timestamp()
        start.FromDatetime(started_at)
        self._response = info_pb.GetServiceInfoResponse(
            service=name,
            version=aegis.__version__,
            grpc_services=grpc_services,
            start_time=start,
            mode=settings.mode,
            shard=settings.shard if name in ("feed", "brain") else 0,
            pid=os.getpid(),
            expected_schema_version=expected_schema_version(),
        )

    async def GetServiceInfo(self, request: info_pb.GetServiceInfoRequest, context: Any) -> Any:
        return self._response


def create_server(
    registrations: Sequence[Registration],
    host: str,
    port: int,
    info: ServiceInfo | None = None,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Build a server with health, reflection and the given services, bind it and return (server, port, health).

    Pass port 0 to bind an ephemeral port (tests). Raises StartupError when the address cannot be bound.
    ``interceptors`` default to OpenTelemetry's tracing interceptor (``serve`` adds the call metrics);
    ``credentials`` (``aegis.observability.server_credentials``) make the port TLS-only.
    """
    if interceptors is None:
        interceptors = [observability.server_tracing_interceptor()]
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [r.name for r in registrations]
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
    if info is not None:
        info_grpc.add_ServiceInfoServiceServicer_to_server(info, server)
        names.append(info_pb.DESCRIPTOR.services_by_name["ServiceInfoService"].full_name)
    names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = (
            server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
        )
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {address}: the port is already in use or not allowed") from exc
    if bound == 0:
        raise StartupError(f"cannot listen on {address}: the port is already in use")
    return server, bound, health_servicer


class HealthMonitor:
    """Keep the health status in step with the dependencies: SERVING only while every check passes."""

    def __init__(
        self,
        health_servicer: health.aio.HealthServicer,
        service_names: Sequence[str],
        checks: Sequence[tuple[str, Callable[[], Awaitable[bool]]]],
        ready: Callable[[], bool] | None,
        interval_s: float,
    ) -> None:
        self._health = health_servicer
        self._names = ["", *service_names]
        self._checks = checks
        self._ready = ready
        self._interval_s = interval_s
        self.serving: bool | None = None
        self.failing: list[str] = []

    async def _set(self, status: int) -> None:
        for name in self._names:
            await self._health.set(name, status)

    async def check_once(self) -> bool:
        results = await asyncio.gather(*(check() for _, check in self._checks))
        failing = [name for (name, _), ok in zip(self._checks, results, strict=True) if not ok]
        if not failing and self._ready is not None and not self._ready():
            failing.append("service not ready")
        serving = not failing
        if serving != self.serving or failing != self.failing:
            if serving:
                log.info("health SERVING")
            else:
                log.warning("health NOT_SERVING: %s", ", ".join(failing))
            await self._set(SERVING if serving else NOT_SERVING)
        self.serving, self.failing = serving, failing
        return serving

    async def run(self) -> None:
        # Liveness answers "the process is alive and its event loop turns", whatever the dependencies say:
        # Kubernetes must not restart pods because PostgreSQL is down (readiness handles that).
        await self._health.set(LIVENESS_SERVICE, SERVING)
        await self._set(NOT_SERVING)
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval_s)


async def postgres_check(db: Database, timeout_s: float) -> bool:
    """Return True when PostgreSQL answers and its schema is at least at the version this code needs."""
    needed = expected_schema_version()
    try:
        async with asyncio.timeout(timeout_s):
            async with db.connection() as conn:
                version = await conn.fetchval(
                    "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 "
                    "ELSE (SELECT coalesce(max(version), 0) FROM schema_migrations) END"
                )
    except Exception as exc:
        log.debug("postgres check failed: %s", exc)
        await db.expire_connections()
        return False
    if version < needed:
        log.debug("schema at version %s, need %s", version, needed)
        return False
    return True


# --------------------------------------------------------------------------------------------- running


async def serve(definition: ServiceDefinition, settings: config.Settings, *, port: int | None = None) -> int:
    """Run one service until SIGTERM/SIGINT; return the process exit code."""
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    db = Database(settings.dsn()) if definition.needs_postgres else None
    cache = Cache(settings.redis(), timeout_s=settings.grpc.dependency_timeout_s) if definition.needs_redis else None
    ctx = ServiceContext(definition.name, settings, db, cache, started_at)
    parts = await definition.setup(ctx)
    names = [r.name for r in parts.registrations]
    info = ServiceInfo(definition.name, settings, names, started_at)
    bind_port = settings.port_of(definition.name) if port is None else port
    telemetry = observability.Telemetry(definition.name, settings)
    telemetry.add(parts.metrics)
    server, bound, health_servicer = create_server(
        parts.registrations,
        settings.grpc.host,
        bind_port,
        info,
        interceptors=telemetry.server_interceptors(),
        credentials=observability.server_credentials(settings),
    )
    await server.start()
    log.info(
        "listening on %s:%d",
        settings.grpc.host,
        bound,
        extra={
            "grpc_services": names,
            "startup_ms": round((time.monotonic() - t0) * 1000, 1),
            "tls": bool(settings.observability.tls_cert),
        },
    )

    timeout = settings.grpc.dependency_timeout_s
    checks: list[tuple[str, Callable[[], Awaitable[bool]]]] = []
    if db is not None:
        checks.append(("postgres", lambda: postgres_check(db, timeout)))
    if cache is not None:
        checks.append(("redis", lambda: cache.check(timeout)))
    monitor = HealthMonitor(health_servicer, names, checks, parts.ready, settings.grpc.health_interval_s)
    telemetry.watch_health(monitor, [name for name, _ in checks])
    await telemetry.start(settings.grpc.host, bound)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(monitor.run(), name="health")]
    tasks += [asyncio.create_task(job(), name=getattr(job, "__name__", "background")) for job in parts.background]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    exit_code = 0
    pending: set[asyncio.Task] = {stopper, *tasks}
    while stopper in pending and exit_code == 0:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            # A background job may finish its work and end; one that raises stops the process (the supervisor
            # or Kubernetes restarts it), because a half-working service is worse than a restarted one.
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                log.error("background task %s failed", task.get_name(), exc_info=task.exception())
                exit_code = 1

    log.info("stopping: health NOT_SERVING, %.1f s grace for in-flight calls", settings.grpc.shutdown_grace_s)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.grpc.shutdown_grace_s)
    for task in [stopper, *tasks]:
        task.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    if parts.on_stop is not None:
        await parts.on_stop()
    for resource in (db, cache):
        if resource is not None:
            await resource.close()
    await telemetry.stop()
    log.info("stopped")
    return exit_code


def _fail(service: str, message: str, code: int) -> NoReturn:
    print(f"aegis.{service}: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def main(definition: ServiceDefinition) -> NoReturn:
    """Entry point of ``python -m aegis.<service>``."""
    try:
        settings = config.load()
        settings.check_live_mode()
    except ConfigError as exc:
        _fail(definition.name, str(exc), exc.exit_code)
    aegis_logging.configure(definition.name, settings.log.level, settings.log.root_level)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # uvloop is not built for every platform; asyncio's loop works the same, slower
        runner = asyncio.Runner()
    try:
        with runner:
            code = runner.run(serve(definition, settings))
    except AegisError as exc:
        _fail(definition.name, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


async def abort_with(context: grpc.aio.ServicerContext, error: AegisError) -> NoReturn:
    """Abort the call with the status code the error maps to (the one place servicers turn errors into codes)."""
    await context.abort(error.status_code, str(error))
    raise AssertionError("unreachable")  # context.abort raises


__all__ = [
    "Registration",
    "ServiceContext",
    "ServiceDefinition",
    "ServiceParts",
    "abort_with",
    "create_server",
    "main",
    "serve",
    "unimplemented_servicer",
]


def unbuilt_registration(grpc_module: Any, service: str, package: str = "aegis.v1") -> Registration:
    """Return a Registration of ``service`` from a generated ``*_pb2_grpc`` module with every RPC UNIMPLEMENTED."""
    base = getattr(grpc_module, f"{service}Servicer")
    full_name = f"{package}.{service}"
    servicer = unimplemented_servicer(base, full_name)()
    return Registration(getattr(grpc_module, f"add_{service}Servicer_to_server"), servicer, full_name)
