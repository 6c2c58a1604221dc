"""Settings for a server of a test's own: nothing read from the environment or a
configuration file, its data under a directory of the test's, a fresh secret key."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from palaver.config import Settings, load_settings


def isolated_settings(data_dir: Path | str, **overrides: Any) -> Settings:
    """Settings with ``data_dir`` and a fresh ``secret_key``, then ``overrides``."""
    return load_settings(
        config_file=None,
        environ={},
        overrides={
            "data_dir": str(data_dir),
            "secret_key": secrets.token_urlsafe(48),
            **overrides,
        },
    )
