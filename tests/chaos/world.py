"""The processes a chaos run owns: its own valkey and PostgreSQL, sandboxes, ``dispatcher serve``.

Everything lives under one temporary directory and listens on 127.0.0.1. Faults are only ever
sent to processes started here: a pid is checked against our own process trees (and our own
Ray temporary directories) before any signal, so the machine's Redis (6379) and Postgres
(5432) and other people's Ray are never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx
import psutil
import redis

from dispatcher.services import EmbeddedPostgres, EmbeddedRedis

API_TOKEN = "chaos-api-token"
APP_SECRET = "chaos-app-secret"
VERIFY_TOKEN = "chaos-verify-token"
ROOT = Path(__file__).resolve().parents[2]


class OwnServers:
    """An embedded valkey and PostgreSQL of this run alone: restarted and flushed at will."""

    def __init__(self, root: Path) -> None:
        self.redis = EmbeddedRedis(root / "redis")
        self.postgres = EmbeddedPostgres(root / "postgres")
        self.redis_url = ""
        self.postgres_url = ""

    def start(self) -> None:
        self.redis_url, _ = self.redis.ensure_running()
        self.postgres_url, _ = self.postgres.ensure_running()

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()

    def restart_postgres(self, down_s: float) -> None:
        self.postgres.stop()
        time.sleep(down_s)
        url, _ = self.postgres.ensure_running()
        assert url == self.postgres_url, (url, self.postgres_url)

    def restart_redis(self, down_s: float) -> None:
        """SHUTDOWN (the AOF is written) and start again on the same port: data kept."""
        self.redis.stop()
        time.sleep(down_s)
        url, _ = self.redis.ensure_running()
        assert url == self.redis_url, (url, self.redis_url)

    def flush_redis(self) -> None:
        """Redis loses its data. Only ever our own embedded server (its URL came from it)."""
        assert self.redis.url() == self.redis_url
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushall()
        finally:
            client.close()


def kill_all(pids: Iterable[int], sig: int = signal.SIGKILL, wait_s: float = 10.0) -> int:
    """Signal every pid that still runs; with SIGKILL, wait until they are gone."""
    procs = []
    for pid in set(pids):
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            proc = psutil.Process(pid)
            proc.send_signal(sig)
            procs.append(proc)
    if sig == signal.SIGKILL and procs:
        psutil.wait_procs(procs, timeout=wait_s)
    return len(procs)


class ServeProcess:
    """``dispatcher serve`` in a child process with a Ray of its own (its own temp dir)."""

    def __init__(
        self,
        root: Path,
        label: str,
        port: int,
        database_url: str,
        redis_url: str,
        graph_url: str,
        ray_address: str | None = None,
        *,
        verbose: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.label = label
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # Short: Ray's Unix sockets live under it, and their paths may not pass 107 bytes.
        self.ray_tmp = root / f"r-{uuid.uuid4().hex[:6]}"
        self.log_path = root / f"serve-{label}.log"
        self._ray_address = ray_address
        self._verbose = verbose
        self._env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RAY_", "DISPATCHER_"))
        }
        self._env.update(
            {
                "RAY_TMPDIR": str(self.ray_tmp),
                "DISPATCHER_DATABASE_URL": database_url,
                "DISPATCHER_REDIS_URL": redis_url,
                "DISPATCHER_DATA_DIR": str(root / "data"),
                "DISPATCHER_API_TOKEN": API_TOKEN,
                "WHATSAPP_APP_SECRET": APP_SECRET,
                "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
                "META_GRAPH_URL": graph_url,
                # A 2-core machine shared with other test runs starves Ray for seconds at a
                # time: without slack its GCS declares the only node dead, and the dashboard
                # (which serve starts, and nothing here needs) holds the start for a minute.
                # Real process deaths are still seen at once (a closed connection).
                "RAY_health_check_timeout_ms": "20000",
                "RAY_health_check_failure_threshold": "10",
                "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "15",
                **(env or {}),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._known: dict[int, float] = {}
        """pid -> create time of every process seen in our tree: a pid the system reused
        for someone else's process has another create time and is never signalled."""

    def start(self) -> None:
        self.ray_tmp.mkdir(parents=True, exist_ok=True)
        verbose = ["-v"] if self._verbose else []
        command = [
            sys.executable,
            "-m",
            "dispatcher.cli",
            *verbose,
            "serve",
            "--port",
            str(self.port),
        ]
        if self._ray_address:
            command += ["--ray-address", self._ray_address]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"serve {self.label} exited at start; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=3).status_code == 200:
                    self.processes()  # remember the tree while it is whole
                    return
            time.sleep(0.5)
        raise TimeoutError(f"serve {self.label} not ready in {timeout_s}s; see {self.log_path}")

    def processes(self) -> set[int]:
        """Our serve, its descendants, and every process of our own Ray temp dir."""
        found: set[int] = set()
        if self.process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(self.process.pid)
                found.add(root.pid)
                found.update(child.pid for child in root.children(recursive=True))
        marker = str(self.ray_tmp)
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if any(marker in part for part in cmdline):
                found.add(proc.info["pid"])
        for pid in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                self._known.setdefault(pid, psutil.Process(pid).create_time())
        return found

    def owns(self, pid: int) -> bool:
        return pid in self.processes()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ctrl-C, as an operator stops it (logs flushed, Ray shut down); whatever of our
        tree is still there after ``timeout_s`` is killed."""
        if self.process is not None and self.process.poll() is None:
            self.processes()
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout_s)
        self.kill()

    def kill(self) -> int:
        """SIGKILL the serve and all of its Ray at once, as a power cut would."""
        pids = self.processes() | {p for p, t in self._known.items() if _same(p, t)}
        killed = kill_all(pids)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        # Ray workers started after our snapshot (a restart in progress) die with their raylet;
        # sweep once more for anything left in our temp dir.
        kill_all(self.processes())
        return killed


def _same(pid: int, created: float) -> bool:
    """The process we saw still runs under this pid (not a new one that reused it)."""
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
