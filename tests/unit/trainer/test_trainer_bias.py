"""The five bias checks (aegis.trainer.bias), each failing and passing on crafted training sets.

The crafted sets are SYNTHETIC: returns drawn from a seeded normal distribution, sides, symbols and close reasons
laid out by hand to sit on either side of each threshold.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from aegis.config import TrainerSettings
from aegis.trainer.bias import (
    CHECK_NAMES,
    close_reason_mix,
    pnl_outliers,
    run_checks,
    side_balance,
    symbol_concentration,
    win_rate,
)

SETTINGS = TrainerSettings()


def returns_with_win_rate(n: int, wins: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    out = -np.abs(rng.normal(0.5, 0.2, n)) - 0.01
    out[:wins] = np.abs(out[:wins])
    return out


@pytest.mark.parametrize(("wins", "passed"), [(24, False), (25, True), (50, True), (85, True), (86, False)])
def test_win_rate_must_be_plausible(wins: int, passed: bool) -> None:
    check = win_rate(returns_with_win_rate(100, wins), SETTINGS)
    assert check.name == "WIN_RATE" and check.figure == pytest.approx(wins) and check.passed is passed
    assert check.threshold == (25.0 if wins < 55 else 85.0)
    assert f"{wins:.1f} % of 100 trades won" in check.detail


def test_pnl_outliers_fail_above_their_share_and_a_flat_distribution_fails_too() -> None:
    rng = np.random.default_rng(2)
    normal = rng.normal(0, 1, 1000)
    check = pnl_outliers(normal, SETTINGS)
    assert check.passed and check.figure < 1.0 and check.threshold == 2.0
    fat = normal.copy()
    fat[:40] = 25.0 * np.sign(rng.normal(size=40))  # 4 % of the set far out in the tails
    check = pnl_outliers(fat, SETTINGS)
    assert not check.passed and check.figure > 2.0 and "beyond 3 standard deviations" in check.detail
    flat = pnl_outliers(np.full(50, 0.3), SETTINGS)
    assert not flat.passed and "not a real distribution" in flat.detail
    loose = pnl_outliers(fat, dataclasses.replace(SETTINGS, max_outlier_share_pct=10.0))
    assert loose.passed


def test_symbol_concentration_needs_spread_and_enough_symbols() -> None:
    balanced = ["BTCUSDT"] * 50 + ["ETHUSDT"] * 50
    assert symbol_concentration(balanced, SETTINGS).passed
    heavy = ["BTCUSDT"] * 51 + ["ETHUSDT"] * 49
    check = symbol_concentration(heavy, SETTINGS)
    assert not check.passed and check.figure == 51.0 and check.threshold == 50.0 and "BTCUSDT" in check.detail
    spread = [f"S{i % 5}USDT" for i in range(100)]
    assert symbol_concentration(spread, dataclasses.replace(SETTINGS, min_symbols=5)).passed
    few = symbol_concentration(spread, dataclasses.replace(SETTINGS, min_symbols=6))
    assert not few.passed and "5 symbols (at least 6)" in few.detail


@pytest.mark.parametrize(("buys", "passed"), [(50, True), (95, True), (96, False), (4, False), (5, True)])
def test_side_balance_refuses_a_one_sided_set(buys: int, passed: bool) -> None:
    check = side_balance(["BUY"] * buys + ["SELL"] * (100 - buys), SETTINGS)
    assert check.passed is passed and check.figure == max(buys, 100 - buys) and check.threshold == 95.0


@pytest.mark.parametrize(("tp", "passed"), [(30, True), (90, True), (91, False)])
def test_close_reason_mix_refuses_a_set_of_targets_only(tp: int, passed: bool) -> None:
    reasons = ["TP_HIT"] * tp + ["SL_HIT"] * (100 - tp)
    check = close_reason_mix(reasons, SETTINGS)
    assert check.passed is passed and check.figure == tp and "SL_HIT" in check.detail


def test_run_checks_lists_all_five_in_order_and_an_empty_set_fails_each() -> None:
    rng = np.random.default_rng(3)
    n = 200
    checks = run_checks(
        rng.normal(0, 1, n),
        ["BTCUSDT", "ETHUSDT"] * (n // 2),
        ["BUY", "SELL"] * (n // 2),
        ["TP_HIT", "SL_HIT", "SL_HIT", "MANUAL"] * (n // 4),
        SETTINGS,
    )
    assert [c.name for c in checks] == list(CHECK_NAMES) and all(c.passed for c in checks)
    empty = run_checks(np.array([]), [], [], [], SETTINGS)
    assert [c.name for c in empty] == list(CHECK_NAMES) and not any(c.passed for c in empty)
    assert all(isinstance(c.to_json()["figure"], float) for c in checks)
