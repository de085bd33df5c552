"""Benchmark: the brain's hot path — ring → candles → indicators → SMC → strategy → signal, in one process.

Data (**synthetic-from-real**): the real 10-day 1m klines of BTCUSDT and ETHUSDT (``../shared/data``). Each of
``--symbols`` symbols follows one of the two series from its own starting row (symbol ``i`` starts ``13 × (i // 2)``
minutes later), on one shared timeline. Within each minute a symbol trades ``--ticks-per-minute`` aggTrades whose
prices walk open → high → low → close (open → low → high → close on a down minute) and whose quantities add up to the
minute's volume, so the candles the brain builds have the klines' OHLCV.

Every side starts from the same history: ``--warm-hours`` (36) of those klines as closed KLINE records through the
brain's own path (not timed), so indicators, SMC and the strategy are warm and the timed ticks do the full work
(the 1h MACD, part of the features, needs 34 closed hours: with less, every trigger stops at ``warming_up``).
``--rules default`` runs the production rules (``StrategySettings()``: 1m trigger, the 15m zone a confluence
component, 1 h cooldown); ``--rules loose`` (the same without the cooldown) makes many more signals, for the
latency figures. The baseline reads the same timeframes as the strategy (SMC on the trigger timeframe and 15m).

* ``ours`` — trade records written into a real ring (:mod:`aegis.core.ring`, a file under ``--dir``), read by the
  brain's :class:`~aegis.brain.consumer.RingConsumer` (with its firewall) in batches of ``--batch``, candles by the
  numba :class:`~aegis.brain.candles.CandleBook`, events through the :class:`~aegis.brain.events.EventBus`, closes
  into :class:`~aegis.brain.strategy.Strategy` (streaming indicators, the compiled SMC detector
  :class:`~aegis.analytics.smc_compiled.CompiledSMC`, rules, features) and signals into a
  :class:`~aegis.brain.signals.SignalHub` (and onto the bus, as in the engine). Timed: reading and processing
  (writing the ring is the feed's work).
* ``python_per_tick_talib`` (baseline) — the straightforward implementation of the same work: the same trades as
  Python tuples (already decoded: no ring, no firewall), one at a time, into dict-based 1m candles with the same
  roll-ups (5m, 15m, 1h, 1d); on each close of a timeframe the strategy reads, TA-Lib's streaming handles
  (``talib.stream``: SMA 20, EMA 20, RSI 14, ATR 14, MACD 12/26/9, BBANDS 20/2, ADX 14) and, on the trigger
  timeframe and 15m, the Python :class:`~aegis.analytics.smc_stream.StreamingSMC` (the events ours' compiled
  detector gives, tested event for event). It makes no signals (no rules, no features): it does less than ours.

``ticks_per_second_per_core`` is records per second of one core (the brain is single-threaded), best of
``--repeat``; each repetition times ours, then the baseline on the same minutes, so load drifts hit both. After
the warm-up both sides' long-lived state is frozen out of the cyclic GC and the young collection's threshold raised
(:func:`aegis.brain.engine.settle_gc`, as the engine does after hydration; process-wide, so for both sides).
**Latency**: afterwards, ``--latency-minutes`` (480: about 350 signals, so the p99 is not just the second-largest
sample, as it was with the former 120 and ~80 signals) more of the timeline go through the ring one record at a
time (write, read, process, dispatch), each stamped with ``time.time_ns()`` as its ``recv_time_ns`` when written;
``tick_to_signal`` is a signal's ``created_time`` (the strategy's clock: ``time.time_ns()``, microsecond precision)
minus the receive time of the record that closed its candle; ``tick_to_publish`` is the same until the
:class:`~aegis.brain.signals.SignalHub` has published it (streamed to subscribers, queued for PostgreSQL; what the
engine's tick-to-signal histogram observes), before the trigger candle's SMC bookkeeping
(:meth:`~aegis.brain.strategy.Strategy.settle`, which the handler runs next, as the engine's does);
``tick_to_decision`` is, for every record that closed a trigger candle (whether or not a signal came out), the time
until the strategy was done with it, bookkeeping included. Targets:
>= 1M ticks/s per core, p99 tick-to-signal <= 100 µs; ``targets`` says which were met, without rounding.
``config.load_average_1min`` is the machine's load at the start and after the latency part (the figures move with
it on shared cores); ``config.machine_stalls`` is :func:`stall_probe` (``--stall-probe-s`` seconds of a loop that
only reads the clock) before and after the latency part: how often the machine itself took the CPU away for more
than 10 µs, which is what the p99 of a path of ``d`` µs is made of once it happens more than ``10_000 / d`` times a
second.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Say = Callable[[str], None]
MIN = 60_000
WIDTHS = {"1m": MIN, "5m": 5 * MIN, "15m": 15 * MIN, "1h": 60 * MIN, "1d": 1440 * MIN}
SOURCES = ("BTCUSDT", "ETHUSDT")
OFFSET_MINUTES = 13


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", type=int, default=300, help="symbols in the shard")
    parser.add_argument("--minutes", type=int, default=30, help="timed minutes of the timeline")
    parser.add_argument("--ticks-per-minute", type=int, default=60, help="aggTrades per symbol per minute")
    parser.add_argument(
        "--warm-hours",
        type=float,
        default=36.0,
        help="hours of klines before the timed ticks (the 1h MACD needs 34 closed hours before the features exist)",
    )
    parser.add_argument(
        "--latency-minutes",
        type=int,
        default=480,
        help="minutes of one-record-at-a-time latency (480 give ~350 signals: a p99 of fewer samples is one outlier)",
    )
    parser.add_argument("--latency-ticks-per-minute", type=int, default=6, help="aggTrades per symbol per minute there")
    parser.add_argument("--batch", type=int, default=4096, help="records the consumer reads per batch at most")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions per side (best taken)")
    parser.add_argument("--data", type=Path, default=None, help="directory with BTCUSDT_1m.csv and ETHUSDT_1m.csv")
    parser.add_argument("--dir", type=Path, default=None, help="where the ring file goes (default: a temp dir)")
    parser.add_argument(
        "--rules",
        choices=("default", "loose"),
        default="default",
        help="strategy rules: default (production: StrategySettings()) or loose (1m trigger, no zone, no cooldown: "
        "many more signals for the latency figures)",
    )
    parser.add_argument(
        "--stall-probe-s",
        type=float,
        default=2.0,
        help="seconds of the machine-stall probe before and after the latency part (config.machine_stalls)",
    )
    parser.add_argument("--quick", action="store_true", help="a small run for tests (20 symbols, a few seconds)")


# --------------------------------------------------------------------------------------------------- data


def _data_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    import os

    here = Path(__file__).resolve()
    shared = Path(os.environ.get("AEGIS_SHARED_DATA", here.parents[3].parent / "shared" / "data"))
    return shared / "binance" / "signalbot" / "data"


def load_klines(directory: Path) -> dict[str, np.ndarray]:
    """Return, per source symbol, an (n, 6) float64 array: open_time_ms, open, high, low, close, volume."""
    import pandas as pd

    out = {}
    for symbol in SOURCES:
        df = pd.read_csv(directory / f"{symbol}_1m.csv", parse_dates=["open_time"])
        opens = (pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
        out[symbol] = np.column_stack(
            [np.asarray(opens, dtype=np.float64), df[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)]
        )
    return out


class Timeline:
    """Which kline row each symbol reads at each minute of the shared timeline."""

    def __init__(self, klines: dict[str, np.ndarray], n_symbols: int) -> None:
        self.klines = klines
        self.n_symbols = n_symbols
        self.source = [klines[SOURCES[i % 2]] for i in range(n_symbols)]
        self.offset = [OFFSET_MINUTES * (i // 2) for i in range(n_symbols)]
        self.times = klines[SOURCES[0]][:, 0].astype(np.int64)

    @property
    def minutes(self) -> int:
        return len(self.times) - max(self.offset)

    def rows(self, minute: int) -> np.ndarray:
        """OHLCV rows (n_symbols, 5) of every symbol at timeline ``minute``."""
        return np.stack([self.source[i][minute + self.offset[i], 1:] for i in range(self.n_symbols)])


def kline_records(timeline: Timeline, start: int, stop: int) -> np.ndarray:
    """Closed 1m KLINE records of every symbol for timeline minutes ``start..stop-1``, in time order."""
    from aegis.core import records as rec

    n = timeline.n_symbols
    out = np.zeros((stop - start) * n, dtype=rec.MARKET_RECORD)
    template = np.frombuffer(rec.pack_kline(0, 0, 0, 0, 0, MIN, 1, 1, 1, 1, 1, 1, 1, 0.5, True), rec.MARKET_RECORD)
    out[:] = template[0]
    for k, minute in enumerate(range(start, stop)):
        rows = timeline.rows(minute)
        t = int(timeline.times[minute])
        part = out[k * n : (k + 1) * n]
        part["symbol_id"] = np.arange(n)
        part["event_time_ms"] = t + MIN
        part["i0"], part["i1"] = t, t + MIN - 1
        o, h, lo, c, v = (rows[:, j] for j in range(5))
        part["f0"], part["f1"], part["f2"], part["f3"], part["f4"] = c, v, o, h, lo  # the kline record's layout
        part["f5"], part["f6"] = v * c, v * 0.5
    return out


def trade_records(timeline: Timeline, start: int, stop: int, per_minute: int, first_id: int) -> np.ndarray:
    """aggTrade records of every symbol for timeline minutes ``start..stop-1``, interleaved in time order."""
    from aegis.core import records as rec

    n, k = timeline.n_symbols, per_minute
    template = np.frombuffer(rec.pack_trade(0, 0, 0, 1.0, 1.0, 1, 1, 1, 0, False), rec.MARKET_RECORD)
    out = np.zeros((stop - start) * n * k, dtype=rec.MARKET_RECORD)
    out[:] = template[0]
    # the path of a minute: open -> high -> low -> close (up minute: open -> low -> high -> close), k points
    anchors = np.linspace(0.0, 3.0, k)
    for m, minute in enumerate(range(start, stop)):
        rows = timeline.rows(minute)
        o, h, lo, c, v = (rows[:, j] for j in range(5))
        up = c >= o
        first = np.where(up, lo, h)
        second = np.where(up, h, lo)
        points = np.stack([o, first, second, c], axis=1)  # (n, 4)
        prices = np.stack([np.interp(anchors, [0, 1, 2, 3], points[s]) for s in range(n)], axis=1)  # (k, n)
        prices[0], prices[-1] = o, c
        # keep the exact extremes on the path (interpolation may skip them when k is small)
        if k >= 4:
            prices[k // 3], prices[2 * k // 3] = first, second
        t0 = int(timeline.times[minute])
        block = out[m * n * k : (m + 1) * n * k].reshape(k, n)
        times = t0 + (np.arange(k) * (MIN // k))[:, None] + np.zeros((1, n), dtype=np.int64)
        ids = first_id + m * n * k + np.arange(n * k).reshape(k, n)
        block["symbol_id"] = np.arange(n)[None, :]
        block["event_time_ms"] = times
        block["f0"] = prices
        block["f1"] = (v / k)[None, :]
        block["i0"], block["i1"], block["i2"] = ids, ids, ids
        block["i3"] = times
        block["flags"] = np.where(ids % 2 == 0, rec.FLAG_BUYER_IS_MAKER, 0)
    return out


# --------------------------------------------------------------------------------------------------- ours


class WallClock:
    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


def _strategy_settings(rules: str) -> Any:
    import dataclasses

    from aegis.config import StrategySettings

    if rules == "default":
        return StrategySettings()
    return dataclasses.replace(StrategySettings(), trigger_timeframe="1m", require_zone=False, cooldown_s=0.0)


class Ours:
    """The brain's path, assembled as the engine assembles it (minus PostgreSQL, Redis and gRPC)."""

    def __init__(self, ring_path: Path, names: list[str], batch: int, capacity: int, rules: str) -> None:
        from aegis.brain.candles import CandleBook
        from aegis.brain.consumer import RingConsumer, default_record_filter
        from aegis.brain.events import CandleClosed, EventBus
        from aegis.brain.persistence import CandleWriter
        from aegis.brain.signals import SignalHub
        from aegis.brain.strategy import Strategy
        from aegis.core import records as rec
        from aegis.core import ring

        self.writer = ring.create(ring_path, rec.MARKET_RECORD, capacity, layout_name=rec.MARKET_RECORD_LAYOUT)
        for name in names:
            self.writer.add_symbol(name)
        self.book = CandleBook(history=512, symbol_capacity=len(names))
        self.bus = EventBus()
        self.strategy = Strategy(_strategy_settings(rules), clock=WallClock())
        self.hub = SignalHub(None, bus=self.bus)  # as the engine's: each signal also goes on the bus for execution
        self.signals: list[Any] = []
        self.published_ns: list[int] = []
        self.closes = 0

        def on_candle(event: Any) -> None:
            self.closes += 1
            made = self.strategy.on_candle_closed(event)
            if made:
                self.hub.publish_all(made)
                published_ns = time.time_ns()  # streamed to subscribers, queued for storage
                self.signals.extend(made)
                self.published_ns.extend(published_ns for _ in made)
            self.strategy.settle()  # the trigger candle's bookkeeping, once its signals are out (as the engine)

        self.bus.subscribe(CandleClosed, on_candle)
        self.consumer = RingConsumer(
            ring_path,
            self.book,
            self.bus,
            CandleWriter(None, None),
            batch_records=batch,
            quiet_close_s=0,
            record_filter=default_record_filter(),
        )
        self.consumer.attach(ring.attach(ring_path, rec.MARKET_RECORD, layout_name=rec.MARKET_RECORD_LAYOUT))

    def drain(self) -> None:
        """Dispatch what the bus holds, synchronously (every handler here is a plain function).

        Stepping the coroutine once, rather than running an event loop per call, keeps the loop's own overhead out
        of the latency figures; the brain's bus task dispatches the same way between two yields.
        """
        coroutine = self.bus.drain()
        try:
            coroutine.send(None)
        except StopIteration:
            return
        coroutine.close()
        raise RuntimeError("a bus handler awaited: the benchmark's handlers must be synchronous")

    def consume_all(self) -> int:
        """Read and process everything published; return how many records."""
        total = 0
        while True:
            n = self.consumer.step()
            if n == 0:
                break
            total += n
            self.drain()
        return total

    def feed(self, records: np.ndarray, chunk: int) -> int:
        """Write ``records`` in chunks and consume each; return the ns spent consuming (writes not timed)."""
        spent = 0
        for i in range(0, len(records), chunk):
            self.writer.write_batch(records[i : i + chunk])
            start = time.perf_counter_ns()
            self.consume_all()
            spent += time.perf_counter_ns() - start
        return spent

    def close(self) -> None:
        if self.consumer.reader is not None:
            self.consumer.reader.close()
        self.writer.close()


