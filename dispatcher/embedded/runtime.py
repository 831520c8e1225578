"""What both embedded servers need from the host: private directories, a lock, process liveness.

Private means readable by the server's owner alone: directories ``0700``, secrets ``0600``.
Nothing here changes the mode of a directory it did not create, except the server directories
themselves; the directories above them are left as they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The top data directory of root: its owner alone may list it, the server user may pass through.
ROOT_DATA_DIR_MODE = 0o711


def data_dir(path: Path) -> Path:
    """Create the data directory if missing (0700; 0711 for root, whose Postgres runs as another
    user that must pass through it). An existing one keeps its mode: it is the user's."""
    mode = ROOT_DATA_DIR_MODE if os.geteuid() == 0 else PRIVATE_DIR_MODE
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=mode)
        path.chmod(mode)  # mkdir's mode is masked by the umask
    return path


def private_dir(path: Path, owner: tuple[int, int] | None = None) -> Path:
    """``path`` as a directory of ``owner`` (default: this process) with mode 0700."""
    path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner)
    path.chmod(PRIVATE_DIR_MODE)
    return path


def secret_file(path: Path) -> str:
    """The secret stored in ``path`` (mode 0600), generated on first use."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        path.chmod(PRIVATE_FILE_MODE)
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner alone, from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def can_reach(path: Path, owner: tuple[int, int]) -> bool:
    """Whether ``owner`` may execute ``path`` (a file) or enter it (a directory): asked of the
    kernel by a child running as that user, so modes, groups and ACLs all count."""
    result = subprocess.run(
        [shutil.which("test") or "/usr/bin/test", "-x", str(path)],
        user=owner[0],
        group=owner[1],
        extra_groups=[],
        cwd="/",
        check=False,
    )
    return result.returncode == 0


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise starters across processes: two may race to start the same server."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)
