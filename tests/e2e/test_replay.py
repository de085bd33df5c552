"""`aegis replay`: every service as a process, twice over the real recordings and twice over klines, then reports.

* The two real hftbacktest recordings (BTCUSDT/ETHUSDT, 2024-08-08, 5 min 45 s): every frame accounted for, the
  closed candles equal a batch recomputation, the books balance, the report renders, and two runs push the same
  price windows (they make no trade: see :func:`test_two_runs_of_the_real_recordings_are_identical`).
* Three days of the real 10-day 1m klines turned into synthetic trades (:func:`aegis.replay.source.
  trades_from_klines`, four per kline): enough history for the strategy's 1h and 1d features, so signals and
  trades happen; two runs with the same seed give the same trades (non-empty), at the same record times, and
  every account balances exactly.

Both in record time (AEGIS_CLOCK=record, what `aegis replay` sets); neither recording has a markPrice stream, so
the mark is the last trade price and TP/SL trigger on it (CONTRACT_PRICE), as the report states.
"""

from __future__ import annotations

import csv
import datetime as dt
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
KLINES = [Path("/work/shared/data/binance/signalbot/data") / f"{s}_1m.csv" for s in ("BTCUSDT", "ETHUSDT")]
KLINE_START = dt.datetime(2025, 6, 7, 9, 0, tzinfo=dt.UTC)  # both symbols have klines from here on
KLINE_MINUTES = 3 * 1440
CLEARED = ("DATABASE_URL", "REDIS_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "AEGIS_CONFIG")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMPARED = (
    *("account", "symbol", "side", "quantity", "entry_price", "exit_price", "close_reason", "gross_pnl", "fees"),
    *("realised_pnl", "opened_at", "closed_at"),
)

pytestmark = [
    pytest.mark.skipif(not RECORDINGS, reason=f"no recordings in {DATA}"),
    pytest.mark.timeout(900),
]