def measure_latency(ours: Ours, records: np.ndarray, trigger_ms: int) -> dict[str, list[int]]:
    """Push ``records`` one at a time; return tick-to-signal, -publish and -decision latencies in ns."""
    signal_ns: list[int] = []
    publish_ns: list[int] = []
    decision_ns: list[int] = []
    raw = records.view(np.uint8).reshape(len(records), -1)
    times = records["event_time_ms"]
    last_minute = np.full(int(records["symbol_id"].max()) + 1, -1, dtype=np.int64)
    symbol_ids = records["symbol_id"]
    for i in range(len(records)):
        minute = int(times[i]) // trigger_ms
        sid = int(symbol_ids[i])
        closes = last_minute[sid] >= 0 and minute > last_minute[sid]
        last_minute[sid] = minute
        before = len(ours.signals)
        record = bytearray(raw[i].tobytes())
        recv_ns = time.time_ns()
        record[24:32] = recv_ns.to_bytes(8, "little")
        ours.writer.write_bytes(record)
        ours.consumer.step()
        ours.drain()
        done_ns = time.time_ns()
        if closes:
            decision_ns.append(done_ns - recv_ns)
        for s in ours.signals[before:]:
            signal_ns.append(s.created_time_ns - recv_ns)
        for published in ours.published_ns[before:]:
            publish_ns.append(published - recv_ns)
    return {"signal": signal_ns, "publish": publish_ns, "decision": decision_ns}


