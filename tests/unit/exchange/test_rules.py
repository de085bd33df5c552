"""Tests for aegis.exchange.rules against the two recorded exchangeInfo responses and the 349-market brackets."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.errors import ValidationError
from aegis.exchange.rules import (
    LeverageBracket,
    SymbolRules,
    attach_brackets,
    ccxt_symbol_to_binance,
    load_exchange_info,
    load_leverage_brackets,
)

NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
DEC = "binance/alphadogs_coinbase_python/gateways/binance/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"
HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def nov(shared_data: Path):
    return load_exchange_info(shared_data / NOV)


@pytest.fixture(scope="module")
def dec(shared_data: Path):
    return load_exchange_info(shared_data / DEC)


@pytest.fixture(scope="module")
def tiers(shared_data: Path):
    return load_leverage_brackets(shared_data / TIERS)


@pytest.fixture(scope="module")
def btc(nov) -> SymbolRules:
    return nov["BTCUSDT"]


# --------------------------------------------------------------------------------------------- loading


def test_loads_every_symbol_of_both_files(nov, dec, shared_data: Path) -> None:
    assert len(nov) == 647
    assert len(dec) == 660
    raw = json.loads((shared_data / NOV).read_text())
    assert set(nov) == {s["symbol"] for s in raw["symbols"]}
    statuses = {r.status for r in nov.values()}
    assert statuses == {"TRADING", "PENDING_TRADING", "SETTLING", "DELIVERING", "PRE_SETTLE"}
    assert sum(r.is_trading for r in nov.values()) == 555
    assert "TRADIFI_PERPETUAL" in {r.contract_type for r in dec.values()}


def test_btcusdt_filters_are_exact_decimals(btc: SymbolRules) -> None:
    assert (btc.tick_size, btc.min_price, btc.max_price) == (D("0.10"), D("261.10"), D("809484"))
    assert (btc.step_size, btc.min_qty, btc.max_qty) == (D("0.001"), D("0.001"), D("1000"))
    assert (btc.market_step_size, btc.market_min_qty, btc.market_max_qty) == (D("0.001"), D("0.001"), D("1000"))
    assert btc.min_notional == D("100")
    assert (btc.multiplier_up, btc.multiplier_down, btc.multiplier_decimal) == (D("1.0500"), D("0.9500"), 4)
    assert (btc.price_precision, btc.quantity_precision) == (2, 3)
    assert (btc.quote_asset, btc.contract_type, btc.max_num_orders, btc.max_num_algo_orders) == (
        "USDT",
        "PERPETUAL",
        10000,
        10,
    )
    assert all(isinstance(getattr(btc, f), D) for f in ("tick_size", "step_size", "min_notional"))


def test_december_file_has_no_algo_order_filter(dec) -> None:
    assert all(r.max_num_algo_orders is None for r in dec.values())


def test_market_lot_size_is_its_own_filter(nov) -> None:
    atom = nov["ATOMUSDT"]
    assert atom.max_qty == D("10000") and atom.market_max_qty == D("100000")
    assert atom.violations("BUY", "LIMIT", "5", "20000", "5") == ["LOT_SIZE"]
    assert atom.violations("BUY", "MARKET", None, "20000", "5") == []


def test_load_accepts_a_parsed_object_and_bytes(shared_data: Path) -> None:
    raw = (shared_data / NOV).read_bytes()
    assert load_exchange_info(raw)["ETHUSDT"] == load_exchange_info(json.loads(raw))["ETHUSDT"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "exchange_info"),
        ({"symbols": [{"symbol": "X", "filters": []}]}, "exchange_info.symbols[X].filters"),
        (
            {
                "symbols": [
                    {
                        "symbol": "X",
                        "filters": [
                            {"filterType": "PRICE_FILTER", "tickSize": "abc"},
                            {"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1", "maxQty": "10"},
                        ],
                    }
                ]
            },
            "exchange_info.symbols[X].PRICE_FILTER.tickSize",
        ),
    ],
)
def test_malformed_exchange_info_names_the_field(payload, field) -> None:
    with pytest.raises(ValidationError) as err:
        load_exchange_info(payload)
    assert err.value.field == field


# --------------------------------------------------------------------------------------------- rounding


def test_round_qty_down_to_the_step(btc: SymbolRules) -> None:
    assert btc.round_qty(D("0.0429")) == D("0.042")
    assert btc.round_qty(D("0.042")) == D("0.042")  # exact multiple stays
    assert btc.round_qty(D("1.9999999")) == D("1.999")
    assert btc.round_qty(D("0.0009")) == D("0.000")  # below minQty: 0, which violations() reports
    assert btc.round_qty("5") == D("5")


def test_round_qty_is_anchored_at_min_qty(nov) -> None:
    # OPENUSDT: minQty 1, stepSize 0.0000001 — the grid is 1 + n * 1e-7.
    open_ = nov["OPENUSDT"]
    assert open_.round_qty(D("1.23456789")) == D("1.2345678")
    synthetic = SymbolRules.from_binance(
        {
            "symbol": "SYN",
            "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.01", "minPrice": "0.01", "maxPrice": "1000"},
                {"filterType": "LOT_SIZE", "stepSize": "0.5", "minQty": "0.3", "maxQty": "100"},
            ],
        }
    )  # synthetic: a minQty off the step grid, to show the anchor
    assert synthetic.round_qty(D("1.0")) == D("0.8")
    assert synthetic.violations("BUY", "LIMIT", "10", "0.8", "10") == []
    assert synthetic.violations("BUY", "LIMIT", "10", "1.0", "10") == ["LOT_SIZE"]
    assert synthetic.round_qty(D("0.1")) == D("0")  # never negative


def test_round_qty_market_uses_market_lot_size(nov) -> None:
    atom = nov["ATOMUSDT"]
    assert atom.round_qty(D("12345.678"), market=True) == D("12345.67")


def test_round_price_buy_down_sell_up(btc: SymbolRules) -> None:
    assert btc.round_price(D("50000.07"), "BUY") == D("50000.00")
    assert btc.round_price(D("50000.07"), "SELL") == D("50000.10")
    assert btc.round_price(D("50000.1"), "BUY") == D("50000.1")  # on the grid: unchanged both ways
    assert btc.round_price(D("50000.1"), "SELL") == D("50000.1")
    assert btc.price_down(D("49500.0495")) == D("49500.00")
    assert btc.price_up(D("49500.0495")) == D("49500.10")


def test_tick_size_zero_disables_price_rounding(nov) -> None:
    open_ = nov["OPENUSDT"]  # PENDING_TRADING with tickSize 0 and minPrice 0 in the recording
    assert open_.tick_size == 0
    assert open_.round_price(D("0.123456789"), "BUY") == D("0.123456789")
    assert open_.violations("BUY", "LIMIT", "0.123456789", "100", "0.12") == []


def test_round_price_rejects_bad_input(btc: SymbolRules) -> None:
    with pytest.raises(ValidationError, match="side"):
        btc.round_price(D("1"), "LONG")
    with pytest.raises(ValidationError, match="price"):
        btc.round_price(D("-1"), "BUY")
    with pytest.raises(ValidationError, match="float"):
        btc.round_price(50000.0, "BUY")
    with pytest.raises(ValidationError, match="finite"):
        btc.round_qty(D("NaN"))


@HYPOTHESIS
@given(data=st.data())
def test_rounding_properties_on_real_symbols(nov, data) -> None:
    symbols = sorted(s for s, r in nov.items() if r.step_size > 0 and r.tick_size > 0)
    rules = nov[data.draw(st.sampled_from(symbols))]
    market = data.draw(st.booleans())
    step = rules.market_step_size if market else rules.step_size
    qty = data.draw(st.decimals(min_value=0, max_value=rules.max_qty * 2, places=10))
    rounded = rules.round_qty(qty, market=market)
    assert rounded <= qty
    assert rounded > qty - step or rounded == 0
    if rounded >= (rules.market_min_qty if market else rules.min_qty) and rounded > 0:
        assert rules.lot_ok(rounded, market=market) or rounded > (rules.market_max_qty if market else rules.max_qty)
    price = data.draw(st.decimals(min_value=rules.min_price, max_value=rules.max_price, places=10))
    if price <= 0:
        return
    down, up = rules.round_price(price, "BUY"), rules.round_price(price, "SELL")
    assert down <= price <= up
    assert up - down in (0, rules.tick_size)
    assert rules.price_filter_ok(up) or up > rules.max_price
    if down >= rules.min_price:
        assert rules.price_filter_ok(down)


# --------------------------------------------------------------------------------------------- violations


def test_a_clean_order_has_no_violations(btc: SymbolRules) -> None:
    assert btc.violations("BUY", "LIMIT", "50000.0", "0.010", "50000") == []
    assert btc.violations("SELL", "MARKET", None, "0.002", "50000") == []


def test_each_filter_is_named(btc: SymbolRules) -> None:
    mark = D("50000")
    assert btc.violations("BUY", "LIMIT", "50000.05", "0.01", mark) == ["PRICE_FILTER"]  # off tick
    assert btc.violations("BUY", "LIMIT", "261.00", "1", D("270")) == ["PRICE_FILTER"]  # below minPrice
    assert btc.violations("BUY", "LIMIT", "50000", "0.0105", mark) == ["LOT_SIZE"]  # off step
    assert btc.violations("BUY", "LIMIT", "50000", "1001", mark) == ["LOT_SIZE"]  # above maxQty
    assert btc.violations("BUY", "MARKET", None, "0.0005", mark) == ["MARKET_LOT_SIZE", "MIN_NOTIONAL"]
    assert btc.violations("BUY", "LIMIT", "50000", "0.001", mark) == ["MIN_NOTIONAL"]  # 50 < 100
    assert btc.violations("BUY", "LIMIT", "52500.1", "0.01", mark) == ["PERCENT_PRICE"]  # > mark * 1.05
    assert btc.violations("SELL", "LIMIT", "47499.9", "0.01", mark) == ["PERCENT_PRICE"]  # < mark * 0.95
    assert btc.violations("BUY", "LIMIT", "0", "0", mark) == ["PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL"]


def test_percent_price_is_one_sided_against_the_mark(btc: SymbolRules) -> None:
    mark = D("50000")
    assert btc.violations("BUY", "LIMIT", "52500.0", "0.01", mark) == []  # exactly mark * 1.05
    assert btc.violations("BUY", "LIMIT", "40000.0", "0.01", mark) == []  # a buy has no floor
    assert btc.violations("SELL", "LIMIT", "47500.0", "0.01", mark) == []  # exactly mark * 0.95
    assert btc.violations("SELL", "LIMIT", "60000.0", "0.01", mark) == []  # a sell has no ceiling


def test_min_notional_uses_the_mark_for_market_orders_and_waives_reduce_only(btc: SymbolRules) -> None:
    assert btc.violations("BUY", "MARKET", None, "0.002", "49999.9") == ["MIN_NOTIONAL"]
    assert btc.violations("BUY", "MARKET", None, "0.002", "50000") == []  # exactly 100
    assert btc.violations("SELL", "MARKET", None, "0.001", "50000", reduce_only=True) == []
    assert btc.violations("SELL", "STOP_MARKET", None, "0.001", "50000", reduce_only=True) == []
    # A limit order is valued at its own price, not the mark.
    assert btc.violations("BUY", "LIMIT", "49000.0", "0.002", "51000") == ["MIN_NOTIONAL"]


def test_tusdt_min_qty_zero_still_refuses_a_zero_quantity(nov) -> None:
    t = nov["TUSDT"]
    assert t.min_qty == 0
    assert t.violations("BUY", "MARKET", None, "0", "0.01") == ["MARKET_LOT_SIZE", "MIN_NOTIONAL"]
    assert t.violations("BUY", "MARKET", None, "500", "0.01") == []


def test_violations_validates_its_arguments(btc: SymbolRules) -> None:
    with pytest.raises(ValidationError, match="order_type"):
        btc.violations("BUY", "ICEBERG", "1", "1", "1")
    with pytest.raises(ValidationError, match="price"):
        btc.violations("BUY", "LIMIT", None, "1", "1")
    with pytest.raises(ValidationError, match="mark_price"):
        btc.violations("BUY", "MARKET", None, "1", "0")


# --------------------------------------------------------------------------------------------- brackets


def test_leverage_tiers_file_has_349_markets(tiers) -> None:
    assert len(tiers) == 349
    btc = tiers["BTCUSDT"]
    assert btc[0] == LeverageBracket(1, 125, D("0"), D("50000"), D("0.004"), D("0.0"))
    assert [b.initial_leverage for b in btc] == [125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1]
    assert "BTCUSDT_250328" in tiers and "ETHBTC" in tiers and "1000BONKUSDC" in tiers
    for brackets in tiers.values():
        assert brackets[0].notional_floor == 0
        assert all(a.notional_cap == b.notional_floor for a, b in itertools.pairwise(brackets))


def test_raw_leverage_bracket_shape_matches_the_wrapper(shared_data: Path, tiers) -> None:
    wrapper = json.loads((shared_data / TIERS).read_text())
    raw = [
        {"symbol": ccxt_symbol_to_binance(m), "brackets": [t["info"] for t in ts]}
        for m, ts in wrapper.items()  # the raw /fapi/v1/leverageBracket shape, rebuilt from the `info` objects
    ]
    assert dict(load_leverage_brackets(raw)) == dict(tiers)
    single = load_leverage_brackets(raw[0])
    assert list(single) == [raw[0]["symbol"]]


def test_ccxt_symbols_map_to_binance() -> None:
    assert ccxt_symbol_to_binance("BTC/USDT:USDT") == "BTCUSDT"
    assert ccxt_symbol_to_binance("BTC/USDT:USDT-250328") == "BTCUSDT_250328"
    assert ccxt_symbol_to_binance("ETH/BTC:BTC") == "ETHBTC"
    with pytest.raises(ValidationError):
        ccxt_symbol_to_binance("BTCUSDT")


def test_inconsistent_brackets_are_refused() -> None:
    def bracket(n, lev, lo, hi):
        return {
            "bracket": n,
            "initialLeverage": lev,
            "notionalFloor": lo,
            "notionalCap": hi,
            "maintMarginRatio": "0.01",
        }

    with pytest.raises(ValidationError, match="starts at"):
        load_leverage_brackets([{"symbol": "X", "brackets": [bracket(1, 20, "0", "10"), bracket(2, 10, "11", "20")]}])
    with pytest.raises(ValidationError, match="more leverage"):
        load_leverage_brackets([{"symbol": "X", "brackets": [bracket(1, 20, "0", "10"), bracket(2, 25, "10", "20")]}])
    with pytest.raises(ValidationError, match="initialLeverage"):
        load_leverage_brackets([{"symbol": "X", "brackets": [bracket(1, 0, "0", "10")]}])


def test_bracket_lookup_is_floor_inclusive_cap_exclusive(nov, tiers) -> None:
    rules = attach_brackets(nov, tiers)
    btc = rules["BTCUSDT"]
    assert btc.bracket_for(D("0")).bracket == 1
    assert btc.bracket_for(D("49999.99")).bracket == 1
    assert btc.bracket_for(D("50000")).bracket == 2  # at the cap, the next (lower-leverage) tier
    assert btc.bracket_for(D("1800000000")) is None  # past the last cap
    known = [s for s in rules if rules[s].brackets]
    assert len(known) == 338  # 11 tier markets are gone from the 2025-11 exchangeInfo
    assert not rules["OPENUSDT"].brackets
