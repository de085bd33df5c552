"""The heartbeat line: one line with the key figures, stable wording."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from aegis.orchestrator import probes
from aegis.orchestrator.heartbeat import heartbeat_fields, heartbeat_line
from aegis.orchestrator.status import AccountFigures, ShardFigures, SystemSnapshot, TrainingRunFigures

NOW = dt.datetime(2026, 11, 15, 12, 0, tzinfo=dt.UTC)


def service(name: str, status: str = probes.SERVING) -> probes.ServiceProbe:
    return probes.ServiceProbe(name, f"127.0.0.1:{len(name)}", status, "0.1.0", 0.001, "", NOW)


def snapshot(**changes: object) -> SystemSnapshot:
    base = dict(
        services=[
            service("feed"),
            service("brain"),
            service("risk"),
            service("virtual_account"),
            service("trainer", probes.UNREACHABLE),
            service("orchestrator"),
        ],
        feed_messages_per_second=123.44,
        feed_rejects_total=12,
        feed_rejects={"STALE": 12},
        shards=[ShardFigures(0, brain_lag_s=0.2)],
        brain_lag_s=0.2,
        accounts=[
            AccountFigures("learning", "learning", 2, Decimal("10012.504"), False),
            AccountFigures("live", "live", 0, None, False),
            AccountFigures("paper", "paper", 1, Decimal("9998.1"), True),
        ],
        last_training_run=TrainingRunFigures(
            "r1", "succeeded", "schedule", 1, NOW - dt.timedelta(hours=2), NOW, "20261115-1000", True, ""
        ),
        postgres=probes.DependencyProbe(True, 0.001, "17.2", "db:5432/aegis", ""),
        redis=probes.DependencyProbe(True, 0.0005, "7.4", "redis:6379/0", ""),
        leader=True,
        leader_identity="orch-0:1",
        in_cluster=False,
        pods=[],
        as_of=NOW,
    )
    base.update(changes)
    return SystemSnapshot(**base)  # type: ignore[arg-type]


def test_the_heartbeat_line_carries_the_key_figures_on_one_line() -> None:
    line = heartbeat_line(snapshot())
    assert line == (
        "HEARTBEAT services 5/6 SERVING (trainer UNREACHABLE) | open positions 3 (learning 2, live 0, paper 1) | "
        "equity learning 10012.50, live unknown, paper 9998.10 HALTED | "
        "last training run 2026-11-15T10:00:00Z succeeded model 20261115-1000 promoted | "
        "feed 123.4 msg/s, 12 rejects | brain lag 0.20 s | postgres ok, redis ok"
    )
    assert "\n" not in line


def test_the_heartbeat_line_says_what_is_unknown() -> None:
    line = heartbeat_line(
        snapshot(
            accounts=None,
            last_training_run=None,
            postgres=probes.DependencyProbe(False, 0.0, "", "db:5432/aegis", "refused"),
        )
    )
    assert "open positions unknown (PostgreSQL unreadable)" in line
    assert "last training run none" in line
    assert "postgres DOWN, redis ok" in line
    assert "equity" not in line


def test_the_heartbeat_fields_are_structured() -> None:
    fields = heartbeat_fields(snapshot())
    assert fields["services_serving"] == 5 and fields["services_total"] == 6
    assert fields["open_positions"] == 3
    assert fields["equity"] == {"learning": "10012.504", "live": None, "paper": "9998.1"}
    assert fields["feed_rejects_total"] == 12