# --------------------------------------------------------------------------------------------------- baseline


class Baseline:
    """Per-tick Python candles + TA-Lib streaming handles + StreamingSMC (see the module doc).

    TA-Lib's handles need some history to open (MACD 34 bars); a timeframe with less keeps its bars and opens its
    handles once it has enough (until then it computes nothing: less work for the baseline, never more). With the
    default 36 warm hours the 1h handles are open from the start, as ours computes the 1h indicators from the start.
    """

    OPEN_AFTER = 34

    def __init__(self, n_symbols: int, history: dict[str, np.ndarray], trigger: str) -> None:
        from aegis.analytics.smc_stream import StreamingSMC

        self.TIMEFRAMES = (trigger, "15m", "1h", "1d")  # what the strategy reads
        self.SMC_LENGTHS = ((trigger, 3), ("15m", 5))

        self.forming: list[dict[str, list[float] | None]] = [dict.fromkeys(WIDTHS) for _ in range(n_symbols)]
        self.bars: list[dict[str, tuple[list[float], list[float], list[float]]]] = []
        self.handles: list[dict[str, tuple[Any, ...] | None]] = []
        self.smc: list[dict[str, Any]] = []
        self.values: list[dict[str, tuple[float, ...]]] = [{} for _ in range(n_symbols)]
        lengths = dict(self.SMC_LENGTHS)
        for s in range(n_symbols):
            bars, handles, smcs = {}, {}, {}
            for tf in self.TIMEFRAMES:
                warm = history[tf][s]  # (n, 5) o h l c v of the warm-up, closed
                bars[tf] = (warm[:, 1].tolist(), warm[:, 2].tolist(), warm[:, 3].tolist())
                handles[tf] = self._open(bars[tf])
                if tf in lengths:
                    smc = StreamingSMC(lengths[tf])
                    for o, hi, low, cl, v in warm.tolist():
                        smc.update(o, hi, low, cl, v)
                    smcs[tf] = smc
            self.bars.append(bars)
            self.handles.append(handles)
            self.smc.append(smcs)
        self.closes = 0

    def _open(self, bars: tuple[list[float], list[float], list[float]]) -> tuple[Any, ...] | None:
        from talib import stream

        if len(bars[2]) < self.OPEN_AFTER:
            return None
        h, lo, c = (np.asarray(b, dtype=np.float64) for b in bars)
        return (
            stream.SMA(c, timeperiod=20),
            stream.EMA(c, timeperiod=20),
            stream.RSI(c, timeperiod=14),
            stream.ATR(h, lo, c, timeperiod=14),
            stream.MACD(c, 12, 26, 9),
            stream.BBANDS(c, 20, 2.0, 2.0, 0),
            stream.ADX(h, lo, c, timeperiod=14),
        )

    def _take(self, s: int, tf: str, bar: list[float]) -> None:
        """A closed bar: advance the indicators (and SMC) of the timeframes the strategy reads."""
        self.closes += 1
        if tf not in self.handles[s]:
            return
        _, o, h, lo, c, v = bar
        handles = self.handles[s][tf]
        if handles is None:
            highs, lows, closes = self.bars[s][tf]
            highs.append(h)
            lows.append(lo)
            closes.append(c)
            handles = self.handles[s][tf] = self._open(self.bars[s][tf])
        else:
            sma, ema, rsi, atr, macd, bb, adx = handles
            self.values[s][tf] = (
                sma.update(c), ema.update(c), rsi.update(c), atr.update(h, lo, c), macd.update(c), bb.update(c),
                adx.update(h, lo, c),
            )  # fmt: skip
        smc = self.smc[s].get(tf)
        if smc is not None:
            smc.update(o, h, lo, c, v)

    def _close_minute(self, s: int, bar: list[float]) -> None:
        """A 1m bar closed: take it, and roll it into 5m, 15m, 1h and 1d (a bucket closes with its last part)."""
        self._take(s, "1m", bar)
        forming = self.forming[s]
        t, o, h, lo, c, v = bar
        for tf in ("5m", "15m", "1h", "1d"):
            width = WIDTHS[tf]
            start = int(t) // width * width
            cur = forming[tf]
            if cur is not None and cur[0] != start:
                self._take(s, tf, cur)
                cur = None
            if cur is None:
                cur = forming[tf] = [start, o, h, lo, c, v]
            else:
                cur[2] = max(cur[2], h)
                cur[3] = min(cur[3], lo)
                cur[4] = c
                cur[5] += v
            if int(t) + MIN == start + width:
                self._take(s, tf, cur)
                forming[tf] = None

    def tick(self, s: int, t: int, price: float, qty: float) -> None:
        forming = self.forming[s]
        minute = t // MIN * MIN
        bar = forming["1m"]
        if bar is not None and bar[0] != minute:
            self._close_minute(s, bar)
            bar = None
        if bar is None:
            forming["1m"] = [minute, price, price, price, price, qty]
        else:
            if price > bar[2]:
                bar[2] = price
            if price < bar[3]:
                bar[3] = price
            bar[4] = price
            bar[5] += qty


