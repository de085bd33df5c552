"""RiskService over real gRPC (in-process server on a loopback port), on real PostgreSQL and Redis, with the real
2025-11 exchangeInfo and the real 349-market leverage tiers stored the way the orchestrator stores them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2

from aegis import config, testing
from aegis.exchange.rules_store import load_rules, save_and_announce
from aegis.risk import convert
from aegis.risk.accounts import AccountSnapshot, ProtectionsStore, risk_configs
from aegis.risk.desk import account_state
from aegis.risk.engine import RiskEngine
from aegis.risk.testing import FakeAccount, FakeVirtualAccounts, grpc_server, risk_server, store_rules_files
from aegis.server import unbuilt_registration
from aegis.storage.cache import Cache
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import risk_pb2 as risk_pb
from aegis.v1 import risk_pb2_grpc as risk_grpc
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LONG, SHORT = common_pb.POSITION_SIDE_LONG, common_pb.POSITION_SIDE_SHORT


def stamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def create_rules_database(admin_dsn: str, shared_data: Path, seed: Callable[[Any], Any] | None = None) -> str:
    dsn = testing.create_database_sync(admin_dsn, "aegis_risk_grpc")

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
            if seed is not None:
                await seed(conn)
        finally:
            await conn.close()
        db = Database(dsn)
        await store_rules_files(db, None, shared_data / NOV, shared_data / TIERS)
        await db.close()

    asyncio.run(run())
    return dsn


async def seed_paper_history(conn: Any) -> None:
    """The paper account in PostgreSQL: peak 11,000, 200 lost today, a stop-loss on SOLUSDT 5 minutes ago."""
    await conn.execute(
        "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance, peak_equity) "
        "VALUES ('paper', 'paper', 10000, 10000, 11000)"
    )
    await conn.execute(
        "INSERT INTO balance_ledger (account_id, kind, amount, balance_after, created_at) "
        "VALUES ('paper', 'realised_pnl', -200, 10000, $1)",
        NOW - dt.timedelta(minutes=5),
    )
    await conn.execute(
        "INSERT INTO trades (trade_id, position_id, account_id, symbol, side, quantity, entry_price, exit_price, "
        "leverage, margin, opened_at, closed_at, close_reason, gross_pnl, fees, funding, realised_pnl, "
        "roi_margin_pct, roi_price_pct, reward_score) VALUES (gen_random_uuid(), gen_random_uuid(), 'paper', "
        "'SOLUSDT', 'BUY', 10, 200, 198, 5, 400, $1, $2, 'SL_HIT', -20, 2, 0, -22, -5.5, -1, -1)",
        NOW - dt.timedelta(hours=1),
        NOW - dt.timedelta(minutes=5),
    )


@pytest.fixture(scope="module")
def risk_dsn(admin_dsn: str, shared_data: Path) -> Iterator[str]:
    dsn = create_rules_database(admin_dsn, shared_data, seed_paper_history)
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


@pytest.fixture(scope="module")
def fake_va() -> FakeVirtualAccounts:
    eth = common_pb.Position(
        position_id="p-eth",
        symbol="ETHUSDT",
        side=LONG,
        quantity="1",
        entry_price="3000",
        mark_price="3100",
        leverage=5,
        opened_time=stamp(NOW - dt.timedelta(hours=2)),
        confidence=0.6,
    )
    return FakeVirtualAccounts({"paper": FakeAccount("10000"), "learning": FakeAccount("5000", [eth])})


def env_for(dsn: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AEGIS_RISK_FETCH_RULES": "false",
        "AEGIS_RISK_RULES_RELOAD_S": "3600",  # only the Redis notice can make a reload happen during a test
        "AEGIS_RISK_MAX_LEVERAGE": "15",
        **extra,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def risk(risk_dsn: str, redis_url: str, fake_va: FakeVirtualAccounts) -> AsyncIterator[Any]:
    async with grpc_server([fake_va.registration()]) as va_address:
        settings = config.load(env_for(risk_dsn, redis_url, AEGIS_VIRTUAL_ACCOUNT_ADDRESS=va_address))
        async with risk_server(settings, clock=lambda: NOW) as harness:
            await harness.wait_rules()
            yield harness


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stub(risk: Any) -> AsyncIterator[risk_grpc.RiskServiceStub]:
    async with grpc.aio.insecure_channel(risk.address) as channel:
        yield risk_grpc.RiskServiceStub(channel)


def evaluate_request(symbol: str = "BTCUSDT", *, account: str = "paper", state: bool = True, **kw: Any) -> Any:
    signal = common_pb.Signal(
        signal_id="sig-1",
        symbol=symbol,
        side=kw.pop("side", LONG),
        entry_price=kw.pop("entry_price", "50000"),
        sl_pct=kw.pop("sl_pct", 1.0),
        tp_pct=kw.pop("tp_pct", 2.0),
        confidence=kw.pop("confidence", 0.7),
        predicted_return_pct=kw.pop("predicted_return_pct", 0.8),
        created_time=stamp(NOW - dt.timedelta(seconds=5)),
    )
    request = risk_pb.EvaluateSignalRequest(
        signal=signal, account=account, mark_price=kw.pop("mark_price", "50000"), mark_price_time=stamp(NOW)
    )
    if state:
        request.account_state.CopyFrom(risk_pb.AccountState(wallet_balance="10000"))
    for name, value in kw.items():
        setattr(request, name, value)
    return request


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


# --------------------------------------------------------------------------------------------- EvaluateSignal


async def test_evaluate_signal_is_the_engines_decision_translated(stub: Any, risk: Any) -> None:
    reply = await stub.EvaluateSignal(evaluate_request())
    d = reply.decision
    assert d.approved and d.message.startswith("approved: BUY 0.181 BTCUSDT at market")
    assert d.order.quantity == "0.181" and d.order.type == common_pb.ORDER_TYPE_MARKET
    assert d.order.stop_loss_price == "49500" and d.order.take_profit_price == "51000"
    assert d.sizing.method == risk_pb.SIZING_METHOD_FIXED_RISK and d.equity.total_equity == "10000"
    assert d.leverage_guard.applied_leverage == 15  # AEGIS_RISK_MAX_LEVERAGE, under BTC's 125x first tier
    assert list(d.reason_codes) == [] and d.decided_time.ToDatetime(tzinfo=dt.UTC) == NOW

    # The same decision the engine makes on the same inputs (protections history from PostgreSQL included).
    history = await ProtectionsStore(risk.db).history("paper", NOW, dt.timedelta(minutes=30))
    assert history.peak_equity == D("11000") and history.ledger_today == D("-200")
    state = account_state("paper", AccountSnapshot(D("10000"), authoritative=False, open_orders={}), history)
    engine = RiskEngine((await load_rules(risk.db)).rules, risk_configs(risk.settings.risk))
    request = evaluate_request()
    expected = engine.evaluate(convert.signal_from_pb(request), state, convert.market_from_pb(request, NOW), NOW)
    assert d == convert.decision_to_pb(expected)


async def test_open_orders_of_the_live_mirror_count_toward_max_num_orders(stub: Any, risk: Any) -> None:
    """Resting orders the user data stream mirrored into exchange_orders count per symbol (closed ones do not)."""
    limit = risk.desk._snapshot.rules["BTCUSDT"].max_num_orders
    assert limit > 3
    rows = [(i, "BTCUSDT", True) for i in range(limit - 2)] + [(10_000 + i, "BTCUSDT", False) for i in range(5)]
    rows += [(20_000, "ETHUSDT", True)]
    async with risk.db.connection() as conn:
        await conn.executemany(
            "INSERT INTO exchange_orders (account_id, client_id, algo, exchange_id, symbol, side, order_type, status, "
            "is_open, source, update_time) VALUES ('paper', $1, $2, $3, $4, 'SELL', 'LIMIT', $5, $6, 'stream', $7)",
            [
                (f"c{i}", i % 2 == 0, i, symbol, "NEW" if is_open else "FILLED", is_open, NOW)
                for i, symbol, is_open in rows
            ],
        )
    try:
        history = await ProtectionsStore(risk.db).history("paper", NOW, dt.timedelta(minutes=30))
        assert history.open_orders == {"BTCUSDT": limit - 2, "ETHUSDT": 1}
        # equity from virtual-account (no account_state in the request), so open orders come from PostgreSQL
        d = (await stub.EvaluateSignal(evaluate_request(state=False))).decision
        assert not d.approved and risk_pb.RISK_REASON_CODE_MAX_NUM_ORDERS in d.reason_codes
    finally:
        async with risk.db.connection() as conn:
            await conn.execute("DELETE FROM exchange_orders WHERE account_id = 'paper'")
    d = (await stub.EvaluateSignal(evaluate_request(state=False))).decision
    assert risk_pb.RISK_REASON_CODE_MAX_NUM_ORDERS not in d.reason_codes


async def test_a_refusal_is_an_ok_answer_with_codes_and_sentences(stub: Any) -> None:
    reply = await stub.EvaluateSignal(evaluate_request("SOLUSDT", entry_price="200", mark_price="200", sl_pct=0.0))
    d = reply.decision
    assert not d.approved and d.message.startswith("rejected: ")
    assert list(d.reason_codes) == [risk_pb.RISK_REASON_CODE_INVALID_SIGNAL, risk_pb.RISK_REASON_CODE_COOLDOWN]
    assert [r.code for r in d.reasons] == ["INVALID_SIGNAL", "COOLDOWN"]
    assert "SOLUSDT is cooling down after a stop-loss" in d.reasons[1].message


async def test_a_symbol_without_brackets_is_refused_not_traded(stub: Any, risk: Any) -> None:
    bare = next(s for s, r in risk.desk._snapshot.rules.items() if r.is_trading and not r.brackets)
    d = (await stub.EvaluateSignal(evaluate_request(bare, entry_price="1", mark_price="1"))).decision
    assert not d.approved and list(d.reason_codes) == [risk_pb.RISK_REASON_CODE_SYMBOL_NOT_TRADING]
    assert "no leverage brackets" in d.message


async def test_equity_comes_from_virtual_account_when_the_request_carries_none(
    stub: Any, fake_va: FakeVirtualAccounts
) -> None:
    before = fake_va.calls
    d = (await stub.EvaluateSignal(evaluate_request(account="learning", state=False))).decision
    assert fake_va.calls == before + 1
    assert d.approved and d.equity.wallet_balance == "5000" and d.equity.unrealised_pnl == "100"
    assert d.equity.total_equity == "5100" and d.equity.position_value == "3100"


async def test_virtual_account_not_built_is_failed_precondition_never_made_up_equity(
    risk_dsn: str, redis_url: str
) -> None:
    unbuilt = unbuilt_registration(va_grpc, "VirtualAccountService")
    async with grpc_server([unbuilt]) as va_address:
        settings = config.load(env_for(risk_dsn, redis_url, AEGIS_VIRTUAL_ACCOUNT_ADDRESS=va_address))
        async with (
            risk_server(settings, clock=lambda: NOW) as harness,
            grpc.aio.insecure_channel(harness.address) as channel,
        ):
            await harness.wait_rules()
            stub = risk_grpc.RiskServiceStub(channel)
            error = await rpc_error(stub.EvaluateSignal(evaluate_request(state=False)))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "comes from virtual-account, whose GetAccount is not built yet" in error.details()
            assert "never sizes on made-up equity" in error.details()
            # With the state in the request the same call is decided.
            assert (await stub.EvaluateSignal(evaluate_request())).decision.approved
            error = await rpc_error(stub.EvaluateSignal(evaluate_request(account="live", state=False)))
            assert (
                error.code() == grpc.StatusCode.FAILED_PRECONDITION and "live mode is not configured" in error.details()
            )


BAD_REQUESTS: list[tuple[str, Callable[[Any], None], str]] = [
    ("EvaluateSignal", lambda r: r.ClearField("signal"), "signal"),
    ("EvaluateSignal", lambda r: setattr(r.signal, "side", 0), "signal.side"),
    ("EvaluateSignal", lambda r: setattr(r.signal, "symbol", " "), "signal.symbol"),
    ("EvaluateSignal", lambda r: setattr(r.signal, "entry_price", "abc"), "signal.entry_price"),
    ("EvaluateSignal", lambda r: setattr(r.signal, "sl_pct", float("nan")), "signal.sl_pct"),
    ("EvaluateSignal", lambda r: setattr(r, "mark_price", "-1"), "mark_price"),
    ("EvaluateSignal", lambda r: setattr(r, "win_rate", 1.5), "win_rate"),
    ("EvaluateSignal", lambda r: setattr(r, "account", ""), "account"),
    ("EvaluateSignal", lambda r: setattr(r, "mode", 9), "mode"),
    ("EvaluateSignal", lambda r: setattr(r.account_state, "wallet_balance", ""), "account_state.wallet_balance"),
    (
        "EvaluateSignal",
        lambda r: r.account_state.positions.add(position_id="x", symbol="ETHUSDT", side=1, quantity="1"),
        "account_state.positions[0].opened_time",
    ),
]


@pytest.mark.parametrize(("rpc", "spoil", "field"), BAD_REQUESTS, ids=[f for _, _, f in BAD_REQUESTS])
async def test_invalid_requests_are_invalid_argument_naming_the_field(
    stub: Any, rpc: str, spoil: Callable[[Any], None], field: str
) -> None:
    request = evaluate_request()
    spoil(request)
    error = await rpc_error(getattr(stub, rpc)(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}: "), error.details()


async def test_other_rpcs_name_the_bad_field(stub: Any) -> None:
    size = {"account": "paper", "symbol": "BTCUSDT", "sl_pct": 1, "tp_pct": 2}
    cases = [
        (stub.SizeOrder(risk_pb.SizeOrderRequest(**size)), "side"),
        (stub.SizeOrder(risk_pb.SizeOrderRequest(**size, side=LONG, method=99)), "method"),
        (stub.SizeOrder(risk_pb.SizeOrderRequest(**size, side=LONG, entry_price="0")), "entry_price"),
        (stub.GetSymbolRules(risk_pb.GetSymbolRulesRequest(symbol="")), "symbol"),
        (stub.ListSymbolRules(risk_pb.ListSymbolRulesRequest(page_size=-1)), "page_size"),
        (stub.ListSymbolRules(risk_pb.ListSymbolRulesRequest(page_token="not-a-token")), "page_token"),
        (stub.GetRiskConfig(risk_pb.GetRiskConfigRequest(account=" ")), "account"),
        (stub.GetProtectionsStatus(risk_pb.GetProtectionsStatusRequest(account="")), "account"),
    ]
    for call, field in cases:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.details())
        assert error.details().startswith(f"{field}: "), error.details()


async def test_unknown_symbols_and_accounts_are_not_found(stub: Any) -> None:
    calls = [
        stub.EvaluateSignal(evaluate_request("NOPEUSDT")),
        stub.EvaluateSignal(evaluate_request(account="nobody")),
        stub.SizeOrder(
            risk_pb.SizeOrderRequest(account="paper", symbol="NOPEUSDT", side=LONG, sl_pct=1, tp_pct=2, mark_price="1")
        ),
        stub.GetSymbolRules(risk_pb.GetSymbolRulesRequest(symbol="NOPEUSDT")),
        stub.GetRiskConfig(risk_pb.GetRiskConfigRequest(account="nobody")),
        stub.GetProtectionsStatus(risk_pb.GetProtectionsStatusRequest(account="nobody")),
    ]
    for call in calls:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    error = await rpc_error(stub.GetSymbolRules(risk_pb.GetSymbolRulesRequest(symbol="nopeusdt")))
    assert error.details() == "NOPEUSDT is not in the exchange rules (647 symbols known)"


# --------------------------------------------------------------------------------------------- SizeOrder


async def test_size_order_sizes_without_gates(stub: Any) -> None:
    base = {"account": "paper", "symbol": "BTCUSDT", "side": SHORT, "sl_pct": 1, "tp_pct": 2, "mark_price": "50000"}
    state = risk_pb.AccountState(wallet_balance="10000")
    d = (await stub.SizeOrder(risk_pb.SizeOrderRequest(**base, account_state=state))).decision
    assert d.approved and d.order.side == common_pb.SIDE_SELL and d.order.type == common_pb.ORDER_TYPE_MARKET
    assert d.order.quantity == "0.181" and d.rotation.action == risk_pb.ROTATION_ACTION_UNSPECIFIED

    fraction = risk_pb.SizeOrderRequest(
        **base, account_state=state, method=risk_pb.SIZING_METHOD_FIXED_FRACTION, entry_price="50000.05"
    )
    d = (await stub.SizeOrder(fraction)).decision
    assert d.approved and d.order.type == common_pb.ORDER_TYPE_LIMIT and d.order.price == "50000.1"  # SELL rounds up
    assert d.order.quantity == "0.039" and d.sizing.method == risk_pb.SIZING_METHOD_FIXED_FRACTION  # 2,000 notional

    # 100 USDT of BTC at 50,001 is 0.0019999 BTC: rounded down to 0.001 it is under the 100 minimum notional, and
    # never rounded up to pass (that would spend more than asked).
    notional = risk_pb.SizeOrderRequest(
        **{**base, "mark_price": "50001"}, account_state=state, method=risk_pb.SIZING_METHOD_FIXED_NOTIONAL
    )
    d = (await stub.SizeOrder(notional)).decision
    assert not d.approved and list(d.filter_violations) == ["MIN_NOTIONAL"] and d.order.quantity == "0.001"
    assert risk_pb.RISK_REASON_CODE_QUANTITY_TOO_SMALL in d.reason_codes

    # SOLUSDT cools down after its stop-loss, but what-if sizing has no gates.
    sol = risk_pb.SizeOrderRequest(**{**base, "symbol": "SOLUSDT", "mark_price": "200"}, account_state=state)
    assert (await stub.SizeOrder(sol)).decision.approved


# --------------------------------------------------------------------------------------------- rules


async def test_get_symbol_rules_returns_filters_and_brackets(stub: Any) -> None:
    rules = (await stub.GetSymbolRules(risk_pb.GetSymbolRulesRequest(symbol="btcusdt"))).rules
    assert (rules.symbol, rules.status, rules.tick_size, rules.step_size) == ("BTCUSDT", "TRADING", "0.1", "0.001")
    assert rules.min_notional == "100" and rules.market_step_size == "0.001" and rules.max_num_orders == 10000
    assert common_pb.ORDER_TYPE_LIMIT in rules.order_types and common_pb.TIME_IN_FORCE_GTX in rules.time_in_force
    assert rules.brackets[0].initial_leverage == 125 and rules.brackets[0].notional_cap == "50000"
    assert rules.updated_time.seconds > 0


async def test_list_symbol_rules_pages_through_every_symbol(stub: Any) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await stub.ListSymbolRules(risk_pb.ListSymbolRulesRequest(page_size=100, page_token=token))
        seen += [r.symbol for r in page.rules]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 7 and len(seen) == 647 and seen == sorted(set(seen))
    trading = await stub.ListSymbolRules(risk_pb.ListSymbolRulesRequest(page_size=5000, status="TRADING"))
    assert len(trading.rules) == 555 and not trading.next_page_token  # page_size above 1000 is taken as 1000
    first = await stub.ListSymbolRules(risk_pb.ListSymbolRulesRequest(page_size=2, status="trading"))
    error = await rpc_error(stub.ListSymbolRules(risk_pb.ListSymbolRulesRequest(page_token=first.next_page_token)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "another status filter" in error.details()


# --------------------------------------------------------------------------------------------- config, protections


async def test_get_risk_config_reports_the_settings(stub: Any) -> None:
    configs = {c.account: c for c in (await stub.GetRiskConfig(risk_pb.GetRiskConfigRequest())).configs}
    assert list(configs) == ["learning", "live", "paper"]
    paper, learning = configs["paper"], configs["learning"]
    assert paper.kind == common_pb.ACCOUNT_KIND_PAPER and paper.max_open_positions == 3 and paper.rotation_enabled
    assert learning.max_open_positions == 0 and not learning.rotation_enabled
    assert paper.max_leverage == 15 and paper.sizing_method == risk_pb.SIZING_METHOD_FIXED_RISK
    assert paper.risk_per_trade_pct == 1.0 and paper.max_drawdown_pct == 20.0 and paper.fixed_notional == "100"
    assert paper.cooldown_after_loss.seconds == 1800 and paper.max_mark_price_age.seconds == 30
    one = await stub.GetRiskConfig(risk_pb.GetRiskConfigRequest(account="paper"))
    assert [c.account for c in one.configs] == ["paper"]


async def test_get_protections_status_reads_the_history_from_postgres(stub: Any) -> None:
    reply = await stub.GetProtectionsStatus(risk_pb.GetProtectionsStatusRequest())
    # live is left out: its equity comes from the exchange account, not built yet.
    assert [a.account for a in reply.accounts] == ["learning", "paper"]
    paper = reply.accounts[1]
    assert not paper.halted and paper.equity == "10000" and paper.peak_equity == "11000"
    assert abs(paper.drawdown_pct - 100 / 11) < 1e-9 and paper.daily_pnl == "-200"
    assert [c.symbol for c in paper.cooldowns] == ["SOLUSDT"]
    assert paper.cooldowns[0].until_time.ToDatetime(tzinfo=dt.UTC) == NOW + dt.timedelta(minutes=25)
    error = await rpc_error(stub.GetProtectionsStatus(risk_pb.GetProtectionsStatusRequest(account="live")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


# --------------------------------------------------------------------------------------------- rules pick-up


async def test_new_rules_are_picked_up_without_a_restart(admin_dsn: str, shared_data: Path, redis_url: str) -> None:
    dsn = await asyncio.to_thread(create_rules_database, admin_dsn, shared_data)
    try:
        async with risk_server(config.load(env_for(dsn, redis_url)), clock=lambda: NOW) as harness:
            await harness.wait_rules()
            await asyncio.wait_for(harness.keeper.subscribed.wait(), 10)
            async with grpc.aio.insecure_channel(harness.address) as channel:
                stub = risk_grpc.RiskServiceStub(channel)
                assert (await stub.EvaluateSignal(evaluate_request())).decision.approved
                reloads = harness.keeper.reloads

                # The orchestrator stores new rules: BTCUSDT now trades in steps of 0.01 and is then suspended.
                info = json.loads((shared_data / NOV).read_text())
                btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
                for f in btc["filters"]:
                    if f["filterType"] in ("LOT_SIZE", "MARKET_LOT_SIZE"):
                        f["stepSize"], f["minQty"] = "0.01", "0.01"
                cache = Cache(redis_url)
                try:
                    await save_and_announce(harness.db, cache, info=info)
                    for _ in range(250):
                        rules = (await stub.GetSymbolRules(risk_pb.GetSymbolRulesRequest(symbol="BTCUSDT"))).rules
                        if rules.step_size == "0.01":
                            break
                        await asyncio.sleep(0.02)
                    assert rules.step_size == "0.01" and harness.keeper.reloads == reloads + 1
                    assert (await stub.EvaluateSignal(evaluate_request())).decision.order.quantity == "0.18"

                    btc["status"] = "SETTLING"
                    await save_and_announce(harness.db, cache, info=info)
                    for _ in range(250):
                        d = (await stub.EvaluateSignal(evaluate_request())).decision
                        if not d.approved:
                            break
                        await asyncio.sleep(0.02)
                    assert list(d.reason_codes) == [risk_pb.RISK_REASON_CODE_SYMBOL_NOT_TRADING]
                    assert "BTCUSDT is SETTLING, not TRADING" in d.message
                finally:
                    await cache.close()
    finally:
        await asyncio.to_thread(testing.drop_database_sync, admin_dsn, dsn)
