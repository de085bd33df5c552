"""The NautilusTrader side of ``aegis bench replay``: run in its own venv, never imported with nautilus by AEGIS.

``python _nautilus_replay.py SPEC.json`` (SPEC: ``{"files": [...], "repeat": N, "fast": 10, "slow": 20}``) reads
the same hftbacktest recordings the replay reads, repeated and time-shifted the same way (each repetition by the
recordings' span rounded up to the minute), turns their ``@trade`` frames into ``TradeTick`` s and their
``@bookTicker`` frames into ``QuoteTick`` s (depth updates are not ticks: left out, as the feed leaves them out of
the ring), and runs a ``BacktestEngine`` (venue BINANCE, margin account, netting) with nautilus's own
``EMACrossBracket`` example strategy per instrument: an EMA(10)/EMA(20) cross on 1-minute bars built inside the
engine from the trade ticks, each entry with a take-profit and a stop-loss bracket. Only ``engine.run()`` is timed
(wall clock ``run_s``, and the process's CPU ``run_cpu_s``), with its own post-run analysis (the engine's
default): reading and parsing the files and building the tick objects happen before, and the parsed tuples are
released (and garbage collected) before the run, so the engine runs with only its own data alive. It prints one
JSON line.

:func:`ticks_from_frames` (the conversion) is plain Python so AEGIS's tests check it without nautilus.
"""

from __future__ import annotations

import gc
import gzip
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MINUTE_NS = 60_000_000_000
ID_SPAN = 10**13  # as aegis.replay.source.ID_SPAN


def read_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(recv_ns, frame)`` of an hftbacktest file (``<local_ns> <json>`` per line, gzip or plain)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        for line in f:
            head, _, frame = line.strip().partition(b" ")
            if frame:
                yield int(head), frame


def span_period_ns(paths: Iterable[str | Path]) -> int:
    """The shift of one repetition: the recordings' whole span rounded up to the minute (as aegis replay)."""
    stamps = [t for p in paths for t, _ in read_lines(p)]
    return ((max(stamps) - min(stamps)) // MINUTE_NS + 1) * MINUTE_NS


def ticks_from_frames(
    frames: Iterable[tuple[int, bytes]], shift_ns: int = 0, id_shift: int = 0
) -> Iterator[tuple[Any, ...]]:
    """Yield the ticks of combined-stream frames as plain tuples, in frame order.

    * ``("trade", symbol, price, size, buyer_is_maker, trade_id, ts_event_ns, ts_init_ns)`` for a MARKET ``trade``;
    * ``("quote", symbol, bid, ask, bid_size, ask_size, ts_event_ns, ts_init_ns)`` for a ``bookTicker``.

    Prices and sizes stay the exchange's text. ``ts_event`` is the event's exchange time (trade time ``T``,
    bookTicker ``T`` or else ``E``), ``ts_init`` the frame's receive time, both shifted by ``shift_ns``; trade ids
    by ``id_shift`` (a repetition, as ``aegis replay --repeat`` shifts them).
    """
    for recv_ns, frame in frames:
        try:
            data = json.loads(frame)
        except ValueError:
            continue
        data = data.get("data", data)
        kind = data.get("e")
        if kind == "trade":
            if data.get("X", "MARKET") != "MARKET":
                continue
            yield (
                "trade",
                data["s"],
                data["p"],
                data["q"],
                bool(data["m"]),
                str(int(data["t"]) + id_shift),
                int(data["T"]) * 1_000_000 + shift_ns,
                recv_ns + shift_ns,
            )
        elif kind == "bookTicker" or ("b" in data and "a" in data and "B" in data and "u" in data):
            ts_ms = int(data.get("T") or data.get("E") or recv_ns // 1_000_000)
            yield ("quote", data["s"], data["b"], data["a"], data["B"], data["A"], ts_ms * 1_000_000 + shift_ns,
                   recv_ns + shift_ns)  # fmt: skip


def repeated_ticks(paths: list[str], repeat: int) -> list[tuple[Any, ...]]:
    """Every tick of ``paths``, ``repeat`` times with shifted times, ordered by receive time (as the replay merges)."""
    period = span_period_ns(paths)
    out: list[tuple[Any, ...]] = []
    for r in range(repeat):
        for p in paths:
            out.extend(ticks_from_frames(read_lines(p), r * period, r * ID_SPAN))
    out.sort(key=lambda t: t[-1])
    return out


def main(spec_path: str) -> None:  # pragma: no cover - runs in the nautilus venv
    from decimal import Decimal

    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.examples.strategies.ema_cross_bracket import EMACrossBracket, EMACrossBracketConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import BarType, QuoteTick, TradeTick
    from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType
    from nautilus_trader.model.identifiers import TradeId, Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.test_kit.providers import TestInstrumentProvider

    spec = json.loads(Path(spec_path).read_text())
    started = time.perf_counter()
    raw = repeated_ticks(spec["files"], int(spec["repeat"]))
    instruments = {
        "BTCUSDT": TestInstrumentProvider.btcusdt_perp_binance(),
        "ETHUSDT": TestInstrumentProvider.ethusdt_perp_binance(),
    }
    data: list[Any] = []
    for t in raw:
        inst = instruments.get(t[1])
        if inst is None:
            continue
        if t[0] == "trade":
            data.append(
                TradeTick(
                    inst.id,
                    inst.make_price(float(t[2])),
                    inst.make_qty(float(t[3])),
                    AggressorSide.SELLER if t[4] else AggressorSide.BUYER,
                    TradeId(t[5]),
                    t[6],
                    t[7],
                )
            )
        else:
            data.append(
                QuoteTick(
                    inst.id,
                    inst.make_price(float(t[2])),
                    inst.make_price(float(t[3])),
                    inst.make_qty(float(t[4])),
                    inst.make_qty(float(t[5])),
                    t[6],
                    t[7],
                )
            )
    built_s = time.perf_counter() - started
    trades = sum(1 for t in raw if t[0] == "trade")
    quotes = len(raw) - trades
    del raw  # the 0.9 M tuples of text are not the engine's: no cyclic GC pass during the run walks them
    gc.collect()
    engine = BacktestEngine(config=BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True)))
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=None,
        starting_balances=[Money(1_000_000, USDT)],
    )
    for inst in instruments.values():
        engine.add_instrument(inst)
        bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-INTERNAL")
        engine.add_strategy(
            EMACrossBracket(
                EMACrossBracketConfig(
                    instrument_id=inst.id,
                    bar_type=bar_type,
                    trade_size=Decimal("0.010"),
                    fast_ema_period=int(spec.get("fast", 10)),
                    slow_ema_period=int(spec.get("slow", 20)),
                    atr_period=int(spec.get("slow", 20)),
                    strategy_id=f"EMACrossBracket-{inst.id.symbol}",
                )
            )
        )
    engine.add_data(data)
    t0, cpu0 = time.perf_counter(), time.process_time()
    engine.run()
    run_s, run_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    import nautilus_trader

    orders = len(engine.cache.orders())
    positions = len(engine.cache.positions())
    engine.dispose()
    print(
        json.dumps(
            {
                "version": nautilus_trader.__version__,
                "events": len(data),
                "trades": trades,
                "quotes": quotes,
                "run_s": run_s,
                "run_cpu_s": run_cpu_s,
                "build_s": built_s,
                "orders": orders,
                "positions": positions,
            }
        )
    )


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])