def history_bars(timeline: Timeline, start: int, stop: int) -> dict[str, np.ndarray]:
    """The warm-up minutes rolled up per timeframe: {tf: (n_symbols, n_bars, 5)} of closed bars (o h l c v)."""
    n = timeline.n_symbols
    rows = np.stack([timeline.rows(m) for m in range(start, stop)], axis=1)  # (n, minutes, 5)
    times = timeline.times[start:stop]
    out = {"1m": rows}
    for tf in ("5m", "15m", "1h", "1d"):
        width = WIDTHS[tf]
        buckets = times // width
        edges = np.flatnonzero(np.diff(buckets)) + 1
        groups = np.split(np.arange(len(times)), edges)
        bars = np.zeros((n, len(groups), 5))
        for g, idx in enumerate(groups):
            part = rows[:, idx]
            bars[:, g, 0] = part[:, 0, 0]
            bars[:, g, 1] = part[:, :, 1].max(axis=1)
            bars[:, g, 2] = part[:, :, 2].min(axis=1)
            bars[:, g, 3] = part[:, -1, 3]
            bars[:, g, 4] = part[:, :, 4].sum(axis=1)
        out[tf] = bars
    return out


def time_baseline(baseline: Baseline, trades: np.ndarray) -> float:
    """Feed ``trades`` to the baseline as Python tuples (decoded beforehand, not timed); return ticks per second."""
    ticks = list(
        zip(
            trades["symbol_id"].tolist(),
            trades["i3"].tolist(),
            trades["f0"].tolist(),
            trades["f1"].tolist(),
            strict=True,
        )
    )
    tick = baseline.tick
    begin = time.perf_counter_ns()
    for s, t, price, qty in ticks:
        tick(s, t, price, qty)
    spent = time.perf_counter_ns() - begin
    return len(ticks) / (spent / 1e9)


