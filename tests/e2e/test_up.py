"""`aegis up` as a new user runs it: every service as a process on embedded PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis import config, testing

README = Path(__file__).resolve().parents[2] / "README.md"
CLEARED = ("DATABASE_URL", "REDIS_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "AEGIS_CONFIG")


def up_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("AEGIS_")}
    env.update(
        AEGIS_BINANCE_REST_URL="http://127.0.0.1:9",  # never the real exchange from a test
        AEGIS_BINANCE_WS_MARKET_URL="ws://127.0.0.1:9/market",
        AEGIS_BINANCE_WS_PUBLIC_URL="ws://127.0.0.1:9/public",
        AEGIS_HOME=str(home),
        AEGIS_EMBEDDED_PG_PORT=str(testing.free_port()),
        AEGIS_EMBEDDED_REDIS_PORT=str(testing.free_port()),
        AEGIS_HEALTH_INTERVAL_S="0.2",
        AEGIS_SHUTDOWN_GRACE_S="3",
        PYTHONUNBUFFERED="1",
    )
    for name in config.SERVICES:
        env[f"AEGIS_{name.upper()}_PORT"] = str(testing.free_port())
    return env


def aegis(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aegis", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def status(env: dict[str, str]) -> dict:
    return json.loads(aegis("status", "--json", env=env).stdout)


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def running_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    home = tmp_path / "aegis-home"
    env = up_env(home)
    out = (tmp_path / "up.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis", "up"], env=env, stdout=out, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield proc, env, home
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        for pid in processes_mentioning(str(home)):
            os.kill(pid, signal.SIGKILL)


def test_up_runs_everything_restarts_a_killed_service_and_stops_cleanly(running_up, tmp_path: Path) -> None:
    proc, env, home = running_up
    assert testing.wait_until(
        lambda: all(s["status"] == "SERVING" for s in status(env)["services"].values()), 90, 0.5
    ), (tmp_path / "up.out").read_text()
    report = status(env)
    assert set(report["services"]) == set(config.SERVICES)
    for name, entry in report["services"].items():
        assert entry["address"] == f"127.0.0.1:{env[f'AEGIS_{name.upper()}_PORT']}"
        assert entry["version"]
        listed = subprocess.run(
            [testing.grpcurl(), "-plaintext", entry["address"], "list"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.split()
        assert testing.GRPC_SERVICE[name] in listed and "grpc.health.v1.Health" in listed
        assert "grpc.reflection.v1alpha.ServerReflection" in listed

    # The README's grpcurl examples work as written (with this run's ports in place of the defaults).
    examples = [line for line in README.read_text().splitlines() if line.startswith("grpcurl -plaintext 127.0.0.1:")]
    assert len(examples) >= 3
    for line in examples:
        for name, default in config.DEFAULT_PORTS.items():
            line = line.replace(f"127.0.0.1:{default} ", f"127.0.0.1:{env[f'AEGIS_{name.upper()}_PORT']} ")
        argv = shlex.split(line)
        result = subprocess.run([testing.grpcurl(), *argv[1:]], capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, f"{line}: {result.stderr}"

    # Feed and brain share one ring file under $AEGIS_HOME, as the two containers of the pod share /dev/shm.
    state = json.loads((home / "run" / "up.json").read_text())
    assert state["pid"] == proc.pid
    rings = {name: process_env(report["services"][name]["pid"]).get("AEGIS_RING_PATH") for name in ("feed", "brain")}
    assert rings["feed"] == rings["brain"] == str(home / "ring" / "shard-0.ring")

    # Kill one service outright: status shows it NOT_SERVING, then `aegis up` restarts it and it is SERVING.
    victim = report["services"]["brain"]["pid"]
    os.kill(victim, signal.SIGKILL)
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        entry = status(env)["services"]["brain"]
        seen.append(entry["status"])
        if entry["status"] == "SERVING" and entry.get("pid") != victim:
            break
        time.sleep(0.1)
    assert "NOT_SERVING" in seen and seen[-1] == "SERVING", seen

    # SIGTERM stops everything within 10 s with exit 0 and no process left behind.
    state = json.loads((home / "run" / "up.json").read_text())
    pids = list(state["pids"].values())
    pg_pid = int((home / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert time.monotonic() - t0 < 10
    assert not [p for p in [*pids, pg_pid] if alive(p)]
    assert processes_mentioning(str(home)) == []
    assert not (home / "run" / "up.json").exists()
    out = (tmp_path / "up.out").read_text()
    assert "restart #1" in out and "all stopped" in out


def test_up_with_a_port_taken_says_so_in_one_line(tmp_path: Path) -> None:
    env = up_env(tmp_path / "home")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["AEGIS_RISK_PORT"])))
        taken.listen()
        result = aegis("up", env=env)
    assert result.returncode == 4
    assert result.stderr.strip() == f"aegis up: port {env['AEGIS_RISK_PORT']} (risk) is already in use on 127.0.0.1"


def test_up_with_a_malformed_database_url_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**up_env(tmp_path / "home"), "DATABASE_URL": "postgresql//oops"}
    result = aegis("up", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "aegis up: DATABASE_URL='postgresql//oops' must start with postgresql://"


def test_up_refuses_live_mode_without_the_explicit_opt_in(tmp_path: Path) -> None:
    env = {**up_env(tmp_path / "home"), "AEGIS_MODE": "live", "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"}
    result = aegis("up", env=env)
    assert result.returncode == 2
    assert "AEGIS_LIVE_CONFIRM" in result.stderr and len(result.stderr.strip().splitlines()) == 1
