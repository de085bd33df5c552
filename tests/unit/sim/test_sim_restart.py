"""Kill and restart: the CLI prints its URLs, stops on SIGTERM, and a restarted simulator continues the replay."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sim_testdata import BTC_FILE

from aegis.sim import Simulator
from aegis.sim.klines import MINUTE_MS

ROOT = Path(__file__).resolve().parents[3]


def _start(state_file: Path, speed: str = "x20") -> tuple[subprocess.Popen, dict[str, str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aegis.sim",
            "--port",
            "0",
            "--speed",
            speed,
            "--state-file",
            str(state_file),
            "--recording",
            str(BTC_FILE),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    urls = {}
    for _ in range(3):
        line = process.stdout.readline().strip()
        assert "=" in line, (line, process.stderr.read() if process.poll() is not None else "")
        key, _, value = line.partition("=")
        urls[key] = value
    return process, urls


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _view(rest: str) -> tuple[int, list[list]]:
    klines = _get(rest + "/fapi/v1/klines?symbol=BTCUSDT&interval=1m")
    return _get(rest + "/fapi/v1/time")["serverTime"], klines


def test_cli_restarts_continue_the_replay_without_skipping_or_repeating_minutes(tmp_path):
    state_file = tmp_path / "replay.json"
    seen_closed: dict[int, list] = {}
    last_time = 0
    for round_no, stop in enumerate((signal.SIGTERM, signal.SIGKILL, signal.SIGTERM)):
        process, urls = _start(state_file)
        try:
            rest = urls["AEGIS_BINANCE_REST_URL"]
            assert urls["AEGIS_BINANCE_WS_MARKET_URL"] == rest.replace("http://", "ws://") + "/market"
            assert urls["AEGIS_BINANCE_WS_PUBLIC_URL"] == rest.replace("http://", "ws://") + "/public"
            time.sleep(1.0)
            now, klines = _view(rest)
            stats = _get(rest + "/_sim/stats")
            assert stats["replay"]["restored"] is (round_no > 0)
        finally:
            process.send_signal(stop)
            code = process.wait(timeout=10)
        assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
        assert now > last_time  # the clock continues, never restarts from the beginning
        last_time = now
        opens = [k[0] for k in klines]
        assert opens == list(range(opens[0], opens[-1] + 1, MINUTE_MS))  # no minute skipped or repeated
        for row in klines[:-1]:  # closed bars never change across restarts
            assert seen_closed.setdefault(row[0], row) == row
        time.sleep(0.3)
    assert json.loads(state_file.read_text())["position"] > 0


async def test_in_process_restart_continues_from_the_wall_clock_position(tmp_path):
    state_file = tmp_path / "replay.json"
    async with Simulator(speed=20.0, state_file=state_file) as sim:
        await sim.wait_position(5_000)
        first_clock = sim.clock_ms
    stopped_wall = time.time()
    await asyncio.sleep(0.5)
    async with Simulator(speed=20.0, state_file=state_file) as sim:
        resumed = sim.stats()["replay"]
        assert resumed["restored"] is True
        # While it was down the replay "kept going": about 0.5 s x 20 = 10 s of recording was missed.
        missed_ms = sim.clock_ms - first_clock
        assert 0.5 * 20 * 1000 * 0.5 < missed_ms < (time.time() - stopped_wall + 1.0) * 20 * 1000
        sim.pause()
        paused_at = sim.stats()["replay"]["position"]
    await asyncio.sleep(0.3)
    async with Simulator(speed=20.0, state_file=state_file) as sim:
        # A paused replay comes back paused, exactly where it stopped, however long it was down.
        replay = sim.stats()["replay"]
        assert replay["paused"] is True and replay["position"] == paused_at
        await asyncio.sleep(0.2)
        assert sim.stats()["replay"]["position"] == paused_at
        sim.resume()
        await sim.wait_position(paused_at + 100)
