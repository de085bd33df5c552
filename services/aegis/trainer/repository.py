"""The trainer's PostgreSQL reads and writes: trades and candles in; experience, runs and models out.

Every function takes a connection, so the caller decides what shares a transaction (a run's model, its promotion
and its report are committed together).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aegis.errors import NotFoundError, ValidationError
from aegis.learning.artifact import ModelArtifact
from aegis.trainer.engine import Champion, Dataset
from aegis.trainer.evaluation import Metrics
from aegis.trainer.validation import CandleKey, ClosedTrade, MinuteRange

TRAINING_LOCK = 0x4AE6_7EA1
"""Session advisory lock held by the replica that is training (one training at a time across replicas)."""
MODEL_LOCK = 0x4AE6_40DE
"""Transaction advisory lock around every change of the active model."""

MODEL_STATUSES = ("candidate", "active", "retired", "rejected")
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "skipped")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


# --------------------------------------------------------------------------------------------- inputs

_TRADES = """
SELECT t.trade_id::text AS trade_id, t.account_id, t.symbol, t.side, t.quantity, t.entry_price, t.exit_price,
       t.margin, t.opened_at, t.closed_at, t.close_reason, t.gross_pnl, t.fees, t.funding, t.realised_pnl,
       t.reward_score, t.predicted_return_pct, t.model_version, t.feature_schema_version, t.features
