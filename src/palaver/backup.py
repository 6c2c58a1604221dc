"""Backing up and restoring a Palaver database: ``palaver backup`` and ``palaver restore``.

SQLite
    :func:`backup` copies the database with SQLite's online backup API in one step: a
    read transaction on a consistent snapshot, so it is safe while servers write (WAL
    mode lets them go on meanwhile). The copy is a self-contained database file, written
    under a temporary name and renamed into place. :func:`restore` refuses to replace a
    database that a process has open unless ``force`` is given, and replaces it
    atomically (a rename), discarding the old write-ahead log.

PostgreSQL
    :func:`backup` runs ``pg_dump --format=custom`` (one consistent snapshot) and
    :func:`restore` runs ``pg_restore --clean --if-exists --single-transaction`` (all or
    nothing). The binaries come from ``PATH`` or ``/usr/lib/postgresql/*/bin`` (newest
    first); the password travels in the child's environment, never on its command line.
    Restore refuses while Palaver servers are connected to the database unless ``force``.

The archive format follows the engine: a SQLite backup is a SQLite database file, a
PostgreSQL backup a ``pg_dump`` custom archive. :func:`restore` tells them apart by their
first bytes and refuses to restore one into the other engine.

Both functions are synchronous and raise :class:`BackupError` with a message that says
what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url

__all__ = ["BackupError", "BackupInfo", "backup", "restore"]

Engine = Literal["sqlite", "postgresql"]

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
# How long SQLite waits for a writer's lock before giving up. The backup itself only
# reads, but opening a WAL database may have to wait for a checkpoint in progress.
SQLITE_BUSY_TIMEOUT = 10.0
# The application name Palaver's PostgreSQL connections announce (see store/postgres.py).
PALAVER_APPLICATION_NAME = "palaver"
_PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup or restore cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class BackupInfo:
    """What :func:`backup` wrote or :func:`restore` read."""

    engine: Engine
    path: Path
    size: int


def backup(database_url: str, path: Path) -> BackupInfo:
    """Write a consistent backup of the database at ``database_url`` to ``path``.

    ``path`` is replaced atomically if it exists; its directory must exist. Safe while
    servers run. Raises :class:`BackupError`.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise BackupError(f"directory {path.parent} does not exist")
    engine, url = _parse(database_url)
    with _temporary_sibling(path) as tmp:
        if engine == "sqlite":
            _sqlite_backup(_sqlite_path(url), tmp)
        else:
            _pg_run("pg_dump", ["--format=custom", f"--file={tmp}"], url)
        _fsync(tmp)
        os.replace(tmp, path)
    _fsync_dir(path.parent)
    return BackupInfo(engine, path, path.stat().st_size)


def restore(database_url: str, path: Path, *, force: bool = False) -> BackupInfo:
    """Replace the database at ``database_url`` with the backup at ``path``.

    Refuses (unless ``force``) while the database is in use: a SQLite file some process
    has open, or a PostgreSQL database Palaver servers are connected to. Stop the
    servers first; with ``force``, restart them at once afterwards. Raises
    :class:`BackupError`.
    """
    path = Path(path)
    engine, url = _parse(database_url)
    found = _archive_engine(path)
    if found != engine:
        raise BackupError(
            f"{path} is a {_ENGINE_NAMES[found]} backup but the database is "
            f"{_ENGINE_NAMES[engine]}: restore it into a {_ENGINE_NAMES[found]} database"
        )
    if engine == "sqlite":
        _sqlite_restore(path, _sqlite_path(url), force=force)
    else:
        if not force:
            _pg_refuse_if_in_use(url)
        _pg_run(
            "pg_restore",
            [
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--exit-on-error",
                # The restoring role owns what it creates: the backup may come from a
                # server whose roles do not exist here.
                "--no-owner",
                "--no-privileges",
                f"--dbname={_pg_database(url)}",
                str(path.resolve()),  # absolute: a name starting with "-" is no option
            ],
            url,
            pass_database=False,
        )
    return BackupInfo(engine, path, path.stat().st_size)


