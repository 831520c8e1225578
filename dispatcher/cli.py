"""The ``dispatcher`` command. The CLI alone prints; errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from dispatcher.config import load_settings
from dispatcher.errors import DispatcherError
from dispatcher.services import Services

console = Console()
err_console = Console(stderr=True)


def _services(args: argparse.Namespace) -> int:
    settings = load_settings()
    services = Services(settings)
    if args.action == "up":
        urls = services.start()
        console.print(f"redis:    {urls.redis_url}")
        console.print(f"postgres: {urls.database_url}")
        console.print(f"[dim]data under {settings.data_dir}; stop with: dispatcher services down")
    elif args.action == "down":
        services.redis.stop()
        services.postgres.stop()
        console.print("embedded services stopped")
    else:
        redis_url = settings.redis_url or services.redis.url()
        database_url = settings.database_url or services.postgres.url()
        console.print(f"redis:    {redis_url or 'not running'}")
        console.print(f"postgres: {database_url or 'not running'}")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from dispatcher.sandbox.__main__ import load_config
    from dispatcher.sandbox.server import serve

    config = load_config(args.config, args.webhook_url)
    numbers = ", ".join(
        f"{n.phone_number_id} ({n.throughput_mps} msg/s, {n.business_id})" for n in config.numbers
    )
    console.print(f"Meta sandbox on http://{args.host}:{args.port}  numbers: {numbers}")
    serve(config, args.host, args.port)
    return 0


def _not_built(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        console.print(f"dispatcher {name}: not built yet (see the open issues)")
        return 0

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispatcher", description="WhatsApp campaign dispatcher on Ray"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    services = commands.add_parser(
        "services", help="start, stop or show the embedded Redis and Postgres"
    )
    services.add_argument("action", choices=["up", "down", "status"])
    services.set_defaults(run=_services)

    sandbox = commands.add_parser("sandbox", help="run the Meta Cloud API sandbox")
    from dispatcher.sandbox.__main__ import add_arguments

    add_arguments(sandbox)
    sandbox.set_defaults(run=_sandbox)

    demo = commands.add_parser("demo", help="run the demo campaign on embedded defaults")
    demo.set_defaults(run=_not_built("demo"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.run(args)
    except DispatcherError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
