"""The arithmetic of the virtual accounts, with the worked numbers of docs/accounts.md."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from pathlib import Path

import pytest

from aegis.exchange.rules import load_leverage_brackets
from aegis.risk.sizing import PositionSide
from aegis.virtual_account import domain as d
from aegis.virtual_account.domain import CloseReason, Tick, WorkingType

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def tick(last: str, mark: str | None = None, high: str | None = None, low: str | None = None) -> Tick:
    return Tick("BTCUSDT", D(last), D(mark or last), D(high or last), D(low or last), T0)


# --------------------------------------------------------------------------------------------- fees, margin


def test_market_entry_fill_and_taker_fee_worked_example() -> None:
    fill = d.slipped(D("60000"), True, D("0.0001"))  # a buy pays the slippage
    assert fill == D("60006")
    assert d.fee(D("0.5"), fill, D("0.0005")) == D("15.00150000")
    assert d.slipped(D("60000"), False, D("0.0001")) == D("59994")  # a sell receives less
    assert d.fee(D("0.5"), D("60000"), D("0.0002")) == D("6.00000000")  # maker


def test_initial_margin_is_entry_notional_over_leverage_to_8_decimals() -> None:
    assert d.initial_margin(D("0.5"), D("60006"), 10) == D("3000.30000000")
    assert d.initial_margin(D("0.001"), D("61234.57"), 7) == D("8.74779571")


# --------------------------------------------------------------------------------------------- funding


def test_funding_long_pays_short_receives_when_the_rate_is_positive() -> None:
    # 0.5 BTC, mark 60,000, rate 0.01 %: notional 30,000 * 0.0001 = 3 USDT
    assert d.funding_amount(LONG, D("0.5"), D("60000"), D("0.0001")) == D("-3.00000000")
    assert d.funding_amount(SHORT, D("0.5"), D("60000"), D("0.0001")) == D("3.00000000")
    assert d.funding_amount(LONG, D("0.5"), D("60000"), D("-0.0002")) == D("6.00000000")


def test_funding_due_at_or_after_the_funding_time() -> None:
    assert d.funding_due(T0, T0) and d.funding_due(T0, T0 + dt.timedelta(seconds=1))
    assert not d.funding_due(T0, T0 - dt.timedelta(milliseconds=1)) and not d.funding_due(None, T0)


# --------------------------------------------------------------------------------------------- liquidation


def binance_liquidation_price(side: int, qty: D, entry: D, wallet: D, mmr: D, cum: D) -> D:
    """Binance's published formula, one-way mode, isolated: TMM1 = UPNL1 = 0, WB = the isolated margin."""
    tmm1 = upnl1 = D(0)
    return (wallet - tmm1 + upnl1 + cum - side * qty * entry) / (qty * mmr - side * qty)


@pytest.fixture(scope="module")
def btc_brackets(shared_data: Path):  # type: ignore[no-untyped-def]
    tiers = shared_data / "binance" / "freqtrade" / "freqtrade" / "exchange" / "binance_leverage_tiers.json"
    return load_leverage_brackets(tiers)["BTCUSDT"]


def test_liquidation_price_matches_binance_formula_on_the_real_btcusdt_bracket(btc_brackets) -> None:  # type: ignore[no-untyped-def]
    qty, entry, leverage = D("2"), D("60000"), 20
    notional = qty * entry  # 120,000 USDT: BTCUSDT tier 2 (50,000-600,000): MMR 0.5 %, cum 50
    tier = next(b for b in btc_brackets if b.contains(notional))
    assert (tier.bracket, tier.maint_margin_ratio, tier.cum, tier.initial_leverage) == (2, D("0.005"), D("50"), 100)
    margin = d.initial_margin(qty, entry, leverage)
    assert margin == D("6000")

    long_lp = d.liquidation_price(LONG, qty, entry, margin, tier.maint_margin_ratio, tier.cum)
    short_lp = d.liquidation_price(SHORT, qty, entry, margin, tier.maint_margin_ratio, tier.cum)
    assert long_lp == D("57261.30653267")  # (120,000 - 6,000 - 50) / (2 * 0.995), rounded up
    assert short_lp == D("62711.44278606")  # (120,000 + 6,000 + 50) / (2 * 1.005), rounded down
    exact_long = binance_liquidation_price(1, qty, entry, margin, tier.maint_margin_ratio, tier.cum)
    exact_short = binance_liquidation_price(-1, qty, entry, margin, tier.maint_margin_ratio, tier.cum)
    assert abs(long_lp - exact_long) < D("1e-8") and long_lp >= exact_long
    assert abs(short_lp - exact_short) < D("1e-8") and short_lp <= exact_short

    # At the liquidation price what is left of the margin is exactly the maintenance margin of that notional.
    left = margin + d.unrealised_pnl(LONG, qty, entry, exact_long)
    maint = d.maintenance_margin(qty * exact_long, tier.maint_margin_ratio, tier.cum)
    assert abs(left - maint) < D("1e-18")


