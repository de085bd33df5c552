"""UserStreamState: the real user-data capture reproduces its PnL, fees and wallet; algo updates; ordering."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from aegis.errors import ValidationError
from aegis.exchange.user_stream import (
    AccountState,
    AlgoUpdate,
    Balance,
    Fill,
    ListenKeyExpired,
    OrderUpdate,
    Position,
    TradeLite,
    UserStreamState,
    apply_event,
)

CAPTURE = "binance/zhtut_binance_api/FeatureAccountWebSocket.swift.user_stream_capture.jsonl"
ALGO = "binance/nautilus_trader/tests/integration_tests/adapters/binance/resources/ws_messages"


@pytest.fixture(scope="module")
def capture(shared_data: Path) -> list[dict]:
    lines = (shared_data / CAPTURE).read_text().splitlines()
    return [json.loads(json.loads(line)["raw"]) for line in lines if line.strip()]


def test_the_real_capture_reproduces_realised_pnl_fees_and_wallet_exactly(capture: list[dict]) -> None:
    assert len(capture) == 8
    stream = UserStreamState()
    changes = [change for event in capture for change in stream.apply(event)]
    fills = [c for c in changes if isinstance(c, Fill)]
    assert [(f.side, f.price, f.qty) for f in fills] == [
        ("BUY", Decimal("91739.90"), Decimal("0.002")),
        ("SELL", Decimal("90853.20"), Decimal("0.002")),
    ]
    assert [f.commission for f in fills] == [Decimal("0.09173990"), Decimal("0.09085320")]
    assert sum(f.realized_pnl for f in fills) == Decimal("-1.7734")
    # Independently: (exit - entry) * qty and price * qty * 0.05 % taker, exactly.
    assert (Decimal("90853.20") - Decimal("91739.90")) * Decimal("0.002") == Decimal("-1.7734")
    assert [f.price * f.qty * Decimal("0.0005") for f in fills] == [f.commission for f in fills]
    balances = [c for c in changes if isinstance(c, Balance)]
    assert [b.wallet_balance for b in balances] == [Decimal("642.76097079"), Decimal("640.89671759")]
    # The wallet moved by exactly the realised PnL minus the closing fee.
    assert balances[1].wallet_balance - balances[0].wallet_balance == fills[1].realized_pnl - fills[1].commission
    state = stream.state
    assert state.balances["USDT"].wallet_balance == Decimal("640.89671759")
    position = state.position("BTCUSDT")
    assert position is not None and position.amount == 0 and position.accumulated_realized == Decimal("-1.7734")
    positions = [c for c in changes if isinstance(c, Position)]
    assert positions[0].entry_price == Decimal("91739.9") and positions[0].break_even_price == Decimal("91785.76995")
    # TRADE_LITE is an early notice only: two of them, and still exactly two fills.
    assert sum(isinstance(c, TradeLite) for c in changes) == 2
    assert all(o.status == "FILLED" for o in state.orders.values()) and not state.open_orders()
    assert state.last_event_ms == 1731955175166


def test_a_replayed_fill_counts_once_and_a_late_older_account_update_is_ignored(capture: list[dict]) -> None:
    stream = UserStreamState()
    for event in capture:
        stream.apply(event)
    before = stream.state
    assert stream.apply(capture[7]) == ()  # the closing TRADE update again: no second fill, no older order state
    assert stream.apply(capture[2]) == ()  # the opening ACCOUNT_UPDATE arriving late changes nothing
    assert stream.state.position("BTCUSDT") == before.position("BTCUSDT")
    assert stream.state.balances == before.balances


def test_order_updates_follow_the_order_through_new_and_filled(capture: list[dict]) -> None:
    state = AccountState()
    state, changes = apply_event(state, capture[1])
    (update,) = changes
    assert isinstance(update, OrderUpdate) and update.status == "NEW" and update.is_open
    assert update.client_order_id == "android_MLA5BSDBdSD12WPlEyMh" and update.price == Decimal("91739.90")
    assert [o.order_id for o in state.open_orders()] == [482255808281]
    state, changes = apply_event(state, capture[3])
    assert {type(c) for c in changes} == {Fill, OrderUpdate}
    assert state.orders[482255808281].status == "FILLED" and not state.open_orders()


@pytest.mark.parametrize(
    ("name", "status", "actual", "avg", "qty"),
    [
        ("ws_futures_algo_update_triggering.json", "TRIGGERING", "", "0", "0"),
        ("ws_futures_algo_update_triggered.json", "TRIGGERED", "88937381063", "0", "0"),
        ("ws_futures_algo_update_finished.json", "FINISHED", "88937381063", "0.13856", "38"),
        ("ws_futures_algo_update_finished_canceled.json", "FINISHED", "88937381064", "0", "0"),
    ],
)
def test_real_algo_updates(shared_data: Path, name: str, status: str, actual: str, avg: str, qty: str) -> None:
    frame = json.loads((shared_data / ALGO / name).read_text())
    state, changes = apply_event(AccountState(), frame)  # the wrapped {"stream", "data"} form
    (update,) = changes
    assert isinstance(update, AlgoUpdate)
    assert (update.status, update.actual_order_id, update.avg_price, update.filled_qty) == (
        status,
        actual,
        Decimal(avg),
        Decimal(qty),
    )
    assert update.order_type == "STOP_MARKET" and update.trigger_price == Decimal("0.13855")
    assert state.algo_orders[update.algo_id] == update and not update.is_open


def test_algo_lifecycle_in_order_and_out_of_order(shared_data: Path) -> None:
    frames = [
        json.loads((shared_data / ALGO / f"ws_futures_algo_update_{n}.json").read_text())
        for n in ("triggering", "triggered", "finished")
    ]
    stream = UserStreamState()
    for frame in frames:
        stream.apply(frame)
    assert stream.state.algo_orders[1000000033225453].status == "FINISHED"
    assert stream.apply(frames[0]) == ()  # an older TRIGGERING arriving late does not reopen it


def test_listen_key_expired_unknown_and_malformed_events() -> None:
    state, changes = apply_event(AccountState(), {"e": "listenKeyExpired", "E": 1576653824250, "listenKey": "k"})
    assert changes == (ListenKeyExpired("k", 1576653824250),) and state.listen_key_expired
    state, changes = apply_event(state, {"e": "MARGIN_CALL", "E": 1})
    assert changes == () and state.ignored_events == 1
    bad = {"e": "ACCOUNT_UPDATE", "E": 2, "a": {"B": [{"a": "USDT", "wb": "NaN", "cw": "1", "bc": "0"}], "P": []}}
    with pytest.raises(ValidationError, match="wb"):
        apply_event(state, bad)
    with pytest.raises(ValidationError):
        apply_event(state, {"no": "type"})