FROM trades t JOIN accounts a ON a.account_id = t.account_id
WHERE a.kind = 'learning'
ORDER BY t.closed_at DESC, t.trade_id DESC
LIMIT $1
"""


async def read_trades(conn: Any, limit: int) -> list[ClosedTrade]:
    """Return the newest ``limit`` closed trades of learning accounts, oldest first."""
    rows = await conn.fetch(_TRADES, limit)
    out = [
        ClosedTrade(
            trade_id=r["trade_id"],
            account_id=r["account_id"],
            symbol=r["symbol"],
            side=r["side"],
            quantity=r["quantity"],
            entry_price=r["entry_price"],
            exit_price=r["exit_price"],
            margin=r["margin"],
            opened_at=r["opened_at"],
            closed_at=r["closed_at"],
            close_reason=r["close_reason"],
            gross_pnl=r["gross_pnl"],
            fees=r["fees"],
            funding=r["funding"],
            realised_pnl=r["realised_pnl"],
            reward_score=r["reward_score"],
            predicted_return_pct=r["predicted_return_pct"],
            model_version=r["model_version"],
            feature_schema_version=r["feature_schema_version"],
            features=None if r["features"] is None else tuple(r["features"]),
        )
        for r in rows
    ]
    out.reverse()
    return out


async def latest_learning_close(conn: Any) -> dt.datetime | None:
    return await conn.fetchval(
        "SELECT max(t.closed_at) FROM trades t JOIN accounts a ON a.account_id = t.account_id WHERE a.kind = 'learning'"
    )


_CANDLES = """
SELECT c.symbol, c.open_time, c.low, c.high
FROM unnest($1::text[], $2::timestamptz[]) AS k(symbol, open_time)
JOIN candles c ON c.symbol = k.symbol AND c.timeframe = '1m' AND c.open_time = k.open_time
"""


async def read_candles(conn: Any, keys: Iterable[CandleKey]) -> dict[CandleKey, MinuteRange]:
    """Return the recorded 1m candles among ``keys`` (missing ones are simply absent)."""
    wanted = sorted(keys)
    if not wanted:
        return {}
    rows = await conn.fetch(_CANDLES, [k[0] for k in wanted], [k[1] for k in wanted])
    return {(r["symbol"], r["open_time"]): MinuteRange(r["low"], r["high"]) for r in rows}


async def save_experience(conn: Any, trades: Sequence[ClosedTrade], ds: Dataset) -> int:
    """Upsert the valid trades into ``experience_buffer`` (a COPY into a staging table, then one upsert)."""
    if not trades:
        return 0
    by_id = {t.trade_id: t for t in trades}
    records = []
    for i, trade_id in enumerate(ds.trade_ids):
        t = by_id[trade_id]
        records.append(
            (
                trade_id,
                t.account_id,
                t.symbol,
                t.side,
                t.closed_at,
                ds.feature_schema_version,
                ds.features[i].tolist(),
                float(ds.returns_pct[i]),
                t.reward_score,
            )
        )
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS experience_stage (trade_id uuid, account_id text, symbol text, "
            "side text, closed_at timestamptz, feature_schema_version integer, features double precision[], "
            "realised_return_pct double precision, reward_score integer) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table("experience_stage", records=records)
        await conn.execute(
            "INSERT INTO experience_buffer (trade_id, account_id, symbol, side, closed_at, feature_schema_version, "
            "features, realised_return_pct, reward_score, valid, invalid_reason) "
            "SELECT trade_id, account_id, symbol, side, closed_at, feature_schema_version, features, "
            "realised_return_pct, reward_score, true, NULL FROM experience_stage "
            "ON CONFLICT (trade_id) DO UPDATE SET features = EXCLUDED.features, "
            "feature_schema_version = EXCLUDED.feature_schema_version, "
            "realised_return_pct = EXCLUDED.realised_return_pct, reward_score = EXCLUDED.reward_score, "
            "valid = true, invalid_reason = NULL"
        )
    return len(records)


# --------------------------------------------------------------------------------------------- paging


def encode_token(when: dt.datetime, key: str) -> str:
    raw = _json([when.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[dt.datetime, str] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, key = json.loads(raw)
        return dt.datetime.fromisoformat(when), str(key)
    except (ValueError, TypeError):
        raise ValidationError("page_token", "is not a token this server gave out") from None


def page_size(requested: int) -> int:
    if requested < 0:
        raise ValidationError("page_size", f"must not be negative, got {requested}")
    return 50 if requested == 0 else min(requested, 500)


# --------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    status: str
    trigger: str
    request_reason: str | None
    seed: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    trades_total: int
    trades_valid: int
    trades_invalid: int
    invalid_by_reason: Mapping[str, int]
    bias_checks: list[dict[str, Any]]
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    baseline_name: str | None
    model_version: str | None
    promoted: bool
    reason: str | None
    error: str | None
    previous_model_version: str | None
    data_until: dt.datetime | None


_RUN_COLUMNS = (
    "run_id::text AS run_id, status, trigger, request_reason, seed, started_at, finished_at, trades_total, "
    "trades_valid, trades_invalid, invalid_by_reason, bias_checks, metrics, baseline_metrics, baseline_name, "
    "model_version, promoted, reason, error, previous_model_version, data_until"
)


def _run(row: Any) -> RunRecord:
    data = dict(row)
    for key in ("invalid_by_reason", "bias_checks", "metrics", "baseline_metrics"):
        data[key] = _loads(data[key])
    return RunRecord(**data)


async def insert_run(conn: Any, run_id: str, *, trigger: str, request_reason: str, seed: int, host: str) -> None:
    await conn.execute(
        "INSERT INTO training_runs (run_id, trigger, request_reason, status, seed, host) "
        "VALUES ($1, $2, $3, 'running', $4, $5)",
        run_id,
        trigger,
        request_reason,
        seed,
        host,
    )


async def fail_abandoned_runs(conn: Any) -> int:
    """Mark runs left 'running' by a replica that died as failed (call only while holding TRAINING_LOCK)."""
    result = await conn.execute(
        "UPDATE training_runs SET status = 'failed', finished_at = now(), "
        "error = 'the trainer stopped during the run' WHERE status IN ('queued', 'running')"
    )
    return int(result.split()[-1])


async def update_run(conn: Any, run_id: str, **columns: Any) -> None:
    """Set columns of a run (dicts and lists are stored as JSON)."""
    names = list(columns)
    values = [_json(v) if isinstance(v, dict | list) else v for v in columns.values()]
    casts = {"invalid_by_reason", "bias_checks", "metrics", "baseline_metrics"}
    sets = ", ".join(f"{name} = ${i + 2}{'::jsonb' if name in casts else ''}" for i, name in enumerate(names))
    await conn.execute(f"UPDATE training_runs SET {sets} WHERE run_id = $1", run_id, *values)


async def running_run_id(conn: Any) -> str | None:
    return await conn.fetchval(
        "SELECT run_id::text FROM training_runs WHERE status = 'running' ORDER BY started_at DESC LIMIT 1"
    )


async def get_run(conn: Any, run_id: str | None) -> RunRecord:
    """Return run ``run_id``, or the latest finished run when None; raise NotFoundError when there is none."""
    if run_id is None:
        row = await conn.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM training_runs WHERE status IN ('succeeded', 'failed', 'skipped') "
            "ORDER BY finished_at DESC NULLS LAST, started_at DESC LIMIT 1"
        )
        if row is None:
            raise NotFoundError("no training run has finished yet")
        return _run(row)
    try:
        uuid.UUID(run_id)
    except ValueError:
        raise ValidationError("run_id", f"{run_id!r} is not a UUID") from None
    row = await conn.fetchrow(f"SELECT {_RUN_COLUMNS} FROM training_runs WHERE run_id = $1", run_id)
    if row is None:
        raise NotFoundError(f"no training run {run_id}")
    return _run(row)


async def last_finished_data_until(conn: Any) -> dt.datetime | None:
    return await conn.fetchval(
        "SELECT data_until FROM training_runs WHERE status IN ('succeeded', 'skipped') ORDER BY started_at DESC LIMIT 1"
    )


async def list_runs(conn: Any, size: int, token: str, status: str | None) -> tuple[list[RunRecord], str]:
    after = decode_token(token)
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM training_runs WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::timestamptz IS NULL OR (started_at, run_id) < ($2, $3::uuid)) "
        "ORDER BY started_at DESC, run_id DESC LIMIT $4",
        status,
        after[0] if after else None,
        after[1] if after else None,
        size + 1,
    )
    runs = [_run(r) for r in rows[:size]]
    next_token = encode_token(runs[-1].started_at, runs[-1].run_id) if len(rows) > size else ""
    return runs, next_token


# --------------------------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class ModelRecord:
    version: str
    status: str
    run_id: str | None
    algorithm: str
    hyperparameters: Mapping[str, str]
    feature_schema_version: int
    feature_names: tuple[str, ...]
    training_trades: int
    metrics: dict[str, Any]
    artifact_sha256: str
    artifact_size_bytes: int
    created_at: dt.datetime
    promoted_at: dt.datetime | None
    reason: str | None
    trained_until: dt.datetime | None


_MODEL_COLUMNS = (
    "version, status, run_id::text AS run_id, framework AS algorithm, hyperparameters, feature_schema_version, "
    "feature_names, training_trades, metrics, coalesce(artifact_sha256, encode(sha256(weights), 'hex')) AS "
    "artifact_sha256, octet_length(weights) AS artifact_size_bytes, created_at, promoted_at, reason, trained_until"
)


def _model(row: Any) -> ModelRecord:
    data = dict(row)
    data["hyperparameters"] = _loads(data["hyperparameters"])
    data["feature_names"] = tuple(_loads(data["feature_names"]))
    data["metrics"] = _loads(data["metrics"])
    return ModelRecord(**data)


async def insert_model(
    conn: Any,
    artifact: ModelArtifact,
    *,
    run_id: str,
    status: str,
    metrics: dict[str, Any],
    reason: str,
    training_trades: int,
    trained_until: dt.datetime | None,
    seed: int,
) -> None:
    data = artifact.to_bytes()
    await conn.execute(
        "INSERT INTO ml_models (version, run_id, status, feature_schema_version, framework, weights, "
        "standardisation, metrics, reason, hyperparameters, feature_names, training_trades, trained_until, seed, "
        "artifact_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10::jsonb, $11::jsonb, $12, "
        "$13, $14, $15)",
        artifact.version,
        run_id,
        status,
        artifact.feature_schema_version,
        artifact.algorithm,
        data,
        _json(artifact.standardisation()),
        _json(metrics),
        reason,
        _json(dict(artifact.hyperparameters)),
        _json(list(artifact.feature_names)),
        training_trades,
        trained_until,
        seed,
        hashlib.sha256(data).hexdigest(),
    )


async def get_model(conn: Any, version: str | None) -> ModelRecord:
    """Return model ``version``, or the active one when None; raise NotFoundError when there is none."""
    if version is None:
        row = await conn.fetchrow(f"SELECT {_MODEL_COLUMNS} FROM ml_models WHERE status = 'active'")
        if row is None:
            raise NotFoundError("no model is active (the brain uses its rule-based estimate)")
    else:
        row = await conn.fetchrow(f"SELECT {_MODEL_COLUMNS} FROM ml_models WHERE version = $1", version)
        if row is None:
            raise NotFoundError(f"no model version {version!r}")
    return _model(row)


async def list_models(conn: Any, size: int, token: str, status: str | None) -> tuple[list[ModelRecord], str]:
    after = decode_token(token)
    rows = await conn.fetch(
        f"SELECT {_MODEL_COLUMNS} FROM ml_models WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::timestamptz IS NULL OR (created_at, version) < ($2, $3)) "
        "ORDER BY created_at DESC, version DESC LIMIT $4",
        status,
        after[0] if after else None,
        after[1] if after else None,
        size + 1,
    )
    models = [_model(r) for r in rows[:size]]
    next_token = encode_token(models[-1].created_at, models[-1].version) if len(rows) > size else ""
    return models, next_token


async def champion(conn: Any) -> Champion | None:
    """Return the active model with what a comparison needs, or None."""
    row = await conn.fetchrow("SELECT version, weights, trained_until, metrics FROM ml_models WHERE status = 'active'")
    if row is None:
        return None
    try:
        artifact: ModelArtifact | None = ModelArtifact.from_bytes(row["weights"])
    except ValidationError:
        artifact = None  # unreadable: compared through its stored metrics only
    trained_until = row["trained_until"]
    metrics = _loads(row["metrics"]) or {}
    return Champion(
        version=row["version"],
        artifact=artifact,
        trained_until_ms=None if trained_until is None else int(trained_until.timestamp() * 1000),
        metrics=Metrics.from_json(metrics.get("walk_forward")),
    )


async def activate(conn: Any, version: str, *, reason: str, expected_previous: str | bool | None = True) -> str | None:
    """Make ``version`` the only active model; retire the one before. Return the previous active version.

    Runs in its own transaction under :data:`MODEL_LOCK`. ``expected_previous`` (a version or None) makes the
    change conditional: when the active model is no longer that one, nothing changes and ValueError is raised.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MODEL_LOCK)
        exists = await conn.fetchval("SELECT status FROM ml_models WHERE version = $1", version)
        if exists is None:
            raise NotFoundError(f"no model version {version!r}")
        previous = await conn.fetchval("SELECT version FROM ml_models WHERE status = 'active'")
        if expected_previous is not True and previous != expected_previous:
            raise ValueError(f"the active model changed during the run ({expected_previous} -> {previous})")
        if previous == version:
            return previous
        await conn.execute("UPDATE ml_models SET status = 'retired', retired_at = now() WHERE status = 'active'")
        await conn.execute(
            "UPDATE ml_models SET status = 'active', promoted_at = now(), retired_at = NULL WHERE version = $1",
            version,
        )
        await conn.execute(
            "INSERT INTO service_events (service, kind, payload) VALUES ('trainer', 'model_activated', $1::jsonb)",
            _json({"version": version, "previous": previous, "reason": reason}),
        )
    return previous
