"""Smart Money Concepts: swings, fair value gaps, BOS/CHOCH, order blocks and liquidity pools.

Two faces, both pure:

* Batch functions (``swing_highs_lows``, ``fvg``, ``bos_choch``, ``ob``, ``liquidity``) take a DataFrame with
  columns open, high, low, close, volume (any case, as the package accepts) and return the same frames as the
  ``smartmoneyconcepts`` package 0.0.27 — same columns, same dtypes, a fresh RangeIndex, the same value in every
  cell, NaN in the same places — computed by numba kernels (:mod:`aegis.analytics.smc_kernels`). They copy the
  package's look-ahead too: a swing at bar t depends on the ``swing_length`` bars after t, and ``liquidity`` on
  the whole frame's range. Use them for research, training labels and parity, never for a live decision.
* :class:`StreamingSMC` (:mod:`aegis.analytics.smc_stream`) sees one closed candle at a time and reports only
  what is known at that bar; a swing is confirmed ``swing_length`` bars after it. See ``docs/smc.md``.

The one deliberate difference from the package: a NaN or infinite price or volume raises
:class:`aegis.errors.ValidationError` instead of flowing silently through the comparisons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aegis.analytics import smc_kernels as _k
from aegis.analytics.smc_stream import (
    FvgEvent,
    LiquidityEvent,
    OrderBlockEvent,
    SmcEvent,
    StreamingSMC,
    StructureEvent,
    SwingEvent,
)
from aegis.errors import ValidationError

__all__ = [
    "FvgEvent",
    "LiquidityEvent",
    "OrderBlockEvent",
    "SmcEvent",
    "StreamingSMC",
    "StructureEvent",
    "SwingEvent",
    "bos_choch",
    "fvg",
    "liquidity",
    "ob",
    "strip_edge_swings",
    "swing_highs_lows",
]


def _columns(ohlc: pd.DataFrame, names: str) -> list[np.ndarray]:
    """Return the named columns (matched case-insensitively, like the package) as float64 arrays."""
    by_lower = {str(c).lower(): c for c in ohlc.columns}
    out = []
    for name in names.split():
        if name not in by_lower:
            raise ValidationError("ohlc", f'must have a column named "{name}"')
        values = np.ascontiguousarray(ohlc[by_lower[name]].to_numpy(dtype=np.float64))
        if not np.isfinite(values).all():
            raise ValidationError(f"ohlc.{name}", "holds NaN or infinite values")
        out.append(values)
    return out


def _swings(swings: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    hl = np.ascontiguousarray(swings["HighLow"].to_numpy(dtype=np.float64))
    level = np.ascontiguousarray(swings["Level"].to_numpy(dtype=np.float64))
    if hl.shape[0] != n:
        raise ValidationError("swing_highs_lows", f"has {hl.shape[0]} rows for {n} candles")
    return hl, level


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(columns, copy=False)


def swing_highs_lows(ohlc: pd.DataFrame, swing_length: int = 50) -> pd.DataFrame:
    """Return HighLow (1 swing high, -1 swing low) and Level per bar, as ``smc.swing_highs_lows``.

    Bar t is a swing high when its high is the highest of bars ``t-swing_length+1 .. t+swing_length`` (so it is
    known only ``swing_length`` bars later), only from ``t = 2*swing_length - 1`` on; of consecutive same-type
    swings the first most extreme one is kept; bars 0 and n-1 are then marked with the type opposite to the first
    and the last swing.
    """
    if int(swing_length) < 1:
        raise ValidationError("swing_length", f"must be >= 1, got {swing_length}")
    high, low = _columns(ohlc, "high low")
    hl, level = _k.swing_highs_lows(high, low, int(swing_length))
    return _frame({"HighLow": hl, "Level": level})


def fvg(ohlc: pd.DataFrame, join_consecutive: bool = False) -> pd.DataFrame:
    """Return FVG (1 bullish, -1 bearish), Top, Bottom and MitigatedIndex per bar, as ``smc.fvg``.

    A bullish gap at bar i: the candle is up and ``high[i-1] < low[i+1]`` (Top ``low[i+1]``, Bottom
    ``high[i-1]``); mitigated at the first bar from i+2 whose low reaches Top (0 when never).
    """
    open_, high, low, close = _columns(ohlc, "open high low close")
    kind, top, bottom, mitigated = _k.fvg(open_, high, low, close, bool(join_consecutive))
    return _frame({"FVG": kind, "Top": top, "Bottom": bottom, "MitigatedIndex": mitigated})


def bos_choch(ohlc: pd.DataFrame, swing_highs_lows: pd.DataFrame, close_break: bool = True) -> pd.DataFrame:
    """Return BOS, CHOCH (1 bullish, -1 bearish), Level and BrokenIndex per bar, as ``smc.bos_choch``."""
    high, low, close = _columns(ohlc, "high low close")
    hl, level = _swings(swing_highs_lows, close.shape[0])
    bos, choch, out_level, broken = _k.bos_choch(high, low, close, hl, level, bool(close_break))
    return _frame({"BOS": bos, "CHOCH": choch, "Level": out_level, "BrokenIndex": broken})


def ob(ohlc: pd.DataFrame, swing_highs_lows: pd.DataFrame, close_mitigation: bool = False) -> pd.DataFrame:
    """Return OB (1 bullish, -1 bearish), Top, Bottom, OBVolume, MitigatedIndex and Percentage, as ``smc.ob``."""
    open_, high, low, close, volume = _columns(ohlc, "open high low close volume")
    hl, _ = _swings(swing_highs_lows, close.shape[0])
    kind, top, bottom, ob_volume, mitigated, pct = _k.ob(open_, high, low, close, volume, hl, bool(close_mitigation))
    return _frame(
        {
            "OB": kind,
            "Top": top,
            "Bottom": bottom,
            "OBVolume": ob_volume,
            "MitigatedIndex": mitigated,
            "Percentage": pct,
        }
    )


def liquidity(ohlc: pd.DataFrame, swing_highs_lows: pd.DataFrame, range_percent: float = 0.01) -> pd.DataFrame:
    """Return Liquidity (1 highs, -1 lows), Level, End and Swept per bar, as ``smc.liquidity``."""
    high, low = _columns(ohlc, "high low")
    hl, level = _swings(swing_highs_lows, high.shape[0])
    kind, out_level, end, swept = _k.liquidity(high, low, hl, level, float(range_percent))
    return _frame({"Liquidity": kind, "Level": out_level, "End": end, "Swept": swept})


def strip_edge_swings(swings: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of a ``swing_highs_lows`` frame without the synthetic marks on its first and last bar.

    The package marks bar 0 and bar n-1 with the type opposite to the first and last real swing; they are not
    swings (no window confirms them) and :class:`StreamingSMC` never reports them. Feeding the stripped frame to
    ``bos_choch``/``liquidity`` gives the batch results the streaming detector's final state is compared with.
    """
    out = swings.copy()
    if len(out) > 0:
        out.iloc[[0, len(out) - 1], :] = np.nan
    return out
