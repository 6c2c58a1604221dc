from __future__ import annotations

import stat
from pathlib import Path

import pytest

from palaver.config import ConfigError, ensure_secret, load_settings


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "palaver.yaml"
    config.write_text("port: 7000\nhost: 0.0.0.0\nlog_level: debug\n")
    from_file = load_settings(config, environ={})
    assert (from_file.port, from_file.host, from_file.log_level) == (7000, "0.0.0.0", "debug")
    env = {"PALAVER_PORT": "7100", "PALAVER_LOG_LEVEL": "WARNING"}
    from_env = load_settings(config, environ=env)
    assert (from_env.port, from_env.host, from_env.log_level) == (7100, "0.0.0.0", "warning")
    from_flags = load_settings(config, environ=env, overrides={"port": 7200, "host": None})
    assert (from_flags.port, from_flags.host) == (7200, "0.0.0.0")


def test_defaults_are_embedded() -> None:
    settings = load_settings(environ={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.redis_url == ""
    assert settings.effective_database_url == "sqlite:///var/palaver.db"
    assert settings.access_token_ttl == 900


def test_lists_from_environment() -> None:
    settings = load_settings(
        environ={"PALAVER_CORS_ORIGINS": "https://a.example, https://b.example"}
    )
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PALAVER_LOG_LEVEL": "verbose"}, "log_level"),
        ({"PALAVER_PORT": "eighty"}, "port"),
        ({"PALAVER_PORT": "70000"}, "port"),
        ({"PALAVER_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"PALAVER_REDIS_URL": "memcached://x"}, "redis_url"),
    ],
)
def test_invalid_setting_names_itself(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert expected in str(info.value)
    assert next(iter(env)) in str(info.value)  # says where the value came from


def test_invalid_choice_lists_accepted_values() -> None:
    with pytest.raises(ConfigError, match=r"accepted values: debug, info, warning, error"):
        load_settings(environ={"PALAVER_LOG_LEVEL": "loud"})


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PALAVER_PROT"):
        load_settings(environ={"PALAVER_PROT": "1"})
    config = tmp_path / "c.yaml"
    config.write_text("prot: 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings(config, environ={})


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("port: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken, environ={})


def test_secret_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path / "var")})
    assert settings.secret_key == ""
    first = ensure_secret(settings)
    second = ensure_secret(settings)
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    path = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_short_configured_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="secret_key"):
        ensure_secret(load_settings(environ={"PALAVER_SECRET_KEY": "short"}))


def test_redacted_hides_secrets_and_url_passwords() -> None:
    settings = load_settings(
        environ={
            "PALAVER_SECRET_KEY": "s" * 40,
            "PALAVER_DATABASE_URL": "postgresql://app:hunter2@db/palaver",
            "PALAVER_SMTP_PASSWORD": "mailpass",
        }
    )
    shown = str(settings.redacted())
    assert "s" * 40 not in shown
    assert "hunter2" not in shown
    assert "mailpass" not in shown
    assert "postgresql://app:***@db/palaver" in shown


def test_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "palaver.example.yaml"
    settings = load_settings(example, environ={})
    assert settings.port == 8000
