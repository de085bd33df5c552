"""The live account's mirror and reconciliation, against the exchange simulator on loopback and real PostgreSQL.

The simulator's replay is held and moved by hand (as in tests/unit/exchange/test_trading_sim.py), so fills and
stop triggers are deterministic. Nothing here reaches a real exchange: the simulator listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest_asyncio

from aegis import testing
from aegis.exchange.trading import BinanceTrading
from aegis.risk.sizing import PositionSide
from aegis.sim import Simulator
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.virtual_account.live import LiveMirror, insert_position, running
from aegis.virtual_account.reconcile import Action, Kind

START = 3000
ACCOUNT = "live"


def advance(sim: Simulator, position: int) -> None:
    replay = sim.state.replay
    start = replay.position
    replay.position = position
    sim.state.after_advance(start, position)


async def eventually(predicate, timeout: float = 10.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {what}")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=None, start_on_subscribe=True) as simulator:
        advance(simulator, START)
        yield simulator


@pytest_asyncio.fixture
async def db(admin_dsn: str) -> AsyncIterator[Database]:
    dsn = await testing.create_database(admin_dsn, "aegis_live")
    conn = await connect_once(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    database = Database(dsn)
    try:
        yield database
    finally:
        await database.close()
        await testing.drop_database(admin_dsn, dsn)


def client_for(sim: Simulator) -> BinanceTrading:
    return BinanceTrading(sim.rest_url, sim.api_key, sim.api_secret, reconcile_delay_s=0.05)


async def ledger_identity(db: Database) -> tuple[Decimal, Decimal, Decimal]:
    """(wallet, starting balance + ledger sum excluding the deposit, last balance_after)."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT a.wallet_balance, a.starting_balance, "
            "(SELECT coalesce(sum(amount), 0) FROM balance_ledger l WHERE l.account_id = a.account_id) AS ledger, "
            "(SELECT balance_after FROM balance_ledger l WHERE l.account_id = a.account_id "
            " ORDER BY entry_id DESC LIMIT 1) AS last FROM accounts a WHERE a.account_id = $1",
            ACCOUNT,
        )
    return row["wallet_balance"], row["ledger"], row["last"]


async def snapshot(db: Database) -> dict[str, list]:
    async with db.connection() as conn:
        return {
            table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")]
            for table in ("accounts", "positions", "trades", "balance_ledger", "exchange_orders", "exchange_sync_marks")
        }


def trade_window(sim: Simulator, symbol: str, length: int = 3000) -> list[tuple[int, object]]:
    tape = sim.market.tapes[symbol]
    return [(int(i), t) for i, t in zip(tape.trade_index, tape.trades, strict=True) if START <= i < START + length]


