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
