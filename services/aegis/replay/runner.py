"""`aegis replay`: run every service as a process (the supervisor of `aegis up`) over a recording, then report.

Isolation: a fresh temporary ``$AEGIS_HOME`` (or ``--home``) with its own embedded PostgreSQL and Redis on free
ports, every service on a free port, the Binance URLs pointed at a dead loopback port. DATABASE_URL, REDIS_URL,
PG* and AEGIS_CONFIG of the caller are ignored, so a replay never touches live state.

Order: databases (migrated, with the exchange rules and leverage brackets of ``--exchange-info``/``--brackets``
stored, as the orchestrator would store fetched ones), then every service but the feed; once all are SERVING and
the brain has hydrated the symbols (so the strategy sees every candle of the replay), the feed starts and replays
the file at ``--speed``.

Record time (``AEGIS_CLOCK=record``, see :mod:`aegis.core.clock`): the services take their time from the
recording, the brain pushes prices in windows of record time and executes signals between them in record order,
so the same input and seed give the same trades. A recording without a markPrice stream is replayed with the last
trade price as the mark price (``AEGIS_BRAIN_MARK_PRICE_SOURCE=last``) and TP/SL triggered on it
(``AEGIS_ACCOUNT_WORKING_TYPE=contract_price``); the report's ``prices`` says which was used.

Completion (polled, with ``--timeout``): (1) the feed's status (Redis ``aegis:status:feed:<shard>``) shows
``frames_in`` equal to the frames of the file; (2) the brain's status (``aegis:status:brain:shard-<n>``) shows
the ring's published count equal to the feed's and no lag (every record read); (3) nothing is pending — the
executor's signal and order queues, the price pusher's pending symbols, the candle and signal writers' backlogs —
and the brain's execution, price and persistence counters did not change across ``SETTLE_S`` of wall time
(virtual-account answers a call only after its PostgreSQL transaction, so settled calls are stored rows).

Timing (:func:`replay_timing`, the summary's ``replay_timed_s`` and ``timing``): from the feed's stamp
``replay_started_ns`` to the later of its ``replay_finished_ns`` and the brain's ``work.last_work_ns`` (the last
time its work counters moved, :mod:`aegis.replay.activity`) — the work, not the polling that detects its end.
Every process's CPU seconds over that interval (:mod:`aegis.replay.cpu`, sampled at each completion poll) go in
``timing.cpu``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aegis import config
from aegis.cli import status as status_cli
from aegis.embedded import EmbeddedPostgres, EmbeddedRedis, wait_for_port
from aegis.errors import AegisError, StartupError
from aegis.replay import source as replay_source
from aegis.replay.cpu import CpuMeter
from aegis.storage import keys
from aegis.supervisor import FatalChildExit, ProcessSpec, Supervisor

console = Console(highlight=False, stderr=True)
DEAD = "127.0.0.1:9"  # discard port: nothing listens, so any Binance call fails at once
SETTLE_S = 1.5
POLL_S = 0.05
"""How often the completion check reads the feed's and the brain's statuses (two Redis GETs)."""
BRAIN_STATUS_INTERVAL_S = 0.2
"""How often the brain publishes its status in a replay: the completion check sees the end this much late at most
(detection only: the timed end comes from the services' stamps, see :func:`replay_timing`)."""
REPLAY_TUNING = {
    # A replay's wall time is record time compressed ~1000x: the candle writer's 0.2 s of gathering (a minute's closes
    # of every symbol and timeframe, live) spans minutes of record time, and the last write came 0.2 s after the
    # work was done. 10 ms still gathers ~10 record-minutes' closes per write.
    "AEGIS_BRAIN_WRITE_INTERVAL_S": "0.01",
    # the brain looks for the feed's ring every 0.5 s by default: in a replay it would start up to 0.5 s (~10^5
    # records) behind the feed
    "AEGIS_BRAIN_ATTACH_INTERVAL_S": "0.05",
    # Scheduled training runs on the wall clock, not record time: a run promoted mid-replay would switch the model at
    # a moment that depends on the machine's speed, and two runs of the same input would not give the same trades.
    # A replay scores with the model active at its start (TrainNow still works); a caller who sets
    # AEGIS_TRAINER_INTERVAL_S gives that up, and the report's model_versions shows it.
    "AEGIS_TRAINER_INTERVAL_S": "0",
}
"""Brain settings a replay runs with unless the caller sets them (``AEGIS_BRAIN_*`` pass through)."""
CLEARED = ("DATABASE_URL", "REDIS_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "AEGIS_CONFIG")
OVERRIDDEN_PREFIXES = ("AEGIS_BINANCE_", "AEGIS_EMBEDDED_", "AEGIS_FEED_SOURCE", "AEGIS_FEED_REPLAY_SPEED")


class ReplayError(AegisError):
    """The replay did not complete, or its books do not balance."""

    exit_code = 1


@dataclass(slots=True)
class ReplayOptions:
    sources: list[Path]
    report_dir: Path
    speed: str = "max"
    home: Path | None = None
    timeout_s: float = 600.0
    repeat: int = 1
    seed: int = 0
    keep_home: bool = False
    progress: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    exchange_info: Path | None = None
    """exchangeInfo JSON stored before the services start (default: the shared 2025-11 fixture)."""
    brackets: Path | None = None
    """Leverage tiers JSON stored before the services start (default: the shared freqtrade tiers)."""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ring_capacity(frames: int) -> int:
    """Ring slots for a replay of ``frames``: room for every record twice over (at least the default), so the brain
    can never be lapped, however far behind the feed it falls."""
    return 1 << max(20, (2 * frames - 1).bit_length())


def clock_start_ms(src: replay_source.Source) -> int:
    """The record clock before the first record: the start of the minute before the recording's first frame."""
    first_ms = src.first_recv_ns // 1_000_000
    return first_ms - first_ms % 60_000 - 60_000


def pricing(src: replay_source.Source) -> dict[str, str]:
    """The price settings a replay of ``src`` runs with: never a mark price the recording does not have."""
    if src.has_mark_price:
        return {}
    return {"AEGIS_BRAIN_MARK_PRICE_SOURCE": "last", "AEGIS_ACCOUNT_WORKING_TYPE": "contract_price"}


def replay_env(
    home: Path, symbols: Sequence[str], source: Path, speed: str, seed: int, src: replay_source.Source | None = None
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CLEARED and not k.startswith(OVERRIDDEN_PREFIXES) and not k.endswith(("_PORT", "_ADDRESS"))
    }
    env.update(
        PYTHONUNBUFFERED="1",
        PYTHONHASHSEED=str(seed),
        AEGIS_HOME=str(home),
        AEGIS_MODE="paper",
        AEGIS_GRPC_HOST="127.0.0.1",
        AEGIS_BINANCE_REST_URL=f"http://{DEAD}",
        AEGIS_BINANCE_WS_MARKET_URL=f"ws://{DEAD}/market",
        AEGIS_BINANCE_WS_PUBLIC_URL=f"ws://{DEAD}/public",
        AEGIS_EMBEDDED_PG_PORT=str(free_port()),
        AEGIS_EMBEDDED_REDIS_PORT=str(free_port()),
        AEGIS_FEED_SOURCE=str(source),
        AEGIS_FEED_REPLAY_SPEED=speed,
        AEGIS_SYMBOLS=",".join(symbols),
        AEGIS_SHARD_INDEX="0",
        AEGIS_RING_PATH=str(home / "ring" / "shard-0.ring"),
        AEGIS_BRAIN_STATUS_INTERVAL_S=str(BRAIN_STATUS_INTERVAL_S),
        AEGIS_HEALTH_INTERVAL_S=os.environ.get("AEGIS_HEALTH_INTERVAL_S", "0.5"),
        AEGIS_CLOCK="record",
        # a recording is old by definition: retention would delete its candles mid-replay; the exchange is dead
        AEGIS_ORCHESTRATOR_RETENTION_INTERVAL_S="0",
        AEGIS_ORCHESTRATOR_RULES_INTERVAL_S="0",
        AEGIS_ORCHESTRATOR_UNIVERSE_INTERVAL_S="0",
    )
    for name, value in REPLAY_TUNING.items():
        env.setdefault(name, value)  # the caller's own setting wins
    if src is not None:
        env.update(AEGIS_CLOCK_START_MS=str(clock_start_ms(src)), AEGIS_RING_CAPACITY=str(ring_capacity(src.frames)))
        env.update(pricing(src))
    for name in config.SERVICES:
        env[f"AEGIS_{name.upper()}_PORT"] = str(free_port())
    return env


def run(options: ReplayOptions) -> int:
    """Run the replay and write the report; return the exit code."""
    temporary = options.home is None
    home = Path(tempfile.mkdtemp(prefix="aegis-replay-")) if temporary else Path(options.home)  # type: ignore[arg-type]
    home.mkdir(parents=True, exist_ok=True)
    try:
        console.print(f"[bold]aegis replay[/bold] {', '.join(map(str, options.sources))} (home {home})")
        src = replay_source.prepare(options.sources, home / "replay", options.repeat)
        console.print(f"{src.frames} frames of {', '.join(src.symbols)} from {src.path}")
        env = replay_env(home, src.symbols, src.path, options.speed, options.seed, src)
        env.update(options.extra_env)
        env.update(pricing(src))  # not overridable: a mark price the recording lacks is never made up
        from aegis.replay.report import BooksDoNotBalance

        try:
            summary = asyncio.run(_run(options, home, env, src))
        except BooksDoNotBalance as exc:
            raise ReplayError(f"the books do not balance: {exc}") from exc
        options.report_dir.mkdir(parents=True, exist_ok=True)
        console.print(
            f"report in {options.report_dir}: {summary['frames_in']} frames, {summary['candles_closed']} candles, "
            f"{summary['signals']} signals, "
            + ", ".join(
                f"{n}: {a['trades']} trades, balance {a['end_balance']}" for n, a in summary["accounts"].items()
            )
        )
        return 0
    finally:
        if temporary and not options.keep_home:
            shutil.rmtree(home, ignore_errors=True)


async def _run(options: ReplayOptions, home: Path, env: dict[str, str], src: replay_source.Source) -> dict[str, Any]:
    pg = EmbeddedPostgres(home, int(env["AEGIS_EMBEDDED_PG_PORT"]))
    rd = EmbeddedRedis(home, int(env["AEGIS_EMBEDDED_REDIS_PORT"]))
    logs = home / "logs"
    supervisor = Supervisor(on_event=lambda name, text: console.print(f"[dim]{name}[/dim] {text}"))
    where = {name: f"127.0.0.1:{env[f'AEGIS_{name.upper()}_PORT']}" for name in config.SERVICES}
    started = time.monotonic()
    try:
        await asyncio.to_thread(pg.prepare)
        await supervisor.start(
            ProcessSpec(
                "postgres", pg.command(), dict(os.environ), pg.log_file, stop_signal=_sigint(), user=pg.run_as()
            )
        )
        await asyncio.to_thread(pg.ensure_database)
        env["DATABASE_URL"] = pg.dsn()
        await store_rules(env["DATABASE_URL"], options)
        rd.prepare()
        await supervisor.start(ProcessSpec("redis", rd.command(), dict(os.environ), rd.log_file))
        if not await asyncio.to_thread(wait_for_port, rd.port, 10):
            raise StartupError(f"embedded Redis did not start; see {rd.log_file}")
        env["REDIS_URL"] = rd.url()
        (home / "ring").mkdir(parents=True, exist_ok=True)
        fatal = asyncio.ensure_future(supervisor.wait_fatal())
        work = asyncio.ensure_future(_drive(options, env, src, supervisor, where, logs, started))
        done, _ = await asyncio.wait([fatal, work], return_when=asyncio.FIRST_COMPLETED)
        if fatal in done:
            work.cancel()
            failure: FatalChildExit = fatal.result()
            raise ReplayError(f"{failure.name} cannot run: {failure.last_line}")
        fatal.cancel()
        return work.result()
    finally:
        grace = float(env.get("AEGIS_SHUTDOWN_GRACE_S", "3")) + 2
        await supervisor.stop([list(config.SERVICES)], timeout_s=grace)
        await supervisor.stop([["redis"], ["postgres"]], timeout_s=10)


def default_rules_files() -> tuple[Path, Path]:
    from aegis.sim.config import default_exchange_info, default_leverage_brackets

    return default_exchange_info(), default_leverage_brackets()


async def store_rules(dsn: str, options: ReplayOptions) -> None:
    """Migrate the replay's database and store the exchange rules and leverage brackets risk sizes with."""
    from aegis.exchange.rules_store import store_brackets_file, store_exchange_info_file
    from aegis.storage.migrate import migrate
    from aegis.storage.postgres import Database, connect_once

    info, brackets = default_rules_files()
    info, brackets = options.exchange_info or info, options.brackets or brackets
    for what, path in (("--exchange-info", info), ("--brackets", brackets)):
        if not Path(path).is_file():
            raise ReplayError(f"{what}: no file at {path}")
    conn = await connect_once(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    db = Database(dsn)
    try:
        await store_exchange_info_file(db, None, info)
        await store_brackets_file(db, None, brackets)
    finally:
        await db.close()


def _sigint() -> Any:
    import signal

    return signal.SIGINT


async def _drive(
    options: ReplayOptions,
    env: dict[str, str],
    src: replay_source.Source,
    supervisor: Supervisor,
    where: dict[str, str],
    logs: Path,
    started: float,
) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from aegis.replay import report

    deadline = started + options.timeout_s
    cache = aioredis.from_url(env["REDIS_URL"])
    try:
        for name in config.SERVICES:
            if name != "feed":
                await supervisor.start(
                    ProcessSpec(name, [sys.executable, "-m", f"aegis.{name}"], env, logs / f"{name}.log")
                )
        await _wait(
            "every service but the feed SERVING",
            lambda: _serving({n: a for n, a in where.items() if n != "feed"}),
            deadline,
            logs,
        )

        async def hydrated() -> bool:
            brain = await _status(cache, keys.service_status("brain", "shard-0"))
            return bool(brain) and brain.get("hydration", {}).get("symbols", 0) >= len(src.symbols)

        await _wait("the brain hydrated the symbols", hydrated, deadline, logs)
        await _wait("the accounts to exist", lambda: _list_accounts(where["virtual_account"]), deadline, logs)
        await asyncio.sleep(0.5)  # the warm-up follows the hydration in the same task
        meter = CpuMeter(lambda: _pids(supervisor))
        meter.sample()
        await supervisor.start(ProcessSpec("feed", [sys.executable, "-m", "aegis.feed"], env, logs / "feed.log"))
        feed_started = time.monotonic()
        feed, brain, seen_wall_s = await _follow(options, cache, src, deadline, logs, meter)
        replay_s = time.monotonic() - feed_started
        timing = replay_timing(feed, brain, seen_wall_s)
        timing["cpu"] = (
            meter.between(timing["started_s"], timing["ended_s"]) if timing["started_s"] is not None else None
        )
    finally:
        await cache.aclose()
    summary = await report.build(
        env["DATABASE_URL"],
        feed=feed,
        brain=brain,
        source=src,
        options=options,
        replay_s=replay_s,
        timing=timing,
    )
    return summary


def _pids(supervisor: Supervisor) -> dict[str, int]:
    return {
        name: child.process.pid
        for name, child in supervisor.children.items()
        if child.process is not None and child.process.returncode is None
    }


def replay_timing(feed: dict[str, Any], brain: dict[str, Any], seen_wall_s: float) -> dict[str, Any]:
    """The timed interval of a replay (Unix seconds), from the services' own stamps.

    Start: the feed's ``replay_started_ns`` (its ring open, every service started, the file about to be read).
    End: the later of the feed's ``replay_finished_ns`` (last frame published) and the brain's ``work.last_work_ns``
    (the last time any of its work counters moved — last record read, candle or signal written, window pushed,
    signal executed — stamped within :data:`aegis.replay.activity.CHECK_S`); so the end is when the work ended,
    not when the completion check noticed it. Without the brain's stamp (a brain that does not publish it) the end
    is ``seen_wall_s``, when the check first saw the final counters (late by up to one status interval and one
    poll), and ``end_from`` says so.
    """
    started_ns, finished_ns = feed.get("replay_started_ns"), feed.get("replay_finished_ns")
    work_ns = (brain.get("work") or {}).get("last_work_ns")
    if work_ns and finished_ns:
        ended_s, end_from = max(work_ns, finished_ns) / 1e9, "stamps"
    else:
        ended_s, end_from = seen_wall_s, "completion_check"
    started_s = started_ns / 1e9 if started_ns else None
    return {
        "started_s": started_s,
        "ended_s": ended_s,
        "end_from": end_from,
        "timed_s": None if started_s is None else ended_s - started_s,
        "seen_s": seen_wall_s,
        "detection_s": round(seen_wall_s - ended_s, 3),
        "brain_after_feed_s": None if not (work_ns and finished_ns) else round((work_ns - finished_ns) / 1e9, 4),
        "brain_max_lag_records": (brain.get("work") or {}).get("max_lag_records"),
    }


async def _serving(where: dict[str, str]) -> bool:
    report = await status_cli.collect(where)
    return all(s["status"] == "SERVING" for s in report["services"].values())


async def _list_accounts(address: str) -> bool:
    """ListAccounts creates the configured accounts (with their deposits) before any frame is replayed."""
    from aegis.observability import insecure_or_tls_channel
    from aegis.v1 import virtual_account_pb2 as va_pb
    from aegis.v1 import virtual_account_pb2_grpc as va_grpc

    async with insecure_or_tls_channel(address, interceptors=[]) as channel:  # TLS as the services, if set
        response = await va_grpc.VirtualAccountServiceStub(channel).ListAccounts(va_pb.ListAccountsRequest(), timeout=5)
    return len(response.accounts) > 0


async def _status(cache: Any, key: str) -> dict[str, Any]:
    raw = await cache.get(key)
    return json.loads(raw) if raw else {}


async def _wait(what: str, predicate: Any, deadline: float, logs: Path) -> None:
    while True:
        with contextlib.suppress(Exception):
            if await predicate():
                return
        if time.monotonic() > deadline:
            raise ReplayError(f"timed out waiting for {what}; see the logs in {logs} (--keep-home keeps them)")
        await asyncio.sleep(0.2)


def _pending(brain: dict[str, Any]) -> dict[str, int]:
    execution = brain.get("execution", {})
    return {
        "signals_queued": int(execution.get("queued", 0)),
        "orders_queued": int(execution.get("orders_queued", 0)),
        "prices_pending": int(brain.get("prices", {}).get("pending_symbols", 0)),
        "candle_backlog": int(brain.get("persistence", {}).get("backlog", 0)),
        "signal_backlog": int(brain.get("signals", {}).get("persistence", {}).get("backlog", 0)),
    }


def _fingerprint(brain: dict[str, Any]) -> str:
    parts = {k: brain.get(k) for k in ("execution", "prices", "signals", "persistence", "candles_closed")}
    parts["cursor"] = brain.get("ring", {}).get("cursor")
    return json.dumps(parts, sort_keys=True, default=str)


async def _follow(
    options: ReplayOptions,
    cache: Any,
    src: replay_source.Source,
    deadline: float,
    logs: Path,
    meter: CpuMeter | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Show progress until the feed published the file, the brain read the ring to its end and all settled.

    Returns the last statuses and the wall-clock time (Unix s) when the final counters were first seen — the end
    of the replay, without the ``SETTLE_S`` spent making sure nothing moves any more.
    """
    feed_key, brain_key = keys.service_status("feed", "0"), keys.service_status("brain", "shard-0")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not options.progress,
    )
    stage = "the feed to publish the whole file"
    with progress:
        feed_task = progress.add_task("feed  frames", total=src.frames)
        brain_task = progress.add_task("brain records", total=None)
        feed: dict[str, Any] = {}
        brain: dict[str, Any] = {}
        settled_since: float | None = None
        settled_wall_s = 0.0
        last_print = ""
        while True:
            if time.monotonic() > deadline:
                (logs / "replay-last-status.json").write_text(json.dumps({"feed": feed, "brain": brain}, indent=2))
                raise ReplayError(
                    f"replay did not complete within {options.timeout_s:.0f} s: still waiting for {stage} "
                    f"(feed {feed.get('frames_in', 0)}/{src.frames} frames; brain {json.dumps(_pending(brain))}); "
                    f"see {logs}"
                )
            if meter is not None:
                meter.sample()
            feed = await _status(cache, feed_key) or feed
            brain = await _status(cache, brain_key) or brain
            progress.update(feed_task, completed=feed.get("frames_in", 0))
            ring = brain.get("ring", {})
            if "published" in ring:
                progress.update(brain_task, total=ring["published"], completed=ring["published"] - ring["lag_records"])
            if feed.get("frames_in", 0) < src.frames:
                stage = "the feed to publish the whole file"
            elif ring.get("published") != feed.get("published") or ring.get("lag_records", 1) != 0:
                stage = "the brain to consume the ring to its end"
            elif any(_pending(brain).values()):
                stage = "pending executions, price updates and writes to settle"
                settled_since = None
            else:
                stage = "the counters to stay still"
                fingerprint = _fingerprint(brain)
                if fingerprint != last_print:
                    last_print, settled_since, settled_wall_s = fingerprint, time.monotonic(), time.time()
                elif settled_since is not None and time.monotonic() - settled_since >= SETTLE_S:
                    return feed, brain, settled_wall_s
            await asyncio.sleep(POLL_S)


def default_report_dir() -> Path:
    return Path(f"replay-report-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
