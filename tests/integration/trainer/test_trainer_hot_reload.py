"""The brain's hot reload (aegis.learning.watcher.ActiveModelWatcher) on real PostgreSQL and real Redis pub/sub.

The models are trained on SYNTHETIC data (aegis.trainer.synthetic.planted_arrays, labelled so): the point here is
which model serves, not what it learnt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
import pytest_asyncio

from aegis import testing
from aegis.brain import features as feat
from aegis.brain.strategy import Strategy
from aegis.config import TrainerSettings
from aegis.learning.network import Hyperparameters, fit
from aegis.learning.watcher import ActiveModelWatcher
from aegis.storage.cache import Cache
from aegis.storage.migrate import migrate
from aegis.storage.postgres import Database, connect_once
from aegis.trainer import repository as repo
from aegis.trainer.runner import Trainer
from aegis.trainer.synthetic import planted_arrays

VERSIONS = ("hot-a", "hot-b", "hot-c")


@pytest.fixture(scope="module")
def dsn(admin_dsn: str) -> Iterator[str]:
    url = testing.create_database_sync(admin_dsn, "aegis_trainer_reload")

    async def seed() -> None:
        data = planted_arrays(600, seed=3)
        conn = await connect_once(url)
        try:
            await migrate(conn)
            for i, version in enumerate(VERSIONS):
                artifact = fit(
                    data.features,
                    data.returns_pct,
                    np.ones(len(data.returns_pct)),
                    seed=i,
                    hyper=Hyperparameters(hidden_layers=(8,), epochs=3),
                    feature_schema_version=feat.FEATURE_SCHEMA_VERSION,
                    feature_names=feat.FEATURE_NAMES,
                    version=version,
                )
                await repo.insert_model(
                    conn,
                    artifact,
                    run_id="00000000-0000-4000-8000-000000000000",
                    status="candidate",
                    metrics={},
                    reason="test",
                    training_trades=600,
                    trained_until=None,
                    seed=i,
                )
            await repo.activate(conn, VERSIONS[0], reason="start")
        finally:
            await conn.close()

    asyncio.run(seed())
    yield url
    testing.drop_database_sync(admin_dsn, url)


@pytest_asyncio.fixture
async def parts(dsn: str, redis_url: str) -> AsyncIterator[tuple[Database, Cache, Trainer]]:
    db, cache = Database(dsn), Cache(redis_url)
    yield db, cache, Trainer(db, cache, TrainerSettings(interval_s=0))
    await cache.close()
    await db.close()


async def start(watcher: ActiveModelWatcher) -> asyncio.Task[None]:
    task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.loaded.wait(), 5)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


VECTOR = feat.FeatureVector(feat.FEATURE_SCHEMA_VERSION, tuple(float(i % 5) for i in range(33)))


async def test_a_promotion_reaches_the_predictor_within_two_seconds_without_failing_a_call(
    parts: tuple[Database, Cache, Trainer],
) -> None:
    db, cache, trainer = parts
    strategy = Strategy()
    # a poll far longer than the test: only the Redis notice can make the reload this fast
    watcher = ActiveModelWatcher(db, cache, poll_s=600, on_change=strategy.set_predictor)
    task = await start(watcher)
    try:
        await asyncio.wait_for(watcher.subscribed.wait(), 5)
        current = (await trainer.get_model(None)).version
        assert watcher.version == current and strategy.predictor is watcher.predictor()
        target = next(v for v in VERSIONS if v != current)

        calls, failures, versions_seen = 0, 0, []
        stop_stream = asyncio.Event()

        async def stream() -> None:  # a steady stream of signals being scored while the model changes
            nonlocal calls, failures
            while not stop_stream.is_set():
                for _ in range(20):
                    predictor = watcher.predictor()
                    try:
                        value, version = predictor(VECTOR)  # type: ignore[misc]
                        assert np.isfinite(value)
                    except Exception:
                        failures += 1
                        continue
                    calls += 1
                    if not versions_seen or versions_seen[-1] != version:
                        versions_seen.append(version)
                await asyncio.sleep(0.001)

        streamer = asyncio.create_task(stream())
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        await trainer.activate(target, "hot reload test")
        while watcher.version != target and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - t0
        await asyncio.sleep(0.2)
        stop_stream.set()
        await streamer
        assert watcher.version == target and elapsed < 2.0, elapsed
        assert strategy.predictor is watcher.predictor()
        assert failures == 0 and calls > 200
        assert versions_seen == [current, target]  # one clean switch, never back and forth
    finally:
        await stop(task)


async def test_without_redis_the_periodic_check_finds_the_new_model(parts: tuple[Database, Cache, Trainer]) -> None:
    db, _, trainer = parts
    watcher = ActiveModelWatcher(db, None, poll_s=0.2)
    task = await start(watcher)
    try:
        current = watcher.version
        target = next(v for v in VERSIONS if v != current)
        await trainer.activate(target, "poll test")
        for _ in range(100):
            if watcher.version == target:
                break
            await asyncio.sleep(0.02)
        assert watcher.version == target
    finally:
        await stop(task)


async def test_a_damaged_active_model_is_refused_and_the_current_one_kept(
    parts: tuple[Database, Cache, Trainer],
) -> None:
    db, _, trainer = parts
    watcher = ActiveModelWatcher(db, None, poll_s=0.1)
    task = await start(watcher)
    try:
        current = watcher.version
        target = next(v for v in VERSIONS if v != current)
        async with db.connection() as conn:
            await conn.execute("UPDATE ml_models SET weights = 'garbage'::bytea WHERE version = $1", target)
        await trainer.activate(target, "damaged")
        for _ in range(50):
            if watcher.failures:
                break
            await asyncio.sleep(0.02)
        assert watcher.failures == 1 and watcher.version == current
        value, version = watcher.predictor()(VECTOR)  # type: ignore[misc]
        assert version == current and np.isfinite(value)
    finally:
        await stop(task)
