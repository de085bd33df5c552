"""`aegis bench replay`: events per second of the whole system replaying real frames, beside NautilusTrader.

Both sides take the same input: the two real hftbacktest recordings (BTCUSDT and ETHUSDT, 2024-08-08, ~6 minutes,
168,609 frames), repeated ``--repeat`` times — by default as many as make at least ``--events`` (1,000,000)
events — each repetition shifted by the recordings' span rounded up to the minute (a synthetic continuation:
the same market again).

* ``ours`` — ``aegis replay`` (:mod:`aegis.replay.runner`) at ``--speed max``: all six services as processes on
  embedded PostgreSQL and Redis; the feed decodes the raw frames (trade, aggTrade and bookTicker in batches by
  :mod:`aegis.feed.fast`, anything else per frame with msgspec), validates them and publishes to the ring; the
  brain builds candles on five timeframes, runs the strategy, pushes prices to virtual-account in windows of
  ``--window-ms`` of record time (one ApplyPriceUpdates call, one PostgreSQL transaction each) and executes
  signals through risk and virtual-account. Timed (``replay_timed_s`` of the summary, see
  :func:`aegis.replay.runner.replay_timing`): from the moment the feed, started and with its ring open, begins
  reading the file (its status's ``replay_started_ns``) to the end of the work, taken from the services' own
  wall-clock stamps — the later of the feed's ``replay_finished_ns`` (last frame published) and the brain's
  ``work.last_work_ns`` (the last time any of its counters moved: last record read, candle written, window
  pushed, signal stored or executed; stamped within 2 ms by :mod:`aegis.replay.activity`). The completion check's
  polling (brain status every 0.2 s, check every 0.05 s, then 1.5 s of stillness) only *detects* the end: it is
  not timed (``detection_s`` says how late it saw it). Included: reading the file's lines, decoding and checking
  every frame, the brain's candles, strategy, windows and writes. Service start-up (processes, imports, ring
  creation) and the report are not timed; ``replay_wall_s`` (from spawning the feed) is printed beside it. The
  rate counts the ticks published to the ring (trades and book tickers: what NautilusTrader gets);
  ``frames_per_s`` counts every decoded frame. ``ours.cpu_s`` gives every process's CPU seconds (user + system,
  its descendants included: PostgreSQL's backends) over the timed interval, ``ours.brain_after_feed_s`` how long
  the brain's work went on after the feed's last frame, ``ours.brain_max_lag_records`` the most records it
  was ever behind the ring (at a 2 ms check) and ``ours.brain_records_per_batch`` its mean ring read;
  ``records_lost`` must be 0 (the replay fails otherwise).
* ``nautilus_backtest_engine`` (baseline) — NautilusTrader's ``BacktestEngine`` in its own venv (``--venv``,
  default ``.tools/nautilus-venv``, created with ``python -m venv`` and ``pip install nautilus_trader`` on first
  use; never a dependency of AEGIS), fed ``TradeTick`` and ``QuoteTick`` objects built from the same trade and
  bookTicker frames (:mod:`aegis.bench._nautilus_replay`; building them is not timed), with its ``EMACrossBracket``
  example strategy (EMA 10/20 cross on 1-minute bars from the trades, TP/SL brackets) on each instrument. Timed:
  ``engine.run()`` only (with its default post-run analysis; the parsed tuples are freed before it), wall clock
  and the process's CPU seconds (``run_cpu_s``: it is one process on one core).

The ratio ``vs_nautilus`` is ours / theirs in ticks per second; ``load_average`` gives the host's load averages
at the start, between the two sides and at the end (the machine may be shared). If NautilusTrader cannot be
installed or run, the benchmark says so and exits with status 3: it never prints a ratio it did not measure.
``--quick`` (tests only) runs ``ours`` on the first ``--quick-lines`` lines of each recording and no baseline: it
prints no ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aegis.bench import report
from aegis.errors import AegisError

NAME = "replay"
BASELINE = "nautilus_backtest_engine"
RATIO = "vs_nautilus"
SCRIPT = Path(__file__).with_name("_nautilus_replay.py")


class BenchUnavailable(AegisError):
    """The baseline cannot run here: no ratio is printed."""

    exit_code = 3


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_recordings() -> list[Path]:
    from aegis.sim.config import default_recordings as recordings

    return list(recordings())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", nargs="+", type=Path, help="hftbacktest recordings (default: the two shared ones)")
    parser.add_argument("--events", type=int, default=1_000_000, help="repeat the recordings to at least this many")
    parser.add_argument("--repeat", type=int, default=0, help="repetitions (default: enough for --events)")
    parser.add_argument("--window-ms", type=float, default=100.0, help="ours: price-push window of record time, ms")
    parser.add_argument("--venv", type=Path, default=None, help="NautilusTrader's venv (default .tools/nautilus-venv)")
    parser.add_argument("--no-install", action="store_true", help="do not create the venv: fail if it is missing")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds each side may take")
    parser.add_argument("--quick", action="store_true", help="tests only: ours on a small input, no baseline")
    parser.add_argument("--quick-lines", type=int, default=3000, help="with --quick: lines taken from each file")


def count_frames(paths: list[Path]) -> int:
    from aegis.feed import replay as feed_replay

    return sum(1 for p in paths for _ in feed_replay.read_frames(p))


def head_of(paths: list[Path], lines: int, workdir: Path) -> list[Path]:
    """The first ``lines`` frames of each recording, as plain hftbacktest files under ``workdir`` (--quick)."""
    import gzip

    out = []
    for p in paths:
        target = workdir / (p.name.removesuffix(".gz") + f".head{lines}")
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rb") as src, target.open("wb") as dst:  # type: ignore[operator]
            for i, line in enumerate(src):
                if i >= lines:
                    break
                dst.write(line)
        out.append(target)
    return out


# ------------------------------------------------------------------------------------------------------ ours


def run_ours(files: list[Path], repeat: int, window_ms: float, workdir: Path, timeout_s: float) -> dict[str, Any]:
    """Replay ``files`` ``repeat`` times through every service; return the counts and the timed seconds."""
    from aegis.replay import runner

    options = runner.ReplayOptions(
        sources=files,
        report_dir=workdir / "report",
        repeat=repeat,
        timeout_s=timeout_s,
        progress=False,
        extra_env={"AEGIS_BRAIN_PRICE_PUSH_MS": f"{window_ms:g}"},
    )
    code = runner.run(options)
    if code != 0:
        raise AegisError(f"the replay failed (exit {code})")
    summary = json.loads((workdir / "report" / "summary.json").read_text())
    if summary.get("replay_timed_s") is None:
        raise AegisError("the replay's summary has no replay_timed_s (the feed did not report its replay start)")
    timed_s = max(float(summary["replay_timed_s"]), 1e-9)
    timing = summary.get("timing") or {}
    published = int(summary["frames_published"])
    return {
        "frames": int(summary["frames_in"]),
        "events": published,
        "timed_s": timed_s,
        "feed_replay_s": summary.get("feed_replay_s"),
        "replay_wall_s": summary["replay_wall_s"],
        "events_per_s": published / timed_s,
        "frames_per_s": int(summary["frames_in"]) / timed_s,
        "candles_closed": summary["candles_closed"],
        "signals": summary["signals"],
        "price_windows_sealed": (summary.get("prices") or {}).get("windows_sealed"),
        "price_pushes": (summary.get("prices") or {}).get("pushes"),
        "records_lost": (summary.get("brain") or {}).get("records_lost"),
        "brain_records_per_batch": _per_batch(summary.get("brain") or {}),
        "end_from": timing.get("end_from"),
        "brain_after_feed_s": timing.get("brain_after_feed_s"),
        "brain_max_lag_records": timing.get("brain_max_lag_records"),
        "detection_s": timing.get("detection_s"),
        "cpu_s": timing.get("cpu"),
    }


def _per_batch(brain: dict[str, Any]) -> float | None:
    """The brain's mean ring batch: records read per ``read_into`` (at most ``AEGIS_BRAIN_BATCH_RECORDS``)."""
    records, batches = brain.get("records_processed"), brain.get("batches")
    return round(records / batches, 1) if records and batches else None