async def test_fills_over_the_user_stream_are_mirrored_into_positions_trades_and_the_ledger(
    sim: Simulator, db: Database
) -> None:
    events: list = []
    async with client_for(sim) as trader, client_for(sim) as mirror_client:
        await trader.sync_time()
        mirror = LiveMirror(db, mirror_client, ws_private_url=sim.ws_private_url, reconcile_interval_s=0,
                            publish=events.extend)  # fmt: skip
        async with running(mirror):
            await asyncio.wait_for(mirror.ready.wait(), 20)
            await eventually(lambda: _true(mirror.stream is not None and mirror.stream.connected.is_set()),
                             what="the user stream")  # fmt: skip
            assert mirror.last_report is not None and mirror.last_report.in_sync
            start_wallet, _, _ = await ledger_identity(db)
            assert start_wallet == sim.account.wallet == Decimal("10000")

            window = trade_window(sim, "BTCUSDT")
            trigger = min(t.price for _, t in window) + Decimal("0.1")
            await trader.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.004"), client_order_id="mirror-open")
            await trader.place_algo_order("BTCUSDT", "SELL", "STOP_MARKET", trigger_price=trigger,
                                          close_position=True, client_algo_id="mirror-sl")  # fmt: skip

            async def opened() -> bool:
                async with db.connection() as conn:
                    row = await conn.fetchrow("SELECT quantity, sl_price FROM positions WHERE account_id = $1 "
                                              "AND status = 'OPEN'", ACCOUNT)  # fmt: skip
                return row is not None and row["sl_price"] == trigger

            await eventually(opened, what="the open position with its stop")
            async with db.connection() as conn:
                position = await conn.fetchrow("SELECT * FROM positions WHERE account_id = $1", ACCOUNT)
            assert position["quantity"] == Decimal("0.004") and position["side"] == "BUY"
            assert position["source"] == "stream" and position["entry_price"] > 0

            advance(sim, next(i for i, t in window if t.price <= trigger) + 1)  # the replay crosses the stop

            async def closed() -> bool:
                async with db.connection() as conn:
                    return bool(await conn.fetchval("SELECT count(*) FROM trades WHERE account_id = $1", ACCOUNT))

            await eventually(closed, what="the stop-loss trade")
            wallet_now = sim.account.wallet

            async def wallet_matches() -> bool:
                return (await ledger_identity(db))[0] == wallet_now

            await eventually(wallet_matches, what="the wallet")
            async with db.connection() as conn:
                trade = await conn.fetchrow("SELECT * FROM trades WHERE account_id = $1", ACCOUNT)
                fills = await conn.fetch("SELECT * FROM exchange_fills WHERE account_id = $1", ACCOUNT)
                algo = await conn.fetchrow("SELECT * FROM exchange_orders WHERE client_id = 'mirror-sl' AND algo")
            report = await mirror.reconciler.run(dry_run=True)

    assert trade["close_reason"] == "SL_HIT" and trade["quantity"] == Decimal("0.004")
    assert trade["gross_pnl"] == sum(f["realised_pnl"] for f in fills)
    assert trade["fees"] == sum(f["commission"] for f in fills) and trade["fees"] > 0
    assert trade["realised_pnl"] == trade["gross_pnl"] - trade["fees"]
    assert {f["client_order_id"] for f in fills} == {"mirror-open", "mirror-sl"} and all(f["applied"] for f in fills)
    assert algo["algo"] and algo["status"] == "FINISHED" and not algo["is_open"]
    wallet, ledger, last = await ledger_identity(db)
    assert wallet == ledger == last == wallet_now == start_wallet + trade["realised_pnl"]
    assert report.in_sync, report.differences
    kinds = [e.type for e in events]
    assert "POSITION_OPENED" in kinds and "POSITION_CLOSED" in kinds and "BALANCE_CHANGED" in kinds


async def _true(value: bool) -> bool:
    return value


async def test_a_replayed_fill_changes_nothing(sim: Simulator, db: Database) -> None:
    async with client_for(sim) as trader, client_for(sim) as mirror_client:
        await trader.sync_time()
        mirror = LiveMirror(db, mirror_client, ws_private_url=sim.ws_private_url, reconcile_interval_s=0)
        async with running(mirror):
            await asyncio.wait_for(mirror.ready.wait(), 20)
            await eventually(lambda: _true(mirror.stream is not None and mirror.stream.connected.is_set()))
            await trader.place_order("BTCUSDT", "BUY", "MARKET", Decimal("0.002"), client_order_id="replayed")
            await eventually(lambda: _true(mirror.counts["fills"] >= 1), what="the fill")
            async with mirror.lock:  # held while a batch's transaction runs: released once it committed
                before = await snapshot(db)
            # the same events again (a reconnection resending them, a second replica): recorded once, applied once
            state = mirror.stream.state.state
            fill_updates = [o for o in state.orders.values() if o.client_order_id == "replayed"]
            from aegis.exchange.user_stream import Fill

            again = tuple(
                Fill(o.symbol, o.order_id, o.client_order_id, o.trade_id, o.side, o.last_price, o.last_qty,
                     o.commission, o.commission_asset, o.realized_pnl, o.is_maker, o.time_ms)
                for o in fill_updates
            )  # fmt: skip
            await mirror.apply(again)
            assert await snapshot(db) == before and mirror.counts["fills_duplicate"] == len(again) >= 1


