"""The decision kernel's own parts: Python's rounding and NumPy's sum bit for bit, the causality check's errors, and
the per-symbol arrays mirroring the strategy's objects. (Every trigger of the real klines is compared with the
Python reference in ``test_strategy.py``.)"""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.analytics.indicators import StreamingIndicators
from aegis.brain import decision_kernel as dk
from aegis.brain import features as feat


def _same(a: float, b: float) -> bool:
    return a.hex() == b.hex()


def test_round6_is_pythons_round_on_a_million_values_and_every_kind_of_tie() -> None:
    rng = np.random.default_rng(7)
    values = rng.uniform(0.0, 10.0, 400_000).tolist()  # stop and target distances in percent
    values += rng.uniform(-1e4, 1e4, 200_000).tolist()
    values += (rng.uniform(0.0, 1.0, 200_000) * 10.0 ** rng.integers(-12, 9, 200_000)).tolist()
    values += [k / 128 for k in range(1, 20_001, 2)]  # exact binary halves at the 6th decimal (x * 1e6 = n + 0.5)
    values += [(k + 0.5) / 1e6 for k in range(100_000)]  # decimal halves, just off in binary
    values += [math.nextafter((k + 0.5) / 1e6, 0.0) for k in range(50_000)]
    values += [math.nextafter((k + 0.5) / 1e6, 1.0) for k in range(50_000)]
    values += [-v for v in values[::7]]
    values += [0.0, -0.0, 4e-7, -4e-7, 5e-7, -5e-7, 5.000001e-7, dk.ROUND6_LIMIT * 0.999]
    bad = [v for v in values if not _same(dk.round6(v), round(v, 6))]
    assert bad == []


@given(st.floats(min_value=-dk.ROUND6_LIMIT, max_value=dk.ROUND6_LIMIT, exclude_max=True, exclude_min=True))
def test_round6_is_pythons_round_on_any_float_in_range(x: float) -> None:
    assert _same(dk.round6(x), round(x, 6))


def test_round6_refuses_what_it_cannot_round_exactly() -> None:
    for x in (math.nan, math.inf, -math.inf, dk.ROUND6_LIMIT, -dk.ROUND6_LIMIT * 2):
        assert math.isnan(dk.round6(x))


def test_the_pairwise_sum_without_recursion_is_numpys_sum() -> None:
    rng = np.random.default_rng(3)
    for n in [*range(1, 300), 383, 384, 385, 511, 512, 513, 1000, 1024, 1031, 4097]:
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-5, 8, n)
        buffer = array("d", v.tolist())
        assert _same(dk._pairwise_sum(buffer, 0, n), float(np.sum(v)))
        assert _same(feat.numpy_mean(buffer), float(np.mean(v)))


@given(keep=st.integers(min_value=2, max_value=40), volumes=st.lists(st.floats(0, 1e9), max_size=120))
def test_the_volume_window_is_the_newest_keep_volumes_oldest_first(keep: int, volumes: list[float]) -> None:
    window = np.full((3, 2 * keep), np.nan)
    taken = np.zeros(3, dtype=np.int64)
    for i, v in enumerate(volumes):
        got = dk.push_volume(window, taken, 1, v)
        assert got.tolist() == volumes[max(0, i + 1 - keep) : i + 1]
        assert got.base is not None  # a view of the window, nothing copied
    assert taken.tolist() == [0, len(volumes), 0] and np.isnan(window[[0, 2]]).all()  # other rows untouched


