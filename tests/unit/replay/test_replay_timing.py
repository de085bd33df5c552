"""What `aegis replay` times: the services' own stamps (not the polling), and each process's CPU over that interval."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from aegis.replay import activity, cpu, runner

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"


def test_the_end_is_the_later_of_the_feeds_last_frame_and_the_brains_last_work() -> None:
    feed = {"replay_started_ns": 1_000_000_000_000, "replay_finished_ns": 1_002_000_000_000}
    brain = {"work": {"last_work_ns": 1_002_015_000_000, "max_lag_records": 6782}}
    timing = runner.replay_timing(feed, brain, seen_wall_s=1002.3)
    assert timing["end_from"] == "stamps"
    assert timing["timed_s"] == pytest.approx(2.015)  # not 2.3: the check saw it 0.285 s later
    assert timing["detection_s"] == pytest.approx(0.285)
    assert timing["brain_after_feed_s"] == pytest.approx(0.015)
    assert timing["brain_max_lag_records"] == 6782
    # a brain whose work ended before the feed's last frame (nothing left to do): the feed's stamp ends it
    brain["work"]["last_work_ns"] = 1_001_900_000_000
    assert runner.replay_timing(feed, brain, 1002.3)["timed_s"] == pytest.approx(2.0)


def test_without_the_brains_stamp_the_end_is_when_the_check_saw_it_and_says_so() -> None:
    feed = {"replay_started_ns": 1_000_000_000_000, "replay_finished_ns": 1_002_000_000_000}
    timing = runner.replay_timing(feed, {}, seen_wall_s=1002.3)
    assert timing["end_from"] == "completion_check"
    assert timing["timed_s"] == pytest.approx(2.3)
    assert runner.replay_timing({}, {}, 1002.3)["timed_s"] is None  # no start stamp: nothing timed


def test_the_work_clock_stamps_the_last_change_not_the_last_look() -> None:
    counters = {"records": 0}
    lag = [5]
    clock = activity.WorkClock(lambda: dict(counters), lambda: lag[0])
    assert clock.check() and clock.last_work_ns is not None  # the first look is a change
    counters["records"] = 10
    lag[0] = 120
    before = time.time_ns()
    assert clock.check()
    stamped = clock.last_work_ns
    assert stamped is not None and stamped >= before
    lag[0] = 0
    time.sleep(0.01)
    assert not clock.check() and not clock.check()  # nothing moved: the stamp stays
    assert clock.last_work_ns == stamped
    assert clock.status() == {
        "last_work_ns": stamped,
        "changes": 2,
        "checks": 4,
        "check_s": activity.CHECK_S,
        "max_lag_records": 120,
    }


def test_the_work_clock_checks_every_interval_while_it_runs() -> None:
    clock = activity.WorkClock(time.monotonic_ns, check_s=0.001)  # always moving
    asyncio.run(clock.run_for(0.05))
    assert 5 <= clock.checks <= 51 and clock.changes == clock.checks


def test_a_process_trees_cpu_counts_its_children() -> None:
    code = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {BURN.format(s=0.4)!r}])\n"
        f"exec({BURN.format(s=0.2)!r})\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        total = own = 0.0
        while time.monotonic() < deadline:
            ticks = cpu._stat_ticks(parent.pid)
            total, own = cpu.tree_cpu_s(parent.pid) or 0.0, (ticks or 0) * cpu.TICK_S
            if total - own >= 0.35:
                break
            time.sleep(0.05)
        assert own < 0.35 <= total - own  # the child's 0.4 s of CPU are in the tree's figure, not the parent's own
    finally:
        for pid in cpu._children(parent.pid):
            os.kill(pid, 9)
        parent.kill()
        parent.wait()
    assert cpu.tree_cpu_s(parent.pid) is None  # gone


def test_the_meter_covers_the_asked_interval_from_the_samples_around_it() -> None:
    meter = cpu.CpuMeter(lambda: {}, include_self=None)
    meter.stamps = [10.0, 10.05, 10.10, 10.15, 10.20]
    meter.samples = [{"feed": 1.0}, {"feed": 1.0}, {"feed": 1.04, "brain": 0.5}, {"feed": 1.08, "brain": 0.52}, {}]
    used = meter.between(10.07, 10.12)
    assert used is not None
    assert used["interval_s"] == pytest.approx(0.10) and used["before_start_s"] == pytest.approx(0.02)
    assert used["after_end_s"] == pytest.approx(0.03)
    assert used["processes"] == {"feed": 0.08}  # brain has no sample before the start: not guessed
    assert meter.between(9.0, 10.1) is None and meter.between(10.1, 11.0) is None  # not bracketed


def test_the_meter_samples_this_process_and_named_ones() -> None:
    meter = cpu.CpuMeter(lambda: {"me": os.getpid(), "gone": 2**22 + 12345})
    meter.sample()
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    meter.sample()
    used = meter.between(meter.stamps[0], meter.stamps[1])
    assert used is not None and set(used["processes"]) == {"me", "runner"}
    assert used["processes"]["runner"] >= 0.04


def test_a_replay_runs_without_scheduled_training_unless_the_caller_asks(tmp_path, monkeypatch) -> None:
    """Training runs on the wall clock: a promotion mid-replay would make two runs differ (docs/replay.md)."""
    monkeypatch.delenv("AEGIS_TRAINER_INTERVAL_S", raising=False)
    env = runner.replay_env(tmp_path, ["BTCUSDT"], tmp_path / "source.hft", "max", seed=7)
    assert env["AEGIS_TRAINER_INTERVAL_S"] == "0"
    monkeypatch.setenv("AEGIS_TRAINER_INTERVAL_S", "600")
    assert (
        runner.replay_env(tmp_path, ["BTCUSDT"], tmp_path / "source.hft", "max", seed=7)["AEGIS_TRAINER_INTERVAL_S"]
        == "600"
    )
