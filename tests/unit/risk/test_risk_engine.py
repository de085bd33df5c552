"""Tests for aegis.risk.engine: worked examples end to end, refusal paths and properties of approved orders.

Rules are the real 2025-11 and 2025-12 exchangeInfo responses with the real 349-market leverage tiers.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aegis.errors import ValidationError
from aegis.exchange.rules import OrderType, attach_brackets, load_exchange_info, load_leverage_brackets
from aegis.risk.engine import AccountState, MarketContext, RiskConfig, RiskEngine, TradeSignal
from aegis.risk.rotation import RotationAction
from aegis.risk.sizing import OpenPosition, PositionSide, ReasonCode, SizingMethod, per_unit_loss

NOW = datetime(2025, 11, 26, 4, 0, tzinfo=UTC)
NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
DEC = "binance/alphadogs_coinbase_python/gateways/binance/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"
PROPERTY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def tiers(shared_data: Path):
    return load_leverage_brackets(shared_data / TIERS)


@pytest.fixture(scope="module")
def rules(shared_data: Path, tiers):
    return attach_brackets(load_exchange_info(shared_data / NOV), tiers)


@pytest.fixture(scope="module")
def rules_dec(shared_data: Path, tiers):
    return attach_brackets(load_exchange_info(shared_data / DEC), tiers)


def signal(symbol: str = "BTCUSDT", side: str = "LONG", **kw) -> TradeSignal:
    base = {
        "symbol": symbol,
        "side": side,
        "sl_pct": D("1"),
        "tp_pct": D("2"),
        "entry_price": D("50000"),
        "confidence": D("0.7"),
        "predicted_return_pct": D("0.8"),
        "created_time": NOW - timedelta(seconds=5),
        "signal_id": "sig-1",
    }
    base.update(kw)
    return TradeSignal(**base)


def mark(price: str = "50000", **kw) -> MarketContext:
    return MarketContext(mark_price=D(price), mark_time=NOW - timedelta(seconds=1), **kw)


def account(wallet: str = "10000", **kw) -> AccountState:
    return AccountState(name="paper", wallet_balance=wallet, **kw)


def engine(rules, **cfg) -> RiskEngine:
    return RiskEngine(rules, [RiskConfig.defaults("PAPER", **cfg)])


def held(pid: str, symbol: str, confidence: str, *, qty="0.01", entry="50000", mark_="50000", lev=20) -> OpenPosition:
    return OpenPosition(
        pid, symbol, PositionSide.LONG, D(qty), D(entry), D(mark_), lev, NOW - timedelta(hours=1), D(confidence)
    )


# --------------------------------------------------------------------------------------------- worked examples


def test_seeds_example_fixed_fraction(rules) -> None:
    """The seeds: $10,000 equity, 20 %, BTC at $50,000 -> 0.04 BTC, $2,000 notional, 0.2x leverage."""
    eng = engine(rules, sizing_method="FIXED_FRACTION", fixed_fraction=D("0.20"), include_fees=False)
    d = eng.evaluate(signal(), account(), mark(), NOW)
    assert d.approved, d.message
    assert d.reasons == ()
    assert d.order.quantity == D("0.040") and d.order.side == "BUY" and d.order.type is OrderType.MARKET
    assert d.sizing.notional == D("2000")
    assert d.leverage_guard.required_leverage == D("0.2")
    assert (d.order.stop_loss_price, d.order.take_profit_price) == (D("49500"), D("51000"))
    assert d.equity.total_equity == D("10000")


def test_fixed_risk_example(rules) -> None:
    """docs/risk.md, "Fixed risk": 1 % of 10,000, stop 1 % below 50,000, fees 0.05 % a side -> 0.181 BTC."""
    d = engine(rules).evaluate(signal(), account(), mark(), NOW)
    assert d.approved, d.message
    assert d.order.quantity == D("0.181")
    assert d.sizing.risk_budget == D("100")
    assert d.sizing.risk_amount == D("99.5047500")
    assert d.order.leverage == 20 and d.sizing.initial_margin == D("452.5")


def test_kelly_example(rules) -> None:
    """docs/risk.md, "Kelly": risk 1.875 % of equity over an ATR-floored stop of 600 -> 0.288 BTC."""
    eng = engine(rules, sizing_method="KELLY")
    d = eng.evaluate(signal(confidence=D("0.6")), account(), mark(atr=D("400"), win_rate=D("0.45")), NOW)
    assert d.approved, d.message
    assert d.sizing.kelly_fraction == D("0.01875")
    assert d.sizing.risk_budget == D("187.50000")
    assert d.order.quantity == D("0.288")  # 187.5 / (1.5 * 400 + 49.75)
    assert d.sizing.risk_amount == D("158.32800")  # at the real stop: 0.288 * 549.75
    assert d.leverage_guard.required_leverage == D("1.44")


def test_atr_method_puts_the_stop_at_k_atr(rules) -> None:
    d = engine(rules, sizing_method="ATR").evaluate(signal(), account(), mark(atr=D("400")), NOW)
    assert d.approved, d.message
    assert d.order.stop_loss_price == D("49400")  # 50,000 - 1.5 * 400
    assert d.order.quantity == D("0.153")  # 100 / (600 + 0.0005 * 99,400) = 0.1539


def test_short_limit_entry_rounds_prices_safely(rules) -> None:
    eng = engine(rules, entry_order_type="LIMIT")
    d = eng.evaluate(signal(side="SHORT", entry_price=D("50000.07")), account(), mark("50000"), NOW)
    assert d.approved, d.message
    assert d.order.side == "SELL" and d.order.price == D("50000.10")  # a sell rounds up
    assert d.order.stop_loss_price == D("50500.10")  # raw 50500.101 rounds down, toward the entry
    assert d.order.take_profit_price == D("49000.10")  # raw 49000.098 rounds up, toward the entry
    assert d.order.time_in_force == "GTC"


def test_leverage_clamp_is_reported(rules) -> None:
    """1 % risk on a 0.05 % stop wants 20x+ notional; at max leverage 125 on 400 equity the guard cuts it."""
    eng = engine(rules, max_leverage=125, max_open_notional_multiple=None, include_fees=False)
    d = eng.evaluate(signal(sl_pct=D("0.05"), tp_pct=D("0.1")), account("400"), mark(), NOW)
    assert d.approved, d.message
    # Raw: 4 / 25 = 0.16 BTC (8,000 notional, 20x) fits tier 1: no clamp. Ask for more risk:
    eng = engine(
        rules, max_leverage=125, max_open_notional_multiple=None, include_fees=False, risk_per_trade_pct=D("100")
    )
    d = eng.evaluate(signal(sl_pct=D("0.05"), tp_pct=D("0.1")), account("400"), mark(), NOW)
    assert d.approved, d.message
    assert ReasonCode.QUANTITY_REDUCED in d.reason_codes
    assert d.leverage_guard.clamped and d.leverage_guard.original_quantity == D("16.000")
    assert d.order.quantity == D("0.999") and d.order.leverage == 125  # just under the 50,000 tier cap


def test_leverage_lowered_to_the_bracket(rules) -> None:
    eng = engine(rules, max_leverage=125)
    d = eng.evaluate(signal("TUSDT", entry_price=D("0.01")), account(), mark("0.01"), NOW)
    assert d.approved, d.message
    assert ReasonCode.LEVERAGE_CLAMPED in d.reason_codes
    # ~9,090 notional falls in TUSDT's second tier (5,000-20,000 at 25x), not the first (50x).
    assert d.order.leverage == 25 and d.leverage_guard.bracket_max_leverage == 25
    assert d.leverage_guard.bracket.bracket == 2


# --------------------------------------------------------------------------------------------- refusals


def codes(d) -> list[ReasonCode]:
    return list(d.reason_codes)


@pytest.mark.parametrize(
    ("symbol", "why"),
    [("NOPEUSDT", "not a known symbol"), ("OPENUSDT", "PENDING_TRADING"), ("AAVEUSDC", "no leverage brackets")],
)
def test_symbol_not_trading(rules, symbol, why) -> None:
    if symbol == "AAVEUSDC" and rules[symbol].brackets:
        pytest.skip("has brackets")
    d = engine(rules).evaluate(signal(symbol), account(), mark(), NOW)
    assert not d.approved and codes(d) == [ReasonCode.SYMBOL_NOT_TRADING] and why in d.message
    assert d.order is None


def test_tiny_account_is_refused_with_the_filter_names(rules) -> None:
    d = engine(rules).evaluate(signal(), account("50"), mark(), NOW)  # 1 % of 50 -> 0.0009 BTC
    assert not d.approved
    assert codes(d) == [ReasonCode.QUANTITY_TOO_SMALL, ReasonCode.MARKET_LOT_SIZE, ReasonCode.MIN_NOTIONAL]
    assert d.filter_violations == ("MARKET_LOT_SIZE", "MIN_NOTIONAL")
    assert d.order is not None and d.order.quantity == 0  # shown for information: only filters refused


def test_above_min_qty_but_below_min_notional(rules) -> None:
    d = engine(rules).evaluate(signal(), account("100"), mark(), NOW)  # 0.001 BTC = 50 USDT < 100
    assert not d.approved
    assert codes(d) == [ReasonCode.QUANTITY_TOO_SMALL, ReasonCode.MIN_NOTIONAL]


def test_gates_are_all_reported(rules) -> None:
    acct = account(
        halted=True,
        halt_reason="maintenance",
        start_of_day_equity=D("11000"),
        peak_equity=D("13000"),
        last_stop_loss_time={"BTCUSDT": NOW - timedelta(minutes=5)},
        positions=(held("p1", "BTCUSDT", "0.5"),),
    )
    eng = engine(rules, min_confidence=D("0.8"))
    old = signal(created_time=NOW - timedelta(minutes=10), predicted_return_pct=D("0.05"))
    d = eng.evaluate(old, acct, mark(), NOW)
    assert not d.approved and d.order is None and d.sizing is None
    assert codes(d) == [
        ReasonCode.HALTED,
        ReasonCode.MAX_DRAWDOWN,
        ReasonCode.DAILY_LOSS_LIMIT,
        ReasonCode.STALE_SIGNAL,
        ReasonCode.COOLDOWN,
        ReasonCode.LOW_CONFIDENCE,
        ReasonCode.LOW_EXPECTED_RETURN,
        ReasonCode.POSITION_EXISTS,
    ]
    assert d.message.startswith("rejected: ")


@pytest.mark.parametrize(
    ("market", "reason"),
    [
        (MarketContext(), "no mark price"),
        (MarketContext(mark_price=D("50000")), "has no time"),
        (MarketContext(mark_price=D("50000"), mark_time=NOW - timedelta(minutes=1)), "60 s old"),
    ],
)
def test_stale_price(rules, market, reason) -> None:
    d = engine(rules).evaluate(signal(), account(), market, NOW)
    assert codes(d) == [ReasonCode.STALE_PRICE] and reason in d.message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sl_pct": D("0")}, "sl_pct"),
        ({"tp_pct": D("-1")}, "tp_pct"),
        ({"confidence": D("1.5")}, "confidence"),
        ({"sl_pct": D("0.0001")}, "tick grid"),  # 5 USDT-cent stop on BTC collapses onto the entry
        ({"sl_pct": D("100")}, "at or below 0"),
    ],
)
def test_invalid_signal(rules, change, reason) -> None:
    d = engine(rules).evaluate(signal(**change), account(), mark(), NOW)
    assert not d.approved and ReasonCode.INVALID_SIGNAL in d.reason_codes and reason in d.message


def test_rotation_replaces_the_weakest(rules) -> None:
    positions = (
        held("p1", "ETHUSDT", "0.9", entry="3000", mark_="3000", qty="1"),
        held("p2", "SOLUSDT", "0.5", entry="150", mark_="140", qty="10"),
        held("p3", "BNBUSDT", "0.8", entry="600", mark_="600", qty="1"),
    )
    d = engine(rules).evaluate(signal(confidence=D("0.7")), account(positions=positions), mark(), NOW)
    assert d.approved, d.message
    assert d.rotation.action is RotationAction.REPLACE and d.rotation.close_position_id == "p2"
    assert codes(d) == [ReasonCode.ROTATION_REPLACE]
    d = engine(rules).evaluate(signal(confidence=D("0.52")), account(positions=positions), mark(), NOW)
    assert not d.approved and codes(d) == [ReasonCode.MAX_POSITIONS]


def test_learning_account_has_no_cap(rules) -> None:
    positions = tuple(held(f"p{i}", f"X{i}USDT", "0.9", qty="0.001") for i in range(10))
    eng = RiskEngine(rules, [RiskConfig.defaults("LEARNING")])
    acct = AccountState(name="learning", wallet_balance=D("10000"), positions=positions)
    d = eng.evaluate(signal(confidence=D("0.1")), acct, mark(), NOW)
    assert d.approved, d.message and d.rotation.action is RotationAction.NONE


def test_open_notional_cap_cuts_then_refuses(rules) -> None:
    positions = (held("p1", "ETHUSDT", "0.9", entry="3000", mark_="3000", qty="9"),)  # 27,000 of 30,000
    d = engine(rules, max_leverage=20).evaluate(signal(sl_pct=D("0.2")), account(positions=positions), mark(), NOW)
    assert d.approved, d.message
    assert d.order.quantity == D("0.060")  # 3,000 left / 50,000
    assert ReasonCode.QUANTITY_REDUCED in d.reason_codes
    full = (held("p1", "ETHUSDT", "0.9", entry="3000", mark_="3000", qty="10"),)
    d = engine(rules).evaluate(signal(), account(positions=full), mark(), NOW)
    assert not d.approved
    assert codes(d) == [
        ReasonCode.MAX_OPEN_NOTIONAL,
        ReasonCode.QUANTITY_TOO_SMALL,
        ReasonCode.MARKET_LOT_SIZE,
        ReasonCode.MIN_NOTIONAL,
        ReasonCode.QUANTITY_REDUCED,  # adjustments come after refusals
    ]
    assert d.order is None


def test_margin_cut(rules) -> None:
    # 9,000 of 10,000 locked at 1x leaves 1,000: at 20x that carries at most ~19,980 notional.
    positions = (held("p1", "ETHUSDT", "0.9", entry="3000", mark_="3000", qty="3", lev=1),)
    eng = engine(rules, max_open_notional_multiple=None, risk_per_trade_pct=D("5"))
    d = eng.evaluate(signal(sl_pct=D("0.5")), account(positions=positions), mark(), NOW)
    assert d.approved, d.message
    assert d.order.quantity == D("0.396")  # 1,000 / (50,000 / 20 + 0.0005 * 50,000) = 0.396
    assert "free margin" in d.message


def test_max_num_orders(rules) -> None:
    d = engine(rules).evaluate(
        signal("ETHUSDT", entry_price=D("3000")), account(open_orders={"ETHUSDT": 9998}), mark("3000"), NOW
    )
    assert not d.approved and codes(d) == [ReasonCode.MAX_NUM_ORDERS] and d.order is None


def test_decisions_are_deterministic(rules) -> None:
    eng = engine(rules)
    a = eng.evaluate(signal(), account(), mark(), NOW)
    b = eng.evaluate(signal(), account(), mark(), NOW)
    assert a == b and a.decision_id and len(a.order.client_order_id) <= 36


def test_size_order_skips_gates(rules) -> None:
    acct = account(halted=True, positions=(held("p1", "BTCUSDT", "0.5"),))
    sized = engine(rules).size_order(
        signal(entry_price=None, created_time=None), acct, MarketContext(mark_price=D("50000")), NOW
    )
    assert sized.approved, sized.message and sized.order.type is OrderType.MARKET


def test_mode_selects_another_kinds_rules(rules) -> None:
    eng = RiskEngine(rules, [RiskConfig.defaults("PAPER"), RiskConfig.defaults("LEARNING")])
    assert eng.config_for("paper", "LEARNING").max_open_positions == 0
    assert eng.config_for("paper", "LEARNING").account == "paper"
    assert eng.config_for("paper", "LIVE").max_open_positions == 3
    with pytest.raises(ValidationError, match="account"):
        eng.config_for("nobody")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: signal(entry_price=50000.0), "signal.entry_price"),
        (lambda: signal(entry_price=D("-1")), "signal.entry_price"),
        (lambda: signal(sl_pct=float("nan")), "signal.sl_pct"),
        (lambda: signal(created_time=datetime(2025, 1, 1)), "signal.created_time"),
        (lambda: signal(side="UP"), "signal.side"),
        (lambda: MarketContext(mark_price=D("0")), "mark_price"),
        (lambda: MarketContext(win_rate=1.5), "win_rate"),
        (lambda: account(wallet="abc"), "wallet_balance"),
        (lambda: account(open_orders={"X": -1}), "open_orders[X]"),
        (lambda: RiskConfig(max_leverage=200), "max_leverage"),
        (lambda: RiskConfig(sizing_method="MARTINGALE"), "sizing_method"),
        (lambda: RiskConfig(daily_loss_limit_pct=D("0")), "daily_loss_limit_pct"),
    ],
)
def test_invalid_inputs_raise_validation_errors(build, field) -> None:
    with pytest.raises(ValidationError) as err:
        build()
    assert err.value.field == field


def test_evaluate_checks_its_arguments(rules) -> None:
    eng = engine(rules)
    with pytest.raises(ValidationError, match="now"):
        eng.evaluate(signal(), account(), mark(), datetime(2025, 1, 1))
    with pytest.raises(ValidationError, match="market"):
        eng.evaluate(signal(), account(), {"mark_price": "1"}, NOW)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- properties


def _trading(rules) -> list[str]:
    return sorted(s for s, r in rules.items() if r.is_trading and r.brackets and r.tick_size > 0)


def _check_approved(d, rules, cfg: RiskConfig, acct: AccountState, market: MarketContext) -> None:
    """Every approved order passes every filter, fits its bracket and risks no more than asked."""
    o = d.order
    r = rules[o.symbol]
    m = market.mark_price
    assert r.violations(o.side, o.type, o.price, o.quantity, m) == []
    assert r.price_filter_ok(o.stop_loss_price) and r.price_filter_ok(o.take_profit_price)
    entry = d.sizing.entry_price
    if o.side == "BUY":
        assert o.stop_loss_price < entry < o.take_profit_price
    else:
        assert o.take_profit_price < entry < o.stop_loss_price
    equity = acct.equity.total_equity
    value = max(entry, m)
    notional = o.quantity * value
    bracket = r.bracket_for(notional)
    assert bracket is not None
    assert notional / equity <= min(bracket.initial_leverage, cfg.max_leverage)
    assert o.leverage == min(bracket.initial_leverage, cfg.max_leverage)
    loss = o.quantity * per_unit_loss(entry, o.stop_loss_price, cfg.fee)
    assert loss == d.sizing.risk_amount
    if d.sizing.risk_budget is not None:
        assert loss <= d.sizing.risk_budget
    if cfg.max_open_notional_multiple is not None:
        assert acct.equity.position_value + notional <= cfg.max_open_notional_multiple * equity
    assert notional / o.leverage + notional * cfg.fee <= acct.equity.free_margin


@PROPERTY
@given(data=st.data())
def test_every_approved_order_is_accepted_fits_and_risks_no_more(rules, rules_dec, data) -> None:
    table = data.draw(st.sampled_from([rules, rules_dec]))
    symbol = data.draw(st.sampled_from(_trading(table)))
    r = table[symbol]
    # A mark price of 1,000 to 100,000 ticks (plausible: Binance sets the tick near 1e-4..1e-3 of the price).
    ticks = data.draw(st.integers(1000, 100000))
    mark_price = r.min_price + r.tick_size * ticks if r.max_price == 0 else min(r.tick_size * ticks, r.max_price)
    method = data.draw(st.sampled_from(list(SizingMethod)))
    order_type = data.draw(st.sampled_from([OrderType.MARKET, OrderType.LIMIT]))
    cfg = RiskConfig.defaults(
        "PAPER",
        sizing_method=method,
        entry_order_type=order_type,
        max_leverage=data.draw(st.integers(1, 125)),
        risk_per_trade_pct=D(data.draw(st.integers(1, 500))) / 100,
        fixed_fraction=D(data.draw(st.integers(1, 300))) / 100,
        fixed_notional=D(data.draw(st.integers(5, 100000))),
        include_fees=data.draw(st.booleans()),
        max_open_notional_multiple=data.draw(st.sampled_from([None, D("1"), D("3")])),
        kelly_cap=D("0.05"),
    )
    wallet = D(data.draw(st.integers(10, 10**7)))
    side = data.draw(st.sampled_from(list(PositionSide)))
    entry_offset = D(data.draw(st.integers(-300, 300))) / 10000  # limit entries within +-3 % of the mark
    sig = TradeSignal(
        symbol=symbol,
        side=side,
        sl_pct=D(data.draw(st.integers(5, 3000))) / 100,
        tp_pct=D(data.draw(st.integers(5, 5000))) / 100,
        entry_price=mark_price * (1 + entry_offset),
        confidence=D(data.draw(st.integers(0, 100))) / 100,
        predicted_return_pct=D(data.draw(st.integers(11, 500))) / 100,
        created_time=NOW,
        signal_id="p",
    )
    market = MarketContext(
        mark_price=mark_price,
        mark_time=NOW,
        atr=mark_price * D(data.draw(st.integers(1, 500))) / 10000,
        win_rate=D(data.draw(st.integers(30, 80))) / 100,
    )
    other = held("o1", "ETHUSDT" if symbol != "ETHUSDT" else "BTCUSDT", "0.9", qty="0.1", entry="3000", mark_="2990")
    acct = AccountState(name="paper", wallet_balance=wallet, positions=data.draw(st.sampled_from([(), (other,)])))
    d = RiskEngine(table, [cfg]).evaluate(sig, acct, market, NOW)
    event("approved" if d.approved else f"refused: {d.reason_codes[0].value}")
    for code in d.reason_codes:
        if code.is_adjustment:
            event(f"adjusted: {code.value}")
    if d.approved:
        _check_approved(d, table, cfg, acct, market)
    else:
        assert d.reason_codes and any(not c.is_adjustment for c in d.reason_codes)


def test_most_trading_symbols_approve_a_plain_order(rules, rules_dec) -> None:
    """Every TRADING symbol with brackets, at a price of 10,000 ticks: a 1 % risk order on 100,000 equity."""
    for table in (rules, rules_dec):
        approved = 0
        cfg = RiskConfig.defaults("PAPER")
        eng = RiskEngine(table, [cfg])
        symbols = _trading(table)
        for symbol in symbols:
            r = table[symbol]
            price = r.tick_size * 10000
            market = MarketContext(mark_price=price, mark_time=NOW)
            sig = TradeSignal(symbol=symbol, side=PositionSide.LONG, sl_pct=D("2"), tp_pct=D("4"), created_time=NOW)
            acct = account("100000")
            d = eng.evaluate(sig, acct, market, NOW)
            if d.approved:
                approved += 1
                _check_approved(d, table, cfg, acct, market)
        assert approved >= 0.95 * len(symbols), (approved, len(symbols))


def test_decision_dataclasses_are_frozen(rules) -> None:
    d = engine(rules).evaluate(signal(), account(), mark(), NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.approved = False  # type: ignore[misc]
