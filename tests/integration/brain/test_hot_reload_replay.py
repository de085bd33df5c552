"""Hot reload during a replay: the trainer promotes a model while the brain consumes a real recording.

Real processes over loopback: the feed replays the real hftbacktest recordings of /work/shared/data (BTCUSDT and
ETHUSDT, 2024-08-08) through the shared-memory ring at 20x their recorded pace, the brain reads the ring, the
trainer serves TrainerService; all three on this run's PostgreSQL and Redis. Two models stand in the database (trained
on SYNTHETIC data, ``aegis.trainer.synthetic.planted_arrays``: what matters is which one serves, not what it learnt),
the first active. Mid-replay the test calls ``TrainerService.ActivateModel`` (the trainer's promotion path: the
``ml_models`` row changes in PostgreSQL, then a notice goes out on Redis) and asserts:

* the brain serves the new model within 2 s of the promotion, while the feed is still replaying: its
  ``GetBrainStatus.model_loaded_time`` is less than 2 s after the model's ``activated_time`` (PostgreSQL's clock
  in the promoting transaction, no later than its commit; the same host's clock), and ``active_model_version``
  shows it within 2 s of ActivateModel's answer. The brain's model poll is set to 10 minutes, so only the Redis
  notice can make it that fast (the first ActivateModel of a trainer process can itself take a second or more under
  load, which is why the clock starts at the promotion, not at the call);
* no tick is dropped: at the end the brain has read every record the feed published (its ring ``published`` and
  ``records_processed`` equal the feed's ``published``), with no overrun, no lost record, no resync, and its lag
  back to 0. The ring is sized at 2^15 slots (about 4 s of this replay), not the default 2^20 that would hold the
  whole file, so a reload that stalled the brain's loop for a few seconds would show as lost records;
* predictions after the reload carry the new version. This recording yields no signal (about six minutes of two
  symbols close 17 one-minute candles, too few for the strategy's warm-up; ``aegis replay`` reports 0 signals), so
  the test asserts that none was made (``signals_total`` is 0, no row in ``signals``) and that what the brain
  exposes about the model it scores with has switched: ``active_model_version`` and ``model_loaded_time``
  (after the promotion), unchanged to the end. No signal is made up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import redis

from aegis import testing
from aegis.brain import features as feat
from aegis.learning.network import Hyperparameters, fit
from aegis.replay import runner as replay_runner
from aegis.replay import source as replay_source
from aegis.storage import keys
from aegis.storage.migrate import migrate
from aegis.storage.postgres import connect_once
from aegis.trainer import repository as repo
from aegis.trainer.synthetic import planted_arrays
from aegis.v1 import market_pb2 as market_pb
from aegis.v1 import market_pb2_grpc as market_grpc
from aegis.v1 import trainer_pb2 as trainer_pb
from aegis.v1 import trainer_pb2_grpc as trainer_grpc

DATA = Path("/work/shared/data/binance/hftbacktest/examples/usdm")
RECORDINGS = sorted(DATA.glob("*.gz"))
OLD, NEW = "replay-reload-a", "replay-reload-b"
SPEED = "x20"
RING_SLOTS = 1 << 15

pytestmark = [
    pytest.mark.skipif(not RECORDINGS, reason=f"no recordings in {DATA}"),
    pytest.mark.timeout(240),
]


@pytest.fixture
def dsn(admin_dsn: str) -> Iterator[str]:
    """A database of its own, migrated, holding the two models."""
    url = testing.create_database_sync(admin_dsn, "aegis_hot_reload_replay")

    async def seed() -> None:
        data = planted_arrays(300, seed=5)
        conn = await connect_once(url)
        try:
            await migrate(conn)
            for i, version in enumerate((OLD, NEW)):
                artifact = fit(
                    data.features,
                    data.returns_pct,
                    np.ones(len(data.returns_pct)),
                    seed=i,
                    hyper=Hyperparameters(hidden_layers=(8,), epochs=2),
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
                    reason="hot reload replay test (synthetic data)",
                    training_trades=len(data.returns_pct),
                    trained_until=None,
                    seed=i,
                )
            await repo.activate(conn, OLD, reason="start of the hot reload replay test")
        finally:
            await conn.close()

    asyncio.run(seed())
    yield url
    testing.drop_database_sync(admin_dsn, url)


def status_of(client: redis.Redis, key: str) -> dict[str, Any]:
    raw = client.get(key)
    return json.loads(raw) if raw else {}


def wait_for(what: str, fetch, accept, timeout_s: float, logs: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        try:
            value = fetch()
        except grpc.RpcError as exc:  # SERVING comes first; the brain answers UNAVAILABLE while its engine loads
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            value = exc.details()
        else:
            if accept(value):
                return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last value {value}; logs in {logs}")


def test_a_promotion_mid_replay_reaches_the_brain_within_two_seconds_and_no_tick_is_dropped(
    dsn: str, redis_url: str, tmp_path: Path
) -> None:
    src = replay_source.prepare(RECORDINGS, tmp_path / "replay")
    env = replay_runner.replay_env(tmp_path / "home", src.symbols, src.path, SPEED, seed=7, src=src)
    env = {k: v for k, v in env.items() if not k.startswith("AEGIS_EMBEDDED_")}
    env.update(
        DATABASE_URL=dsn,
        REDIS_URL=redis_url,
        AEGIS_RING_CAPACITY=str(RING_SLOTS),
        AEGIS_BRAIN_STATUS_INTERVAL_S="0.2",
        AEGIS_TRAINER_MODEL_POLL_S="600",  # only the Redis notice can make the reload fast
        AEGIS_TRAINER_INTERVAL_S="0",  # no scheduled training: the only promotion is the test's
        AEGIS_SHUTDOWN_GRACE_S="1",
    )
    (tmp_path / "home" / "ring").mkdir(parents=True)
    logs = tmp_path / "logs"
    client = redis.Redis.from_url(redis_url)
    feed_key, brain_key = keys.service_status("feed", "0"), keys.service_status("brain", "shard-0")
    client.delete(feed_key, brain_key)
    brain = testing.ServiceProcess("brain", env, port=int(env["AEGIS_BRAIN_PORT"]), log_dir=logs)
    trainer = testing.ServiceProcess("trainer", env, port=int(env["AEGIS_TRAINER_PORT"]), log_dir=logs)
    feed = testing.ServiceProcess("feed", env, port=int(env["AEGIS_FEED_PORT"]), log_dir=logs)
    with brain, trainer, grpc.insecure_channel(brain.address) as bch, grpc.insecure_channel(trainer.address) as tch:
        market = market_grpc.MarketServiceStub(bch)
        trainer_stub = trainer_grpc.TrainerServiceStub(tch)
        assert brain.wait_status("SERVING", 90), brain.log_text()[-3000:]
        assert trainer.wait_status("SERVING", 90), trainer.log_text()[-3000:]

        def brain_status() -> market_pb.GetBrainStatusResponse:
            return market.GetBrainStatus(market_pb.GetBrainStatusRequest(), timeout=5)

        wait_for("the brain to load the active model", brain_status, lambda s: s.active_model_version == OLD, 30, logs)
        wait_for(
            "the brain to hydrate the symbols",
            lambda: status_of(client, brain_key).get("hydration", {}).get("symbols", 0),
            lambda n: n >= len(src.symbols),
            60,
            logs,
        )
        time.sleep(0.5)  # the warm-up follows the hydration in the same task (as aegis replay waits)
        loaded_before = brain_status().model_loaded_time.ToDatetime()

        with feed:
            # Mid-replay: a quarter of the file published and read.
            wait_for(
                "the replay to be a quarter through",
                lambda: status_of(client, brain_key).get("ring", {}).get("records_processed", 0),
                lambda n: n >= src.frames // 4,
                60,
                logs,
            )
            activated = trainer_stub.ActivateModel(
                trainer_pb.ActivateModelRequest(version=NEW, reason="hot reload during a replay"), timeout=10
            )
            answered = time.monotonic()
            assert activated.model.version == NEW and activated.previous_version == OLD
            switched = wait_for(
                "the brain to serve the promoted model", brain_status, lambda s: s.active_model_version == NEW, 5, logs
            )
            seen_s = time.monotonic() - answered
            frames_at_switch = status_of(client, feed_key).get("frames_in", 0)
            # activated_time is PostgreSQL's now() in the promoting transaction (no later than its commit) and
            # model_loaded_time the brain's clock when it swapped models; one host, one clock.
            promoted_at = activated.model.activated_time.ToDatetime()
            loaded_at = switched.model_loaded_time.ToDatetime()
            reload_s = (loaded_at - promoted_at).total_seconds()
            assert 0 < reload_s < 2.0, f"the brain served {NEW} {reload_s:.3f} s after the promotion"
            assert seen_s < 2.0, f"GetBrainStatus showed {NEW} {seen_s:.3f} s after ActivateModel answered"
            assert frames_at_switch < src.frames, "the replay was over before the reload: not a mid-replay reload"
            assert loaded_at > loaded_before

            # The end of the replay: the feed published the whole file, the brain read all of it.
            feed_done = wait_for(
                "the feed to replay the whole file",
                lambda: status_of(client, feed_key),
                lambda s: s.get("frames_in", 0) >= src.frames,
                120,
                logs,
            )
            ring = wait_for(
                "the brain to read the ring to its end",
                lambda: status_of(client, brain_key).get("ring", {}),
                lambda r: r.get("published") == feed_done["published"] and r.get("lag_records") == 0,
                60,
                logs,
            )
            final = brain_status()

        published = feed_done["published"]
        assert published > 100_000 and feed_done["frames_in"] == src.frames
        assert ring["records_processed"] == ring["published"] == published, (ring, feed_done)
        assert ring["overruns"] == 0 and ring["records_lost"] == 0 and ring["resyncs"] == 0, ring
        assert ring["lag_records"] == 0
        (shard,) = final.shards
        assert shard.lag_records == 0 and shard.lost_records == 0 and shard.resync_count == 0
        # Predictions after the reload: this recording makes no signal (see the module docstring), so the model the
        # brain scores with is read from what it exposes; it stayed the promoted one to the end.
        assert final.signals_total == 0
        assert final.active_model_version == NEW and final.model_loaded_time.ToDatetime() == loaded_at

    async def signals_stored() -> int:
        conn = await connect_once(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM signals"))
        finally:
            await conn.close()

    assert asyncio.run(signals_stored()) == 0
    for proc in (brain, trainer, feed):
        assert "Traceback" not in proc.log_text(), proc.log_text()[-3000:]
    client.close()
