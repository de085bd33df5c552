"""Test kit for the orchestrator, shipped with the package.

* :class:`FakeKubeApi` — a stand-in for the Kubernetes API server on 127.0.0.1 implementing just what the
  orchestrator calls: list pods, get and patch a StatefulSet's scale. It checks the bearer token and the shape of
  each request like the real server would (a PATCH must be a merge patch ``{"spec": {"replicas": N}}``), records
  every request, and turns the StatefulSet's replicas into that many feed-brain pods.
* :func:`orchestrator_server` — an OrchestratorService on a loopback port in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from aegis.config import Settings
from aegis.orchestrator import duties
from aegis.orchestrator.kube import KubeClient
from aegis.orchestrator.service import Orchestrator, build
from aegis.server import ServiceInfo, create_server
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database

MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


@dataclass
class FakeKubeApi:
    """A minimal Kubernetes API server for one namespace and one StatefulSet."""

    token: str = "test-token"
    namespace: str = "aegis"
    statefulset: str = "aegis-feed-brain"
    release: str = "aegis"
    replicas: int = 1
    extra_pods: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request: method, path, query, content_type, body."""
    refused: list[str] = field(default_factory=list)
    """Why requests were refused (wrong token, wrong shape, unknown object)."""
    url: str = ""
    _runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ objects

    def _pod(self, name: str, component: str, ready: bool = True) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/part-of": "aegis",
                    "app.kubernetes.io/instance": self.release,
                    "app.kubernetes.io/component": component,
                },
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": component, "image": "aegis:test"}]},
            "status": {
                "phase": "Running" if ready else "Pending",
                "startTime": "2026-11-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [
                    {
                        "name": component,
                        "ready": ready,
                        "restartCount": 1,
                        "image": "aegis:test",
                        "imageID": "",
                    }
                ],
            },
        }

    def pods(self) -> list[dict[str, Any]]:
        feed_brain = [self._pod(f"{self.statefulset}-{i}", "feed-brain") for i in range(self.replicas)]
        return feed_brain + list(self.extra_pods)

    def _scale(self) -> dict[str, Any]:
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": self.statefulset, "namespace": self.namespace},
            "spec": {"replicas": self.replicas},
            "status": {"replicas": self.replicas, "selector": "app.kubernetes.io/component=feed-brain"},
        }

    # ------------------------------------------------------------------ handlers

    def _refuse(self, status: int, why: str) -> web.Response:
        self.refused.append(why)
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": why, "code": status}
        return web.json_response(body, status=status)

    async def _record(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = await request.text()
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "content_type": request.headers.get("Content-Type", ""),
            "body": body,
        }
        self.requests.append(entry)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return entry, self._refuse(401, "Unauthorized: missing or wrong bearer token")
        if request.match_info.get("namespace") != self.namespace:
            return entry, self._refuse(403, f"forbidden: namespace {request.match_info.get('namespace')!r}")
        return entry, None

    async def list_pods(self, request: web.Request) -> web.Response:
        _, refused = await self._record(request)
        if refused is not None:
            return refused
        items = self.pods()
        selector = request.query.get("labelSelector", "")
        for term in filter(None, selector.split(",")):
            key, _, value = term.partition("=")
            items = [p for p in items if p["metadata"]["labels"].get(key) == value]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def scale(self, request: web.Request) -> web.Response:
        entry, refused = await self._record(request)
        if refused is not None:
            return refused
        if request.match_info["name"] != self.statefulset:
            return self._refuse(404, f"statefulsets.apps {request.match_info['name']!r} not found")
        if request.method == "GET":
            return web.json_response(self._scale())
        if entry["content_type"].split(";")[0].strip() not in MERGE_PATCH_TYPES:
            return self._refuse(415, f"unsupported patch type {entry['content_type']!r} for this body")
        try:
            patch = json.loads(entry["body"])
        except ValueError:
            return self._refuse(400, "body is not JSON")
        replicas = patch.get("spec", {}).get("replicas") if isinstance(patch, dict) else None
        if set(patch) != {"spec"} or set(patch["spec"]) != {"replicas"} or not isinstance(replicas, int):
            return self._refuse(422, f"expected {{'spec': {{'replicas': N}}}}, got {patch!r}")
        if replicas < 0:
            return self._refuse(422, "spec.replicas must not be negative")
        self.replicas = replicas
        return web.json_response(self._scale())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeKubeApi:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{namespace}/pods", self.list_pods)
        app.router.add_route("GET", "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale", self.scale)
        app.router.add_route("PATCH", "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale", self.scale)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKubeApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@dataclass
class RunningOrchestrator:
    address: str
    parts: Orchestrator
    db: Database
    cache: Cache


@contextlib.asynccontextmanager
async def orchestrator_server(
    settings: Settings,
    *,
    port: int = 0,
    lead: bool = True,
    run_duties: bool = False,
    kube_client: KubeClient | None = None,
    identity: str = "test-orchestrator",
) -> AsyncIterator[RunningOrchestrator]:
    """Serve OrchestratorService on 127.0.0.1 in this process; campaign for leadership when ``lead``.

    The database must be migrated already. With ``run_duties`` the leader's schedule runs too.
    """
    db = Database(settings.dsn())
    cache = Cache(settings.redis())
    started_at = dt.datetime.now(dt.UTC)
    parts = build(settings, db, cache, started_at, identity=identity, kube_client=kube_client)
    registration = parts.registration()
    info = ServiceInfo("orchestrator", settings, [registration.name], started_at)
    server, bound, _ = create_server([registration], "127.0.0.1", port, info)
    await server.start()
    tasks: list[asyncio.Task[Any]] = []
    if lead:
        tasks.append(asyncio.create_task(parts.election.run(), name="test-election"))
    if run_duties:
        tasks.append(asyncio.create_task(duties.lead(parts.election, parts.schedule), name="test-duties"))
    try:
        yield RunningOrchestrator(f"127.0.0.1:{bound}", parts, db, cache)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop(0.5)
        await parts.close()
        await cache.close()
        await db.close()
