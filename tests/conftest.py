from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from palaver.config import Settings, load_settings
from tests.services import POSTGRES_URL, require


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    require("PostgreSQL", POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_database(postgres_admin_url: str) -> Iterator[str]:
    """A database of its own for this test run, dropped at the end."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"palaver_t_{secrets.token_hex(4)}"
    admin = postgres_admin_url.replace("postgresql://", "postgres://", 1)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base = postgres_admin_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an isolated process: SQLite under a temporary directory."""
    return load_settings(
        config_file=None,
        environ={},
        overrides={
            "data_dir": str(tmp_path / "var"),
            "secret_key": secrets.token_urlsafe(48),
            "log_level": "warning",
        },
    )
