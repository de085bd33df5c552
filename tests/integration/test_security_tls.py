"""Optional TLS between services: a throw-away CA made here, a service started with its certificate.

A plaintext client is refused, a client trusting another CA is refused, a client with the CA gets answers (through
``aegis.observability``'s channel helpers, as services and the CLI use them); with AEGIS_TLS_CLIENT_AUTH=true a
client must also present a certificate signed by the CA (mutual TLS).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aegis import config, observability, testing

OK = health_pb2.HealthCheckResponse.SERVING
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
        assert refused_plain == "UNAVAILABLE"
        assert refused_other == "UNAVAILABLE"
        assert without_cert == ("UNAVAILABLE" if mutual else OK)
        assert _check(proc.address, with_cert) == OK
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
