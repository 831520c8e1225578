"""The API over HTTPS: a certificate from a private CA made here, the real app served with it,
and the CLI trusting it through a CA file (flag or DISPATCHER_CA_FILE), refusing it without."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api.app import create_app
from api.server import ApiServer
from dispatcher.cli import main
from dispatcher.errors import ConfigError
from dispatcher.sandbox.server import free_port
from dispatcher.tls import ServerTls, client_verify, is_loopback
from tests.stack import API_TOKEN, Stack


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    """A certificate valid for a day, for ``key``."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(common_name), _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _server_cert(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for 127.0.0.1 and localhost, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(_name("dispatcher test api"), ca.subject, key)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca("dispatcher test CA")
    cert, key = _server_cert(ca, ca_key)
    other_ca, _ = _ca("someone else's CA")
    paths = Pki(root / "ca.pem", root / "cert.pem", root / "key.pem", root / "other-ca.pem")
    paths.ca.write_bytes(_pem(ca))
    paths.cert.write_bytes(_pem(cert))
    paths.key.write_bytes(_key_pem(key))
    paths.key.chmod(0o600)
    paths.other_ca.write_bytes(_pem(other_ca))
    return paths


@pytest.fixture(scope="module")
def https_api(stack: Stack, pki: Pki) -> Iterator[ApiServer]:
    """The deployment's real app, served over HTTPS on a port of its own."""
    tls = ServerTls.from_files(pki.cert, pki.key)
    app = create_app(stack.settings, stack.deployment, stack.coordinator)
    server = ApiServer(app, free_port(), tls=tls).start()
    yield server
    server.stop()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("DISPATCHER_API_TOKEN", API_TOKEN)
    monkeypatch.delenv("DISPATCHER_CA_FILE", raising=False)
    return monkeypatch


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_the_cli_reads_the_https_api_through_the_ca_file(
    https_api: ApiServer,
    pki: Pki,
    cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert https_api.url.startswith("https://127.0.0.1:")
    assert main(["stats", "--api-url", https_api.url, "--ca-file", str(pki.ca)]) == 0
    assert "Queues" in capsys.readouterr().out

    cli_env.setenv("DISPATCHER_CA_FILE", str(pki.ca))
    assert main(["stats", "--api-url", https_api.url]) == 0
    assert "Portfolios" in capsys.readouterr().out


def test_the_cli_refuses_a_certificate_it_cannot_trust_in_one_line(
    https_api: ApiServer,
    pki: Pki,
    cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stats", "--api-url", https_api.url]) == 1  # the system's CAs only
    assert "ConnectError: TLS: unable to get local issuer certificate" in one_error_line(capsys)

    assert main(["stats", "--api-url", https_api.url, "--ca-file", str(pki.other_ca)]) == 1
    assert "ConnectError: TLS: unable to get local issuer certificate" in one_error_line(capsys)

    # Plain HTTP to the HTTPS port gets no answer, and no token is accepted that way.
    plain = https_api.url.replace("https://", "http://")
    assert main(["stats", "--api-url", plain]) == 1
    assert "api: http://127.0.0.1" in one_error_line(capsys)


def test_an_unreadable_ca_file_is_one_line_naming_the_setting(
    tmp_path: Path, cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.pem"
    assert main(["stats", "--api-url", "https://127.0.0.1:9", "--ca-file", str(missing)]) == 2
    assert "DISPATCHER_CA_FILE: cannot load" in one_error_line(capsys)

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError) as raised:
        client_verify(junk)
    assert raised.value.setting == "DISPATCHER_CA_FILE"
    assert client_verify(None) is True


def test_server_tls_needs_both_files_and_a_matching_key(pki: Pki, tmp_path: Path) -> None:
    assert ServerTls.from_files(None, None) is None
    assert ServerTls.from_files(pki.cert, pki.key) == ServerTls(pki.cert, pki.key)
    with pytest.raises(ConfigError) as raised:
        ServerTls.from_files(pki.cert, None)
    assert raised.value.setting == "DISPATCHER_TLS_KEYFILE"
    with pytest.raises(ConfigError) as raised:
        ServerTls.from_files(None, pki.key)
    assert raised.value.setting == "DISPATCHER_TLS_CERTFILE"
    with pytest.raises(ConfigError) as raised:
        ServerTls.from_files(tmp_path / "nope.pem", pki.key)
    assert raised.value.setting == "DISPATCHER_TLS_CERTFILE"

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ConfigError, match="cannot serve with") as raised:
        ServerTls.from_files(pki.cert, stranger)
    assert raised.value.setting == "DISPATCHER_TLS_KEYFILE"


def test_serve_with_half_a_tls_config_stops_at_once_in_one_line(
    pki: Pki, cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before Ray or any service starts (this returns at once)."""
    cli_env.delenv("DISPATCHER_TLS_KEYFILE", raising=False)
    assert main(["serve", "--port", "9", "--ssl-certfile", str(pki.cert)]) == 2
    assert "DISPATCHER_TLS_KEYFILE: not configured" in one_error_line(capsys)

    cli_env.setenv("DISPATCHER_TLS_CERTFILE", str(pki.key))  # a key where the cert belongs
    cli_env.setenv("DISPATCHER_TLS_KEYFILE", str(pki.key))
    assert main(["serve", "--port", "9"]) == 2
    assert "cannot serve with" in one_error_line(capsys)


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("10.0.0.5")
    assert not is_loopback("head.dispatcher.example")
