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


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def engine_settings(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """:func:`settings` once on SQLite, once on a PostgreSQL database of the test's own
    (dropped after it): for tests whose behaviour must not depend on the engine."""
    if request.param == "sqlite":
        yield settings
        return
    request.getfixturevalue("postgres_admin_url")
    url = create_database()
    try:
        yield settings.model_copy(update={"database_url": url})
    finally:
        drop_database(url)
