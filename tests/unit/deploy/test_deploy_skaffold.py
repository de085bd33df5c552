"""skaffold.yaml and the image it builds: the file parses, names only paths that exist, and wires the chart.

Static checks only (no Docker engine, no cluster); infra/scripts/k8s-check.sh lints and validates the chart itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (bash infra/scripts/k8s-check.sh installs it)")

REPO = Path(__file__).resolve().parents[3]
SKAFFOLD = REPO / "skaffold.yaml"
PROFILES = ("dev", "prod")


@pytest.fixture(scope="module")
def skaffold() -> dict:
    return yaml.safe_load(SKAFFOLD.read_text(encoding="utf-8"))


def _releases(config: dict) -> list[dict]:
    return config.get("deploy", {}).get("helm", {}).get("releases", [])


def _all_pipelines(config: dict) -> list[dict]:
    """The base pipeline and every profile's (a profile's build/deploy replaces the base one when present)."""
    return [config, *config.get("profiles", [])]


def test_skaffold_is_a_v4_config_named_aegis(skaffold: dict) -> None:
    assert re.fullmatch(r"skaffold/v4beta\d+", skaffold["apiVersion"])
    assert skaffold["kind"] == "Config"
    assert skaffold["metadata"]["name"] == "aegis"
    assert [p["name"] for p in skaffold["profiles"]] == list(PROFILES)


def test_every_path_skaffold_names_exists(skaffold: dict) -> None:
    named: list[str] = []
    for pipeline in _all_pipelines(skaffold):
        for artifact in pipeline.get("build", {}).get("artifacts", []):
            context = REPO / artifact.get("context", ".")
            named.append(str(context.relative_to(REPO)) or ".")
            named.append(str((context / artifact["docker"]["dockerfile"]).relative_to(REPO)))
        for release in _releases(pipeline):
            named.append(release["chartPath"])
            named.extend(release.get("valuesFiles", []))
    assert named, "skaffold.yaml names no artifact or chart"
    missing = [p for p in named if not (REPO / p).exists()]
    assert not missing, f"skaffold.yaml names paths that do not exist: {missing}"
    assert (REPO / "charts/aegis/Chart.yaml").is_file()


def test_every_release_takes_the_built_image(skaffold: dict) -> None:
    images = {a["image"] for p in _all_pipelines(skaffold) for a in p.get("build", {}).get("artifacts", [])}
    assert images == {"aegis"}
    releases = [r for p in _all_pipelines(skaffold) for r in _releases(p)]
    assert len(releases) == 2
    for release in releases:
        assert release["chartPath"] == "charts/aegis"
        image = {k: v for k, v in release["setValueTemplates"].items() if k.startswith("image.")}
        assert image == {
            "image.repository": "{{.IMAGE_REPO_aegis}}",
            "image.tag": "{{.IMAGE_TAG_aegis}}",
            "image.digest": "{{.IMAGE_DIGEST_aegis}}",
        }


def test_only_prod_can_go_live_and_only_when_asked_with_the_confirmation(skaffold: dict) -> None:
    assert set(_releases(skaffold)[0]["setValueTemplates"]) == {"image.repository", "image.tag", "image.digest"}
    prod = next(p for p in skaffold["profiles"] if p["name"] == "prod")
    templates = _releases(prod)[0]["setValueTemplates"]
    assert templates["mode"] == '{{default "paper" .AEGIS_MODE}}'
    assert templates["liveConfirm"] == '{{default "" .AEGIS_LIVE_CONFIRM}}'


def test_dev_profile_forwards_every_grpc_port_and_prod_uses_external_databases(skaffold: dict) -> None:
    profiles = {p["name"]: p for p in skaffold["profiles"]}
    forwarded = sorted(f["localPort"] for f in profiles["dev"]["portForward"])
    assert forwarded == list(range(50051, 50057))
    assert _releases(skaffold)[0]["valuesFiles"] == ["charts/aegis/values-dev.yaml"]
    assert _releases(profiles["prod"])[0]["valuesFiles"] == ["charts/aegis/values-prod.yaml"]
    prod_values = yaml.safe_load((REPO / "charts/aegis/values-prod.yaml").read_text(encoding="utf-8"))
    assert prod_values["postgresql"]["enabled"] is False
    assert prod_values["redis"]["enabled"] is False
    assert prod_values["mode"] == "paper", "live mode must stay an explicit decision, not a profile default"


def test_dockerfile_pins_its_base_by_digest_and_runs_unprivileged() -> None:
    dockerfile = (REPO / "infra/Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert stages and all(s == "${PYTHON_IMAGE}" for s in stages), stages
    assert re.search(r"^USER 1000:1000$", dockerfile, re.M)
    assert "PYTHONUNBUFFERED=1" in dockerfile
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!services/"]
