"""``dispatcher secrets``: the keyring that seals tokens at rest, and its rotation.

Rotation in two steps, so a running deployment never meets a secret it cannot open:

1. ``rotate-key``: a new primary key joins the keyring (``[new, old]``) and every secret is
   re-sealed under both keys, in one transaction. Processes still holding only the old key
   read the old key's envelope; processes started from now on seal under both keys.
2. ``retire-keys``, once every process runs with the new keyring (restarted): every secret is
   re-sealed under the primary key alone and the old keys leave the keyring; what was sealed
   under them alone no longer opens.

With the key file (``DISPATCHER_SECRET_KEY`` unset) the commands rewrite it themselves; with
``DISPATCHER_SECRET_KEY`` they say what to set it to.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from dispatcher import keyfile
from dispatcher.config import Settings, load_settings
from dispatcher.crypto import SETTING, Keyring, decode_key, encode_key, generate_key, key_id
from dispatcher.errors import ConfigError
from dispatcher.services import Services
from dispatcher.store import Store
from dispatcher.store.sealing import key_use, reseal_all

console = Console(highlight=False)
T = TypeVar("T")


def add_parser(commands: Any) -> None:
    """The ``secrets`` command and its actions, on the CLI's subparsers."""
    parser = commands.add_parser("secrets", help="the key that seals access tokens at rest")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("status", help="the keyring's key ids and what each seals").set_defaults(
        run=_status
    )
    actions.add_parser(
        "generate-key", help=f"print a new key, for {SETTING} (urlsafe base64 of 32 bytes)"
    ).set_defaults(run=_generate)
    rotate = actions.add_parser(
        "rotate-key", help="add a new primary key and re-seal every secret under new and old"
    )
    rotate.add_argument(
        "--new-key-file",
        type=Path,
        help="read the new key from this file ('-': stdin); default: generate one "
        f"(required when {SETTING} is set)",
    )
    rotate.set_defaults(run=_rotate)
    actions.add_parser(
        "retire-keys",
        help="re-seal every secret under the primary key alone and drop the others "
        "(after every process restarted with the new keyring)",
    ).set_defaults(run=_retire)


def _generate(_: argparse.Namespace) -> int:
    console.print(encode_key(generate_key()))
    return 0


def _status(_: argparse.Namespace) -> int:
    settings = load_settings()
    source = keyfile.load_keys(settings, create=False)
    use = asyncio.run(_with_store(settings, source.keyring, _key_use))
    console.print(f"keyring from {source.name}: {', '.join(source.keyring.ids)} (primary first)")
    for kid, count in sorted(use.items()):
        known = "" if kid in source.keyring.ids or kid == "plain" else "  (not in the keyring)"
        console.print(f"  {kid}: {count} secrets{known}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    settings = load_settings()
    source = keyfile.load_keys(settings, create=False)
    if args.new_key_file is None and source.path is None:
        raise ConfigError(
            SETTING,
            "is set, so the new key must be given: --new-key-file "
            "(make one with `dispatcher secrets generate-key`)",
        )
    new_key = generate_key() if args.new_key_file is None else _read_key(args.new_key_file)
    if key_id(new_key) in source.keyring.ids:
        raise ConfigError("--new-key-file", "that key is already in the keyring")
    rotated = source.keyring.with_primary(new_key)
    if source.path is not None:
        # Written first: should the re-sealing fail, the file still opens every secret.
        keyfile.replace(source.path, rotated)
    count = asyncio.run(_with_store(settings, source.keyring, _reseal(rotated, rotated)))
    console.print(
        f"key {rotated.ids[0]} is now primary; {count} secrets sealed under "
        f"{', '.join(rotated.ids)}"
    )
    if source.path is None:
        console.print(
            f"set {SETTING} on every process to the new key, a comma, then the current "
            f"value (ids {', '.join(rotated.ids)}), and restart them"
        )
    else:
        console.print(f"keyring written to {source.path}; restart every process")
    console.print("then run: dispatcher secrets retire-keys")
    return 0


def _retire(_: argparse.Namespace) -> int:
    settings = load_settings()
    source = keyfile.load_keys(settings, create=False)
    kept = source.keyring.primary_only()
    count = asyncio.run(_with_store(settings, source.keyring, _reseal(source.keyring, kept)))
    if source.path is not None:
        keyfile.replace(source.path, kept)
    retired = [kid for kid in source.keyring.ids if kid != kept.ids[0]]
    console.print(
        f"{count} secrets sealed under {kept.ids[0]} alone; retired: {', '.join(retired) or '-'}"
    )
    if source.path is None and retired:
        console.print(f"set {SETTING} to its first key alone (id {kept.ids[0]})")
    return 0


def _reseal(opener: Keyring, sealer: Keyring) -> Callable[[Store], Awaitable[int]]:
    async def run(store: Store) -> int:
        return await reseal_all(store.pool, opener, sealer)

    return run


async def _key_use(store: Store) -> dict[str, int]:
    return await key_use(store.pool)


def _read_key(path: Path) -> bytes:
    where = "--new-key-file"
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, f"cannot read {path}: {exc}") from None
    return decode_key(text, where=where)


async def _with_store(
    settings: Settings, keyring: Keyring, work: Callable[[Store], Awaitable[T]]
) -> T:
    """Run ``work(store)`` on the deployment's database (embedded: started if need be).

    Opening the store checks that ``keyring`` opens the stored secrets (one line if not)."""
    services = Services(settings)
    url = settings.database_url
    started = False
    if not url:
        url, started = services.postgres.ensure_running()
    try:
        store = await Store.open(url, keyring=keyring, max_size=2)
        try:
            return await work(store)
        finally:
            await store.close()
    finally:
        if started:
            services.postgres.stop()
