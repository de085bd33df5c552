"""The trainer service process: its gRPC servicers and background work."""

from __future__ import annotations

from aegis.server import ServiceContext, ServiceDefinition, ServiceParts, unbuilt_registration
from aegis.v1 import trainer_pb2_grpc as trainer_grpc


async def setup(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(registrations=[unbuilt_registration(trainer_grpc, "TrainerService")])


DEFINITION = ServiceDefinition(name="trainer", setup=setup, needs_postgres=True, needs_redis=True)
