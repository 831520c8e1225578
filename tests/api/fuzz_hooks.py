"""Schemathesis hooks for fuzzing the live API (``SCHEMATHESIS_HOOKS=tests.api.fuzz_hooks``)."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

FUZZ_NUMBER = "fuzz-number"


@schemathesis.hook("map_body").apply_to(method="POST", path="/api/whatsapp/instances")
def one_number(context: schemathesis.HookContext, body: Any) -> Any:
    # Each registration starts (or restarts) an instance actor, a Ray worker process: a
    # hundred fuzzed numbers would exhaust the machine, so every valid one is the same number.
    if isinstance(body, dict) and isinstance(body.get("phone_number_id"), str):
        return {**body, "phone_number_id": FUZZ_NUMBER}
    return body


@schemathesis.serializer("text/csv", "application/x-ndjson", "application/jsonl")
def as_text(context: schemathesis.SerializationContext, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def _known(name: str) -> str | None:
    return os.environ.get(name) or None


@schemathesis.hook("map_path_parameters")
def real_ids(context: schemathesis.HookContext, path_parameters: dict[str, Any] | None) -> Any:
    if not path_parameters:
        return path_parameters
    # Half the generated ids (by their first hex digit) become a real campaign or instance,
    # so the handlers past the 404 are fuzzed too.
    for name, env in (("campaign_id", "FUZZ_CAMPAIGN_ID"), ("instance_id", "FUZZ_INSTANCE_ID")):
        value, known = path_parameters.get(name), _known(env)
        if known and isinstance(value, str) and value[:1] in "01234567":
            path_parameters = {**path_parameters, name: known}
    return path_parameters


@schemathesis.hook("map_body").apply_to(method="POST", path="/api/whatsapp/campaigns")
def real_instances(context: schemathesis.HookContext, body: Any) -> Any:
    known = _known("FUZZ_INSTANCE_ID")
    if known and isinstance(body, dict) and isinstance(body.get("instance_ids"), list):
        return {**body, "instance_ids": [known]}
    return body
