"""The feed service process: its gRPC servicers and background work."""

from __future__ import annotations

from aegis.server import ServiceContext, ServiceDefinition, ServiceParts, unbuilt_registration
from aegis.v1 import feed_pb2_grpc as feed_grpc


async def setup(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(registrations=[unbuilt_registration(feed_grpc, "FeedService")])


DEFINITION = ServiceDefinition(name="feed", setup=setup, needs_postgres=False, needs_redis=True)
