"""The replay report: summary.json, trades.csv, symbols.csv and PNG charts, all from the services' own records.

Every figure comes from where the system keeps it: frames from the feed's status, candles from the ``candles``
table, signals from ``signals``, money from ``accounts``, ``trades``, ``positions`` and ``balance_ledger``. For
every account the books must balance exactly (Decimal arithmetic, no rounding)::

    end_balance = start_balance + realised_pnl - fees - funding

where each part is computed from its own source and cross-checked against the others (see
:func:`account_summary`); a mismatch raises :class:`~aegis.replay.runner.ReplayError` — the replay fails loudly.
``funding`` is the funding *paid* (the ledger and the accounts table store funding as a wallet change, positive
when received, so ``funding = -ledger funding``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

SUMMARY_KEYS = (
    "frames_in",
    "frames_published",
    "frames_rejected_by_reason",
    "candles_closed",
    "signals",
    "accounts",
)
TRADE_FIELDS = (
    "account",
    "symbol",
    "side",
    "quantity",
    "entry_price",
    "exit_price",
    "close_reason",
    "gross_pnl",
    "fees",
    "funding",
    "realised_pnl",
    "opened_at",
    "closed_at",
    "model_version",
)


class BooksDoNotBalance(AssertionError):
    """An account's end balance is not start + realised PnL - fees - funding, or two sources disagree."""


def _text(value: Decimal) -> str:
    """A Decimal as plain text (no exponent), exactly."""
    return format(value, "f")


def _feed_replay_s(feed: dict[str, Any]) -> float | None:
    """The feed's own replay time: reading, decoding, checking and publishing every frame (start-up excluded)."""
    started, finished = feed.get("replay_started_ns"), feed.get("replay_finished_ns")
    return round((finished - started) / 1e9, 3) if started and finished else None


