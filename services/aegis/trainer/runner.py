"""The trainer's imperative shell: runs on demand and on a schedule, one at a time across replicas.

A run, end to end (docs/learning.md has the reasoning):

1. take the PostgreSQL session advisory lock :data:`~aegis.trainer.repository.TRAINING_LOCK` on a connection held
   for the whole run — a second replica (or a second TrainNow) finds it taken and reports the run in progress;
   runs a dead replica left 'running' are marked failed;
2. read the newest ``max_trades`` closed trades of the learning accounts from PostgreSQL (never from memory), and
   the recorded 1m candles of the minutes they opened and closed in;
3. validate every trade (:mod:`aegis.trainer.validation`), store the valid ones in ``experience_buffer``, run the
   five bias checks (:mod:`aegis.trainer.bias`) and record the figures in the run at once;
4. with fewer than ``min_trades`` valid trades, stop: the run is SKIPPED;
5. in a worker thread: walk-forward evaluation, the final fit, the comparison with the active model or the rule
   baseline (:mod:`aegis.trainer.engine`);
6. in one transaction: store the model (active, candidate or rejected, with its reason), promote it (retiring the
   previous one) and finish the run; then announce a promotion on Redis so the brain reloads within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from aegis.config import TrainerSettings
from aegis.errors import AegisError, DependencyUnavailable, ValidationError
from aegis.learning.network import Hyperparameters
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database
from aegis.trainer import repository as repo
from aegis.trainer.bias import run_checks
from aegis.trainer.engine import CycleResult, Dataset, train_cycle
from aegis.trainer.validation import Rules, candle_keys, validate

log = logging.getLogger("aegis.trainer")

Clock = Callable[[], dt.datetime]
MAX_SEED = 2**63 - 1
MAX_REASON_LENGTH = 500
"""Longest ``reason`` a training run records."""


def _check_text(field: str, value: str) -> None:
    """Refuse text PostgreSQL cannot store (a NUL character) or longer than :data:`MAX_REASON_LENGTH`."""
    if "\x00" in value:
        raise ValidationError(field, "must not contain a NUL character")
    if len(value) > MAX_REASON_LENGTH:
        raise ValidationError(field, f"is longer than {MAX_REASON_LENGTH} characters")


"""Seeds are stored in a bigint column."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def model_version(now: dt.datetime, run_id: str) -> str:
    """Return a new model's version: ``mlp-<UTC time>-<run id prefix>`` (sortable, unique per run)."""
    return f"mlp-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{run_id[:8]}"


@dataclass(frozen=True, slots=True)
class Activation:
    model: repo.ModelRecord
    previous_version: str | None


