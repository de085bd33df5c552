"""Brain, trainer and orchestrator serve their own metrics on /metrics (gRPC port + 1000)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from aegis import testing


@pytest.mark.parametrize(
    ("service", "names"),
    [
        ("trainer", ["aegis_trainer_running", "aegis_trainer_active_models"]),
        ("orchestrator", ["aegis_orchestrator_leader", "aegis_orchestrator_duty_interval_seconds"]),
        ("brain", ["aegis_brain_tick_to_signal_seconds"]),
    ],
)
def test_service_metrics_are_served(
    service: str, names: list[str], service_env: dict[str, str], tmp_path: Path
) -> None:
    port = testing.free_port()
    metrics_port = testing.free_port()
    env = {**service_env, "AEGIS_METRICS_PORT": str(metrics_port)}
    with testing.service(service, env, tmp_path, port=port) as proc:
        assert proc.wait_status("SERVING"), proc.log_text()

        def scraped() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as reply:
                    return reply.read().decode()
            except OSError:
                return ""

        assert testing.wait_until(lambda: all(name in scraped() for name in names), 20, 0.5), scraped()[-2000:]
