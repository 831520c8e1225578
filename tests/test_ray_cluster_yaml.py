"""ray-cluster.yaml: a launcher config Ray accepts, that installs the project, starts the API
over HTTPS, and runs every node with Ray's token authentication and a dashboard on localhost
only, with no secret written in it."""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).resolve().parents[1] / "ray-cluster.yaml"
TOKEN_FILE = "~/.ray/auth_token"


def load() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return config


def start_commands(config: dict[str, Any]) -> list[str]:
    """The commands that start a Ray node or the API (each one shell line)."""
    commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    return [c for c in commands if "ray start" in c or "dispatcher serve" in c]


def exports(command: str) -> tuple[str, dict[str, str]]:
    """The ``export A=B ...`` step of a command (as written) and what it sets."""
    for step in command.split("&&"):
        words = shlex.split(step)
        if words and words[0] == "export":
            return step.strip(), dict(word.split("=", 1) for word in words[1:])
    return "", {}


def test_the_cluster_config_installs_the_project_on_every_node_and_starts_ray() -> None:
    config = load()
    assert config["cluster_name"]
    assert config["provider"]["type"] == "local"
    assert len(config["provider"]["worker_ips"]) == config["max_workers"]
    assert "." in config["file_mounts"].values()
    assert any(
        "pip install" in c and "-e /opt/whatsapp-dispatcher" in c for c in config["setup_commands"]
    )
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("dispatcher serve" in c for c in config["head_start_ray_commands"])
    assert any("ray start --address" in c for c in config["worker_start_ray_commands"])


def test_ray_accepts_the_config_as_ray_up_prepares_it() -> None:
    prepared = prepare_config(load())
    validate_config(prepared)
    # The validator is live: the same config with a field Ray does not know is refused.
    wrong = copy.deepcopy(prepared)
    wrong["dashboard_host"] = "127.0.0.1"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(wrong)


def test_every_node_and_the_api_run_with_ray_token_auth_from_the_mounted_file() -> None:
    config = load()
    commands = start_commands(config)
    assert len(commands) == 3  # head, the API on the head, workers
    assert config["file_mounts"][TOKEN_FILE] == TOKEN_FILE
    assert any(f"chmod 600 {TOKEN_FILE}" in c for c in config["setup_commands"])
    for command in commands:
        step, env = exports(command)
        assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "$HOME/.ray/auth_token"}
        assert command.index(step) < command.index("/opt/whatsapp-dispatcher/.venv/bin/")


def test_the_yaml_export_turns_on_ray_token_mode_and_reads_the_token_file(
    tmp_path: Path,
) -> None:
    """Ray itself, given the YAML's own export step, is in token mode and finds the token."""
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("a-test-token\n")
    step, _ = exports(start_commands(load())[0])
    probe = (
        "from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, "
        "get_authentication_mode as mode; "
        "print(mode() == AuthenticationMode.TOKEN, "
        "AuthenticationTokenLoader.instance().get_raw_token() == 'a-test-token')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    result = subprocess.run(
        [
            "/bin/bash",
            "-c",
            f"{step} && exec {shlex.quote(sys.executable)} -c {shlex.quote(probe)}",
        ],
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_the_dashboard_listens_on_localhost_and_nothing_on_every_interface() -> None:
    text = CONFIG.read_text()
    assert "0.0.0.0" not in text
    assert "::" not in re.sub(r"#.*", "", text)
    (head,) = [c for c in load()["head_start_ray_commands"] if "ray start --head" in c]
    assert "--dashboard-host=127.0.0.1" in head.split()


def test_the_api_is_served_over_tls_on_the_configured_address() -> None:
    (serve,) = [c for c in load()["head_start_ray_commands"] if "dispatcher serve" in c]
    words = shlex.split(serve.split("nohup", 1)[1])
    assert words[words.index("--ssl-certfile") + 1].startswith("/etc/whatsapp-dispatcher/tls/")
    assert words[words.index("--ssl-keyfile") + 1].startswith("/etc/whatsapp-dispatcher/tls/")
    assert words[words.index("--host") + 1] == "$DISPATCHER_API_HOST"
    assert "${DISPATCHER_API_HOST:?" in serve  # unset: the start fails, it never binds ""


SECRET_ASSIGNMENT = re.compile(
    r"(?P<name>[\w~./$-]*(token|secret|password|passwd|key)[\w~./$-]*)\s*[=:]\s*(?P<value>\S+)",
    re.IGNORECASE,
)
PATH_PREFIXES = ("/", "~/", "$HOME/")


def inline_secrets(text: str) -> set[str]:
    """Everything named like a secret that is given a value other than a file's path."""
    code = "\n".join(re.sub(r"#.*", "", line) for line in text.splitlines())
    return {
        m.group(0)
        for m in SECRET_ASSIGNMENT.finditer(code)
        if not m.group("value").startswith(PATH_PREFIXES)
    }


def test_no_secret_is_written_in_the_config() -> None:
    """Secrets come from files on the nodes (the env file, the token file), never inline."""
    text = CONFIG.read_text()
    assert inline_secrets(text) == set()
    assert "RAY_AUTH_TOKEN=" not in text
    assert not re.search(r"\w+://[^/\s:@]+:[^/\s@]+@", text)  # no password in a URL
    for command in start_commands(load()):
        assert command.startswith("set -a && . /etc/whatsapp-dispatcher.env && set +a &&")
    # The detector is live: an inlined secret would be caught, a path would not.
    assert inline_secrets("export RAY_AUTH_TOKEN=abc DISPATCHER_API_TOKEN=x") == {
        "RAY_AUTH_TOKEN=abc",
        "DISPATCHER_API_TOKEN=x",
    }
    assert inline_secrets("WHATSAPP_APP_SECRET: s3cret") == {"WHATSAPP_APP_SECRET: s3cret"}
    assert inline_secrets("export RAY_AUTH_TOKEN_PATH=$HOME/.ray/auth_token") == set()
