"""The virtual_account service process: its gRPC servicers and background work."""

from __future__ import annotations

from aegis.server import ServiceContext, ServiceDefinition, ServiceParts, unbuilt_registration
from aegis.v1 import virtual_account_pb2_grpc as virtual_account_grpc


async def setup(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(registrations=[unbuilt_registration(virtual_account_grpc, "VirtualAccountService")])


DEFINITION = ServiceDefinition(name="virtual_account", setup=setup, needs_postgres=True, needs_redis=True)
