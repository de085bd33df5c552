"""Binance keys never leave a process; live mode needs its explicit opt-in in every service.

Every service runs with BINANCE_API_KEY and BINANCE_API_SECRET set to recognisable values; the test calls every RPC
(an empty request and each invalid one of the RPC fuzz), reads each /metrics page, runs ``aegis config`` and
``aegis status --json``, then searches all of it — answers, error messages, metrics, CLI output and every log
line — for the key and the secret (as they are, and base64- or hex-encoded).
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
from test_rpc_fuzz import Fleet, call, catalog, mutations

from aegis import config, testing
from aegis.config import LIVE_CONFIRMATION


def encodings(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode()]


def test_api_keys_are_never_logged_returned_or_shown(service_env: dict[str, str], tmp_path: Path) -> None:
    key = "AEGISTESTKEY" + secrets.token_hex(12)
    secret = "AEGISTESTSECRET" + secrets.token_hex(16)
    env = {**service_env, "BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret, "AEGIS_LOG_LEVEL": "debug"}
    seen: list[tuple[str, bytes]] = []
    with Fleet(env, tmp_path) as fleet:
        for service, proc in fleet.procs.items():
            with grpc.insecure_channel(proc.address) as channel:
                for rpc in catalog(service):
                    cases = [rpc.request_cls(), *(request for _, request in mutations(rpc.request_cls))]
                    for request in cases:
                        out = call(channel, rpc, request)
                        seen.append((f"{service} {rpc.method.name}", out.response + out.details.encode()))
            metrics_port = proc.port + 1000
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
                seen.append((f"{service} /metrics", reply.read()))
        addresses = {f"AEGIS_{name.upper()}_ADDRESS": p.address for name, p in fleet.procs.items()}
        cli_env = {**testing.os.environ, **env, **addresses}
        for args in (["config"], ["status", "--json"]):
            result = subprocess.run(
                [sys.executable, "-m", "aegis", *args], env=cli_env, capture_output=True, timeout=60, check=False
            )
            seen.append((f"aegis {' '.join(args)}", result.stdout + result.stderr))
            assert result.returncode == 0, result.stderr.decode()  # a crash would hide its output from the search
        status_json = seen[-1][1]
    logs = sorted(tmp_path.glob("*.log"))
    seen += [(f"log {p.name}", p.read_bytes()) for p in logs]
    leaks = [
        (where, label)
        for where, blob in seen
        for label, value in (("key", key), ("secret", secret))
        for encoded in encodings(value)
        if encoded in blob
    ]
    print(
        f"[security] searched {len(seen)} outputs ({sum(len(b) for _, b in seen):,} bytes: RPC answers and errors, "
        f"/metrics of {len(fleet.procs)} services, aegis config, aegis status --json, {len(logs)} logs): "
        f"{len(leaks)} leaks"
    )
    assert b'"services"' in status_json
    assert not leaks, leaks


def test_live_mode_is_refused_without_the_explicit_opt_in_by_every_service(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    keys = {"BINANCE_API_KEY": "k" * 16, "BINANCE_API_SECRET": "s" * 16}
    cases = {
        "no confirmation": ({**keys, "AEGIS_MODE": "live"}, "AEGIS_LIVE_CONFIRM"),
        "wrong confirmation": ({**keys, "AEGIS_MODE": "live", "AEGIS_LIVE_CONFIRM": "yes"}, "AEGIS_LIVE_CONFIRM"),
        "no keys": ({"AEGIS_MODE": "live", "AEGIS_LIVE_CONFIRM": LIVE_CONFIRMATION}, "BINANCE_API_KEY"),
    }
    procs = []
    for case, (extra, needle) in cases.items():
        for service in config.SERVICES:
            env = {**testing.os.environ, **service_env, "BINANCE_API_KEY": "", "BINANCE_API_SECRET": "", **extra}
            procs.append(
                (
                    case,
                    service,
                    needle,
                    subprocess.Popen(
                        [sys.executable, "-m", f"aegis.{service}"],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    ),
                )
            )
    refused = []
    for case, service, needle, proc in procs:
        out, err = proc.communicate(timeout=60)
        refused.append((case, service, proc.returncode))
        assert proc.returncode == 2, (case, service, proc.returncode, err.decode()[-2000:])
        assert needle in err.decode() and "refusing" in err.decode(), (case, service, err.decode())
        assert b"listening" not in out  # refused before any port was bound
    print(f"[security] live mode refused: {len(refused)} starts ({len(cases)} cases x {len(config.SERVICES)} services)")
