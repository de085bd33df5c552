"""The `aegis` command line: up, status, migrate, config, rules, bench, replay, embedded."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
import sys
from collections.abc import Sequence

import aegis
from aegis import config
from aegis.errors import AegisError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aegis", description="AEGIS trading engine")
    parser.add_argument("--config", help="TOML configuration file (also AEGIS_CONFIG)")
    parser.add_argument("--version", action="version", version=f"aegis {aegis.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("up", help="run every service locally (embedded PostgreSQL/Redis unless URLs are set)")

    status = sub.add_parser("status", help="health, address and version of every service")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")

    migrate = sub.add_parser("migrate", help="apply database migrations and repair the schema")
    migrate.add_argument("--no-repair", action="store_true", help="only apply migrations")

    conf = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    conf.add_argument("--markdown", action="store_true", help="print the table of every setting (for docs)")

    rules = sub.add_parser("rules", help="store exchange rules in PostgreSQL and announce them (risk reloads)")
    rules.add_argument(
        "action",
        choices=("load", "load-brackets", "refresh"),
        help="load FILE: exchangeInfo JSON; load-brackets FILE: leverage tiers JSON; refresh: fetch exchangeInfo",
    )
    rules.add_argument("file", nargs="?", help="the JSON file (load, load-brackets)")

    bench = sub.add_parser("bench", help="run a benchmark beside its baseline and print the ratios", add_help=False)
    bench.add_argument("bench", choices=available_benchmarks(), help="which benchmark")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of that benchmark (--help for them)")

    replay = sub.add_parser("replay", help="run every service over recorded frames, then write a report")
    replay.add_argument("source", nargs="+", help="recording(s): hftbacktest .gz, JSONL or cryptofeed (merged by time)")
    replay.add_argument("--speed", default="max", help="max (default) or xN: N times faster than recorded")
    replay.add_argument("--report", help="report directory (default ./replay-report-<time>)")
    replay.add_argument("--home", help="AEGIS_HOME to use (default: a fresh temporary one, removed afterwards)")
    replay.add_argument("--keep-home", action="store_true", help="keep the temporary home (logs, databases)")
    replay.add_argument("--timeout", type=float, default=600.0, help="seconds the whole replay may take")
    replay.add_argument("--repeat", type=int, default=1, help="replay the recordings N times, time-shifted")
    replay.add_argument("--seed", type=int, default=0, help="PYTHONHASHSEED of every service")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument("--exchange-info", help="exchangeInfo JSON risk uses (default: the shared 2025-11 fixture)")
    replay.add_argument("--brackets", help="leverage tiers JSON risk uses (default: the shared freqtrade tiers)")

    embedded = sub.add_parser("embedded", help="start/stop detached embedded PostgreSQL and Redis (tests, dev)")
    embedded.add_argument("action", choices=("start", "stop"))
    embedded.add_argument("--pg-port", type=int, default=5432)
    embedded.add_argument("--redis-port", type=int, default=6379)
    embedded.add_argument("--no-postgres", action="store_true")
    embedded.add_argument("--no-redis", action="store_true")
    return parser


def available_benchmarks() -> list[str]:
    import aegis.bench

    return sorted(m.name for m in pkgutil.iter_modules(aegis.bench.__path__) if not m.name.startswith("_"))


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = config.load(config_file=args.config)
        if args.command == "up":
            settings.check_live_mode()
            from aegis.cli import up

            sys.exit(up.run(settings))
        if args.command == "status":
            from aegis.cli import status

            sys.exit(status.run(settings, args.json))
        if args.command == "migrate":
            sys.exit(asyncio.run(_migrate(settings, repair=not args.no_repair)))
        if args.command == "config":
            sys.exit(_show_config(settings, args.markdown))
        if args.command == "rules":
            sys.exit(asyncio.run(_rules(settings, args.action, args.file)))
        if args.command == "bench":
            sys.exit(_bench(args))
        if args.command == "embedded":
            sys.exit(_embedded(settings, args))
        if args.command == "replay":
            sys.exit(_replay(args))
    except AegisError as exc:
        print(f"aegis {args.command}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


async def _migrate(settings: config.Settings, repair: bool) -> int:
    from aegis.storage.migrate import migrate
    from aegis.storage.postgres import connect_once

    conn = await connect_once(settings.dsn())
    try:
        report = await migrate(conn, repair_schema=repair)
    finally:
        await conn.close()
    for name in report.applied:
        print(f"applied   {name}")
    for line in report.repaired:
        print(f"repaired  {line}")
    for line in report.left_alone:
        print(f"attention {line}")
    print(f"schema at version {report.schema_version}" + ("" if report.changed else " (nothing to do)"))
    return 0


async def _rules(settings: config.Settings, action: str, file: str | None) -> int:
    from aegis.exchange import rules_store
    from aegis.storage.cache import Cache
    from aegis.storage.postgres import Database

    if action != "refresh" and not file:
        print(f"aegis rules {action}: give the JSON file to store", file=sys.stderr)
        return 2
    db, cache = Database(settings.dsn()), Cache(settings.redis(), timeout_s=settings.grpc.dependency_timeout_s)
    try:
        if action == "refresh":
            from aegis.exchange.rest import BinanceRest

            async with BinanceRest(settings.feed.rest_url) as rest:
                report = await rules_store.refresh_rules(rest, db, cache)
        elif action == "load":
            report = await rules_store.store_exchange_info_file(db, cache, file)
        else:
            report = await rules_store.store_brackets_file(db, cache, file)
    finally:
        await db.close()
        await cache.close()
    what = f"{report.symbols} symbols ({report.trading} trading)"
    if report.bracket_symbols is not None:
        what = f"leverage brackets of {report.bracket_symbols} symbols"
    heard = "notified" if report.notified else "NOT notified (Redis down): they reload within AEGIS_RISK_RULES_RELOAD_S"
    print(f"stored {what}; risk services {heard}")
    return 0


def _show_config(settings: config.Settings, markdown: bool) -> int:
    if markdown:
        print(config.markdown_table())
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="AEGIS configuration (environment > config file > default)")
    for column in ("variable", "value", "meaning"):
        table.add_column(column)
    for row in config.describe():
        section, _, name = row["setting"].rpartition(".")
        value = getattr(getattr(settings, section) if section else settings, name)
        if isinstance(value, tuple):
            value = ",".join(str(item) for item in value)
        table.add_row(row["variable"], str(value), row["doc"])
    Console().print(table)
    print(f"PostgreSQL: {config.redact_url(settings.dsn())}\nRedis: {config.redact_url(settings.redis())}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    # Each benchmark module is imported only when it runs: they pull in numpy, numba and baselines.
    module = importlib.import_module(f"aegis.bench.{args.bench}")
    parser = argparse.ArgumentParser(prog=f"aegis bench {args.bench}", description=module.__doc__)
    parser.add_argument("--json", action="store_true", help="print the result JSON as the last line")
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    options = parser.parse_args(args.bench_args)
    result = module.run(options)
    if options.json:
        print(json.dumps(result))
    else:
        from aegis.bench import render

        render(result)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aegis.replay import runner

    options = runner.ReplayOptions(
        sources=[Path(s) for s in args.source],
        report_dir=Path(args.report) if args.report else runner.default_report_dir(),
        speed=args.speed,
        home=Path(args.home) if args.home else None,
        timeout_s=args.timeout,
        repeat=args.repeat,
        seed=args.seed,
        keep_home=args.keep_home,
        progress=not args.no_progress,
        exchange_info=Path(args.exchange_info) if args.exchange_info else None,
        brackets=Path(args.brackets) if args.brackets else None,
    )
    return runner.run(options)


def _embedded(settings: config.Settings, args: argparse.Namespace) -> int:
    from aegis.embedded import EmbeddedPostgres, EmbeddedRedis

    pg = None if args.no_postgres else EmbeddedPostgres(settings.home, args.pg_port)
    rd = None if args.no_redis else EmbeddedRedis(settings.home, args.redis_port)
    if args.action == "start":
        if pg:
            pg.start_detached()
            print(f"DATABASE_URL={pg.dsn()}")
        if rd:
            rd.start_detached()
            print(f"REDIS_URL={rd.url()}")
    else:
        if pg:
            pg.stop_detached()
        if rd:
            rd.stop_detached()
    return 0
