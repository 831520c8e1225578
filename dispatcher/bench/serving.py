"""``dispatcher serve`` in a child process for a benchmark: embedded services under a
temporary directory, a local Ray, the API on a free port; stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx
import psutil

API_TOKEN = "bench-api-token"  # noqa: S105 - a throwaway token of the bench's own server
APP_SECRET = "bench-app-secret"  # noqa: S105 - a throwaway secret of the bench's own server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """The API of a fresh deployment at ``url``; ``extra_env`` e.g. the sandbox's Graph URL."""

    def __init__(self, data: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {API_TOKEN}"}
        self._extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DISPATCHER_"))}
        env.update(
            {
                "DISPATCHER_DATA_DIR": str(self.data),
                "DISPATCHER_API_TOKEN": API_TOKEN,
                "WHATSAPP_APP_SECRET": APP_SECRET,
                "WHATSAPP_VERIFY_TOKEN": "bench-verify-token",
                "RAY_TMPDIR": str(self.data / "ray"),
                **self._extra_env,
            }
        )
        (self.data / "ray").mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "dispatcher.cli", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.data / "serve.log").open("wb"),
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dispatcher serve exited; see {self.data / 'serve.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.process.kill()
        raise RuntimeError("dispatcher serve did not answer in 180 s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.pid

    def actor_pids(self, actor: str) -> list[int]:
        """Processes of this deployment's Ray actors named ``actor``."""
        pids = []
        for child in psutil.Process(self.pid()).children(recursive=True):
            try:
                if child.name() == f"ray::{actor}" or child.cmdline()[:1] == [f"ray::{actor}"]:
                    pids.append(child.pid)
            except psutil.Error:
                continue
        return pids

    def rss_mb(self, actor: str | None = None) -> float:
        """Resident memory of the serve process (the API), or of its Ray actor processes
        named ``actor`` (e.g. ``Coordinator``, ``InstanceActor``), in MB."""
        if self.process is None:
            raise RuntimeError("not started")
        root = psutil.Process(self.process.pid)
        if actor is None:
            return float(root.memory_info().rss) / 2**20
        total = 0
        for child in root.children(recursive=True):
            try:
                if child.cmdline()[:1] == [f"ray::{actor}"] or child.name() == f"ray::{actor}":
                    total += child.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20
