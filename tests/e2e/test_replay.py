"""`aegis replay` over the real hftbacktest recordings: every service as a process, twice, then the report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from aegis.replay import report as replay_report
from aegis.replay import source as replay_source

DATA = Path("/work/shared/data/binance/hftbacktest/examples/usdm")
RECORDINGS = sorted(DATA.glob("*.gz"))
CLEARED = ("DATABASE_URL", "REDIS_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "AEGIS_CONFIG")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMPARED = ("account", "symbol", "side", "quantity", "entry_price", "exit_price", "close_reason", "realised_pnl")

pytestmark = [
    pytest.mark.skipif(not RECORDINGS, reason=f"no recordings in {DATA}"),
    pytest.mark.timeout(400),
]


def run_replay(tmp: Path, name: str) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("AEGIS_")}
    env.update(AEGIS_SHUTDOWN_GRACE_S="2", AEGIS_HEALTH_INTERVAL_S="0.2")
    out = tmp / name
    result = subprocess.run(
        [
            *(sys.executable, "-m", "aegis", "replay", *map(str, RECORDINGS), "--report", str(out)),
            *("--no-progress", "--home", str(tmp / f"{name}-home"), "--timeout", "150", "--seed", "7"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("replay")
    return run_replay(tmp, "first"), run_replay(tmp, "second")


def summary_of(report: Path) -> dict:
    return json.loads((report / "summary.json").read_text())


def test_every_frame_is_accounted_for(reports: tuple[Path, Path]) -> None:
    summary = summary_of(reports[0])
    lines = sum(1 for p in RECORDINGS for _ in replay_source.feed_replay.read_frames(p))
    assert summary["frames_in"] == lines
    assert summary["events_in"] == summary["frames_in"]  # these recordings hold no array frames
    assert summary["frames_in"] == summary["frames_published"] + sum(summary["frames_rejected_by_reason"].values())
    assert summary["frames_published"] > 100_000


def test_closed_candles_equal_a_batch_recomputation_from_the_trades(reports: tuple[Path, Path]) -> None:
    batch = replay_source.batch_candles_1m(RECORDINGS)
    with (reports[0] / "candles_1m.csv").open() as f:
        stored = {(r["symbol"], int(r["open_time_ms"])): r for r in csv.DictReader(f)}
    assert stored, "no closed 1m candle in PostgreSQL"
    assert summary_of(reports[0])["candles_closed_by_timeframe"]["1m"] == len(stored)
    # Every minute but the last of each symbol closes (nothing after it closes the last one in a replay).
    last = {}
    for symbol, minute in batch:
        last[symbol] = max(last.get(symbol, 0), minute)
    expected = {k for k in batch if k[1] != last[k[0]]}
    assert set(stored) == expected
    for key, row in stored.items():
        o, h, lo, c, v = batch[key]
        assert (float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"])) == (o, h, lo, c), key
        assert float(row["volume"]) == pytest.approx(v, rel=1e-9), key


def test_every_account_balances_exactly(reports: tuple[Path, Path]) -> None:
    for report in reports:
        accounts = summary_of(report)["accounts"]
        assert set(accounts) >= {"learning", "paper"}
        for name, a in accounts.items():
            start, realised, fees, funding, end = (
                Decimal(a[k]) for k in ("start_balance", "realised_pnl", "fees", "funding", "end_balance")
            )
            assert end == start + realised - fees - funding, name
            assert 0 <= a["wins"] <= a["trades"]


def test_the_report_renders(reports: tuple[Path, Path]) -> None:
    report = reports[0]
    summary = summary_of(report)
    for key in replay_report.SUMMARY_KEYS:
        assert key in summary, key
    for account in summary["accounts"].values():
        assert set(account) >= {"trades", "wins", "start_balance", "realised_pnl", "fees", "funding", "end_balance"}
        for key in ("start_balance", "realised_pnl", "fees", "funding", "end_balance"):
            assert isinstance(account[key], str)
    assert isinstance(summary["symbols"], list) and "model_versions" in summary
    for png in ("equity.png", "latency.png"):
        data = (report / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, png
    assert (report / "symbols.csv").read_text().startswith("account,symbol,trades,wins,pnl")


def test_two_runs_give_identical_trades(reports: tuple[Path, Path]) -> None:
    def trades(report: Path) -> list[tuple[str, ...]]:
        with (report / "trades.csv").open() as f:
            return sorted(tuple(row[k] for k in COMPARED) for row in csv.DictReader(f))

    first, second = trades(reports[0]), trades(reports[1])
    assert first == second
    assert summary_of(reports[0])["signals"] == summary_of(reports[1])["signals"]
    if not first:
        pytest.xfail(
            "vacuous: these two recordings (5m45s of BTCUSDT/ETHUSDT) make no signal — the strategy triggers on 5m "
            "candles with 15m structure and needs more history than the recording holds — so no trade exists to "
            "compare; and they carry no markPrice stream, so every ApplyPriceUpdates is refused "
            "(INVALID_ARGUMENT: mark_price is required) and no TP/SL could close a position anyway. "
            "See docs/replay.md (Determinism) for what would break it once trades happen."
        )
