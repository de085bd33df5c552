"""aegis.observability: gRPC call metrics, /metrics and /readyz, trace ids in logs and across calls, collectors."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aegis import config, observability
from aegis import logging as aegis_logging
from aegis.core.records import MARKET_RECORD, MARKET_RECORD_LAYOUT
from aegis.core.ring import RingWriter
from aegis.feed.engine import FeedState
from aegis.feed.pipeline import FramePipeline
from aegis.server import HealthMonitor, ServiceInfo, create_server, unbuilt_registration
from aegis.v1 import feed_pb2, feed_pb2_grpc
from aegis.v1 import service_info_pb2 as info_pb
from aegis.v1 import service_info_pb2_grpc as info_grpc


def settings(**env: str) -> config.Settings:
    return config.load({"AEGIS_METRICS_PORT": "0", **env})


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """Return the value of the sample ``name{labels}`` in a Prometheus text exposition (labels matched as a subset)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class LoggingInfo(ServiceInfo):
    """ServiceInfo that logs inside the call, so the test can see which trace the server-side log line carries."""

    async def GetServiceInfo(self, request, context):  # type: ignore[no-untyped-def]
        logging.getLogger("aegis.test").info("inside the call")
        return await super().GetServiceInfo(request, context)


async def test_runtime_counts_calls_serves_metrics_and_carries_the_trace_to_the_server_logs() -> None:
    import datetime as dt

    s = settings()
    telemetry = observability.Telemetry("risk", s)
    info = LoggingInfo("risk", s, [], dt.datetime.now(dt.UTC))
    feed = unbuilt_registration(feed_pb2_grpc, "FeedService")
    server, port, health = create_server([feed], "127.0.0.1", 0, info, interceptors=telemetry.server_interceptors())
    await server.start()
    monitor = HealthMonitor(health, [feed.name], [], ready=lambda: True, interval_s=0.1)
    telemetry.watch_health(monitor, [])
    metrics_port = await telemetry.start("127.0.0.1", port)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(aegis_logging.JsonFormatter("risk"))
    logger = logging.getLogger("aegis.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert metrics_port
        status, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics_port}/readyz")
        assert status == 503, body
        await monitor.check_once()

        async with observability.insecure_or_tls_channel(f"127.0.0.1:{port}", s) as channel:
            with observability.span("test.client", symbol="BTCUSDT") as client_span:
                client_trace = f"{client_span.get_span_context().trace_id:032x}"
                await info_grpc.ServiceInfoServiceStub(channel).GetServiceInfo(info_pb.GetServiceInfoRequest())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await feed_pb2_grpc.FeedServiceStub(channel).GetFeedStatus(feed_pb2.GetFeedStatusRequest())
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
        await asyncio.sleep(0.2)

        status, text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        ok = sample(text, "aegis_grpc_server_handled_total", grpc_method="GetServiceInfo", grpc_code="OK")
        unimplemented = sample(
            text, "aegis_grpc_server_handled_total", grpc_method="GetFeedStatus", grpc_code="UNIMPLEMENTED"
        )
        watched = sample(text, "aegis_grpc_server_handled_total", grpc_method="Watch")
        latency = sample(text, "aegis_grpc_server_handling_seconds_count", grpc_method="GetServiceInfo")
        print(f"counted: GetServiceInfo OK={ok}, GetFeedStatus UNIMPLEMENTED={unimplemented}, Watch={watched}")
        assert ok == 1 and unimplemented == 1 and watched == 1 and latency == 1, text
        assert sample(text, "aegis_health_serving") == 1
        assert sample(text, "aegis_service_info", service="risk", mode="paper") == 1
        assert sample(text, "process_resident_memory_bytes") is not None
        assert "_created" not in text
        assert (await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics_port}/readyz"))[0] == 200
        assert (await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics_port}/healthz"))[0] == 200

        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        inside = [line for line in lines if line["message"] == "inside the call"]
        assert inside and inside[0].get("trace_id") == client_trace, lines
    finally:
        logger.removeHandler(handler)
        await telemetry.stop()
        await server.stop(0)


def test_trace_id_of_the_current_span_is_in_every_json_log_line() -> None:
    observability.configure_tracing("risk", settings())
    stream = io.StringIO()
    aegis_logging.configure("risk", stream=stream)
    with observability.span("risk.evaluate", account="paper", notional=__import__("decimal").Decimal("12.5")):
        expected = observability.current_trace_id()
        logging.getLogger("aegis.risk").info("decided")
    logging.getLogger("aegis.risk").info("after")
    inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert expected and re.fullmatch(r"[0-9a-f]{32}", expected)
    assert inside["trace_id"] == expected
    assert "trace_id" not in after


