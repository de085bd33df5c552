"""Migrations and schema repair against a real PostgreSQL, a fresh database per test."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from aegis.storage.migrate import MigrationError, expected_schema_version, migrate, shipped_migrations

EXPECTED_TABLES = {
    "symbols",
    "candles",
    "exchange_rules",
    "leverage_brackets",
    "signals",
    "accounts",
    "balance_ledger",
    "positions",
    "orders",
    "trades",
    "training_runs",
    "ml_models",
    "experience_buffer",
    "service_events",
    "schema_migrations",
}


async def schema_snapshot(conn: asyncpg.Connection) -> list[tuple]:
    rows = await conn.fetch(
        """SELECT table_name, column_name, data_type, is_nullable, column_default
           FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"""
    )
    indexes = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    constraints = await conn.fetch(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE connamespace = 'public'::regnamespace ORDER BY 1"""
    )
    return [tuple(r) for r in rows] + [tuple(r) for r in indexes] + [tuple(r) for r in constraints]


@pytest.fixture
async def conn(fresh_database_url: str):
    connection = await asyncpg.connect(fresh_database_url)
    yield connection
    await connection.close()


async def test_open_positions_are_indexed_once_by_account_and_symbol(conn: asyncpg.Connection) -> None:
    """0005 dropped the symbol-only partial index: (account_id, symbol) WHERE status = 'OPEN' serves every lookup."""
    await migrate(conn)
    indexes = {
        r["indexname"]: r["indexdef"]
        for r in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'positions'")
    }
    open_indexes = [name for name, definition in indexes.items() if "'OPEN'" in definition]
    assert open_indexes == ["positions_open_idx"], indexes
    assert "(account_id, symbol)" in indexes["positions_open_idx"]
    report = await migrate(conn)  # the repair's reference agrees: nothing to add back
    assert not any("positions_open_symbol_idx" in line for line in report.repaired), report.repaired


async def test_fresh_database_gets_every_table_with_numeric_money(conn: asyncpg.Connection) -> None:
    report = await migrate(conn)
    assert report.applied == [f"{m.version:04d}_{m.name}" for m in shipped_migrations()]
    assert report.schema_version == expected_schema_version()
    tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert tables >= EXPECTED_TABLES
    money = await conn.fetch(
        """SELECT table_name, column_name, data_type FROM information_schema.columns
           WHERE table_schema = 'public' AND column_name IN
             ('wallet_balance', 'realised_pnl', 'fees', 'entry_price', 'quantity', 'notional_cap', 'margin')"""
    )
    assert money and all(r["data_type"] == "numeric" for r in money)


async def test_running_migrations_twice_changes_nothing(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    before = await schema_snapshot(conn)
    history = await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations")
    second = await migrate(conn)
    assert not second.changed and second.left_alone == []
    assert await schema_snapshot(conn) == before
    assert await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations") == history


async def test_a_dropped_column_is_repaired_with_type_default_and_not_null(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    before = await schema_snapshot(conn)
    await conn.execute("ALTER TABLE accounts DROP COLUMN fees, DROP COLUMN halted")
    await conn.execute("ALTER TABLE service_events DROP COLUMN event_id")
    report = await migrate(conn)
    assert "added missing column accounts.fees numeric" in report.repaired
    assert "added missing column accounts.halted boolean" in report.repaired
    assert "added missing column service_events.event_id bigint" in report.repaired
    after = await schema_snapshot(conn)
    # Column order differs (re-added columns go last), but the set of columns, indexes and constraints is whole.
    assert sorted(after) == sorted(before)
    await conn.execute(
        "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance) "
        "VALUES ('paper', 'paper', 10000, 10000)"
    )
    row = await conn.fetchrow("SELECT fees, halted FROM accounts WHERE account_id = 'paper'")
    assert row["fees"] == 0 and row["halted"] is False


async def test_a_not_null_column_dropped_from_a_table_with_rows_is_left_nullable_and_reported(
    conn: asyncpg.Connection,
) -> None:
    await migrate(conn)
    await conn.execute(
        "INSERT INTO symbols (symbol, status, contract_type, base_asset, quote_asset) "
        "VALUES ('BTCUSDT', 'TRADING', 'PERPETUAL', 'BTC', 'USDT')"
    )
    await conn.execute("ALTER TABLE symbols DROP COLUMN contract_type")
    report = await migrate(conn)
    assert any("symbols.contract_type" in line and "left nullable" in line for line in report.repaired)
    assert any("symbols.contract_type should be NOT NULL" in line for line in report.left_alone)
    assert await conn.fetchval("SELECT count(*) FROM symbols WHERE contract_type IS NULL") == 1


async def test_a_dropped_table_and_index_come_back(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    before = await schema_snapshot(conn)
    await conn.execute("DROP TABLE experience_buffer")
    await conn.execute("DROP INDEX candles_open_time_idx")
    await conn.execute("ALTER TABLE positions DROP CONSTRAINT positions_account_id_fkey")
    report = await migrate(conn)
    assert "created missing table experience_buffer" in report.repaired
    assert "created index candles_open_time_idx on candles" in report.repaired
    assert "added constraint positions_account_id_fkey on positions" in report.repaired
    assert sorted(await schema_snapshot(conn)) == sorted(before)


async def test_a_column_of_another_type_is_reported_not_changed(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    await conn.execute("ALTER TABLE signals ALTER COLUMN reasons TYPE text")
    report = await migrate(conn)
    assert report.left_alone == ["signals.reasons is text, expected jsonb: not changed automatically"]
    assert (
        await conn.fetchval(
            "SELECT data_type FROM information_schema.columns WHERE table_name='signals' AND column_name='reasons'"
        )
        == "text"
    )


async def test_an_edited_migration_is_refused(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(conn)


async def test_a_newer_database_is_refused(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    with pytest.raises(MigrationError, match="upgrade AEGIS"):
        await migrate(conn)


async def test_concurrent_migrators_apply_each_migration_once(fresh_database_url: str) -> None:
    conns = [await asyncpg.connect(fresh_database_url) for _ in range(3)]
    try:
        reports = await asyncio.gather(*(migrate(c) for c in conns))
        assert sum(len(r.applied) for r in reports) == len(shipped_migrations())
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(shipped_migrations())
    finally:
        for c in conns:
            await c.close()


async def test_money_round_trips_exactly(conn: asyncpg.Connection) -> None:
    from decimal import Decimal

    await migrate(conn)
    balance = Decimal("10000.123456789012345678")
    await conn.execute(
        "INSERT INTO accounts (account_id, kind, starting_balance, wallet_balance) VALUES ('x', 'paper', $1, $1)",
        balance,
    )
    assert await conn.fetchval("SELECT wallet_balance FROM accounts WHERE account_id='x'") == balance
