"""The system status: every service, the feed and brain figures per shard, accounts, training, dependencies.

Sources, each asked concurrently and each allowed to fail on its own (a dead part shows as such, the rest still
answers):

* services — the standard health service and ServiceInfo of each configured address (:mod:`.probes`);
* feed and brain figures — the JSON each feed and brain publishes to Redis every few seconds under
  :func:`aegis.storage.keys.service_status` (``feed:<shard>`` and ``brain:shard-<shard>``, 30 s TTL), so a shard
  that stopped publishing simply drops out;
* accounts — PostgreSQL ``accounts`` and open ``positions``; equity is the wallet balance plus the unrealised PnL
  at the latest mark prices (``account_prices``), and unknown (empty) when an open position has no mark price;
* the last training run — ``training_runs``;
* PostgreSQL and Redis — a timed ``SELECT 1`` / ``PING``;
* the leader — this replica's election state and the lock holder's name from ``pg_locks``;
* pods — the Kubernetes API, only in a cluster.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aegis import config
from aegis.orchestrator import kube, leader, probes, symbols
from aegis.storage import keys
from aegis.storage.cache import Cache
from aegis.storage.postgres import Database

log = logging.getLogger("aegis.orchestrator.status")


@dataclass(frozen=True, slots=True)
class ShardFigures:
    shard_index: int
    symbol_count: int = 0
    ring_fill: int = 0
    ring_capacity: int = 0
    ring_drops: int = 0
    ring_overruns: int = 0
    brain_lag_records: int = 0
    brain_lag_s: float = 0.0
    feed_messages_per_second: float = 0.0
    feed_rejects: int = 0
    pod: str = ""
    feed_reporting: bool = False
    brain_reporting: bool = False

    @property
    def ring_fill_ratio(self) -> float:
        return self.ring_fill / self.ring_capacity if self.ring_capacity else 0.0


@dataclass(frozen=True, slots=True)
class AccountFigures:
    account: str
    kind: str
    open_positions: int
    equity: Decimal | None
    """None when unknown: an open position has no mark price yet."""
    halted: bool


@dataclass(frozen=True, slots=True)
class TrainingRunFigures:
    run_id: str
    status: str
    reason: str
    """Why it was started."""
    seed: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    model_version: str
    promoted: bool
    error: str


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    services: list[probes.ServiceProbe]
    feed_messages_per_second: float
    feed_rejects_total: int
    feed_rejects: dict[str, int]
    shards: list[ShardFigures]
    brain_lag_s: float
    accounts: list[AccountFigures] | None
    """None when PostgreSQL could not be read."""
    last_training_run: TrainingRunFigures | None
    postgres: probes.DependencyProbe
    redis: probes.DependencyProbe
    leader: bool
    leader_identity: str
    in_cluster: bool
    pods: list[kube.PodInfo]
    as_of: dt.datetime
    notes: list[str] = field(default_factory=list)
    """Parts that could not be read, in plain words."""

    @property
    def serving(self) -> int:
        return sum(1 for s in self.services if s.status == probes.SERVING)


# --------------------------------------------------------------------------------------------- pure parts


def shard_figures(
    feed_status: Mapping[int, Mapping[str, Any]],
    brain_status: Mapping[int, Mapping[str, Any]],
    symbol_counts: Mapping[int, int],
    pods: list[kube.PodInfo],
    ring_capacity: int,
) -> list[ShardFigures]:
    """Combine the feed and brain status JSON, the symbols table and the pods into one entry per shard."""
    pod_of = {p.shard_index: p.name for p in pods if p.shard_index >= 0}
    indices = sorted(set(feed_status) | set(brain_status) | set(symbol_counts))
    out = []
    for index in indices:
        feed = feed_status.get(index, {})
        brain = brain_status.get(index, {})
        ring = brain.get("ring") if isinstance(brain.get("ring"), Mapping) else {}
        lag_records = _int(ring.get("lag_records"))
        out.append(
            ShardFigures(
                shard_index=index,
                symbol_count=symbol_counts.get(index, _int(brain.get("symbols"))),
                ring_fill=lag_records,
                ring_capacity=ring_capacity,
                ring_drops=_int(ring.get("records_lost")),
                ring_overruns=_int(ring.get("overruns")),
                brain_lag_records=lag_records,
                brain_lag_s=max(0.0, _float(ring.get("lag_ns")) / 1e9),
                feed_messages_per_second=_float(feed.get("messages_per_second")),
                feed_rejects=_int(feed.get("rejected")),
                pod=pod_of.get(index, ""),
                feed_reporting=bool(feed),
                brain_reporting=bool(brain),
            )
        )
    return out


def feed_rejects_by_reason(feed_status: Mapping[int, Mapping[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for status in feed_status.values():
        by_reason = status.get("rejected_by_reason")
        if isinstance(by_reason, Mapping):
            for reason, count in by_reason.items():
                totals[str(reason)] = totals.get(str(reason), 0) + _int(count)
    return dict(sorted(totals.items()))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _shard_from_instance(instance: str) -> int | None:
    text = instance.removeprefix("shard-")
    return int(text) if text.isdigit() else None


# --------------------------------------------------------------------------------------------- reading


async def published_status(cache: Cache, service: str) -> dict[int, dict[str, Any]]:
    """Return the status JSON each instance of ``service`` published to Redis, by shard."""
    prefix = keys.service_status(service, "")
    names = [name async for name in cache.client.scan_iter(match=prefix + "*", count=200)]
    if not names:
        return {}
    values = await cache.client.mget(names)
    out: dict[int, dict[str, Any]] = {}
    for raw_name, raw in zip(names, values, strict=True):
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        shard = _shard_from_instance(name[len(prefix) :])
        if shard is None or raw is None:
            continue
        try:
            data = json.loads(raw)
        except (ValueError, TypeError):
            log.warning("ignoring %s: not JSON", name)
            continue
        if isinstance(data, dict):
            out[shard] = data
    return out


async def account_figures(db: Database) -> list[AccountFigures]:
    """Return open positions and equity per account (equity None when a mark price is missing)."""
    async with db.connection() as conn:
        has_prices = await conn.fetchval("SELECT to_regclass('account_prices') IS NOT NULL")
        if has_prices:
            price_join = "LEFT JOIN account_prices ap ON ap.symbol = p.symbol"
            mark = "ap.mark_price"
        else:
            price_join, mark = "", "NULL::numeric"
        records = await conn.fetch(
            f"""
            SELECT a.account_id, a.kind, a.wallet_balance, a.halted,
                   count(p.position_id) AS open_positions,
                   count(p.position_id) FILTER (WHERE {mark} IS NULL) AS unpriced,
                   coalesce(sum(CASE WHEN p.side = 'BUY' THEN ({mark} - p.entry_price) * p.quantity
                                     ELSE (p.entry_price - {mark}) * p.quantity END), 0) AS unrealised
            FROM accounts a
            LEFT JOIN positions p ON p.account_id = a.account_id AND p.status = 'OPEN'
            {price_join}
            GROUP BY a.account_id, a.kind, a.wallet_balance, a.halted
            ORDER BY a.account_id
            """
        )
    return [
        AccountFigures(
            account=r["account_id"],
            kind=r["kind"],
            open_positions=int(r["open_positions"]),
            equity=None if r["unpriced"] else Decimal(r["wallet_balance"]) + Decimal(r["unrealised"]),
            halted=bool(r["halted"]),
        )
        for r in records
    ]


async def last_training_run(db: Database) -> TrainingRunFigures | None:
    """Return the newest training run; its reason is the request's reason when the schema has one, else the trigger."""
    async with db.connection() as conn:
        r = await conn.fetchrow(
            "SELECT run_id, status, trigger, seed, started_at, finished_at, model_version, promoted, error, "
            "to_jsonb(t) ->> 'request_reason' AS request_reason "
            "FROM training_runs t ORDER BY started_at DESC, run_id DESC LIMIT 1"
        )
    if r is None:
        return None
    return TrainingRunFigures(
        run_id=str(r["run_id"]),
        status=r["status"],
        reason=r["request_reason"] or r["trigger"],
        seed=int(r["seed"]),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        model_version=r["model_version"] or "",
        promoted=bool(r["promoted"]),
        error=r["error"] or "",
    )


