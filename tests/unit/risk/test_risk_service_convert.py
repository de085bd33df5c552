"""Tests for the risk service's pure parts: message translation, settings → account configs, state joining."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from google.protobuf import timestamp_pb2

from aegis import config
from aegis.errors import ValidationError
from aegis.risk import convert
from aegis.risk.accounts import AccountSnapshot, ProtectionsHistory, risk_configs, utc_midnight
from aegis.risk.desk import account_state
from aegis.risk.sizing import AccountKind, SizingMethod
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import risk_pb2 as risk_pb

NOW = dt.datetime(2025, 11, 26, 4, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [(D("1E+2"), "100"), (D("0.00000010"), "0.0000001"), (D("0E-8"), "0"), (D("-0.50"), "-0.5"), (None, "")],
)
def test_decimals_are_written_plain(value: D | None, text: str) -> None:
    assert convert.dec_text(value) == text


def test_a_mark_price_without_time_is_current_and_with_time_keeps_it() -> None:
    request = risk_pb.EvaluateSignalRequest(mark_price="50000.10")
    assert convert.market_from_pb(request, NOW).mark_time == NOW
    earlier = timestamp_pb2.Timestamp()
    earlier.FromDatetime(NOW - dt.timedelta(minutes=2))
    request.mark_price_time.CopyFrom(earlier)
    market = convert.market_from_pb(request, NOW)
    assert market.mark_price == D("50000.10") and market.mark_time == NOW - dt.timedelta(minutes=2)
    assert convert.market_from_pb(risk_pb.EvaluateSignalRequest(), NOW).mark_price is None


def test_signal_fields_map_and_zero_predicted_return_means_unset() -> None:
    request = risk_pb.EvaluateSignalRequest(
        signal=common_pb.Signal(symbol=" ethusdt ", side=common_pb.POSITION_SIDE_SHORT, sl_pct=1.5, tp_pct=3)
    )
    sig = convert.signal_from_pb(request)
    assert (sig.symbol, sig.side.value, sig.sl_pct, sig.tp_pct) == ("ETHUSDT", "SHORT", D("1.5"), D("3"))
    assert sig.predicted_return_pct is None and sig.entry_price is None and sig.created_time is None
    request.signal.predicted_return_pct = 0.25
    assert convert.signal_from_pb(request).predicted_return_pct == D("0.25")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(risk_pb.SIZING_METHOD_UNSPECIFIED, None), (risk_pb.SIZING_METHOD_FIXED_RISK, SizingMethod.FIXED_RISK)],
)
def test_sizing_methods_map_by_name(value: int, expected: SizingMethod | None) -> None:
    assert convert.method_from_pb(value) is expected
    proto_names = {n.removeprefix("SIZING_METHOD_") for n in risk_pb.SizingMethod.DESCRIPTOR.values_by_name}
    assert {m.value for m in SizingMethod} == proto_names - {"UNSPECIFIED"}


def test_an_unknown_enum_value_names_its_field() -> None:
    with pytest.raises(ValidationError, match="^method: "):
        convert.method_from_pb(42)
    with pytest.raises(ValidationError, match="^mode: "):
        convert.kind_from_pb(7)
    assert convert.kind_from_pb(common_pb.ACCOUNT_KIND_LIVE) is AccountKind.LIVE


def test_settings_become_the_three_account_configs() -> None:
    settings = config.load(
        {
            "AEGIS_RISK_SIZING_METHOD": "kelly",
            "AEGIS_RISK_LEARNING_SIZING_METHOD": "fixed_fraction",
            "AEGIS_RISK_LEARNING_FIXED_FRACTION": "0.05",
            "AEGIS_RISK_DAILY_LOSS_LIMIT_PCT": "0",
            "AEGIS_RISK_MAX_SIGNAL_AGE_S": "0",
            "AEGIS_RISK_MAX_OPEN_NOTIONAL_MULTIPLE": "0",
            "AEGIS_RISK_FEE_RATE": "0.0004",
            "AEGIS_RISK_MARGIN_TYPE": "crossed",
        }
    )
    learning, paper, live = risk_configs(settings.risk)
    assert (learning.account, paper.account, live.account) == ("learning", "paper", "live")
    assert learning.sizing_method is SizingMethod.FIXED_FRACTION and learning.fixed_fraction == D("0.05")
    assert learning.max_open_positions == 0 and not learning.rotation_enabled
    assert paper.sizing_method is live.sizing_method is SizingMethod.KELLY and paper.max_open_positions == 3
    assert paper.daily_loss_limit_pct is None and paper.max_signal_age is None
    assert paper.max_open_notional_multiple is None and paper.fee_rate == D("0.0004")
    assert paper.max_drawdown_pct == D("20") and paper.margin_type.value == "CROSSED"
    assert paper.cooldown_after_loss == dt.timedelta(minutes=30)
    pb = convert.config_to_pb(paper)
    assert pb.daily_loss_limit_pct == 0 and not pb.HasField("max_signal_age") and pb.fee_rate == 0.0004


def test_the_day_starts_from_the_wallet_less_todays_ledger() -> None:
    money = AccountSnapshot(D("9500"))
    known = ProtectionsHistory(known=True, peak_equity=D("12000"), ledger_today=D("-2500"))
    state = account_state("paper", money, known)
    assert state.start_of_day_equity == D("12000") and state.peak_equity == D("12000")
    unknown = account_state("paper", money, ProtectionsHistory(known=False))
    assert unknown.start_of_day_equity is None and unknown.peak_equity is None and not unknown.halted
    assert utc_midnight(dt.datetime(2025, 11, 26, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5)))) == (
        dt.datetime(2025, 11, 27, tzinfo=dt.UTC)
    )
