"""Training runs on real PostgreSQL: validation counts, experience buffer, the lock, and champion/challenger.

Training data: SYNTHETIC-FROM-REAL closed learning trades (aegis.trainer.synthetic.trades_from_klines): entries on
the real 10-day BTCUSDT/ETHUSDT 1m klines, exits from the real future candles with a stop/target rule, random
features with a planted relationship to the realised return. The real klines are stored as 1m candles, so the
price checks run against recorded market data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from aegis import testing
from aegis.config import TrainerSettings
from aegis.storage.postgres import Database
from aegis.trainer import repository as repo
from aegis.trainer.bias import CHECK_NAMES
from aegis.trainer.runner import Trainer
from aegis.trainer.synthetic import Klines, insert_trades, trades_from_klines
from aegis.trainer.testing import klines_database, real_klines

FAST = TrainerSettings(interval_s=0, min_trades=100, epochs=25)
PHASE_A = (60, 5000)  # minutes of the 10-day recording each phase's entries come from
PHASE_B = (5000, 9500)
PHASE_C = (9500, 14400)


@pytest.fixture(scope="module")
def klines(shared_data: Path) -> list[Klines]:
    return real_klines(shared_data)


@pytest.fixture(scope="module")
def dsn(admin_dsn: str, klines: list[Klines]) -> Iterator[str]:
    url = klines_database(admin_dsn, klines, "aegis_trainer_runs")
    yield url
    testing.drop_database_sync(admin_dsn, url)


@pytest_asyncio.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn)
    yield database
    await database.close()


def phase(klines: list[Klines], span: tuple[int, int], seed: int, **kwargs) -> list:  # type: ignore[no-untyped-def]
    return trades_from_klines(klines, seed=seed, start_index=span[0], end_index=span[1], **kwargs)


async def run_to_end(trainer: Trainer, seed: int = 7) -> repo.RunRecord:
    run_id, already = await trainer.start_run(trigger="manual", reason="test", seed=seed)
    assert not already
    await trainer.wait()
    return await trainer.get_run(run_id)


async def active_versions(db: Database) -> list[str]:
    async with db.connection() as conn:
        return [r["version"] for r in await conn.fetch("SELECT version FROM ml_models WHERE status = 'active'")]


async def test_champion_challenger_promotion_and_rejection_paths(db: Database, klines: list[Klines]) -> None:
    a = phase(klines, PHASE_A, 1, plant=0.7, baseline_skill=0.1)
    # corrupt copies of a few real-path trades: each must be refused and counted under its reason
    bad = [
        dataclasses.replace(a[0], trade_id="00000000-0000-4000-8000-000000000001", gross_pnl=a[0].gross_pnl + 1,
                            realised_pnl=a[0].realised_pnl + 1),
        dataclasses.replace(a[1], trade_id="00000000-0000-4000-8000-000000000002", feature_schema_version=99),
        dataclasses.replace(a[2], trade_id="00000000-0000-4000-8000-000000000003",
                            opened_at=a[2].opened_at - dt.timedelta(days=400),
                            closed_at=a[2].closed_at - dt.timedelta(days=400)),  # no candle then: MISSING_CANDLE
        dataclasses.replace(a[3], trade_id="00000000-0000-4000-8000-000000000004",
                            entry_price=a[3].entry_price * Decimal("1.05"),
                            gross_pnl=Decimal(0), realised_pnl=-a[3].fees),
    ]  # fmt: skip
    bad[3] = dataclasses.replace(
        bad[3],
        gross_pnl=(bad[3].quantity * (bad[3].exit_price - bad[3].entry_price) * (1 if bad[3].side == "BUY" else -1)),
    )
    bad[3] = dataclasses.replace(bad[3], realised_pnl=bad[3].gross_pnl - bad[3].fees + bad[3].funding)
    async with db.connection() as conn:
        await insert_trades(conn, a + bad)
    trainer = Trainer(db, None, FAST)

    # 1. no active model: a model with skill beats the rule baseline and is promoted
    first = await run_to_end(trainer)
    assert first.status == "succeeded", first.error
    assert first.trades_total == len(a) + 4 and first.trades_valid == len(a) and first.trades_invalid == 4
    assert first.invalid_by_reason == {
        "GROSS_PNL_MISMATCH": 1,
        "SCHEMA_MISMATCH": 1,
        "MISSING_CANDLE": 1,
        "ENTRY_PRICE_OUTSIDE_CANDLE": 1,
    }
    assert [c["name"] for c in first.bias_checks] == list(CHECK_NAMES)
    assert all(c["passed"] for c in first.bias_checks), first.bias_checks
    assert first.baseline_name == "rules" and first.previous_model_version is None
    assert first.promoted, first.reason
    assert first.metrics["information_coefficient"] > first.baseline_metrics["rules"]["information_coefficient"]
    v1 = first.model_version
    assert await active_versions(db) == [v1]
    async with db.connection() as conn:
        stored = await conn.fetchval("SELECT count(*) FROM experience_buffer WHERE valid")
        model = await repo.get_model(conn, v1)
    assert stored == len(a)
    assert model.status == "active" and model.training_trades == len(a) and model.run_id == first.run_id

    # 2. a worse challenger (a crippled optimiser) is stored, rejected, and the champion stays
    crippled = Trainer(db, None, dataclasses.replace(FAST, epochs=1, learning_rate=1e-6))
    second = await run_to_end(crippled)
    assert second.status == "succeeded" and not second.promoted, second.reason
    assert second.previous_model_version == v1 and v1 in (second.baseline_name or "")
    assert "not better" in (second.reason or "")
    assert await active_versions(db) == [v1]
    async with db.connection() as conn:
        assert (await repo.get_model(conn, second.model_version)).status == "rejected"

    # 3. a skilled challenger trained on a one-sided set fails SIDE_BALANCE: recorded, not promoted
    b = phase(klines, PHASE_B, 2, plant=0.7, sides=(1,))
    async with db.connection() as conn:
        await insert_trades(conn, b)
    one_sided = Trainer(db, None, dataclasses.replace(FAST, max_trades=len(b)))
    third = await run_to_end(one_sided)
    assert third.status == "succeeded" and not third.promoted
    checks = {c["name"]: c for c in third.bias_checks}
    assert not checks["SIDE_BALANCE"]["passed"] and checks["SIDE_BALANCE"]["figure"] > 95.0
    assert "SIDE_BALANCE" in (third.reason or "")
    assert await active_versions(db) == [v1]
    async with db.connection() as conn:
        assert (await repo.get_model(conn, third.model_version)).status == "rejected"
        await conn.execute("DELETE FROM trades WHERE trade_id = ANY($1::uuid[])", [t.trade_id for t in b])

    # 4. the market changed (the return now shows in another feature): a challenger trained on the recent
    #    window beats the champion on trades the champion never saw, is promoted, and the champion is retired —
    #    exactly one active model
    c = phase(klines, PHASE_C, 3, plant=0.8, plant_feature="t_rsi")
    async with db.connection() as conn:
        await insert_trades(conn, c)
    recent = Trainer(db, None, dataclasses.replace(FAST, max_trades=len(c)))
    fourth = await run_to_end(recent, seed=11)
    assert fourth.status == "succeeded", fourth.error
    assert fourth.promoted, fourth.reason
    assert fourth.baseline_name is not None and "never saw" in fourth.baseline_name
    v4 = fourth.model_version
    assert await active_versions(db) == [v4]
    async with db.connection() as conn:
        statuses = dict(await conn.fetch("SELECT version, status FROM ml_models"))
        events = await conn.fetchval("SELECT count(*) FROM service_events WHERE kind = 'model_activated'")
    assert statuses[v1] == "retired" and statuses[v4] == "active"
    assert sorted(statuses.values()).count("active") == 1 and len(statuses) == 4
    assert events == 2


async def test_one_run_at_a_time_across_replicas_and_skipped_runs(db: Database, klines: list[Klines]) -> None:
    replica_a = Trainer(db, None, dataclasses.replace(FAST, min_trades=10_000, max_trades=10_000), host="a")
    replica_b = Trainer(db, None, FAST, host="b")
    run_id, already = await replica_a.start_run(trigger="manual", reason="first")
    again = await replica_a.start_run(trigger="manual", reason="second")
    other = await replica_b.start_run(trigger="schedule", reason="schedule")
    assert not already and again == (run_id, True)
    assert other == (run_id, True)  # the other replica sees the advisory lock taken and names the running run
    await replica_a.wait()
    record = await replica_a.get_run(run_id)
    assert record.status == "skipped" and "10000 needed" in (record.error or "")
    assert record.trades_valid > 0 and len(record.bias_checks) == 5
    # the lock is free again
    next_id, already = await replica_b.start_run(trigger="manual", reason="after", seed=5)
    assert not already and next_id != run_id
    await replica_b.wait()


async def test_a_run_left_running_by_a_dead_replica_is_marked_failed(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO training_runs (run_id, trigger, status, seed) "
            "VALUES ('00000000-0000-4000-8000-00000000dead', 'schedule', 'running', 1)"
        )
    trainer = Trainer(db, None, dataclasses.replace(FAST, min_trades=10_000, max_trades=10_000))
    await run_to_end(trainer)
    dead = await trainer.get_run("00000000-0000-4000-8000-00000000dead")
    assert dead.status == "failed" and dead.error == "the trainer stopped during the run"
