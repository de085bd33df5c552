"""The risk service process: its gRPC servicers and background work."""

from __future__ import annotations

from aegis.server import ServiceContext, ServiceDefinition, ServiceParts, unbuilt_registration
from aegis.v1 import risk_pb2_grpc as risk_grpc


async def setup(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(registrations=[unbuilt_registration(risk_grpc, "RiskService")])


DEFINITION = ServiceDefinition(name="risk", setup=setup, needs_postgres=True, needs_redis=True)
