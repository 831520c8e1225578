"""TLS for the API: the server's certificate and key, and the CA bundle a client trusts."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from dispatcher.errors import ConfigError

CERTFILE = "DISPATCHER_TLS_CERTFILE"
KEYFILE = "DISPATCHER_TLS_KEYFILE"
CA_FILE = "DISPATCHER_CA_FILE"


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The certificate (chain) and private key uvicorn serves HTTPS with."""

    certfile: Path
    keyfile: Path

    @classmethod
    def from_files(cls, certfile: Path | None, keyfile: Path | None) -> ServerTls | None:
        """None for plain HTTP (neither given); else both, loadable and matching, checked
        here so that a wrong file fails at start in one line, not at the first handshake."""
        if certfile is None and keyfile is None:
            return None
        if certfile is None or keyfile is None:
            missing, given = (CERTFILE, KEYFILE) if certfile is None else (KEYFILE, CERTFILE)
            raise ConfigError(missing, f"not configured (required with {given})")
        for name, path in ((CERTFILE, certfile), (KEYFILE, keyfile)):
            if not path.is_file():
                raise ConfigError(name, f"no such file: {path}")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                KEYFILE, f"cannot serve with {certfile} and {keyfile}: {exc.strerror or exc}"
            ) from None
        return cls(certfile, keyfile)


def client_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """What an HTTP client checks the API's certificate against: the system's CAs (True), or
    only the given bundle (a private CA or a self-signed certificate)."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(CA_FILE, f"cannot load {ca_file}: {exc.strerror or exc}") from None


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
