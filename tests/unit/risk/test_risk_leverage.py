"""Tests for aegis.risk.leverage: the bracket guard on real BTCUSDT tiers and, by property, on all of them."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.errors import ValidationError
from aegis.exchange.rules import attach_brackets, load_exchange_info, load_leverage_brackets
from aegis.risk.leverage import fits, guard_leverage, max_fitting_notional

HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def rules(shared_data: Path):
    info = load_exchange_info(shared_data / "binance/alphadogs_coinbase_python/futures_exchange_info.json")
    tiers = load_leverage_brackets(shared_data / "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json")
    return attach_brackets(info, tiers)


@pytest.fixture(scope="module")
def btc(rules):
    return rules["BTCUSDT"]


@pytest.mark.parametrize(
    ("equity", "max_leverage", "expected"),
    [
        (D("1000"), 125, (D("100000"), False)),  # tier 2 (100x) binds: 100 * 1,000
        (D("400"), 125, (D("50000"), True)),  # tier 1 allows 50,000 (excl.), tier 2 needs 50,000 > 100 * 400
        (D("10000"), 20, (D("200000"), False)),  # the configured 20x binds first
        (D("100000"), 125, (D("5000000"), False)),  # tiers 1-3 fit to their caps; tier 4 binds at 50x
        (D("0"), 125, (D("0"), False)),
    ],
)
def test_max_fitting_notional_on_btcusdt(btc, equity, max_leverage, expected) -> None:
    assert max_fitting_notional(btc.brackets, equity, max_leverage) == expected


def test_guard_clamps_to_the_bracket_and_reports_it(btc) -> None:
    """docs/risk.md, "Leverage guard": 3 BTC at 50,000 on 1,000 equity, max leverage 125."""
    g = guard_leverage(btc, quantity=D("3"), price=D("50000"), equity=D("1000"), max_leverage=125)
    assert g.clamped
    assert (g.original_quantity, g.quantity) == (D("3.000"), D("2.000"))
    assert g.original_required_leverage == D("150")
    assert g.required_leverage == D("100")
    assert g.bracket.bracket == 2 and g.bracket_max_leverage == 100 and g.applied_leverage == 100
    assert g.leverage_lowered  # 125 asked, the 100,000 position's tier allows 100


def test_guard_respects_an_exclusive_cap(btc) -> None:
    g = guard_leverage(btc, quantity=D("2"), price=D("50000"), equity=D("400"), max_leverage=125)
    assert g.quantity == D("0.999")  # 1 BTC would be 50,000: tier 2, which needs 500 equity at 100x
    assert g.bracket.bracket == 1 and g.applied_leverage == 125


def test_guard_counts_the_existing_position(btc) -> None:
    g = guard_leverage(
        btc, quantity=D("1"), price=D("50000"), equity=D("1000"), max_leverage=125, existing_notional=D("60000")
    )
    assert g.quantity == D("0.800")  # 60,000 + 40,000 = 100,000 = 100x
    assert g.required_leverage == D("100")
    full = guard_leverage(
        btc, quantity=D("1"), price=D("50000"), equity=D("1000"), max_leverage=125, existing_notional=D("100000")
    )
    assert full.quantity == 0 and full.clamped


def test_guard_leaves_a_fitting_order_alone(btc) -> None:
    g = guard_leverage(btc, quantity=D("0.04"), price=D("50000"), equity=D("10000"), max_leverage=20)
    assert not g.clamped and g.quantity == D("0.040") and g.required_leverage == D("0.2")
    assert g.applied_leverage == 20 and not g.leverage_lowered


def test_guard_refuses_bad_arguments(rules, btc) -> None:
    with pytest.raises(ValidationError, match="brackets"):
        guard_leverage(rules["OPENUSDT"], quantity=D("1"), price=D("1"), equity=D("1"), max_leverage=1)
    with pytest.raises(ValidationError, match="max_leverage"):
        guard_leverage(btc, quantity=D("1"), price=D("1"), equity=D("1"), max_leverage=0)


@HYPOTHESIS
@given(data=st.data())
def test_guard_is_maximal_and_never_exceeds_the_bracket(rules, data) -> None:
    symbols = sorted(s for s, r in rules.items() if r.brackets and r.step_size > 0)
    r = rules[data.draw(st.sampled_from(symbols))]
    equity = D(data.draw(st.integers(1, 10**7)))
    price = D(data.draw(st.integers(1, 10**9))) / D(10**4)
    qty = D(data.draw(st.integers(0, 10**9))) / D(10**3)
    max_leverage = data.draw(st.integers(1, 125))
    existing = D(data.draw(st.integers(0, 10**6)))
    market = data.draw(st.booleans())
    g = guard_leverage(
        r,
        quantity=qty,
        price=price,
        equity=equity,
        max_leverage=max_leverage,
        existing_notional=existing,
        market=market,
    )
    step = r.market_step_size if market else r.step_size
    assert g.quantity <= g.original_quantity <= qty
    assert g.clamped == (g.quantity < g.original_quantity)
    if g.quantity > 0:
        notional = existing + g.quantity * price
        assert fits(r, notional, equity, max_leverage)
        bracket = r.bracket_for(notional)
        assert notional / equity <= min(bracket.initial_leverage, max_leverage)
        assert g.applied_leverage == min(bracket.initial_leverage, max_leverage)
    if g.clamped:
        # One more step would not fit: the clamp is the largest quantity that does.
        assert not fits(r, existing + (g.quantity + step) * price, equity, max_leverage)