def test_the_trigger_kernel_advances_indicators_and_volumes_then_decides_as_decide() -> None:
    """take_trigger = stream_update_one + push_volume + decide (with a pending sweep), bit for bit."""
    rng = np.random.default_rng(5)
    bars = rng.uniform(99.0, 101.0, (60, 4))
    bars[-1, :3] = (101.2, 100.4, 101.0)  # closes above the pending sweep's reference swing (100.5): a CHOCH
    ours, reference = StreamingIndicators(2), StreamingIndicators(2)
    window, taken = np.zeros((2, 2 * 20)), np.zeros(2, dtype=np.int64)
    sweeps, context, params, _ = _arrays()
    sweeps = np.concatenate([sweeps, sweeps])
    context = np.concatenate([context, context])
    sweeps[:, :, dk.ACTIVE] = 0.0  # nothing pending: no decision
    weights = np.array([0.15, 0.25, 0.25, 0.2, 0.05, 0.1, 0.5, 4.0])
    m15 = np.full(len(StreamingIndicators.COLUMNS), 1.0)
    volumes: list[float] = []
    out, expected = np.zeros((2, dk.OUT_COLUMNS)), np.zeros((2, dk.OUT_COLUMNS))
    for i, (h, lo, c, volume) in enumerate(bars.tolist()):
        h, lo = max(h, lo, c), min(h, lo, c)
        volumes.append(volume)
        reference.update_one(1, h, lo, c)
        if i == len(bars) - 1:  # the last candle completes a pending long sweep
            sweeps[1], context[1] = _arrays()[0][0], _arrays()[1][0]
            sweeps[1, 0, dk.BAR] = i - 3
        reference_sweeps = sweeps.copy()
        code = dk.take_trigger(
            *ours.kernel_args(), 1, window, taken, out, sweeps, context, params, weights, m15, m15, 1, i,
            T - WIDTH + 1, T, WIDTH, c, h, lo, c, volume, volume / 2,
        )  # fmt: skip
        assert ours.values[1].tobytes() == reference.values[1].tobytes()
        if i < len(bars) - 1:
            assert code == 0
            continue
        expected_code = dk.decide(
            expected, reference_sweeps, context, params, weights, reference.values[1], m15, m15,
            array("d", volumes[-20:]), 1, i, T - WIDTH + 1, T, WIDTH, c, c, volume, volume / 2,
        )  # fmt: skip
        assert code == expected_code and code & 3 == 1
        assert out[0].tobytes() == expected[0].tobytes() and sweeps.tobytes() == reference_sweeps.tobytes()
    assert dk.take_trigger(
        *ours.kernel_args(), 1, window, taken, out, sweeps, context, params, weights, m15, m15, 1, 99, 0, 59_999,
        WIDTH, 1.0, math.nan, 1.0, 1.0, 1.0, 0.5,
    ) == dk.NOT_UPDATED  # fmt: skip
    assert ours.values[1].tobytes() == reference.values[1].tobytes() and taken[1] == len(bars)  # nothing moved


# ------------------------------------------------------------------------------------------- the causality check

T = 1_700_000_039_999  # close time of the trigger candle
WIDTH = 60_000
OUT = np.zeros((2, dk.OUT_COLUMNS))


