"""The ``palaver`` command: serve, migrate, back up and restore, manage users, mint tokens,
show config."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palaver import __version__
from palaver.config import ConfigError, Settings, ensure_secret, load_settings
from palaver.core.errors import PalaverError
from palaver.logging import announce_migrations, configure_logging

if TYPE_CHECKING:
    from palaver.store.base import Store

# Flags shared by every subcommand that reads settings; each maps to a setting name.
_SETTING_FLAGS = {
    "--config": None,
    "--host": "host",
    "--port": "port",
    "--database-url": "database_url",
    "--redis-url": "redis_url",
    "--log-level": "log_level",
    "--data-dir": "data_dir",
}


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML settings file (default ./palaver.yaml)")
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("--port", type=int, help="port to listen on")
    parser.add_argument("--database-url", help="sqlite:///path or postgresql://...")
    parser.add_argument("--redis-url", help="redis://... (empty: in-process broker)")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    parser.add_argument("--data-dir", help="where SQLite, uploads and the secret live")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = _overrides_only(args)
    overrides.update(extra)
    settings = ensure_secret(load_settings(args.config, overrides=overrides))
    # Logs go to standard error, so a command's own output (a token, a listing) stays
    # clean for scripts.
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _run(coro_fn: Callable[[Settings], Coroutine[Any, Any, int]], settings: Settings) -> int:
    return asyncio.run(coro_fn(settings))


async def _with_services(settings: Settings, fn: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    from palaver.services.container import build_services

    services = build_services(settings)
    await services.start()
    if settings.auto_migrate:
        await services.store.migrate()
    try:
        return await fn(services)
    finally:
        await services.close()


async def _with_store(
    settings: Settings, fn: Callable[[Store], Coroutine[Any, Any, int]], *, pool_size: int
) -> int:
    """Run ``fn`` with the configured database connected (no other service)."""
    from palaver.store import create_store

    store = create_store(settings.effective_database_url, pool_size=pool_size)
    await store.connect()
    try:
        return await fn(store)
    finally:
        await store.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from palaver.server import serve

    settings = _settings(args, workers=args.workers)
    return serve(settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    announce_migrations()

    async def run(store: Store) -> int:
        await store.migrate()
        print("database is at the newest schema")
        return 0

    return _run(lambda s: _with_store(s, run, pool_size=1), settings)


def cmd_index(args: argparse.Namespace) -> int:
    """Search indexing as a process of its own, beside nodes that run with
    ``search_indexer: false``: on a machine with a spare core, the serving process then
    spends its own on messages only."""
    import signal

    from palaver.services.search import SearchIndexer

    settings = _settings(args)

    async def run(store: Store) -> int:
        if settings.auto_migrate:
            await store.migrate()
        indexer = SearchIndexer(store)
        if args.once:
            print(f"indexed {await indexer.run_once()} messages")
            return 0
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        indexer.start()
        try:
            await stopping.wait()
        finally:
            await indexer.stop()
        return 0

    return _run(lambda s: _with_store(s, run, pool_size=2), settings)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if env := os.environ.get("PALAVER_NEW_PASSWORD"):
        return env
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("passwords differ")
    return first


def cmd_user_create(args: argparse.Namespace) -> int:
    password = _read_password(args)

    async def run(services: Any) -> int:
        user = await services.auth.register(
            username=args.username,
            email=args.email,
            password=password,
            display_name=args.display_name,
            is_admin=args.admin,
            bypass_closed=True,
        )
        print(json.dumps({"id": user.id, "username": user.username, "email": user.email}))
        return 0

    return _run(lambda s: _with_services(s, run), _settings(args))


def cmd_user_list(args: argparse.Namespace) -> int:
    async def run(services: Any) -> int:
        for user in await services.store.list_users(limit=args.limit, offset=args.offset):
            state = "active" if user.is_active else "inactive"
            admin = " admin" if user.is_admin else ""
            print(f"{user.id}\t{user.username or '-'}\t{user.email or '-'}\t{state}{admin}")
        return 0

    return _run(lambda s: _with_services(s, run), _settings(args))


async def _find_user(services: Any, who: str) -> Any:
    user = await services.store.get_user_by_login(who)
    if user is None and who.isdigit():
        user = await services.store.get_user(int(who))
    if user is None:
        raise SystemExit(f"no user {who!r}")
    return user


def cmd_user_deactivate(args: argparse.Namespace) -> int:
    async def run(services: Any) -> int:
        user = await _find_user(services, args.user)
        await services.auth.set_active(user.id, False, actor_id=None)
        print(f"user {user.id} deactivated; their sessions are revoked")
        return 0

    return _run(lambda s: _with_services(s, run), _settings(args))


def cmd_token(args: argparse.Namespace) -> int:
    async def run(services: Any) -> int:
        user = await _find_user(services, args.user)
        if not user.is_active:
            raise SystemExit(f"user {args.user!r} is deactivated")
        result = await services.auth.open_session(user, ip="cli", device="palaver token")
        await services.audit.record("token.issued", actor_id=user.id, target=result.session.id)
        print(result.access_token)
        return 0

    return _run(lambda s: _with_services(s, run), _settings(args))


def cmd_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, overrides=_overrides_only(args))
    print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
    return 0


def _database_url(args: argparse.Namespace) -> str:
    # No secret is needed (or generated) to copy a database.
    settings = load_settings(args.config, overrides=_overrides_only(args))
    configure_logging(settings.log_level, settings.log_format)
    return settings.effective_database_url


def cmd_backup(args: argparse.Namespace) -> int:
    from palaver.backup import BackupError, backup

    try:
        info = backup(_database_url(args), args.path)
    except BackupError as exc:
        print(f"palaver: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backed up the {info.engine} database to {info.path} ({info.size} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from palaver.backup import BackupError, restore

    try:
        info = restore(_database_url(args), args.path, force=args.force)
    except BackupError as exc:
        print(f"palaver: restore failed: {exc}", file=sys.stderr)
        return 1
    print(f"restored the {info.engine} database from {info.path}")
    return 0


def _overrides_only(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(args, flag[2:].replace("-", "_"), None)
        for flag, name in _SETTING_FLAGS.items()
        if name is not None
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="palaver", description="Palaver chat server")
    parser.add_argument("--version", action="version", version=f"palaver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve HTTP, WebSocket and the web client")
    _add_setting_flags(serve)
    serve.add_argument("--workers", type=int, help="processes sharing the port (needs Redis)")
    serve.set_defaults(fn=cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    _add_setting_flags(migrate)
    migrate.set_defaults(fn=cmd_migrate)

    index = sub.add_parser(
        "index", help="index messages for search until stopped (beside search_indexer: false)"
    )
    _add_setting_flags(index)
    index.add_argument("--once", action="store_true", help="index what is waiting, then exit")
    index.set_defaults(fn=cmd_index)

    user = sub.add_parser("user", help="manage accounts").add_subparsers(
        dest="user_command", required=True
    )
    create = user.add_parser("create", help="create an account")
    _add_setting_flags(create)
    create.add_argument("username", nargs="?")
    create.add_argument("--email")
    create.add_argument("--display-name")
    create.add_argument("--admin", action="store_true", help="make a server administrator")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else PALAVER_NEW_PASSWORD or a prompt)",
    )
    create.set_defaults(fn=cmd_user_create)
    listing = user.add_parser("list", help="list accounts")
    _add_setting_flags(listing)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(fn=cmd_user_list)
    deactivate = user.add_parser("deactivate", help="deactivate an account, ending its sessions")
    _add_setting_flags(deactivate)
    deactivate.add_argument("user", help="username, e-mail or id")
    deactivate.set_defaults(fn=cmd_user_deactivate)

    token = sub.add_parser("token", help="print an access token for USER (for scripts)")
    _add_setting_flags(token)
    token.add_argument("user", help="username, e-mail or id")
    token.set_defaults(fn=cmd_token)

    config = sub.add_parser("config", help="print the effective settings, secrets hidden")
    _add_setting_flags(config)
    config.set_defaults(fn=cmd_config)

    backup_cmd = sub.add_parser(
        "backup", help="write a consistent backup of the database (safe while serving)"
    )
    _add_setting_flags(backup_cmd)
    backup_cmd.add_argument(
        "path", type=Path, help="the file to write (SQLite file or pg_dump custom archive)"
    )
    backup_cmd.set_defaults(fn=cmd_backup)

    restore_cmd = sub.add_parser("restore", help="replace the database with a backup")
    _add_setting_flags(restore_cmd)
    restore_cmd.add_argument("path", type=Path, help="a file written by `palaver backup`")
    restore_cmd.add_argument(
        "--force",
        action="store_true",
        help="replace the database even while servers use it (restart them at once)",
    )
    restore_cmd.set_defaults(fn=cmd_restore)

    sub.add_parser("bench", help="load generator (see `palaver bench --help`)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # The load generator has its own options; hand them over untouched.
        from palaver.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        result: int = args.fn(args)
        return result
    except ConfigError as exc:
        print(f"palaver: configuration error: {exc}", file=sys.stderr)
        return 2
    except PalaverError as exc:
        print(f"palaver: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
