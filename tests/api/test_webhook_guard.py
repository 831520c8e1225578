"""What the webhook refuses before reading a byte of the body, and readiness without the
webhook's secrets: a dispatcher that would refuse every status is not ready."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.server import ApiServer
from dispatcher.sandbox.server import free_port
from tests.api.conftest import PREFIX
from tests.stack import Stack

DECLARED_BYTES = 3 * 2**20
"""Under the 4 MiB limit: a size the webhook would otherwise wait to read in full."""
ANSWER_WITHIN_S = 20.0
"""Generous (a busy machine); the old webhook never answered before the body came."""


def refused_before_body(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST the webhook's headers with a large Content-Length and send no body at all: only
    a server that answers without reading it can reply. Returns (status, JSON body)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [
        f"POST {PREFIX}/webhook HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {DECLARED_BYTES}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection((host, int(port)), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = sock.recv(65536)  # socket.timeout here: the server waited for the body
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


@contextmanager
def serving(stack: Stack, **unset: bool) -> Iterator[str]:
    """The API of the session's deployment, with the named secrets not configured."""
    settings = stack.settings.model_copy(update={name: SecretStr("") for name in unset})
    api = ApiServer(create_app(settings, stack.deployment, stack.coordinator), free_port())
    api.start()
    try:
        yield api.url
    finally:
        api.stop()


@pytest.mark.parametrize(
    "signature",
    [None, "md5=0123", "0123abcd"],
    ids=["missing", "other-scheme", "no-prefix"],
)
def test_unsigned_posts_are_refused_before_the_body_is_read(
    stack: Stack, signature: str | None
) -> None:
    headers = {} if signature is None else {"X-Hub-Signature-256": signature}
    status, body = refused_before_body(stack.api.url, headers)
    assert status == 401
    assert body["error"]["code"] == "bad_signature"


def test_without_an_app_secret_every_post_is_refused_before_the_body(stack: Stack) -> None:
    with serving(stack, app_secret=True) as url:
        status, body = refused_before_body(url, {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert status == 401
    assert body["error"]["code"] == "webhook_not_configured"
    assert "WHATSAPP_APP_SECRET" in body["error"]["message"]


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        ({"app_secret": True}, ["WHATSAPP_APP_SECRET"]),
        ({"verify_token": True}, ["WHATSAPP_VERIFY_TOKEN"]),
        (
            {"app_secret": True, "verify_token": True},
            ["WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"],
        ),
    ],
)
def test_readyz_is_not_ready_without_the_webhook_secrets(
    stack: Stack, unset: dict[str, bool], named: list[str]
) -> None:
    with serving(stack, **unset) as url:
        response = httpx.get(f"{url}/readyz", timeout=30)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    checks = error["details"]
    assert (checks["postgres"], checks["redis"], checks["ray"]) == ("ok", "ok", "ok")
    assert checks["webhook"] == f"error: {', '.join(named)} not configured"
    assert all(name in error["message"] for name in named)
