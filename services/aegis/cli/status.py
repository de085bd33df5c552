"""`aegis status`: every service's health, address and version."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aegis import config
from aegis.v1 import service_info_pb2 as info_pb
from aegis.v1 import service_info_pb2_grpc as info_grpc

UP_STATE_FILE = "run/up.json"


def addresses(settings: config.Settings) -> dict[str, str]:
    """Return where each service listens: from a running `aegis up` if there is one, else from the settings."""
    found = {name: settings.address_of(name) for name in config.SERVICES}
    state = running_up_state(settings.home)
    if state:
        found.update(state.get("services", {}))
    return found


def running_up_state(home: Path) -> dict[str, Any] | None:
    path = home / UP_STATE_FILE
    try:
        state = json.loads(path.read_text())
        import os

        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return state


async def probe(name: str, address: str, timeout_s: float = 1.5) -> dict[str, Any]:
    """Ask one service for its health and identity."""
    result: dict[str, Any] = {"address": address, "status": "NOT_SERVING", "version": ""}
    from aegis.observability import insecure_or_tls_channel

    # TLS when AEGIS_TLS_CA is set (docs/security.md), plaintext otherwise; no tracing for a CLI probe.
    async with insecure_or_tls_channel(address, interceptors=[]) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
            result["status"] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.aio.AioRpcError as exc:
            result["error"] = f"unreachable: {exc.code().name}"
            return result
        try:
            info = await info_grpc.ServiceInfoServiceStub(channel).GetServiceInfo(
                info_pb.GetServiceInfoRequest(), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            result["error"] = f"no ServiceInfoService: {exc.code().name}"
            return result
        result["version"] = info.version
        result["pid"] = info.pid
        if info.service != name:
            result["status"] = "NOT_SERVING"
            result["error"] = f"{address} is served by {info.service!r}, not {name!r}"
    return result


async def collect(where: Mapping[str, str]) -> dict[str, Any]:
    names = list(where)
    results = await asyncio.gather(*(probe(name, where[name]) for name in names))
    return {"services": dict(zip(names, results, strict=True))}


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="AEGIS services")
    for column in ("service", "address", "status", "version", "pid", "note"):
        table.add_column(column)
    for name, entry in report["services"].items():
        colour = "green" if entry["status"] == "SERVING" else "red"
        table.add_row(
            name,
            entry["address"],
            f"[{colour}]{entry['status']}[/{colour}]",
            entry.get("version", ""),
            str(entry.get("pid", "")),
            entry.get("error", ""),
        )
    Console().print(table)


def run(settings: config.Settings, as_json: bool) -> int:
    report = asyncio.run(collect(addresses(settings)))
    if as_json:
        print(json.dumps(report, sort_keys=False))
    else:
        render(report)
    return 0 if all(s["status"] == "SERVING" for s in report["services"].values()) else 1
