"""Where the keyring comes from: ``DISPATCHER_SECRET_KEY``, or a key file under the data dir.

With ``DISPATCHER_SECRET_KEY`` unset, the keyring lives in ``<data_dir>/secret.key`` (one
urlsafe-base64 key a line, primary first, mode 0600), made on first start. It is created
whole or not at all: written to a private temporary file, then linked into place, which fails
if another starter got there first (that starter's key is then the one read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dispatcher.crypto import SETTING, Keyring
from dispatcher.errors import ConfigError

if TYPE_CHECKING:  # annotations only: actors import this module and need no pydantic-settings
    from dispatcher.config import Settings

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"


@dataclass(frozen=True, slots=True)
class KeySource:
    """The keyring and where it was read: the environment, or ``path``."""

    keyring: Keyring
    path: Path | None = None
    """The key file, when the keyring came from one (None: ``DISPATCHER_SECRET_KEY``)."""

    @property
    def name(self) -> str:
        return SETTING if self.path is None else str(self.path)


def key_file(settings: Settings) -> Path:
    return settings.data_dir.expanduser().resolve() / KEY_FILE


def load_keys(settings: Settings, *, create: bool = True) -> KeySource:
    """The configured keyring; a bad one is a one-line :class:`ConfigError`.

    ``create``: make the key file when there is neither a setting nor a file (a process that
    starts a deployment); a process that joins one passes False and is told what to set.
    """
    configured = settings.secret_key.get_secret_value()
    if configured.strip():
        return KeySource(Keyring.parse(configured))
    path = key_file(settings)
    if not path.exists():
        if not create:
            raise ConfigError(SETTING, f"not configured and no key file at {path}")
        _create(path, Keyring.generate())
    return KeySource(_read(path), path)


def load_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    return load_keys(settings, create=create).keyring


def _read(path: Path) -> Keyring:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(SETTING, f"cannot read key file {path}: {exc}") from None
    if mode & 0o077:
        raise ConfigError(
            SETTING, f"key file {path} is open to others (mode {mode:04o}): chmod 600 {path}"
        )
    return Keyring.parse(text, where=str(path))


def _private_temp(path: Path, keyring: Keyring) -> Path:
    """The keyring in a new file beside ``path``, mode 0600, on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp opens with O_CREAT | O_EXCL and mode 0600 whatever the umask.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, keyring.encode().encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def _create(path: Path, keyring: Keyring) -> None:
    """Put a new key file in place unless one appeared meanwhile (then keep that one)."""
    temp = _private_temp(path, keyring)
    try:
        os.link(temp, path)  # atomic, and fails if the name exists: first starter wins
        log.info("new secret key %s written to %s", keyring.ids[0], path)
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(path.parent)


def replace(path: Path, keyring: Keyring) -> None:
    """Swap the key file's keyring for ``keyring`` atomically (readers see old or new)."""
    temp = _private_temp(path, keyring)
    os.replace(temp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
