"""Optional TLS between services: a throw-away CA made here, a service started with its certificate.

A plaintext client is refused, a client trusting another CA is refused, a client with the CA gets answers (through
``aegis.observability``'s channel helpers, as services and the CLI use them); with AEGIS_TLS_CLIENT_AUTH=true a
client must also present a certificate signed by the CA (mutual TLS).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aegis import config, observability, testing

OK = health_pb2.HealthCheckResponse.SERVING
ANSWERED = (OK, health_pb2.HealthCheckResponse.NOT_SERVING)
CA = tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(directory: Path, name: str) -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def issue(
    directory: Path, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path], name: str
) -> tuple[Path, Path]:
    ca_key, ca_cert, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def health(channel: grpc.Channel) -> int | str:
    try:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3).status
    except grpc.RpcError as exc:
        return exc.code().name


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_port_refuses_plaintext_and_serves_clients_with_the_ca(
    service_env: dict[str, str], tmp_path: Path, mutual: bool
) -> None:
    ca = make_ca(tmp_path, "aegis-test-ca")
    other_ca = make_ca(tmp_path, "someone-else-ca")
    server_cert, server_key = issue(tmp_path, ca, "risk")
    client_cert, client_key = issue(tmp_path, ca, "brain")
    tls = {"AEGIS_TLS_CERT": str(server_cert), "AEGIS_TLS_KEY": str(server_key), "AEGIS_TLS_CA": str(ca[2])}
    if mutual:
        tls["AEGIS_TLS_CLIENT_AUTH"] = "true"
    proc = testing.ServiceProcess("risk", {**service_env, **tls}, log_dir=tmp_path).start()
    try:
        with_ca = config.load({"AEGIS_TLS_CA": str(ca[2])})
        with_cert = config.load(
            {"AEGIS_TLS_CA": str(ca[2]), "AEGIS_TLS_CERT": str(client_cert), "AEGIS_TLS_KEY": str(client_key)}
        )
        wrong_ca = config.load({"AEGIS_TLS_CA": str(other_ca[2])})
        good = with_cert if mutual else with_ca
        assert testing.wait_until(lambda: _check(proc.address, good) == OK, 30, 0.2), proc.log_text()[-3000:]
        with grpc.insecure_channel(proc.address) as plaintext:
            refused_plain = health(plaintext)
        refused_other = _check(proc.address, wrong_ca)
        without_cert = _check(proc.address, with_ca)
        print(
            f"[security] TLS{' (mutual)' if mutual else ''}: plaintext -> {refused_plain}, other CA -> "
            f"{refused_other}, CA{' without client cert' if mutual else ''} -> {without_cert}, "
            f"CA + client cert -> {_check(proc.address, with_cert)}"
        )
        # An answer of any health status proves the TLS handshake passed. SERVING is not asked for again: under
        # load a 1 s dependency check can time out and flip the status to NOT_SERVING for a second, which is
        # the health monitor doing its job, not TLS failing.
        assert refused_plain == "UNAVAILABLE"
        assert refused_other == "UNAVAILABLE"
        if mutual:
            assert without_cert == "UNAVAILABLE"
        else:
            assert without_cert in ANSWERED, without_cert
        assert _check(proc.address, with_cert) in ANSWERED
        assert '"tls": true' in proc.log_text()
    finally:
        proc.stop()


def _check(address: str, settings: config.Settings) -> int | str:
    with observability.sync_channel(address, settings) as channel:
        return health(channel)


def test_tls_settings_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="AEGIS_TLS_CERT and AEGIS_TLS_KEY"):
        config.load({"AEGIS_TLS_CERT": "/x.crt"})
    with pytest.raises(config.ConfigError, match="AEGIS_TLS_CLIENT_AUTH"):
        config.load({"AEGIS_TLS_CLIENT_AUTH": "true"})
    missing = config.load({"AEGIS_TLS_CERT": str(tmp_path / "no.crt"), "AEGIS_TLS_KEY": str(tmp_path / "no.key")})
    with pytest.raises(config.ConfigError, match="cannot be read"):
        observability.server_credentials(missing)


# ------------------------------------------------------------------------------------ between the services


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    """One CA and one certificate for every service (SANs localhost and 127.0.0.1), as the chart's Secret holds."""
    ca = make_ca(tmp_path, "aegis-internal-ca")
    cert, key = issue(tmp_path, ca, "aegis-services")
    return {"AEGIS_TLS_CERT": str(cert), "AEGIS_TLS_KEY": str(key), "AEGIS_TLS_CA": str(ca[2])}


