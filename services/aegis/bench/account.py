"""Virtual accounts on PostgreSQL: persisted open+close round trips per second and TP/SL checks per second,
each beside the same book doing one transaction per operation.

Needs PostgreSQL: a scratch database is created through an admin URL (``--admin-url``, else
``AEGIS_TEST_ADMIN_DATABASE_URL``, else ``DATABASE_URL``, else postgres@127.0.0.1:5432), migrated, and dropped at
the end. The book is driven in-process (no gRPC), as the service's servicer drives it:

* round trips, batched: opens submitted concurrently through the service's :class:`Batcher` (one transaction
  per gathered batch), then closed by price updates that reach their take-profit (one ApplyPriceUpdates
  transaction closes a wave), and, second figure, closed by ClosePosition requests through the batcher;
* round trips, baseline: the same book, one open then one close per transaction, one after another;
* TP/SL checks: open positions on many symbols revalued by price updates that close none of them; a check is
  one open position looked at for one update. Batched = one transaction per ApplyPriceUpdates call carrying an
  update of every symbol; baseline = one transaction per price update.

The tables are ANALYZEd before each timed phase, as autovacuum would in a running system. Every round trip is
fully persisted (position row, trade row with the features, ledger entries, account row) and committed
(``synchronous_commit`` as the server has it). Events are not published (no stream listens: the service does not
build them then either). The event loop is uvloop's when installed, and the garbage collector is set as the service
sets it (``aegis.virtual_account.service.tune_gc``).

Besides the rates, the report gives the CPU time per round trip of this process and of the PostgreSQL backends
(read from ``/proc``, when PostgreSQL runs on this host): with 2 cores shared by both, their sum bounds the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
from decimal import Decimal
from typing import Any

from aegis import testing
from aegis.bench import report
from aegis.risk.sizing import PositionSide
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.virtual_account.batcher import Batcher
from aegis.virtual_account.book import AccountBook, CloseRequest, OpenRequest
from aegis.virtual_account.domain import Tick
from aegis.virtual_account.service import tune_gc
from aegis.virtual_account.settings import AccountSettings

TARGET_ROUND_TRIPS_PER_S = 10_000
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FEATURES = tuple(float(i) / 7 for i in range(32))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin-url", default="", help="PostgreSQL URL allowed to CREATE/DROP DATABASE")
    parser.add_argument("--round-trips", type=int, default=20_000, help="batched round trips (default 20,000)")
    parser.add_argument("--wave", type=int, default=5_000, help="round trips opened before each closing update")
    parser.add_argument("--baseline-round-trips", type=int, default=1_000, help="one-tx-per-op round trips")
    parser.add_argument("--positions", type=int, default=20_000, help="open positions for the TP/SL checks")
    parser.add_argument("--symbols", type=int, default=100, help="symbols the positions spread over")
    parser.add_argument("--updates", type=int, default=20, help="rounds of price updates (every symbol each)")
    parser.add_argument("--batch-delay-ms", type=float, default=2.0, help="batcher max delay (default 2 ms)")
    parser.add_argument("--batch-size", type=int, default=1000, help="batcher max batch (default 1000)")
    parser.add_argument("--quick", action="store_true", help="a tenth of every size")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="after the timed phases, one more untimed TP-close pass reporting each statement's wall time per round "
        "trip and the tables' row counters (inserts, updates, HOT updates)",
    )


def _admin_url(options: argparse.Namespace) -> str:
    return (
        options.admin_url
        or os.environ.get("AEGIS_TEST_ADMIN_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or testing.DEFAULT_ADMIN_DSN
    )


def run(options: argparse.Namespace) -> dict[str, Any]:
    if options.quick:
        for name in ("round_trips", "wave", "baseline_round_trips", "positions", "updates"):
            setattr(options, name, max(1, getattr(options, name) // 10))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # as aegis.server: asyncio's own loop where uvloop is not built
        runner = asyncio.Runner()
    with runner:
        return runner.run(_run(options))


class _Cpu:
    """CPU seconds of this process and of the PostgreSQL backends serving the bench's database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pids: list[int] = []

    async def sample(self) -> tuple[float, float | None]:
        async with self._db.connection() as conn:
            self._pids = [
                r["pid"]
                for r in await conn.fetch(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND backend_type = 'client backend'"
                )
            ]
        return time.process_time(), self._backends()

    def _backends(self) -> float | None:
        total = 0
        for pid in self._pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # PostgreSQL on another host (or gone): no figure rather than a wrong one
                return None
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")


