"""Palaver store."""

from __future__ import annotations

from palaver.store.base import Store, StoreUnavailable

__all__ = ["Store", "StoreUnavailable", "create_store"]

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def create_store(url: str, *, pool_size: int = 10) -> Store:
    """The store for a database URL, not yet connected.

    Accepts ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``
    and ``postgresql://…`` (or ``postgres://…``); raises :class:`ValueError` for anything
    else.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme in ("sqlite", "sqlite+aiosqlite"):
        from palaver.store.sqlite import SqliteStore

        return SqliteStore(url, pool_size=pool_size)
    if sep and scheme in _POSTGRES_SCHEMES:
        from palaver.store.postgres import PostgresStore

        return PostgresStore(f"postgresql+asyncpg://{rest}", pool_size=pool_size)
    # Only the scheme is echoed: the rest of the URL may hold a password.
    what = f"scheme {scheme!r}" if sep else "URL without a scheme"
    raise ValueError(
        f"unsupported database {what}: "
        "use sqlite:///PATH or postgresql://USER@HOST/DB (postgres:// also accepted)"
    )
