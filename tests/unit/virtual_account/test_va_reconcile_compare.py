"""The pure parts of the live mirror and reconciliation: the comparison, close reasons, client ids, the report."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from aegis.brain.live import client_id
from aegis.exchange.trading import AlgoOrder, Order, PositionRisk
from aegis.exchange.user_stream import OrderUpdate
from aegis.risk.sizing import PositionSide
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.virtual_account.book import Position
from aegis.virtual_account.domain import CloseReason, WorkingType
from aegis.virtual_account.live import close_reason_of
from aegis.virtual_account.reconcile import Action, DatabaseView, ExchangeView, Kind, Report, compare, report_to_pb

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
D = Decimal


def db_position(symbol: str, side: PositionSide, qty: str, entry: str) -> Position:
    return Position(
        uuid.uuid4(), "live", "k", symbol, side, "OPEN", D(qty), D(entry), 10, D(qty) * D(entry) / 10, None, None, None,
        WorkingType.MARK_PRICE, None, None, D(0), D(0), NOW, None, None, None, None, "CROSSED", D(0), D(0), None,
        None, None, None, None, None, None, None, None, NOW,
    )  # fmt: skip


def stop(symbol: str, algo_id: int = 1) -> AlgoOrder:
    return AlgoOrder(algo_id, f"aes-{algo_id}", symbol, "SELL", "STOP_MARKET", "NEW", trigger_price=D("1"))


def test_in_sync_when_positions_orders_and_wallet_agree() -> None:
    ex = ExchangeView(1, (PositionRisk("BTCUSDT", D("0.01"), D("60000")),), (), (stop("BTCUSDT"),), D("100"))
    db = DatabaseView({"BTCUSDT": db_position("BTCUSDT", PositionSide.LONG, "0.01", "60000")}, {(True, 1): "aes-1"},
                      D("100"))  # fmt: skip
    assert compare(ex, db) == []


def test_every_kind_of_difference_is_found_with_the_repair_it_gets() -> None:
    ex = ExchangeView(
        1,
        (PositionRisk("ETHUSDT", D("-0.5"), D("2500")), PositionRisk("BTCUSDT", D("0.02"), D("60100")),
         PositionRisk("SOLUSDT", D("1"), D("150"))),
        (Order(7, "BTCUSDT", "NEW", "manual", "BUY", "LIMIT", D("0.01")),),
        (stop("ETHUSDT", 1), stop("SOLUSDT", 2)),
        D("100"),
    )  # fmt: skip
    db = DatabaseView(
        {"BTCUSDT": db_position("BTCUSDT", PositionSide.LONG, "0.01", "60000"),
         "XRPUSDT": db_position("XRPUSDT", PositionSide.SHORT, "10", "0.5"),
         "SOLUSDT": db_position("SOLUSDT", PositionSide.SHORT, "1", "150")},
        {(True, 1): "aes-1", (True, 2): "aes-2", (True, 99): "gone"},
        D("100"),
    )  # fmt: skip
    found = {(x.kind, x.symbol or x.order_id): x.action for x in compare(ex, db)}
    assert found == {
        (Kind.MISSING_IN_DATABASE, "ETHUSDT"): Action.UPDATED_DATABASE,
        (Kind.QUANTITY_MISMATCH, "BTCUSDT"): Action.UPDATED_DATABASE,
        (Kind.ENTRY_PRICE_MISMATCH, "BTCUSDT"): Action.UPDATED_DATABASE,
        (Kind.MISSING_PROTECTIVE_ORDER, "BTCUSDT"): Action.NEEDS_REVIEW,
        (Kind.MISSING_ON_EXCHANGE, "XRPUSDT"): Action.CLOSED_IN_DATABASE,
        # a side that differs: the database's short is closed and the exchange's long inserted
        (Kind.MISSING_ON_EXCHANGE, "SOLUSDT"): Action.CLOSED_IN_DATABASE,
        (Kind.MISSING_IN_DATABASE, "SOLUSDT"): Action.UPDATED_DATABASE,
        (Kind.ORDER_MISSING_IN_DATABASE, "BTCUSDT"): Action.UPDATED_DATABASE,
        (Kind.ORDER_MISSING_ON_EXCHANGE, "99"): Action.UPDATED_DATABASE,
    }


def test_close_reasons_come_from_the_order_that_closed_the_position() -> None:
    def update(kind: str, client: str = "x") -> OrderUpdate:
        return OrderUpdate("BTCUSDT", 1, client, "SELL", "MARKET", kind, "GTC", "FILLED", "TRADE", D(1), D(0), D(0),
                           D(0), D(1), D(1), D(1), D(0), "USDT", D(0), 1, False, True, False, 0)  # fmt: skip

    assert close_reason_of(update("STOP_MARKET"), "x") is CloseReason.SL_HIT
    assert close_reason_of(update("TAKE_PROFIT_MARKET"), "x") is CloseReason.TP_HIT
    assert close_reason_of(update("LIQUIDATION"), "x") is CloseReason.LIQUIDATED
    assert close_reason_of(update("MARKET"), "autoclose-123") is CloseReason.LIQUIDATED
    assert close_reason_of(update("MARKET"), client_id("rotate", "sig:live:rotate:p")) is CloseReason.ROTATED
    assert close_reason_of(update("MARKET"), "web_abc") is CloseReason.MANUAL
    assert close_reason_of(None, "web_abc") is CloseReason.MANUAL


def test_client_ids_are_stable_distinct_per_leg_and_fit_binance() -> None:
    key = "5b6f1d2e-7a0c-5f59-9f1e-0d8c3c1b2a99:live"
    ids = [client_id(leg, key) for leg in ("open", "stop_loss", "take_profit", "rotate")]
    assert ids == [client_id(leg, key) for leg in ("open", "stop_loss", "take_profit", "rotate")]
    assert len(set(ids)) == 4 and all(len(i) <= 36 for i in ids)
    assert [i[:4] for i in ids] == ["aeo-", "aes-", "aet-", "aer-"]
    assert client_id("open", key) != client_id("open", key.replace("live", "paper"))


def test_the_report_in_protobuf() -> None:
    from aegis.virtual_account.reconcile import Difference

    report = Report("live", True, NOW, NOW, (Difference(Kind.ORDER_MISSING_ON_EXCHANGE, "", Action.NONE, "gone",
                                                        "order", "", "OPEN", order_id="9"),))  # fmt: skip
    pb = report_to_pb(report)
    assert not pb.in_sync and pb.dry_run and pb.account == "live"
    (x,) = pb.differences
    assert x.kind == va_pb.RECONCILE_DIFFERENCE_KIND_ORDER_MISSING_ON_EXCHANGE
    assert x.action == va_pb.RECONCILE_ACTION_NONE and x.order_id == "9" and x.database_value == "OPEN"
