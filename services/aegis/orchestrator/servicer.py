"""OrchestratorService: checks the arguments, calls the plain classes, translates their results to protobuf."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any, NoReturn

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

import aegis
from aegis import observability
from aegis.config import Settings
from aegis.errors import AegisError, ValidationError
from aegis.orchestrator import maintenance, probes, status, symbols
from aegis.orchestrator.leader import LeaderElection, current_leader
from aegis.server import abort_with
from aegis.storage.postgres import Database
from aegis.v1 import common_pb2 as common_pb
from aegis.v1 import orchestrator_pb2 as orch_pb
from aegis.v1 import orchestrator_pb2_grpc as orch_grpc
from aegis.v1 import trainer_pb2 as trainer_pb
from aegis.v1 import virtual_account_pb2 as va_pb
from aegis.v1 import virtual_account_pb2_grpc as va_grpc

DEFAULT_PROBE_TIMEOUT_S = 2.0
MAX_PROBE_TIMEOUT_S = 30.0
RECONCILE_TIMEOUT_S = 60.0
_SYMBOL = re.compile(r"^[A-Z0-9]{1,32}$")

_SERVING = {
    probes.SERVING: orch_pb.SERVING_STATUS_SERVING,
    probes.NOT_SERVING: orch_pb.SERVING_STATUS_NOT_SERVING,
    probes.SERVICE_UNKNOWN: orch_pb.SERVING_STATUS_SERVICE_UNKNOWN,
    probes.UNREACHABLE: orch_pb.SERVING_STATUS_UNREACHABLE,
}
_KIND = {
    "learning": common_pb.ACCOUNT_KIND_LEARNING,
    "paper": common_pb.ACCOUNT_KIND_PAPER,
    "live": common_pb.ACCOUNT_KIND_LIVE,
}
_RUN_STATUS = {
    "queued": trainer_pb.TRAINING_RUN_STATUS_QUEUED,
    "running": trainer_pb.TRAINING_RUN_STATUS_RUNNING,
    "succeeded": trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED,
    "failed": trainer_pb.TRAINING_RUN_STATUS_FAILED,
    "skipped": trainer_pb.TRAINING_RUN_STATUS_SKIPPED,
}
_TASK_STATUS = {
    maintenance.SUCCEEDED: orch_pb.MAINTENANCE_TASK_STATUS_SUCCEEDED,
    maintenance.FAILED: orch_pb.MAINTENANCE_TASK_STATUS_FAILED,
    maintenance.SKIPPED: orch_pb.MAINTENANCE_TASK_STATUS_SKIPPED,
}
_TASK_NAME = {orch_pb.MaintenanceTask.Value(f"MAINTENANCE_TASK_{name}"): name for name in maintenance.TASKS}


# --------------------------------------------------------------------------------------------- conversions


def _ts(value: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(dt.UTC))
    return out


def _dur(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(max(0.0, seconds) * 1e9))
    return out


def _dependency(d: probes.DependencyProbe) -> orch_pb.DependencyStatus:
    return orch_pb.DependencyStatus(
        healthy=d.healthy, latency=_dur(d.latency_s), version=d.version, address=d.address, error=d.error
    )


def snapshot_to_pb(s: status.SystemSnapshot) -> orch_pb.GetSystemStatusResponse:
    """Translate a snapshot to the GetSystemStatus answer."""
    out = orch_pb.GetSystemStatusResponse(
        feed_messages_per_second=s.feed_messages_per_second,
        feed_rejects_total=s.feed_rejects_total,
        brain_lag=_dur(s.brain_lag_s),
        postgres=_dependency(s.postgres),
        redis=_dependency(s.redis),
        leader=s.leader,
        leader_identity=s.leader_identity,
        in_cluster=s.in_cluster,
        as_of_time=_ts(s.as_of),
    )
    for p in s.services:
        out.services.add(
            name=p.name,
            address=p.address,
            status=_SERVING[p.status],
            version=p.version,
            latency=_dur(p.latency_s),
            error=p.error,
            checked_time=_ts(p.checked_at),
        )
    for reason, count in s.feed_rejects.items():
        out.feed_rejects.add(reason=reason, count=count)
    for sh in s.shards:
        out.shards.add(
            shard_index=sh.shard_index,
            symbol_count=sh.symbol_count,
            ring_fill=sh.ring_fill,
            ring_capacity=sh.ring_capacity,
            ring_fill_ratio=sh.ring_fill_ratio,
            ring_drops=sh.ring_drops,
            ring_overruns=sh.ring_overruns,
            brain_lag_records=sh.brain_lag_records,
            brain_lag=_dur(sh.brain_lag_s),
            pod=sh.pod,
        )
    for a in s.accounts or []:
        out.accounts.add(
            account=a.account,
            kind=_KIND.get(a.kind, common_pb.ACCOUNT_KIND_UNSPECIFIED),
            open_positions=a.open_positions,
            equity="" if a.equity is None else str(a.equity),
            halted=a.halted,
        )
    run = s.last_training_run
    if run is not None:
        out.last_training_run.CopyFrom(
            trainer_pb.TrainingRun(
                run_id=run.run_id,
                status=_RUN_STATUS.get(run.status, trainer_pb.TRAINING_RUN_STATUS_UNSPECIFIED),
                reason=run.reason,
                seed=run.seed & 0xFFFF_FFFF_FFFF_FFFF,
                start_time=_ts(run.started_at),
                model_version=run.model_version,
                promoted=run.promoted,
                error=run.error,
            )
        )
        if run.finished_at is not None:
            out.last_training_run.end_time.CopyFrom(_ts(run.finished_at))
    for pod in s.pods:
        entry = out.pods.add(
            name=pod.name,
            phase=pod.phase,
            ready=pod.ready,
            restarts=pod.restarts,
            node=pod.node,
            shard_index=pod.shard_index,
        )
        if pod.start_time is not None:
            entry.start_time.CopyFrom(_ts(pod.start_time))
    return out


def task_result_to_pb(r: maintenance.TaskResult) -> orch_pb.MaintenanceTaskResult:
    return orch_pb.MaintenanceTaskResult(
        task=orch_pb.MaintenanceTask.Value(f"MAINTENANCE_TASK_{r.task}"),
        status=_TASK_STATUS[r.status],
        items_affected=r.items_affected,
        summary=r.summary,
        error=r.error,
        start_time=_ts(r.started_at),
        duration=_dur(r.duration_s),
    )


def universe_symbol_to_pb(row: symbols.SymbolRow, explicit: tuple[str, ...]) -> orch_pb.UniverseSymbol:
    reason = symbols.exclusion_reason(row, explicit)
    return orch_pb.UniverseSymbol(
        symbol=row.symbol,
        shard_index=row.shard if row.shard is not None else -1,
        included=not reason,
        exclusion_reason=reason,
    )


# --------------------------------------------------------------------------------------------- arguments


def page_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}, separators=(",", ":")).encode()).decode()


def parse_page(page_size: int, token: str) -> tuple[int, str]:
    """Return (page size, last symbol of the previous page); raise ValidationError naming the field."""
    if page_size < 0 or page_size > symbols.MAX_PAGE_SIZE:
        raise ValidationError(
            "page_size", f"must be from 0 to {symbols.MAX_PAGE_SIZE} (0 = {symbols.DEFAULT_PAGE_SIZE})"
        )
    size = page_size or symbols.DEFAULT_PAGE_SIZE
    if not token:
        return size, ""
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))["after"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise ValidationError("page_token", "is not a token ListSymbols issued") from None
    if not isinstance(after, str) or not _SYMBOL.match(after):
        raise ValidationError("page_token", "is not a token ListSymbols issued")
    return size, after


def parse_tasks(values: Any) -> list[str]:
    names = []
    for index, value in enumerate(values):
        name = _TASK_NAME.get(int(value))
        if name is None:
            raise ValidationError(f"tasks[{index}]", f"unknown maintenance task {int(value)}")
        names.append(name)
    return names


def probe_timeout_of(request: orch_pb.GetSystemStatusRequest) -> float:
    if not request.HasField("probe_timeout"):
        return DEFAULT_PROBE_TIMEOUT_S
    seconds = request.probe_timeout.ToNanoseconds() / 1e9
    if seconds <= 0 or seconds > MAX_PROBE_TIMEOUT_S:
        raise ValidationError("probe_timeout", f"must be above 0 and at most {MAX_PROBE_TIMEOUT_S:g} s")
    return seconds


# --------------------------------------------------------------------------------------------- the servicer


class OrchestratorServicer(orch_grpc.OrchestratorServiceServicer):
    def __init__(
        self,
        settings: Settings,
        db: Database,
        collector: status.StatusCollector,
        work: maintenance.Maintenance,
        election: LeaderElection | None,
        started_at: dt.datetime,
    ) -> None:
        self._settings = settings
        self._db = db
        self._collector = collector
        self._maintenance = work
        self._election = election
        self._started_at = started_at

    @property
    def _leader(self) -> bool:
        return self._election is not None and self._election.is_leader

    async def GetSystemStatus(self, request: orch_pb.GetSystemStatusRequest, context: Any) -> Any:
        try:
            timeout_s = probe_timeout_of(request)
        except ValidationError as exc:
            await abort_with(context, exc)
        return snapshot_to_pb(await self._collector.collect(timeout_s))

    async def ListSymbols(self, request: orch_pb.ListSymbolsRequest, context: Any) -> Any:
        try:
            size, after = parse_page(request.page_size, request.page_token)
            shard = request.shard_index if request.HasField("shard_index") else None
            if shard is not None and shard < 0:
                raise ValidationError("shard_index", "must not be negative")
            page = await symbols.list_page(
                self._db, after=after, limit=size, shard=shard, include_excluded=request.include_excluded
            )
        except AegisError as exc:
            await abort_with(context, exc)
        explicit = self._settings.feed.symbols
        return orch_pb.ListSymbolsResponse(
            symbols=[universe_symbol_to_pb(r, explicit) for r in page.rows],
            next_page_token=page_token(page.rows[-1].symbol) if page.more and page.rows else "",
            shard_count=page.shard_count,
        )

    async def ReconcileAccount(self, request: orch_pb.ReconcileAccountRequest, context: Any) -> Any:
        account = request.account.strip()
        if not account:
            await abort_with(context, ValidationError("account", "is required (the name of a live account)"))
        address = self._settings.address_of("virtual_account")
        remaining = context.time_remaining()
        timeout = min(RECONCILE_TIMEOUT_S, remaining) if remaining is not None else RECONCILE_TIMEOUT_S
        async with observability.insecure_or_tls_channel(address, self._settings) as channel:
            try:
                reply = await va_grpc.VirtualAccountServiceStub(channel).Reconcile(
                    va_pb.ReconcileRequest(account=account, dry_run=request.dry_run), timeout=timeout
                )
            except grpc.aio.AioRpcError as exc:
                await _pass_on(context, exc, address)
        return orch_pb.ReconcileAccountResponse(report=reply.report)

    async def RunMaintenance(self, request: orch_pb.RunMaintenanceRequest, context: Any) -> Any:
        try:
            tasks = parse_tasks(request.tasks)
        except ValidationError as exc:
            await abort_with(context, exc)
        if not request.dry_run and not self._leader:
            holder = await current_leader(self._db)
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this orchestrator is not the leader"
                + (f" ({holder} is)" if holder else "")
                + ": maintenance that changes anything runs on the leader only (dry runs run anywhere)",
            )
        results = await self._maintenance.run(tasks, dry_run=request.dry_run)
        return orch_pb.RunMaintenanceResponse(results=[task_result_to_pb(r) for r in results])

    async def GetHeartbeat(self, request: orch_pb.GetHeartbeatRequest, context: Any) -> Any:
        now = dt.datetime.now(dt.UTC)
        return orch_pb.GetHeartbeatResponse(
            server_time=_ts(now),
            uptime=_dur((now - self._started_at).total_seconds()),
            leader=self._leader,
            version=aegis.__version__,
        )


async def _pass_on(context: Any, exc: grpc.aio.AioRpcError, address: str) -> NoReturn:
    """Turn virtual-account's error into ours: UNIMPLEMENTED becomes FAILED_PRECONDITION, never a made-up report."""
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"reconciliation is not available: virtual-account at {address} answered UNIMPLEMENTED ({details})",
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, f"virtual-account at {address} did not answer ({code.name}: {details})"
        )
    await context.abort(code, f"virtual-account: {details}")
    raise AssertionError("unreachable")
