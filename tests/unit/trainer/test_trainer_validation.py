"""Validation of closed trades (aegis.trainer.validation) against the real 1m klines.

Trades: SYNTHETIC-FROM-REAL (aegis.trainer.synthetic.trades_from_klines) — entries and exits on the real 10-day
BTCUSDT/ETHUSDT klines with the virtual account's exact fee and PnL arithmetic; each crafted fault below changes
one thing of such a trade.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from aegis.brain import features as feat
from aegis.trainer.synthetic import Klines, candle_ranges, trades_from_klines
from aegis.trainer.testing import real_klines
from aegis.trainer.validation import (
    REASONS,
    CandleKey,
    ClosedTrade,
    MinuteRange,
    Rules,
    candle_keys,
    minute_of,
    refusal,
    validate,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RULES = Rules(feat.FEATURE_SCHEMA_VERSION, len(feat.FEATURE_NAMES), price_tolerance_pct=0.2, clock_skew_s=5)


@pytest.fixture(scope="module")
def klines(shared_data: Path) -> list[Klines]:
    return real_klines(shared_data)


@pytest.fixture(scope="module")
def candles(klines: list[Klines]) -> dict[CandleKey, MinuteRange]:
    return candle_ranges(klines)


@pytest.fixture(scope="module")
def trades(klines: list[Klines]) -> list[ClosedTrade]:
    return trades_from_klines(klines, seed=5, every_minutes=60)


@pytest.fixture(scope="module")
def trade(trades: list[ClosedTrade]) -> ClosedTrade:
    return next(t for t in trades if t.side == "BUY" and t.close_reason == "SL_HIT")


def consistent(t: ClosedTrade, **changes: object) -> ClosedTrade:
    """Return ``t`` changed, with gross and realised PnL recomputed so that only the change is wrong."""
    t = dataclasses.replace(t, **changes)
    gross = t.sign * t.quantity * (t.exit_price - t.entry_price)
    return dataclasses.replace(t, gross_pnl=gross, realised_pnl=gross - t.fees + t.funding)


def test_every_synthetic_from_real_trade_passes_against_the_recorded_candles(
    trades: list[ClosedTrade], candles: dict[CandleKey, MinuteRange]
) -> None:
    result = validate(trades, candles, NOW, RULES)
    assert len(trades) > 300 and result.invalid_by_reason == {} and len(result.valid) == len(trades)
    assert candle_keys(trades) <= set(candles)


@pytest.mark.parametrize(
    ("reason", "changes"),
    [
        ("MISSING_FEATURES", {"features": None}),
        ("MISSING_FEATURES", {"feature_schema_version": None}),
        ("SCHEMA_MISMATCH", {"feature_schema_version": 2}),
        ("FEATURE_COUNT", {"features": (0.0,) * 32}),
        ("NON_FINITE_FEATURES", {"features": (float("nan"),) + (0.0,) * 32}),
        ("NON_FINITE_FEATURES", {"features": (float("inf"),) + (0.0,) * 32}),
        ("NAN_PNL", {"realised_pnl": Decimal("NaN")}),
        ("NAN_PNL", {"fees": Decimal("Infinity")}),
        ("BAD_QUANTITY", {"quantity": Decimal(0)}),
        ("BAD_QUANTITY", {"quantity": Decimal(-1)}),
        ("BAD_QUANTITY", {"quantity": Decimal("NaN")}),
        ("BAD_PRICE", {"entry_price": Decimal(0)}),
        ("BAD_PRICE", {"exit_price": Decimal("-5")}),
        ("GROSS_PNL_MISMATCH", {"gross_pnl": Decimal("0.00000002")}),
        ("REALISED_PNL_MISMATCH", {"funding": Decimal("0.01")}),
    ],
)
def test_each_fault_is_refused_for_its_reason(
    reason: str, changes: dict, trade: ClosedTrade, candles: dict[CandleKey, MinuteRange]
) -> None:
    assert refusal(trade, candles, NOW, RULES) is None
    bad = dataclasses.replace(trade, **changes)
    if reason == "GROSS_PNL_MISMATCH":
        bad = dataclasses.replace(trade, gross_pnl=trade.gross_pnl + changes["gross_pnl"])
    assert refusal(bad, candles, NOW, RULES) == reason
    assert reason in REASONS


def test_pnl_arithmetic_is_exact_to_the_last_usdt_decimal(
    trade: ClosedTrade, candles: dict[CandleKey, MinuteRange]
) -> None:
    one_unit = dataclasses.replace(trade, gross_pnl=trade.gross_pnl + Decimal("1e-8"))
    one_unit = dataclasses.replace(one_unit, realised_pnl=one_unit.realised_pnl + Decimal("1e-8"))
    assert refusal(one_unit, candles, NOW, RULES) is None  # the virtual account rounds gross to 8 decimals
    two_units = dataclasses.replace(trade, gross_pnl=trade.gross_pnl + Decimal("2e-8"))
    assert refusal(two_units, candles, NOW, RULES) == "GROSS_PNL_MISMATCH"
    # realised = gross - fees + funding (fees paid positive, funding received positive)
    received = dataclasses.replace(trade, funding=Decimal("0.5"), realised_pnl=trade.realised_pnl + Decimal("0.5"))
    assert refusal(received, candles, NOW, RULES) is None
    wrong_sign = dataclasses.replace(trade, funding=Decimal("0.5"), realised_pnl=trade.realised_pnl - Decimal("0.5"))
    assert refusal(wrong_sign, candles, NOW, RULES) == "REALISED_PNL_MISMATCH"


def test_timestamps_must_be_ordered_and_not_in_the_future(
    trade: ClosedTrade, candles: dict[CandleKey, MinuteRange]
) -> None:
    assert refusal(dataclasses.replace(trade, closed_at=trade.opened_at), candles, NOW, RULES) == "BAD_TIMESTAMPS"
    backwards = dataclasses.replace(trade, opened_at=trade.closed_at + dt.timedelta(seconds=1))
    assert refusal(backwards, candles, NOW, RULES) == "BAD_TIMESTAMPS"
    early_now = trade.closed_at - dt.timedelta(seconds=6)
    assert refusal(trade, candles, early_now, RULES) == "FUTURE_TIMESTAMP"
    assert refusal(trade, candles, trade.closed_at - dt.timedelta(seconds=4), RULES) is None  # within the skew


def test_prices_must_lie_in_their_minutes_range_within_the_tolerance(
    trade: ClosedTrade, candles: dict[CandleKey, MinuteRange]
) -> None:
    entry = candles[(trade.symbol, minute_of(trade.opened_at))]
    exit_ = candles[(trade.symbol, minute_of(trade.closed_at))]
    just_inside = consistent(trade, entry_price=(entry.high * Decimal("1.0019")).quantize(Decimal("0.01")))
    assert refusal(just_inside, candles, NOW, RULES) is None
    above = consistent(trade, entry_price=(entry.high * Decimal("1.0025")).quantize(Decimal("0.01")))
    assert refusal(above, candles, NOW, RULES) == "ENTRY_PRICE_OUTSIDE_CANDLE"
    below = consistent(trade, exit_price=(exit_.low * Decimal("0.997")).quantize(Decimal("0.01")))
    assert refusal(below, candles, NOW, RULES) == "EXIT_PRICE_OUTSIDE_CANDLE"
    strict = dataclasses.replace(RULES, price_tolerance_pct=0.0)
    at_high = consistent(trade, entry_price=entry.high)
    assert refusal(at_high, candles, NOW, strict) is None


def test_a_missing_candle_is_a_counted_reason_not_a_crash(
    trades: list[ClosedTrade], candles: dict[CandleKey, MinuteRange]
) -> None:
    gone = dict(candles)
    del gone[(trades[0].symbol, minute_of(trades[0].closed_at))]
    del gone[(trades[1].symbol, minute_of(trades[1].opened_at))]
    result = validate(trades, gone, NOW, RULES)
    assert result.invalid_by_reason == {"MISSING_CANDLE": 2}
    assert set(result.refused) == {trades[0].trade_id, trades[1].trade_id}
    assert validate(trades, {}, NOW, RULES).invalid_by_reason == {"MISSING_CANDLE": len(trades)}


def test_a_liquidation_loses_its_margin_and_its_exit_is_not_a_traded_price(
    trade: ClosedTrade, candles: dict[CandleKey, MinuteRange]
) -> None:
    liquidated = dataclasses.replace(
        trade,
        close_reason="LIQUIDATED",
        exit_price=trade.entry_price * Decimal("0.5"),  # the computed liquidation price, far from any candle
        gross_pnl=-trade.margin,
        realised_pnl=-trade.margin - trade.fees + trade.funding,
    )
    assert refusal(liquidated, candles, NOW, RULES) is None
    priced = dataclasses.replace(
        liquidated, gross_pnl=liquidated.gross_pnl + 1, realised_pnl=liquidated.realised_pnl + 1
    )
    assert refusal(priced, candles, NOW, RULES) == "GROSS_PNL_MISMATCH"


def test_the_first_failing_check_names_the_reason_so_counts_add_up(
    trades: list[ClosedTrade], candles: dict[CandleKey, MinuteRange]
) -> None:
    doubly_bad = dataclasses.replace(trades[0], feature_schema_version=2, quantity=Decimal(0))
    mixed = [doubly_bad, dataclasses.replace(trades[1], quantity=Decimal(0)), *trades[2:10]]
    result = validate(mixed, candles, NOW, RULES)
    assert result.invalid_by_reason == {"SCHEMA_MISMATCH": 1, "BAD_QUANTITY": 1}
    assert sum(result.invalid_by_reason.values()) == len(result.refused) == 2 and result.total == 10
    assert [t.trade_id for t in result.valid] == [t.trade_id for t in trades[2:10]]
