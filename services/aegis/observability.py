"""Metrics, traces and secure channels for every AEGIS process (docs/observability.md, docs/security.md).

What the runtime (:mod:`aegis.server`) does with this module for every service:

* a Prometheus registry per process, served over HTTP on the gRPC port + ``AEGIS_METRICS_PORT_OFFSET`` (1000) at
  ``/metrics``, with ``/healthz`` (the process runs) and ``/readyz`` (the health status is SERVING) beside it, on
  the event loop (aiohttp), so collectors read the engines' counters without racing the loop;
* runtime metrics: gRPC calls by method and status code, their latency, calls in flight, the health status and each
  dependency check, the service's identity, the process (CPU, memory, file descriptors, GC);
* the service's own collectors (``ServiceParts.metrics``: the feed's pipeline, connections and ring; risk's
  decisions; the accounts' positions and PnL …);
* OpenTelemetry tracing: a span per gRPC call on both sides (the ``opentelemetry-instrumentation-grpc`` aio
  interceptors), linked across services through the call metadata; :func:`span` for the decision path (signal →
  risk → order → fill). Nothing per tick: ticks are aggregated into histograms. The JSON logs carry the current
  ``trace_id`` (:mod:`aegis.logging` reads it).
* OTLP: when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (standard variable, read by the SDK) is set, spans go there in
  batches and the same registry is pushed there every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60 s).

Clients use :func:`insecure_or_tls_channel` (tracing interceptors, and TLS when ``AEGIS_TLS_CA`` is set).
The collector factories for the brain, the trainer and the orchestrator take their engine objects and only read
their public attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

import aegis
from aegis import config
from aegis.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

# prometheus_client and OpenTelemetry take ~0.1 s each to import: they load after the gRPC port is bound (see
# Telemetry.start), so this module stays cheap to import and a service binds its port as fast as before.

log = logging.getLogger("aegis.observability")

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Histogram buckets (seconds) for gRPC calls and the decision path: 0.5 ms to 10 s."""

_UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")
_UNTRACED_METHODS = ("/aegis.v1.VirtualAccountService/ApplyPriceUpdates",)
"""Price pushes (conflated ticks, every AEGIS_BRAIN_PRICE_PUSH_MS): counted by the gRPC metrics, not traced."""

MetricSource = Any
"""A prometheus collector (an object with ``collect()``) or a callable returning metric families."""


# --------------------------------------------------------------------------------------------- tracing

_tracing_lock = threading.Lock()
_tracing_configured = False


def otlp_endpoint(env: Mapping[str, str] | None = None) -> str:
    """Return where OTLP data goes ("" = nowhere): the standard OpenTelemetry variables, read as the SDK does."""
    env = os.environ if env is None else env
    return env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()


def configure_tracing(service: str, settings: config.Settings) -> bool:
    """Install the process's tracer provider (once); return whether tracing is on.

    Spans are always created (so trace ids reach the logs and the services downstream); they leave the process
    only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set.
    """
    global _tracing_configured
    if not settings.observability.tracing:
        return False
    with _tracing_lock:
        if _tracing_configured:
            return True
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider(resource=_resource(service, settings))
        if otlp_endpoint() or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            log.info("traces exported over OTLP", extra={"otlp_endpoint": otlp_endpoint()})
        trace.set_tracer_provider(provider)
        _tracing_configured = True
    return True


def flush_tracing(timeout_ms: int = 5000) -> None:
    """Export the spans still buffered (at stop; the SDK shuts the provider down itself at process exit)."""
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        with contextlib.suppress(Exception):
            flush(timeout_ms)


def _resource(service: str, settings: config.Settings) -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {
            "service.name": f"aegis-{service.replace('_', '-')}",
            "service.namespace": "aegis",
            "service.version": aegis.__version__,
            "service.instance.id": f"{os.environ.get('HOSTNAME', 'local')}-{os.getpid()}",
            "aegis.mode": settings.mode,
        }
    )


