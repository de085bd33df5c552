"""Benchmark: the analytics hot path (indicators; Smart Money Concepts when that half is present).

Indicators: when a bar closes, the brain advances seven indicators (SMA 20, EMA 20, RSI 14, ATR 14, MACD 12/26/9,
BBANDS 20/2, ADX 14) for every symbol. Each contender starts from the same ``--warm`` bars of history per symbol
(not timed) and then takes ``--bars`` closed bars for each of ``--symbols`` symbols (timed); the figure is the cost
per symbol-bar (all seven indicators), the best of ``--repeat`` repetitions, measured the same way for every side:

* ``ours_streaming`` — :class:`aegis.analytics.indicators.StreamingIndicators`: one compiled call per closed bar
  advances every symbol (numba compile time excluded: it is warmed up first);
* ``talib_stream`` — TA-Lib's own streaming API: one ``talib.stream.<FN>`` handle per symbol and indicator, opened
  on the history, then ``handle.update(bar)`` (seven calls per symbol-bar);
* ``talib_window_500`` — TA-Lib's function API recomputed on each symbol's last 500 bars (seven calls per
  symbol-bar), the usual way of using TA-Lib without a streaming API.

Ratios ``indicators_vs_talib_stream`` and ``indicators_vs_talib_window_500`` are baseline cost ÷ ours (how many times
faster ours is); ``targets`` says, without rounding in our favour, whether the 10x and 100x targets were met. The
prices are a seeded random walk (cost does not depend on the values); ``checks`` compares our last values with
TA-Lib's stream handles' (they must agree, or the timing compares different work).

The SMC half lives in ``aegis.bench._analytics_smc`` (optional): if that module exists, ``add_arguments`` calls its
``add_arguments(parser)`` (it must not redefine ``--quick``, ``--repeat``, ``--symbols``, ``--bars``, ``--warm``)
and ``run`` calls its ``_bench_smc(options, say)``, which returns a dict with ``results`` and ``ratios`` (and
optionally ``targets`` and ``config``) merged into this benchmark's result.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

Say = Callable[[str], None]

SMA_PERIOD, EMA_PERIOD, RSI_PERIOD, ATR_PERIOD, ADX_PERIOD = 20, 20, 14, 14, 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_PERIOD, BB_NBDEV = 20, 2.0
WINDOW = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the analytics benchmark's options to ``parser``."""
    parser.add_argument("--symbols", type=int, default=300, help="symbols updated together on each closed bar")
    parser.add_argument("--bars", type=int, default=None, help="timed closed bars per repetition (default 200)")
    parser.add_argument("--warm", type=int, default=WINDOW, help="bars of history per symbol before timing")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions, best taken (default 5)")
    parser.add_argument("--quick", action="store_true", help="small run for tests (a few seconds)")
    smc = _smc_module()
    if smc is not None and hasattr(smc, "add_arguments"):
        smc.add_arguments(parser)


def run(options: argparse.Namespace, report: Say | None = None) -> dict[str, Any]:
    """Run the indicator half (and the SMC half if present); return the benchmark JSON dict."""
    say = report or (lambda line: print(line, file=sys.stderr, flush=True))
    parts = [_bench_indicators(options, say)]
    smc = _smc_module()
    if smc is not None:
        parts.append(smc._bench_smc(options, say))
    result: dict[str, Any] = {"bench": "analytics", "results": [], "ratios": {}, "targets": {}, "config": {}}
    for part in parts:
        result["results"].extend(part["results"])
        result["ratios"].update(part["ratios"])
        result["targets"].update(part.get("targets", {}))
        result["config"].update(part.get("config", {}))
        for key, value in part.items():
            if key not in result:
                result[key] = value
    return result


def _smc_module() -> ModuleType | None:
    # Only the absence of the module is tolerated; an error inside it must surface.
    if importlib.util.find_spec("aegis.bench._analytics_smc") is None:
        return None
    return importlib.import_module("aegis.bench._analytics_smc")


# ------------------------------------------------------------------------------------------------------------
# Indicators