class StatusCollector:
    """Gather a :class:`SystemSnapshot`; every part has its own deadline and its own failure."""

    def __init__(
        self,
        settings: config.Settings,
        db: Database,
        cache: Cache,
        election: leader.LeaderElection | None,
        kube_client: kube.KubeClient | None,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.db = db
        self.cache = cache
        self.election = election
        self.kube = kube_client
        self.clock = clock

    def addresses(self) -> dict[str, str]:
        return {name: self.settings.address_of(name) for name in config.SERVICES}

    async def collect(self, probe_timeout_s: float = 2.0) -> SystemSnapshot:
        notes: list[str] = []

        async def soft(what: str, coro: Any, default: Any) -> Any:
            try:
                async with asyncio.timeout(probe_timeout_s):
                    return await coro
            except Exception as exc:
                notes.append(f"{what}: {probes.describe_error(exc)}")
                return default

        where = self.addresses()
        (
            services,
            postgres,
            redis,
            feed_status,
            brain_status,
            counts,
            accounts,
            training,
            leader_identity,
            pods,
        ) = await asyncio.gather(
            asyncio.gather(*(probes.probe_service(n, a, probe_timeout_s, self.settings) for n, a in where.items())),
            probes.probe_postgres(self.db, self.settings.dsn(), probe_timeout_s),
            probes.probe_redis(self.cache, self.settings.redis(), probe_timeout_s),
            soft("feed status in Redis", published_status(self.cache, "feed"), {}),
            soft("brain status in Redis", published_status(self.cache, "brain"), {}),
            soft("symbols table", symbols.shard_sizes(self.db), {}),
            soft("accounts", account_figures(self.db), None),
            soft("training runs", last_training_run(self.db), None),
            leader.current_leader(self.db, timeout_s=probe_timeout_s),
            soft("Kubernetes pods", self.kube.list_pods(), []) if self.kube else _none([]),
        )
        if notes:
            log.debug("system status incomplete: %s", "; ".join(notes))
        shards = shard_figures(feed_status, brain_status, counts, pods, self.settings.feed.ring_capacity)
        rejects = feed_rejects_by_reason(feed_status)
        is_leader = self.election.is_leader if self.election is not None else False
        if is_leader and self.election is not None:
            leader_identity = self.election.identity
        return SystemSnapshot(
            services=list(services),
            feed_messages_per_second=sum(s.feed_messages_per_second for s in shards),
            feed_rejects_total=sum(s.feed_rejects for s in shards),
            feed_rejects=rejects,
            shards=shards,
            brain_lag_s=max((s.brain_lag_s for s in shards), default=0.0),
            accounts=accounts,
            last_training_run=training,
            postgres=postgres,
            redis=redis,
            leader=is_leader,
            leader_identity=leader_identity,
            in_cluster=self.kube is not None,
            pods=pods,
            as_of=self.clock(),
            notes=notes,
        )


async def _none(value: Any) -> Any:
    return value