async def test_reconcile_finds_and_repairs_planted_differences_and_a_dry_run_changes_nothing(
    sim: Simulator, db: Database
) -> None:
    async with client_for(sim) as trader, client_for(sim) as mirror_client:
        await trader.sync_time()
        await mirror_client.sync_time()
        mirror = LiveMirror(db, mirror_client, ws_private_url=sim.ws_private_url, reconcile_interval_s=0)
        await mirror.ensure_account()
        assert (await mirror.reconciler.run(dry_run=False)).in_sync

        # behind the database's back: an ETHUSDT position with its stop, and a resting order
        await trader.place_order("ETHUSDT", "SELL", "MARKET", Decimal("0.05"), client_order_id="planted-eth")
        eth_mark = sim.account.last_price("ETHUSDT")
        eth_stop = (eth_mark * Decimal("1.05")).quantize(Decimal("0.01"))
        await trader.place_algo_order("ETHUSDT", "BUY", "STOP_MARKET", trigger_price=eth_stop, close_position=True,
                                      client_algo_id="planted-sl")  # fmt: skip
        btc = sim.account.last_price("BTCUSDT")
        await trader.place_order("BTCUSDT", "BUY", "LIMIT", Decimal("0.002"), price=btc - 500,
                                 client_order_id="planted-limit")  # fmt: skip
        # and in the database only: a BTCUSDT position and an order the exchange does not have
        async with db.connection() as conn:
            ghost = await insert_position(
                conn, account=ACCOUNT, key="ghost", symbol="BTCUSDT", side=PositionSide.LONG,
                quantity=Decimal("0.01"), entry_price=Decimal("60000"), leverage=10, entry_fee=Decimal(0),
                sl_price=None, tp_price=None, working_type="MARK_PRICE", opened_at=_now(), source="stream",
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO exchange_orders (account_id, client_id, algo, exchange_id, symbol, side, order_type, "
                "status, is_open, source, update_time) VALUES ($1, 'ghost-order', false, 987654321, 'BTCUSDT', "
                "'SELL', 'LIMIT', 'NEW', true, 'stream', now())",
                ACCOUNT,
            )

        before = await snapshot(db)
        dry = await mirror.reconciler.run(dry_run=True)
        assert await snapshot(db) == before  # the dry run changed nothing
        found = {(x.kind, x.symbol or x.order_id) for x in dry.differences}
        eth_algo = next(a for a in await trader.open_algo_orders() if a.client_algo_id == "planted-sl")
        limit = next(o for o in await trader.open_orders() if o.client_order_id == "planted-limit")
        assert found == {
            (Kind.MISSING_IN_DATABASE, "ETHUSDT"),
            (Kind.MISSING_ON_EXCHANGE, "BTCUSDT"),
            (Kind.ORDER_MISSING_IN_DATABASE, "ETHUSDT"),
            (Kind.ORDER_MISSING_IN_DATABASE, "BTCUSDT"),
            (Kind.ORDER_MISSING_ON_EXCHANGE, "987654321"),
            (Kind.BALANCE_MISMATCH, ""),  # the planted entry's commission
        }, dry.differences
        assert not dry.in_sync and all(x.action is Action.NONE and x.detail.startswith("(dry run)")
                                       for x in dry.differences)  # fmt: skip
        assert {x.order_id for x in dry.differences if x.kind is Kind.ORDER_MISSING_IN_DATABASE} == {
            str(eth_algo.algo_id), str(limit.order_id)}  # fmt: skip

        fixed = await mirror.reconciler.run(dry_run=False)
        actions = {x.kind: x.action for x in fixed.differences}
        assert actions[Kind.MISSING_IN_DATABASE] is Action.UPDATED_DATABASE
        assert actions[Kind.MISSING_ON_EXCHANGE] is Action.CLOSED_IN_DATABASE
        assert actions[Kind.BALANCE_MISMATCH] is Action.UPDATED_DATABASE
        vanished = next(x for x in fixed.differences if x.kind is Kind.ORDER_MISSING_ON_EXCHANGE)
        assert vanished.exchange_value == "GONE"
        async with db.connection() as conn:
            open_rows = await conn.fetch("SELECT * FROM positions WHERE account_id = $1 AND status = 'OPEN'", ACCOUNT)
            ghost_row = await conn.fetchrow("SELECT * FROM positions WHERE position_id = $1", ghost.position_id)
            ghost_trade = await conn.fetchrow("SELECT * FROM trades WHERE position_id = $1", ghost.position_id)
            orders = {r["client_id"]: r for r in await conn.fetch("SELECT * FROM exchange_orders")}
        (eth,) = open_rows
        exchange_eth = next(p for p in await trader.position_risk() if p.symbol == "ETHUSDT")
        assert (eth["symbol"], eth["side"], eth["quantity"]) == ("ETHUSDT", "SELL", Decimal("0.05"))
        assert eth["entry_price"] == exchange_eth.entry_price and eth["source"] == "reconcile"
        assert eth["sl_price"] == eth_algo.trigger_price
        assert str(eth["position_id"]) == next(x.position_id for x in fixed.differences
                                               if x.kind is Kind.MISSING_IN_DATABASE)  # fmt: skip
        assert ghost_row["status"] == "CLOSED" and ghost_row["close_reason"] == "MANUAL"
        assert ghost_trade["close_reason"] == "MANUAL" and ghost_trade["quantity"] == Decimal("0.01")
        assert orders["planted-sl"]["is_open"] and orders["planted-limit"]["is_open"]
        assert orders["ghost-order"]["status"] == "GONE" and not orders["ghost-order"]["is_open"]
        wallet, ledger, last = await ledger_identity(db)
        assert wallet == ledger == last == sim.account.wallet

        again = await mirror.reconciler.run(dry_run=False)
        assert again.in_sync, again.differences


def _now():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def live_process_env(sim: Simulator, base: dict[str, str], **extra: str) -> dict[str, str]:
    from aegis import config

    return {
        **base,
        "AEGIS_MODE": "live",
        "BINANCE_API_KEY": sim.api_key,
        "BINANCE_API_SECRET": sim.api_secret,
        "AEGIS_LIVE_CONFIRM": config.LIVE_CONFIRMATION,
        "AEGIS_BINANCE_REST_URL": sim.rest_url,
        "AEGIS_BINANCE_WS_PRIVATE_URL": sim.ws_private_url,
        **extra,
    }


async def test_the_service_process_in_live_mode_mirrors_the_account_and_reconciles_over_grpc(
    sim: Simulator, service_env: dict[str, str], tmp_path
) -> None:
    import grpc

    from aegis.v1 import common_pb2 as common_pb
    from aegis.v1 import virtual_account_pb2 as va_pb
    from aegis.v1 import virtual_account_pb2_grpc as va_grpc

    env = live_process_env(sim, service_env, AEGIS_LIVE_RECONCILE_INTERVAL_S="0.5")
    proc = testing.ServiceProcess("virtual_account", env, log_dir=tmp_path).start()
    try:
        assert await asyncio.to_thread(proc.wait_status, "SERVING", 30), proc.log_text()
        async with grpc.aio.insecure_channel(proc.address) as channel, client_for(sim) as trader:
            stub = va_grpc.VirtualAccountServiceStub(channel)
            await trader.sync_time()
            account = (await stub.GetAccount(va_pb.GetAccountRequest(account=ACCOUNT), timeout=10)).account
            assert account.kind == common_pb.ACCOUNT_KIND_LIVE and Decimal(account.wallet_balance) == sim.account.wallet
            await asyncio.sleep(1.0)  # the mirror's stream connects after its first reconciliation
            await trader.place_order("BTCUSDT", "SELL", "MARKET", Decimal("0.003"), client_order_id="process-open")
            stop = (sim.account.last_price("BTCUSDT") * Decimal("1.05")).quantize(Decimal("0.1"))
            await trader.place_algo_order("BTCUSDT", "BUY", "STOP_MARKET", trigger_price=stop, close_position=True,
                                          client_algo_id="process-sl")  # fmt: skip

            async def mirrored() -> bool:
                reply = await stub.ListPositions(va_pb.ListPositionsRequest(account=ACCOUNT), timeout=5)
                return len(reply.positions) == 1 and reply.positions[0].stop_loss_price != ""

            await eventually(mirrored, timeout=20, what="the position in the process's mirror")
            (position,) = (await stub.ListPositions(va_pb.ListPositionsRequest(account=ACCOUNT), timeout=5)).positions
            assert position.side == common_pb.POSITION_SIDE_SHORT and Decimal(position.quantity) == Decimal("0.003")
            assert Decimal(position.stop_loss_price) == stop
            report = (await stub.Reconcile(va_pb.ReconcileRequest(account=ACCOUNT), timeout=10)).report
            assert report.in_sync and not report.dry_run and report.account == ACCOUNT, report
            code = None
            try:
                await stub.OpenPosition(va_pb.OpenPositionRequest(idempotency_key="k", account=ACCOUNT,
                                                                  symbol="BTCUSDT", side=common_pb.POSITION_SIDE_LONG,
                                                                  quantity="0.001", leverage=5), timeout=5)  # fmt: skip
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details()
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "live account" in details
            code = None
            try:
                await stub.Reconcile(va_pb.ReconcileRequest(account="learning"), timeout=5)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details()
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "no exchange to reconcile" in details
    finally:
        await asyncio.to_thread(proc.stop)
    assert "Traceback" not in proc.log_text()


def test_the_service_refuses_live_mode_without_the_opt_in(service_env: dict[str, str], tmp_path) -> None:
    import subprocess
    import sys

    env = {**service_env, "AEGIS_MODE": "live", "BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s",
           "AEGIS_LIVE_CONFIRM": "yes"}  # fmt: skip
    import os

    done = subprocess.run([sys.executable, "-m", "aegis.virtual_account"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "AEGIS_LIVE_CONFIRM=I_UNDERSTAND_THIS_TRADES_REAL_MONEY" in done.stderr and "refusing" in done.stderr


async def test_a_fill_that_reconciliation_already_counted_is_recorded_but_not_applied_again(
    sim: Simulator, db: Database
) -> None:
    from aegis.exchange.user_stream import Fill, UserStream

    changes: list = []
    async with client_for(sim) as trader, client_for(sim) as mirror_client, client_for(sim) as listener:
        await trader.sync_time()
        await mirror_client.sync_time()
        await listener.sync_time()
        mirror = LiveMirror(db, mirror_client, ws_private_url=sim.ws_private_url, reconcile_interval_s=0)
        await mirror.ensure_account()
        async with UserStream(listener, sim.ws_private_url, changes.extend, resync=False) as stream:
            await asyncio.wait_for(stream.connected.wait(), 10)
            await trader.place_order("BTCUSDT", "SELL", "MARKET", Decimal("0.002"), client_order_id="late-event")
            await eventually(lambda: _true(any(isinstance(c, Fill) for c in changes)), what="the fill event")
        # the stream's event is late: reconciliation sees the position (and the commission) first
        fixed = await mirror.reconciler.run(dry_run=False)
        assert {x.kind for x in fixed.differences} == {Kind.MISSING_IN_DATABASE, Kind.BALANCE_MISMATCH,
                                                        Kind.MISSING_PROTECTIVE_ORDER}  # fmt: skip
        before = await snapshot(db)
        await mirror.apply(tuple(changes))  # then the event arrives
        after = await snapshot(db)
        assert after["positions"] == before["positions"] and after["balance_ledger"] == before["balance_ledger"]
        async with db.connection() as conn:
            fills = await conn.fetch("SELECT applied FROM exchange_fills WHERE client_order_id = 'late-event'")
        assert [f["applied"] for f in fills] == [False] * len(fills) and fills
        assert mirror.counts["fills_already_synced"] == len(fills)
        again = await mirror.reconciler.run(dry_run=True)
        assert {x.kind for x in again.differences} == {Kind.MISSING_PROTECTIVE_ORDER}  # nothing counted twice
        wallet, ledger, _ = await ledger_identity(db)
        assert wallet == ledger == sim.account.wallet
