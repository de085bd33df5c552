"""The brain service process: its gRPC servicers and background work."""

from __future__ import annotations

from aegis.server import ServiceContext, ServiceDefinition, ServiceParts, unbuilt_registration
from aegis.v1 import market_pb2_grpc as market_grpc


async def setup(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(registrations=[unbuilt_registration(market_grpc, "MarketService")])


DEFINITION = ServiceDefinition(name="brain", setup=setup, needs_postgres=True, needs_redis=True)