@pytest.fixture
def rules_database(admin_dsn: str, shared_data: Path) -> Iterator[str]:
    """A database with the real exchange rules (risk sizes nothing without them)."""
    from aegis.risk.testing import store_rules_files
    from aegis.storage.migrate import migrate
    from aegis.storage.postgres import Database, connect_once

    dsn = testing.create_database_sync(admin_dsn, "aegis_tls")

    async def run() -> None:
        conn = await connect_once(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        db = Database(dsn)
        try:
            await store_rules_files(
                db,
                None,
                shared_data / "binance/alphadogs_coinbase_python/futures_exchange_info.json",
                shared_data / "binance/freqtrade/freqtrade/exchange/binance_leverage_tiers.json",
            )
        finally:
            await db.close()

    asyncio.run(run())
    yield dsn
    testing.drop_database_sync(admin_dsn, dsn)


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_brain_risk_and_virtual_account_talk_over_tls_and_a_plaintext_client_gets_nothing(
    rules_database: str, redis_url: str, tls_files: dict[str, str], tmp_path: Path, mutual: bool
) -> None:
    """The brain's executor (its channels from ``insecure_or_tls_channel``) → risk → virtual-account, every hop TLS.

    risk and virtual-account run as processes with the certificate and the CA; risk's own client to virtual-account
    is TLS because AEGIS_TLS_CA is set. With the CA the executor's signal is sized by risk (which read the account
    from virtual-account over TLS) and opened on virtual-account; the same executor with plaintext channels gets
    UNAVAILABLE on both and opens nothing.
    """
    tls = {**tls_files, **({"AEGIS_TLS_CLIENT_AUTH": "true"} if mutual else {})}
    va_port, risk_port = testing.free_port(), testing.free_port()
    env = {
        "DATABASE_URL": rules_database,
        "REDIS_URL": redis_url,
        "AEGIS_HOME": str(tmp_path / "home"),
        "AEGIS_RISK_FETCH_RULES": "false",
        "AEGIS_METRICS_ENABLED": "false",
        "AEGIS_VIRTUAL_ACCOUNT_ADDRESS": f"127.0.0.1:{va_port}",
        "AEGIS_RISK_ADDRESS": f"127.0.0.1:{risk_port}",
        **tls,
    }
    client_settings = config.load(env)
    plain_settings = config.load({k: v for k, v in env.items() if not k.startswith("AEGIS_TLS_")})
    procs = [
        testing.ServiceProcess("virtual_account", env, port=va_port, log_dir=tmp_path).start(),
        testing.ServiceProcess("risk", env, port=risk_port, log_dir=tmp_path).start(),
    ]
    try:
        for proc in procs:
            assert testing.wait_until(lambda p=proc: _check(p.address, client_settings) == OK, 60, 0.2), (
                proc.log_text()[-3000:]
            )
        with_tls = asyncio.run(_execute_one_signal(client_settings))
        plaintext = asyncio.run(_execute_one_signal(plain_settings))
    finally:
        for proc in procs:
            proc.stop()
    print(f"[security] brain -> risk -> virtual-account{' (mutual TLS)' if mutual else ' (TLS)'}: with the CA "
          f"{with_tls}; plaintext {plaintext}")  # fmt: skip
    assert with_tls["learning_opened"] == 1 and with_tls["decisions_failed"] == 0, with_tls
    assert with_tls["SizeOrder"] == {"ok": 1, "failed": {}}, with_tls
    assert plaintext["learning_opened"] == 0 and plaintext["decisions_failed"] == 1, plaintext
    assert plaintext["SizeOrder"]["failed"] == {"UNAVAILABLE": 1} and plaintext["opened_positions"] == 0, plaintext
    assert all('"tls": true' in proc.log_text() for proc in procs)


async def _execute_one_signal(settings: config.Settings) -> dict[str, Any]:
    """Run the brain's executor on one learning-only signal over channels made as the brain makes them."""
    from aegis.brain.events import EventBus, SignalGenerated
    from aegis.brain.execution import Executor
    from aegis.v1 import risk_pb2_grpc as risk_grpc
    from aegis.v1 import virtual_account_pb2 as va_pb
    from aegis.v1 import virtual_account_pb2_grpc as va_grpc

    symbol = "ETHUSDT"  # a symbol the stored exchange rules know
    price = 2500.0
    risk_channel = observability.insecure_or_tls_channel(settings.address_of("risk"), settings)
    va_channel = observability.insecure_or_tls_channel(settings.address_of("virtual_account"), settings)
    accounts = va_grpc.VirtualAccountServiceStub(va_channel)
    try:
        update = va_pb.PriceUpdate(symbol=symbol, mark_price="2500", last_price="2500")
        update.event_time.GetCurrentTime()
        try:  # the price virtual-account fills at (fails on the plaintext channel, which is the point)
            await accounts.ApplyPriceUpdates(va_pb.ApplyPriceUpdatesRequest(updates=[update]), timeout=5)
        except grpc.aio.AioRpcError:
            pass
        bus = EventBus()
        executor = Executor(
            bus,
            risk=risk_grpc.RiskServiceStub(risk_channel),
            accounts=accounts,
            marks=lambda _: (price, time.time_ns() // 1_000_000),
            attempts=2,
            retry_base_s=0.05,
            timeout_s=5,
        )
        signal = SignalGenerated(
            signal_id=str(uuid.uuid4()), symbol=symbol, timeframe="5m", side="LONG",
            entry_price=Decimal("2500"), sl_pct=1.0, tp_pct=2.0, confidence=0.6, candle_open_time_ms=0,
            created_time_ns=time.time_ns(),
        )  # fmt: skip
        tasks = [asyncio.create_task(bus.run()), asyncio.create_task(executor.run())]
        try:
            await executor.execute(signal, paper=False)
            assert await executor.idle()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            listed = await accounts.ListPositions(va_pb.ListPositionsRequest(account="learning"), timeout=5)
            opened = sum(1 for p in listed.positions if p.signal_id == signal.signal_id)
        except grpc.aio.AioRpcError:
            opened = 0
        rpcs = executor.stats.snapshot()
        size = rpcs.get("RiskService.SizeOrder", {})
        return {
            "learning_opened": executor.counts["learning_opened"],
            "decisions_failed": executor.counts["decisions_failed"],
            "SizeOrder": {"ok": size.get("ok", 0), "failed": size.get("failed", {})},
            "opened_positions": opened,
        }
    finally:
        await risk_channel.close()
        await va_channel.close()


def test_the_orchestrator_probes_every_service_over_tls(
    service_env: dict[str, str], tls_files: dict[str, str], tmp_path: Path
) -> None:
    """The orchestrator's probes (health, identity) reach TLS services when AEGIS_TLS_CA is set, and only then."""
    from aegis.v1 import orchestrator_pb2 as orch_pb
    from aegis.v1 import orchestrator_pb2_grpc as orch_grpc

    risk_port = testing.free_port()
    env = {
        **service_env,
        "AEGIS_RISK_FETCH_RULES": "false",
        "AEGIS_METRICS_ENABLED": "false",
        "AEGIS_RISK_ADDRESS": f"127.0.0.1:{risk_port}",
        **tls_files,
    }
    settings = config.load(env)
    risk = testing.ServiceProcess("risk", env, port=risk_port, log_dir=tmp_path).start()
    with_ca = testing.ServiceProcess("orchestrator", env, log_dir=tmp_path).start()
    plain_env = {k: v for k, v in env.items() if not k.startswith("AEGIS_TLS_")}
    without_ca = testing.ServiceProcess("orchestrator", plain_env, log_dir=tmp_path).start()
    try:
        assert testing.wait_until(lambda: _check(risk.address, settings) == OK, 60, 0.2), risk.log_text()[-3000:]
        assert testing.wait_until(lambda: _check(with_ca.address, settings) != "UNAVAILABLE", 60, 0.2)
        assert testing.wait_until(lambda: testing.health_status(without_ca.address) != "UNREACHABLE", 60, 0.2)

        def risk_seen_by(address: str, client: config.Settings | None) -> orch_pb.ServiceStatus:
            channel = observability.sync_channel(address, client) if client else grpc.insecure_channel(address)
            with channel:
                reply = orch_grpc.OrchestratorServiceStub(channel).GetSystemStatus(
                    orch_pb.GetSystemStatusRequest(), timeout=15
                )
            return next(s for s in reply.services if s.name == "risk")

        seen = risk_seen_by(with_ca.address, settings)
        unseen = risk_seen_by(without_ca.address, None)
    finally:
        for proc in (without_ca, with_ca, risk):
            proc.stop()
    print(
        f"[security] orchestrator -> risk over TLS: {orch_pb.ServingStatus.Name(seen.status)} "
        f"(version {seen.version!r}); without the CA: {orch_pb.ServingStatus.Name(unseen.status)} ({unseen.error})"
    )
    assert seen.status == orch_pb.SERVING_STATUS_SERVING and seen.version and not seen.error
    assert unseen.status == orch_pb.SERVING_STATUS_UNREACHABLE and "UNAVAILABLE" in unseen.error