def _attribute(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """Run a block inside a span named ``name`` (a child of the current one), e.g. around signal → risk → order.

    Use it per decision, never per tick. Attribute values that OpenTelemetry cannot carry (Decimal, enums …) are
    sent as text; an exception raised in the block is recorded on the span and re-raised.
    """
    from opentelemetry import trace

    tracer = trace.get_tracer("aegis", aegis.__version__)
    attrs = {key: _attribute(value) for key, value in attributes.items() if value is not None}
    with tracer.start_as_current_span(name, attributes=attrs) as current:
        yield current


def capture_context() -> Any:
    """Return the current trace context, to continue the trace in another task (see :func:`attached`).

    The brain's executor hands orders to order workers through its event bus: the worker is another task, so the
    decision's span is not its current one unless the context travels with the order.
    """
    from opentelemetry import context

    return context.get_current()


@contextlib.contextmanager
def attached(trace_context: Any) -> Iterator[None]:
    """Run a block inside ``trace_context`` (from :func:`capture_context`); None leaves the current one."""
    if trace_context is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(trace_context)
    try:
        yield
    finally:
        context.detach(token)


def current_trace_id() -> str | None:
    """Return the current trace id (32 hex digits) or None outside a trace."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def _trace_filter() -> Any:
    from opentelemetry.instrumentation.grpc import filters

    # Probes and reflection would drown the real calls (a readiness probe every few seconds per pod), and so would
    # the price pushes (several a second per shard).
    return filters.negate(
        filters.any_of(
            *(filters.service_prefix(p) for p in _UNTRACED_SERVICES),
            *(filters.full_method_name(m) for m in _UNTRACED_METHODS),
        )
    )


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """OpenTelemetry's aio server interceptor (a span per call, its parent taken from the call metadata), loaded
    at the first call or at :meth:`load`, so that importing OpenTelemetry does not delay binding the port."""

    def __init__(self) -> None:
        self._inner: Any = None

    def load(self) -> None:
        if self._inner is None:
            from opentelemetry.instrumentation.grpc import aio_server_interceptor

            self._inner = aio_server_interceptor(filter_=_trace_filter())

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        self.load()
        return await self._inner.intercept_service(continuation, details)


def server_tracing_interceptor() -> TracingInterceptor:
    """Return the tracing server interceptor that :func:`aegis.server.create_server` installs."""
    return TracingInterceptor()


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Return the OpenTelemetry aio client interceptors (a span per call, its context sent in the metadata)."""
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return aio_client_interceptors(filter_=_trace_filter())


# --------------------------------------------------------------------------------------------- TLS


def _read_pem(variable: str, path: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}={path!r} cannot be read: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{variable}={path!r} is not a PEM file")
    return data


def server_credentials(settings: config.Settings) -> grpc.ServerCredentials | None:
    """Return TLS credentials for a gRPC server when ``AEGIS_TLS_CERT``/``AEGIS_TLS_KEY`` are set, else None."""
    obs = settings.observability
    if not obs.tls_cert:
        return None
    pair = (_read_pem("AEGIS_TLS_KEY", obs.tls_key), _read_pem("AEGIS_TLS_CERT", obs.tls_cert))
    if obs.tls_client_auth:
        ca = _read_pem("AEGIS_TLS_CA", obs.tls_ca)
        return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=True)
    return grpc.ssl_server_credentials([pair])


def channel_credentials(settings: config.Settings) -> grpc.ChannelCredentials | None:
    """Return TLS credentials for a client when ``AEGIS_TLS_CA`` is set (with a client certificate if one is)."""
    obs = settings.observability
    if not obs.tls_ca:
        return None
    ca = _read_pem("AEGIS_TLS_CA", obs.tls_ca)
    if obs.tls_cert:
        return grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=_read_pem("AEGIS_TLS_KEY", obs.tls_key),
            certificate_chain=_read_pem("AEGIS_TLS_CERT", obs.tls_cert),
        )
    return grpc.ssl_channel_credentials(root_certificates=ca)


def insecure_or_tls_channel(
    address: str,
    settings: config.Settings | None = None,
    *,
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """Return an asyncio channel to ``address``: TLS when ``AEGIS_TLS_CA`` is set, plaintext otherwise.

    The channel carries the tracing interceptors (unless ``AEGIS_TRACING=false``), so the server's span becomes a
    child of the caller's. ``settings`` default to the process's environment.
    """
    settings = settings or config.load()
    opts = list(options)
    if settings.observability.tls_server_name:
        opts.append(("grpc.ssl_target_name_override", settings.observability.tls_server_name))
    if interceptors is None:
        interceptors = client_interceptors() if settings.observability.tracing else []
    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)
    return grpc.aio.secure_channel(address, credentials, options=opts, interceptors=interceptors)


def sync_channel(address: str, settings: config.Settings | None = None) -> grpc.Channel:
    """Return a blocking channel (CLI tools): TLS when ``AEGIS_TLS_CA`` is set, plaintext otherwise."""
    settings = settings or config.load()
    opts = []
    if settings.observability.tls_server_name:
        opts.append(("grpc.ssl_target_name_override", settings.observability.tls_server_name))
    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.insecure_channel(address, options=opts)
    return grpc.secure_channel(address, credentials, options=opts)


# --------------------------------------------------------------------------------------------- gRPC metrics


def _split_method(full: str) -> tuple[str, str]:
    service, _, method = full.lstrip("/").partition("/")
    return service, method