class Trainer:
    """Start, run and report training runs; change the active model."""

    def __init__(
        self,
        db: Database,
        cache: Cache | None,
        settings: TrainerSettings,
        *,
        clock: Clock = utc_now,
        host: str | None = None,
    ) -> None:
        self._db = db
        self._cache = cache
        self.settings = settings
        self._clock = clock
        self._host = host or socket.gethostname()
        self._start_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._run_id: str | None = None
        self.runs_started = 0

    # ----------------------------------------------------------------------------------- starting

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start_run(self, *, trigger: str, reason: str = "", seed: int | None = None) -> tuple[str, bool]:
        """Start a run in the background; return (run id, already_running).

        When this replica or another one is training, nothing starts and the running run's id comes back
        (empty when the other replica's run row cannot be seen yet).
        """
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise ValidationError("seed", f"must be from 0 to {MAX_SEED}, got {seed}")
        _check_text("reason", reason)  # refused whether or not a run would start
        async with self._start_lock:
            if self.running:
                return self._run_id or "", True
            pool = await self._db.pool()
            try:
                conn = await pool.acquire(timeout=5.0)
            except (OSError, TimeoutError) as exc:
                raise DependencyUnavailable(f"PostgreSQL connection failed: {exc}") from exc
            handed_over = False
            try:
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", repo.TRAINING_LOCK):
                    return await repo.running_run_id(conn) or "", True
                try:
                    abandoned = await repo.fail_abandoned_runs(conn)
                    if abandoned:
                        log.warning("marked %d abandoned training run(s) as failed", abandoned)
                    run_id = str(uuid.uuid4())
                    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
                    await repo.insert_run(
                        conn, run_id, trigger=trigger, request_reason=reason or trigger, seed=seed, host=self._host
                    )
                except BaseException:
                    await conn.execute("SELECT pg_advisory_unlock($1)", repo.TRAINING_LOCK)
                    raise
                self._run_id = run_id
                self.runs_started += 1
                self._task = asyncio.create_task(self._run(pool, conn, run_id, seed), name=f"training-{run_id}")
                handed_over = True
                log.info("training run %s started (%s, seed %d)", run_id, reason or trigger, seed)
                return run_id, False
            finally:
                if not handed_over:
                    await pool.release(conn)

    async def wait(self) -> None:
        """Wait until the run in progress (if any) has finished."""
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def close(self) -> None:
        """Stop a run in progress (it is recorded as failed by the next run that takes the lock)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ----------------------------------------------------------------------------------- one run

    async def _run(self, pool: Any, conn: Any, run_id: str, seed: int) -> None:
        try:
            try:
                await self._execute(conn, run_id, seed)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        repo.update_run(
                            conn, run_id, status="failed", finished_at=self._clock(), error="cancelled (shutdown)"
                        )
                    )
                raise
            except Exception as exc:
                log.exception("training run %s failed", run_id)
                with contextlib.suppress(Exception):
                    await repo.update_run(
                        conn, run_id, status="failed", finished_at=self._clock(), error=f"{type(exc).__name__}: {exc}"
                    )
        finally:
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock($1)", repo.TRAINING_LOCK)
            await pool.release(conn)

    async def _execute(self, conn: Any, run_id: str, seed: int) -> None:
        from aegis.brain import features as feat  # numba-backed analytics: loaded at the first run, not at start

        s = self.settings
        t0 = time.perf_counter()
        trades = await repo.read_trades(conn, s.max_trades)
        candles = await repo.read_candles(conn, candle_keys(trades))
        now = self._clock()
        rules = Rules(feat.FEATURE_SCHEMA_VERSION, len(feat.FEATURE_NAMES), s.price_tolerance_pct, s.clock_skew_s)
        checked = validate(trades, candles, now, rules)
        ds = Dataset.of(checked.valid)
        await repo.save_experience(conn, checked.valid, ds)
        checks = run_checks(ds.returns_pct, ds.symbols, ds.sides, ds.close_reasons, s)
        failures = [c.name for c in checks if not c.passed]
        champion = await repo.champion(conn)
        data_until = max((t.closed_at for t in trades), default=None)
        await repo.update_run(
            conn,
            run_id,
            trades_total=checked.total,
            trades_valid=len(checked.valid),
            trades_invalid=len(checked.refused),
            invalid_by_reason=dict(checked.invalid_by_reason),
            bias_checks=[c.to_json() for c in checks],
            previous_model_version=champion.version if champion else None,
            data_until=data_until,
        )
        log.info(
            "run %s: %d trades read, %d valid, refused %s, bias failures %s",
            run_id,
            checked.total,
            len(checked.valid),
            dict(checked.invalid_by_reason) or "none",
            failures or "none",
        )
        if len(ds) < s.min_trades:
            await repo.update_run(
                conn,
                run_id,
                status="skipped",
                finished_at=self._clock(),
                error=f"{len(ds)} valid trades; at least {s.min_trades} needed (AEGIS_TRAINER_MIN_TRADES)",
            )
            log.info("run %s skipped: %d valid trades, %d needed", run_id, len(ds), s.min_trades)
            return

        version = model_version(now, run_id)
        hyper = Hyperparameters.from_settings(s)
        result: CycleResult = await asyncio.to_thread(
            train_cycle,
            ds,
            seed=seed,
            settings=s,
            version=version,
            champion=champion,
            bias_failures=failures,
            hyper=hyper,
        )
        promoted = await self._store(conn, run_id, seed, ds, result, champion.version if champion else None)
        log.info(
            "run %s finished in %.1f s: model %s %s",
            run_id,
            time.perf_counter() - t0,
            version,
            "promoted" if promoted else "not promoted",
            extra={"reason": result.reason},
        )
        if promoted:
            await self._announce(version)

    async def _store(
        self, conn: Any, run_id: str, seed: int, ds: Dataset, result: CycleResult, previous: str | None
    ) -> bool:
        s = self.settings
        version = result.artifact.version
        reason = result.reason
        if result.promote and not s.auto_promote:
            status, promote = "candidate", False
            reason = reason.replace("promoted:", "would be promoted (AEGIS_TRAINER_AUTO_PROMOTE=false):", 1)
        else:
            status, promote = ("active" if result.promote else "rejected"), result.promote
        metrics = {
            "walk_forward": result.model_metrics.to_json(),
            "rules": result.rules_metrics.to_json(),
            "compared": {
                "baseline_name": result.comparison.baseline_name,
                "challenger": result.comparison.challenger.to_json(),
                "baseline": result.comparison.baseline.to_json(),
                "improvement": result.comparison.improvement,
                "metric": s.promotion_metric,
                "margin": s.promotion_margin,
            },
            "folds": [m.to_json() for m in result.fold_metrics],
            "timings_s": result.timings_s,
        }
        last = ds.last_closed_ms
        trained_until = None if last is None else dt.datetime.fromtimestamp(last / 1000, dt.UTC)
        async with conn.transaction():
            await repo.insert_model(
                conn,
                result.artifact,
                run_id=run_id,
                status="candidate" if promote else status,
                metrics=metrics,
                reason=reason,
                training_trades=len(ds),
                trained_until=trained_until,
                seed=seed,
            )
            if promote:
                try:
                    await repo.activate(conn, version, reason=f"training run {run_id}", expected_previous=previous)
                except ValueError as exc:
                    promote = False
                    reason = f"not promoted: {exc}; ActivateModel can still promote it"
                    await conn.execute("UPDATE ml_models SET reason = $2 WHERE version = $1", version, reason)
            await repo.update_run(
                conn,
                run_id,
                status="succeeded",
                finished_at=self._clock(),
                metrics=result.model_metrics.to_json(),
                baseline_metrics={
                    "compared": result.comparison.baseline.to_json(),
                    "challenger_on_compared": result.comparison.challenger.to_json(),
                    "rules": result.rules_metrics.to_json(),
                },
                baseline_name=result.comparison.baseline_name,
                model_version=version,
                promoted=promote,
                reason=reason,
            )
        return promote

    async def _announce(self, version: str) -> None:
        if self._cache is None:
            return
        try:
            await self._cache.client.publish(keys.MODEL_PROMOTED_CHANNEL, version)
        except (RedisError, OSError) as exc:  # PostgreSQL holds the truth; the brain's periodic check finds it
            log.warning(
                "could not announce model %s on Redis (%s); brains pick it up at their next check", version, exc
            )

    # ----------------------------------------------------------------------------------- schedule

    async def schedule(self) -> None:
        """Start a run every ``interval_s`` when learning trades closed since the last run (until cancelled)."""
        interval = self.settings.interval_s
        if interval <= 0:
            log.info("scheduled training off (AEGIS_TRAINER_INTERVAL_S=0): TrainNow only")
            return
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._db.connection() as conn:
                    newest = await repo.latest_learning_close(conn)
                    seen = await repo.last_finished_data_until(conn)
                if newest is None or (seen is not None and newest <= seen):
                    log.debug("scheduled training: no learning trade closed since the last run")
                    continue
                run_id, already = await self.start_run(trigger="schedule", reason="schedule")
                if already:
                    log.info("scheduled training: run %s is still in progress", run_id or "(another replica)")
            except AegisError as exc:
                log.warning("scheduled training not started: %s", exc)
            except Exception:
                log.exception("scheduled training not started")

    # ----------------------------------------------------------------------------------- models and reports

    async def activate(self, version: str, reason: str) -> Activation:
        """Make ``version`` the active model by hand (promotion or rollback) and announce it."""
        from aegis.brain import features as feat

        if not version:
            raise ValidationError("version", "is required")
        _check_text("version", version)
        _check_text("reason", reason)
        async with self._db.connection() as conn:
            model = await repo.get_model(conn, version)
            try:
                feat.names_of(model.feature_schema_version)
            except KeyError:
                raise ValidationError(
                    "version", f"{version} takes feature schema {model.feature_schema_version}, which the brain lacks"
                ) from None
            previous = await repo.activate(conn, version, reason=reason or "ActivateModel")
            model = await repo.get_model(conn, version)
        if previous != version:
            log.info("model %s activated by hand (was %s): %s", version, previous or "none", reason or "-")
            await self._announce(version)
        return Activation(model, previous)

    async def get_model(self, version: str | None) -> repo.ModelRecord:
        async with self._db.connection() as conn:
            return await repo.get_model(conn, version)

    async def list_models(self, size: int, token: str, status: str | None) -> tuple[list[repo.ModelRecord], str]:
        async with self._db.connection() as conn:
            return await repo.list_models(conn, repo.page_size(size), token, status)

    async def get_run(self, run_id: str | None) -> repo.RunRecord:
        async with self._db.connection() as conn:
            return await repo.get_run(conn, run_id)

    async def list_runs(self, size: int, token: str, status: str | None) -> tuple[list[repo.RunRecord], str]:
        async with self._db.connection() as conn:
            return await repo.list_runs(conn, repo.page_size(size), token, status)
