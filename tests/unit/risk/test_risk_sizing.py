"""Tests for aegis.risk.sizing: equity, the sizing formulas and the docs' worked examples (docs/risk.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from aegis.errors import ValidationError
from aegis.exchange.rules import load_exchange_info
from aegis.risk.sizing import (
    OpenPosition,
    PositionSide,
    ReasonCode,
    equity_breakdown,
    fixed_fraction_quantity,
    fixed_risk_quantity,
    kelly_risk_fraction,
    per_unit_loss,
    protective_prices,
)

T0 = datetime(2025, 11, 26, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def btc(shared_data: Path):
    return load_exchange_info(shared_data / "binance/alphadogs_coinbase_python/futures_exchange_info.json")["BTCUSDT"]


def position(pid: str, symbol: str, side: str, qty: str, entry: str, mark: str, leverage: int) -> OpenPosition:
    return OpenPosition(pid, symbol, PositionSide(side), D(qty), D(entry), D(mark), leverage, T0)


def test_equity_worked_example() -> None:
    """docs/risk.md, "Equity": wallet 10,000 with a BTC long and an ETH short."""
    btc = position("p1", "BTCUSDT", "LONG", "0.1", "50000", "51000", 10)  # margin 500, PnL +100
    eth = position("p2", "ETHUSDT", "SHORT", "2", "3000", "3025", 5)  # margin 1,200, PnL -50
    eq = equity_breakdown(D("10000"), [btc, eth])
    assert eq.margin_used == D("1700")
    assert eq.available_balance == D("8300")
    assert eq.unrealised_pnl == D("50")
    assert eq.total_equity == D("10050")
    assert eq.total_equity == eq.available_balance + eq.margin_used + eq.unrealised_pnl
    assert eq.position_value == D("11150")
    assert eq.free_margin == D("8300")  # a net unrealised gain is not spent


def test_free_margin_subtracts_unrealised_losses() -> None:
    eth = position("p2", "ETHUSDT", "SHORT", "2", "3000", "3100", 5)  # PnL -200
    eq = equity_breakdown(D("10000"), [eth])
    assert (eq.available_balance, eq.total_equity, eq.free_margin) == (D("8800"), D("9800"), D("8600"))


def test_position_pnl_on_margin() -> None:
    p = position("p1", "BTCUSDT", "LONG", "0.1", "50000", "51000", 10)
    assert p.pnl_pct_of_margin == D("20")  # +100 on 500 margin
    assert p.notional == D("5100.0")


def test_seeds_fixed_fraction_example() -> None:
    """The seeds: $10,000 equity, 20 %, BTC at $50,000 -> 0.04 BTC, $2,000 notional, 0.2x leverage."""
    qty = fixed_fraction_quantity(D("10000"), D("0.20"), D("50000"))
    assert qty == D("0.04")
    assert qty * D("50000") == D("2000")
    assert qty * D("50000") / D("10000") == D("0.2")


def test_fixed_risk_worked_example(btc) -> None:
    """docs/risk.md, "Fixed risk": 1 % of 10,000 on a 1 % stop below 50,000, with and without fees."""
    stop, target = protective_prices(btc, PositionSide.LONG, D("50000"), D("500"), D("1000"))
    assert (stop, target) == (D("49500"), D("51000"))
    unit = per_unit_loss(D("50000"), stop, D("0.0005"))
    assert unit == D("549.7500")
    raw = fixed_risk_quantity(D("10000"), D("1"), unit)
    assert btc.round_qty(raw) == D("0.181")
    assert btc.round_qty(raw) * unit == D("99.5047500")
    assert btc.round_qty(fixed_risk_quantity(D("10000"), D("1"), per_unit_loss(D("50000"), stop))) == D("0.200")


def test_protective_prices_round_toward_the_entry(btc) -> None:
    entry = D("50000.05")  # a mark price, off the tick grid
    stop, target = protective_prices(btc, PositionSide.LONG, entry, entry / 100, entry * 2 / 100)
    assert (stop, target) == (D("49500.10"), D("51000.00"))  # raw 49500.0495 up, 51000.051 down
    stop, target = protective_prices(btc, PositionSide.SHORT, entry, entry / 100, entry * 2 / 100)
    assert (stop, target) == (D("50500.00"), D("49000.10"))  # raw 50500.0505 down, 49000.049 up
    # The loss to the rounded stop is never larger than the raw distance.
    assert entry - D("49500.10") <= entry / 100 and D("50500.00") - entry <= entry / 100


def test_kelly_worked_example_uncapped() -> None:
    """docs/risk.md, "Kelly": predicted 0.8 %, win rate 0.45, stop 1 %, target 2 %, confidence 0.6."""
    k = kelly_risk_fraction(
        predicted_return_pct=D("0.8"),
        sl_pct=D("1"),
        tp_pct=D("2"),
        confidence=D("0.6"),
        win_rate=D("0.45"),
        multiplier=D("0.25"),
        cap=D("0.02"),
        fee_rate=D("0.0005"),
    )
    assert k.payoff_ratio == D("2")
    assert k.expected_return == D("0.0025")  # min(0.008, 0.45*0.02 - 0.55*0.01 = 0.0035) - 0.001
    assert k.full_kelly == D("0.125")
    assert k.risk_fraction == D("0.01875") and not k.capped


def test_kelly_worked_example_capped_and_without_edge() -> None:
    k = kelly_risk_fraction(
        predicted_return_pct=D("0.8"),
        sl_pct=D("1"),
        tp_pct=D("2"),
        confidence=D("0.9"),
        win_rate=D("0.55"),
        multiplier=D("0.25"),
        cap=D("0.02"),
        fee_rate=D("0.0005"),
    )
    assert k.expected_return == D("0.0055")
    assert k.full_kelly == D("0.275")
    assert k.risk_fraction == D("0.02") and k.capped  # 0.25 * 0.275 * 0.9 = 0.061875 > 0.02
    none = kelly_risk_fraction(
        predicted_return_pct=D("0.05"),
        sl_pct=D("1"),
        tp_pct=D("2"),
        confidence=D("1"),
        win_rate=None,
        multiplier=D("0.25"),
        cap=D("0.02"),
        fee_rate=D("0.0005"),
    )
    assert none.risk_fraction == 0 and none.full_kelly == 0


def test_kelly_needs_an_edge_source() -> None:
    with pytest.raises(ValidationError, match="predicted_return_pct"):
        kelly_risk_fraction(
            predicted_return_pct=None,
            sl_pct=D("1"),
            tp_pct=D("2"),
            confidence=D("1"),
            win_rate=None,
            multiplier=D("0.25"),
            cap=D("0.02"),
        )


def test_open_position_validates_fields() -> None:
    with pytest.raises(ValidationError, match=r"positions\[p\]\.entry_price"):
        OpenPosition("p", "BTCUSDT", PositionSide.LONG, D("1"), 50000.0, D("1"), 10, T0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="opened_time"):
        OpenPosition("p", "BTCUSDT", PositionSide.LONG, D("1"), D("1"), D("1"), 10, datetime(2025, 1, 1))
    with pytest.raises(ValidationError, match="leverage"):
        OpenPosition("p", "BTCUSDT", PositionSide.LONG, D("1"), D("1"), D("1"), 0, T0)
    with pytest.raises(ValidationError, match="side"):
        OpenPosition("p", "BTCUSDT", "UP", D("1"), D("1"), D("1"), 1, T0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="wallet_balance"):
        equity_breakdown("ten")


def test_reason_codes_mirror_the_proto_enum() -> None:
    from aegis.v1 import risk_pb2 as risk_pb

    proto = {name for name in risk_pb.RiskReasonCode.keys() if name != "RISK_REASON_CODE_UNSPECIFIED"}  # noqa: SIM118
    assert {c.proto_name for c in ReasonCode} == proto
    assert {c for c in ReasonCode if c.is_adjustment} == {
        ReasonCode.LEVERAGE_CLAMPED,
        ReasonCode.QUANTITY_REDUCED,
        ReasonCode.ROTATION_REPLACE,
    }
