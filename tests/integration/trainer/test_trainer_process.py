"""The trainer as a real process (``python -m aegis.trainer``): health, TrainNow over gRPC, graceful stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from aegis import testing
from aegis.storage.migrate import migrate
from aegis.storage.postgres import connect_once
from aegis.v1 import trainer_pb2 as trainer_pb
from aegis.v1 import trainer_pb2_grpc as trainer_grpc


def test_the_trainer_process_serves_train_now_and_stops_cleanly(
    fresh_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async def prepare() -> None:
        conn = await connect_once(fresh_database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(prepare())
    env = {
        "DATABASE_URL": fresh_database_url,
        "REDIS_URL": redis_url,
        "AEGIS_HOME": str(tmp_path / "home"),
        "AEGIS_TRAINER_INTERVAL_S": "0",
    }
    with testing.service("trainer", env, tmp_path) as proc:
        assert proc.wait_status("SERVING"), proc.log_text()
        with grpc.insecure_channel(proc.address) as channel:
            stub = trainer_grpc.TrainerServiceStub(channel)
            started = stub.TrainNow(trainer_pb.TrainNowRequest(reason="process test"), timeout=10)
            assert started.run_id and not started.already_running
            deadline = time.monotonic() + 20
            while True:
                report = stub.GetTrainingReport(
                    trainer_pb.GetTrainingReportRequest(run_id=started.run_id), timeout=10
                ).report
                if report.run.status != trainer_pb.TRAINING_RUN_STATUS_RUNNING or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        # an empty database: nothing to learn from, so the run is skipped and says why, with all five checks
        assert report.run.status == trainer_pb.TRAINING_RUN_STATUS_SKIPPED, proc.log_text()
        assert "0 valid trades" in report.run.error and len(report.bias_checks) == 5
        assert proc.stop() == 0