def _per_op(before: tuple[float, float | None], after: tuple[float, float | None], n: int) -> dict[str, Any]:
    own = (after[0] - before[0]) / n * 1e6
    pg = None if before[1] is None or after[1] is None else (after[1] - before[1]) / n * 1e6
    return {"bench_process_us": round(own, 1), "postgres_backends_us": None if pg is None else round(pg, 1)}


async def _statement_profile(book: AccountBook, batcher: Batcher, prices: _Prices, n: int, wave: int,
                             symbols: list[str], db: Database) -> dict[str, Any]:  # fmt: skip
    """Each statement of a TP-close pass: PostgreSQL CPU and wall time per round trip (untimed: the wrapper costs).

    The CPU is the serving backend's, read from ``/proc`` when the statement is sent and when its answer is read: a
    backend runs one statement at a time, so the difference is that statement's work (clock ticks: exact in sum,
    not per call). The wall time runs from sending to reading the answer: asyncpg encoding the arguments and
    decoding the rows, the loopback and PostgreSQL's work, and, for the pipelined writes (the book sends a chunk,
    then builds the next in Python before it reads the answer), the Python work overlapped with it. Counters are
    the tables' ``pg_stat_user_tables`` rows after the pass (the whole run's).
    """
    import asyncpg

    spent: dict[str, list[float]] = {}
    originals = {name: getattr(asyncpg.Connection, name) for name in ("execute", "fetch", "fetchrow")}
    tick = 1 / os.sysconf("SC_CLK_TCK")

    def backend_cpu(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # PostgreSQL on another host: no CPU figure
            return float("nan")
        return (int(fields[11]) + int(fields[12])) * tick

    def timed(name: str) -> Any:
        original = originals[name]

        async def call(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
            pid = self.get_server_pid()
            cpu = backend_cpu(pid)
            started = time.perf_counter()
            try:
                return await original(self, query, *args, **kwargs)
            finally:
                entry = spent.setdefault(" ".join(query.split())[:80], [0, 0.0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - started
                entry[2] += backend_cpu(pid) - cpu

        return call

    for name in originals:
        setattr(asyncpg.Connection, name, timed(name))
    try:
        await _round_trips_by_price(book, batcher, prices, n, wave, symbols, "bench-stmt")
    finally:
        for name, original in originals.items():
            setattr(asyncpg.Connection, name, original)
    async with db.connection() as conn:
        await asyncio.sleep(0.6)  # the statistics collector's flush interval (PostgreSQL 15 flushes at most every 1 s)
        tables = {
            r["relname"]: {"inserted": r["n_tup_ins"], "updated": r["n_tup_upd"], "hot_updated": r["n_tup_hot_upd"]}
            for r in await conn.fetch(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                "WHERE relname IN ('positions', 'trades', 'balance_ledger', 'accounts') ORDER BY relname"
            )
        }
    ranked = sorted(spent.items(), key=lambda item: -item[1][2] if item[1][2] == item[1][2] else -item[1][1])
    per_rt = 1e6 / n

    def cpu_us(total: float) -> float | None:
        return None if total != total else round(total * per_rt, 1)  # NaN: no /proc

    return {
        "round_trips": n,
        "statements_per_round_trip": {
            q: {"calls": calls, "postgres_cpu_us": cpu_us(cpu), "wall_us": round(wall * per_rt, 1)}
            for q, (calls, wall, cpu) in ranked
            if wall / n > 5e-7
        },
        "postgres_cpu_us_per_round_trip_total": cpu_us(sum(cpu for _, _, cpu in spent.values())),
        "table_counters_whole_run": tables,
    }


class _Prices:
    """Event times that only move forward, and the price updates the bench sends."""

    def __init__(self) -> None:
        self.seconds = 0

    def tick(self, symbol: str, last: str, high: str | None = None, low: str | None = None) -> Tick:
        self.seconds += 1
        return Tick(symbol, Decimal(last), Decimal(last), Decimal(high or last), Decimal(low or last),
                    T0 + dt.timedelta(seconds=self.seconds))  # fmt: skip


def _open(i: int, account: str, symbol: str, tag: str) -> OpenRequest:
    return OpenRequest(
        idempotency_key=f"{tag}-{i}",
        account=account,
        symbol=symbol,
        side=PositionSide.LONG if i % 2 == 0 else PositionSide.SHORT,
        quantity=Decimal("0.01"),
        leverage=10,
        entry_price=Decimal("100"),
        stop_loss_price=Decimal("90") if i % 2 == 0 else Decimal("110"),
        take_profit_price=Decimal("101") if i % 2 == 0 else Decimal("99"),
        signal_id=None,
        confidence=0.6,
        predicted_return_pct=0.8,
        model_version="bench",
        feature_schema_version=1,
        features=FEATURES,
    )


async def _round_trips_by_price(book: AccountBook, batcher: Batcher, prices: _Prices, n: int, wave: int,
                                symbols: list[str], account: str) -> float:  # fmt: skip
    """Open ``n`` positions through the batcher, closing each wave by take-profit updates; return seconds."""
    started = time.perf_counter()
    closed = 0
    for start in range(0, n, wave):
        count = min(wave, n - start)
        requests = [_open(start + i, account, symbols[(start + i) % len(symbols)], "p") for i in range(count)]
        await asyncio.gather(*(batcher.submit(r) for r in requests))
        # Longs take profit at 101, shorts at 99 (triggered by the mark price): two updates per symbol.
        ups = [prices.tick(s, "101.5") for s in symbols] + [prices.tick(s, "98.5") for s in symbols]
        result = await book.apply_price_updates(ups)
        await book.apply_price_updates([prices.tick(s, "100") for s in symbols])
        closed += len(result.closed_trades)
    seconds = time.perf_counter() - started
    if closed != n:
        raise RuntimeError(f"closed {closed} of {n} positions")
    return seconds


async def _round_trips_by_request(opens: Batcher, closes: Batcher, n: int, wave: int, symbols: list[str],
                                  account: str) -> float:  # fmt: skip
    started = time.perf_counter()
    for start in range(0, n, wave):
        count = min(wave, n - start)
        requests = [_open(start + i, account, symbols[(start + i) % len(symbols)], "r") for i in range(count)]
        opened = await asyncio.gather(*(opens.submit(r) for r in requests))
        exit_price = Decimal("100.5")
        await asyncio.gather(
            *(
                closes.submit(CloseRequest(f"rc-{start + i}", account, str(o.position.position_id), price=exit_price))
                for i, o in enumerate(opened)
            )
        )
    return time.perf_counter() - started


async def _round_trips_one_tx_each(book: AccountBook, n: int, symbols: list[str], account: str) -> float:
    started = time.perf_counter()
    for i in range(n):
        (opened,) = await book.open_positions([_open(i, account, symbols[i % len(symbols)], "b")])
        if isinstance(opened, Exception):
            raise opened
        (closed,) = await book.close_positions(
            [CloseRequest(f"bc-{i}", account, str(opened.position.position_id), price=Decimal("100.5"))]
        )
        if isinstance(closed, Exception):
            raise closed
    return time.perf_counter() - started


async def _checks(
    book: AccountBook, prices: _Prices, symbols: list[str], rounds: int, per_update: bool
) -> tuple[int, float]:
    """Apply ``rounds`` updates of every symbol that close nothing; return (checks, seconds)."""
    checks = 0
    started = time.perf_counter()
    for r in range(rounds):
        last = "100.2" if r % 2 else "99.8"
        ticks = [prices.tick(s, last, "100.5", "99.5") for s in symbols]
        if per_update:
            for t in ticks:
                result = await book.apply_price_updates([t])
                checks += result.positions_updated
                assert not result.closed_trades
        else:
            result = await book.apply_price_updates(ticks)
            checks += result.positions_updated
            assert not result.closed_trades
    return checks, time.perf_counter() - started


async def _run(options: argparse.Namespace) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    admin = _admin_url(options)
    dsn = await testing.create_database(admin, "aegis_bench_account")
    try:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        db = Database(dsn, max_size=4)
        settings = AccountSettings(starting_balance=Decimal("1000000000"))
        accounts = {"bench-rt": "learning", "bench-rq": "learning", "bench-base": "learning",
                    "bench-checks": "learning", "bench-stmt": "learning"}  # fmt: skip
        book = AccountBook(db, settings, accounts=accounts)
        tune_gc()  # as the service does at start
        await book.ensure_accounts()
        prices = _Prices()
        symbols = [f"B{i:03d}USDT" for i in range(options.symbols)]
        await book.apply_price_updates([prices.tick(s, "100") for s in symbols])
        delay = options.batch_delay_ms / 1000
        opens = Batcher(book.open_positions, max_delay_s=delay, max_size=options.batch_size)
        closes = Batcher(book.close_positions, max_delay_s=delay, max_size=options.batch_size)

        # Warm-up (connections, statement caches), not timed.
        await _round_trips_by_price(book, opens, prices, 200, 200, symbols, "bench-base")
        await _round_trips_one_tx_each(book, 20, symbols, "bench-base")

        async def analyze() -> None:
            # What autovacuum does in a running system; without it the planner keeps the plans it made when the
            # tables were empty (sequential scans of positions), which would slow the one-row baseline the most.
            async with db.connection() as conn:
                await conn.execute("ANALYZE positions; ANALYZE trades; ANALYZE balance_ledger; ANALYZE accounts")

        n, base_n = options.round_trips, options.baseline_round_trips
        wave = max(1, min(options.wave, n))
        cpu = _Cpu(db)
        await analyze()
        before = await cpu.sample()
        by_price_s = await _round_trips_by_price(book, opens, prices, n, wave, symbols, "bench-rt")
        cpu_by_price = _per_op(before, await cpu.sample(), n)
        await analyze()
        before = await cpu.sample()
        by_request_s = await _round_trips_by_request(opens, closes, n, wave, symbols, "bench-rq")
        cpu_by_request = _per_op(before, await cpu.sample(), n)
        await analyze()
        before = await cpu.sample()
        baseline_s = await _round_trips_one_tx_each(book, base_n, symbols, "bench-base")
        cpu_baseline = _per_op(before, await cpu.sample(), base_n)
        batches = opens.batches
        statements = None  # before the TP/SL-check positions exist: its closing updates would reach them
        if options.statements:
            statements = await _statement_profile(book, opens, prices, n // 2, wave, symbols, db)

        # TP/SL checks: positions that no update of the bench reaches (stops at 90/110, targets at 101/99).
        k = options.positions
        requests = [_open(i, "bench-checks", symbols[i % len(symbols)], "c") for i in range(k)]
        await asyncio.gather(*(opens.submit(r) for r in requests))
        await analyze()
        checks, checks_s = await _checks(book, prices, symbols, options.updates, per_update=False)
        base_rounds = max(1, options.updates // 10)
        base_checks, base_checks_s = await _checks(book, prices, symbols, base_rounds, per_update=True)

        identity = await book.ledger_identity("bench-rt")
        await opens.close()
        await closes.close()
        await db.close()
    finally:
        await testing.drop_database(admin, dsn)

    rt_rate = n / by_price_s
    rq_rate = n / by_request_s
    base_rate = base_n / baseline_s
    check_rate = checks / checks_s
    base_check_rate = base_checks / base_checks_s
    reconciles = (
        identity["wallet_balance"]
        == (identity["starting_balance"] + identity["realised_pnl"] - identity["fees"] + identity["funding"])
        == identity["ledger"]
    ) and (identity["ledger_realised"], identity["ledger_fees"], identity["ledger_funding"]) == (
        identity["realised_pnl"],
        identity["fees"],
        identity["funding"],
    )
    results = [
        {"name": "round_trips_batched_tp_close", "value": round(rt_rate, 1), "unit": "round trips/s"},
        {"name": "round_trips_batched_close_requests", "value": round(rq_rate, 1), "unit": "round trips/s"},
        {"name": "round_trips_one_tx_per_op", "value": round(base_rate, 1), "unit": "round trips/s"},
        {"name": "tpsl_checks_batched", "value": round(check_rate, 1), "unit": "checks/s"},
        {"name": "tpsl_checks_one_tx_per_op", "value": round(base_check_rate, 1), "unit": "checks/s"},
    ]
    setup: dict[str, Any] = {}
    if statements is not None:
        setup["statements_tp_close_untimed"] = statements
    return report(
        "account",
        results,
        {
            "round_trips_vs_one_tx_per_op": round(rt_rate / base_rate, 2),
            "tpsl_checks_vs_one_tx_per_op": round(check_rate / base_check_rate, 2),
        },
        target={
            "round_trips_per_s": TARGET_ROUND_TRIPS_PER_S,
            "met_by_tp_close": rt_rate >= TARGET_ROUND_TRIPS_PER_S,
            "met_by_close_requests": rq_rate >= TARGET_ROUND_TRIPS_PER_S,
        },
        setup={
            "round_trips": n,
            "wave": wave,
            "baseline_round_trips": base_n,
            "open_batches": batches,
            "positions_checked_per_update_round": k,
            "symbols": options.symbols,
            "update_rounds": options.updates,
            "baseline_update_rounds": base_rounds,
            "batch_delay_ms": options.batch_delay_ms,
            "batch_size": options.batch_size,
            "cpus": os.cpu_count(),
            "load_average_1m_at_start_and_end": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
            "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            "balances_reconcile": reconciles,
            "cpu_per_round_trip": {
                "batched_tp_close": cpu_by_price,
                "batched_close_requests": cpu_by_request,
                "one_tx_per_op": cpu_baseline,
            },
            **setup,
        },
    )
