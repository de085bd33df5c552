"""TrainerService over real gRPC (in-process server on a loopback port) on real PostgreSQL and Redis.

Training data: SYNTHETIC-FROM-REAL closed learning trades (aegis.trainer.synthetic.trades_from_klines) on the real
10-day BTCUSDT/ETHUSDT 1m klines, which are stored as 1m candles for the price checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from aegis import testing
from aegis.trainer.bias import CHECK_NAMES
from aegis.trainer.synthetic import insert_trades, trades_from_klines
from aegis.trainer.testing import TrainerHarness, klines_database, real_klines, trainer_server
from aegis.v1 import trainer_pb2 as trainer_pb
from aegis.v1 import trainer_pb2_grpc as trainer_grpc

FINISHED = (
    trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED,
    trainer_pb.TRAINING_RUN_STATUS_FAILED,
    trainer_pb.TRAINING_RUN_STATUS_SKIPPED,
)


@pytest.fixture(scope="module")
def dsn(admin_dsn: str, shared_data: Path) -> Iterator[str]:
    klines = real_klines(shared_data)
    url = klines_database(admin_dsn, klines, "aegis_trainer_grpc")

    async def seed() -> None:
        from aegis.storage.postgres import connect_once

        conn = await connect_once(url)
        try:
            await insert_trades(conn, trades_from_klines(klines, seed=4, plant=0.7, end_index=9000))
        finally:
            await conn.close()

    asyncio.run(seed())
    yield url
    testing.drop_database_sync(admin_dsn, url)


@pytest_asyncio.fixture
async def harness(dsn: str, redis_url: str) -> AsyncIterator[TrainerHarness]:
    async with trainer_server(dsn, redis_url, min_trades=100, epochs=20) as h:
        yield h


@pytest_asyncio.fixture
async def stub(harness: TrainerHarness) -> AsyncIterator[trainer_grpc.TrainerServiceStub]:
    async with grpc.aio.insecure_channel(harness.address) as channel:
        yield trainer_grpc.TrainerServiceStub(channel)


async def finished_report(stub: trainer_grpc.TrainerServiceStub, run_id: str) -> trainer_pb.TrainingReport:
    for _ in range(600):
        reply = await stub.GetTrainingReport(trainer_pb.GetTrainingReportRequest(run_id=run_id))
        if reply.report.run.status in FINISHED:
            return reply.report
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish in 30 s")


async def test_train_now_reports_all_five_checks_and_the_promoted_model(
    stub: trainer_grpc.TrainerServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as none_yet:
        await stub.GetTrainingReport(trainer_pb.GetTrainingReportRequest())
    assert none_yet.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as no_model:
        await stub.GetModel(trainer_pb.GetModelRequest())
    assert no_model.value.code() == grpc.StatusCode.NOT_FOUND

    started = await stub.TrainNow(trainer_pb.TrainNowRequest(seed=42, reason="acceptance"))
    assert started.run_id and not started.already_running
    again = await stub.TrainNow(trainer_pb.TrainNowRequest(reason="impatient"))
    assert again.already_running and again.run_id == started.run_id

    report = await finished_report(stub, started.run_id)
    assert report.run.status == trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED, report.run.error
    assert report.run.seed == 42 and report.run.reason == "acceptance"
    assert [c.name for c in report.bias_checks] == list(CHECK_NAMES)
    for check in report.bias_checks:
        assert check.passed and check.detail and check.threshold > 0, check
    assert report.trades_total == report.trades_valid > 0 and report.trades_invalid == 0
    assert report.model_metrics.trades > 0 and report.model_metrics.folds == 5
    assert -1 <= report.model_metrics.information_coefficient <= 1
    assert 0 <= report.model_metrics.hit_rate <= 1
    assert report.baseline_name == "rules" and report.baseline_metrics.trades == report.model_metrics.trades
    assert report.run.promoted and report.promotion_reason.startswith("promoted")
    assert report.previous_model_version == ""

    latest = await stub.GetTrainingReport(trainer_pb.GetTrainingReportRequest())
    assert latest.report.run.run_id == started.run_id

    active = (await stub.GetModel(trainer_pb.GetModelRequest())).model
    assert active.version == report.run.model_version and active.status == trainer_pb.MODEL_STATUS_ACTIVE
    assert active.run_id == started.run_id and active.algorithm == "torch-mlp"
    assert active.feature_schema_version == "1" and len(active.feature_names) == 33
    assert active.training_trades == report.trades_valid
    assert len(active.artifact_sha256) == 64 and active.artifact_size_bytes > 0
    assert active.metrics.information_coefficient == report.model_metrics.information_coefficient
    assert active.hyperparameters["seed"] == "42" and active.HasField("activated_time")


async def test_activate_model_rolls_back_and_lists_page(stub: trainer_grpc.TrainerServiceStub) -> None:
    # a second run, whatever its verdict, gives a second version to roll between
    started = await stub.TrainNow(trainer_pb.TrainNowRequest(seed=43, reason="second"))
    await finished_report(stub, started.run_id)
    models = (await stub.ListModels(trainer_pb.ListModelsRequest())).models
    assert len(models) >= 2 and models[0].created_time.ToDatetime() >= models[1].created_time.ToDatetime()
    active = (await stub.GetModel(trainer_pb.GetModelRequest())).model
    other = next(m for m in models if m.version != active.version)

    done = await stub.ActivateModel(trainer_pb.ActivateModelRequest(version=other.version, reason="rollback test"))
    assert done.model.version == other.version and done.model.status == trainer_pb.MODEL_STATUS_ACTIVE
    assert done.previous_version == active.version
    retired = (await stub.GetModel(trainer_pb.GetModelRequest(version=active.version))).model
    assert retired.status == trainer_pb.MODEL_STATUS_RETIRED
    actives = await stub.ListModels(trainer_pb.ListModelsRequest(status=trainer_pb.MODEL_STATUS_ACTIVE))
    assert [m.version for m in actives.models] == [other.version]

    # paging: one per page, newest first, every model once
    seen, token = [], ""
    while True:
        page = await stub.ListModels(trainer_pb.ListModelsRequest(page_size=1, page_token=token))
        seen += [m.version for m in page.models]
        token = page.next_page_token
        if not token:
            break
    assert seen == [m.version for m in models]
    runs = await stub.ListTrainingRuns(trainer_pb.ListTrainingRunsRequest(page_size=1))
    assert len(runs.runs) == 1 and runs.next_page_token and runs.runs[0].run_id == started.run_id
    rest = await stub.ListTrainingRuns(trainer_pb.ListTrainingRunsRequest(page_token=runs.next_page_token))
    assert started.run_id not in [r.run_id for r in rest.runs] and len(rest.runs) >= 1
    succeeded = await stub.ListTrainingRuns(
        trainer_pb.ListTrainingRunsRequest(status=trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED)
    )
    assert all(r.status == trainer_pb.TRAINING_RUN_STATUS_SUCCEEDED for r in succeeded.runs)


@pytest.mark.parametrize(
    ("call", "request_", "code"),
    [
        ("GetModel", trainer_pb.GetModelRequest(version="no-such-model"), grpc.StatusCode.NOT_FOUND),
        ("ActivateModel", trainer_pb.ActivateModelRequest(version="no-such-model"), grpc.StatusCode.NOT_FOUND),
        ("ActivateModel", trainer_pb.ActivateModelRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        ("GetTrainingReport", trainer_pb.GetTrainingReportRequest(run_id="nope"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            "GetTrainingReport",
            trainer_pb.GetTrainingReportRequest(run_id="00000000-0000-4000-8000-000000000000"),
            grpc.StatusCode.NOT_FOUND,
        ),
        ("ListModels", trainer_pb.ListModelsRequest(page_token="garbage!"), grpc.StatusCode.INVALID_ARGUMENT),
        ("ListTrainingRuns", trainer_pb.ListTrainingRunsRequest(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT),
        ("TrainNow", trainer_pb.TrainNowRequest(seed=2**63), grpc.StatusCode.INVALID_ARGUMENT),
        ("TrainNow", trainer_pb.TrainNowRequest(reason="  \x00  "), grpc.StatusCode.INVALID_ARGUMENT),
        ("TrainNow", trainer_pb.TrainNowRequest(reason="x" * 501), grpc.StatusCode.INVALID_ARGUMENT),
        ("ActivateModel", trainer_pb.ActivateModelRequest(version="v\x00"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_bad_requests_get_the_status_code_that_says_why(
    stub: trainer_grpc.TrainerServiceStub, call: str, request_: object, code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await getattr(stub, call)(request_)
    assert error.value.code() == code, error.value.details()
    assert error.value.details()