# ------------------------------------------------------------------------------------------------ NautilusTrader


def nautilus_python(venv: Path, install: bool) -> Path:
    """Return the venv's python with nautilus_trader importable, creating the venv when allowed."""
    python = venv / "bin" / "python"
    if _imports_nautilus(python):
        return python
    if not install:
        raise BenchUnavailable(f"NautilusTrader is not installed in {venv} (and --no-install was given)")
    print(f"installing nautilus_trader into {venv} (its own venv, not a dependency of AEGIS) ...", file=sys.stderr)
    steps = ([sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", "nautilus_trader"])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchUnavailable(f"cannot install NautilusTrader ({' '.join(step[:3])}): {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise BenchUnavailable(
                f"cannot install NautilusTrader: `{' '.join(step)}` failed: {' | '.join(tail)}; no ratio printed"
            )
    if not _imports_nautilus(python):
        raise BenchUnavailable(f"nautilus_trader does not import in {venv} after installing it; no ratio printed")
    return python


def _imports_nautilus(python: Path) -> bool:
    if not python.exists():
        return False
    done = subprocess.run([str(python), "-c", "import nautilus_trader"], capture_output=True, timeout=120)
    return done.returncode == 0


def run_nautilus(python: Path, files: list[Path], repeat: int, workdir: Path, timeout_s: float) -> dict[str, Any]:
    spec = workdir / "nautilus-spec.json"
    spec.write_text(json.dumps({"files": [str(f) for f in files], "repeat": repeat, "fast": 10, "slow": 20}))
    try:
        done = subprocess.run([str(python), str(SCRIPT), str(spec)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchUnavailable(f"NautilusTrader did not finish within {timeout_s:.0f} s; no ratio printed") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-5:]
        raise BenchUnavailable(f"the NautilusTrader run failed: {' | '.join(tail)}; no ratio printed")
    result = json.loads(lines[-1])
    result["events_per_s"] = result["events"] / max(result["run_s"], 1e-9)
    return result


# ------------------------------------------------------------------------------------------------------ run


def _load_average() -> list[float]:
    """The host's 1, 5 and 15 minute load averages (the machine may be shared: state them beside the figures)."""
    return [round(x, 2) for x in os.getloadavg()]


def run(options: argparse.Namespace) -> dict[str, Any]:
    files = [Path(f) for f in (options.files or default_recordings())]
    for f in files:
        if not f.is_file():
            raise AegisError(f"no recording at {f}")
    venv = options.venv or repo_root() / ".tools" / "nautilus-venv"
    with tempfile.TemporaryDirectory(prefix="aegis-bench-replay-") as tmp:
        workdir = Path(tmp)
        if options.quick:
            files = head_of(files, options.quick_lines, workdir)
        per_pass = count_frames(files)
        repeat = options.repeat or max(1, math.ceil((10_000 if options.quick else options.events) / per_pass))
        python = None if options.quick else nautilus_python(venv, not options.no_install)
        started = time.perf_counter()
        load_average = {"start": _load_average()}
        ours = run_ours(files, repeat, options.window_ms, workdir / "ours", options.timeout)
        load_average["after_ours"] = _load_average()
        theirs = None if python is None else run_nautilus(python, files, repeat, workdir, options.timeout)
        load_average["end"] = _load_average()
        wall_s = time.perf_counter() - started
    results = [
        {"name": "ours_events_per_s", "value": ours["events_per_s"], "unit": "ticks/s"},
        {"name": "ours_frames_per_s", "value": ours["frames_per_s"], "unit": "frames/s"},
        {"name": "ours_events", "value": ours["events"], "unit": "ticks"},
        {"name": "ours_timed_s", "value": ours["timed_s"], "unit": "s"},
    ]
    if ours.get("cpu_s"):
        results.append({"name": "ours_cpu_s", "value": ours["cpu_s"]["total_s"], "unit": "s"})
    ratios: dict[str, float] = {}
    if theirs is not None:
        results += [
            {"name": f"{BASELINE}_events_per_s", "value": theirs["events_per_s"], "unit": "ticks/s"},
            {"name": f"{BASELINE}_events", "value": theirs["events"], "unit": "ticks"},
            {"name": f"{BASELINE}_run_s", "value": theirs["run_s"], "unit": "s"},
        ]
        if theirs.get("run_cpu_s") is not None:
            results.append({"name": f"{BASELINE}_run_cpu_s", "value": theirs["run_cpu_s"], "unit": "s"})
        ratios[RATIO] = ours["events_per_s"] / theirs["events_per_s"]
    return report(
        NAME,
        results,
        ratios,
        load={
            "files": [str(f) for f in files],
            "repeat": repeat,
            "frames": ours["frames"],
            "window_ms": options.window_ms,
            "quick": bool(options.quick),
        },
        ours=ours,
        baseline=theirs,
        target={"vs_nautilus": 2.0, "met": bool(ratios) and ratios[RATIO] >= 2.0},
        load_average=load_average,
        wall_s=wall_s,
    )