def test_liquidation_price_on_several_real_tiers_agrees_with_the_formula(btc_brackets) -> None:  # type: ignore[no-untyped-def]
    for qty, leverage in ((D("0.1"), 50), (D("15"), 50), (D("60"), 25), (D("250"), 20)):
        entry = D("61234.5")
        tier = next(b for b in btc_brackets if b.contains(qty * entry))
        assert leverage <= tier.initial_leverage
        margin = d.initial_margin(qty, entry, leverage)
        for side, sign in ((LONG, 1), (SHORT, -1)):
            got = d.liquidation_price(side, qty, entry, margin, tier.maint_margin_ratio, tier.cum)
            want = binance_liquidation_price(sign, qty, entry, margin, tier.maint_margin_ratio, tier.cum)
            assert got is not None and abs(got - want) < D("1e-8")


def test_a_one_x_long_cannot_be_liquidated() -> None:
    assert d.liquidation_price(LONG, D("1"), D("100"), D("100"), D("0.004"), D("0")) is None


# --------------------------------------------------------------------------------------------- ROI, reward


@pytest.mark.parametrize(
    ("roi", "score"),
    [
        ("0.000001", 1), ("2", 1), ("2.000001", 3), ("5", 3), ("5.1", 5), ("10", 5), ("10.01", 8), ("250", 8),
        ("0", 0),
        ("-0.01", -1), ("-2", -1), ("-2.01", -3), ("-5", -3), ("-5.5", -7), ("-10", -7), ("-10.0001", -10),
        ("-100", -10),
    ],
)  # fmt: skip
def test_reward_buckets_on_roi_percent_of_margin(roi: str, score: int) -> None:
    assert d.reward_score(D(roi)) == score


def test_round_trip_worked_example() -> None:
    # Long 0.5 BTC at 60,006 (market, taker fee 15.0015), 10x: margin 3,000.30; TP at 61,200 fills at 61,193.88
    # after 0.01 % slippage; exit fee 0.5 * 61,193.88 * 0.0005 = 15.29847; funding paid 3.
    exit_price = d.slipped(D("61200"), False, D("0.0001"))
    assert exit_price == D("61193.88")
    exit_fee = d.fee(D("0.5"), exit_price, D("0.0005"))
    rt = d.round_trip(LONG, D("0.5"), D("60006"), D("3000.30"), D("15.0015"), D("-3"), exit_price, exit_fee)
    assert rt.gross_pnl == D("593.94000000")
    assert rt.fees == D("30.29997000")
    assert rt.net_pnl == D("560.64003000")  # 593.94 - 30.29997 - 3
    assert rt.roi_margin_pct == D("18.686132")  # 560.64003 / 3000.30 * 100 = 18.6861323…
    assert rt.roi_price_pct == D("1.979602")  # (61193.88 - 60006) / 60006 * 100
    assert rt.return_pct == D("1.868613")  # on the entry notional: ROI on margin / leverage
    assert rt.reward == 8


def test_a_liquidation_loses_the_whole_margin() -> None:
    rt = d.round_trip(LONG, D("2"), D("60000"), D("6000"), D("60"), D("0"), D("57261.30653267"), D("0"),
                      liquidated=True)  # fmt: skip
    assert rt.gross_pnl == D("-6000") and rt.net_pnl == D("-6060") and rt.reward == -10


