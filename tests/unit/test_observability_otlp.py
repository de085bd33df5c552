"""OTLP export: a service process with OTEL_EXPORTER_OTLP_ENDPOINT set pushes its spans and metrics there.

The collector is a fake OTLP/gRPC receiver in this test process; the service is a real ``aegis.server.serve``
process (a definition needing neither PostgreSQL nor Redis), so the test runs anywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from aegis import testing
from aegis.v1 import service_info_pb2 as info_pb
from aegis.v1 import service_info_pb2_grpc as info_grpc

SERVICE = textwrap.dedent(
    """
    import asyncio, sys
    from aegis import config, logging as aegis_logging
    from aegis.server import ServiceDefinition, ServiceParts, serve

    async def setup(ctx):
        return ServiceParts(registrations=[])

    aegis_logging.configure("risk")
    definition = ServiceDefinition("risk", setup, needs_postgres=False, needs_redis=False)
    sys.exit(asyncio.run(serve(definition, config.load(), port=int(sys.argv[1]))))
    """
)


class Collector(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []  # (service.name, span name)
        self.metrics: set[str] = set()
        self.lock = threading.Lock()

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        with self.lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                for rs in request.resource_spans:
                    name = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                    self.spans += [(name, s.name) for ss in rs.scope_spans for s in ss.spans]
                return trace_service_pb2.ExportTraceServiceResponse()
            for rm in request.resource_metrics:
                self.metrics |= {m.name for sm in rm.scope_metrics for m in sm.metrics}
            return metrics_service_pb2.ExportMetricsServiceResponse()


def test_spans_and_metrics_go_to_the_otlp_endpoint(tmp_path: Path) -> None:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, server)
    otlp_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port = testing.free_port()
    env = {
        **os.environ,
        "AEGIS_GRPC_HOST": "127.0.0.1",
        "AEGIS_METRICS_PORT": "0",
        "AEGIS_HEALTH_INTERVAL_S": "0.2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    log = (tmp_path / "service.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert testing.wait_until(lambda: testing.health_status(f"127.0.0.1:{port}") == "SERVING", 20, 0.1)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info_grpc.ServiceInfoServiceStub(channel).GetServiceInfo(info_pb.GetServiceInfoRequest(), timeout=5)

        def exported() -> bool:
            with collector.lock:
                spans = list(collector.spans)
                metrics = set(collector.metrics)
            return ("aegis-risk", "/aegis.v1.ServiceInfoService/GetServiceInfo") in spans and {
                "aegis_grpc_server_handled",
                "aegis_health_serving",
            } <= metrics

        ok = testing.wait_until(exported, 15, 0.1)
        print(f"OTLP received {len(collector.spans)} spans, {len(collector.metrics)} metric names")
        assert ok, f"spans {collector.spans}, metrics {sorted(collector.metrics)}"
        # Probes are not traced: only the business call.
        assert not any("Health" in name for _, name in collector.spans), collector.spans
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        server.stop(0)
    assert proc.returncode == 0, (tmp_path / "service.log").read_text()
