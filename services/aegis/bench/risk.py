"""Risk: sizing decisions per second in process and over gRPC, beside a naive float implementation.

Every side decides the same signals: long and short entries on six USDT perpetuals at 2025-11 prices, on an
account of 10,000 USDT, FIXED_RISK sizing (1 % of equity at the stop, fees included), with the real 2025-11
exchangeInfo and the real leverage tiers of 349 markets. These files live in the shared data directory
(``$AEGIS_SHARED_DATA`` or ``<repo>/../shared/data``): the benchmark needs it, or ``--exchange-info`` and
``--brackets``.

* ``in_process`` — ``RiskEngine.evaluate`` on prepared inputs: every gate, exact ``Decimal`` sizing, safe-direction
  rounding of stop, target and quantity to the tick and step grids, the leverage guard solved tier by tier, the
  open-notional and margin cuts, and every Binance filter checked on the final order.
* ``in_process_with_translation`` — the same plus what the servicer adds besides I/O: ``aegis.v1`` request →
  dataclasses → decision → ``aegis.v1.RiskDecision``.
* ``naive_float`` — the baseline: the same FIXED_RISK formula with floats, a leverage cap, and nothing else (no
  filters, no rounding, no brackets, no gates). Its orders would often be refused by Binance; it shows what exactness
  and completeness cost. ``in_process_vs_naive_float`` is below 1: that is the price, reported as measured.
* ``grpc`` — EvaluateSignal against a real ``python -m aegis.risk`` process on a free loopback port, on a throw-away
  PostgreSQL database (migrated, rules stored as the orchestrator stores them), one call at a time from a blocking
  client: serialisation, HTTP/2, the servicer, the protections-history query in PostgreSQL, the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from aegis.bench import report
from aegis.sim.config import default_exchange_info, default_leverage_brackets

PRICES = {
    "BTCUSDT": "87000",
    "ETHUSDT": "2900",
    "SOLUSDT": "135",
    "BNBUSDT": "850",
    "XRPUSDT": "2.1",
    "DOGEUSDT": "0.15",
}
WALLET = "10000"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decisions", type=int, default=20_000, help="in-process decisions per side (default 20000)")
    parser.add_argument("--grpc-calls", type=int, default=2_000, help="EvaluateSignal calls over gRPC (default 2000)")
    parser.add_argument("--exchange-info", type=Path, default=default_exchange_info(), help="exchangeInfo JSON")
    parser.add_argument("--brackets", type=Path, default=default_leverage_brackets(), help="leverage tiers JSON")
    parser.add_argument(
        "--admin-database-url",
        default=os.environ.get("AEGIS_TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL where a throw-away database is created for the gRPC side",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("AEGIS_TEST_REDIS_URL", "redis://127.0.0.1:6379"), help="Redis URL"
    )
    parser.add_argument("--no-grpc", action="store_true", help="only the in-process sides")


def _percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[index] / 1000.0


def _requests(now: dt.datetime) -> list[Any]:
    from google.protobuf import timestamp_pb2

    from aegis.v1 import common_pb2 as common_pb
    from aegis.v1 import risk_pb2 as risk_pb

    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(now)
    out = []
    for i, (symbol, price) in enumerate(PRICES.items()):
        for side in (common_pb.POSITION_SIDE_LONG, common_pb.POSITION_SIDE_SHORT):
            signal = common_pb.Signal(
                signal_id=f"bench-{i}-{side}",
                symbol=symbol,
                side=side,
                entry_price=price,
                sl_pct=1.0 + 0.25 * i,
                tp_pct=2.0 + 0.5 * i,
                confidence=0.7,
                predicted_return_pct=0.8,
                created_time=stamp,
            )
            out.append(
                risk_pb.EvaluateSignalRequest(
                    signal=signal,
                    account="paper",
                    mark_price=price,
                    mark_price_time=stamp,
                    account_state=risk_pb.AccountState(wallet_balance=WALLET),
                )
            )
    return out


def _naive_float(equity: float, risk_pct: float, entry: float, sl_pct: float, long: bool, fee: float, lev: int):
    stop = entry * (1 - sl_pct / 100) if long else entry * (1 + sl_pct / 100)
    unit_loss = abs(entry - stop) + fee * (entry + stop)
    qty = equity * risk_pct / 100 / unit_loss
    qty = min(qty, equity * lev / entry)
    return qty, stop, qty * entry / lev


def _in_process(options: argparse.Namespace, now: dt.datetime) -> tuple[list[dict[str, Any]], dict[str, float]]:
    from aegis import config
    from aegis.exchange.rules import attach_brackets, load_exchange_info, load_leverage_brackets
    from aegis.risk import convert
    from aegis.risk.accounts import AccountSnapshot, ProtectionsHistory, risk_configs
    from aegis.risk.desk import account_state
    from aegis.risk.engine import RiskEngine

    rules = attach_brackets(load_exchange_info(options.exchange_info), load_leverage_brackets(options.brackets))
    configs = risk_configs(config.load({}).risk)
    engine = RiskEngine(rules, configs)
    paper = engine.config_for("paper")
    state = account_state("paper", AccountSnapshot(Decimal(WALLET), authoritative=False), ProtectionsHistory(False))
    requests = _requests(now)
    inputs = [(convert.signal_from_pb(r), convert.market_from_pb(r, now)) for r in requests]
    decisions = [engine.evaluate(s, state, m, now) for s, m in inputs]
    approved = sum(d.approved for d in decisions)
    n = max(1, options.decisions)

    def timed(step) -> tuple[float, list[int]]:  # type: ignore[no-untyped-def]
        lat: list[int] = []
        clock = time.perf_counter_ns
        k = len(inputs)
        t0 = clock()
        for i in range(n):
            a = clock()
            step(i % k)
            lat.append(clock() - a)
        total = (clock() - t0) / 1e9
        lat.sort()
        return n / total, lat

    def engine_step(i: int) -> None:
        s, m = inputs[i]
        engine.evaluate(s, state, m, now)

    def translated_step(i: int) -> None:
        r = requests[i]
        decision = engine.evaluate(convert.signal_from_pb(r), state, convert.market_from_pb(r, now), now)
        convert.decision_to_pb(decision).SerializeToString()

    floats = [
        (
            float(WALLET),
            float(paper.risk_per_trade_pct),
            float(r.signal.entry_price),
            r.signal.sl_pct,
            r.signal.side == 1,
            float(paper.fee_rate),
            paper.max_leverage,
        )
        for r in requests
    ]

    def naive_step(i: int) -> None:
        _naive_float(*floats[i])

    rate, lat = timed(engine_step)
    rate_t, lat_t = timed(translated_step)
    rate_f, lat_f = timed(naive_step)
    results = [
        {"name": "in_process_decisions_per_s", "value": rate, "unit": "decisions/s"},
        {"name": "in_process_p50_us", "value": _percentile(lat, 0.5), "unit": "µs"},
        {"name": "in_process_p99_us", "value": _percentile(lat, 0.99), "unit": "µs"},
        {"name": "in_process_with_translation_decisions_per_s", "value": rate_t, "unit": "decisions/s"},
        {"name": "in_process_with_translation_p99_us", "value": _percentile(lat_t, 0.99), "unit": "µs"},
        {"name": "naive_float_decisions_per_s", "value": rate_f, "unit": "decisions/s"},
        {"name": "naive_float_p99_us", "value": _percentile(lat_f, 0.99), "unit": "µs"},
        {"name": "approved_of_signal_mix", "value": f"{approved}/{len(decisions)}", "unit": "decisions"},
    ]
    return results, {"in_process": rate, "naive_float": rate_f}


async def _prepare_database(options: argparse.Namespace) -> str:
    from aegis import testing
    from aegis.risk.testing import store_rules_files
    from aegis.storage.migrate import migrate
    from aegis.storage.postgres import Database, connect_once

    dsn = await testing.create_database(options.admin_database_url, "aegis_bench_risk")
    conn = await connect_once(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    db = Database(dsn)
    try:
        await store_rules_files(db, None, options.exchange_info, options.brackets)
    finally:
        await db.close()
    return dsn


def _grpc(options: argparse.Namespace) -> tuple[list[dict[str, Any]], float]:
    import grpc

    from aegis import testing
    from aegis.v1 import risk_pb2 as risk_pb
    from aegis.v1 import risk_pb2_grpc as risk_grpc

    dsn = asyncio.run(_prepare_database(options))
    try:
        with tempfile.TemporaryDirectory(prefix="aegis-bench-risk-") as tmp:
            env = {
                "DATABASE_URL": dsn,
                "REDIS_URL": options.redis_url,
                "AEGIS_HOME": tmp,
                "AEGIS_RISK_FETCH_RULES": "false",
                "AEGIS_LOG_LEVEL": "warning",
            }
            with testing.service("risk", env, Path(tmp)) as proc, grpc.insecure_channel(proc.address) as channel:
                if not proc.wait_status("SERVING", 30):
                    raise RuntimeError(f"the risk service did not start:\n{proc.log_text()}")
                stub = risk_grpc.RiskServiceStub(channel)
                deadline = time.monotonic() + 30
                while True:
                    try:
                        stub.GetSymbolRules(risk_pb.GetSymbolRulesRequest(symbol="BTCUSDT"), timeout=2)
                        break
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
                n = max(1, options.grpc_calls)
                lat: list[int] = []
                approved = 0
                clock = time.perf_counter_ns
                requests = _requests(dt.datetime.now(dt.UTC))
                for r in requests * 20:  # warm-up (connections, caches)
                    stub.EvaluateSignal(r, timeout=5)
                for _ in range(n // len(requests) + 1):  # fresh signal times: the age gate must pass
                    fresh = _requests(dt.datetime.now(dt.UTC))
                    for r in fresh:
                        a = clock()
                        reply = stub.EvaluateSignal(r, timeout=5)
                        lat.append(clock() - a)
                        approved += reply.decision.approved
                lat = lat[:n]
                total = sum(lat) / 1e9
    finally:
        asyncio.run(testing.drop_database(options.admin_database_url, dsn))
    lat.sort()
    rate = len(lat) / total
    results = [
        {"name": "grpc_decisions_per_s", "value": rate, "unit": "decisions/s"},
        {"name": "grpc_p50_us", "value": _percentile(lat, 0.5), "unit": "µs"},
        {"name": "grpc_p99_us", "value": _percentile(lat, 0.99), "unit": "µs"},
        {"name": "grpc_mean_us", "value": statistics.fmean(lat) / 1000.0, "unit": "µs"},
    ]
    return results, rate


def run(options: argparse.Namespace) -> dict[str, Any]:
    for name in ("exchange_info", "brackets"):
        path = getattr(options, name)
        if not Path(path).is_file():
            raise SystemExit(
                f"aegis bench risk: {path} not found: the benchmark needs the shared data directory "
                "($AEGIS_SHARED_DATA or <repo>/../shared/data), or --exchange-info and --brackets"
            )
    now = dt.datetime.now(dt.UTC)
    results, rates = _in_process(options, now)
    ratios = {"in_process_vs_naive_float": rates["in_process"] / rates["naive_float"]}
    extra: dict[str, Any] = {}
    if not options.no_grpc:
        grpc_results, grpc_rate = _grpc(options)
        results += grpc_results
        ratios["grpc_vs_in_process"] = grpc_rate / rates["in_process"]
        extra["grpc_p99_us"] = next(r["value"] for r in grpc_results if r["name"] == "grpc_p99_us")
    return report(
        "risk",
        results,
        ratios,
        **extra,
        signals=list(PRICES),
        exchange_info=str(options.exchange_info),
        brackets=str(options.brackets),
        note="ratios below 1 are the measured price of exact Decimal sizing with every filter and guard "
        "(in_process_vs_naive_float) and of a gRPC hop with a PostgreSQL read (grpc_vs_in_process)",
    )
