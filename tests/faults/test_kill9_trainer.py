"""kill -9 of the trainer, 10 times, most of them during a TrainNow: runs and models stay consistent.

The trainer is a real process (``python -m aegis.trainer``) on a real PostgreSQL holding the real 10-day
BTCUSDT/ETHUSDT 1m klines as candles and SYNTHETIC-FROM-REAL closed learning trades on them
(:func:`aegis.trainer.synthetic.trades_from_klines`: entries on the real klines, exits from the real future
candles). A first run goes to its end undisturbed: its duration spreads the kills. Then, 10 times: TrainNow
(retried while the restarted trainer comes up), wait a fraction of a run (from right after the call to past the
end of a run), SIGKILL, start again on the same port. A last TrainNow on the restarted trainer goes to its end.

What must hold: the trainer serves after every restart and its last run ends; no run is left ``queued`` or
``running`` (a run killed mid-way is marked failed by the next one, under the training lock); every ended run has
its ``finished_at``, and a succeeded one its model; every model belongs to a succeeded run (nothing is left by a
run that died while writing), its weights match its ``artifact_sha256``; at most one model is active, and it is a
model of a succeeded, promoted run.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import grpc
from faultkit import CHANNEL_OPTIONS, Retrier, kill9, report, restart, wait_serving

from aegis import testing
from aegis.storage.postgres import connect_once
from aegis.trainer.synthetic import insert_trades, trades_from_klines
from aegis.trainer.testing import klines_database, real_klines
from aegis.v1 import trainer_pb2 as trainer_pb
from aegis.v1 import trainer_pb2_grpc as trainer_grpc

KILLS = 10
STOPPED = "the trainer stopped during the run"
ENDED = (
    trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED,
    trainer_pb.TRAINING_RUN_STATUS_FAILED,
    trainer_pb.TRAINING_RUN_STATUS_SKIPPED,
)


async def run_to_end(stub: trainer_grpc.TrainerServiceStub, call: Retrier, reason: str) -> tuple[str, int, float]:
    """TrainNow, then poll the report until the run ends; return its id, status and duration."""
    started = time.monotonic()
    answer = await call("TrainNow", stub.TrainNow, trainer_pb.TrainNowRequest(reason=reason))
    while True:
        got = await call(
            "GetTrainingReport", stub.GetTrainingReport, trainer_pb.GetTrainingReportRequest(run_id=answer.run_id)
        )
        if got.report.run.status in ENDED:
            return answer.run_id, got.report.run.status, time.monotonic() - started
        assert time.monotonic() - started < 60, got.report.run
        await asyncio.sleep(0.05)


async def test_kill_9_of_the_trainer_leaves_runs_and_models_consistent(
    admin_dsn: str, redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    klines = real_klines(shared_data)
    dsn = await asyncio.to_thread(klines_database, admin_dsn, klines, "aegis_faults_trainer")
    proc = None
    try:
        conn = await connect_once(dsn)
        trades = trades_from_klines(klines, seed=11, plant=0.7)
        await insert_trades(conn, trades)
        env = {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "AEGIS_HOME": str(tmp_path / "home"),
            "AEGIS_TRAINER_INTERVAL_S": "0",
            "AEGIS_TRAINER_MIN_TRADES": "100",
            "AEGIS_METRICS_ENABLED": "false",
        }
        proc = testing.ServiceProcess("trainer", env, log_dir=tmp_path).start()
        await wait_serving(proc, 60)
        call = Retrier(deadline_s=60)
        restart_s: list[float] = []
        killed_after_s: list[float] = []
        loop_runs: list[str] = []
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as channel:
            stub = trainer_grpc.TrainerServiceStub(channel)
            first_id, first_status, first_s = await run_to_end(stub, call, "fault test: undisturbed")
            assert first_status == trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED, proc.log_text()[-3000:]
            # the kills are spread over the length of a run in a freshly started trainer, which is what every run
            # of the kill loop is: the very first run also fills the trainer's caches (3x longer on a slow machine,
            # which put most kills after their run had ended), and a second run in the same process is far shorter
            proc.stop()
            proc = restart(proc, tmp_path, env)
            await wait_serving(proc, 60)
            _, warm_status, run_s = await run_to_end(stub, call, "fault test: undisturbed, fresh process")
            assert warm_status == trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED, proc.log_text()[-3000:]
            for i in range(KILLS):
                request = trainer_pb.TrainNowRequest(reason=f"fault test: kill {i}")
                loop_runs.append((await call("TrainNow", stub.TrainNow, request)).run_id)
                delay = (i + 0.5) / KILLS * 1.2 * run_s  # from right after TrainNow to past the end of a run
                await asyncio.sleep(delay)
                killed_after_s.append(round(delay, 2))
                kill9(proc)
                proc = restart(proc, tmp_path, env)
                restart_s.append(round(await wait_serving(proc, 60), 2))
            last_id, last_status, last_s = await run_to_end(stub, call, "fault test: after the kills")
        rows = await conn.fetch(
            "SELECT run_id::text, status, finished_at, model_version, promoted, error FROM training_runs"
        )
        models = await conn.fetch(
            "SELECT version, run_id::text, status, weights, artifact_sha256 FROM ml_models ORDER BY created_at"
        )
        await conn.close()
        alive = proc.process is not None and proc.process.poll() is None
        log = proc.log_text()
    finally:
        if proc is not None:
            proc.stop()
        await testing.drop_database(admin_dsn, dsn)

    runs = {r["run_id"]: r for r in rows}
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    unfinished = [r["run_id"] for r in rows if r["status"] in ("queued", "running") or r["finished_at"] is None]
    versions = {m["version"] for m in models}
    succeeded_without_model = [
        r["run_id"] for r in rows if r["status"] == "succeeded" and r["model_version"] not in versions
    ]
    stray_models = [m["version"] for m in models if runs.get(m["run_id"], {"status": None})["status"] != "succeeded"]
    bad_digest = [
        m["version"] for m in models if hashlib.sha256(bytes(m["weights"])).hexdigest() != m["artifact_sha256"]
    ]
    active = [m for m in models if m["status"] == "active"]
    # a run the kill cut short is failed and says so; one that ended before the kill succeeded
    killed_runs = [k for k in loop_runs if runs[k]["status"] == "failed"]
    neither = [
        dict(runs[k])
        for k in loop_runs
        if (runs[k]["status"], runs[k]["error"]) not in {("failed", STOPPED), ("succeeded", None)}
    ]
    figures = report(
        f"kill -9 trainer x{KILLS}",
        {
            "trades": len(trades),
            "undisturbed_run_s": [round(first_s, 2), round(run_s, 2)],
            "killed_after_s": killed_after_s,
            "killed_during_a_run_marked_failed": len(killed_runs),
            "runs_by_status": by_status,
            "models": len(models),
            "active": [m["version"] for m in active],
            "unfinished": len(unfinished),
            "stray_models": len(stray_models),
            "bad_digest": len(bad_digest),
            "last_run": trainer_pb.TrainingRunStatus.Name(last_status),
            "last_run_s": round(last_s, 2),
            "restart_to_serving_s": restart_s,
            "retries": dict(call.retries),
        },
    )
    assert len(restart_s) == KILLS and alive and last_id in runs, (figures, log[-3000:])
    assert len(killed_runs) >= KILLS // 2, figures  # most kills landed during a run
    assert len(rows) == KILLS + 3, figures  # the two undisturbed runs, one per kill, the last one
    assert last_status in ENDED and first_id in runs, figures
    assert not unfinished and not succeeded_without_model, (figures, unfinished, succeeded_without_model)
    assert not neither, (figures, neither)
    assert not stray_models and not bad_digest, (figures, stray_models, bad_digest)
    assert len(active) <= 1, figures
    for m in active:
        run = runs[m["run_id"]]
        assert run["status"] == "succeeded" and run["promoted"] and run["model_version"] == m["version"], figures