# --------------------------------------------------------------------------------------------- triggers


def test_stop_touched_in_the_range_fills_at_the_level_plus_slippage() -> None:
    hit = d.check_exit(LONG, D("59000"), D("61000"), None, tick("59100", high="59500", low="58990"),
                       WorkingType.CONTRACT_PRICE, D("0"))  # fmt: skip
    assert hit == d.Exit(CloseReason.SL_HIT, D("59000"), gap=False)
    hit = d.check_exit(LONG, D("59000"), None, None, tick("59100", high="59500", low="58990"),
                       WorkingType.CONTRACT_PRICE, D("0.0001"))  # fmt: skip
    assert hit is not None and hit.price == D("58994.1")


def test_a_jump_past_the_stop_fills_at_the_gap_price_not_the_level() -> None:
    # Contract price: the whole update is below the stop: the first price we can know beyond it is the high.
    hit = d.check_exit(LONG, D("59000"), None, None, tick("58500", high="58700", low="58400"),
                       WorkingType.CONTRACT_PRICE, D("0"))  # fmt: skip
    assert hit == d.Exit(CloseReason.SL_HIT, D("58700"), gap=True)
    # Mark price: the mark crossed the stop; the market (last price) is already past it.
    hit = d.check_exit(SHORT, D("61000"), None, None, tick("61500", mark="61400"), WorkingType.MARK_PRICE, D("0"))
    assert hit == d.Exit(CloseReason.SL_HIT, D("61500"), gap=True)


def test_a_jump_past_the_take_profit_fills_at_the_level() -> None:
    hit = d.check_exit(LONG, None, D("61000"), None, tick("62000", high="62100", low="61900"),
                       WorkingType.CONTRACT_PRICE, D("0"))  # fmt: skip
    assert hit == d.Exit(CloseReason.TP_HIT, D("61000"), gap=False)


def test_mark_price_trigger_ignores_a_wick_of_the_last_price() -> None:
    wick = tick("60000", mark="60010", high="60100", low="58500")
    assert d.check_exit(LONG, D("59000"), None, None, wick, WorkingType.MARK_PRICE, D("0")) is None
    assert d.check_exit(LONG, D("59000"), None, None, wick, WorkingType.CONTRACT_PRICE, D("0")) is not None


def test_mark_trigger_fills_at_the_worse_of_level_and_market() -> None:
    # The mark reached the take-profit but the last price has not: a market order gets the last price.
    hit = d.check_exit(LONG, None, D("61000"), None, tick("60950", mark="61005"), WorkingType.MARK_PRICE, D("0"))
    assert hit == d.Exit(CloseReason.TP_HIT, D("60950"), gap=True)


def test_stop_before_take_profit_when_one_update_touches_both() -> None:
    hit = d.check_exit(LONG, D("59000"), D("61000"), None, tick("60000", high="61500", low="58500"),
                       WorkingType.CONTRACT_PRICE, D("0"))  # fmt: skip
    assert hit is not None and hit.reason is CloseReason.SL_HIT


def test_liquidation_unless_the_stop_fills_before_the_liquidation_price() -> None:
    liq = D("57261.30653267")
    crash = tick("56000", mark="57000", high="56500", low="55000")
    hit = d.check_exit(LONG, D("59000"), None, liq, crash, WorkingType.CONTRACT_PRICE, D("0"))
    assert hit == d.Exit(CloseReason.LIQUIDATED, liq)  # the gap fill 56,500 is past the liquidation price
    slide = tick("57500", mark="57200", high="59100", low="57100")
    hit = d.check_exit(LONG, D("59000"), None, liq, slide, WorkingType.CONTRACT_PRICE, D("0"))
    assert hit == d.Exit(CloseReason.SL_HIT, D("59000"))  # the stop traded at its level first
    assert d.check_exit(LONG, None, None, liq, crash, WorkingType.MARK_PRICE, D("0")) == d.Exit(
        CloseReason.LIQUIDATED, liq
    )