# --------------------------------------------------------------------------------------------------- run


def _load_average() -> float:
    """The machine's 1-minute load average (the cores are shared: the figures are read against it)."""
    import os

    return round(os.getloadavg()[0], 2)


def stall_probe(seconds: float) -> dict[str, float]:
    """How often this machine takes the CPU away: spin ``seconds`` reading ``time.perf_counter_ns()`` and count the
    gaps between two reads longer than 10 µs (a loop iteration takes well under 1 µs), with their sizes in µs.

    A signal path of ``d`` µs meets such a stall with a probability of about ``gaps_per_s * d / 1e6``; when that is
    above 1 %, the p99 is a typical path plus a stall, whatever the code does (docs/brain.md).
    """
    clock = time.perf_counter_ns
    gaps: list[int] = []
    start = previous = clock()
    end = start + int(seconds * 1e9)
    while previous < end:
        now = clock()
        if now - previous > 10_000:
            gaps.append(now - previous)
        previous = now
    spent = (previous - start) / 1e9
    sizes = np.asarray(gaps, dtype=np.float64) / 1000.0
    return {
        "seconds": round(spent, 3),
        "gaps_over_10us_per_s": round(len(gaps) / spent, 1),
        "gap_p50_us": round(float(np.percentile(sizes, 50)), 1) if gaps else 0.0,
        "gap_p90_us": round(float(np.percentile(sizes, 90)), 1) if gaps else 0.0,
        "gap_max_us": round(float(sizes.max()), 1) if gaps else 0.0,
    }


