"""Exchange rules at rest: PostgreSQL + Redis cache + notice, the orchestrator's refresh against the simulator, and
the risk keeper's start on an empty or unreachable store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from aegis import config, testing
from aegis.errors import DependencyUnavailable, ValidationError
from aegis.exchange.rest import BinanceRest
from aegis.exchange.rules import load_exchange_info, load_leverage_brackets
from aegis.exchange.rules_store import (
    cached_symbol_rules,
    load_rules,
    refresh_rules,
    rules_version,
    save_and_announce,
    save_exchange_info,
    store_brackets_file,
    stored_counts,
)
from aegis.risk.testing import risk_server
from aegis.sim import Simulator
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once

NOV = "binance/alphadogs_coinbase_python/futures_exchange_info.json"
TIERS = "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json"


def fresh_migrated(admin_dsn: str) -> str:
    dsn = testing.create_database_sync(admin_dsn, "aegis_risk_rules")

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    return dsn


@pytest.fixture
def rules_dsn(admin_dsn: str) -> Iterator[str]:
    dsn = fresh_migrated(admin_dsn)
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


@pytest_asyncio.fixture
async def stores(rules_dsn: str, redis_url: str) -> AsyncIterator[tuple[Database, Cache]]:
    db, cache = Database(rules_dsn), Cache(redis_url)
    yield db, cache
    await db.close()
    await cache.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(speed=None) as simulator:
        yield simulator


async def test_refresh_rules_stores_caches_and_announces_the_simulators_exchange_info(
    stores: tuple[Database, Cache], sim: Simulator, redis_url: str, shared_data: Path
) -> None:
    db, cache = stores
    listener = aioredis.Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    await pubsub.subscribe(keys.EXCHANGE_RULES_CHANNEL)
    try:
        async with BinanceRest(sim.rest_url) as rest:
            report = await refresh_rules(rest, db, cache)
        expected = load_exchange_info(shared_data / NOV)
        assert report.symbols == len(expected) == 647
        assert report.trading == 555 and report.cached and report.notified and report.bracket_symbols is None

        snapshot = await load_rules(db)
        assert snapshot.rules.keys() == expected.keys()
        assert snapshot.rules["BTCUSDT"] == expected["BTCUSDT"]  # exact round trip through jsonb
        assert snapshot.bracket_symbols == 0

        cached = await cached_symbol_rules(cache, "ETHUSDT")
        assert cached == expected["ETHUSDT"]
        ttl = await cache.client.ttl(keys.exchange_rules("ETHUSDT"))
        assert 0 < ttl <= keys.EXCHANGE_RULES_TTL_S

        notice = None
        for _ in range(50):
            notice = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if notice is not None:
                break
        assert notice is not None
        body = json.loads(notice["data"])
        assert body["symbols"] == 647 and body["source"].startswith("exchangeInfo http://127.0.0.1:")
    finally:
        await pubsub.aclose()
        await listener.aclose()


async def test_a_save_replaces_the_whole_set_and_changes_the_version(
    stores: tuple[Database, Cache], shared_data: Path
) -> None:
    db, cache = stores
    info = json.loads((shared_data / NOV).read_text())
    await save_exchange_info(db, info)
    await store_brackets_file(db, cache, shared_data / TIERS)
    first = await rules_version(db)
    snapshot = await load_rules(db)
    tiers = load_leverage_brackets(shared_data / TIERS)
    assert snapshot.rules["BTCUSDT"].brackets == tiers["BTCUSDT"]
    assert await stored_counts(db) == (647, len(tiers))

    two = {**info, "symbols": [s for s in info["symbols"] if s["symbol"] in ("BTCUSDT", "ETHUSDT")]}
    await save_exchange_info(db, two)
    assert await rules_version(db) != first
    snapshot = await load_rules(db)
    assert set(snapshot.rules) == {"BTCUSDT", "ETHUSDT"}  # delisted symbols do not linger
    assert snapshot.rules["ETHUSDT"].brackets == tiers["ETHUSDT"]  # brackets of other symbols stay stored


async def test_rules_that_do_not_parse_write_nothing(stores: tuple[Database, Cache], shared_data: Path) -> None:
    db, _ = stores
    info = json.loads((shared_data / NOV).read_text())
    await save_exchange_info(db, info)
    before = await rules_version(db)
    broken = json.loads(json.dumps(info))
    broken["symbols"][3]["filters"] = [f for f in broken["symbols"][3]["filters"] if f["filterType"] != "LOT_SIZE"]
    with pytest.raises(ValidationError, match="LOT_SIZE"):
        await save_exchange_info(db, broken)
    with pytest.raises(ValidationError, match="empty"):
        await save_exchange_info(db, {**info, "symbols": []})
    assert await rules_version(db) == before


async def test_redis_down_still_saves_to_postgres(stores: tuple[Database, Cache], shared_data: Path) -> None:
    db, _ = stores
    dead = Cache(f"redis://127.0.0.1:{testing.free_port()}/0", timeout_s=0.2)
    try:
        report = await save_and_announce(db, dead, info=json.loads((shared_data / NOV).read_text()))
    finally:
        await dead.close()
    assert report.symbols == 647 and not report.cached and not report.notified
    assert (await stored_counts(db))[0] == 647


async def test_a_fresh_install_fetches_exchange_info_from_the_exchange_and_stores_it(
    rules_dsn: str, redis_url: str, sim: Simulator
) -> None:
    env = {"DATABASE_URL": rules_dsn, "REDIS_URL": redis_url, "AEGIS_BINANCE_REST_URL": sim.rest_url}
    async with risk_server(config.load(env)) as risk:
        await risk.wait_rules()
        assert len(risk.desk.symbol_rules("BTCUSDT")[0].order_types) > 0
        assert (await stored_counts(risk.db))[0] == 647


async def test_without_rules_or_exchange_risk_says_why(rules_dsn: str, redis_url: str) -> None:
    env = {
        "DATABASE_URL": rules_dsn,
        "REDIS_URL": redis_url,
        "AEGIS_BINANCE_REST_URL": f"http://127.0.0.1:{testing.free_port()}",
    }
    async with risk_server(config.load(env)) as risk:
        for _ in range(200):
            if "failed" in risk.desk.rules_help:
                break
            await asyncio.sleep(0.02)
        with pytest.raises(DependencyUnavailable, match="exchange rules are not loaded yet: PostgreSQL holds none"):
            risk.desk.symbol_rules("BTCUSDT")


async def test_the_keeper_waits_for_postgres_then_loads(tmp_path: Path, redis_url: str, shared_data: Path) -> None:
    from aegis.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(tmp_path / "pg-home", testing.free_port())
    env = {"DATABASE_URL": pg.dsn(), "REDIS_URL": redis_url, "AEGIS_RISK_FETCH_RULES": "false"}
    async with risk_server(config.load(env)) as risk:
        for _ in range(200):
            if "PostgreSQL does not answer" in risk.desk.rules_help:
                break
            await asyncio.sleep(0.02)
        assert "PostgreSQL does not answer" in risk.desk.rules_help
        await asyncio.to_thread(pg.start_detached)
        try:
            conn = await connect_once(pg.dsn())
            await migrate(conn)
            await conn.close()
            db = Database(pg.dsn())
            await save_exchange_info(db, json.loads((shared_data / NOV).read_text()))
            await db.close()
            await risk.wait_rules(20)
            assert risk.desk.symbol_rules("BTCUSDT")[0].status == "TRADING"
        finally:
            await asyncio.to_thread(pg.stop_detached)
