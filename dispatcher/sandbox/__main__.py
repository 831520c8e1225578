"""``python -m dispatcher.sandbox``: the Meta sandbox (also ``dispatcher sandbox``)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from pydantic import ValidationError

from dispatcher.sandbox.config import SandboxConfig, demo_config
from dispatcher.sandbox.server import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--config", type=Path, help="SandboxConfig as JSON (default: demo numbers)")
    parser.add_argument("--webhook-url", help="where to POST status callbacks")


def load_config(path: Path | None, webhook_url: str | None) -> SandboxConfig:
    if path is None:
        config = demo_config()
    else:
        try:
            config = SandboxConfig.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SystemExit(f"error: {path}: {where}: {first['msg']}") from None
    if webhook_url:
        config.webhook.url = webhook_url
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dispatcher sandbox", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve(load_config(args.config, args.webhook_url), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
