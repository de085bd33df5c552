"""A service built on the real runtime whose one RPC takes a while: for graceful-shutdown tests.

RiskService/GetRiskConfig sleeps AEGIS_TEST_SLOW_S seconds, then answers; every other RPC is UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import os

from aegis.server import (
    Registration,
    ServiceContext,
    ServiceDefinition,
    ServiceParts,
    main,
    unimplemented_servicer,
)
from aegis.v1 import risk_pb2, risk_pb2_grpc


class SlowRisk(
    unimplemented_servicer(risk_pb2_grpc.RiskServiceServicer, "aegis.v1.RiskService", implemented=["GetRiskConfig"])
):
    async def GetRiskConfig(self, request, context):
        await asyncio.sleep(float(os.environ.get("AEGIS_TEST_SLOW_S", "1.5")))
        return risk_pb2.GetRiskConfigResponse()


async def setup(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(
        [Registration(risk_pb2_grpc.add_RiskServiceServicer_to_server, SlowRisk(), "aegis.v1.RiskService")]
    )


if __name__ == "__main__":
    main(ServiceDefinition(name="risk", setup=setup, needs_postgres=False, needs_redis=True))