def run_replay(tmp: Path, name: str, sources: list[Path], **settings: str) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("AEGIS_")}
    env.update(AEGIS_SHUTDOWN_GRACE_S="2", AEGIS_HEALTH_INTERVAL_S="0.2", **settings)
    out = tmp / name
    result = subprocess.run(
        [
            *(sys.executable, "-m", "aegis", "replay", *map(str, sources), "--report", str(out)),
            *("--no-progress", "--home", str(tmp / f"{name}-home"), "--timeout", "300", "--seed", "7"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real recordings, twice (1 s windows of record time keep the price pushes few)."""
    tmp = tmp_path_factory.mktemp("replay")
    window = {"AEGIS_BRAIN_PRICE_PUSH_MS": "1000"}
    return run_replay(tmp, "first", RECORDINGS, **window), run_replay(tmp, "second", RECORDINGS, **window)


@pytest.fixture(scope="module")
def kline_reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three days of synthetic trades from the real klines, twice (one-minute windows, the 1m trigger)."""
    if not all(p.is_file() for p in KLINES):
        pytest.skip(f"no klines at {KLINES[0].parent}")
    tmp = tmp_path_factory.mktemp("replay-klines")
    source = replay_source.trades_from_klines(
        KLINES, tmp / "klines.hft", start_ms=int(KLINE_START.timestamp() * 1000), minutes=KLINE_MINUTES
    )
    settings = {"AEGIS_BRAIN_PRICE_PUSH_MS": "60000", "AEGIS_STRATEGY_TRIGGER_TIMEFRAME": "1m"}
    return run_replay(tmp, "k1", [source], **settings), run_replay(tmp, "k2", [source], **settings)


def summary_of(report: Path) -> dict:
    return json.loads((report / "summary.json").read_text())


def trades_of(report: Path) -> list[tuple[str, ...]]:
    with (report / "trades.csv").open() as f:
        return sorted(tuple(row[k] for k in COMPARED) for row in csv.DictReader(f))


def test_every_frame_is_accounted_for(reports: tuple[Path, Path]) -> None:
    summary = summary_of(reports[0])
    lines = sum(1 for p in RECORDINGS for _ in replay_source.feed_replay.read_frames(p))
    assert summary["frames_in"] == lines
    assert summary["events_in"] == summary["frames_in"]  # these recordings hold no array frames
    assert summary["frames_in"] == summary["frames_published"] + sum(summary["frames_rejected_by_reason"].values())
    assert summary["frames_published"] > 100_000
    assert summary["brain"]["records_lost"] == 0


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


def assert_balanced(report: Path) -> dict:
    accounts = summary_of(report)["accounts"]
    assert set(accounts) >= {"learning", "paper"}
    for name, a in accounts.items():
        start, realised, fees, funding, end = (
            Decimal(a[k]) for k in ("start_balance", "realised_pnl", "fees", "funding", "end_balance")
        )
        assert end == start + realised - fees - funding, name
        assert 0 <= a["wins"] <= a["trades"]
    return accounts


def test_every_account_balances_exactly(reports: tuple[Path, Path], kline_reports: tuple[Path, Path]) -> None:
    for report in (*reports, *kline_reports):
        assert_balanced(report)
    traded = assert_balanced(kline_reports[0])
    assert traded["learning"]["trades"] > 0 and Decimal(traded["learning"]["fees"]) > 0  # the identity is not 0 = 0


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
    # no markPrice stream in these recordings: the report says the last trade price stands in, and how TP/SL fire
    assert summary["prices"]["mark_price_source"].startswith("last trade price")
    assert "CONTRACT_PRICE" in summary["prices"]["tp_sl_trigger"]


def test_prices_reach_the_accounts_in_windows_of_record_time(
    reports: tuple[Path, Path], kline_reports: tuple[Path, Path]
) -> None:
    prices = [summary_of(r)["prices"] for r in reports]
    for p in prices:
        assert p["failures"] == {}
        assert p["window_ms"] == 1000 and p["windows_sealed"] > 300
        # no position is ever open here: no window needs pushing (a price update without a position triggers nothing)
        assert p["pushes"] == 0 and p["windows_skipped"] == p["windows_sealed"]
    assert prices[0] == prices[1]
    traded = [summary_of(r)["prices"] for r in kline_reports]
    for p in traded:
        assert p["failures"] == {}  # the last trade price as the mark: no INVALID_ARGUMENT for a missing mark price
        assert p["window_ms"] == 60_000 and p["pushes"] > 0 and p["closed_by_price_updates"] > 0
    assert traded[0] == traded[1]


def test_two_runs_of_the_real_recordings_are_identical(reports: tuple[Path, Path]) -> None:
    """Same candles, signals and trades. These 5 min 45 s make no signal (the strategy's features need hours of 1h
    and a day of 1d history, and no history of 2024-08-08 exists here), so the trades are compared, non-empty, on
    the kline replay below."""
    first, second = (summary_of(r) for r in reports)
    for key in ("frames_published", "candles_closed_by_timeframe", "signals", "accounts"):
        assert first[key] == second[key], key
    assert (reports[0] / "candles_1m.csv").read_text() == (reports[1] / "candles_1m.csv").read_text()
    assert trades_of(reports[0]) == trades_of(reports[1])


def test_two_runs_with_the_same_input_and_seed_give_identical_trades(kline_reports: tuple[Path, Path]) -> None:
    first, second = trades_of(kline_reports[0]), trades_of(kline_reports[1])
    assert len(first) >= 3, "the kline replay made too few trades to compare"
    assert first == second
    a, b = summary_of(kline_reports[0]), summary_of(kline_reports[1])
    assert a["signals"] == b["signals"] > 0
    assert a["accounts"] == b["accounts"]
    closes = {t[6] for t in first}
    assert closes <= {"TP_HIT", "SL_HIT", "LIQUIDATED", "ROTATED"} and closes & {"TP_HIT", "SL_HIT"}  # by prices
    # record time: positions open and close at the recording's times, not this host's
    for t in first:
        opened = dt.datetime.fromisoformat(t[10])
        assert KLINE_START <= opened < KLINE_START + dt.timedelta(minutes=KLINE_MINUTES)


def test_the_timed_interval_ends_with_the_work_and_names_the_cpu_it_used(kline_reports: tuple[Path, Path]) -> None:
    """The replay that trades: the brain pushes windows and executes signals after the feed's last frame, so the
    timed end is the brain's last work (its stamp), and virtual-account and PostgreSQL, which did that work, used CPU
    in the timed interval."""
    summary = summary_of(kline_reports[0])
    timing = summary["timing"]
    assert timing["end_from"] == "stamps"
    assert summary["prices"]["pushes"] > 0 and summary["signals"] > 0
    assert timing["brain_after_feed_s"] > 0  # the pushes and executions went on after the feed was done
    assert summary["replay_timed_s"] == pytest.approx(summary["feed_replay_s"] + timing["brain_after_feed_s"], abs=2e-3)
    assert timing["detection_s"] >= 0 and summary["brain"]["records_lost"] == 0
    used = timing["cpu"]["processes"]
    assert used["brain"] > 0 and used["virtual_account"] > 0 and used["postgres"] > 0