class GrpcServerMetrics(grpc.aio.ServerInterceptor):
    """Count every call by service, method and status code and time it (``aegis_grpc_server_*``)."""

    def __init__(self) -> None:
        self.bound = False

    def bind(self, registry: CollectorRegistry) -> None:
        """Create the metrics in ``registry``; calls before this are not counted (the first milliseconds)."""
        from prometheus_client import Counter, Gauge, Histogram

        labels = ("grpc_service", "grpc_method")
        self.handled = Counter(
            "aegis_grpc_server_handled",
            "gRPC calls finished, by service, method and status code.",
            (*labels, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "aegis_grpc_server_handling_seconds",
            "Time from a call's start to its last response (streams: to their end).",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.in_flight = Gauge("aegis_grpc_server_in_flight", "gRPC calls in progress.", labels, registry=registry)
        self.bound = True

    def _finish(self, service: str, method: str, code: str, started: float) -> None:
        self.handled.labels(service, method, code).inc()
        self.seconds.labels(service, method).observe(time.perf_counter() - started)
        self.in_flight.labels(service, method).dec()

    @staticmethod
    def _code(context: Any, error: BaseException | None) -> str:
        if isinstance(error, asyncio.CancelledError):
            return "CANCELLED"
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code.name
        if error is not None:
            return "UNKNOWN"
        return "OK"

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or not self.bound:
            return handler
        service, method = _split_method(details.method)

        def wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def run(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                self.in_flight.labels(service, method).inc()
                error: BaseException | None = None
                try:
                    return await behavior(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._finish(service, method, self._code(context, error), started)

            return run

        def wrap_stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
            async def run(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                self.in_flight.labels(service, method).inc()
                error: BaseException | None = None
                try:
                    responses = behavior(request, context)
                    if inspect.isasyncgen(responses):
                        async for response in responses:
                            yield response
                    else:  # a handler that writes with context.write (the health service's Watch)
                        await responses
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._finish(service, method, self._code(context, error), started)

            return run

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                wrap_unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                wrap_stream(handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                wrap_unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                wrap_stream(handler.stream_stream), handler.request_deserializer, handler.response_serializer
            )
        return handler


# --------------------------------------------------------------------------------------------- helpers


class NotLoadedYet(AttributeError):
    """Raised by a collector whose object loads after the port is bound (the brain's engine) before it exists."""


class FunctionCollector:
    """A collector over a function returning metric families; a failing function costs its metrics, not the scrape."""

    def __init__(self, name: str, function: Callable[[], Iterable[Metric]]) -> None:
        self.name = name
        self._function = function
        self._failed_logged = False

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._function())
        except Exception as exc:
            if isinstance(exc, NotLoadedYet):  # the service's engine is still loading: nothing to report yet
                return iter(())
            if not self._failed_logged:
                self._failed_logged = True
                log.warning("metrics collector %s failed: %s", self.name, exc, exc_info=True)
            return iter(())
        return iter(families)


def as_collector(source: MetricSource) -> Any:
    """Return ``source`` as something a registry can hold (a collector, or a function wrapped in one)."""
    if hasattr(source, "collect"):
        return source
    if callable(source):
        return FunctionCollector(getattr(source, "__name__", "metrics"), source)
    raise TypeError(f"not a metrics source: {source!r}")


def _counter(name: str, doc: str, value: float) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, doc, value=value)


def _labelled(
    kind: str, name: str, doc: str, labels: Sequence[str], rows: Iterable[tuple[Sequence[str], float]]
) -> Metric:
    """Return a ``kind`` ("counter" or "gauge") family with one sample per (label values, value) row."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, doc, labels=list(labels))
    for values, value in rows:
        family.add_metric([str(v) for v in values], float(value))
    return family


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError, ArithmeticError):
        return math.nan
    return out


# --------------------------------------------------------------------------------------------- per process


class HealthCollector:
    """``aegis_health_serving`` (1 = SERVING) and ``aegis_health_check_ok{check}`` from the runtime's monitor."""

    def __init__(self, monitor: Any, checks: Sequence[str]) -> None:
        self._monitor = monitor
        self._checks = list(checks)

    def collect(self) -> Iterator[Metric]:
        serving = self._monitor.serving
        yield _gauge("aegis_health_serving", "1 while the health status is SERVING, else 0.", 1.0 if serving else 0.0)
        failing = set(self._monitor.failing)
        yield _labelled(
            "gauge",
            "aegis_health_check_ok",
            "1 while a dependency check passes (postgres, redis, service not ready), else 0.",
            ["check"],
            [((name,), 0.0 if name in failing or serving is None else 1.0) for name in self._checks],
        )


class Telemetry:
    """One process's metrics registry, its /metrics HTTP server, its gRPC metrics and its tracing.

    Built before the gRPC server (its interceptors go in the server); :meth:`start`, called once the port is bound,
    loads prometheus_client and OpenTelemetry, registers the collectors and serves /metrics.
    """

    def __init__(self, service: str, settings: config.Settings, *, process_metrics: bool = True) -> None:
        self.service = service
        self.settings = settings
        self.grpc = GrpcServerMetrics()
        self.tracing = settings.observability.tracing
        self._tracer = TracingInterceptor() if self.tracing else None
        self._process_metrics = process_metrics
        self._sources: list[MetricSource] = []
        self.registry: CollectorRegistry | None = None
        self.monitor: Any = None
        self._checks: list[str] = []
        self.metrics_port: int | None = None
        self._runner: Any = None
        self._pusher: OtlpMetricsPusher | None = None

    # -- what the runtime registers ------------------------------------------------------------------------

    def add(self, sources: Iterable[MetricSource]) -> None:
        """Register the service's collectors (``ServiceParts.metrics``)."""
        new = list(sources)
        self._sources += new
        if self.registry is not None:
            for source in new:
                self.registry.register(as_collector(source))

    def watch_health(self, monitor: Any, checks: Sequence[str]) -> None:
        self.monitor = monitor
        self._checks = [*checks, "service not ready"]

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """Tracing first (its span covers the metrics too), then the call counters."""
        out: list[grpc.aio.ServerInterceptor] = []
        if self._tracer is not None:
            out.append(self._tracer)
        out.append(self.grpc)
        return out

    def build_registry(self) -> CollectorRegistry:
        """Create the registry with the runtime's metrics and the registered collectors (once)."""
        if self.registry is not None:
            return self.registry
        from prometheus_client import (
            CollectorRegistry,
            Gauge,
            GCCollector,
            PlatformCollector,
            ProcessCollector,
            disable_created_metrics,
        )

        disable_created_metrics()  # the *_created series double every counter for no use here
        registry = CollectorRegistry()
        if self._process_metrics:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.grpc.bind(registry)
        info = Gauge(
            "aegis_service_info",
            "Always 1; the labels say which service, version, mode and shard this process is.",
            ("service", "version", "mode", "shard"),
            registry=registry,
        )
        shard = str(self.settings.shard) if self.service in ("feed", "brain") else ""
        info.labels(self.service, aegis.__version__, self.settings.mode, shard).set(1)
        if self.monitor is not None:
            registry.register(HealthCollector(self.monitor, self._checks))
        for source in self._sources:
            registry.register(as_collector(source))
        self.registry = registry
        return registry

    def exposition(self) -> bytes:
        """Return the registry in the Prometheus text format (what /metrics answers)."""
        from prometheus_client import generate_latest

        return generate_latest(self.build_registry())

    # -- the HTTP side ---------------------------------------------------------------------------------------

    def metrics_port_for(self, grpc_port: int) -> int | None:
        obs = self.settings.observability
        if not obs.metrics_enabled:
            return None
        if obs.metrics_port >= 0:
            return obs.metrics_port
        port = grpc_port + obs.metrics_port_offset
        if port > 65535:
            log.error("metrics port %d (gRPC port + %d) is not a TCP port", port, obs.metrics_port_offset)
            return None
        return port

    async def start(self, host: str, grpc_port: int) -> int | None:
        """Load tracing and metrics, serve /metrics, /healthz and /readyz; return the port (None: off or taken).

        A taken metrics port is logged as an error and does not stop the service: trading must not depend on
        being observed (the scrape target turns ``up == 0``, which is what an alert watches).
        """
        if self.tracing:
            configure_tracing(self.service, self.settings)
            if self._tracer is not None:
                self._tracer.load()
        self.build_registry()
        if otlp_endpoint() or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
            self._pusher = OtlpMetricsPusher(self)
            self._pusher.start()
        port = self.metrics_port_for(grpc_port)
        if port is None:
            return None
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_port=False)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            log.error("metrics not served: cannot listen on %s:%d (%s)", host, port, exc.strerror or exc)
            return None
        self._runner = runner
        server = site._server  # the bound port, when AEGIS_METRICS_PORT=0 asked for any
        sockets = list(server.sockets) if server is not None else []
        self.metrics_port = sockets[0].getsockname()[1] if sockets else port
        log.info("metrics on http://%s:%d/metrics", host, self.metrics_port)
        return self.metrics_port

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        body = self.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text="ok\n")

    async def _readyz(self, request: Any) -> Any:
        from aiohttp import web

        monitor = self.monitor
        if monitor is not None and monitor.serving:
            return web.Response(text="SERVING\n")
        failing = ", ".join(monitor.failing) if monitor is not None else "starting"
        return web.Response(status=503, text=f"NOT_SERVING: {failing or 'starting'}\n")

    async def stop(self) -> None:
        if self._pusher is not None:
            await asyncio.to_thread(self._pusher.stop)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tracing:
            await asyncio.to_thread(flush_tracing)


# --------------------------------------------------------------------------------------------- OTLP metrics


def registry_to_otlp(registry: CollectorRegistry, resource: Any, start_ns: int) -> Any:
    """Convert a Prometheus registry to OpenTelemetry ``MetricsData`` (counters → sums, histograms → histograms)."""
    from opentelemetry.sdk.metrics import export as otel
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    now = time.time_ns()
    cumulative = otel.AggregationTemporality.CUMULATIVE
    metrics = []
    for family in registry.collect():
        if family.type in ("counter", "gauge", "unknown"):
            points = [
                otel.NumberDataPoint(dict(s.labels), start_ns, now, s.value)
                for s in family.samples
                if s.name in (family.name, family.name + "_total") and math.isfinite(s.value)
            ]
            if not points:
                continue
            if family.type == "counter":
                data: Any = otel.Sum(points, cumulative, is_monotonic=True)
            else:
                data = otel.Gauge(points)
        elif family.type == "histogram":
            series: dict[tuple, dict[str, Any]] = {}
            for s in family.samples:
                labels = {k: v for k, v in s.labels.items() if k != "le"}
                key = tuple(sorted(labels.items()))
                entry = series.setdefault(key, {"labels": labels, "buckets": [], "sum": 0.0, "count": 0})
                if s.name.endswith("_bucket"):
                    entry["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_sum"):
                    entry["sum"] = s.value
                elif s.name.endswith("_count"):
                    entry["count"] = int(s.value)
            hist_points = []
            for entry in series.values():
                cumulative_counts = sorted(entry["buckets"])
                bounds = [le for le, _ in cumulative_counts if math.isfinite(le)]
                counts, previous = [], 0.0
                for _, c in cumulative_counts:
                    counts.append(int(c - previous))
                    previous = c
                hist_points.append(
                    otel.HistogramDataPoint(
                        entry["labels"], start_ns, now, entry["count"], entry["sum"], counts, bounds, None, None
                    )
                )
            data = otel.Histogram(hist_points, cumulative)
        else:
            continue
        metrics.append(otel.Metric(family.name, family.documentation, family.unit or None, data))
    scope = InstrumentationScope("aegis", aegis.__version__)
    return otel.MetricsData([otel.ResourceMetrics(resource, [otel.ScopeMetrics(scope, metrics, "")], "")])


class OtlpMetricsPusher:
    """Push the registry over OTLP every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (a thread: export blocks)."""

    def __init__(self, telemetry: Telemetry) -> None:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        self._telemetry = telemetry
        self._exporter = OTLPMetricExporter()
        self._resource = _resource(telemetry.service, telemetry.settings)
        self._start_ns = time.time_ns()
        try:
            self.interval_s = max(0.1, float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000.0)
        except ValueError:
            self.interval_s = 60.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-metrics", daemon=True)
        self.exports = 0

    def start(self) -> None:
        log.info("metrics pushed over OTLP every %.0f s", self.interval_s, extra={"otlp_endpoint": otlp_endpoint()})
        self._thread.start()

    def push(self) -> None:
        data = registry_to_otlp(self._telemetry.build_registry(), self._resource, self._start_ns)
        self._exporter.export(data, timeout_millis=10_000)
        self.exports += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.push()
            except Exception as exc:  # a collector down must not kill the thread
                log.debug("OTLP metrics export failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.push()
        with contextlib.suppress(Exception):
            self._exporter.shutdown()


# --------------------------------------------------------------------------------------------- decision path

_LAZY: dict[str, Any] = {}


def _histogram(name: str) -> Any:
    """Create the decision-path histograms at first use (they live outside any registry until registered)."""
    if name not in _LAZY:
        from prometheus_client import Histogram

        if name == "TICK_TO_SIGNAL":
            _LAZY[name] = Histogram(
                "aegis_brain_tick_to_signal_seconds",
                "From the feed receiving the record that closed a candle to the brain emitting the signal.",
                buckets=LATENCY_BUCKETS_S,
                registry=None,
            )
        else:
            _LAZY[name] = Histogram(
                "aegis_brain_tick_to_fill_seconds",
                "From the feed receiving the record behind a signal to the account confirming the position.",
                ("account",),
                buckets=LATENCY_BUCKETS_S,
                registry=None,
            )
    return _LAZY[name]


def tick_to_signal() -> Any:
    """Return the ``aegis_brain_tick_to_signal_seconds`` histogram; the brain observes it once per signal."""
    return _histogram("TICK_TO_SIGNAL")


def tick_to_fill() -> Any:
    """Return the ``aegis_brain_tick_to_fill_seconds{account}`` histogram; the brain observes it once per fill."""
    return _histogram("TICK_TO_FILL")


def observe_since(histogram: Any, recv_time_ns: int, *, now_ns: int | None = None, **labels: str) -> None:
    """Observe the seconds since ``recv_time_ns`` (Unix ns, or CLOCK_MONOTONIC ns for small values)."""
    if recv_time_ns <= 0:
        return
    if now_ns is None:
        now_ns = time.time_ns() if recv_time_ns > 10**17 else time.monotonic_ns()
    seconds = max(0.0, (now_ns - recv_time_ns) / 1e9)
    (histogram.labels(**labels) if labels else histogram).observe(seconds)


# --------------------------------------------------------------------------------------------- feed


def feed_collectors(engine: Any) -> list[Any]:
    """Collectors of a :class:`aegis.feed.engine.FeedEngine`: pipeline, connections, kline gate, ring."""

    def pipeline() -> Iterator[Metric]:
        p = engine.pipeline
        yield _gauge("aegis_feed_frames_per_second", "Frames in per second (last second).",
                     engine.state.messages_per_second)  # fmt: skip
        if p is None:
            return
        for attempt in range(3):  # the loop may add a reason while we copy; copying again is enough
            try:
                counts = dict(p.firewall.counts)
                last = dict(p.stats.last_recv_time_ns_by_symbol)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        frames = p.frames_in
        yield _counter("aegis_feed_frames", "Websocket (or replayed) frames in.", frames)
        rejected = sum(counts.values())
        yield _counter("aegis_feed_events", "Events in (an array frame holds several).", p.published + rejected)
        yield _counter("aegis_feed_published", "Records published to the ring.", p.published)
        yield _labelled(
            "counter",
            "aegis_feed_rejected",
            "Events the data firewall refused, by reason.",
            ["reason"],
            [((reason,), n) for reason, n in sorted(counts.items()) if n],
        )
        now = time.time_ns()
        yield _labelled(
            "gauge",
            "aegis_feed_symbol_age_seconds",
            "Seconds since the last published record of each symbol.",
            ["symbol"],
            [((s,), max(0.0, (now - ns) / 1e9)) for s, ns in sorted(last.items())],
        )

    def connections() -> Iterator[Metric]:
        conns = list(engine.state.connections)
        names = [f"{i}:{c.plan.name}" for i, c in enumerate(conns)]
        states = ("CONNECTING", "CONNECTED", "BACKOFF", "CLOSED")
        yield _labelled(
            "gauge",
            "aegis_feed_connection_state",
            "1 for the state each websocket connection is in.",
            ["connection", "state"],
            [
                ((n, st), 1.0 if c.stats.state == st else 0.0)
                for n, c in zip(names, conns, strict=True)
                for st in states
            ],
        )
        for metric, doc, attr in (
            ("aegis_feed_connection_connects", "Successful websocket opens (reconnects = this - 1).", "connects"),
            ("aegis_feed_connection_messages", "Frames received per connection.", "messages"),
            ("aegis_feed_connection_stalls", "Connections closed for silence.", "stalls"),
        ):
            yield _labelled(
                "counter", metric, doc, ["connection"],
                [((n,), getattr(c.stats, attr)) for n, c in zip(names, conns, strict=True)],
            )  # fmt: skip
        reconnects = [ms for c in conns for ms in list(c.stats.reconnect_ms)]
        yield _gauge(
            "aegis_feed_reconnect_last_seconds",
            "How long the last reconnect took, from losing a connection to its first frame again.",
            reconnects[-1] / 1000.0 if reconnects else 0.0,
        )
        yield _gauge(
            "aegis_feed_reconnect_max_seconds",
            "The longest reconnect since start.",
            max(reconnects) / 1000.0 if reconnects else 0.0,
        )

    def gate_and_ring() -> Iterator[Metric]:
        gate = engine.gate
        if gate is not None:
            yield _counter("aegis_feed_klines_backfilled", "Closed 1m klines fetched over REST.", gate.backfilled)
            yield _counter("aegis_feed_kline_duplicates", "Closed 1m klines dropped as already published.",
                           gate.duplicates)  # fmt: skip
            yield _counter("aegis_feed_kline_gaps", "Gaps in closed 1m klines detected.", gate.gaps)
        backfiller = engine.backfiller
        if backfiller is not None:
            yield _counter("aegis_feed_backfill_runs", "REST backfill runs.", backfiller.runs)
            yield _counter("aegis_feed_backfill_failures", "REST backfill runs that failed.", backfiller.failures)
        writer = engine.writer
        if writer is not None:
            capacity = engine.settings.feed.ring_capacity
            published = writer.published
            yield _counter("aegis_feed_ring_published", "Records the ring writer has published (its sequence).",
                           published)  # fmt: skip
            yield _gauge("aegis_feed_ring_capacity", "Ring slots.", capacity)
            yield _gauge(
                "aegis_feed_ring_fill_ratio",
                "Share of the ring's slots holding records (1 once it has wrapped).",
                min(published, capacity) / capacity,
            )
            yield _gauge("aegis_feed_ring_writer_epoch", "Writer epoch (bumped on every writer start).", writer.epoch)

    return [
        FunctionCollector("feed pipeline", pipeline),
        FunctionCollector("feed connections", connections),
        FunctionCollector("feed ring", gate_and_ring),
    ]


# --------------------------------------------------------------------------------------------- risk


class RiskDecisionMetrics:
    """Risk's decisions, counted in plain dicts (no import before the port is bound), exposed as a collector.

    ``aegis_risk_decisions_total{rpc,account,outcome}``, ``aegis_risk_decision_reasons_total{account,reason}``,
    ``aegis_risk_decision_seconds{rpc}`` (histogram) and ``aegis_risk_rules_loaded``.
    """

    def __init__(self, desk: Any = None) -> None:
        self.desk = desk
        self.decisions: dict[tuple[str, str, str], int] = {}
        self.reasons: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, rpc: str, decision: Any, seconds: float) -> None:
        key = (rpc, decision.account, "approved" if decision.approved else "refused")
        self.decisions[key] = self.decisions.get(key, 0) + 1
        for code in decision.reason_codes:
            reason = (decision.account, str(getattr(code, "value", code)))
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        counts = self._buckets.setdefault(rpc, [0] * (len(LATENCY_BUCKETS_S) + 1))
        for i, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        self._sums[rpc] = self._sums.get(rpc, 0.0) + seconds

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import HistogramMetricFamily

        yield _labelled(
            "counter",
            "aegis_risk_decisions",
            "Risk decisions by RPC (evaluate, size), account and outcome (approved, refused).",
            ["rpc", "account", "outcome"],
            sorted(self.decisions.items()),
        )
        yield _labelled(
            "counter",
            "aegis_risk_decision_reasons",
            "Reason codes in risk decisions (refusals and adjustments), by account.",
            ["account", "reason"],
            sorted(self.reasons.items()),
        )
        hist = HistogramMetricFamily(
            "aegis_risk_decision_seconds", "Time a decision takes (account state, protections, engine).", labels=["rpc"]
        )
        for rpc, counts in sorted(self._buckets.items()):
            running, buckets = 0, []
            for bound, n in zip([*LATENCY_BUCKETS_S, math.inf], counts, strict=True):
                running += n
                buckets.append(("+Inf" if math.isinf(bound) else repr(bound), running))
            hist.add_metric([rpc], buckets, self._sums[rpc])
        yield hist
        if self.desk is not None:
            yield _gauge("aegis_risk_rules_loaded", "1 once exchange rules are loaded.", float(self.desk.rules_loaded))


# --------------------------------------------------------------------------------------------- accounts


class PolledCollector:
    """Metrics read by an async ``poll()`` every ``interval_s`` (database figures): ``run()`` is a background job.

    A poll that fails keeps the last figures and sets ``<prefix>_poll_ok`` to 0, so an outage shows instead of
    stopping the service.
    """

    def __init__(
        self,
        prefix: str,
        poll: Callable[[], Awaitable[list[Metric]]],
        interval_s: float = 10.0,
    ) -> None:
        self.prefix = prefix
        self._poll = poll
        self.interval_s = interval_s
        self._families: list[Metric] = []
        self.ok = False
        self.polled_at = 0.0

    async def refresh(self) -> None:
        try:
            self._families = await self._poll()
            self.ok = True
            self.polled_at = time.time()
        except Exception as exc:
            if self.ok:
                log.warning("%s metrics not refreshed: %s", self.prefix, exc)
            self.ok = False

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    def collect(self) -> Iterator[Metric]:
        yield from self._families
        yield _gauge(f"{self.prefix}_poll_ok", "1 when the last poll of these figures succeeded.", float(self.ok))
        yield _gauge(f"{self.prefix}_poll_time_seconds", "Unix time of the last successful poll.", self.polled_at)


def account_families(views: Iterable[Any]) -> list[Metric]:
    """Metric families of ``AccountView`` values (positions open, trades, wins, balances, PnL per account)."""
    views = list(views)
    rows: dict[str, list[tuple[Sequence[str], float]]] = {}

    def put(name: str, view: Any, value: Any) -> None:
        rows.setdefault(name, []).append(((view.name, view.kind), _float(value)))

    for v in views:
        put("aegis_account_positions_open", v, v.open_positions)
        put("aegis_account_trades", v, v.trade_count)
        put("aegis_account_wins", v, v.win_count)
        put("aegis_account_wallet_balance", v, v.wallet_balance)
        put("aegis_account_equity", v, v.equity)
        put("aegis_account_realised_pnl", v, v.realised_pnl)
        put("aegis_account_unrealised_pnl", v, v.unrealised_pnl)
        put("aegis_account_fees", v, v.fees)
        put("aegis_account_funding", v, v.funding)
        put("aegis_account_margin_used", v, v.margin_used)
    docs = {
        "aegis_account_positions_open": ("gauge", "Open positions per account."),
        "aegis_account_trades": ("counter", "Closed trades per account."),
        "aegis_account_wins": ("counter", "Closed trades with a positive net PnL per account."),
        "aegis_account_wallet_balance": ("gauge", "Wallet balance (USDT)."),
        "aegis_account_equity": ("gauge", "Equity = wallet balance + unrealised PnL (USDT)."),
        "aegis_account_realised_pnl": ("gauge", "Net realised PnL since the start (USDT)."),
        "aegis_account_unrealised_pnl": ("gauge", "Unrealised PnL at the latest mark prices (USDT)."),
        "aegis_account_fees": ("gauge", "Fees paid since the start (USDT)."),
        "aegis_account_funding": ("gauge", "Funding received (negative: paid) since the start (USDT)."),
        "aegis_account_margin_used": ("gauge", "Initial margin of the open positions (USDT)."),
    }
    return [_labelled(kind, name, doc, ["account", "kind"], rows.get(name, [])) for name, (kind, doc) in docs.items()]


def virtual_account_collector(book: Any, interval_s: float = 10.0) -> PolledCollector:
    """A polled collector of every account of an :class:`aegis.virtual_account.book.AccountBook`."""

    async def poll() -> list[Metric]:
        views: list[Any] = []
        token = ""
        for _ in range(100):  # 100 pages of 1000 accounts is far more than AEGIS keeps
            page, token = await book.list_accounts(1000, token)
            views += page
            if not token:
                break
        return account_families(views)

    return PolledCollector("aegis_account", poll, interval_s)


# --------------------------------------------------------------------------------------------- brain


def brain_collectors(engine: Any) -> list[Any]:
    """Collectors of an :class:`aegis.brain.engine.BrainEngine` plus the decision-path latency histograms.

    Reads ``engine.consumer`` (records processed/rejected, lag, the ring reader's counters), ``engine.counts``,
    ``engine.executor.counts`` and ``engine.executor.stats``; the brain observes :func:`tick_to_signal` and
    :func:`tick_to_fill` itself (``observe_since(tick_to_signal(), recv_time_ns)``).
    """

    def consumer() -> Iterator[Metric]:
        c = engine.consumer
        yield _counter("aegis_brain_records_processed", "Ring records processed.", c.records_processed)
        yield _counter("aegis_brain_records_rejected", "Ring records the brain's firewall refused.",
                       c.records_rejected)  # fmt: skip
        yield _counter("aegis_brain_batches", "Ring batches read.", c.batches)
        if c.last_lag_ns is not None:
            yield _gauge("aegis_brain_lag_seconds", "Age of the newest record at its processing.", c.last_lag_ns / 1e9)
        reader = c.reader
        if reader is not None:
            yield _gauge("aegis_brain_ring_lag_records", "Records published and not read yet.", reader.lag)
            yield _gauge("aegis_brain_ring_fill_ratio", "Unread share of the ring (1 = about to be lapped).",
                         min(1.0, reader.lag / reader.capacity))  # fmt: skip
            stats = reader.stats()
            for key in ("records_lost", "overruns", "torn_reads", "resyncs", "epoch_changes"):
                yield _counter(f"aegis_brain_ring_{key}", f"Ring reader {key.replace('_', ' ')}.", stats[key])

    def counts() -> Iterator[Metric]:
        yield _labelled(
            "counter",
            "aegis_brain_candles",
            "Closed candles by what happened to them (before warm-up, stale, warmed up).",
            ["kind"],
            [((k,), v) for k, v in sorted(dict(engine.counts).items())],
        )
        executor = engine.executor
        yield _labelled(
            "counter",
            "aegis_brain_execution",
            "Executor counters (signals, orders, fills, drops …).",
            ["kind"],
            [((k,), v) for k, v in sorted(dict(executor.counts).items()) if isinstance(v, (int, float))],
        )
        rpcs = executor.stats.snapshot()
        yield _labelled(
            "counter",
            "aegis_brain_rpc_calls",
            "Outgoing calls by RPC and result (ok, retry, or the failing status code).",
            ["rpc", "result"],
            [((rpc, "ok"), s["ok"]) for rpc, s in rpcs.items()]
            + [((rpc, "retry"), s["retries"]) for rpc, s in rpcs.items()]
            + [((rpc, code), n) for rpc, s in rpcs.items() for code, n in s["failed"].items()],
        )
        yield _gauge("aegis_brain_execution_busy", "Execution workers busy.", getattr(executor, "busy", 0))

    return [
        FunctionCollector("brain consumer", consumer),
        FunctionCollector("brain counts", counts),
        _histogram("TICK_TO_SIGNAL"),
        _histogram("TICK_TO_FILL"),
    ]


# --------------------------------------------------------------------------------------------- trainer


def trainer_collectors(trainer: Any, db: Any = None, interval_s: float = 30.0) -> list[Any]:
    """Collectors of an :class:`aegis.trainer.runner.Trainer`; with ``db``, runs by status from ``training_runs``.

    With a database the second item is a :class:`PolledCollector`: run its ``run()`` as a background job.
    """

    def own() -> Iterator[Metric]:
        yield _counter("aegis_trainer_runs_started", "Training runs this process started.", trainer.runs_started)
        yield _gauge("aegis_trainer_running", "1 while this process trains.", 1.0 if trainer.running else 0.0)

    out: list[Any] = [FunctionCollector("trainer", own)]
    if db is not None:

        async def poll() -> list[Metric]:
            async with db.connection() as conn:
                rows = await conn.fetch("SELECT status, count(*) AS n FROM training_runs GROUP BY status")
                active = await conn.fetchval("SELECT count(*) FROM ml_models WHERE status = 'active'")
            return [
                _labelled(
                    "gauge",
                    "aegis_trainer_runs",
                    "Training runs in the database, by status.",
                    ["status"],
                    [((r["status"],), r["n"]) for r in rows],
                ),
                _gauge("aegis_trainer_active_models", "Models with status active.", float(active or 0)),
            ]

        out.append(PolledCollector("aegis_trainer", poll, interval_s))
    return out


# --------------------------------------------------------------------------------------------- orchestrator


def orchestrator_collectors(orchestrator: Any) -> list[Any]:
    """Collectors of an :class:`aegis.orchestrator.service.Orchestrator`: leadership and its duties."""

    def own() -> Iterator[Metric]:
        election = orchestrator.election
        yield _gauge("aegis_orchestrator_leader", "1 while this replica leads.", 1.0 if election.is_leader else 0.0)
        yield _counter("aegis_orchestrator_leader_terms", "Times this replica became leader.", election.terms)
        yield _labelled(
            "gauge",
            "aegis_orchestrator_duty_interval_seconds",
            "Interval of each scheduled duty.",
            ["duty"],
            [((d.name,), d.interval_s) for d in orchestrator.schedule],
        )

    return [FunctionCollector("orchestrator", own)]


__all__ = [
    "LATENCY_BUCKETS_S",
    "FunctionCollector",
    "GrpcServerMetrics",
    "NotLoadedYet",
    "PolledCollector",
    "RiskDecisionMetrics",
    "Telemetry",
    "account_families",
    "attached",
    "brain_collectors",
    "capture_context",
    "channel_credentials",
    "client_interceptors",
    "configure_tracing",
    "current_trace_id",
    "feed_collectors",
    "insecure_or_tls_channel",
    "observe_since",
    "orchestrator_collectors",
    "server_credentials",
    "span",
    "sync_channel",
    "tick_to_fill",
    "tick_to_signal",
    "trainer_collectors",
    "virtual_account_collector",
]
