"""The brain's rule-based strategy: multi-timeframe Smart Money Concepts confluence, one closed candle at a time.

``docs/strategy.md`` explains the rules in plain words with a worked example; in short, for a long (a short is
the mirror image):

1. **Trigger (1m by default, or 5m).** A *liquidity sweep*: a candle trades below the latest confirmed swing low
   (or a pool of equal lows) and closes back above it. Then, within ``sweep_window_bars`` candles, a *change of
   character* (CHOCH): a close above the latest swing high known at the sweep.
2. **Zone (15m).** A sweep reaching a bullish 15m order block or fair value gap active when it happened scores
   higher (and is required with ``require_zone``); the stop goes below the lower of the sweep's low and the zone's
   bottom, plus a buffer of trigger ATRs. The target is ``reward_risk`` times the stop distance.
3. **Confluence.** The 1d bias, the 1h trend, the 15m structure (latest BOS/CHOCH), the zone, a swept pool and
   the trigger candle's volume make a score (:func:`confluence`); the confidence is a logistic function of it
   (:func:`confidence_of`). Setups below ``min_confidence`` emit nothing, nor does anything during warm-up
   (a NaN feature), nor a second signal of a symbol within ``cooldown_s`` of market time.
4. **Predicted return.** The learning loop's predictor when one is set, else the rule-based estimate
   :func:`rule_based_return_pct`.

Determinism: the strategy reads nothing but the closed candles it is given, in order (no wall clock unless one
is injected for ``created_time_ns``; signal ids are derived from the symbol, timeframe, candle and side), so the
same candles give the same signals live and in replay. :meth:`Strategy.on_candle_closed` is the only entry point
that emits; :meth:`Strategy.warm_up` replays stored history through the very same path without emitting.

Latency: a trigger candle's decision reads only what was known before that candle's SMC update (the pending
sweeps, the 15m structure and zones, the indicators), so :meth:`Strategy.on_candle_closed` decides and returns
the signals first; the candle's own bookkeeping (the detector's update, the swings it confirms, the candle's own
sweep, the market-state view) is :meth:`Strategy.settle`, which the caller runs once the signals are published
and every other entry point runs first. The signals are the same as with the bookkeeping first (tested). The
decision itself is one numba call (:func:`aegis.brain.decision_kernel.decide`) over per-symbol arrays that mirror
the pending sweeps and the context (tested after every real candle); it computes exactly what :func:`plan_trade`,
:func:`aegis.brain.features.compute`, :func:`confluence`, :func:`confidence_of` and :func:`rule_based_return_pct`
give, which the tests check at every trigger of the real klines.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NamedTuple

import msgspec
import numpy as np

from aegis.analytics.indicators import StreamingIndicators
from aegis.analytics.indicators_kernels import stream_update_one
from aegis.analytics.smc_compiled import CompiledSMC
from aegis.analytics.smc_compiled import warm_up as warm_smc_kernel
from aegis.analytics.smc_stream import (
    DEFAULT_HORIZON,
    FvgEvent,
    LiquidityEvent,
    OrderBlockEvent,
    SmcEvent,
    StructureEvent,
    SwingEvent,
    raise_if_not_finite,
)
from aegis.brain import decision_kernel as dk
from aegis.brain import features as feat
from aegis.brain.events import Candle, CandleClosed, SignalGenerated
from aegis.brain.feature_kernel import CONFIDENCE, FINITE
from aegis.brain.numeric import price_decimal
from aegis.brain.timeframes import INDEX_BY_NAME, WIDTHS_MS, Clock
from aegis.brain.zones import SmcView
from aegis.config import StrategySettings

log = logging.getLogger("aegis.brain.strategy")

RULES_MODEL_VERSION = "rules-v1"
"""``model_version`` of signals whose predicted return is the rule-based estimate."""

STRUCTURE_TIMEFRAME = "15m"
TREND_TIMEFRAME = "1h"
BIAS_TIMEFRAME = "1d"

CONFLUENCE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"d1_bias": 0.15, "h1_trend": 0.25, "m15_structure": 0.25, "zone": 0.20, "sweep_pool": 0.05, "volume": 0.10}
)
"""Weight of each confluence component; they sum to 1, so the score is at most 1 (and at least -0.65)."""
CONFIDENCE_CENTER = 0.5
"""Confluence score at which the confidence is 0.5."""
CONFIDENCE_SLOPE = 4.0
"""Steepness of the logistic map from score to confidence."""

_SIGNAL_NAMESPACE = uuid.UUID("6f1d3c52-5a0e-4d8b-9b7e-3c6a1f0e2d41")
try:  # CPython's own SHA-1 (not OpenSSL's): a copy and an update cost ~2x less warm, and far less out of cache
    from _sha1 import sha1 as _sha1
except ImportError:  # pragma: no cover - a Python built without it
    _sha1 = hashlib.sha1
_SIGNAL_SHA1 = _sha1(_SIGNAL_NAMESPACE.bytes)  # uuid5's hash, the namespace taken
_BLOCK = 64  # symbols per StreamingIndicators instance; a new instance is added when a block is full
_ONE = struct.Struct("=d")
_ROW = struct.Struct(f"={len(StreamingIndicators.COLUMNS)}d")  # one symbol's row of indicator values, native doubles
_DECISION_ROW = struct.Struct(f"={dk.OUT_COLUMNS}d")  # one row of the decision kernel's output

Predictor = Callable[[feat.FeatureVector], tuple[float, str]]
"""The learning loop's model: features -> (predicted return in percent points, model version)."""


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A trade idea. Immutable; ``features`` are in the order of schema ``feature_schema_version``."""

    signal_id: str
    symbol: str
    timeframe: str
    """Trigger timeframe whose candle close produced the signal."""
    side: str
    """'LONG' or 'SHORT'."""
    entry_price: Decimal
    """Close of the trigger candle (exactly the exchange's decimal)."""
    sl_pct: float
    tp_pct: float
    confidence: float
    predicted_return_pct: float
    model_version: str
    feature_schema_version: int
    features: tuple[float, ...]
    reasons: tuple[str, ...]
    created_time_ns: int
    """Microsecond precision (what PostgreSQL keeps)."""
    candle_open_time_ms: int | None = None
    """Open time of the trigger candle; None for a signal read back from PostgreSQL (the table has no column)."""
    recv_time_ns: int = 0
    """When the feed received the record that closed the trigger candle (the candle event's; 0: unknown)."""

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feat.names_of(self.feature_schema_version)

    def to_event(self) -> SignalGenerated:
        """Return the bus event the rest of the brain (sizing, execution) consumes."""
        return SignalGenerated(
            signal_id=self.signal_id,
            symbol=self.symbol,
            timeframe=self.timeframe,
            side=self.side,
            entry_price=self.entry_price,
            sl_pct=self.sl_pct,
            tp_pct=self.tp_pct,
            confidence=self.confidence,
            candle_open_time_ms=self.candle_open_time_ms or 0,
            created_time_ns=self.created_time_ns,
            predicted_return_pct=self.predicted_return_pct,
            model_version=self.model_version,
            reasons=self.reasons,
            feature_schema_version=self.feature_schema_version,
            features=self.features,
            recv_time_ns=self.recv_time_ns,
        )


# ------------------------------------------------------------------------------------------- pure decisions


def signal_id_for(symbol: str, timeframe: str, candle_open_time_ms: int, side: str) -> str:
    """Return the signal's UUID, derived from what defines it (a replay of the same candles gives the same ids).

    ``str(uuid.uuid5(_SIGNAL_NAMESPACE, key))`` (tested), made from a SHA-1 context that has already taken the
    namespace: a copy of it skips OpenSSL's per-call digest lookup and the UUID object (about 3x less in a warm
    loop, and it was ~30 µs of a cold signal path).
    """
    key = f"{symbol}|{timeframe}|{candle_open_time_ms}|{side}|{feat.FEATURE_SCHEMA_VERSION}"
    sha = _SIGNAL_SHA1.copy()
    sha.update(key.encode())
    raw = bytearray(sha.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def confluence(features: Sequence[float] | np.ndarray) -> float:
    """Return the confluence score of a feature vector (schema 1): the weighted sum in ``CONFLUENCE_WEIGHTS``.

    Components (each in -1..1 or 0..1, positive = in favour of the trade): ``d1_bias``, ``h1_trend`` and
    ``m15_structure`` as in the features; ``zone`` = 0.6 for an order block + 0.4 for a fair value gap (1 with
    both); ``sweep_pool`` 0/1; ``volume`` = clip(t_volume_ratio - 0.5, 0, 1).
    """
    f = feat.FEATURE_INDEX
    w = CONFLUENCE_WEIGHTS
    zone = min(1.0, 0.6 * features[f["zone_ob"]] + 0.4 * features[f["zone_fvg"]])
    volume = min(1.0, max(0.0, features[f["t_volume_ratio"]] - 0.5))
    return float(
        w["d1_bias"] * features[f["d1_bias"]]
        + w["h1_trend"] * features[f["h1_trend"]]
        + w["m15_structure"] * features[f["m15_structure"]]
        + w["zone"] * zone
        + w["sweep_pool"] * features[f["sweep_pool"]]
        + w["volume"] * volume
    )


def confidence_of(score: float) -> float:
    """Return ``1 / (1 + exp(-CONFIDENCE_SLOPE * (score - CONFIDENCE_CENTER)))``: 0.5 at the center, within (0, 1)."""
    return 1.0 / (1.0 + math.exp(-CONFIDENCE_SLOPE * (score - CONFIDENCE_CENTER)))


def rule_based_return_pct(confidence: float, sl_pct: float, tp_pct: float, fee_pct: float) -> float:
    """Return the estimate used before a model exists: ``confidence * tp - (1 - confidence) * sl - fees``.

    It reads the confidence as the chance that the target is hit before the stop (uncalibrated until the
    learning loop replaces it) and is net of the round-trip fees, like the trades' ``return_pct``.
    """
    return confidence * tp_pct - (1.0 - confidence) * sl_pct - fee_pct


class TradePlan(NamedTuple):
    sl_pct: float
    tp_pct: float
    stop_price: float


def plan_trade(
    side: int, entry: float, sweep: feat.Sweep, trigger_atr: float, settings: StrategySettings
) -> TradePlan | str:
    """Return the stop and target of a setup, or why there is none (``"WARMING_UP"``, ``"STOP_TOO_FAR"``).

    The stop sits beyond the invalidation point — the sweep's extreme, or the zone's far side when that is
    farther — by ``sl_atr_buffer`` trigger ATRs; it is widened to ``min_sl_pct`` and refused beyond
    ``max_sl_pct``. The target is ``reward_risk`` times the stop distance.
    """
    anchor = sweep.extreme
    if sweep.zone is not None:
        anchor = min(anchor, sweep.zone.bottom) if side > 0 else max(anchor, sweep.zone.top)
    stop = anchor - side * settings.sl_atr_buffer * trigger_atr
    sl_pct = (entry - stop) * side / entry * 100.0
    if not math.isfinite(sl_pct):
        return "WARMING_UP"
    if sl_pct > settings.max_sl_pct:
        return "STOP_TOO_FAR"
    sl_pct = round(max(sl_pct, settings.min_sl_pct), 6)
    return TradePlan(sl_pct, round(settings.reward_risk * sl_pct, 6), stop)


def reasons_for(
    side: int, features: Sequence[float] | np.ndarray, sweep: feat.Sweep, structure: feat.Structure | None
) -> tuple[str, ...]:
    """Return the short tags saying why a signal fired, in a fixed order."""
    f = feat.FEATURE_INDEX
    up = side > 0
    tags = ["SWEEP_SSL" if up else "SWEEP_BSL"]
    if sweep.pool:
        tags.append("LIQUIDITY_POOL")
    tags.append("CHOCH_UP" if up else "CHOCH_DOWN")
    if sweep.zone is not None and sweep.zone.order_block:
        tags.append("BULLISH_OB" if up else "BEARISH_OB")
    if sweep.zone is not None and sweep.zone.fair_value_gap:
        tags.append("BULLISH_FVG" if up else "BEARISH_FVG")
    if structure is not None and features[f["m15_structure"]] > 0:
        tags.append(f"M15_{structure.kind}_{'UP' if up else 'DOWN'}")
    if features[f["h1_trend"]] > 0:
        tags.append("H1_TREND_UP" if up else "H1_TREND_DOWN")
    if features[f["d1_bias"]] > 0:
        tags.append("D1_BIAS_UP" if up else "D1_BIAS_DOWN")
    if features[f["t_volume_ratio"]] >= 1.5:
        tags.append("VOLUME_SPIKE")
    return tuple(tags)


_OUTCOME_COUNT = {
    dk.WARMING_UP: "warming_up", dk.STOP_TOO_FAR: "stop_too_far", dk.NOT_FINITE: "warming_up",
    dk.LOW_CONFIDENCE: "low_confidence", dk.COOLDOWN: "cooldown",
}  # fmt: skip
"""The count a candidate's outcome adds to (a NaN feature is warm-up too)."""

# --------------------------------------------------------------------------------------------------- state


class _IndicatorBank:
    """StreamingIndicators of one timeframe for any number of symbols, in blocks of ``_BLOCK`` rows."""

    def __init__(self) -> None:
        self.blocks: list[StreamingIndicators] = []
        self._buffers: list[memoryview] = []
        """Each block's ``values`` (updated in place, never replaced) as bytes: a row is read with one
        ``struct.unpack_from``, without a NumPy view and list per read (the signal path reads a few rows)."""
        self._kernel_args: list[tuple[Any, ...]] = []
        """Each block's arrays in the order of the one-bar kernel's arguments (arrays updated in place)."""
        self._rows: dict[int, np.ndarray] = {}

    def _locate(self, row: int) -> tuple[StreamingIndicators, int]:
        while row // _BLOCK >= len(self.blocks):
            block = StreamingIndicators(_BLOCK)
            assert block.values.flags.c_contiguous and block.values.dtype == np.float64
            self.blocks.append(block)
            self._buffers.append(memoryview(block.values).cast("B"))
            self._kernel_args.append(block.kernel_args())
        return self.blocks[row // _BLOCK], row % _BLOCK

    def update(self, row: int, high: float, low: float, close: float) -> None:
        if row // _BLOCK >= len(self.blocks):
            self._locate(row)
        block = row // _BLOCK
        # a candle's values are floats: the kernel straight away (what update_one does after its checks)
        if type(high) is float and type(low) is float and type(close) is float:
            state, ring, bars, positions, ip, fp, values = self._kernel_args[block]
            if stream_update_one(state, ring, bars, positions, ip, fp, row % _BLOCK, high, low, close, values):
                return
        self.blocks[block].update_one(row % _BLOCK, high, low, close)  # converts, or raises naming the bad value

    def reset(self, row: int) -> None:
        block, local = self._locate(row)
        block.reset([local])

    def kernel_args_of(self, row: int) -> tuple[Any, ...]:
        """The arrays of ``row``'s block in :meth:`StreamingIndicators.kernel_args` order, then the row in the block
        (arrays updated in place, never replaced: the tuple stays valid)."""
        self._locate(row)
        return (*self._kernel_args[row // _BLOCK], row % _BLOCK)

    def values(self, row: int) -> tuple[float, ...]:
        if row // _BLOCK >= len(self.blocks):
            self._locate(row)
        return _ROW.unpack_from(self._buffers[row // _BLOCK], (row % _BLOCK) * _ROW.size)

    def value(self, row: int, column: int) -> float:
        """One indicator value of ``row`` (``column``: an index into ``StreamingIndicators.COLUMNS``)."""
        if row // _BLOCK >= len(self.blocks):
            self._locate(row)
        return _ONE.unpack_from(self._buffers[row // _BLOCK], (row % _BLOCK) * _ROW.size + 8 * column)[0]

    def row(self, row: int) -> np.ndarray:
        """The indicator values of ``row`` as a live float64 view (made once per row, updated in place)."""
        view = self._rows.get(row)
        if view is None:
            block, local = self._locate(row)
            view = self._rows[row] = block.values[local]
        return view


class _OpenTimes:
    """Open time (ms) of each candle a series' SMC detector was given, by bar index; bounded like the detector.

    The newest ``2 * DEFAULT_HORIZON`` are kept. An older bar (only a liquidity pool's first swing can be that
    old) gets the open time extrapolated from the oldest kept one at one candle width per bar.
    """

    __slots__ = ("base", "times", "width")

    def __init__(self, width: int) -> None:
        self.base = 0
        self.times = array("q")
        self.width = width

    def append(self, open_ms: int) -> None:
        self.times.append(open_ms)
        if len(self.times) > 2 * DEFAULT_HORIZON:
            del self.times[:DEFAULT_HORIZON]
            self.base += DEFAULT_HORIZON

    def __getitem__(self, index: int) -> int:
        if index >= self.base:
            return self.times[index - self.base]
        return self.times[0] - (self.base - index) * self.width

    def __len__(self) -> int:
        return self.base + len(self.times)


class _Series:
    """One symbol on one timeframe: recent closed candles, and the SMC detector when the timeframe uses one."""

    __slots__ = (
        "close",
        "close_time_ms",
        "last_open_ms",
        "recent",
        "smc",
        "smc_open_ms",
        "timeframe",
        "view",
        "width",
    )

    def __init__(self, timeframe: str, keep: int, smc: CompiledSMC | None, view: SmcView | None = None) -> None:
        self.timeframe = timeframe
        self.width = WIDTHS_MS[INDEX_BY_NAME[timeframe]]
        self.recent: deque[tuple[int, float, float, float, float, float, float]] = deque(maxlen=keep)
        """The last candles (open time, OHLCV, taker-buy volume), for the feature inputs of a recorded signal; the
        trigger series keeps them only with ``record_inputs`` (its volumes are in the strategy's volume window)."""
        self.last_open_ms = -1
        self.close_time_ms = -1
        self.close = math.nan
        self.smc = smc
        self.smc_open_ms = _OpenTimes(self.width)  # open time of each candle the SMC detector was given, by bar
        self.view = view
        """Zones and structure for GetMarketState (kept from the detector's events)."""


@dataclass(slots=True)
class _ZoneState:
    kind: str
    direction: int
    top: float
    bottom: float
    formed_ms: int
    confirmed_ms: int


class _SymbolState:
    __slots__ = (
        "breaks",
        "last_signal_ms",
        "row",
        "series",
        "structure",
        "sweeps",
        "swing_high",
        "swing_low",
        "symbol",
        "taken",
        "trigger_args",
        "zones",
    )

    def __init__(self, symbol: str, row: int) -> None:
        self.symbol = symbol
        self.row = row
        self.series: dict[str, _Series] = {}
        self.zones: dict[tuple[str, int, int], _ZoneState] = {}
        self.breaks: list[tuple[int, str, int, float, int, int]] = []  # (index, kind, dir, level, broken, known_ms)
        self.structure: feat.Structure | None = None
        """The latest of ``breaks`` (by break, then swing), kept at each 15m close for the decisions in between."""
        self.swing_high: tuple[int, float, int] | None = None  # (index, level, confirmed_ms), trigger timeframe
        self.swing_low: tuple[int, float, int] | None = None
        self.taken = {1: False, -1: False}
        """Whether price has traded beyond the latest swing low (key 1) / high (key -1) since it was confirmed."""
        self.sweeps: dict[int, feat.Sweep] = {}
        """The pending sweeps by side; the strategy's ``_sweep_state`` row holds the same for the decision kernel."""
        self.last_signal_ms: int | None = None
        self.trigger_args: tuple[Any, ...] = ()
        """The trigger kernel's per-symbol arguments: the trigger-timeframe indicator block's arrays and the symbol's
        row in it (:meth:`_IndicatorBank.kernel_args_of`), then live views of its 15m and 1h indicator rows."""


# ------------------------------------------------------------------------------------------------ strategy


class Strategy:
    """Turn closed candles into signals (see the module doc). Not thread-safe: call it from one task."""

    def __init__(
        self,
        settings: StrategySettings | None = None,
        *,
        predictor: Predictor | None = None,
        clock: Clock | None = None,
        record_inputs: bool = False,
    ) -> None:
        self.settings = settings or StrategySettings()
        self.trigger_timeframe = self.settings.trigger_timeframe
        self.timeframes: tuple[str, ...] = (
            self.trigger_timeframe,
            STRUCTURE_TIMEFRAME,
            TREND_TIMEFRAME,
            BIAS_TIMEFRAME,
        )
        """The timeframes the strategy reads; candles of any other are ignored."""
        self.predictor = predictor
        self._clock = clock
        self.inputs: dict[str, feat.FeatureInputs] | None = {} if record_inputs else None
        """With ``record_inputs``: the feature inputs of every signal made, by signal id (tests, leakage checks)."""
        self._banks = {tf: _IndicatorBank() for tf in self.timeframes}
        self._symbols: dict[str, _SymbolState] = {}
        self._deferred: tuple[_SymbolState, _Series, Candle, int] | None = None
        self._decision = np.zeros((2, dk.OUT_COLUMNS))
        """The decision kernel's output: one row per candidate of the last trigger candle."""
        self._decision_bytes = memoryview(self._decision).cast("B")
        """``_decision`` as bytes: a row is read into a tuple of floats by one ``struct.unpack_from``."""
        self._sweep_state = np.zeros((0, 2, dk.SWEEP_SIZE))
        """Per symbol row and side (0 long, 1 short): the pending sweep (``dk.SWEEP_SLOTS``; ``active`` 0: none)."""
        self._context = np.zeros((0, dk.CONTEXT_SIZE))
        """Per symbol row: what a decision reads besides the sweeps and indicators (``dk.CONTEXT_SLOTS``)."""
        self._keep = max(self.settings.volume_period, 2)
        self._window = np.zeros((0, 2 * self._keep))
        """Per symbol row: the trigger candles' volumes, a ring of ``_keep`` written twice (``dk.take_trigger``)."""
        self._window_n = np.zeros(0, dtype=np.int64)
        """Per symbol row: how many trigger volumes went into ``_window``."""
        st = self.settings
        params = {
            "sweep_window_bars": st.sweep_window_bars, "sl_atr_buffer": st.sl_atr_buffer,
            "min_sl_pct": st.min_sl_pct, "max_sl_pct": st.max_sl_pct, "reward_risk": st.reward_risk,
            "min_confidence": st.min_confidence, "cooldown_ms": st.cooldown_s * 1000.0,
            "round_trip_fee_pct": st.round_trip_fee_pct,
        }  # fmt: skip
        self._params = np.array([float(params[k]) for k in dk.PARAM_SLOTS])
        w = CONFLUENCE_WEIGHTS
        self._weights = np.array(
            [w[k] for k in ("d1_bias", "h1_trend", "m15_structure", "zone", "sweep_pool", "volume")]
            + [CONFIDENCE_CENTER, CONFIDENCE_SLOPE]
        )
        """What :func:`confluence` and :func:`confidence_of` use, for the feature kernel (which applies them)."""
        self._recv_ns = 0
        """``recv_time_ns`` of the candle event being taken (0: none, as in a warm-up)."""
        dk.warm_up()  # the kernels compiled (or loaded from numba's cache) now, not at the first candle
        warm_smc_kernel()
        """The last trigger candle, until :meth:`settle` has done its bookkeeping."""
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "candles",
                "corrections_ignored",
                "stale_ignored",
                "sweeps",
                "sweeps_without_zone",
                "triggers",
                "warming_up",
                "stop_too_far",
                "low_confidence",
                "cooldown",
                "signals",
                "predictor_errors",
            ),
            0,
        )

    # -- public API ------------------------------------------------------------------------------------------

    def set_predictor(self, predictor: Predictor | None) -> None:
        """Use ``predictor`` (a newly loaded model) for the next signals; None returns to the rule-based estimate."""
        self.predictor = predictor

    def on_candle_closed(self, event: CandleClosed, *, emit: bool = True) -> list[Signal]:
        """Take one closed candle (any timeframe, any symbol, in the brain's order); return the signals it made.

        Corrections of a candle already taken are ignored (indicators and SMC cannot take a bar back; the
        first close is what a trader saw at that time) and counted, as are candles not newer than the last one
        of their series. With ``emit=False`` the candle moves the state exactly as usual but no signal comes out
        (the brain does that for live candles that closed long ago, e.g. re-read from the ring after a restart).
        Call :meth:`settle` once the signals are out (the next call does it otherwise).
        """
        if event.corrected:
            self.counts["corrections_ignored"] += 1
            return []
        self._recv_ns = event.recv_time_ns  # the signals carry it: the start of their tick-to-signal latency
        return self._take(event.candle, emit=emit)

    def warm_up(self, symbol: str, candles: Iterable[Candle]) -> int:
        """Forget ``symbol`` and replay stored closed candles (any timeframes) in market order, emitting nothing.

        Candles are sorted by close time, narrower timeframes first at equal times (the order the brain closes
        them in), so the state afterwards — indicators, SMC, pending sweeps, cooldown — is what a run that had
        seen those candles live would hold. Return how many candles were taken.
        """
        self.settle()
        self._recv_ns = 0
        self._symbols.pop(symbol, None)
        ordered = sorted(
            (c for c in candles if c.symbol == symbol and c.closed and c.timeframe in self.timeframes),
            key=lambda c: (c.close_time_ms, WIDTHS_MS[INDEX_BY_NAME[c.timeframe]]),
        )
        self._state(symbol)
        taken = 0
        for candle in ordered:
            before = self.counts["stale_ignored"]
            self._take(candle, emit=False)
            taken += self.counts["stale_ignored"] == before
        self.settle()
        return taken

    def indicator_snapshot(self, symbol: str, timeframe: str) -> feat.IndicatorSnapshot | None:
        """Return the indicator values of ``symbol`` on ``timeframe`` after its last closed candle, or None."""
        self.settle()
        state = self._symbols.get(symbol)
        if state is None or timeframe not in self._banks or timeframe not in state.series:
            return None
        return self._snapshot(state, state.series[timeframe])

    def smc_view(self, symbol: str, timeframe: str) -> SmcView | None:
        """Return the SMC zones and structure of ``symbol`` on ``timeframe``, or None (no detector runs there).

        Detectors run on the structure timeframe (15m) and the trigger timeframe only.
        """
        self.settle()
        state = self._symbols.get(symbol)
        series = state.series.get(timeframe) if state is not None else None
        return series.view if series is not None else None

    def stats(self) -> dict[str, Any]:
        self.settle()
        return {**self.counts, "symbols": len(self._symbols)}

    # -- the path every candle takes -------------------------------------------------------------------------

    def _state(self, symbol: str) -> _SymbolState:
        state = self._symbols.get(symbol)
        if state is None:
            used = {s.row for s in self._symbols.values()}
            row = next(r for r in range(len(used) + 1) if r not in used)
            state = _SymbolState(symbol, row)
            if row >= len(self._context):  # grow the decision arrays (doubling)
                size = max(64, 2 * len(self._context))
                self._context = np.resize(self._context, (size, dk.CONTEXT_SIZE))
                self._sweep_state = np.resize(self._sweep_state, (size, 2, dk.SWEEP_SIZE))
                self._window = np.resize(self._window, (size, 2 * self._keep))
                self._window_n = np.resize(self._window_n, size)
            self._context[row] = dk.empty_context()
            self._sweep_state[row] = 0.0
            self._window_n[row] = 0
            s = self.settings
            keep = self._keep
            for tf in self.timeframes:
                smc = None
                if tf == STRUCTURE_TIMEFRAME:
                    smc = CompiledSMC(s.structure_swing_length)
                elif tf == self.trigger_timeframe:
                    smc = CompiledSMC(s.trigger_swing_length)
                view = SmcView(f"{symbol}:{tf}") if smc is not None else None
                state.series[tf] = _Series(tf, keep, smc, view)
            for bank in self._banks.values():
                bank.reset(row)
            banks = self._banks
            state.trigger_args = (
                *banks[self.trigger_timeframe].kernel_args_of(row),
                banks[STRUCTURE_TIMEFRAME].row(row),
                banks[TREND_TIMEFRAME].row(row),
            )
            self._symbols[symbol] = state
        return state

    def _take(self, c: Candle, *, emit: bool) -> list[Signal]:
        if self._deferred is not None:
            self.settle()
        timeframe = c.timeframe
        bank = self._banks.get(timeframe)
        if bank is None:
            return []
        state = self._symbols.get(c.symbol) or self._state(c.symbol)
        series = state.series[timeframe]
        open_ms = c.open_time_ms
        if open_ms <= series.last_open_ms:
            self.counts["stale_ignored"] += 1
            return []
        high, low, close = c.high, c.low, c.close
        smc = series.smc
        if smc is not None and not math.isfinite(c.open + high + low + close + c.volume):
            raise_if_not_finite(c.open, high, low, close, c.volume)  # as the detector would, before any state moves
        self.counts["candles"] += 1
        series.last_open_ms = open_ms
        series.close_time_ms = c.close_time_ms
        series.close = close
        if timeframe == self.trigger_timeframe:
            if self.inputs is not None:
                series.recent.append((open_ms, c.open, high, low, close, c.volume, c.taker_buy_volume))
            # The trigger candle: the decision reads only what was known before this candle's SMC update (pending
            # sweeps, the structure, indicators), so it comes first, in one kernel call with the candle's indicator
            # update; the detector's update, the swings it confirms, this candle's own sweep and the view are this
            # candle's bookkeeping, done by settle() once the signals are out.
            bar = smc.bars  # type: ignore[union-attr]
            self._deferred = (state, series, c, bar)
            return self._decide(state, series, c, bar, emit)
        series.recent.append((open_ms, c.open, high, low, close, c.volume, c.taker_buy_volume))
        bank.update(state.row, high, low, close)
        if smc is None:
            context = self._context[state.row]
            if timeframe == TREND_TIMEFRAME:
                context[dk.H1_CLOSE] = close
                context[dk.H1_CLOSE_MS] = c.close_time_ms
            elif timeframe == BIAS_TIMEFRAME:
                context[dk.HAS_DAY : dk.DAY_CLOSE_MS + 1] = (1.0, c.open, high, low, close, open_ms + series.width - 1)
            return []
        # the structure timeframe (the other one with a detector)
        self._context[state.row, dk.M15_CLOSE_MS] = c.close_time_ms
        series.smc_open_ms.append(open_ms)
        events = smc.update(c.open, high, low, close, c.volume)
        try:
            self._structure(state, series, c, events)
        finally:
            if events and series.view is not None:
                series.view.apply(events, series.smc_open_ms)
        return []

    def settle(self) -> None:
        """Finish the last trigger candle's bookkeeping (its SMC update, swings, sweep and view); idempotent.

        :meth:`on_candle_closed` returns a trigger candle's signals before this work, so the caller can publish
        them first and then call it; every other entry point (the next candle, warm-up, the market-state reads,
        ``stats``) settles first, so nothing ever reads a half-updated state.
        """
        deferred = self._deferred
        if deferred is None:
            return
        self._deferred = None
        state, series, c, bar = deferred
        smc = series.smc
        assert smc is not None
        series.smc_open_ms.append(c.open_time_ms)
        events = smc.update(c.open, c.high, c.low, c.close, c.volume)
        try:
            self._trigger_bookkeeping(state, c, bar, events)
        finally:
            if events and series.view is not None:
                series.view.apply(events, series.smc_open_ms)

    def _structure(self, state: _SymbolState, series: _Series, c: Candle, events: list[SmcEvent]) -> None:
        """Keep the 15m zones (active order blocks and fair value gaps) and the latest structure breaks."""
        known = c.close_time_ms
        zones = state.zones
        for e in events:
            if isinstance(e, FvgEvent):
                key = ("FVG", e.index, e.direction)
                if e.action == "formed":
                    zones[key] = _ZoneState("FVG", e.direction, e.top, e.bottom, series.smc_open_ms[e.index], known)
                else:
                    zones.pop(key, None)
            elif isinstance(e, OrderBlockEvent):
                key = ("OB", e.index, e.direction)
                if e.action == "formed":
                    zones[key] = _ZoneState("OB", e.direction, e.top, e.bottom, series.smc_open_ms[e.index], known)
                else:
                    zones.pop(key, None)  # mitigated (price went through it) or removed: no longer a zone
            elif isinstance(e, StructureEvent):
                if e.action == "broken":
                    state.breaks.append((e.index, e.kind, e.direction, e.level, e.broken_index, known))
                else:
                    state.breaks = [b for b in state.breaks if (b[0], b[1], b[2]) != (e.index, e.kind, e.direction)]
        del state.breaks[:-16]
        if state.breaks:
            _, kind, direction, level, _, known = max(state.breaks, key=lambda b: (b[4], b[0]))
            state.structure = feat.Structure(direction, kind, level, known)
            self._context[state.row, dk.HAS_STRUCTURE : dk.STRUCTURE_CONFIRMED_MS + 1] = (1.0, direction, known)
        else:
            state.structure = None
            self._context[state.row, dk.HAS_STRUCTURE] = 0.0
        oldest = c.open_time_ms - self.settings.zone_max_age_bars * series.width
        for key in [k for k, z in zones.items() if z.formed_ms < oldest]:
            del zones[key]

    def _zone_for(self, state: _SymbolState, direction: int, extreme: float) -> feat.Zone | None:
        """Return the active 15m zone(s) of ``direction`` the sweep's ``extreme`` reached, merged into one."""
        atr = self._banks[STRUCTURE_TIMEFRAME].values(state.row)[StreamingIndicators.ATR]
        if not math.isfinite(atr):
            return None
        tolerance = self.settings.zone_tolerance_atr * atr
        hits = [
            z
            for z in state.zones.values()
            if z.direction == direction
            and (
                z.bottom - tolerance <= extreme <= z.top if direction > 0 else z.bottom <= extreme <= z.top + tolerance
            )
        ]
        if not hits:
            return None
        # the stop is placed against the most recent order block if there is one, else the most recent gap
        main = max(hits, key=lambda z: (z.kind == "OB", z.formed_ms, z.top, z.bottom))
        return feat.Zone(
            direction=direction,
            order_block=any(z.kind == "OB" for z in hits),
            fair_value_gap=any(z.kind == "FVG" for z in hits),
            top=main.top,
            bottom=main.bottom,
            formed_time_ms=main.formed_ms,
            confirmed_ms=max(z.confirmed_ms for z in hits),
        )

    def _decide(self, state: _SymbolState, series: _Series, c: Candle, bar: int, emit: bool) -> list[Signal]:
        """Take trigger candle ``bar``: its indicators, its volume, and the sweep-then-CHOCH machine's signals.

        One call of the trigger kernel (:func:`aegis.brain.decision_kernel.take_trigger`) advances the candle's
        indicators and volume window and, with a sweep pending, completes, clears and evaluates the pending sweeps
        (:func:`~aegis.brain.decision_kernel.decide`, the steps in its module doc); Python mirrors the cleared
        sweeps, counts the outcomes and builds the signals.
        """
        high, low, close = c.high, c.low, c.close
        if not (type(high) is float and type(low) is float and type(close) is float):  # ints from a test, say
            high, low, close = float(high), float(low), float(close)
        s0, s1, s2, s3, s4, s5, s6, local, m15, h1_ind = state.trigger_args
        code = dk.take_trigger(
            s0, s1, s2, s3, s4, s5, s6, local, self._window, self._window_n, self._decision, self._sweep_state,
            self._context, self._params, self._weights, m15, h1_ind, state.row, bar, c.open_time_ms, c.close_time_ms,
            series.width, c.open, high, low, close, c.volume, c.taker_buy_volume,
        )  # fmt: skip
        if code <= 0:
            if code == dk.NOT_UPDATED:  # not finite: the indicators' own message (the SMC check ran before)
                self._banks[series.timeframe].blocks[state.row // _BLOCK].update_one(local, high, low, close)
            return []
        sweeps = state.sweeps
        pending = sweeps.copy()  # the candidates' sweeps, before the spent and expired ones go
        if code & 4:
            del sweeps[1]
        if code & 8:
            del sweeps[-1]
        if code >> 4:
            raise AssertionError(dk.CAUSALITY_ERRORS[code >> 4])
        signals = []
        for k in range(code & 3):
            result = _DECISION_ROW.unpack_from(self._decision_bytes, k * _DECISION_ROW.size)
            side = 1 if result[dk.SIDE] > 0 else -1
            signal = self._evaluate(state, series, c, bar, side, pending[side], result)
            if signal is not None:
                signals.append(signal)
        if len(signals) > 1:  # both sides at once: keep the stronger one
            signals = [max(signals, key=lambda s: (s.confidence, s.side))]
        if not signals:
            return []
        state.last_signal_ms = c.close_time_ms  # a signal withheld during warm-up still starts a cooldown
        self._context[state.row, dk.HAS_LAST_SIGNAL : dk.LAST_SIGNAL_MS + 1] = (1.0, c.close_time_ms)
        if not emit:
            return []
        self.counts["signals"] += 1
        return signals

    def _trigger_bookkeeping(self, state: _SymbolState, c: Candle, bar: int, events: list[SmcEvent]) -> None:
        """After the decision on trigger candle ``bar``: the swings and swept pools it confirmed, its own sweep."""
        pools = self._confirmations(state, c, events)
        # this candle may itself be a sweep (read by the next candles' decisions)
        for side in (1, -1):
            self._detect_sweep(state, c, bar, side, pools.get(side) if pools is not None else None)

    @staticmethod
    def _confirmations(state: _SymbolState, c: Candle, events: list[SmcEvent]) -> dict[int, float] | None:
        """Take the trigger candle's new swings; return the levels of the pools it swept by side (None: none)."""
        known = c.close_time_ms
        pools: dict[int, float] | None = None  # made when a pool was swept (rarely)
        for e in events:  # often none
            if isinstance(e, SwingEvent):
                if e.high_low == 1:
                    state.swing_high = (e.index, e.level, known)
                else:
                    state.swing_low = (e.index, e.level, known)
                state.taken[-e.high_low] = False
            elif isinstance(e, LiquidityEvent) and e.action == "swept":
                # a pool of lows (direction -1) taken is sell-side liquidity: a long setup (+1)
                if pools is None:
                    pools = {}
                side = -e.direction
                pools[side] = (
                    max(pools.get(side, -math.inf), e.level) if side > 0 else min(pools.get(side, math.inf), e.level)
                )
        return pools

    def _detect_sweep(self, state: _SymbolState, c: Candle, bar: int, side: int, pool_level: float | None) -> None:
        swing = state.swing_low if side > 0 else state.swing_high
        ref = state.swing_high if side > 0 else state.swing_low
        extreme = c.low if side > 0 else c.high
        level = None
        if swing is not None and not state.taken[side] and (swing[1] - extreme) * side > 0:
            state.taken[side] = True  # the first candle through a swing takes its liquidity, swept or broken
            if (c.close - swing[1]) * side > 0:
                level = swing[1]
        pool = pool_level is not None and (c.close - pool_level) * side > 0
        if level is None and pool:
            level = pool_level
        if level is None or ref is None or (ref[1] - c.close) * side <= 0:
            return
        self.counts["sweeps"] += 1
        zone = self._zone_for(state, side, extreme)
        if zone is None and self.settings.require_zone:
            self.counts["sweeps_without_zone"] += 1
            return
        state.sweeps[side] = feat.Sweep(
            direction=side,
            open_time_ms=c.open_time_ms,
            confirmed_ms=c.close_time_ms,
            bar=bar,
            level=level,
            extreme=extreme,
            pool=pool,
            ref_level=ref[1],
            ref_confirmed_ms=ref[2],
            zone=zone,
        )
        # the same, for the decision kernel (dk.SWEEP_SLOTS, in order)
        self._sweep_state[state.row, 0 if side > 0 else 1] = (
            1.0, bar, c.open_time_ms, c.close_time_ms, level, extreme, pool, ref[1], ref[2], zone is not None,
            zone is not None and zone.order_block, zone is not None and zone.fair_value_gap,
            zone.top if zone is not None else 0.0, zone.bottom if zone is not None else 0.0,
            zone.formed_time_ms if zone is not None else 0, zone.confirmed_ms if zone is not None else 0,
        )  # fmt: skip

    def _snapshot(self, state: _SymbolState, series: _Series) -> feat.IndicatorSnapshot:
        return feat.IndicatorSnapshot(
            timeframe=series.timeframe,
            candle_open_time_ms=series.last_open_ms,
            close_time_ms=series.close_time_ms,
            close=series.close,
            values=self._banks[series.timeframe].values(state.row),
        )

    def _inputs(
        self, state: _SymbolState, side: int, sweep: feat.Sweep, plan: TradePlan, bar: int
    ) -> feat.FeatureInputs:
        """Return the feature inputs now (after the symbol's last closed trigger candle, ``bar``) for a setup."""
        trigger = state.series[self.trigger_timeframe]
        daily = state.series[BIAS_TIMEFRAME]
        return feat.FeatureInputs(
            symbol=state.symbol,
            as_of_ms=trigger.close_time_ms,
            side=side,
            entry_price=trigger.close,
            sl_pct=plan.sl_pct,
            tp_pct=plan.tp_pct,
            trigger=feat.CandleWindow.of(trigger.timeframe, trigger.width, list(trigger.recent)),
            daily=feat.CandleWindow.of(BIAS_TIMEFRAME, daily.width, list(daily.recent)[-1:]),
            indicators=MappingProxyType(
                {tf: self._snapshot(state, state.series[tf]) for tf in (self.trigger_timeframe, "15m", "1h")}
            ),
            sweep=sweep,
            structure=state.structure,
            choch_bar=bar,
        )

    @staticmethod
    def _plan_of(result: tuple[float, ...]) -> TradePlan:
        """The plan of a candidate the kernel planned (:func:`plan_trade`'s, bit for bit: tested)."""
        return TradePlan(result[dk.SL], result[dk.TP], result[dk.STOP])

    def _evaluate(
        self, state: _SymbolState, series: _Series, c: Candle, bar: int, side: int, sweep: feat.Sweep,
        result: tuple[float, ...],
    ) -> Signal | None:  # fmt: skip
        """Count a candidate's outcome (``result``: its row of the decision kernel's output); build its signal."""
        self.counts["triggers"] += 1
        outcome = result[dk.OUTCOME]
        if outcome != dk.SIGNAL:
            self.counts[_OUTCOME_COUNT[int(outcome)]] += 1
            return None
        values = result[dk.F0 : dk.F0 + FINITE]
        predicted, model_version = self._predict(values, result[dk.RULE_RETURN])
        side_name = "LONG" if side > 0 else "SHORT"
        created_ns = self._clock.time_ns() if self._clock is not None else (c.close_time_ms + 1) * 1_000_000
        signal = Signal(
            signal_id=signal_id_for(c.symbol, c.timeframe, c.open_time_ms, side_name),
            symbol=c.symbol,
            timeframe=c.timeframe,
            side=side_name,
            entry_price=price_decimal(c.close),
            sl_pct=result[dk.SL],
            tp_pct=result[dk.TP],
            confidence=result[dk.F0 + CONFIDENCE],
            predicted_return_pct=predicted,
            model_version=model_version,
            feature_schema_version=feat.FEATURE_SCHEMA_VERSION,
            features=values,
            reasons=reasons_for(side, values, sweep, state.structure),
            created_time_ns=created_ns - created_ns % 1000,
            candle_open_time_ms=c.open_time_ms,
            recv_time_ns=self._recv_ns,
        )
        if self.inputs is not None:
            self.inputs[signal.signal_id] = self._inputs(state, side, sweep, self._plan_of(result), bar)
        return signal

    def _predict(self, values: tuple[float, ...], rule_based: float) -> tuple[float, str]:
        """The predictor's return and model version, else (and when it fails) ``rule_based``: the rule-based
        estimate (:func:`rule_based_return_pct`, which the decision kernel computed)."""
        if self.predictor is not None:
            try:
                predicted, version = self.predictor(feat.FeatureVector(feat.FEATURE_SCHEMA_VERSION, values))
                if math.isfinite(predicted) and version:
                    return float(predicted), str(version)
                raise ValueError(f"the predictor returned ({predicted!r}, {version!r})")
            except Exception:
                self.counts["predictor_errors"] += 1
                log.exception("the predictor failed: using the rule-based estimate for this signal")
        return rule_based, RULES_MODEL_VERSION
