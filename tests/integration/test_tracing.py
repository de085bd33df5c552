"""Signal → risk → order → fill as one trace across three real processes, and the brain's latency histograms.

The set-up is the whole decision path as it runs in production, each service its own ``python -m aegis.<service>``
process on loopback: the test writes the real ETHUSDT 1m klines (2025-06, with a mark price at each close) into a
real ring as the feed would; the brain builds candles, its strategy (loose rules: 1m trigger, no zone, no cooldown,
stale candles not withheld) emits the three signals those klines hold, and its executor asks the real RiskService
(real exchange rules in PostgreSQL) and opens positions on the real VirtualAccountService (PostgreSQL). Every
process exports its spans over OTLP to a collector stand-in in this test (an OTLP/gRPC receiver on loopback).

What must hold: for a signal that was filled, the brain's ``aegis.signal`` span is the root of one trace holding the
brain's risk decision, the RiskService call on both sides (brain client span → risk's server span → risk's own
``risk.size`` span), the order and the VirtualAccountService.OpenPosition call on both sides, and the fill — each
with the right parent. And the brain's /metrics shows ``tick_to_signal`` observed once per signal and
``tick_to_fill`` once per new fill.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from collections import defaultdict
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import redis
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from aegis import testing
from aegis.core import records as rec
from aegis.core import ring
from aegis.risk.testing import store_rules_files
from aegis.storage import keys
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once

MIN = 60_000
SYMBOL = "ETHUSDT"
LAST_KLINE = 3450  # the loose rules find three signals in these klines (2047, 3423 and 3443)
LOOSE = {
    "AEGIS_STRATEGY_TRIGGER_TIMEFRAME": "1m",
    "AEGIS_STRATEGY_REQUIRE_ZONE": "false",
    "AEGIS_STRATEGY_COOLDOWN_S": "0",
}
EXCHANGE_INFO = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"


def execution_env(
    dsn: str, redis_url: str, tmp_path: Path, ring_path: Path, va_port: int, risk_port: int, **extra: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of a virtual-account + risk + brain trio on this run's databases (``extra`` added to all
    three), and the brain's: the loose rules over replayed klines, short intervals. Never the real exchange."""
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_HOME": str(tmp_path / "home"),
        "AEGIS_SYMBOLS": SYMBOL,
        "AEGIS_RING_PATH": str(ring_path),
        "AEGIS_BINANCE_REST_URL": "http://127.0.0.1:9",
        "AEGIS_VIRTUAL_ACCOUNT_ADDRESS": f"127.0.0.1:{va_port}",
        "AEGIS_RISK_ADDRESS": f"127.0.0.1:{risk_port}",
        "AEGIS_RISK_FETCH_RULES": "false",
        "AEGIS_METRICS_ENABLED": "false",
        **extra,
    }
    brain_env = {
        **env,
        **LOOSE,
        "AEGIS_BRAIN_STALE_CANDLE_S": "0",  # recorded klines are days old: emit their signals all the same
        "AEGIS_BRAIN_HYDRATE_CANDLES": "50",
        "AEGIS_BRAIN_ATTACH_INTERVAL_S": "0.1",
        "AEGIS_BRAIN_STATUS_INTERVAL_S": "0.2",
        "AEGIS_BRAIN_QUIET_CLOSE_S": "0",
        "AEGIS_BRAIN_PRICE_PUSH_MS": "50",
    }
    return env, brain_env


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class Collector(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP/gRPC receiver keeping every span (metrics are accepted and dropped)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        if not isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            return metrics_service_pb2.ExportMetricsServiceResponse()
        received = []
        for rs in request.resource_spans:
            service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attributes = {a.key: _value(a.value) for a in s.attributes}
                    ids = (s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex())
                    received.append(Span(service, s.name, s.kind, *ids, attributes))
        with self.lock:
            self.spans += received
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[Span]:
        with self.lock:
            return list(self.spans)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def kline_records(shared_data: Path, last: int) -> list[bytes]:
    """The real ETHUSDT 1m klines 0..last as ring records, three a minute: a trade at the close (the price
    virtual-account fills at), a mark price, then the exchange's closed kline (which wins over the trade)."""
    df = pd.read_csv(shared_data / "binance/signalbot/data" / f"{SYMBOL}_1m.csv", parse_dates=["open_time"])
    df = df.iloc[: last + 1]
    opens = (pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    out = []
    for i, (t, r) in enumerate(zip(opens.tolist(), df.itertuples(index=False), strict=True)):
        close_ms = int(t) + MIN - 1
        out.append(rec.pack_trade(0, close_ms, 0, r.close, 0.001, i, i, i, close_ms, False))
        out.append(rec.pack_mark_price(0, close_ms, 0, r.close, r.close, r.close, 0.0001, close_ms + 1))
        volume = r.volume
        kline = (0, int(t) + MIN, 0, int(t), close_ms, MIN, r.open, r.high, r.low, r.close, volume, volume * r.close)
        out.append(rec.pack_kline(*kline, 1, r.taker_buy_base_asset_volume, True))
    return out


def loose_signals(records: list[bytes]) -> list[Any]:
    """The signals the strategy makes on ``records`` under the loose rules, in order, computed without the brain."""
    from aegis import config
    from aegis.brain.candles import CandleBook
    from aegis.brain.strategy import Strategy

    book = CandleBook(history=64, symbol_capacity=1)
    book.symbol_index(SYMBOL)
    batch = np.frombuffer(b"".join(records), dtype=rec.MARKET_RECORD).copy()
    strategy = Strategy(config.load(LOOSE).strategy)
    signals = []
    for event in book.process(batch, np.zeros(len(batch), dtype=np.int64)):
        signals += strategy.on_candle_closed(event)
    return signals


def signal_klines(records: list[bytes]) -> list[int]:
    """The klines (indexes) whose close makes a signal under the loose rules, computed here without the brain."""
    opens = [int(np.frombuffer(r, dtype=rec.MARKET_RECORD)["event_time_ms"][0]) - MIN for r in records[2::3]]
    return [opens.index(s.candle_open_time_ms) for s in loose_signals(records)]


def stamped(record: bytes) -> bytes:
    """The record with the receive time of now (CLOCK_MONOTONIC, as the feed stamps it)."""
    return record[:24] + time.monotonic_ns().to_bytes(8, "little") + record[32:]


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as reply:
            return reply.read().decode()
    except OSError:
        return ""


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples ``name{labels...}`` in a Prometheus exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def prepare_database(admin_dsn: str, shared_data: Path) -> str:
    dsn = testing.create_database_sync(admin_dsn, "aegis_tracing")

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        db = Database(dsn)
        try:
            await store_rules_files(db, None, shared_data / EXCHANGE_INFO, shared_data / TIERS)
        finally:
            await db.close()

    asyncio.run(run())
    return dsn


def test_a_signal_is_one_trace_across_brain_risk_and_virtual_account_and_its_latencies_are_measured(
    admin_dsn: str, redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    collector = Collector()
    otlp = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, otlp)
    otlp_port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    dsn = prepare_database(admin_dsn, shared_data)
    ring_path = tmp_path / "shm" / "shard-0.ring"
    va_port, risk_port, brain_metrics = testing.free_port(), testing.free_port(), testing.free_port()
    env, brain_env = execution_env(
        dsn,
        redis_url,
        tmp_path,
        ring_path,
        va_port,
        risk_port,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    brain_env.update(AEGIS_METRICS_ENABLED="true", AEGIS_METRICS_PORT=str(brain_metrics))
    records = kline_records(shared_data, LAST_KLINE)
    triggers = signal_klines(records)
    assert len(triggers) == 3, triggers
    procs = []
    writer = None
    cache = redis.Redis.from_url(redis_url)
    try:
        va = testing.ServiceProcess("virtual_account", env, port=va_port, log_dir=tmp_path).start()
        risk = testing.ServiceProcess("risk", env, port=risk_port, log_dir=tmp_path).start()
        brain = testing.ServiceProcess("brain", brain_env, log_dir=tmp_path).start()
        procs = [va, risk, brain]
        for proc in procs:
            assert proc.wait_status("SERVING", 60), proc.log_text()[-3000:]
        # the brain warms its strategy up after hydrating the symbol; candles before that would not be traded
        assert testing.wait_until(lambda: _hydrated(cache), 30, 0.1), brain.log_text()[-3000:]
        time.sleep(0.5)
        ring_path.parent.mkdir(parents=True)
        writer = ring.create(ring_path, rec.MARKET_RECORD, 1 << 14, layout_name=rec.MARKET_RECORD_LAYOUT)
        assert writer.add_symbol(SYMBOL) == 0
        # up to the first signal's closing kline, then a pause: virtual-account fills a market order at the last
        # price the brain pushed to it, and the signal's stop is computed from that candle's close
        split = 3 * triggers[0] + 2
        for record in records[:split]:
            writer.write_bytes(stamped(record))
        time.sleep(1.0)
        for record in records[split:]:
            writer.write_bytes(stamped(record))

        def traced() -> list[Span]:
            spans = collector.snapshot()
            fills = [s for s in spans if s.service == "aegis-brain" and s.name == "aegis.fill"]
            opened = {s.trace_id for s in spans if s.service == "aegis-virtual-account" and "OpenPosition" in s.name}
            return [s for s in fills if s.trace_id in opened]

        assert testing.wait_until(traced, 60, 0.2), _why(collector.snapshot(), procs)
        metrics = ""

        def histograms_observed() -> bool:
            nonlocal metrics
            metrics = scrape(brain_metrics)
            return (
                sample(metrics, "aegis_brain_tick_to_signal_seconds_count") >= 3
                and sample(metrics, "aegis_brain_tick_to_fill_seconds_count") >= 1
            )

        assert testing.wait_until(histograms_observed, 30, 0.2), metrics[-3000:]
        time.sleep(1.0)  # the last batches of spans (BSP delay 100 ms)
    finally:
        if writer is not None:
            writer.close()
        for proc in reversed(procs):
            proc.stop()
        cache.close()
        otlp.stop(0)
        testing.drop_database_sync(admin_dsn, dsn)

    spans = collector.snapshot()
    fill = next(s for s in traced() if s.attributes["account"] == "learning")
    trace = [s for s in spans if s.trace_id == fill.trace_id]
    by_id = {s.span_id: s for s in trace}
    by_name: dict[tuple[str, str], list[Span]] = defaultdict(list)
    for s in trace:
        by_name[(s.service, s.name)].append(s)
    print(f"[tracing] trace {fill.trace_id}: {len(trace)} spans")
    for s in sorted(trace, key=lambda s: (s.service, s.name)):
        parent = by_id.get(s.parent_id)
        print(f"  {s.service:24} {s.name:58} <- {parent.name if parent else '(root)'}")

    def parent_of(span: Span) -> Span:
        assert span.parent_id in by_id, f"{span.name}: parent {span.parent_id} not in the trace"
        return by_id[span.parent_id]

    (root,) = by_name[("aegis-brain", "aegis.signal")]
    assert root.parent_id == "" and root.attributes["symbol"] == SYMBOL and root.attributes["side"] == "LONG"
    assert root.attributes["signal_id"] and root.attributes["accounts"] == ["learning", "paper"]

    # the learning leg, the whole way: decision → risk (client → server → risk.size) → order → OpenPosition → fill
    (decision,) = [s for s in by_name[("aegis-brain", "aegis.risk_decision")] if s.attributes["account"] == "learning"]
    assert parent_of(decision) is root and decision.attributes["approved"] is True
    (size_client,) = by_name[("aegis-brain", "/aegis.v1.RiskService/SizeOrder")]
    assert parent_of(size_client) is decision
    (size_server,) = by_name[("aegis-risk", "/aegis.v1.RiskService/SizeOrder")]
    assert parent_of(size_server) is size_client
    (sized,) = by_name[("aegis-risk", "risk.size")]
    assert parent_of(sized) is size_server and sized.attributes["account"] == "learning"
    # risk asked virtual-account for the account inside the same trace
    account_reads = [s for s in trace if s.service == "aegis-virtual-account" and "GetAccount" in s.name]
    assert account_reads and all(parent_of(parent_of(s)).service == "aegis-risk" for s in account_reads)

    orders = [s for s in by_name[("aegis-brain", "aegis.order")] if s.attributes["account"] == "learning"]
    (order,) = orders
    assert parent_of(order) is root and order.attributes["symbol"] == SYMBOL and order.attributes["filled"] is True
    assert order.attributes["client_order_id"] == f"{root.attributes['signal_id']}:learning"
    open_clients = [s for s in by_name[("aegis-brain", "/aegis.v1.VirtualAccountService/OpenPosition")]
                    if parent_of(s) is order]  # fmt: skip
    assert len(open_clients) == 1
    (open_server,) = [s for s in by_name[("aegis-virtual-account", "/aegis.v1.VirtualAccountService/OpenPosition")]
                      if parent_of(s) is open_clients[0]]  # fmt: skip
    assert open_server.kind == 2 and open_clients[0].kind == 3  # SERVER, CLIENT
    learning_fill = [s for s in by_name[("aegis-brain", "aegis.fill")] if s.attributes["account"] == "learning"]
    assert len(learning_fill) == 1 and parent_of(learning_fill[0]) is order
    assert learning_fill[0].attributes["position_id"] and learning_fill[0].attributes["replayed"] is False

    # the paper leg is in the same trace too (risk's EvaluateSignal on both sides), whatever risk decided
    (evaluate,) = by_name[("aegis-risk", "/aegis.v1.RiskService/EvaluateSignal")]
    assert parent_of(parent_of(evaluate)).name == "aegis.risk_decision"
    assert parent_of(parent_of(evaluate)).attributes["account"] == "paper"

    # no span per tick: the brain's spans are the decision path's only (three signals, a few spans each)
    brain_names = {s.name for s in spans if s.service == "aegis-brain"}
    assert brain_names <= {
        "aegis.signal", "aegis.risk_decision", "aegis.order", "aegis.fill",
        "/aegis.v1.RiskService/SizeOrder", "/aegis.v1.RiskService/EvaluateSignal",
        "/aegis.v1.VirtualAccountService/OpenPosition", "/aegis.v1.VirtualAccountService/ClosePosition",
    }, brain_names  # fmt: skip
    # the price pushes (conflated ticks, several a second) are counted, not traced, on either side
    assert not [s for s in spans if "ApplyPriceUpdates" in s.name]
    signals = [s for s in spans if s.service == "aegis-brain" and s.name == "aegis.signal"]
    assert len(signals) == 3 and len({s.trace_id for s in signals}) == 3

    signal_count = sample(metrics, "aegis_brain_tick_to_signal_seconds_count")
    fill_count = sample(metrics, "aegis_brain_tick_to_fill_seconds_count", account="learning")
    print(
        f"[tracing] tick_to_signal: {signal_count:.0f} observed, sum "
        f"{sample(metrics, 'aegis_brain_tick_to_signal_seconds_sum'):.4f} s; tick_to_fill (learning): "
        f"{fill_count:.0f} observed, sum "
        f"{sample(metrics, 'aegis_brain_tick_to_fill_seconds_sum', account='learning'):.4f} s"
    )
    assert signal_count == 3
    assert fill_count == sample(metrics, "aegis_brain_execution_total", kind="learning_opened") >= 1
    assert sample(metrics, "aegis_brain_tick_to_signal_seconds_bucket", le="+Inf") == 3


def _hydrated(cache: redis.Redis) -> bool:
    raw = cache.get(keys.service_status("brain", "shard-0"))
    return bool(raw) and json.loads(raw).get("hydration", {}).get("symbols", 0) >= 1


def _why(spans: list[Span], procs: list[testing.ServiceProcess]) -> str:
    names = sorted({(s.service, s.name) for s in spans})
    logs = "\n".join(f"--- {p.service}\n{p.log_text()[-2500:]}" for p in procs)
    return f"spans received: {names}\n{logs}"
