"""Kubernetes: the AEGIS pods for GetSystemStatus, and the feed-brain StatefulSet's size (one pod per shard).

Enabled when ``AEGIS_ORCHESTRATOR_KUBE_API_URL`` is set (with a bearer token file) or, in a pod, when
``KUBERNETES_SERVICE_HOST`` is set (the service account's token, CA and namespace). Otherwise the orchestrator
makes no Kubernetes call at all and GetSystemStatus says ``in_cluster: false``.

The calls are the three the chart's Role allows: list pods, get and patch ``statefulsets/<name>/scale``. The
scale is changed with a JSON merge patch ``{"spec": {"replicas": N}}`` (the client's default content type for
PATCH would be a JSON *Patch*, which this body is not). The client is the official ``kubernetes`` package's
asyncio flavour, imported only when Kubernetes is enabled, so a local process never pays for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegis.config import Settings
from aegis.errors import DependencyUnavailable

log = logging.getLogger("aegis.orchestrator.kube")

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FEED_BRAIN_COMPONENT = "feed-brain"
_COMPONENT_LABEL = "app.kubernetes.io/component"
_ORDINAL = re.compile(r"-(\d+)$")
_DEPLOYMENT_POD = re.compile(r"^(?P<fullname>.+)-orchestrator-[a-z0-9]+-[a-z0-9]+$")
MERGE_PATCH = "application/merge-patch+json"


class KubernetesError(DependencyUnavailable):
    """The Kubernetes API refused or did not answer."""


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    phase: str
    ready: bool
    restarts: int
    node: str
    shard_index: int
    """Ordinal of a feed-brain pod (its shard); -1 for the other pods."""
    start_time: dt.datetime | None
    component: str


@dataclass(frozen=True, slots=True)
class KubeTarget:
    """Where the API is and what to manage there."""

    api_url: str
    namespace: str
    statefulset: str
    pod_selector: str
    in_cluster: bool
    token_file: str = ""


def target_from(settings: Settings, env: Mapping[str, str] | None = None) -> KubeTarget | None:
    """Return the Kubernetes target the settings describe, or None outside a cluster."""
    env = os.environ if env is None else env
    orch = settings.orchestrator
    in_cluster = not orch.kube_api_url and bool(env.get("KUBERNETES_SERVICE_HOST"))
    if not orch.kube_api_url and not in_cluster:
        return None
    namespace = orch.kube_namespace
    if not namespace:
        try:
            namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
        except OSError:
            namespace = "default"
    return KubeTarget(
        api_url=orch.kube_api_url,
        namespace=namespace,
        statefulset=orch.feed_brain_statefulset or statefulset_name(env.get("HOSTNAME", "")),
        pod_selector=orch.pod_selector,
        in_cluster=in_cluster,
        token_file=orch.kube_token_file,
    )


def statefulset_name(pod_name: str) -> str:
    """Return ``<fullname>-feed-brain`` for the orchestrator pod ``<fullname>-orchestrator-<hash>-<hash>``."""
    match = _DEPLOYMENT_POD.match(pod_name)
    return f"{match.group('fullname') if match else 'aegis'}-{FEED_BRAIN_COMPONENT}"


def shard_of_pod(name: str, labels: Mapping[str, str] | None) -> int:
    if (labels or {}).get(_COMPONENT_LABEL) != FEED_BRAIN_COMPONENT:
        return -1
    match = _ORDINAL.search(name)
    return int(match.group(1)) if match else -1


class KubeClient:
    """The three Kubernetes calls the orchestrator makes."""

    def __init__(self, target: KubeTarget, *, timeout_s: float = 5.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._api: Any = None

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes.aio import client, config

            configuration = client.Configuration()
            if self.target.in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                configuration.host = self.target.api_url.rstrip("/")
                if self.target.token_file:
                    token = Path(self.target.token_file).read_text().strip()
                    configuration.api_key = {"BearerToken": token}
                    configuration.api_key_prefix = {"BearerToken": "Bearer"}
            self._api = client.ApiClient(configuration)
        return self._api

    async def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    async def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.aio.client.exceptions import ApiException

        try:
            return await method(*args, _request_timeout=self.timeout_s, **kwargs)
        except ApiException as exc:
            raise KubernetesError(f"Kubernetes API: {what}: HTTP {exc.status} {exc.reason or ''}".strip()) from exc
        except (OSError, TimeoutError) as exc:
            raise KubernetesError(f"Kubernetes API: {what}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # aiohttp's client errors and the client's own
            raise KubernetesError(f"Kubernetes API: {what}: {type(exc).__name__}: {exc}") from exc

    async def list_pods(self) -> list[PodInfo]:
        from kubernetes.aio import client

        core = client.CoreV1Api(self._client())
        listing = await self._call(
            "list pods",
            core.list_namespaced_pod,
            self.target.namespace,
            label_selector=self.target.pod_selector or None,
        )
        return sorted((_pod_info(p) for p in listing.items or []), key=lambda p: p.name)

    async def get_replicas(self) -> int:
        from kubernetes.aio import client

        apps = client.AppsV1Api(self._client())
        scale = await self._call(
            f"get statefulsets/{self.target.statefulset}/scale",
            apps.read_namespaced_stateful_set_scale,
            self.target.statefulset,
            self.target.namespace,
        )
        return int(scale.spec.replicas or 0) if scale.spec is not None else 0

    async def set_replicas(self, replicas: int) -> int:
        from kubernetes.aio import client

        apps = client.AppsV1Api(self._client())
        scale = await self._call(
            f"patch statefulsets/{self.target.statefulset}/scale",
            apps.patch_namespaced_stateful_set_scale,
            self.target.statefulset,
            self.target.namespace,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
        )
        return int(scale.spec.replicas or 0) if scale.spec is not None else replicas


def _pod_info(pod: Any) -> PodInfo:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    labels = dict(meta.labels or {}) if meta is not None else {}
    name = meta.name if meta is not None and meta.name else ""
    conditions = (status.conditions or []) if status is not None else []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    containers = (status.container_statuses or []) if status is not None else []
    return PodInfo(
        name=name,
        phase=(status.phase or "") if status is not None else "",
        ready=ready,
        restarts=sum(int(c.restart_count or 0) for c in containers),
        node=(spec.node_name or "") if spec is not None else "",
        shard_index=shard_of_pod(name, labels),
        start_time=status.start_time if status is not None else None,
        component=labels.get(_COMPONENT_LABEL, ""),
    )


@dataclass(frozen=True, slots=True)
class ScaleOutcome:
    statefulset: str
    before: int
    wanted: int
    after: int
    dry_run: bool

    @property
    def changed(self) -> bool:
        return self.before != self.after


def replicas_wanted(shards: int, max_shards: int) -> int:
    """Return the StatefulSet size for ``shards`` shards: at least one pod, at most ``max_shards``."""
    return max(1, min(shards, max_shards))


async def scale_feed_brain(kube: KubeClient, shards: int, *, max_shards: int, dry_run: bool) -> ScaleOutcome:
    """Set the feed-brain StatefulSet to one pod per shard (read first; patch only when it differs)."""
    wanted = replicas_wanted(shards, max_shards)
    if shards > max_shards:
        log.error(
            "the universe needs %d shards but AEGIS_ORCHESTRATOR_MAX_SHARDS is %d: symbols of shards %d and up have "
            "no pod; raise AEGIS_SHARD_SIZE or AEGIS_ORCHESTRATOR_MAX_SHARDS",
            shards,
            max_shards,
            max_shards,
        )
    before = await kube.get_replicas()
    after = before
    if before != wanted and not dry_run:
        after = await kube.set_replicas(wanted)
        log.warning("scaled %s from %d to %d pods (one per shard)", kube.target.statefulset, before, after)
    return ScaleOutcome(kube.target.statefulset, before, wanted, wanted if dry_run else after, dry_run)