def test_metrics_port_is_the_grpc_port_plus_the_offset_unless_set() -> None:
    assert observability.Telemetry("risk", config.load({})).metrics_port_for(50053) == 51053
    assert observability.Telemetry("risk", config.load({"AEGIS_METRICS_PORT_OFFSET": "7"})).metrics_port_for(10) == 17
    assert observability.Telemetry("risk", config.load({"AEGIS_METRICS_PORT": "9100"})).metrics_port_for(1) == 9100
    assert observability.Telemetry("risk", config.load({"AEGIS_METRICS_ENABLED": "false"})).metrics_port_for(1) is None
    assert observability.Telemetry("risk", config.load({})).metrics_port_for(65000) is None


async def test_a_taken_metrics_port_is_logged_and_does_not_stop_the_service() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        telemetry = observability.Telemetry("risk", config.load({"AEGIS_METRICS_PORT": str(busy)}))
        try:
            assert await telemetry.start("127.0.0.1", 1) is None
        finally:
            await telemetry.stop()


def test_registry_converts_to_otlp_sums_gauges_and_histograms() -> None:
    from opentelemetry.sdk.metrics.export import Gauge as OGauge
    from opentelemetry.sdk.metrics.export import Histogram as OHistogram
    from opentelemetry.sdk.metrics.export import Sum
    from opentelemetry.sdk.resources import Resource

    registry = CollectorRegistry()
    Counter("c", "a counter", ["k"], registry=registry).labels("x").inc(3)
    Gauge("g", "a gauge", registry=registry).set(2.5)
    hist = Histogram("h_seconds", "a histogram", buckets=(0.1, 1.0), registry=registry)
    for value in (0.05, 0.5, 0.7, 5.0):
        hist.observe(value)
    data = observability.registry_to_otlp(registry, Resource.create({}), 1)
    metrics = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}
    assert isinstance(metrics["c"].data, Sum) and metrics["c"].data.data_points[0].value == 3
    assert metrics["c"].data.data_points[0].attributes == {"k": "x"}
    assert isinstance(metrics["g"].data, OGauge) and metrics["g"].data.data_points[0].value == 2.5
    point = metrics["h_seconds"].data.data_points[0]
    assert isinstance(metrics["h_seconds"].data, OHistogram)
    assert list(point.explicit_bounds) == [0.1, 1.0] and list(point.bucket_counts) == [1, 2, 1] and point.count == 4


def test_feed_collectors_report_frames_rejects_and_the_ring(tmp_path: Path) -> None:
    writer = RingWriter(tmp_path / "ring", MARKET_RECORD, 1024, layout_name=MARKET_RECORD_LAYOUT)
    try:
        pipeline = FramePipeline(["BTCUSDT"], writer, recv_clock="wall")
        now_ms = int(time.time() * 1000)
        trade = {
            "stream": "btcusdt@aggTrade",
            "data": {"e": "aggTrade", "E": now_ms, "s": "BTCUSDT", "a": 1, "p": "60000.1", "q": "0.5", "f": 1,
                     "l": 1, "T": now_ms, "m": False},
        }  # fmt: skip
        pipeline.process(json.dumps(trade).encode(), time.time_ns())
        pipeline.process(b"{not json", time.time_ns())
        engine = SimpleNamespace(
            pipeline=pipeline,
            state=FeedState(source="replay", symbols=["BTCUSDT"]),
            gate=None,
            backfiller=None,
            writer=writer,
            settings=SimpleNamespace(feed=SimpleNamespace(ring_capacity=1024)),
        )
        registry = CollectorRegistry()
        for collector in observability.feed_collectors(engine):
            registry.register(collector)
        text = generate_latest(registry).decode()
    finally:
        writer.close()
    assert sample(text, "aegis_feed_frames_total") == 2
    assert sample(text, "aegis_feed_published_total") == 1
    assert sum(v for v in [sample(text, "aegis_feed_rejected_total")] if v) == 1, text
    assert sample(text, "aegis_feed_ring_published_total") == 1
    assert sample(text, "aegis_feed_ring_fill_ratio") == pytest.approx(1 / 1024)
    assert sample(text, "aegis_feed_symbol_age_seconds", symbol="BTCUSDT") is not None