def timing_note(timing: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary's ``timing``: what ``replay_timed_s`` spans, where its end came from, the brain's lag and the CPU
    seconds each process used over it (wall-clock instants as Unix seconds)."""
    if timing is None:
        return None
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in timing.items() if k != "cpu"}
    out["cpu"] = timing.get("cpu")
    return out


async def build(
    dsn: str,
    *,
    feed: dict[str, Any],
    brain: dict[str, Any],
    source: Any,
    options: Any,
    replay_s: float,
    timing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Query PostgreSQL, check the books, write the report directory; return the summary.

    ``timing``: :func:`aegis.replay.runner.replay_timing` plus ``cpu`` (:meth:`aegis.replay.cpu.CpuMeter.between`):
    the timed interval, where its end came from, and each process's CPU seconds over it."""
    conn = await asyncpg.connect(dsn)
    try:
        candles = {r["timeframe"]: r["n"] for r in await conn.fetch(
            "SELECT timeframe, count(*) AS n FROM candles GROUP BY timeframe ORDER BY timeframe"
        )}  # fmt: skip
        candles_1m = await conn.fetch(
            "SELECT symbol, open_time, open, high, low, close, volume FROM candles WHERE timeframe = '1m' "
            "ORDER BY symbol, open_time"
        )
        signals = await conn.fetch(
            "SELECT signal_id, symbol, side, model_version, recv_time_ns, created_at FROM signals ORDER BY created_at"
        )
        accounts = await conn.fetch("SELECT * FROM accounts ORDER BY account_id")
        trades = await conn.fetch(
            "SELECT t.*, t.account_id AS account FROM trades t ORDER BY account_id, closed_at, symbol, opened_at"
        )
        open_positions = await conn.fetch("SELECT * FROM positions WHERE status = 'OPEN' ORDER BY opened_at")
        ledger = await conn.fetch(
            "SELECT account_id, kind, amount, balance_after, created_at, entry_id, fee FROM balance_ledger "
            "ORDER BY account_id, entry_id"
        )
    finally:
        await conn.close()

    timed_s = None if timing is None else timing.get("timed_s")
    lost = int(brain.get("ring", {}).get("records_lost") or 0)
    if lost:
        raise BooksDoNotBalance(f"the brain lost {lost} ring records (overrun): this replay is not the recording")
    failed = int((brain.get("prices") or {}).get("errors") or 0)
    if failed:
        raise BooksDoNotBalance(f"the brain's record-time sequencer failed {failed} times (see brain.log)")
    events_in = int(feed.get("events_in", feed.get("frames_in", 0)))
    published, rejected = int(feed.get("published", 0)), int(feed.get("rejected", 0))
    if published + rejected != events_in:
        raise BooksDoNotBalance(f"feed: published {published} + rejected {rejected} != events in {events_in}")
    by_account: dict[str, dict[str, Any]] = {}
    for account in accounts:
        name = account["account_id"]
        by_account[name] = account_summary(
            account,
            [t for t in trades if t["account_id"] == name],
            [p for p in open_positions if p["account_id"] == name],
            [e for e in ledger if e["account_id"] == name],
        )
    model_versions = sorted({s["model_version"] or "" for s in signals} | {t["model_version"] or "" for t in trades})
    symbols = symbol_table(trades)
    summary: dict[str, Any] = {
        "source": [str(p) for p in options.sources],
        "replayed_file": str(source.path),
        "repeat": options.repeat,
        "speed": options.speed,
        "seed": options.seed,
        "recording_span_s": (source.last_recv_ns - source.first_recv_ns) / 1e9,
        "replay_wall_s": round(replay_s, 3),
        "replay_timed_s": None if timed_s is None else round(timed_s, 3),
        "timing": timing_note(timing),
        "feed_replay_s": _feed_replay_s(feed),
        "frames_in": int(feed.get("frames_in", 0)),
        "events_in": events_in,
        "frames_published": published,
        "frames_rejected": rejected,
        "frames_rejected_by_reason": dict(sorted(feed.get("rejected_by_reason", {}).items())),
        "candles_closed": sum(candles.values()),
        "candles_closed_by_timeframe": candles,
        "signals": len(signals),
        "model_versions": [v or "(rule-based, no model)" for v in model_versions],
        "accounts": by_account,
        "symbols": symbols,
        "open_positions_at_end": len(open_positions),
        "brain": {
            "records_processed": brain.get("ring", {}).get("records_processed"),
            "records_lost": brain.get("ring", {}).get("records_lost"),
            "batches": brain.get("ring", {}).get("batches"),
            "engine": brain.get("engine"),
            "execution": {k: v for k, v in brain.get("execution", {}).items() if k != "rpcs"},
            "execution_rpcs": brain.get("execution", {}).get("rpcs"),
            "prices": brain.get("prices"),
        },
        "time": "record: the services' clock is the recording's (AEGIS_CLOCK=record; docs/replay.md)",
        "prices": prices_note(source, brain.get("prices") or {}),
        "latency": latency_note(signals),
        "files": ["summary.json", "trades.csv", "symbols.csv", "candles_1m.csv", "equity.png", "latency.png"],
    }
    out = Path(options.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_trades_csv(out / "trades.csv", trades)
    write_symbols_csv(out / "symbols.csv", symbols)
    write_candles_csv(out / "candles_1m.csv", candles_1m)
    plot_equity(out / "equity.png", accounts, ledger)
    plot_latency(out / "latency.png", signals)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def account_summary(account: Any, trades: list[Any], open_positions: list[Any], ledger: list[Any]) -> dict[str, Any]:
    """One account's figures, each from its own source, cross-checked; raise BooksDoNotBalance if they differ."""
    name = account["account_id"]
    zero = Decimal(0)
    start = account["starting_balance"]
    end = account["wallet_balance"]
    # from the trades (closed positions) and the positions still open
    realised = sum((t["gross_pnl"] for t in trades), zero)
    fees = sum((t["fees"] for t in trades), zero) + sum((p["entry_fee"] for p in open_positions), zero)
    funding_received = sum((t["funding"] for t in trades), zero) + sum((p["funding"] for p in open_positions), zero)
    funding = -funding_received
    # from the ledger
    by_kind: dict[str, Decimal] = defaultdict(Decimal)
    for entry in ledger:  # a close's one row carries its exit fee in ``fee`` (migration 0005): counted as a fee
        by_kind[entry["kind"]] += entry["amount"] - entry["fee"]
        by_kind["fee"] += entry["fee"]
    checks = {
        "start = ledger deposits": (start, by_kind["deposit"]),
        "realised (trades) = ledger realised_pnl + liquidation": (
            realised,
            by_kind["realised_pnl"] + by_kind["liquidation"],
        ),
        "realised (trades) = accounts.realised_pnl": (realised, account["realised_pnl"]),
        "fees (trades + open positions) = -ledger fees": (fees, -by_kind["fee"]),
        "fees (trades + open positions) = accounts.fees": (fees, account["fees"]),
        "funding paid (trades + open positions) = -ledger funding": (funding, -by_kind["funding"]),
        "funding paid = -accounts.funding": (funding, -account["funding"]),
        "end (accounts) = last ledger balance_after": (end, ledger[-1]["balance_after"] if ledger else start),
        "no adjustments": (by_kind["adjustment"], zero),
        "end = start + realised - fees - funding": (end, start + realised - fees - funding),
    }
    broken = [f"{what}: {_text(a)} != {_text(b)}" for what, (a, b) in checks.items() if a != b]
    if broken:
        raise BooksDoNotBalance(f"account {name!r} does not balance: " + "; ".join(broken))
    assert end == start + realised - fees - funding  # the identity itself, stated plainly
    return {
        "trades": len(trades),
        "wins": sum(1 for t in trades if t["realised_pnl"] > 0),
        "start_balance": _text(start),
        "realised_pnl": _text(realised),
        "fees": _text(fees),
        "funding": _text(funding),
        "end_balance": _text(end),
        "open_positions": len(open_positions),
    }


def symbol_table(trades: list[Any]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for t in trades:
        row = rows.setdefault(
            (t["account_id"], t["symbol"]),
            {"account": t["account_id"], "symbol": t["symbol"], "trades": 0, "wins": 0, "pnl": Decimal(0)},
        )
        row["trades"] += 1
        row["wins"] += 1 if t["realised_pnl"] > 0 else 0
        row["pnl"] += t["realised_pnl"]
    return [{**r, "pnl": _text(r["pnl"])} for _, r in sorted(rows.items())]


def trade_rows(trades: list[Any]) -> list[dict[str, str]]:
    out = []
    for t in trades:
        row = {}
        for f in TRADE_FIELDS:
            value = t["account_id"] if f == "account" else t[f]
            row[f] = _text(value) if isinstance(value, Decimal) else ("" if value is None else str(value))
        out.append(row)
    return out


def write_trades_csv(path: Path, trades: list[Any]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TRADE_FIELDS)
        writer.writeheader()
        writer.writerows(trade_rows(trades))


def write_symbols_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=("account", "symbol", "trades", "wins", "pnl"))
        writer.writeheader()
        writer.writerows(rows)


def write_candles_csv(path: Path, candles: list[Any]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("symbol", "open_time_ms", "open", "high", "low", "close", "volume"))
        for c in candles:
            open_ms = int(c["open_time"].timestamp() * 1000)
            writer.writerow((c["symbol"], open_ms, *(_text(c[k]) for k in ("open", "high", "low", "close", "volume"))))


def prices_note(source: Any, pushed: dict[str, Any]) -> dict[str, Any]:
    """How prices reached the accounts in this replay, stated (a mark price is never made up silently)."""
    has_mark = bool(getattr(source, "has_mark_price", False))
    return {
        "mark_price_source": "markPrice stream"
        if has_mark
        else "last trade price: the recording has no markPrice stream, so the mark price sent to the accounts "
        "and to risk is the last trade price (AEGIS_BRAIN_MARK_PRICE_SOURCE=last)",
        "tp_sl_trigger": "mark price (workingType MARK_PRICE)"
        if has_mark
        else "last trade price (workingType CONTRACT_PRICE, AEGIS_ACCOUNT_WORKING_TYPE=contract_price)",
        "window_ms": pushed.get("window_ms"),
        "windows_sealed": pushed.get("windows_sealed"),
        "windows_skipped": pushed.get("windows_skipped"),
        "pushes": pushed.get("pushes"),
        "failures": pushed.get("failures"),
        "closed_by_price_updates": pushed.get("closed_trades"),
    }


def latency_note(signals: list[Any]) -> dict[str, Any]:
    """What the latency chart measures: created_at (wall clock) - recv_time_ns of the tick that made the signal."""
    values = _latencies_ms(signals)
    return {
        "measured": "signals.created_at - signals.recv_time_ns (ms). In a replay recv_time_ns is the recording's "
        "receive time, so this is the age of the recording at processing time, not the processing latency; it is "
        "a processing latency only on live data",
        "count": len(values),
        "min_ms": min(values) if values else None,
        "max_ms": max(values) if values else None,
    }


def _latencies_ms(signals: list[Any]) -> list[float]:
    out = []
    for s in signals:
        if s["recv_time_ns"]:
            created_ns = int(s["created_at"].timestamp() * 1e9)
            out.append((created_ns - int(s["recv_time_ns"])) / 1e6)
    return out


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_equity(path: Path, accounts: list[Any], ledger: list[Any]) -> None:
    """Wallet balance of every account over (ledger) time."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for account in accounts:
        name = account["account_id"]
        entries = [e for e in ledger if e["account_id"] == name]
        if not entries:
            continue
        times = [e["created_at"] for e in entries]
        values = [float(e["balance_after"]) for e in entries]
        times.append(max(times[-1], dt.datetime.now(dt.UTC)) if len(entries) == 1 else times[-1])
        values.append(values[-1])
        ax.step(times, values, where="post", label=f"{name} ({len(entries)} ledger entries)")
    ax.set_title("Equity (wallet balance) per account, from balance_ledger")
    ax.set_ylabel("USDT")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    else:
        ax.text(0.5, 0.5, "no accounts", ha="center", va="center", transform=ax.transAxes)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_latency(path: Path, signals: list[Any]) -> None:
    plt = _figure()
    values = _latencies_ms(signals)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if values:
        ax.hist(values, bins=min(50, max(5, len(values))))
    else:
        ax.text(0.5, 0.5, "no signals in this replay", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Tick-to-signal: signals.created_at - recv_time_ns (replay: includes the recording's age)")
    ax.set_xlabel("ms")
    ax.set_ylabel("signals")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
