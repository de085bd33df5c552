"""`aegis up`: every service as a local process, mirroring the pod topology, on embedded databases by default.

feed and brain share one ring file under $AEGIS_HOME (in Kubernetes they share /dev/shm in one pod); the other
services are separate processes reached over gRPC on loopback. When DATABASE_URL (or PGHOST) and REDIS_URL are not
set, an embedded PostgreSQL and Redis start under $AEGIS_HOME and stop with everything else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aegis import config
from aegis.cli import status as status_cli
from aegis.embedded import EmbeddedPostgres, EmbeddedRedis, port_is_free, wait_for_port
from aegis.errors import StartupError
from aegis.supervisor import FatalChildExit, ProcessSpec, Supervisor

console = Console(highlight=False)
errors = Console(highlight=False, stderr=True, soft_wrap=True)


def _say(name: str, text: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    console.print(f"[dim]{stamp}[/dim] [bold]{name}[/bold] {text}")


def preflight(settings: config.Settings, host: str, pg: EmbeddedPostgres | None, rd: EmbeddedRedis | None) -> None:
    """Fail fast, with one line, on what would otherwise make a child die in a restart loop."""
    state = status_cli.running_up_state(settings.home)
    if state:
        raise StartupError(f"`aegis up` is already running for {settings.home} (pid {state['pid']})")
    wanted = [(name, settings.port_of(name)) for name in config.SERVICES]
    if pg:
        wanted.append(("embedded PostgreSQL", pg.port))
    if rd:
        wanted.append(("embedded Redis", rd.port))
    bind_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    for name, port in wanted:
        if not port_is_free(port, bind_host):
            raise StartupError(f"port {port} ({name}) is already in use on {bind_host}")


def run(settings: config.Settings) -> int:
    host = os.environ.get("AEGIS_GRPC_HOST", "127.0.0.1")  # locally, listen on loopback unless told otherwise
    use_pg = not settings.database_url and "PGHOST" not in os.environ
    use_redis = not settings.redis_url
    pg = EmbeddedPostgres(settings.home, settings.embedded_pg_port) if use_pg else None
    rd = EmbeddedRedis(settings.home, settings.embedded_redis_port) if use_redis else None
    settings.home.mkdir(parents=True, exist_ok=True)
    preflight(settings, host, pg, rd)
    return asyncio.run(_up(settings, host, pg, rd))


async def _up(settings: config.Settings, host: str, pg: EmbeddedPostgres | None, rd: EmbeddedRedis | None) -> int:
    home = settings.home
    logs = home / "logs"
    state_file = home / status_cli.UP_STATE_FILE
    state: dict[str, object] = {
        "pid": os.getpid(),
        "services": {},
        "pids": {},
        "logs": str(logs),
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
    }

    def write_state(child: object = None) -> None:
        # Rewritten at every (re)start so that `aegis status` and scripts see current addresses and pids.
        state["pids"] = {n: c.process.pid for n, c in supervisor.children.items() if c.process is not None}
        state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(state_file)

    supervisor = Supervisor(on_event=_say, on_spawn=write_state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1", AEGIS_HOME=str(home), AEGIS_GRPC_HOST=host, AEGIS_RING_PATH=str(settings.ring_file)
    )
    database_groups: list[str] = []
    code = 0
    try:
        if pg is not None:
            await asyncio.to_thread(pg.prepare)
            await supervisor.start(
                ProcessSpec(
                    "postgres", pg.command(), dict(os.environ), pg.log_file, stop_signal=signal.SIGINT, user=pg.run_as()
                )
            )
            database_groups.append("postgres")
            await asyncio.to_thread(pg.ensure_database)
            env["DATABASE_URL"] = pg.dsn()
            _say("postgres", f"embedded PostgreSQL on 127.0.0.1:{pg.port} (data in {pg.data_dir})")
        if rd is not None:
            rd.prepare()
            await supervisor.start(ProcessSpec("redis", rd.command(), dict(os.environ), rd.log_file))
            database_groups.append("redis")
            if not await asyncio.to_thread(wait_for_port, rd.port, 10):
                raise StartupError(f"embedded Redis did not start; see {rd.log_file}")
            env["REDIS_URL"] = rd.url()
            _say("redis", f"embedded Redis on 127.0.0.1:{rd.port} (data in {rd.data_dir})")
        Path(settings.ring_file).parent.mkdir(parents=True, exist_ok=True)

        where: dict[str, str] = {}
        state["services"] = where
        for name in config.SERVICES:
            port = settings.port_of(name)
            where[name] = f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
            await supervisor.start(
                ProcessSpec(name, [sys.executable, "-m", f"aegis.{name}"], env, logs / f"{name}.log")
            )
        write_state()
        _print_table(supervisor, where, logs)
        watcher = asyncio.create_task(_announce_serving(where, stop))
        fatal = asyncio.create_task(supervisor.wait_fatal())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([fatal, stopper], return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        if fatal in done:
            failure: FatalChildExit = fatal.result()
            errors.print(f"[red]aegis up: {failure.name} cannot run: {failure.last_line}[/red]")
            code = failure.code
        else:
            fatal.cancel()
            console.print("stopping all services ...")
    except StartupError as exc:
        errors.print(f"[red]aegis up: {exc}[/red]")
        code = exc.exit_code
    finally:
        await supervisor.stop([list(config.SERVICES)], timeout_s=settings.grpc.shutdown_grace_s + 2)
        await supervisor.stop([["redis"], ["postgres"]], timeout_s=10)
        state_file.unlink(missing_ok=True)
    if code == 0:
        console.print("all stopped")
    return code


def _print_table(supervisor: Supervisor, where: dict[str, str], logs: Path) -> None:
    table = Table(title="aegis up", caption="Ctrl-C stops everything")
    for column in ("service", "listens on", "pid", "log"):
        table.add_column(column)
    for name, child in supervisor.children.items():
        pid = str(child.process.pid) if child.process else ""
        table.add_row(name, where.get(name, "-"), pid, str(child.spec.log_file))
    console.print(table)
    console.print(f"try: grpcurl -plaintext {where['risk']} list    |    aegis status")


async def _announce_serving(where: dict[str, str], stop: asyncio.Event, timeout_s: float = 60.0) -> None:
    deadline = loop_time() + timeout_s
    while not stop.is_set() and loop_time() < deadline:
        report = await status_cli.collect(where)
        waiting = [n for n, s in report["services"].items() if s["status"] != "SERVING"]
        if not waiting:
            _say("aegis", "all services SERVING")
            return
        await asyncio.sleep(0.5)
    if not stop.is_set():
        _say("aegis", f"still not SERVING after {timeout_s:.0f} s: {', '.join(waiting)} (see their logs)")


def loop_time() -> float:
    return asyncio.get_running_loop().time()
