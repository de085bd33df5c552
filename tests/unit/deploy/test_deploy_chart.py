"""The rendered Helm chart (charts/aegis): probes, the shared ring, security contexts, RBAC, live-mode refusal.

Renders with the helm that infra/scripts/k8s-check.sh installs into .tools/bin (skipped without it) for the
default values and each profile's values file, then checks the objects themselves.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis import config
from aegis.server import LIVENESS_SERVICE

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (bash infra/scripts/k8s-check.sh installs it)")

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts/aegis"
HELM = REPO / ".tools/bin/helm"
RELEASE = "aegis"
PROFILES = {
    "default": [],
    "dev": ["-f", "charts/aegis/values-dev.yaml"],
    "prod": ["-f", "charts/aegis/values-prod.yaml"],
}
LIVE = ["--set", "mode=live", "--set", "binance.existingSecret=aegis-binance"]
CONFIRM = ["--set", f"liveConfirm={config.LIVE_CONFIRMATION}"]
AEGIS_MODULES = {f"aegis.{name}" for name in config.SERVICES}

pytestmark = pytest.mark.skipif(
    not HELM.is_file(), reason="helm is not installed at .tools/bin/helm (bash infra/scripts/k8s-check.sh installs it)"
)


def helm_template(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), "template", RELEASE, "charts/aegis", "--namespace", "aegis", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def render(*args: str) -> list[dict]:
    result = helm_template(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=list(PROFILES))
def objects(request: pytest.FixtureRequest) -> list[dict]:
    return render(*PROFILES[request.param])


def pod_specs(objects: list[dict]) -> Iterator[tuple[str, dict]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield f"Pod/{obj['metadata']['name']}", obj["spec"]


def aegis_service_containers(objects: list[dict]) -> Iterator[tuple[str, dict]]:
    """Every long-running AEGIS service container: `python -m aegis.<service>` in a Deployment or StatefulSet."""
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            command = container.get("command", [])
            if command[:2] == ["python", "-m"] and command[2] in AEGIS_MODULES:
                yield f"{obj['metadata']['name']}/{container['name']}", container


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def config_map(objects: list[dict]) -> dict[str, str]:
    return by_kind(objects, "ConfigMap")[f"{RELEASE}-config"]["data"]


def test_every_service_runs_once_in_the_expected_workload(objects: list[dict]) -> None:
    modules = {c["command"][2]: name for name, c in aegis_service_containers(objects)}
    assert set(modules) == AEGIS_MODULES
    assert modules["aegis.feed"] == f"{RELEASE}-feed-brain/feed"
    assert modules["aegis.brain"] == f"{RELEASE}-feed-brain/brain"
    feed_brain = by_kind(objects, "StatefulSet")[f"{RELEASE}-feed-brain"]
    assert [c["name"] for c in feed_brain["spec"]["template"]["spec"]["containers"]] == ["feed", "brain"]
    for deployment in ("risk", "virtual-account", "trainer", "orchestrator"):
        assert f"{RELEASE}-{deployment}" in by_kind(objects, "Deployment")
        assert f"{RELEASE}-{deployment}" in by_kind(objects, "Service")


def test_every_aegis_container_has_native_grpc_probes_on_its_own_port(objects: list[dict]) -> None:
    data = config_map(objects)
    for name, container in aegis_service_containers(objects):
        service = container["command"][2].removeprefix("aegis.")
        port = int(data[f"AEGIS_{service.upper()}_PORT"])
        grpc_ports = [p["containerPort"] for p in container["ports"] if p.get("name", "").startswith("grpc")]
        assert grpc_ports == [port], name  # (the other port is the Prometheus metrics port)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["grpc"]["port"] == port, (name, probe)
        # Liveness must not follow the databases: only readiness asks for the overall ("") status.
        assert container["startupProbe"]["grpc"]["service"] == LIVENESS_SERVICE, name
        assert container["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE, name
        assert "service" not in container["readinessProbe"]["grpc"], name


def test_feed_and_brain_share_the_memory_backed_ring(objects: list[dict]) -> None:
    spec = by_kind(objects, "StatefulSet")[f"{RELEASE}-feed-brain"]["spec"]["template"]["spec"]
    shm = {v["name"]: v for v in spec["volumes"]}["shm"]["emptyDir"]
    assert shm["medium"] == "Memory"
    assert shm["sizeLimit"]
    for container in spec["containers"]:
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/dev/shm"] == "shm", container["name"]
    data = config_map(objects)
    assert data["AEGIS_RING_PATH"] == "/dev/shm/aegis-ring"
    assert data["AEGIS_SHARD_INDEX"] == "-1", "the shard must come from the pod ordinal"


def test_every_pod_runs_unprivileged_with_a_read_only_root(objects: list[dict]) -> None:
    specs = list(pod_specs(objects))
    assert specs
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert container["resources"]["limits"] and container["resources"]["requests"], where
    for name, container in aegis_service_containers(objects):
        assert container["securityContext"]["runAsUser"] == 1000, name
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", config_map(objects)["NUMBA_CACHE_DIR"]} <= mounts, name


def test_rbac_is_limited_to_reading_pods_and_scaling_the_feed_brain_statefulset(objects: list[dict]) -> None:
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = by_kind(objects, "Role")
    assert list(roles) == [f"{RELEASE}-orchestrator"]
    rules = sorted(
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])), tuple(r.get("resourceNames", [])))
        for r in roles[f"{RELEASE}-orchestrator"]["rules"]
    )
    assert rules == [
        (("",), ("pods",), ("get", "list", "watch"), ()),
        (("apps",), ("statefulsets/scale",), ("get", "patch", "update"), (f"{RELEASE}-feed-brain",)),
    ]
    binding = by_kind(objects, "RoleBinding")[f"{RELEASE}-orchestrator"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-orchestrator", "namespace": "aegis"}]
    # Only the orchestrator's pods get an API token.
    for name, spec in pod_specs(objects):
        expected = name == f"Deployment/{RELEASE}-orchestrator"
        assert spec.get("automountServiceAccountToken") is expected, name


def test_network_policies_deny_by_default(objects: list[dict]) -> None:
    policies = by_kind(objects, "NetworkPolicy")
    deny = policies[f"{RELEASE}-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    assert deny["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE


GRPC_FLOWS = {
    ("feed-brain", "risk"),
    ("feed-brain", "virtual-account"),
    ("risk", "virtual-account"),
    *{("orchestrator", s) for s in ("feed-brain", "risk", "virtual-account", "trainer")},
    *{("test", s) for s in ("feed-brain", "risk", "virtual-account", "trainer", "orchestrator")},
}


def _component(selector: dict) -> str:
    return selector["matchLabels"]["app.kubernetes.io/component"]


def test_network_policies_open_exactly_the_grpc_flows_of_the_topology(objects: list[dict]) -> None:
    egress: set[tuple[str, str]] = set()
    ingress: set[tuple[str, str]] = set()
    for name, policy in by_kind(objects, "NetworkPolicy").items():
        if not name.startswith(f"{RELEASE}-grpc-"):
            continue
        selected = _component(policy["spec"]["podSelector"])
        for rule in policy["spec"].get("egress", []):
            egress |= {(selected, _component(peer["podSelector"])) for peer in rule["to"]}
        for rule in policy["spec"].get("ingress", []):
            ingress |= {(_component(peer["podSelector"]), selected) for peer in rule["from"]}
    # Both ends must agree: an egress rule without the matching ingress rule (or the reverse) drops the call.
    assert egress == ingress == GRPC_FLOWS
    binance = by_kind(objects, "NetworkPolicy")[f"{RELEASE}-binance"]["spec"]
    components = {e["key"]: e["values"] for e in binance["podSelector"]["matchExpressions"]}
    assert set(components["app.kubernetes.io/component"]) == {"feed-brain", "risk", "virtual-account", "orchestrator"}
    assert binance["egress"][0]["ports"] == [{"port": 443, "protocol": "TCP"}]


def test_every_environment_variable_the_chart_sets_is_one_the_runtime_reads(objects: list[dict]) -> None:
    known = {row["variable"] for row in config.describe()}
    known |= {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "NUMBA_CACHE_DIR", "REDIS_PASSWORD"}
    names = set(config_map(objects))
    for _, container in aegis_service_containers(objects):
        names |= {e["name"] for e in container.get("env", [])}
    assert names - known == set()


def test_paper_mode_gives_no_container_the_binance_keys(objects: list[dict]) -> None:
    assert config_map(objects)["AEGIS_MODE"] == "paper"
    for name, spec in pod_specs(objects):
        for container in spec["containers"]:
            env = {e["name"] for e in container.get("env", [])}
            assert not env & {"BINANCE_API_KEY", "BINANCE_API_SECRET"}, name


def test_live_mode_refuses_to_render_without_the_confirmation() -> None:
    result = helm_template(*LIVE)
    assert result.returncode != 0
    assert f"liveConfirm={config.LIVE_CONFIRMATION}" in result.stderr
    no_keys = helm_template("--set", "mode=live", *CONFIRM)
    assert no_keys.returncode != 0 and "Binance keys" in no_keys.stderr
    wrong = helm_template(*LIVE, "--set", "liveConfirm=yes")
    assert wrong.returncode != 0


def test_live_mode_with_the_confirmation_hands_the_keys_to_every_service() -> None:
    objects = render(*LIVE, *CONFIRM)
    data = config_map(objects)
    assert data["AEGIS_MODE"] == "live"
    assert data["AEGIS_LIVE_CONFIRM"] == config.LIVE_CONFIRMATION
    for name, container in aegis_service_containers(objects):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
        assert refs["BINANCE_API_KEY"] == refs["BINANCE_API_SECRET"] == "aegis-binance", name


def test_external_databases_replace_the_bundled_ones() -> None:
    objects = render("-f", "charts/aegis/values-prod.yaml")
    assert f"{RELEASE}-postgresql" not in by_kind(objects, "StatefulSet")
    assert f"{RELEASE}-redis" not in by_kind(objects, "StatefulSet")
    for name, container in aegis_service_containers(objects):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert refs["REDIS_URL"] == {"name": "aegis-redis", "key": "REDIS_URL"}, name
        if not name.endswith("/feed"):
            assert refs["DATABASE_URL"] == {"name": "aegis-database", "key": "DATABASE_URL"}, name
    job = by_kind(objects, "Job")[f"{RELEASE}-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "aegis", "migrate"]


def test_shards_follow_the_values_and_must_cover_every_symbol() -> None:
    objects = render("--set", "feedBrain.shards=3", "--set", "config.symbolCount=150")
    assert by_kind(objects, "StatefulSet")[f"{RELEASE}-feed-brain"]["spec"]["replicas"] == 3
    too_few = helm_template("--set", "feedBrain.shards=1", "--set", "config.symbolCount=150")
    assert too_few.returncode != 0 and "raise feedBrain.shards" in too_few.stderr


def test_the_helm_test_checks_every_shard_with_aegis_status(objects: list[dict]) -> None:
    pod = by_kind(objects, "Pod")[f"{RELEASE}-test-status"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert "python -m aegis status --json" in container["args"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    replicas = by_kind(objects, "StatefulSet")[f"{RELEASE}-feed-brain"]["spec"]["replicas"]
    assert env["SHARDS"] == str(replicas)


def test_every_aegis_container_environment_loads_as_a_valid_configuration(
    objects: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Kubernetes hands each container (ConfigMap, then env, $(VAR) expanded) passes aegis.config.load."""
    data = config_map(objects)
    monkeypatch.setenv("HOSTNAME", f"{RELEASE}-feed-brain-3")
    for name, container in aegis_service_containers(objects):
        env = dict(data)
        for var in container.get("env", []):
            value = var.get("value", "secret-from-a-kubernetes-secret")
            if "valueFrom" in var and var["name"] == "DATABASE_URL":
                value = "postgresql://aegis:pw@db.example:5432/aegis"
            if "valueFrom" in var and var["name"] == "REDIS_URL":
                value = "rediss://:pw@redis.example:6379/0"
            for ref, replacement in env.items():
                value = value.replace(f"$({ref})", replacement)
            env[var["name"]] = value
        settings = config.load(env)
        settings.check_live_mode()
        assert settings.mode == "paper", name
        assert settings.shard == 3, name
        assert str(settings.ring_file) == "/dev/shm/aegis-ring", name
        assert settings.redis().startswith(("redis://", "rediss://")), name
        if not name.endswith("/feed"):
            assert settings.dsn().startswith("postgresql://"), name