def _arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One symbol with a pending long sweep that the trigger candle (close 101 above the swing at 100) completes."""
    sweeps = np.zeros((1, 2, dk.SWEEP_SIZE))
    sw = sweeps[0, 0]
    sw[[dk.ACTIVE, dk.BAR, dk.OPEN_MS, dk.CONFIRMED_MS]] = (1.0, 5.0, T - 3 * WIDTH + 1, T - 2 * WIDTH)
    sw[[dk.LEVEL, dk.EXTREME, dk.REF_LEVEL, dk.REF_CONFIRMED_MS]] = (100.2, 100.0, 100.5, T - 5 * WIDTH)
    context = np.array([dk.empty_context()])
    day = (1, 99, 102, 98, 100.5, T - 60 * WIDTH)
    context[0, dk.HAS_DAY : dk.M15_CLOSE_MS + 1] = (*day, 100.8, T - 40 * WIDTH, T - 10 * WIDTH)
    settings = {"sweep_window_bars": 12, "sl_atr_buffer": 0.25, "min_sl_pct": 0.2, "max_sl_pct": 2.5,
                "reward_risk": 2.0, "min_confidence": 0.5, "cooldown_ms": 3.6e6, "round_trip_fee_pct": 0.1}  # fmt: skip
    params = np.array([settings[k] for k in dk.PARAM_SLOTS])
    indicators = np.full(len(StreamingIndicators.COLUMNS), 1.0)
    return sweeps, context, params, indicators


def _decide(sweeps: np.ndarray, context: np.ndarray, params: np.ndarray, ind: np.ndarray, open_ms: int) -> int:
    out = OUT
    weights = np.array([0.15, 0.25, 0.25, 0.2, 0.05, 0.1, 0.5, 4.0])
    volumes = array("d", [1.0, 2.0, 3.0])
    return dk.decide(out, sweeps, context, params, weights, ind, ind, ind, volumes, 0, 8, open_ms, T, WIDTH, 100.5,
                     101.0, 3.0, 1.5)  # fmt: skip


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        (lambda sw, ctx: None, 0),
        (lambda sw, ctx: ctx.__setitem__(slice(dk.HAS_DAY, dk.DAY_CLOSE_MS + 1), (1, 1, 1, 1, 1, T + 1)), 2),
        (lambda sw, ctx: ctx.__setitem__(dk.M15_CLOSE_MS, T + 1), 3),
        (lambda sw, ctx: ctx.__setitem__(dk.H1_CLOSE_MS, T + 1), 4),
        (lambda sw, ctx: sw.__setitem__(dk.CONFIRMED_MS, T + 1), 5),
        (lambda sw, ctx: sw.__setitem__(dk.REF_CONFIRMED_MS, T + 1), 5),
        (lambda sw, ctx: sw.__setitem__(slice(dk.HAS_ZONE, dk.ZONE_CONFIRMED_MS + 1), (1, 1, 0, 100.3, 99.9, 0, T)), 6),
        (lambda sw, ctx: ctx.__setitem__(slice(dk.HAS_STRUCTURE, dk.STRUCTURE_CONFIRMED_MS + 1), (1, 1, T + 1)), 7),
    ],
)
def test_an_input_known_only_after_the_trigger_candle_is_an_error_naming_it(tamper, error) -> None:  # type: ignore[no-untyped-def]
    sweeps, context, params, ind = _arrays()
    tamper(sweeps[0, 0], context[0])
    code = _decide(sweeps, context, params, ind, T - WIDTH + 1)
    assert code & 3 == 1 and code & 4  # one candidate (the long sweep, spent by its CHOCH)
    assert code >> 4 == error
    assert sweeps[0, 0, dk.ACTIVE] == 0.0
    if not error:
        assert OUT[0, dk.OUTCOME] in (dk.SIGNAL, dk.LOW_CONFIDENCE)  # every feature finite
        sl = round((101.0 - (100.0 - 0.25 * 1.0)) * 1 / 101.0 * 100.0, 6)
        assert (OUT[0, dk.SL], OUT[0, dk.TP]) == (sl, round(2.0 * sl, 6))
    if error:
        assert (
            "future" in dk.CAUSALITY_ERRORS[error]
            or "after" in dk.CAUSALITY_ERRORS[error]
            or "not known" in (dk.CAUSALITY_ERRORS[error])
        )
    # a trigger candle that does not close at as_of_ms is the first check
    sweeps, context, params, ind = _arrays()
    assert _decide(sweeps, context, params, ind, T - WIDTH) >> 4 == 1


def test_the_kernels_causality_messages_are_check_known_bys() -> None:
    zone = feat.Zone(1, True, False, 99.0, 98.0, 0, 10)
    sweep = feat.Sweep(1, 0, 5, 1, 99.0, 98.5, False, 100.0, 5, zone)
    structure = feat.Structure(1, "BOS", 100.0, 5)
    good = {"trigger_close_ms": 9, "daily_close_ms": 9, "indicator_close_ms": {"1m": 9, "15m": 9, "1h": 9}}
    cases = [
        ({**good, "trigger_close_ms": 8}, sweep, structure, 1),
        ({**good, "daily_close_ms": 10}, sweep, structure, 2),
        ({**good, "indicator_close_ms": {"1m": 9, "15m": 10, "1h": 9}}, sweep, structure, 3),
        ({**good, "indicator_close_ms": {"1m": 9, "15m": 9, "1h": 10}}, sweep, structure, 4),
        (good, feat.Sweep(1, 0, 10, 1, 99.0, 98.5, False, 100.0, 5, None), structure, 5),
        (good, sweep, structure, 6),
        (good, feat.Sweep(1, 0, 5, 1, 99.0, 98.5, False, 100.0, 5, None), feat.Structure(1, "BOS", 1.0, 10), 7),
    ]
    for times, s, structure_, error in cases:
        with pytest.raises(AssertionError) as raised:
            feat.check_known_by(9, sweep=s, structure=structure_, **times)
        assert str(raised.value) == dk.CAUSALITY_ERRORS[error]