_ENGINE_NAMES: dict[Engine, str] = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _parse(database_url: str) -> tuple[Engine, URL]:
    try:
        url = make_url(database_url)
    except Exception as exc:
        raise BackupError(
            "the database URL is not valid: use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        return "sqlite", url
    if backend in ("postgresql", "postgres"):
        return "postgresql", url
    raise BackupError(f"cannot back up a {backend!r} database: only SQLite and PostgreSQL")


def _archive_engine(path: Path) -> Engine:
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupError(f"backup {path} does not exist") from None
    except OSError as exc:
        raise BackupError(f"cannot read backup {path}: {exc.strerror}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError(
        f"{path} is neither a SQLite database nor a pg_dump custom archive: "
        "not a backup made by `palaver backup`"
    )


@contextlib.contextmanager
def _temporary_sibling(path: Path) -> Iterator[Path]:
    """A fresh name next to ``path`` (same file system, so a rename is atomic),
    removed if the block fails before renaming it."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        for leftover in (tmp, *(Path(f"{tmp}{suffix}") for suffix in _SQLITE_SIDE_FILES)):
            leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once its directory is on disk.
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- SQLite ------------------------------------------------------------------------------


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if database in ("", ":memory:"):
        raise BackupError("an in-memory SQLite database has nothing to back up or restore")
    return Path(database)


def _sqlite_copy(source: sqlite3.Connection, target: Path) -> None:
    """Copy ``source`` into the new file ``target`` as a self-contained database."""
    dest = sqlite3.connect(target, isolation_level=None)
    try:
        # One step (pages=-1): a single read transaction, so the copy is one snapshot
        # even while other connections write.
        source.backup(dest)
        # The copy inherits WAL mode from its source; a rollback-journal file holds
        # everything in one file. Servers switch it back to WAL when they open it.
        dest.execute("PRAGMA journal_mode=DELETE")
        (check,) = dest.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise BackupError(f"the copy failed SQLite's integrity check: {check}")
    finally:
        dest.close()


def _sqlite_backup(source_path: Path, target: Path) -> None:
    if not source_path.is_file():
        raise BackupError(f"the SQLite database {source_path} does not exist")
    # Read-only: a backup never creates or changes the database it copies.
    source = sqlite3.connect(
        f"{source_path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT
    )
    try:
        _sqlite_copy(source, target)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source_path} failed: {exc}") from exc
    finally:
        source.close()


def _sqlite_in_use(path: Path) -> bool:
    """Whether another connection has the database open.

    In exclusive locking mode SQLite needs the file to itself even in WAL mode, where
    every open connection (a server's idle pool included) holds a shared lock.
    """
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("PRAGMA locking_mode=EXCLUSIVE")
        probe.execute("BEGIN EXCLUSIVE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.Error as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise BackupError(
            f"{path} cannot be checked ({exc}): pass --force to replace it anyway"
        ) from exc
    finally:
        probe.close()


def _sqlite_restore(archive: Path, target: Path, *, force: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not force and _sqlite_in_use(target):
        raise BackupError(
            f"the database {target} is in use (is a Palaver server running?): stop every "
            "process using it first, or pass --force to replace it anyway"
        )
    with _temporary_sibling(target) as tmp:
        try:
            source = sqlite3.connect(f"{archive.resolve().as_uri()}?mode=ro", uri=True)
            try:
                _sqlite_copy(source, tmp)
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"{archive} is not a readable SQLite database: {exc}") from exc
        if target.exists():
            # Keep the replaced file's permissions (the backup's copy is private).
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        _fsync(tmp)
        # The old database's write-ahead log must not be replayed into the new file:
        # remove it (and the shared-memory index) before the rename makes the new file
        # visible. Nothing is lost: it belongs to the database being replaced.
        for suffix in _SQLITE_SIDE_FILES:
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
    _fsync_dir(target.parent)


# -- PostgreSQL ----------------------------------------------------------------------------


def find_pg_binary(name: str) -> str:
    """The path of ``pg_dump`` or ``pg_restore``: on ``PATH``, else the newest under
    ``/usr/lib/postgresql/*/bin``. Raises :class:`BackupError` when there is none."""
    found = shutil.which(name)
    if found:
        return found

    def version(directory: str) -> tuple[int, ...]:
        numbers = re.findall(r"\d+", Path(directory).parent.name)
        return tuple(int(n) for n in numbers)

    for directory in sorted(glob.glob(_PG_BIN_GLOB), key=version, reverse=True):
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise BackupError(
        f"{name} was not found on PATH or under {_PG_BIN_GLOB}: install the PostgreSQL "
        "client tools (Debian: apt-get install postgresql-client), at least the "
        "server's major version"
    )


def _pg_database(url: URL) -> str:
    if not url.database:
        raise BackupError("the PostgreSQL URL names no database: postgresql://USER@HOST/DB")
    return url.database


def _pg_env(url: URL) -> dict[str, str]:
    """libpq's environment for ``url``: the password stays off the command line."""
    env = dict(os.environ)
    for key, value in (
        ("PGHOST", url.host),
        ("PGPORT", str(url.port) if url.port else None),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
    ):
        if value:
            env[key] = value
    query = url.query
    sslmode = query.get("sslmode") or query.get("ssl")
    if isinstance(sslmode, str):
        env["PGSSLMODE"] = sslmode
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return env


def _pg_run(tool: str, args: list[str], url: URL, *, pass_database: bool = True) -> None:
    command = [find_pg_binary(tool), *args]
    if pass_database:
        command.append(f"--dbname={_pg_database(url)}")
    result = subprocess.run(  # noqa: S603 - a fixed binary, arguments without a shell
        command, env=_pg_env(url), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        tail = "; ".join(detail[-5:]) or f"exit status {result.returncode}"
        raise BackupError(f"{tool} failed: {tail}")


def _pg_refuse_if_in_use(url: URL) -> None:
    import asyncpg  # type: ignore[import-untyped]

    database = _pg_database(url)

    async def palaver_connections() -> int:
        try:
            conn = await asyncpg.connect(
                host=url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=database,
                timeout=10,
            )
        except asyncpg.InvalidCatalogNameError:
            raise BackupError(
                f"database {database!r} does not exist: create it first (createdb {database})"
            ) from None
        except (OSError, asyncpg.PostgresError) as exc:
            raise BackupError(f"cannot connect to database {database!r}: {exc}") from exc
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = $1",
                PALAVER_APPLICATION_NAME,
            )
            return count
        finally:
            await conn.close()

    count = asyncio.run(palaver_connections())
    if count:
        raise BackupError(
            f"the database {database!r} is in use by {count} Palaver connection(s): stop "
            "the servers first, or pass --force to restore anyway"
        )