TLS = ["--set", "tls.enabled=true", "--set", "tls.secretName=aegis-internal-tls"]


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_mounts_the_secret_read_only_and_points_every_aegis_container_at_it(
    mutual: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(*TLS, *(["--set", "tls.clientAuth=true"] if mutual else []))
    data = config_map(objects)
    checked = 0
    for name, spec in pod_specs(objects):
        containers = [c for c in spec["containers"] if c["image"].split(":")[0] == "aegis"]  # not the databases
        if not containers or name.startswith("Job/"):  # the migration hook makes no gRPC call
            continue
        volumes = {v["name"]: v for v in spec["volumes"]}
        secret = volumes["tls"]["secret"]
        assert secret["secretName"] == "aegis-internal-tls" and secret["defaultMode"] == 0o440, name
        assert {i["key"] for i in secret["items"]} == {"tls.crt", "tls.key", "ca.crt"}, name
        for container in containers:
            mounts = {m["name"]: m for m in container["volumeMounts"]}
            assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/aegis/tls", "readOnly": True}, name
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["AEGIS_TLS_CERT"] == "/etc/aegis/tls/tls.crt", name
            assert env["AEGIS_TLS_KEY"] == "/etc/aegis/tls/tls.key", name
            assert env["AEGIS_TLS_CA"] == "/etc/aegis/tls/ca.crt", name
            assert env["AEGIS_TLS_CLIENT_AUTH"] == ("true" if mutual else "false"), name
            # what the runtime makes of it: a TLS server and TLS clients (mutual: with a client certificate)
            settings = config.load({**data, **{k: v for k, v in env.items() if v is not None}})
            obs = settings.observability
            assert (obs.tls_cert, obs.tls_key, obs.tls_ca) == tuple(
                env[f"AEGIS_TLS_{k}"] for k in ("CERT", "KEY", "CA")
            )
            assert obs.tls_client_auth is mutual, name
            checked += 1
    assert checked == 7  # risk, virtual-account, trainer, orchestrator, feed, brain, and the helm test's client


def test_tls_probes_use_the_metrics_port_because_the_kubelet_cannot_probe_a_tls_grpc_port() -> None:
    objects = render(*TLS)
    data = config_map(objects)
    offset = int(data["AEGIS_METRICS_PORT_OFFSET"])
    containers = list(aegis_service_containers(objects))
    assert len(containers) == 6
    for name, container in containers:
        service = container["command"][2].removeprefix("aegis.")
        metrics_port = int(data[f"AEGIS_{service.upper()}_PORT"]) + offset
        assert metrics_port in [p["containerPort"] for p in container["ports"] if p["name"].startswith("metrics")]
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert "grpc" not in container[probe], (name, probe)
            assert container[probe]["httpGet"] == {"port": metrics_port, "path": path}, (name, probe)


def test_tls_needs_its_secret_and_the_metrics_port_and_is_off_by_default(objects: list[dict]) -> None:
    no_secret = helm_template("--set", "tls.enabled=true")
    assert no_secret.returncode != 0 and "tls.secretName" in no_secret.stderr
    no_metrics = helm_template(*TLS, "--set", "metrics.enabled=false")
    assert no_metrics.returncode != 0 and "metrics.enabled" in no_metrics.stderr
    mutual_only = helm_template("--set", "tls.clientAuth=true")
    assert mutual_only.returncode != 0 and "tls.clientAuth needs tls.enabled" in mutual_only.stderr
    for name, spec in pod_specs(objects):
        assert "tls" not in {v["name"] for v in spec.get("volumes", [])}, name
        for container in spec["containers"]:
            assert not {e["name"] for e in container.get("env", [])} & {"AEGIS_TLS_CERT", "AEGIS_TLS_CA"}, name


def test_every_service_exposes_its_metrics_port_to_prometheus(objects: list[dict]) -> None:
    data = config_map(objects)
    offset = int(data["AEGIS_METRICS_PORT_OFFSET"])
    services = by_kind(objects, "Service")
    for name, container in aegis_service_containers(objects):
        service = container["command"][2].removeprefix("aegis.")
        port = int(data[f"AEGIS_{service.upper()}_PORT"]) + offset
        (named,) = [p for p in container["ports"] if p["containerPort"] == port]
        assert named["name"] in ("metrics", f"metrics-{service}"), name
        workload = name.split("/")[0]
        ports = {p["name"]: p for p in services[workload]["spec"]["ports"]}
        assert ports[named["name"]]["port"] == port and ports[named["name"]]["targetPort"] == named["name"], name
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] in {
            n.split("/")[0] for n, _ in aegis_service_containers(objects)
        }:
            annotations = obj["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