def _bench_indicators(options: argparse.Namespace, say: Say) -> dict[str, Any]:
    import talib
    from talib import stream

    from aegis.analytics.indicators import StreamingIndicators

    quick = bool(getattr(options, "quick", False))
    n_symbols = max(1, int(getattr(options, "symbols", 300) or 300))
    bars = getattr(options, "bars", None) or (20 if quick else 200)
    repeat = getattr(options, "repeat", None) or (3 if quick else 5)
    warm = max(WINDOW, int(getattr(options, "warm", WINDOW) or WINDOW))
    high, low, close = _prices(n_symbols, warm + bars)
    # Bar-major copies so each closed bar's values for all symbols are contiguous (how the brain holds them).
    high_t, low_t, close_t = (np.ascontiguousarray(a.T) for a in (high, low, close))
    say(
        f"analytics bench (indicators): {n_symbols} symbols × {bars} closed bars, {warm} bars of history, "
        f"best of {repeat}; seven indicators per symbol-bar"
    )

    def make_ours() -> StreamingIndicators:
        ind = StreamingIndicators(
            n_symbols,
            sma_period=SMA_PERIOD,
            ema_period=EMA_PERIOD,
            rsi_period=RSI_PERIOD,
            atr_period=ATR_PERIOD,
            macd_fast=MACD_FAST,
            macd_slow=MACD_SLOW,
            macd_signal=MACD_SIGNAL,
            bb_period=BB_PERIOD,
            bb_nbdev=BB_NBDEV,
            adx_period=ADX_PERIOD,
        )
        ind.feed(high[:, :warm], low[:, :warm], close[:, :warm])
        return ind

    # Warm-up: compile every kernel the timed path uses (cached on disk afterwards).
    make_ours().update(high_t[warm], low_t[warm], close_t[warm])

    def time_ours() -> float:
        ind = make_ours()
        start = time.perf_counter_ns()
        for t in range(warm, warm + bars):
            ind.update(high_t[t], low_t[t], close_t[t])
        elapsed = time.perf_counter_ns() - start
        time_ours.values = ind.values.copy()  # type: ignore[attr-defined]
        return elapsed

    def open_talib() -> list[tuple[Any, ...]]:
        handles = []
        for s in range(n_symbols):
            h, lo, c = high[s, :warm], low[s, :warm], close[s, :warm]
            handles.append(
                (
                    stream.SMA(c, timeperiod=SMA_PERIOD),
                    stream.EMA(c, timeperiod=EMA_PERIOD),
                    stream.RSI(c, timeperiod=RSI_PERIOD),
                    stream.ATR(h, lo, c, timeperiod=ATR_PERIOD),
                    stream.MACD(c, MACD_FAST, MACD_SLOW, MACD_SIGNAL),
                    stream.BBANDS(c, BB_PERIOD, BB_NBDEV, BB_NBDEV, 0),
                    stream.ADX(h, lo, c, timeperiod=ADX_PERIOD),
                )
            )
        return handles

    def time_talib_stream() -> float:
        handles = open_talib()
        last: list[tuple[Any, ...]] = []
        start = time.perf_counter_ns()
        for t in range(warm, warm + bars):
            hs, ls, cs = high_t[t].tolist(), low_t[t].tolist(), close_t[t].tolist()
            last = []
            for s in range(n_symbols):
                sma_h, ema_h, rsi_h, atr_h, macd_h, bb_h, adx_h = handles[s]
                h, lo, c = hs[s], ls[s], cs[s]
                last.append(
                    (
                        sma_h.update(c),
                        ema_h.update(c),
                        rsi_h.update(c),
                        atr_h.update(h, lo, c),
                        macd_h.update(c),
                        bb_h.update(c),
                        adx_h.update(h, lo, c),
                    )
                )
        elapsed = time.perf_counter_ns() - start
        time_talib_stream.last = last  # type: ignore[attr-defined]
        return elapsed

    def time_talib_window() -> float:
        start = time.perf_counter_ns()
        for t in range(warm, warm + bars):
            first = t + 1 - WINDOW
            for s in range(n_symbols):
                h, lo, c = high[s, first : t + 1], low[s, first : t + 1], close[s, first : t + 1]
                talib.SMA(c, SMA_PERIOD)
                talib.EMA(c, EMA_PERIOD)
                talib.RSI(c, RSI_PERIOD)
                talib.ATR(h, lo, c, ATR_PERIOD)
                talib.MACD(c, MACD_FAST, MACD_SLOW, MACD_SIGNAL)
                talib.BBANDS(c, BB_PERIOD, BB_NBDEV, BB_NBDEV, 0)
                talib.ADX(h, lo, c, ADX_PERIOD)
        return time.perf_counter_ns() - start

    contenders = {
        "ours_streaming": time_ours,
        "talib_stream": time_talib_stream,
        "talib_window_500": time_talib_window,
    }
    best = {name: float("inf") for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():  # interleaved, so drift on a shared machine hits every side alike
            best[name] = min(best[name], fn())
    per_symbol_bar_ns = {name: ns / (bars * n_symbols) for name, ns in best.items()}
    for name, ns in per_symbol_bar_ns.items():
        say(f"{name:22s} {ns:12,.1f} ns per symbol-bar (seven indicators)")

    single_ns = _time_single_symbol(make_ours(), high_t, low_t, close_t, warm, bars, repeat)
    say(f"{'ours_one_symbol_call':22s} {single_ns:12,.1f} ns per call updating one symbol")
    one_ns = _time_update_one(make_ours(), high_t, low_t, close_t, warm, bars, repeat)
    say(f"{'ours_update_one':22s} {one_ns:12,.1f} ns per update_one call (one symbol, floats: the brain's path)")

    agreement = _agreement(time_ours.values, time_talib_stream.last)  # type: ignore[attr-defined]
    say(f"max relative difference, ours vs TA-Lib stream handles at the last bar: {agreement:.3g}")

    ours = per_symbol_bar_ns["ours_streaming"]
    ratios = {
        "indicators_vs_talib_stream": round(per_symbol_bar_ns["talib_stream"] / ours, 2),
        "indicators_vs_talib_window_500": round(per_symbol_bar_ns["talib_window_500"] / ours, 2),
    }
    targets = {
        "indicators_10x_talib_stream": ratios["indicators_vs_talib_stream"] >= 10,
        "indicators_100x_talib_window_500": ratios["indicators_vs_talib_window_500"] >= 100,
    }
    say("targets: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in targets.items()))
    results = [
        {"name": f"indicators.{name}", "value": round(ns, 1), "unit": "ns/symbol-bar"}
        for name, ns in per_symbol_bar_ns.items()
    ]
    results.append({"name": "indicators.ours_one_symbol_call", "value": round(single_ns, 1), "unit": "ns/call"})
    results.append({"name": "indicators.ours_update_one", "value": round(one_ns, 1), "unit": "ns/call"})
    return {
        "results": results,
        "ratios": ratios,
        "targets": targets,
        "checks": {"indicators_max_rel_diff_vs_talib_stream": agreement},
        "config": {
            "indicators": {
                "symbols": n_symbols,
                "bars": bars,
                "warm": warm,
                "repeat": repeat,
                "window": WINDOW,
                "quick": quick,
                "talib": talib.__version__,
            }
        },
    }


def _prices(n_symbols: int, n_bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random-walk bars, (n_symbols, n_bars) each, C order."""
    rng = np.random.default_rng(20250606)
    start = rng.uniform(0.1, 50_000.0, size=(n_symbols, 1))
    close = start * np.exp(np.cumsum(rng.normal(0.0, 0.001, size=(n_symbols, n_bars)), axis=1))
    spread = np.abs(rng.normal(0.0, 0.0007, size=(n_symbols, n_bars))) * close
    high = close + spread * rng.uniform(0.0, 1.0, size=close.shape)
    low = close - spread * rng.uniform(0.0, 1.0, size=close.shape)
    return np.ascontiguousarray(high), np.ascontiguousarray(low), np.ascontiguousarray(close)


def _time_single_symbol(ind: Any, high_t, low_t, close_t, warm: int, bars: int, repeat: int) -> float:
    """Cost of one ``update`` call that advances a single symbol (the fixed per-call overhead)."""
    symbol = np.array([0], dtype=np.int64)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for t in range(warm, warm + bars):
            ind.update(high_t[t, :1], low_t[t, :1], close_t[t, :1], symbols=symbol)
        best = min(best, (time.perf_counter_ns() - start) / bars)
    return best


def _time_update_one(ind: Any, high_t, low_t, close_t, warm: int, bars: int, repeat: int) -> float:
    """Cost of one ``update_one`` call (one symbol, the bar as floats): what the brain pays per closed candle."""
    highs, lows, closes = (a[warm : warm + bars, 0].tolist() for a in (high_t, low_t, close_t))
    update_one = ind.update_one
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for h, lo, c in zip(highs, lows, closes, strict=True):
            update_one(0, h, lo, c)
        best = min(best, (time.perf_counter_ns() - start) / bars)
    return best


def _agreement(values: np.ndarray, talib_last: list[tuple[Any, ...]]) -> float:
    """Largest relative difference between our last values and the TA-Lib handles' (column order as ours)."""
    theirs = np.array(
        [[sma, ema, rsi, atr, *macd, *bb, adx] for sma, ema, rsi, atr, macd, bb, adx in talib_last], dtype=np.float64
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(values - theirs)
        scale = np.maximum(np.abs(values), np.abs(theirs))
        rel = np.where(diff == 0.0, 0.0, diff / scale)
    return float(np.nanmax(rel))
