"""Configuration: ``palaver.yaml`` < ``PALAVER_*`` environment < command-line flags.

Every setting has a default that works on a laptop (SQLite under ``./var/``, the
in-process broker). An invalid value stops start-up with a :class:`ConfigError` that
names the setting and the values it accepts.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from palaver.core.uploads import DEFAULT_ALLOWED_TYPES, FILE_TYPES

ENV_PREFIX = "PALAVER_"
# PALAVER_* variables that are not settings: read by the CLI, the load generator and the
# test suite. Any other unknown PALAVER_* variable is refused as a likely typo.
AUXILIARY_ENV = frozenset({"PALAVER_CONFIG", "PALAVER_NEW_PASSWORD", "PALAVER_BENCH_URL"})
SECRET_FIELDS = frozenset({"secret_key", "smtp_password"})
LogLevel = Literal["debug", "info", "warning", "error"]


def message_body_bytes(max_message_length: int) -> int:
    """The largest body a legitimate send can have: every character a supplementary one
    written as two JSON escapes (``\\ud83d\\ude00``, 12 bytes, as ``json.dumps`` writes
    by default), plus room for the other fields (attachments, ids, a client id)."""
    return 12 * max_message_length + 16 * 1024


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it and what it accepts."""


class Settings(BaseModel):
    """The effective configuration of one Palaver process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    data_dir: Path = Path("var")
    database_url: str = ""
    database_pool_size: int = Field(10, ge=1, le=1000)
    auto_migrate: bool = Field(True, description="migrate the schema on start")
    redis_url: str = ""
    redis_namespace: str = Field(
        "palaver", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="prefix of keys and channels"
    )
    secret_key: str = ""
    public_url: str = ""
    cors_origins: list[str] = Field(default_factory=list)
    trusted_proxies: list[str] = Field(default_factory=list)
    log_level: LogLevel = "info"
    log_format: Literal["json", "console"] = "json"

    jwt_issuer: str = "palaver"
    jwt_audience: str = "palaver"
    # Up to 30 days: clients of the seed protocols never refresh (seed 003 uses 7 days).
    access_token_ttl: int = Field(900, ge=30, le=30 * 86400, description="seconds")
    refresh_token_ttl: int = Field(30 * 86400, ge=300, description="seconds")
    password_min_length: int = Field(8, ge=1, le=128)
    password_require_classes: bool = True
    login_max_failures: int = Field(5, ge=1, description="failed logins per account")
    # Higher than per account: one office or campus shares an address behind NAT, and
    # one person's typos must not lock out every colleague.
    login_ip_max_failures: int = Field(30, ge=1, description="failed logins per client IP")
    login_failure_window: int = Field(60, ge=1, description="seconds")
    registration_open: bool = True
    password_reset_ttl: int = Field(3600, ge=60, description="seconds")

    smtp_host: str = ""
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_from: str = "palaver@localhost"

    max_message_length: int = Field(5000, ge=1, le=60000)
    # After max_message_length: its validator reads that setting.
    body_max_bytes: int = Field(
        1024 * 1024,
        ge=64 * 1024,
        description="bytes of a request body (uploads have upload_max_bytes instead)",
    )
    search_indexer: bool = Field(
        True, description="index messages for search on this node (one indexing node is enough)"
    )
    history_retention_days: int = Field(0, ge=0, description="0 keeps history forever")
    rate_messages_burst: int = Field(30, ge=1)
    rate_messages_per_second: float = Field(30.0, gt=0)
    max_connections_per_ip: int = Field(100, ge=1)
    presence_away_after: int = Field(300, ge=1, description="seconds")
    presence_visibility: Literal["shared", "everyone"] = "shared"
    presence_ttl: float = Field(
        30.0, ge=1, le=600, description="seconds a dead node's users stay online at most"
    )
    ws_max_frame: int = Field(65536, ge=1024)
    ws_send_buffer: int = Field(1 << 20, ge=4096, description="bytes queued before a drop")
    ws_ping_interval: float = Field(20.0, gt=0)
    ws_ping_timeout: float = Field(20.0, gt=0)
    ws_allowed_origins: list[str] = Field(default_factory=list)
    filter_words: list[str] = Field(
        default_factory=list, description="words the content filter catches on every server"
    )
    filter_action: Literal["mask", "reject"] = "mask"
    dm_policy_default: Literal["everyone", "contacts"] = "everyone"

    upload_dir: Path | None = Field(None, description="default: <data_dir>/uploads")
    upload_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="bytes per file")
    upload_allowed_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_TYPES),
        description="file kinds besides images (JPEG, PNG, GIF, WebP, always accepted)",
    )
    upload_max_pixels: int = Field(
        40_000_000, ge=1, le=500_000_000, description="width x height of an image"
    )
    upload_thumbnail_size: int = Field(320, ge=16, le=2048, description="longest side, px")
    upload_orphan_hours: int = Field(
        24, ge=0, description="files never attached to a message go after this; 0 keeps them"
    )
    ws_dialect: Literal["native", "monarchs", "chat-service", "mrezhen"] = Field(
        "native", description="the protocol served at /ws (docs/compat.md)"
    )
    expose_emails: bool = Field(
        False,
        description="seed 002's senderEmail shows other users' e-mail addresses "
        "(off: their username)",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgres:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty (in-process broker) or start with redis://")
        return value

    @field_validator(
        "cors_origins", "trusted_proxies", "ws_allowed_origins", "filter_words", mode="before"
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("upload_allowed_types", mode="before")
    @classmethod
    def _check_upload_types(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        unknown = [v for v in value if v not in FILE_TYPES] if isinstance(value, list) else []
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; known: {', '.join(FILE_TYPES)}")
        return value

    @field_validator("body_max_bytes")
    @classmethod
    def _check_body_max_bytes(cls, value: int, info: ValidationInfo) -> int:
        length = info.data.get("max_message_length")
        if length is None:
            return value  # max_message_length is itself invalid and reported
        least = message_body_bytes(length)
        if value < least:
            raise ValueError(
                f"must be at least {least} bytes with max_message_length {length}: "
                "a message of that many characters, each written as a JSON escape pair, "
                "must fit"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'palaver.db').as_posix()}"

    @property
    def effective_upload_dir(self) -> Path:
        """Where uploaded files live: outside any web root, next to the SQLite file."""
        return self.upload_dir if self.upload_dir is not None else self.data_dir / "uploads"

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with secrets and URL passwords hidden."""
        data = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            if data.get(name):
                data[name] = "***"
        for name in ("database_url", "redis_url"):
            data[name] = redact_url(data[name])
        data["effective_database_url"] = redact_url(self.effective_database_url)
        return data


