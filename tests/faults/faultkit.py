"""Shared pieces of the fault suite: figures printed and kept, retrying clients, kill -9 and restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from aegis import testing

TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

CHANNEL_OPTIONS = (
    # A restarted server should be found again within a fraction of a second, not after gRPC's default backoff
    # (1 s growing to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
)


def report(title: str, figures: dict[str, Any]) -> str:
    """Print what a fault test did and counted (``pytest -s`` shows it) and return it for assertion messages."""
    text = f"[faults] {title}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(text, flush=True)
    return text


@dataclass
class Retrier:
    """Call RPCs until they answer, retrying UNAVAILABLE and DEADLINE_EXCEEDED (same request: same idempotency key)."""

    deadline_s: float = 90.0
    timeout_s: float = 3.0
    retries: Counter[str] = field(default_factory=Counter)

    async def __call__(self, name: str, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        give_up = time.monotonic() + self.deadline_s
        delay = 0.05
        while True:
            try:
                return await method(request, timeout=self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in TRANSIENT or time.monotonic() > give_up:
                    raise
                self.retries[f"{name}:{exc.code().name}"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


def kill9(proc: testing.ServiceProcess) -> None:
    assert proc.process is not None
    proc.process.kill()
    proc.process.wait(10)
    proc._log.close()


def restart(proc: testing.ServiceProcess, log_dir: Path, env: dict[str, str]) -> testing.ServiceProcess:
    """Start the same service again on the same port (a supervisor or Kubernetes restarting it)."""
    return testing.ServiceProcess(proc.service, env, port=proc.port, log_dir=log_dir).start()


async def wait_serving(proc: testing.ServiceProcess, timeout_s: float = 30.0) -> float:
    """Wait (off the loop) until ``proc`` is SERVING; return the seconds it took."""
    started = time.monotonic()
    ok = await asyncio.to_thread(proc.wait_status, "SERVING", timeout_s)
    assert ok, f"{proc.service} not SERVING after {timeout_s} s:\n{proc.log_text()[-3000:]}"
    return time.monotonic() - started


def start_simulator(port: int, state_file: Path, log: Path, speed: str = "x8") -> subprocess.Popen[bytes]:
    """Start ``python -m aegis.sim`` on ``port`` (replay position kept in ``state_file``); return once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis.sim", "--port", str(port), "--speed", speed, "--state-file", str(state_file)],
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the first URL line: the simulator listens from here on
    return proc
