"""The orchestrator's pure parts: universe layout, page tokens, Kubernetes helpers, status assembly, duties and
settings."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from aegis import config
from aegis.errors import ConfigError, ValidationError
from aegis.feed import universe
from aegis.orchestrator import duties, kube, leader, status, symbols
from aegis.orchestrator.probes import redacted_address
from aegis.orchestrator.servicer import page_token, parse_page, parse_tasks


def info(*rows: tuple[str, str, str, str]) -> dict:
    return {
        "symbols": [
            {"symbol": s, "status": st, "contractType": ct, "quoteAsset": q, "baseAsset": s[:3], "onboardDate": 0}
            for s, st, ct, q in rows
        ]
    }


EXCHANGE = info(
    ("BTCUSDT", "TRADING", "PERPETUAL", "USDT"),
    ("ETHUSDT", "TRADING", "PERPETUAL", "USDT"),
    ("OLDUSDT", "SETTLING", "PERPETUAL", "USDT"),
    ("BTCUSDT_261226", "TRADING", "CURRENT_QUARTER", "USDT"),
    ("SOLUSDT", "TRADING", "PERPETUAL", "USDT"),
    ("BTCUSDC", "TRADING", "PERPETUAL", "USDC"),
    ("XRPUSDT", "TRADING", "PERPETUAL", "USDT"),
)


def test_the_layout_is_the_feeds_own_shard_of_each_symbol() -> None:
    rows = {r.symbol: r for r in symbols.plan(EXCHANGE, explicit=(), count=3, shard_size=2)}
    chosen = universe.select(EXCHANGE, count=3)
    assert chosen == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert (
        {s: r.shard for s, r in rows.items() if r.active}
        == universe.shard_of(chosen, 2)
        == {
            "BTCUSDT": 0,
            "ETHUSDT": 0,
            "SOLUSDT": 1,
        }
    )
    assert len(rows) == 7 and rows["XRPUSDT"].shard is None and not rows["XRPUSDT"].active
    reasons = {s: symbols.exclusion_reason(r, ()) for s, r in rows.items()}
    assert reasons == {
        "BTCUSDT": "",
        "ETHUSDT": "",
        "SOLUSDT": "",
        "OLDUSDT": "NOT_TRADING",
        "BTCUSDT_261226": "NOT_PERPETUAL",
        "BTCUSDC": "NOT_USDT_QUOTED",
        "XRPUSDT": "BEYOND_SYMBOL_COUNT",
    }
    explicit = {r.symbol: r for r in symbols.plan(EXCHANGE, explicit=("XRPUSDT",), count=3, shard_size=2)}
    assert symbols.exclusion_reason(explicit["BTCUSDT"], ("XRPUSDT",)) == "NOT_IN_SYMBOL_LIST"
    assert explicit["XRPUSDT"].shard == 0


def test_comparing_layouts_names_added_removed_and_moved_symbols() -> None:
    before = {r.symbol: r for r in symbols.plan(EXCHANGE, explicit=(), count=3, shard_size=2)}
    after = symbols.plan(EXCHANGE, explicit=(), count=4, shard_size=1)
    change = symbols.compare(before, after)
    assert change.added == ("XRPUSDT",)
    assert change.removed == ()
    assert change.moved == ("ETHUSDT", "SOLUSDT")  # 0 -> 1 and 1 -> 2
    assert change.included == 4 and change.shard_count == 4
    assert change.rows_changed == 3
    assert symbols.compare({r.symbol: r for r in after}, after).rows_changed == 0
    assert symbols.shards_needed(0, 50) == 0 and symbols.shards_needed(101, 50) == 3


def test_page_tokens_round_trip_and_bad_ones_name_the_field() -> None:
    assert parse_page(0, "") == (500, "")
    assert parse_page(7, page_token("ETHUSDT")) == (7, "ETHUSDT")
    for size in (-1, 1001):
        with pytest.raises(ValidationError) as caught:
            parse_page(size, "")
        assert caught.value.field == "page_size"
    for token in ("%%%", "bm90IGpzb24=", page_token("eth usdt"), "eyJ4IjogMX0="):
        with pytest.raises(ValidationError) as caught:
            parse_page(10, token)
        assert caught.value.field == "page_token"


def test_maintenance_tasks_parse_and_unknown_ones_name_their_index() -> None:
    assert parse_tasks([1, 2, 3, 4, 5, 6]) == [
        "REFRESH_RULES",
        "REFRESH_UNIVERSE",
        "RETENTION",
        "VACUUM",
        "MIGRATE",
        "REBALANCE_SHARDS",
    ]
    with pytest.raises(ValidationError, match=r"^tasks\[2\]: unknown maintenance task 0$"):
        parse_tasks([1, 2, 0])


def test_kubernetes_names_and_sizes() -> None:
    assert kube.statefulset_name("prod-orchestrator-7c9d8f6b5-abcde") == "prod-feed-brain"
    assert kube.statefulset_name("laptop") == "aegis-feed-brain"
    labels = {"app.kubernetes.io/component": "feed-brain"}
    assert kube.shard_of_pod("prod-feed-brain-12", labels) == 12
    assert kube.shard_of_pod("prod-risk-7c9d8f6b5-abcde", {"app.kubernetes.io/component": "risk"}) == -1
    assert [kube.replicas_wanted(n, 4) for n in (0, 1, 3, 9)] == [1, 1, 3, 4]


def test_kubernetes_is_off_outside_a_cluster_and_in_cluster_config_is_used_inside() -> None:
    settings = config.load(env={})
    assert kube.target_from(settings, env={}) is None
    inside = kube.target_from(
        settings, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "aegis-orchestrator-5d8f-x2x9q"}
    )
    assert inside is not None and inside.in_cluster and inside.statefulset == "aegis-feed-brain"
    explicit = config.load(
        env={
            "AEGIS_ORCHESTRATOR_KUBE_API_URL": "http://127.0.0.1:1",
            "AEGIS_ORCHESTRATOR_KUBE_NAMESPACE": "trading",
            "AEGIS_ORCHESTRATOR_FEED_BRAIN_STATEFULSET": "x-feed-brain",
        }
    )
    target = kube.target_from(explicit, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert target is not None and not target.in_cluster
    assert (target.namespace, target.statefulset) == ("trading", "x-feed-brain")


def test_shard_figures_combine_feed_brain_symbols_and_pods() -> None:
    pods = [kube.PodInfo("aegis-feed-brain-1", "Running", True, 0, "n", 1, None, "feed-brain")]
    feed = {0: {"messages_per_second": 5.0, "rejected": 2, "rejected_by_reason": {"A": 2}}, 1: {"rejected": "x"}}
    brain = {1: {"symbols": 9, "ring": {"lag_records": 512, "lag_ns": 2e9, "records_lost": 4, "overruns": 1}}}
    shards = status.shard_figures(feed, brain, {0: 3, 2: 1}, pods, ring_capacity=1024)
    assert [s.shard_index for s in shards] == [0, 1, 2]
    zero, one, two = shards
    assert (zero.feed_messages_per_second, zero.feed_rejects, zero.brain_reporting) == (5.0, 2, False)
    assert one.feed_rejects == 0  # a value that is not a number counts as nothing rather than failing
    assert (one.symbol_count, one.ring_fill, one.ring_fill_ratio, one.ring_drops) == (9, 512, 0.5, 4)
    assert one.brain_lag_s == 2.0 and one.pod == "aegis-feed-brain-1"
    assert two.symbol_count == 1 and not two.feed_reporting
    assert status.feed_rejects_by_reason({0: {"rejected_by_reason": {"B": 1, "A": 2}}, 1: {}}) == {"A": 2, "B": 1}


def test_addresses_are_shown_without_credentials() -> None:
    assert redacted_address("postgresql://u:secret@db.local:5432/aegis") == "db.local:5432/aegis"
    assert redacted_address("redis://:pw@127.0.0.1:6379/3") == "127.0.0.1:6379/3"
    assert redacted_address("postgresql://u@/aegis?host=/run/pg") == "/run/pg/aegis"


def test_the_lock_key_shows_in_pg_locks_as_two_halves() -> None:
    classid, objid = leader.lock_parts(leader.LEADER_LOCK_KEY)
    assert (classid << 32) | objid == leader.LEADER_LOCK_KEY
    assert leader.lock_parts(-1) == (0xFFFF_FFFF, 0xFFFF_FFFF)


class FakeElection:
    def __init__(self) -> None:
        self.leading, self.following = asyncio.Event(), asyncio.Event()
        self.following.set()

    def lead(self, yes: bool) -> None:
        (self.leading.set if yes else self.leading.clear)()
        (self.following.clear if yes else self.following.set)()

    async def wait_leading(self) -> None:
        await self.leading.wait()

    async def wait_following(self) -> None:
        await self.following.wait()


async def test_duties_run_only_while_leading_and_survive_their_failures() -> None:
    runs: list[str] = []

    async def ok() -> str:
        runs.append("ok")
        return "fine"

    async def broken() -> None:
        runs.append("broken")
        raise RuntimeError("boom")

    election = FakeElection()
    schedule = [
        duties.Duty("ok", 0.05, ok),
        duties.Duty("broken", 0.05, broken, retry_s=0.01),
        duties.Duty("off", 0, ok),
    ]
    task = asyncio.create_task(duties.lead(election, schedule))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    assert runs == []  # a follower runs nothing
    election.lead(True)
    await asyncio.sleep(0.2)
    assert runs.count("ok") >= 2 and runs.count("broken") >= 2
    election.lead(False)
    await asyncio.sleep(0.05)
    seen = len(runs)
    await asyncio.sleep(0.15)
    assert len(runs) == seen  # stopped with the leadership
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AEGIS_ORCHESTRATOR_RULES_INTERVAL_S": "soon"}, "AEGIS_ORCHESTRATOR_RULES_INTERVAL_S='soon' is not a number"),
        ({"AEGIS_ORCHESTRATOR_RETENTION_BATCH_ROWS": "0"}, "must be greater than 0"),
        ({"AEGIS_ORCHESTRATOR_RETENTION_1M_DAYS": "-3"}, "must not be negative"),
        ({"AEGIS_ORCHESTRATOR_SCALE_SHARDS": "maybe"}, "is not a boolean"),
    ],
)
def test_orchestrator_settings_refuse_wrong_values_in_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(env=env)


def test_orchestrator_settings_defaults() -> None:
    orch = config.load(env={}).orchestrator
    assert (orch.heartbeat_interval_s, orch.retention_1m_days, orch.retention_candles_days) == (900.0, 30, 365)
    assert orch.scale_shards and orch.max_shards == 20 and orch.kube_api_url == ""
    assert dt.timedelta(seconds=orch.rules_interval_s) < dt.timedelta(hours=6)  # within the rules cache TTL
