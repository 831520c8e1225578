"""The ``dispatcher`` command. The CLI alone prints; errors are one line, never a traceback.

Exit codes: 0 ok; 1 the API or a service (Redis, Postgres, Ray) refused or failed; 2 usage
(a bad option, a missing setting or file); 3 ``campaign watch``: the campaign ended failed or
cancelled; 130 interrupted. The operator's commands are in ``dispatcher/cli_ops.py``,
``dispatcher/cli_campaign.py`` and ``dispatcher/cli_suppressions.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dispatcher.api_client import api_get, default_api_url
from dispatcher.cli_campaign import add_parser as add_campaign
from dispatcher.cli_campaign import campaign_shorthand
from dispatcher.cli_ops import add_parsers as add_instances
from dispatcher.cli_ops import num, print_json
from dispatcher.cli_suppressions import add_parser as add_suppressions
from dispatcher.config import load_settings, require
from dispatcher.errors import ConfigError, DispatcherError, ServiceError
from dispatcher.services import Services
from dispatcher.tls import ServerTls, is_loopback
from dispatcher.urls import redact

console = Console()
err_console = Console(stderr=True)


def _services(args: argparse.Namespace) -> int:
    settings = load_settings()
    services = Services(settings)
    if args.action == "up":
        urls = services.start()
        console.print(f"redis:    {redact(urls.redis_url)}")
        console.print(f"postgres: {redact(urls.database_url)}")
        console.print(f"[dim]data under {settings.data_dir}; stop with: dispatcher services down")
    elif args.action == "down":
        services.redis.stop()
        services.postgres.stop()
        console.print("embedded services stopped")
    else:
        redis_url = settings.redis_url or services.redis.url()
        database_url = settings.database_url or services.postgres.url()
        console.print(f"redis:    {redact(redis_url) if redis_url else 'not running'}")
        console.print(f"postgres: {redact(database_url) if database_url else 'not running'}")
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


def _serve(args: argparse.Namespace) -> int:
    """The API and the coordinator: on a local Ray (started here) or the given cluster."""
    import ray
    import uvicorn

    from actors.coordinator import coordinator_handle
    from api.app import create_app
    from dispatcher.deployment import NAMESPACE, Deployment
    from dispatcher.keyfile import load_keyring

    settings = load_settings()
    require(settings, "api_token")
    tls = ServerTls.from_files(
        args.ssl_certfile or settings.tls_certfile, args.ssl_keyfile or settings.tls_keyfile
    )
    if tls is None and not is_loopback(args.host):
        err_console.print(
            f"[yellow]warning:[/yellow] plain HTTP on {args.host}: the API token travels in "
            "clear (set --ssl-certfile/--ssl-keyfile, or serve behind a TLS reverse proxy)"
        )
    # A bad DISPATCHER_SECRET_KEY: one line, before anything starts.
    keyring = load_keyring(settings)
    for name in ("app_secret", "verify_token"):
        try:
            require(settings, name)
        except DispatcherError as exc:
            err_console.print(
                f"[yellow]warning:[/yellow] {exc}: Meta's webhooks are refused "
                "and /readyz answers 503"
            )
    address = args.ray_address or settings.ray_address or None
    services = Services(settings)
    started_ray = False
    coordinator: Any = None
    try:
        deployment = Deployment.from_settings(settings, services.start(), keyring=keyring)
        if args.verbose:  # the actors log at debug level too (their Ray log files)
            deployment = replace(deployment, log_level="DEBUG")
        if not ray.is_initialized():
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
            started_ray = address is None
        coordinator = coordinator_handle(deployment)
        ready = ray.get(coordinator.ping.remote())
        if not ready["ready"]:
            raise ServiceError("coordinator", str(ready["error"]))
        app = create_app(settings, deployment, coordinator)
        where = f"Ray at {address}" if address else "a local Ray"
        scheme = "https" if tls else "http"
        console.print(
            f"API on {scheme}://{args.host}:{args.port}/api/whatsapp ({where}); Ctrl-C stops it"
        )
        # uvicorn handles Ctrl-C itself: it stops accepting, finishes requests, and returns.
        # uvicorn's access log carries query strings (Meta's verify token): api.access_log
        # writes one without them, at debug level (-v).
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="info" if args.verbose else "warning",
            ssl_certfile=tls.certfile if tls else None,
            ssl_keyfile=tls.keyfile if tls else None,
            access_log=False,
        )
    finally:
        if started_ray:
            # A local deployment ends with this process; a cluster's coordinator keeps running.
            if coordinator is not None:
                ray.get(coordinator.shutdown.remote(), timeout=60)
            ray.shutdown()
        services.stop()
    console.print("stopped")
    return 0


def _stats(args: argparse.Namespace) -> int:
    """Queue and instance stats, from the API (bearer token) or straight from the coordinator."""
    if args.ray_address:
        stats = _stats_from_ray(args.ray_address, args.instance)
    else:
        stats = _stats_from_api(args.api_url, args.instance, args.ca_file)
    if args.json:
        print_json(stats)
    else:
        _print_stats(stats)
    return 0


def _stats_from_api(url: str, instance: str | None, ca_file: Path | None) -> dict[str, Any]:
    return api_get(url, "/queue/stats", {"instanceId": instance} if instance else {}, ca_file)


def _stats_from_ray(address: str, instance: str | None) -> dict[str, Any]:
    import ray

    from dispatcher.deployment import COORDINATOR_NAME, NAMESPACE
    from dispatcher.operations import queue_stats_view

    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        coordinator: Any = ray.get_actor(COORDINATOR_NAME, namespace=NAMESPACE)
    except (ConnectionError, ValueError) as exc:
        raise ServiceError("ray", f"{address}: {exc}") from None
    try:
        raw: dict[str, Any] = ray.get(coordinator.stats.remote(instance), timeout=15)
    finally:
        ray.shutdown()
    return queue_stats_view(raw, instance)


def _print_stats(stats: Mapping[str, Any]) -> None:
    queues = Table(title="Queues")
    for column in ("queue", "pending", "processing", "dlq"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for name in ("campaigns", "webhooks"):
        q = stats.get(name) or {}
        queues.add_row(name, *(f"{q.get(k, 0):,}" for k in ("pending", "processing", "dlq")))
        for instance, s in (q.get("instances") or {}).items():
            queues.add_row(
                f"  {instance}", *(f"{s.get(k, 0):,}" for k in ("pending", "processing", "dlq"))
            )
    console.print(queues)

    instances = Table(title="Instances")
    columns = (
        "number",
        "state",
        "rate/s (now/max)",
        "breaker",
        "sent",
        "failed",
        "retried",
        "backlog",
    )
    for column in columns:
        instances.add_column(column)
    for key, s in sorted((stats.get("instances") or {}).items()):
        breaker = s.get("breaker") or {}
        instances.add_row(
            str(s.get("phone_number_id") or key),
            str(s.get("state", "?")) + (f" ({s['error']})" if s.get("error") else ""),
            f"{num(s.get('current_rate_mps'))}/{num(s.get('configured_rate_mps'))}",
            str(breaker.get("state", "-")),
            *(num(s.get(k)) for k in ("sent", "failed", "retried", "backlog")),
        )
    console.print(instances)

    portfolios = Table(title="Portfolios (moving 24 h messaging limit)")
    for column in ("business", "used", "limit", "source", "blocked for"):
        portfolios.add_column(column)
    for business, p in sorted((stats.get("portfolios") or {}).items()):
        limit = p.get("daily_limit")
        source = str(p.get("limit_source") or "not read yet")
        if p.get("limit_error"):
            source = f"[red]{escape(source)}: {escape(str(p['limit_error']))}[/red]"
        portfolios.add_row(
            business,
            num(p.get("daily_unique_used")),
            "unlimited" if limit is None else f"{limit:,}",
            source,
            f"{p.get('blocked_for_s', 0)}s",
        )
    console.print(portfolios)


def _demo(args: argparse.Namespace) -> int:
    if not args.verbose:
        # Ray's driver logs (its start, its auth notice) are library lines too; read once,
        # when ray is first imported (below).
        os.environ.setdefault("RAY_LOGGER_LEVEL", "error")
    from dispatcher.demo import run_demo

    # Wide enough for the summary tables when the output is a file or a pipe.
    wide = Console(width=None if sys.stdout.isatty() else 120)
    return run_demo(load_settings(), args.recipients, args.numbers, wide, keep=args.keep)


def _positive(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _ca_file_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--ca-file",
        type=Path,
        help="trust the API's certificate through this CA bundle (default: DISPATCHER_CA_FILE)",
    )


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

    serve = commands.add_parser(
        "serve", help="run the REST API and the coordinator (local Ray, or --ray-address)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--ssl-certfile",
        type=Path,
        help="serve HTTPS with this certificate chain (default: DISPATCHER_TLS_CERTFILE)",
    )
    serve.add_argument(
        "--ssl-keyfile",
        type=Path,
        help="the certificate's private key (default: DISPATCHER_TLS_KEYFILE)",
    )
    serve.add_argument(
        "--ray-address", default=None, help="join this Ray cluster (default: start a local one)"
    )
    serve.set_defaults(run=_serve)

    stats = commands.add_parser("stats", help="show queue, instance and portfolio stats")
    source = stats.add_mutually_exclusive_group()
    source.add_argument(
        "--api-url",
        default=default_api_url(),
        help="read them from this API (default: DISPATCHER_API_URL, else http://127.0.0.1:8080; "
        "bearer token: DISPATCHER_API_TOKEN)",
    )
    source.add_argument("--ray-address", help="read them from the coordinator on this cluster")
    stats.add_argument("--instance", help="only this instance id")
    stats.add_argument("--json", action="store_true", help="machine output: one JSON document")
    _ca_file_argument(stats)
    stats.set_defaults(run=_stats)

    add_instances(commands)
    add_campaign(commands)
    add_suppressions(commands)

    demo = commands.add_parser("demo", help="run the demo campaign on embedded defaults")
    demo.add_argument(
        "--recipients", type=_positive, default=10_000, help="campaign size (default 10,000)"
    )
    demo.add_argument(
        "--numbers", type=_positive, default=3, help="WhatsApp numbers to send from (1-5)"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep everything running after the campaign (the console, the API) until Ctrl-C",
    )
    # The demo's own output is the show: library log lines (HTTP requests, pools, embedded
    # services) only with -v.
    demo.set_defaults(run=_demo, log_level=logging.WARNING)

    from dispatcher.secrets_cli import add_parser as add_secrets

    add_secrets(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(
        campaign_shorthand(list(sys.argv[1:] if argv is None else argv))
    )
    level = logging.DEBUG if args.verbose else getattr(args, "log_level", logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 2
    except DispatcherError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1
    except Exception as exc:
        # Ray's own errors (a coordinator that died, a timeout) are not ours, yet a user
        # deserves one line, not a traceback; -v shows the rest in the log.
        if type(exc).__module__.startswith("ray"):
            logging.getLogger(__name__).debug("ray error", exc_info=True)
            err_console.print(f"[red]error:[/red] ray: {type(exc).__name__}", highlight=False)
            return 1
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
