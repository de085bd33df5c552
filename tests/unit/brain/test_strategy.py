"""The strategy on the real 10-day 1m klines, rolled up by the brain's own candle book (aegis.brain.strategy)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.analytics.indicators import StreamingIndicators
from aegis.brain import decision_kernel as dk
from aegis.brain import features as feat
from aegis.brain.candles import CandleBook
from aegis.brain.events import CandleClosed, SignalGenerated
from aegis.brain.feature_kernel import CONFIDENCE, SCORE
from aegis.brain.strategy import (
    CONFIDENCE_CENTER,
    RULES_MODEL_VERSION,
    Signal,
    Strategy,
    confidence_of,
    confluence,
    plan_trade,
    rule_based_return_pct,
    signal_id_for,
)
from aegis.config import StrategySettings
from aegis.core import records as rec

MIN = 60_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
DEFAULT = StrategySettings()
# Looser rules (1m trigger, no zone needed, no cooldown) make many more setups: more of the code runs per test.
LOOSE = dataclasses.replace(DEFAULT, trigger_timeframe="1m", require_zone=False, cooldown_s=0.0)
# Stricter rules (5m trigger into a required 15m zone): the zone path, and a few signals in ten days.
STRICT = dataclasses.replace(DEFAULT, trigger_timeframe="5m", require_zone=True)
DAYS = 10  # the real klines: 2025-06, 14,400 1m candles per symbol
DEFAULT_SIGNALS_PER_SYMBOL_PER_DAY = (2.0, 8.0)
"""What the default rules should give on the real klines (docs/strategy.md, Defaults): several a day per symbol,
enough for the learning loop, few enough to mean something (at most one an hour per symbol by the cooldown)."""


def kline_records(shared_data: Path, symbol: str, symbol_id: int = 0) -> list[tuple[int, bytes]]:
    df = pd.read_csv(shared_data / "binance/signalbot/data" / f"{symbol}_1m.csv", parse_dates=["open_time"])
    opens = (pd.DatetimeIndex(df["open_time"]) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return [
        (
            int(t),
            rec.pack_kline(
                symbol_id,
                int(t) + MIN,
                0,
                int(t),
                int(t) + MIN - 1,
                MIN,
                r.open,
                r.high,
                r.low,
                r.close,
                r.volume,
                r.volume * r.close,
                1,
                r.taker_buy_base_asset_volume,
                True,
            ),
        )
        for t, r in zip(opens, df.itertuples(index=False), strict=True)
    ]


def closed_candles(records: list[tuple[int, bytes]], symbols: tuple[str, ...]) -> list[CandleClosed]:
    """Feed exchange klines through a CandleBook, the way the brain rolls 1m up to 5m/15m/1h/1d."""
    book = CandleBook(history=64, symbol_capacity=len(symbols))
    for symbol in symbols:
        book.symbol_index(symbol)
    batch = np.frombuffer(b"".join(r for _, r in records), dtype=rec.MARKET_RECORD).copy()
    return book.process(batch, batch["symbol_id"].astype(np.int64))


def run(events: list[CandleClosed], settings: StrategySettings = DEFAULT, **kwargs) -> tuple[Strategy, list[Signal]]:  # type: ignore[no-untyped-def]
    strategy = Strategy(settings, **kwargs)
    signals: list[Signal] = []
    for event in events:
        signals += strategy.on_candle_closed(event)
    return strategy, signals


def assert_same(a: feat.IndicatorSnapshot | None, b: feat.IndicatorSnapshot | None) -> None:
    """Snapshots are equal, NaN (warming up) included."""
    assert a is not None and b is not None
    assert dataclasses.replace(a, values=()) == dataclasses.replace(b, values=())
    np.testing.assert_array_equal(a.values, b.values)


@pytest.fixture(scope="module")
def records(shared_data: Path) -> dict[str, list[tuple[int, bytes]]]:
    return {symbol: kline_records(shared_data, symbol) for symbol in SYMBOLS}


@pytest.fixture(scope="module")
def events(records: dict[str, list[tuple[int, bytes]]]) -> dict[str, list[CandleClosed]]:
    return {symbol: closed_candles(records[symbol], (symbol,)) for symbol in SYMBOLS}


@pytest.fixture(scope="module")
def default_runs(events: dict[str, list[CandleClosed]]) -> dict[str, tuple[Strategy, list[Signal]]]:
    return {symbol: run(events[symbol], record_inputs=True) for symbol in SYMBOLS}


@pytest.fixture(scope="module")
def loose_runs(events: dict[str, list[CandleClosed]]) -> dict[str, tuple[Strategy, list[Signal]]]:
    return {symbol: run(events[symbol], LOOSE, record_inputs=True) for symbol in SYMBOLS}


# --------------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_the_default_rules_give_several_signals_a_day_on_the_real_klines(
    symbol: str, default_runs: dict[str, tuple[Strategy, list[Signal]]]
) -> None:
    strategy, signals = default_runs[symbol]
    low, high = DEFAULT_SIGNALS_PER_SYMBOL_PER_DAY
    assert low * DAYS <= len(signals) <= high * DAYS, strategy.stats()
    assert {s.side for s in signals} == {"LONG", "SHORT"}
    # the rules still filter: most sweeps and most completed triggers give nothing
    counts = strategy.counts
    assert counts["sweeps"] > 5 * len(signals) and counts["triggers"] > 2 * len(signals)


@pytest.mark.parametrize("settings", [DEFAULT, STRICT], ids=["default", "strict"])
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_the_real_klines_give_signals_with_complete_finite_feature_vectors(
    symbol: str, settings: StrategySettings, events: dict[str, list[CandleClosed]],
    default_runs: dict[str, tuple[Strategy, list[Signal]]],
) -> None:  # fmt: skip
    strategy, signals = default_runs[symbol] if settings is DEFAULT else run(events[symbol], settings)
    assert len(signals) >= 2, strategy.stats()
    tf = settings.trigger_timeframe
    width = {"1m": MIN, "5m": 5 * MIN}[tf]
    trigger_closes = {e.candle.open_time_ms: e.candle.close for e in events[symbol] if e.candle.timeframe == tf}
    for s in signals:
        assert s.symbol == symbol and s.timeframe == tf and s.side in ("LONG", "SHORT")
        assert s.feature_schema_version == feat.FEATURE_SCHEMA_VERSION == 1
        assert len(s.features) == len(feat.FEATURE_NAMES) == len(s.feature_names)
        assert all(math.isfinite(v) for v in s.features)
        assert s.candle_open_time_ms is not None and float(s.entry_price) == trigger_closes[s.candle_open_time_ms]
        assert s.created_time_ns == (s.candle_open_time_ms + width) * 1_000_000  # market time, no wall clock
        assert s.model_version == RULES_MODEL_VERSION
        assert s.signal_id == signal_id_for(symbol, tf, s.candle_open_time_ms, s.side)
        assert s.reasons[0] in ("SWEEP_SSL", "SWEEP_BSL") and ("CHOCH_UP" in s.reasons) == (s.side == "LONG")
        if settings.require_zone:
            assert any(r.endswith(("_OB", "_FVG")) for r in s.reasons)
        assert s.features[feat.FEATURE_INDEX["side"]] == (1.0 if s.side == "LONG" else -1.0)
        # the feature vector holds the plan that was decided
        assert s.features[feat.FEATURE_INDEX["sl_pct"]] == s.sl_pct
        assert s.features[feat.FEATURE_INDEX["tp_pct"]] == s.tp_pct


@pytest.mark.parametrize("settings", [DEFAULT, LOOSE], ids=["default", "loose"])
def test_two_runs_over_the_same_candles_give_identical_signals(
    settings: StrategySettings, events: dict[str, list[CandleClosed]]
) -> None:
    for symbol in SYMBOLS:
        first = run(events[symbol], settings)[1]
        second = run(events[symbol], settings)[1]
        assert first and msgspec.json.encode(first) == msgspec.json.encode(second)


@pytest.mark.parametrize(("prefix", "extra"), [(4_321, 1_500), (9_007, 3_000), (12_500, 1_900)])
def test_signals_and_features_on_a_prefix_do_not_depend_on_later_bars(
    prefix: int, extra: int, records: dict[str, list[tuple[int, bytes]]]
) -> None:
    for symbol in SYMBOLS:
        for settings in (DEFAULT, LOOSE):
            short = run(closed_candles(records[symbol][:prefix], (symbol,)), settings, record_inputs=True)
            longer = run(closed_candles(records[symbol][: prefix + extra], (symbol,)), settings)[1]
            cut_ms = records[symbol][prefix - 1][0] + MIN  # end of the prefix's last minute
            assert short[1] == [s for s in longer if s.created_time_ns <= cut_ms * 1_000_000]
            assert len(longer) >= len(short[1])
            for signal in short[1]:  # every input of every feature vector was known at the signal time
                assert short[0].inputs is not None
                inputs = short[0].inputs[signal.signal_id]
                inputs.check_causal()
                assert inputs.as_of_ms < cut_ms
                assert tuple(feat.compute(inputs).tolist()) == signal.features


def test_the_signals_respect_their_bounds_and_formulas(
    default_runs: dict[str, tuple[Strategy, list[Signal]]], loose_runs: dict[str, tuple[Strategy, list[Signal]]]
) -> None:
    for settings, runs in ((DEFAULT, default_runs), (LOOSE, loose_runs)):
        for _, signals in runs.values():
            for s in signals:
                assert settings.min_sl_pct <= s.sl_pct <= settings.max_sl_pct
                assert s.tp_pct == pytest.approx(settings.reward_risk * s.sl_pct, abs=1e-6)
                assert settings.min_confidence <= s.confidence < 1.0
                assert s.predicted_return_pct == pytest.approx(
                    s.confidence * s.tp_pct - (1 - s.confidence) * s.sl_pct - settings.round_trip_fee_pct
                )


def test_the_cooldown_keeps_one_signal_per_symbol_per_window(
    events: dict[str, list[CandleClosed]], loose_runs: dict[str, tuple[Strategy, list[Signal]]]
) -> None:
    window_ns = 3600 * 10**9
    cooled = dataclasses.replace(LOOSE, cooldown_s=3600.0)
    for symbol in SYMBOLS:
        free = loose_runs[symbol][1]
        assert any(b.created_time_ns - a.created_time_ns < window_ns for a, b in itertools.pairwise(free))
        strategy, kept = run(events[symbol], cooled)
        assert all(b.created_time_ns - a.created_time_ns >= window_ns for a, b in itertools.pairwise(kept))
        # the cooldown only withholds signals: the kept ones are the free ones, taken greedily
        expected: list[Signal] = []
        for s in free:
            if not expected or s.created_time_ns - expected[-1].created_time_ns >= window_ns:
                expected.append(s)
        assert kept == expected and strategy.counts["cooldown"] == len(free) - len(kept) > 0


def test_symbols_interleaved_in_one_book_give_the_same_signals_as_alone(
    shared_data: Path, loose_runs: dict[str, tuple[Strategy, list[Signal]]]
) -> None:
    both = sorted(
        (t, symbol_id, raw)
        for symbol_id, symbol in enumerate(SYMBOLS)
        for t, raw in kline_records(shared_data, symbol, symbol_id)
    )
    _, signals = run(closed_candles([(t, raw) for t, _, raw in both], SYMBOLS), LOOSE)
    for symbol in SYMBOLS:
        assert [s for s in signals if s.symbol == symbol] == loose_runs[symbol][1]


def test_warming_up_from_stored_candles_continues_exactly_like_a_live_run(
    events: dict[str, list[CandleClosed]], loose_runs: dict[str, tuple[Strategy, list[Signal]]]
) -> None:
    symbol = "ETHUSDT"
    all_events = events[symbol]
    half = len(all_events) // 2
    history = [e.candle for e in all_events[:half]]
    strategy = Strategy(LOOSE)
    strategy.on_candle_closed(all_events[0])  # state from before the warm-up is forgotten
    assert strategy.warm_up(symbol, history) == sum(c.timeframe in strategy.timeframes for c in history)
    later: list[Signal] = []
    for event in all_events[half:]:
        later += strategy.on_candle_closed(event)
    cut = history[-1].close_time_ms
    expected = [s for s in loose_runs[symbol][1] if s.created_time_ns > (cut + 1) * 1_000_000]
    assert later == expected and later
    for tf in strategy.timeframes:
        assert_same(strategy.indicator_snapshot(symbol, tf), loose_runs[symbol][0].indicator_snapshot(symbol, tf))


def test_a_predictor_replaces_the_rule_based_estimate_and_a_failing_one_falls_back(
    events: dict[str, list[CandleClosed]], default_runs: dict[str, tuple[Strategy, list[Signal]]]
) -> None:
    seen: list[feat.FeatureVector] = []

    def model(vector: feat.FeatureVector) -> tuple[float, str]:
        seen.append(vector)
        return vector["sl_pct"] * 0.5, "model-7"

    reference = default_runs["ETHUSDT"][1]
    _, signals = run(events["ETHUSDT"], predictor=model)
    assert [s.model_version for s in signals] == ["model-7"] * len(reference)
    assert [s.predicted_return_pct for s in signals] == [s.sl_pct * 0.5 for s in reference]
    assert [v.values for v in seen] == [s.features for s in reference]
    assert all(v.schema_version == 1 and v.names == feat.FEATURE_NAMES for v in seen)

    def broken(vector: feat.FeatureVector) -> tuple[float, str]:
        raise RuntimeError("model file is corrupt")

    strategy, signals = run(events["ETHUSDT"], predictor=broken)
    assert signals == reference and strategy.counts["predictor_errors"] == len(reference)
    strategy = Strategy(DEFAULT)
    strategy.set_predictor(lambda v: (math.nan, "model-8"))  # a non-finite prediction is refused the same way
    signals = [s for e in events["ETHUSDT"] for s in strategy.on_candle_closed(e)]
    assert signals == reference and strategy.counts["predictor_errors"] == len(reference)


def test_corrections_and_stale_candles_are_counted_and_ignored(events: dict[str, list[CandleClosed]]) -> None:
    strategy = Strategy(LOOSE)
    sample = events["BTCUSDT"][:200]
    for event in sample:
        strategy.on_candle_closed(event)
    before = strategy.indicator_snapshot("BTCUSDT", "1m")
    assert before is not None
    for event in [e for e in sample if e.candle.timeframe == "1m"][-5:]:
        strategy.on_candle_closed(msgspec.structs.replace(event, corrected=True))
        strategy.on_candle_closed(event)
    assert strategy.counts["corrections_ignored"] == 5 and strategy.counts["stale_ignored"] == 5
    assert_same(strategy.indicator_snapshot("BTCUSDT", "1m"), before)
    assert strategy.indicator_snapshot("BTCUSDT", "3m") is None and strategy.indicator_snapshot("X", "1m") is None


def test_many_symbols_use_rows_of_the_shared_indicator_state(events: dict[str, list[CandleClosed]]) -> None:
    hourly = [e for e in events["BTCUSDT"] if e.candle.timeframe in ("1h", "1d")][:150]
    strategy = Strategy(DEFAULT)
    symbols = [f"S{i:03d}USDT" for i in range(70)]  # more than one block of 64 rows
    for event in hourly:
        for symbol in symbols:
            strategy.on_candle_closed(
                msgspec.structs.replace(event, candle=msgspec.structs.replace(event.candle, symbol=symbol))
            )
    alone = Strategy(DEFAULT)
    for event in hourly:
        alone.on_candle_closed(event)
    expected = alone.indicator_snapshot("BTCUSDT", "1h")
    assert expected is not None and math.isfinite(expected["adx"])
    for symbol in symbols:
        assert_same(strategy.indicator_snapshot(symbol, "1h"), expected)
    assert len(strategy._banks["1h"].blocks) == 2


def test_a_signal_becomes_the_bus_event_the_brain_sizes(default_runs: dict[str, tuple[Strategy, list[Signal]]]) -> None:
    s = default_runs["ETHUSDT"][1][0]
    event = s.to_event()
    assert isinstance(event, SignalGenerated)
    assert (event.signal_id, event.side, event.entry_price, event.sl_pct, event.model_version) == (
        s.signal_id, s.side, s.entry_price, s.sl_pct, s.model_version,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ the formulas


def test_confidence_is_a_bounded_increasing_function_of_the_score() -> None:
    scores = np.linspace(-0.65, 1.0, 50)
    values = [confidence_of(s) for s in scores]
    assert all(0.0 < v < 1.0 for v in values)
    assert all(a < b for a, b in itertools.pairwise(values))
    assert confidence_of(CONFIDENCE_CENTER) == 0.5


def test_the_rule_based_return_is_the_expected_value_net_of_fees() -> None:
    assert rule_based_return_pct(0.5, 1.0, 2.0, 0.1) == pytest.approx(0.4)
    assert rule_based_return_pct(1 / 3, 1.0, 2.0, 0.0) == pytest.approx(0.0)


class _CheckedStrategy(Strategy):
    """Checks every trigger the decision kernel evaluated against the Python reference: the plan against
    ``plan_trade``, the features against ``compute`` of built inputs (bit for bit), the finite flag, score and
    confidence against ``confluence`` and ``confidence_of``."""

    compared = 0

    def _evaluate(self, state, series, c, bar, side, sweep, result):  # type: ignore[no-untyped-def]
        atr = self._banks[series.timeframe].value(state.row, StreamingIndicators.ATR)
        plan = plan_trade(side, c.close, sweep, atr, self.settings)
        outcome = result[dk.OUTCOME]
        if isinstance(plan, str):
            assert outcome == (dk.WARMING_UP if plan == "WARMING_UP" else dk.STOP_TOO_FAR)
            return super()._evaluate(state, series, c, bar, side, sweep, result)
        assert outcome not in (dk.WARMING_UP, dk.STOP_TOO_FAR)
        got = self._plan_of(result)
        assert [v.hex() for v in got] == [v.hex() for v in plan]
        fast = tuple(result[dk.F0 : dk.F0 + len(feat.FEATURES)])
        inputs = self._inputs(state, side, sweep, plan, bar)
        inputs.check_causal()
        reference = tuple(feat.compute(inputs).tolist())
        assert [v.hex() for v in fast] == [v.hex() for v in reference]  # bit for bit, NaN and -0.0 included
        assert inputs.structure == state.structure
        finite = all(map(math.isfinite, reference))
        assert (outcome != dk.NOT_FINITE) == finite  # the kernel's next steps, checked too
        if finite:
            score, confidence = result[dk.F0 + SCORE], result[dk.F0 + CONFIDENCE]
            assert (score, confidence) == (confluence(reference), confidence_of(confluence(reference)))
            low = confidence < self.settings.min_confidence
            assert (outcome == dk.LOW_CONFIDENCE) == low
            if not low:
                last = state.last_signal_ms
                cooling = last is not None and c.close_time_ms - last < self.settings.cooldown_s * 1000.0
                assert outcome == (dk.COOLDOWN if cooling else dk.SIGNAL)
                if outcome == dk.SIGNAL:
                    fee = self.settings.round_trip_fee_pct
                    expected = rule_based_return_pct(confidence, plan.sl_pct, plan.tp_pct, fee)
                    assert result[dk.RULE_RETURN].hex() == expected.hex()
        self.compared += 1
        return super()._evaluate(state, series, c, bar, side, sweep, result)


def test_the_streaming_feature_path_equals_compute_of_the_inputs_bit_for_bit(
    events: dict[str, list[CandleClosed]],
) -> None:
    for settings in (DEFAULT, LOOSE):
        for symbol in SYMBOLS:
            strategy = _CheckedStrategy(settings, record_inputs=True)  # its checks build the feature inputs
            for event in events[symbol]:
                strategy.on_candle_closed(event)
            # every trigger's vector was compared, the warming-up (NaN) ones and the signals alike
            counts = strategy.counts
            assert strategy.compared >= counts["signals"] + counts["low_confidence"] + counts["cooldown"]
            assert counts["signals"] >= 10 and counts["warming_up"] >= 1


def test_indicator_rows_read_from_the_bank_buffers_equal_the_indicator_arrays(
    default_runs: dict[str, tuple[Strategy, list[Signal]]],
) -> None:
    strategy = default_runs["BTCUSDT"][0]
    for bank in strategy._banks.values():
        for b, block in enumerate(bank.blocks):
            for local in range(block.values.shape[0]):
                expected = [v.hex() for v in block.values[local].tolist()]
                assert [v.hex() for v in bank.values(b * 64 + local)] == expected
    assert any(math.isfinite(v) for v in strategy._banks["1h"].values(0))  # warmed up: real values compared


def test_the_decision_arrays_mirror_the_pending_sweeps_and_the_context_after_every_candle(
    events: dict[str, list[CandleClosed]],
) -> None:
    for settings in (DEFAULT, LOOSE):
        strategy = Strategy(settings)
        symbol = SYMBOLS[0]
        for event in events[symbol]:
            strategy.on_candle_closed(event)
            strategy.settle()
            state = strategy._symbols[symbol]
            rows = strategy._sweep_state[state.row]
            for k, side in enumerate((1, -1)):
                sweep = state.sweeps.get(side)
                assert (rows[k, dk.ACTIVE] == 1.0) == (sweep is not None)
                if sweep is not None:
                    zone = sweep.zone
                    assert rows[k, dk.BAR : dk.HAS_ZONE].tolist() == [
                        sweep.bar, sweep.open_time_ms, sweep.confirmed_ms, sweep.level, sweep.extreme, sweep.pool,
                        sweep.ref_level, sweep.ref_confirmed_ms,
                    ]  # fmt: skip
                    assert rows[k, dk.HAS_ZONE] == (zone is not None)
                    if zone is not None:
                        assert rows[k, dk.ZONE_OB :].tolist() == [
                            zone.order_block, zone.fair_value_gap, zone.top, zone.bottom, zone.formed_time_ms,
                            zone.confirmed_ms,
                        ]  # fmt: skip
            ctx = strategy._context[state.row]
            structure = state.structure
            assert ctx[dk.HAS_STRUCTURE] == (structure is not None)
            if structure is not None:
                assert (ctx[dk.STRUCTURE_DIRECTION], ctx[dk.STRUCTURE_CONFIRMED_MS]) == (
                    structure.direction, structure.confirmed_ms,
                )  # fmt: skip
            assert ctx[dk.HAS_LAST_SIGNAL] == (state.last_signal_ms is not None)
            if state.last_signal_ms is not None:
                assert ctx[dk.LAST_SIGNAL_MS] == state.last_signal_ms
            series = state.series
            assert ctx[dk.M15_CLOSE_MS] == series["15m"].close_time_ms
            assert ctx[dk.H1_CLOSE_MS] == series["1h"].close_time_ms
            assert ctx[dk.H1_CLOSE] == series["1h"].close or math.isnan(series["1h"].close)
            day = series["1d"].recent[-1] if series["1d"].recent else None
            assert ctx[dk.HAS_DAY] == (day is not None)
            if day is not None:
                assert ctx[dk.DAY_OPEN : dk.DAY_CLOSE_MS + 1].tolist() == [*day[1:5], day[0] + series["1d"].width - 1]
        assert strategy.counts["signals"] >= 3


class _SmcFirst(Strategy):
    """The order before the decision moved ahead: the trigger candle's SMC update and the swings and swept pools it
    confirms, then the decision, then the candle's own sweep (the view last)."""

    def _decide(self, state, series, c, bar, emit):  # type: ignore[no-untyped-def]
        self._deferred = None
        series.smc_open_ms.append(c.open_time_ms)
        events = series.smc.update(c.open, c.high, c.low, c.close, c.volume)
        assert series.smc.bars - 1 == bar
        pools = self._confirmations(state, c, events)
        signals = super()._decide(state, series, c, bar, emit)
        for side in (1, -1):
            self._detect_sweep(state, c, bar, side, pools.get(side) if pools is not None else None)
        if events:
            series.view.apply(events, series.smc_open_ms)
        return signals


