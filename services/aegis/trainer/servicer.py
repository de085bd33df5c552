"""TrainerService over gRPC: translate requests into :class:`aegis.trainer.runner.Trainer` calls and back.

Status codes come from the error tree (``aegis.server.abort_with``): ValidationError → INVALID_ARGUMENT naming
the field, NotFoundError → NOT_FOUND (no such run or model, no active model, no finished run yet),
DependencyUnavailable → UNAVAILABLE (PostgreSQL down).
"""

from __future__ import annotations

import grpc

from aegis.errors import AegisError
from aegis.server import Registration, abort_with
from aegis.trainer import convert
from aegis.trainer.runner import Trainer
from aegis.v1 import trainer_pb2 as trainer_pb
from aegis.v1 import trainer_pb2_grpc as trainer_grpc

SERVICE_NAME = "aegis.v1.TrainerService"


class TrainerServicer(trainer_grpc.TrainerServiceServicer):
    """The thin translator."""

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer

    async def TrainNow(
        self, request: trainer_pb.TrainNowRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb.TrainNowResponse:
        try:
            run_id, already = await self._trainer.start_run(
                trigger="manual",
                reason=request.reason.strip() or "manual",
                seed=request.seed if request.HasField("seed") else None,
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return trainer_pb.TrainNowResponse(run_id=run_id, already_running=already)

    async def GetModel(
        self, request: trainer_pb.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb.GetModelResponse:
        try:
            model = await self._trainer.get_model(request.version if request.HasField("version") else None)
        except AegisError as exc:
            await abort_with(context, exc)
        return trainer_pb.GetModelResponse(model=convert.model_to_pb(model))

    async def ListModels(
        self, request: trainer_pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb.ListModelsResponse:
        try:
            models, token = await self._trainer.list_models(
                request.page_size, request.page_token, convert.model_status_from_pb(request.status)
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return trainer_pb.ListModelsResponse(models=[convert.model_to_pb(m) for m in models], next_page_token=token)

    async def GetTrainingReport(
        self, request: trainer_pb.GetTrainingReportRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb.GetTrainingReportResponse:
        try:
            run = await self._trainer.get_run(request.run_id if request.HasField("run_id") else None)
        except AegisError as exc:
            await abort_with(context, exc)
        return trainer_pb.GetTrainingReportResponse(report=convert.report_to_pb(run))

    async def ListTrainingRuns(
        self, request: trainer_pb.ListTrainingRunsRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb.ListTrainingRunsResponse:
        try:
            runs, token = await self._trainer.list_runs(
                request.page_size, request.page_token, convert.run_status_from_pb(request.status)
            )
        except AegisError as exc:
            await abort_with(context, exc)
        return trainer_pb.ListTrainingRunsResponse(runs=[convert.run_to_pb(r) for r in runs], next_page_token=token)

    async def ActivateModel(
        self, request: trainer_pb.ActivateModelRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb.ActivateModelResponse:
        try:
            done = await self._trainer.activate(request.version.strip(), request.reason.strip())
        except AegisError as exc:
            await abort_with(context, exc)
        return trainer_pb.ActivateModelResponse(
            model=convert.model_to_pb(done.model), previous_version=done.previous_version or ""
        )


def registration(trainer: Trainer) -> Registration:
    return Registration(trainer_grpc.add_TrainerServiceServicer_to_server, TrainerServicer(trainer), SERVICE_NAME)
