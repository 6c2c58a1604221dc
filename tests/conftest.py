from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from palaver.config import Settings
from tests.isolated import isolated_settings
from tests.services import POSTGRES_URL, create_database, drop_database, require


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    require("PostgreSQL", POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_database(postgres_admin_url: str) -> Iterator[str]:
    """A database of its own for this test run, dropped at the end."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an isolated process: SQLite under a temporary directory."""
    return isolated_settings(
        tmp_path / "var",
        log_level="warning",
    )