def test_deciding_before_the_trigger_candles_smc_bookkeeping_changes_no_signal_and_no_state(
    events: dict[str, list[CandleClosed]],
) -> None:
    for settings in (DEFAULT, LOOSE):
        for symbol in SYMBOLS:
            first, deferred = _SmcFirst(settings), Strategy(settings)
            made_first: list[Signal] = []
            made: list[Signal] = []
            for event in events[symbol]:
                made_first += first.on_candle_closed(event)
                made += deferred.on_candle_closed(event)
                if event.candle.timeframe == settings.trigger_timeframe:
                    assert deferred._deferred is not None  # the bookkeeping waits for settle()
            assert made == made_first and len(made) >= 10
            assert deferred.stats() == first.stats() and deferred._deferred is None  # stats() settled it
            for tf in ("1m", "15m"):
                view, expected = deferred.smc_view(symbol, tf), first.smc_view(symbol, tf)
                assert view is not None and expected is not None
                assert view.zones() == expected.zones() and view.structure() == expected.structure()
            trigger = settings.trigger_timeframe
            state, reference = deferred._symbols[symbol], first._symbols[symbol]
            assert (state.sweeps, state.swing_high, state.swing_low, state.taken) == (
                reference.sweeps,
                reference.swing_high,
                reference.swing_low,
                reference.taken,
            )
            assert state.series[trigger].smc.swings == reference.series[trigger].smc.swings


@given(
    symbol=st.text(min_size=1, max_size=20),
    timeframe=st.sampled_from(("1m", "5m")),
    open_ms=st.integers(min_value=0, max_value=2**45),
    side=st.sampled_from(("LONG", "SHORT")),
)
def test_signal_ids_are_the_uuid5_of_what_defines_the_signal(
    symbol: str, timeframe: str, open_ms: int, side: str
) -> None:
    key = f"{symbol}|{timeframe}|{open_ms}|{side}|{feat.FEATURE_SCHEMA_VERSION}"
    expected = str(uuid.uuid5(uuid.UUID("6f1d3c52-5a0e-4d8b-9b7e-3c6a1f0e2d41"), key))
    assert signal_id_for(symbol, timeframe, open_ms, side) == expected
