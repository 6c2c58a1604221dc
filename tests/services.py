"""Where the tests find PostgreSQL and Redis, and what happens when they are missing.

Under CI (``CI=true``) an unreachable service fails the test; elsewhere the test is
skipped with a message that says so loudly.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "PALAVER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PALAVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def require(name: str, url: str) -> None:
    """Fail (CI) or loudly skip (elsewhere) when ``url`` does not answer."""
    if reachable(url):
        return
    message = f"{name} is NOT reachable at {url}: tests that need it cannot run"
    if in_ci():
        pytest.fail(message + " (CI=true makes this a failure)", pytrace=False)
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(f"*** {message} ***")


def postgres_admin(sql: str) -> None:
    """Run one statement as the PostgreSQL administrator. It runs on a thread of its own,
    so sync fixtures and async ones (inside a running loop) alike can call it."""
    import asyncio
    import concurrent.futures

    import asyncpg  # type: ignore[import-untyped]

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql://", "postgres://", 1))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def create_database() -> str:
    """A new empty database ``palaver_t_<random>``; its URL."""
    import secrets

    name = f"palaver_t_{secrets.token_hex(6)}"
    postgres_admin(f'CREATE DATABASE "{name}"')
    return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def delete_namespace(namespace: str) -> None:
    """Delete every Redis key under ``namespace`` (a test's own, never anything else)."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
