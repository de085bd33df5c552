"""The five bias checks on a training set (the seeds' list, with their figures and thresholds made explicit).

Each check measures one figure, compares it with a threshold from :class:`aegis.config.TrainerSettings`, and says
in plain words what it saw. A failing check blocks promotion of the run's model (it is still trained, stored and
reported) because a model learnt from a skewed set is skewed in the same way:

1. ``WIN_RATE`` — share of trades with a positive realised PnL, percent; plausible from ``win_rate_min_pct`` to
   ``win_rate_max_pct`` (25–85 %). Outside it the set is too lucky or too unlucky to be a fair sample: a broken
   fee model, a stop that never triggers, a filter that dropped the losers.
2. ``PNL_OUTLIERS`` — share of trades whose return is more than ``outlier_sigma`` (3) standard deviations from the
   mean, percent; at most ``max_outlier_share_pct`` (2 %; a normal distribution has 0.27 %). A few extreme trades
   would dominate a squared or even a Huber loss. Every trade having the same return also fails: that is not a
   distribution, it is a bug.
3. ``SYMBOL_CONCENTRATION`` — share of the most frequent symbol, percent; at most ``max_symbol_share_pct`` (50 %),
   and at least ``min_symbols`` (2) distinct symbols. Otherwise the model learns one market's habits.
4. ``SIDE_BALANCE`` — share of the more frequent side (BUY or SELL), percent; at most ``max_side_share_pct``
   (95 %). A set of longs taken in a rising market teaches "always long", not a skill.
5. ``CLOSE_REASON_MIX`` — share of trades closed by TP_HIT, percent; at most ``max_tp_share_pct`` (90 %). Almost
   only targets hit means the stops are missing or never checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aegis.config import TrainerSettings

CHECK_NAMES: tuple[str, ...] = ("WIN_RATE", "PNL_OUTLIERS", "SYMBOL_CONCENTRATION", "SIDE_BALANCE", "CLOSE_REASON_MIX")
"""The checks, in the fixed order reports list them."""


@dataclass(frozen=True, slots=True)
class BiasCheck:
    name: str
    figure: float
    threshold: float
    passed: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "figure": self.figure,
            "threshold": self.threshold,
            "passed": self.passed,
            "detail": self.detail,
        }


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def win_rate(returns_pct: np.ndarray, settings: TrainerSettings) -> BiasCheck:
    n = len(returns_pct)
    lo, hi = settings.win_rate_min_pct, settings.win_rate_max_pct
    if n == 0:
        return BiasCheck("WIN_RATE", 0.0, lo, False, "no trades to measure a win rate on")
    rate = _pct(int((returns_pct > 0).sum()), n)
    threshold = lo if rate < lo or (rate <= hi and rate - lo < hi - rate) else hi
    passed = lo <= rate <= hi
    verdict = "inside" if passed else "outside"
    return BiasCheck(
        "WIN_RATE", rate, threshold, passed, f"{rate:.1f} % of {n} trades won; {verdict} the plausible {lo:g}–{hi:g} %"
    )


def pnl_outliers(returns_pct: np.ndarray, settings: TrainerSettings) -> BiasCheck:
    n = len(returns_pct)
    limit, sigma = settings.max_outlier_share_pct, settings.outlier_sigma
    if n == 0:
        return BiasCheck("PNL_OUTLIERS", 0.0, limit, False, "no trades to measure a return distribution on")
    mean, std = float(returns_pct.mean()), float(returns_pct.std())
    flat = std <= 1e-12 * max(1.0, abs(mean))  # float noise of a constant column is not spread
    if n > 1 and flat:
        return BiasCheck(
            "PNL_OUTLIERS", 0.0, limit, False, f"all {n} trades returned exactly {mean:.6g} %: not a real distribution"
        )
    count = 0 if flat else int((np.abs(returns_pct - mean) > sigma * std).sum())
    share = _pct(count, n)
    passed = share <= limit
    return BiasCheck(
        "PNL_OUTLIERS",
        share,
        limit,
        passed,
        f"{count} of {n} returns ({share:.2f} %) lie beyond {sigma:g} standard deviations "
        f"(mean {mean:.3f} %, deviation {std:.3f} %); at most {limit:g} % allowed",
    )


def symbol_concentration(symbols: Sequence[str], settings: TrainerSettings) -> BiasCheck:
    n = len(symbols)
    limit, needed = settings.max_symbol_share_pct, settings.min_symbols
    if n == 0:
        return BiasCheck("SYMBOL_CONCENTRATION", 0.0, limit, False, "no trades, no symbols")
    counts = Counter(symbols)
    top, top_count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    share = _pct(top_count, n)
    distinct = len(counts)
    passed = share <= limit and distinct >= needed
    return BiasCheck(
        "SYMBOL_CONCENTRATION",
        share,
        limit,
        passed,
        f"{top} has {share:.1f} % of {n} trades (at most {limit:g} %); {distinct} symbols (at least {needed})",
    )


def side_balance(sides: Sequence[str], settings: TrainerSettings) -> BiasCheck:
    n = len(sides)
    limit = settings.max_side_share_pct
    if n == 0:
        return BiasCheck("SIDE_BALANCE", 0.0, limit, False, "no trades, no sides")
    buys = sum(1 for s in sides if s == "BUY")
    side, count = ("BUY", buys) if buys * 2 >= n else ("SELL", n - buys)
    share = _pct(count, n)
    return BiasCheck(
        "SIDE_BALANCE", share, limit, share <= limit, f"{share:.1f} % of {n} trades are {side}; at most {limit:g} %"
    )


def close_reason_mix(close_reasons: Sequence[str], settings: TrainerSettings) -> BiasCheck:
    n = len(close_reasons)
    limit = settings.max_tp_share_pct
    if n == 0:
        return BiasCheck("CLOSE_REASON_MIX", 0.0, limit, False, "no trades, no close reasons")
    counts = Counter(close_reasons)
    share = _pct(counts["TP_HIT"], n)
    mix = ", ".join(f"{reason} {_pct(c, n):.1f} %" for reason, c in sorted(counts.items()))
    return BiasCheck(
        "CLOSE_REASON_MIX", share, limit, share <= limit, f"{share:.1f} % closed at TP_HIT (at most {limit:g} %): {mix}"
    )


def run_checks(
    returns_pct: np.ndarray,
    symbols: Sequence[str],
    sides: Sequence[str],
    close_reasons: Sequence[str],
    settings: TrainerSettings,
) -> list[BiasCheck]:
    """Return the five checks, in :data:`CHECK_NAMES` order."""
    returns = np.asarray(returns_pct, dtype=np.float64)
    return [
        win_rate(returns, settings),
        pnl_outliers(returns, settings),
        symbol_concentration(symbols, settings),
        side_balance(sides, settings),
        close_reason_mix(close_reasons, settings),
    ]
