"""`aegis bench replay --quick`: the bench's own side (the whole system, as processes) runs on a small input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

CLEARED = ("DATABASE_URL", "REDIS_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "AEGIS_CONFIG")


def test_the_quick_bench_measures_our_side_and_claims_no_ratio(shared_data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("AEGIS_")}
    env.update(AEGIS_SHUTDOWN_GRACE_S="2", AEGIS_HEALTH_INTERVAL_S="0.2")
    done = subprocess.run(
        [sys.executable, "-m", "aegis", "bench", "replay", "--quick", "--quick-lines", "2000", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "replay"
    assert result["ratios"] == {} and result["baseline"] is None  # no baseline ran: no ratio is claimed
    values = {r["name"]: r["value"] for r in result["results"]}
    ours = result["ours"]
    assert ours["frames"] == result["load"]["frames"] == 2 * 2000 * result["load"]["repeat"]
    assert 0 < ours["events"] <= ours["frames"]
    assert values["ours_events_per_s"] == pytest.approx(ours["events"] / ours["timed_s"])
    # timed: from the feed's replay start (after start-up) to the final counters, so it covers the feed's own
    # replay (reading, decoding, publishing every frame) and leaves the services' start-up out
    assert 0 < ours["feed_replay_s"] <= ours["timed_s"] < ours["replay_wall_s"]
    # the end is the work's own end (the feed's and the brain's stamps), not when the polling noticed it
    assert ours["end_from"] == "stamps" and ours["detection_s"] >= 0
    assert ours["brain_after_feed_s"] is not None and ours["records_lost"] == 0
    assert ours["brain_max_lag_records"] is not None and ours["brain_max_lag_records"] >= 0
    assert 0 < ours["brain_records_per_batch"] <= 4096  # AEGIS_BRAIN_BATCH_RECORDS
    # every process's CPU over the timed interval: the feed decoded every frame, the brain read every record
    cpu = ours["cpu_s"]
    assert cpu["interval_s"] >= ours["timed_s"] and cpu["before_start_s"] >= 0 and cpu["after_end_s"] >= 0
    assert {"feed", "brain", "postgres", "redis", "virtual_account", "runner"} <= set(cpu["processes"])
    assert cpu["processes"]["feed"] > 0 and values["ours_cpu_s"] == cpu["total_s"]
    assert all(len(result["load_average"][k]) == 3 for k in ("start", "after_ours", "end"))  # the load is stated
    assert ours["price_windows_sealed"] > 0 and ours["price_pushes"] == 0  # no position opens on 4 s of data


def test_without_nautilus_and_no_install_the_bench_fails_and_prints_no_ratio(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aegis", "bench", "replay", "--venv", str(tmp_path / "none"), "--no-install", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3
    assert "NautilusTrader is not installed" in done.stderr
    assert '"ratios"' not in done.stdout