def redact_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host``."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def _describe(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is None:
        return ""
    annotation = info.annotation
    choices = getattr(annotation, "__args__", None)
    if choices and all(isinstance(c, str) for c in choices):
        return f"; accepted values: {', '.join(choices)}"
    return ""


def _format_error(exc: ValidationError, sources: Mapping[str, str]) -> str:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        origin = sources.get(field, "palaver.yaml")
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting {field!r} (from {origin})")
            continue
        lines.append(
            f"invalid setting {field} = {err.get('input')!r} (from {origin}): "
            f"{err['msg']}{_describe(field)}"
        )
    return "; ".join(lines)


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a YAML file, the environment and explicit overrides.

    ``config_file`` defaults to ``$PALAVER_CONFIG`` or ``./palaver.yaml`` when present.
    Raises :class:`ConfigError` naming the offending setting.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = Path(config_file or env.get("PALAVER_CONFIG") or "palaver.yaml")
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: must be a mapping of setting: value")
        for key, value in loaded.items():
            values[str(key)] = value
            sources[str(key)] = str(path)
    elif config_file:
        raise ConfigError(f"config file {path} does not exist")
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and not (
            key in AUXILIARY_ENV or key.startswith("PALAVER_TEST_")
        ):
            name = key[len(ENV_PREFIX) :].lower()
            if name not in Settings.model_fields:
                raise ConfigError(f"unknown setting {key} in the environment")
            values[name] = value
            sources[name] = key
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            sources[key] = f"--{key.replace('_', '-')}"
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, sources)) from exc


def ensure_secret(settings: Settings) -> Settings:
    """Return settings with a secret key, generating and keeping one under ``data_dir``.

    The generated key is written once with mode 0600 so tokens survive restarts.
    """
    if settings.secret_key:
        if len(settings.secret_key) < 32:
            raise ConfigError("invalid setting secret_key: must be at least 32 characters")
        return settings
    path = settings.data_dir / "secret_key"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Write a private temporary file, then link it into place: the link is atomic,
        # so concurrent workers agree on one key and never read a half-written file.
        tmp = path.with_name(f".secret_key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"invalid setting secret_key: {path} is empty; delete it to regenerate")
    return settings.model_copy(update={"secret_key": key})
