"""The files under deploy/ agree with each other and with Palaver's settings (no Docker
engine is needed: the images themselves are not built here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from palaver.config import ConfigError, Settings, ensure_secret, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NODES = ("palaver-a", "palaver-b")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}


def test_compose_runs_two_identical_nodes_behind_nginx() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", *NODES, "nginx"}
    a, b = (services[name] for name in NODES)
    for key in ("image", "build", "env_file", "environment", "depends_on"):
        assert a[key] == b[key], key
    # One env file gives both nodes the same secret key.
    assert a["env_file"] == "palaver.env"
    assert a["environment"]["PALAVER_AUTO_MIGRATE"] == "false"
    assert a["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["migrate"]
    assert a["stop_grace_period"]
    nginx = services["nginx"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert {name: dep["condition"] for name, dep in nginx["depends_on"].items()} == {
        name: "service_healthy" for name in NODES
    }
    # The nodes believe X-Forwarded-For from nginx's address, and only from it.
    nginx_address = nginx["networks"]["palaver"]["ipv4_address"]
    assert a["environment"]["PALAVER_TRUSTED_PROXIES"] == nginx_address
    addresses = {services[n]["networks"]["palaver"]["ipv4_address"] for n in NODES}
    assert len(addresses) == 2


def test_nginx_upstreams_are_the_compose_nodes() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream palaver \{(.*?)\}", conf, re.DOTALL)
    assert upstream is not None
    servers = re.findall(r"^\s*server ([\w.-]+):(\d+)", upstream.group(1), re.MULTILINE)
    assert servers == [(name, "8000") for name in NODES]
    assert "least_conn;" in upstream.group(1)
    ws = re.search(r"location /ws \{(.*?)\}", conf, re.DOTALL)
    assert ws is not None
    for directive in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_read_timeout 1h;",
    ):
        assert directive in ws.group(1), directive


def test_dockerfile_serves_as_an_unprivileged_user_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users == ["palaver"]
    assert re.search(r"^HEALTHCHECK .*/health", text, re.MULTILINE | re.DOTALL)
    assert 'ENTRYPOINT ["palaver"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0"]' in text
    assert "PALAVER_PORT=8000" in text
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert f"!{source}" in ignored or f"!{source}/" in ignored, source


def test_env_example_names_real_settings_and_stays_out_of_git() -> None:
    example = env_file(DEPLOY / "palaver.env.example")
    # A deployment that keeps the placeholder key does not start.
    placeholder = load_settings(
        config_file=None, environ={"PALAVER_SECRET_KEY": example["PALAVER_SECRET_KEY"]}
    )
    with pytest.raises(ConfigError, match="secret_key"):
        ensure_secret(placeholder)
    for key in example:
        if key.startswith("PALAVER_"):
            assert key[len("PALAVER_") :].lower() in Settings.model_fields, key
        else:
            assert key.startswith("POSTGRES_"), key
    user, password, db = (example[f"POSTGRES_{k}"] for k in ("USER", "PASSWORD", "DB"))
    assert example["PALAVER_DATABASE_URL"] == f"postgresql://{user}:{password}@postgres:5432/{db}"
    assert "palaver.env" in (DEPLOY / ".gitignore").read_text().splitlines()
