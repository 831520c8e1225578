"""The embedded Postgres is private to the user it runs as, and opens no directory above it."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from dispatcher.embedded.postgres import SERVER_USER, SHARED_TMP, EmbeddedPostgres, Postmaster
from dispatcher.embedded.runtime import can_reach
from dispatcher.errors import ServiceError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="what root alone does differently")


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "data" / "postgres")
    server.ensure_running()
    yield server
    server.stop()


def _running(server: EmbeddedPostgres) -> Postmaster:
    info = Postmaster.read(server.directory)
    assert info is not None
    return info


async def _query(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_the_cluster_and_its_socket_are_private_to_the_server_user(
    postgres: EmbeddedPostgres,
) -> None:
    info = _running(postgres)
    cluster = postgres.directory.resolve()
    for directory in (cluster, info.socket_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    socket_file = info.socket_dir / f".s.PGSQL.{info.port}"
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o700
    server_uid = psutil.Process(info.pid).uids().effective
    assert cluster.stat().st_uid == server_uid == info.socket_dir.stat().st_uid
    if os.geteuid() == 0:
        assert pwd.getpwuid(server_uid).pw_name == SERVER_USER
        nobody = pwd.getpwnam("nobody")
        assert not can_reach(socket_file, (nobody.pw_uid, nobody.pw_gid))
    assert asyncio.run(_query(str(postgres.url()), "SELECT 40 + 2")) == 42


def test_its_data_survives_a_restart(postgres: EmbeddedPostgres) -> None:
    url = str(postgres.url())
    asyncio.run(_query(url, "CREATE TABLE kept AS SELECT 7 AS n"))
    postgres.stop()
    assert postgres.url() is None
    assert postgres.ensure_running() == (url, True)
    assert asyncio.run(_query(url, "SELECT n FROM kept")) == 7


@as_root
def test_out_of_the_server_users_reach_the_cluster_is_linked_from_tmp(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    # pytest's own temporary root is 0700: the server user cannot enter it, and it stays so.
    assert stat.S_IMODE(tmp_path.parents[1].stat().st_mode) == 0o700
    assert postgres.directory.is_symlink()
    cluster = postgres.directory.resolve()
    assert cluster.parent.parent == SHARED_TMP
    assert stat.S_IMODE(cluster.parent.stat().st_mode) == 0o711
    assert (cluster.parent / "origin").read_text() == str(postgres.directory)


@as_root
def test_a_relocated_cluster_whose_data_directory_is_gone_is_removed(tmp_path: Path) -> None:
    gone = EmbeddedPostgres(tmp_path / "gone" / "postgres")
    gone.ensure_running()
    gone.stop()
    base = gone.directory.resolve().parent
    gone.directory.unlink()
    kept = EmbeddedPostgres(tmp_path / "kept" / "postgres")
    kept.ensure_running()
    try:
        assert not base.exists()
        assert kept.directory.resolve().parent.exists()
    finally:
        kept.stop()


@as_root
def test_a_directory_planted_in_tmp_is_refused(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "data" / "postgres")
    planted = server._relocation_base()
    nobody = pwd.getpwnam("nobody")
    planted.mkdir(mode=0o777)
    try:
        os.chown(planted, nobody.pw_uid, nobody.pw_gid)
        with pytest.raises(ServiceError, match="not ours"):
            server.ensure_running()
        assert sorted(planted.iterdir()) == []
    finally:
        planted.rmdir()


def test_a_socket_path_too_long_for_unix_sockets_moves_to_a_private_tmp_dir(
    tmp_path: Path,
) -> None:
    top = tmp_path
    if os.geteuid() == 0:
        # Reachable by the server user, so the cluster stays where it is asked to be.
        top = Path(tempfile.mkdtemp(prefix="pg-long-"))
        top.chmod(0o755)
    server = EmbeddedPostgres(top.joinpath(*["d" * 20] * 5, "postgres"))
    server.ensure_running()
    info = _running(server)
    try:
        assert not server.directory.is_symlink()
        assert info.socket_dir.parent == SHARED_TMP
        assert stat.S_IMODE(info.socket_dir.stat().st_mode) == 0o700
        assert asyncio.run(_query(str(server.url()), "SELECT 1")) == 1
    finally:
        server.stop()
        shutil.rmtree(info.socket_dir, ignore_errors=True)
        if top != tmp_path:
            shutil.rmtree(top, ignore_errors=True)
