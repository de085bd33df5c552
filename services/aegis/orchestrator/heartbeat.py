"""The heartbeat line: the system's key figures on one WARNING line, every 15 minutes by default.

It is logged at WARNING on purpose, like the seeds' heartbeat: a deployment that keeps only warnings and errors
still shows, four times an hour, that the system is alive and what it is doing. Example::

    HEARTBEAT services 5/6 SERVING (trainer UNREACHABLE) | open positions 3 (learning 2, paper 1, live 0) |
    equity learning 10012.50, paper 9998.10, live 0.00 | last training run 2026-11-02T10:00:00Z succeeded
    model 20261102-1000 promoted | feed 123.4 msg/s, 12 rejects | brain lag 0.20 s | postgres ok, redis ok

(one line in the log; wrapped here). The same figures travel as structured fields of the JSON log record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aegis.orchestrator.probes import SERVING
from aegis.orchestrator.status import SystemSnapshot

PREFIX = "HEARTBEAT"


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def heartbeat_line(s: SystemSnapshot) -> str:
    """Return the one-line summary of ``s`` (pure)."""
    down = [f"{p.name} {p.status}" for p in s.services if p.status != SERVING]
    parts = [f"services {s.serving}/{len(s.services)} SERVING" + (f" ({', '.join(down)})" if down else "")]
    if s.accounts is None:
        parts.append("open positions unknown (PostgreSQL unreadable)")
    else:
        total = sum(a.open_positions for a in s.accounts)
        each = ", ".join(f"{a.account} {a.open_positions}" for a in s.accounts)
        parts.append(f"open positions {total}" + (f" ({each})" if each else ""))
        equities = ", ".join(
            f"{a.account} {'unknown' if a.equity is None else f'{a.equity:.2f}'}" + (" HALTED" if a.halted else "")
            for a in s.accounts
        )
        parts.append(f"equity {equities}" if equities else "equity: no accounts yet")
    run = s.last_training_run
    if run is None:
        parts.append("last training run none")
    else:
        text = f"last training run {_time(run.started_at)} {run.status}"
        if run.model_version:
            text += f" model {run.model_version}" + (" promoted" if run.promoted else "")
        parts.append(text)
    parts.append(f"feed {s.feed_messages_per_second:.1f} msg/s, {s.feed_rejects_total} rejects")
    parts.append(f"brain lag {s.brain_lag_s:.2f} s")
    parts.append(f"postgres {'ok' if s.postgres.healthy else 'DOWN'}, redis {'ok' if s.redis.healthy else 'DOWN'}")
    return f"{PREFIX} " + " | ".join(parts)


def heartbeat_fields(s: SystemSnapshot) -> dict[str, Any]:
    """Return the same figures as structured log fields."""
    return {
        "services_serving": s.serving,
        "services_total": len(s.services),
        "open_positions": None if s.accounts is None else sum(a.open_positions for a in s.accounts),
        "equity": None
        if s.accounts is None
        else {a.account: None if a.equity is None else str(a.equity) for a in s.accounts},
        "last_training_run": None
        if s.last_training_run is None
        else {"started": _time(s.last_training_run.started_at), "status": s.last_training_run.status},
        "feed_messages_per_second": round(s.feed_messages_per_second, 3),
        "feed_rejects_total": s.feed_rejects_total,
        "brain_lag_s": round(s.brain_lag_s, 3),
    }
