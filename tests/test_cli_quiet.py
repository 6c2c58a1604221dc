"""The commands print their own output only: Alembic's INFO lines appear under
`palaver migrate` alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _palaver(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAVER_")}
    env.update(PALAVER_DATA_DIR=str(tmp_path / "var"), PALAVER_NEW_PASSWORD="Sup3r-secret")
    return subprocess.run(
        [sys.executable, "-m", "palaver.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )


def test_only_migrate_shows_alembic(tmp_path: Path) -> None:
    # The first command migrates a fresh database (auto_migrate) without a word.
    created = _palaver(tmp_path, "user", "create", "ada")
    assert '"username": "ada"' in created.stdout
    assert "alembic" not in created.stderr.lower()
    assert "Context impl" not in created.stderr
    listed = _palaver(tmp_path, "user", "list")
    token = _palaver(tmp_path, "token", "ada")
    assert "Context impl" not in listed.stderr + token.stderr
    assert token.stdout.count(".") == 2
    fresh = tmp_path / "fresh"
    migrated = _palaver(fresh, "migrate")
    assert "newest schema" in migrated.stdout
    assert "Running upgrade" in migrated.stderr
