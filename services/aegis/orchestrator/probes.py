"""Probes of the AEGIS services (standard health + ServiceInfo) and of PostgreSQL and Redis, with latencies."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aegis import config, observability
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database
from aegis.v1 import service_info_pb2 as info_pb
from aegis.v1 import service_info_pb2_grpc as info_grpc

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
SERVICE_UNKNOWN = "SERVICE_UNKNOWN"
UNREACHABLE = "UNREACHABLE"


@dataclass(frozen=True, slots=True)
class ServiceProbe:
    """What one service answered (or did not)."""

    name: str
    address: str
    status: str
    """SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNREACHABLE."""
    version: str
    latency_s: float
    error: str
    checked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class DependencyProbe:
    healthy: bool
    latency_s: float
    version: str
    address: str
    error: str


async def probe_service(
    name: str, address: str, timeout_s: float, settings: config.Settings | None = None
) -> ServiceProbe:
    """Ask the service at ``address`` for its overall health, then for its identity and version.

    A service that answers as another one (a wrong address) counts as NOT_SERVING with the reason. The channel is
    TLS when ``AEGIS_TLS_CA`` is set (``settings``, default the environment's); probes are not traced.
    """
    checked_at = dt.datetime.now(dt.UTC)
    status, version, error = UNREACHABLE, "", ""
    t0 = time.perf_counter()
    latency = 0.0
    async with observability.insecure_or_tls_channel(address, settings, interceptors=[]) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
            latency = time.perf_counter() - t0
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            if status not in (SERVING, NOT_SERVING, SERVICE_UNKNOWN):
                status = NOT_SERVING
        except grpc.aio.AioRpcError as exc:
            latency = time.perf_counter() - t0
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                status, error = SERVICE_UNKNOWN, "the health service does not know this service"
            else:
                error = f"{exc.code().name}: {exc.details() or 'no answer'}"
            return ServiceProbe(name, address, status, version, latency, error, checked_at)
        try:
            info = await info_grpc.ServiceInfoServiceStub(channel).GetServiceInfo(
                info_pb.GetServiceInfoRequest(), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            error = f"no ServiceInfoService: {exc.code().name}"
        else:
            version = info.version
            if info.service != name:
                status, error = NOT_SERVING, f"{address} is served by {info.service!r}, not {name!r}"
    return ServiceProbe(name, address, status, version, latency, error, checked_at)


def redacted_address(url: str) -> str:
    """Return ``host:port/database`` of a PostgreSQL or Redis URL, without credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if not host and "host=" in parts.query:
        host = unquote(parts.query.split("host=", 1)[1].split("&", 1)[0])
    path = parts.path.lstrip("/")
    where = f"{host}:{port}" if port else host
    return f"{where}/{path}" if path else where


async def probe_postgres(db: Database, dsn: str, timeout_s: float) -> DependencyProbe:
    """Time ``SELECT 1`` and read the server version."""
    address = redacted_address(dsn)
    try:
        async with asyncio.timeout(timeout_s), db.connection() as conn:
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            latency = time.perf_counter() - t0
            version = str(await conn.fetchval("SHOW server_version"))
    except Exception as exc:
        return DependencyProbe(False, 0.0, "", address, describe_error(exc))
    return DependencyProbe(True, latency, version, address, "")


async def probe_redis(cache: Cache, url: str, timeout_s: float) -> DependencyProbe:
    """Time ``PING`` and read the server version."""
    address = redacted_address(url)
    try:
        async with asyncio.timeout(timeout_s):
            t0 = time.perf_counter()
            await cache.client.ping()
            latency = time.perf_counter() - t0
            info = await cache.client.info("server")
    except Exception as exc:
        return DependencyProbe(False, 0.0, "", address, describe_error(exc))
    version = info.get("redis_version", "") if isinstance(info, dict) else ""
    return DependencyProbe(True, latency, str(version), address, "")


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) and not text:
        return "no answer within the deadline"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