def test_engine_collector_factories_read_only_public_attributes() -> None:
    reader = SimpleNamespace(
        lag=10,
        capacity=100,
        stats=lambda: {"records_lost": 5, "overruns": 1, "torn_reads": 0, "resyncs": 1, "epoch_changes": 0},
    )
    brain = SimpleNamespace(
        consumer=SimpleNamespace(records_processed=7, records_rejected=1, batches=2, last_lag_ns=2_000_000,
                                 reader=reader),
        counts={"stale_candles": 3},
        executor=SimpleNamespace(
            counts={"signals": 4, "orders": 2},
            stats=SimpleNamespace(snapshot=lambda: {"OpenPosition": {"calls": 3, "ok": 2, "retries": 1,
                                                                     "failed": {"UNAVAILABLE": 1}}}),
            busy=1,
        ),
    )  # fmt: skip
    trainer = SimpleNamespace(runs_started=2, running=True)
    orchestrator = SimpleNamespace(
        election=SimpleNamespace(is_leader=True, terms=1), schedule=[SimpleNamespace(name="heartbeat", interval_s=60)]
    )
    registry = CollectorRegistry()
    for collector in [
        *observability.brain_collectors(brain),
        *observability.trainer_collectors(trainer),
        *observability.orchestrator_collectors(orchestrator),
    ]:
        registry.register(collector)
    observability.observe_since(observability.tick_to_signal(), time.time_ns() - 50_000_000)
    observability.observe_since(observability.tick_to_fill(), time.time_ns() - 80_000_000, account="paper")
    text = generate_latest(registry).decode()
    assert sample(text, "aegis_brain_ring_records_lost_total") == 5
    assert sample(text, "aegis_brain_ring_fill_ratio") == pytest.approx(0.1)
    assert sample(text, "aegis_brain_rpc_calls_total", rpc="OpenPosition", result="UNAVAILABLE") == 1
    assert sample(text, "aegis_brain_execution_total", kind="signals") == 4
    assert sample(text, "aegis_brain_tick_to_signal_seconds_count") >= 1
    assert sample(text, "aegis_brain_tick_to_fill_seconds_count", account="paper") >= 1
    assert sample(text, "aegis_trainer_runs_started_total") == 2
    assert sample(text, "aegis_orchestrator_leader") == 1


def test_risk_decision_metrics_count_outcomes_and_reasons() -> None:
    metrics = observability.RiskDecisionMetrics(SimpleNamespace(rules_loaded=True))
    code = SimpleNamespace(value="MAX_POSITIONS")
    metrics.observe("evaluate", SimpleNamespace(account="paper", approved=False, reason_codes=(code,)), 0.002)
    metrics.observe("evaluate", SimpleNamespace(account="paper", approved=True, reason_codes=()), 0.02)
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    assert sample(text, "aegis_risk_decisions_total", account="paper", outcome="refused") == 1
    assert sample(text, "aegis_risk_decisions_total", account="paper", outcome="approved") == 1
    assert sample(text, "aegis_risk_decision_reasons_total", reason="MAX_POSITIONS") == 1
    assert sample(text, "aegis_risk_decision_seconds_count", rpc="evaluate") == 2
    assert sample(text, "aegis_risk_decision_seconds_bucket", rpc="evaluate", le="0.0025") == 1
    assert sample(text, "aegis_risk_rules_loaded") == 1


def test_a_failing_collector_costs_its_metrics_not_the_scrape() -> None:
    def broken():  # type: ignore[no-untyped-def]
        raise RuntimeError("engine not built yet")

    registry = CollectorRegistry()
    registry.register(observability.as_collector(broken))
    Gauge("still_here", "x", registry=registry).set(1)
    assert sample(generate_latest(registry).decode(), "still_here") == 1


async def test_a_trace_follows_an_order_to_another_task_only_through_capture_context() -> None:
    """The brain's orders go through the event bus to worker tasks: the context must travel with the order."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    observability.configure_tracing("brain", settings())
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    orders: asyncio.Queue[object] = asyncio.Queue()

    async def order_worker() -> None:  # started before the signal: its own (empty) context
        for name in ("carried", "not carried"):
            trace_context = await orders.get()
            with observability.attached(trace_context), observability.span(f"aegis.order {name}"):
                await asyncio.sleep(0)

    worker = asyncio.create_task(order_worker())
    with observability.span("aegis.signal", signal_id="s-1", side="LONG", accounts=["learning", "paper"]) as root:
        await orders.put(observability.capture_context())
        await orders.put(None)  # None: the worker's own context
        await worker
    spans = {s.name: s for s in exporter.get_finished_spans()}
    signal, carried, alone = spans["aegis.signal"], spans["aegis.order carried"], spans["aegis.order not carried"]
    assert carried.parent is not None and carried.parent.span_id == root.get_span_context().span_id
    assert carried.context.trace_id == signal.context.trace_id
    assert alone.parent is None and alone.context.trace_id != signal.context.trace_id
    assert signal.attributes["accounts"] == ("learning", "paper") and signal.attributes["side"] == "LONG"