def _pct(values: list[int], q: float) -> float | None:
    """Percentile in µs, or None (JSON null) without samples."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) / 1000.0 if values else None


def run(options: argparse.Namespace, report: Say | None = None) -> dict[str, Any]:
    say = report or (lambda line: print(line, file=sys.stderr, flush=True))
    if options.quick:
        options.symbols, options.minutes, options.warm_hours = min(options.symbols, 20), 10, 36.0
        options.latency_minutes, options.repeat = 30, 1
    from aegis.brain.consumer import warm_up

    warm_up()
    load = {"start": _load_average()}
    probe_s = 0.2 if options.quick else options.stall_probe_s
    klines = load_klines(_data_dir(options.data))
    n = options.symbols
    timeline = Timeline(klines, n)
    warm = int(options.warm_hours * 60)
    timed_minutes = options.minutes
    need = warm + timed_minutes * options.repeat + options.latency_minutes + 1
    if need > timeline.minutes:
        raise SystemExit(f"not enough klines for {n} symbols: need {need} minutes, have {timeline.minutes}")
    names = [f"S{i:03d}USDT" for i in range(n)]
    tpm = options.ticks_per_minute
    say(f"brain bench: {n} symbols, {tpm} ticks/min, {timed_minutes} timed min x {options.repeat}, warm {warm} min")

    with tempfile.TemporaryDirectory(dir=options.dir) as tmp:
        ours = Ours(Path(tmp) / "bench.ring", names, options.batch, 1 << 18, options.rules)
        try:
            t0 = time.perf_counter()
            ours.feed(kline_records(timeline, 0, warm), 1 << 16)
            say(f"  warm-up through the brain: {time.perf_counter() - t0:.1f} s, {ours.closes:,} closes")
            # the baseline, warmed on the same history; its repetitions alternate with ours, so a change in the
            # machine's load hits both sides alike
            trigger = _strategy_settings(options.rules).trigger_timeframe
            baseline = Baseline(n, history_bars(timeline, 0, warm), trigger)
            # as the engine does after its warm-up: both sides' long-lived state leaves the GC's scans, and the young
            # collection runs every GC_THRESHOLDS[0] net allocations (process-wide: the baseline gets it too)
            from aegis.brain.engine import settle_gc

            settle_gc()
            ours_rates, base_rates = [], []
            ticks_timed = 0
            closes_timed = 0
            next_id = 1
            for r in range(options.repeat):
                start = warm + r * timed_minutes
                trades = trade_records(timeline, start, start + timed_minutes + 1, tpm, next_id)
                next_id += len(trades)
                closes_before = ours.closes
                spent = ours.feed(trades, 1 << 16)
                ours_rates.append(len(trades) / (spent / 1e9))
                ticks_timed, closes_timed = len(trades), ours.closes - closes_before
                say(f"  ours: {len(trades):,} ticks in {spent / 1e9:.3f} s = {ours_rates[-1] / 1e6:.2f} M ticks/s")
                base_rates.append(time_baseline(baseline, trades))
                say(f"  python_per_tick_talib: {len(trades):,} ticks = {base_rates[-1] / 1e6:.2f} M ticks/s")
            signals_timed = len(ours.signals)
            lat_start = warm + options.repeat * timed_minutes + 1
            latency_trades = trade_records(
                timeline, lat_start, lat_start + options.latency_minutes, options.latency_ticks_per_minute, next_id
            )
            stalls = {"before_latency": stall_probe(probe_s)}
            t1 = time.perf_counter()
            trigger_ms = WIDTHS[ours.strategy.trigger_timeframe]
            latency = measure_latency(ours, latency_trades, trigger_ms)
            say(
                f"  latency: {len(latency_trades):,} records one by one in {time.perf_counter() - t1:.1f} s, "
                f"{len(latency['signal'])} signals, {len(latency['decision']):,} trigger closes"
            )
            load["after_latency"] = _load_average()
            stalls["after_latency"] = stall_probe(probe_s)
            say(
                "  machine stalls > 10 µs: "
                + ", ".join(f"{v['gaps_over_10us_per_s']:.0f}/s (p50 {v['gap_p50_us']} µs)" for v in stalls.values())
                + " before / after the latency part"
            )
            say(
                f"  load average (1 min): {load['start']:.2f} at the start, "
                f"{load['after_latency']:.2f} after the latency part"
            )
            strategy_stats = ours.strategy.stats()
            consumer_status = ours.consumer.status()
        finally:
            ours.close()

    ours_best, base_best = max(ours_rates), max(base_rates)
    p50_signal, p99_signal = _pct(latency["signal"], 50), _pct(latency["signal"], 99)
    p50_decision, p99_decision = _pct(latency["decision"], 50), _pct(latency["decision"], 99)
    results = [
        {"name": "ticks_per_second_per_core", "value": ours_best, "unit": "ticks/s"},
        {"name": "baseline_python_per_tick_talib_ticks_per_second", "value": base_best, "unit": "ticks/s"},
        {"name": "tick_to_signal_p50", "value": p50_signal, "unit": "us"},
        {"name": "tick_to_signal_p99", "value": p99_signal, "unit": "us"},
        {"name": "tick_to_signal_max", "value": max(latency["signal"], default=0) / 1000.0, "unit": "us"},
        {"name": "tick_to_signal_samples", "value": len(latency["signal"]), "unit": "signals"},
        {"name": "tick_to_publish_p50", "value": _pct(latency["publish"], 50), "unit": "us"},
        {"name": "tick_to_publish_p99", "value": _pct(latency["publish"], 99), "unit": "us"},
        {"name": "tick_to_decision_p50", "value": p50_decision, "unit": "us"},
        {"name": "tick_to_decision_p99", "value": p99_decision, "unit": "us"},
        {"name": "tick_to_decision_samples", "value": len(latency["decision"]), "unit": "trigger closes"},
    ]
    return {
        "bench": "brain",
        "results": results,
        "ratios": {"ticks_vs_baseline": ours_best / base_best},
        "targets": {
            "ticks_per_second_per_core_1M": ours_best >= 1_000_000,
            "tick_to_signal_p99_100us": p99_signal is not None and p99_signal <= 100.0,
        },
        "config": {
            "data": "synthetic-from-real: trades walked through the real BTCUSDT/ETHUSDT 1m klines (2025-06)",
            "symbols": n,
            "ticks_per_minute": tpm,
            "timed_ticks_per_repeat": ticks_timed,
            "candle_closes_per_repeat": closes_timed,
            "signals_in_timed_part": signals_timed,
            "warm_minutes": warm,
            "latency_minutes": options.latency_minutes,
            "latency_ticks_per_minute": options.latency_ticks_per_minute,
            "batch": options.batch,
            "repeat": options.repeat,
            "rules": options.rules,
            "trigger_timeframe": trigger,
            "baseline": "python_per_tick_talib: per-tick Python candles + talib.stream handles + StreamingSMC (Python)",
            "strategy_counts": strategy_stats,
            "ring": {k: consumer_status.get(k) for k in ("records_processed", "records_lost", "records_rejected")},
            "load_average_1min": load,
            "machine_stalls": stalls,
            "gc_thresholds": list(gc.get_threshold()),
        },
    }
