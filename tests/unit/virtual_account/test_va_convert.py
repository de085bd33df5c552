"""Requests in, values out: bad inputs name their field; decimals leave as plain strings."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from aegis.errors import ConfigError, ValidationError
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.virtual_account import convert
from aegis.virtual_account import settings as va_settings
from aegis.virtual_account.batcher import Batcher


def open_request(**changes):  # type: ignore[no-untyped-def]
    fields = {
        "idempotency_key": "k1",
        "account": "paper",
        "symbol": "btcusdt",
        "side": common_pb.POSITION_SIDE_LONG,
        "quantity": "0.010",
        "leverage": 10,
        "entry_price": "60000.0",
        "stop_loss_price": "59000",
        "take_profit_price": "61000",
    }
    fields.update(changes)
    return va_pb.OpenPositionRequest(**fields)


def test_a_good_open_request_is_parsed() -> None:
    r = convert.open_request_from_pb(
        open_request(features=common_pb.FeatureVector(schema_version="1", names=["a", "b"], values=[1.0, float("nan")]))
    )
    assert (r.symbol, r.quantity, r.entry_price, r.feature_schema_version) == ("BTCUSDT", D("0.010"), D("60000.0"), 1)
    assert r.features is not None and r.features[0] == 1.0 and r.features[1] != r.features[1]
    # The fingerprint ignores the spelling of a decimal but not its value.
    same = convert.open_request_from_pb(open_request(quantity="0.01", entry_price="6E+4"))
    assert same.fingerprint() == convert.open_request_from_pb(open_request()).fingerprint()
    assert convert.open_request_from_pb(open_request(quantity="0.02")).fingerprint() != same.fingerprint()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": ""}, "quantity"),
        ({"quantity": "1,5"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"entry_price": "nan"}, "entry_price"),
        ({"stop_loss_price": "Infinity"}, "stop_loss_price"),
        ({"take_profit_price": "abc"}, "take_profit_price"),
        ({"idempotency_key": " "}, "idempotency_key"),
        ({"idempotency_key": "k\x001"}, "idempotency_key"),  # PostgreSQL text cannot hold NUL
        ({"account": ""}, "account"),
        ({"account": "paper\x00"}, "account"),
        ({"model_version": "m\x00"}, "model_version"),
        ({"decision_id": "\x00"}, "decision_id"),
        ({"symbol": "BTC/USDT"}, "symbol"),
        ({"side": common_pb.POSITION_SIDE_UNSPECIFIED}, "side"),
        ({"leverage": 0}, "leverage"),
        ({"leverage": 126}, "leverage"),
        ({"margin_type": common_pb.MARGIN_TYPE_CROSSED}, "margin_type"),
        ({"signal_id": "not-a-uuid"}, "signal_id"),
        ({"confidence": float("nan")}, "confidence"),
        ({"confidence": 1.5}, "confidence"),
        ({"predicted_return_pct": float("inf")}, "predicted_return_pct"),
        ({"features": common_pb.FeatureVector(schema_version="v1", values=[1.0])}, "features.schema_version"),
    ],
)
def test_bad_open_requests_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        convert.open_request_from_pb(open_request(**changes))
    assert info.value.field == field


def test_bad_price_updates_name_the_update_and_field() -> None:
    good = va_pb.PriceUpdate(symbol="BTCUSDT", last_price="1", mark_price="1")
    good.event_time.FromSeconds(1)
    bad_mark = va_pb.PriceUpdate(symbol="BTCUSDT", last_price="1", mark_price="-1")
    with pytest.raises(ValidationError) as info:
        convert.ticks_from_pb(va_pb.ApplyPriceUpdatesRequest(updates=[good, bad_mark]))
    assert info.value.field == "updates[1].mark_price"
    no_time = va_pb.PriceUpdate(symbol="BTCUSDT", last_price="1", mark_price="1")
    with pytest.raises(ValidationError) as info:
        convert.ticks_from_pb(va_pb.ApplyPriceUpdatesRequest(updates=[no_time]))
    assert info.value.field == "updates[0].event_time"
    inverted = va_pb.PriceUpdate(symbol="BTCUSDT", last_price="5", mark_price="5", high_price="4", low_price="3")
    inverted.event_time.FromSeconds(1)
    with pytest.raises(ValidationError):
        convert.ticks_from_pb(va_pb.ApplyPriceUpdatesRequest(updates=[inverted]))
    (tick,) = convert.ticks_from_pb(va_pb.ApplyPriceUpdatesRequest(updates=[good]))
    assert tick.high_price == tick.low_price == D("1")  # empty high/low = last price


def test_close_request_refuses_price_driven_reasons() -> None:
    request = va_pb.ClosePositionRequest(
        idempotency_key="c", account="paper", position_id="5b0c1a6e-6f7e-4f43-9a57-1f4b8f0d1c2e",
        reason=common_pb.CLOSE_REASON_TP_HIT,
    )  # fmt: skip
    with pytest.raises(ValidationError) as info:
        convert.close_request_from_pb(request)
    assert info.value.field == "reason"
    request.position_id = "7"
    with pytest.raises(ValidationError) as info:
        convert.close_request_from_pb(request)
    assert info.value.field == "position_id"


def test_decimals_leave_in_plain_notation() -> None:
    assert convert.dec_text(D("6E+4")) == "60000"
    assert convert.dec_text(D("0.12000000")) == "0.12"
    assert convert.dec_text(D("-0E-8")) == "0"
    assert convert.dec_text(None) == ""


def test_settings_fail_with_one_line_naming_the_variable() -> None:
    assert va_settings.load({}).taker_fee_rate == D("0.0005")
    assert va_settings.load({"AEGIS_ACCOUNT_STARTING_BALANCE": "2500.5"}).starting_balance == D("2500.5")
    with pytest.raises(ConfigError, match="AEGIS_ACCOUNT_TAKER_FEE_RATE='abc' is not a number"):
        va_settings.load({"AEGIS_ACCOUNT_TAKER_FEE_RATE": "abc"})
    with pytest.raises(ConfigError, match="AEGIS_ACCOUNT_WORKING_TYPE"):
        va_settings.load({"AEGIS_ACCOUNT_WORKING_TYPE": "index"})


async def test_the_batcher_groups_concurrent_requests_and_keeps_their_own_outcomes() -> None:
    seen: list[list[int]] = []

    async def handle(batch):  # type: ignore[no-untyped-def]
        seen.append(list(batch))
        return [ValueError(f"odd {x}") if x % 2 else x * 10 for x in batch]

    batcher: Batcher[int, int] = Batcher(handle, max_delay_s=0.005, max_size=8)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)), return_exceptions=True)
    assert [r if isinstance(r, int) else str(r) for r in results] == [
        i * 10 if i % 2 == 0 else f"odd {i}" for i in range(20)
    ]
    assert [len(b) for b in seen] == [8, 8, 4]
    await batcher.close()


async def test_the_batcher_handles_at_most_in_flight_batches_at_once() -> None:
    running = 0
    most = 0
    order: list[int] = []

    async def handle(batch):  # type: ignore[no-untyped-def]
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        order.append(batch[0])
        running -= 1
        if batch[0] == 8:
            raise RuntimeError("transaction failed")
        return [x * 10 for x in batch]

    for in_flight, expected in ((1, 1), (2, 2)):
        most, order[:] = 0, []
        batcher: Batcher[int, int] = Batcher(handle, max_delay_s=0.001, max_size=4, in_flight=in_flight)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)), return_exceptions=True)
        # each request its own outcome; a failed batch fails its own requests only
        assert [r if isinstance(r, int) else str(r) for r in results] == [
            "transaction failed" if 8 <= i < 12 else i * 10 for i in range(20)
        ]
        assert most == expected and sorted(order) == [0, 4, 8, 12, 16]
        await batcher.close()
    with pytest.raises(ValueError, match="in_flight"):
        Batcher(handle, max_delay_s=0.001, max_size=4, in_flight=0)
