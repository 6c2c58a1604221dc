from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI

from palaver.http.middleware import RequestIdMiddleware
from palaver.logging import configure_logging, get_logger, redact

SECRET = "s3cr3t-VALUE-123"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging configured to write into a buffer; the previous set-up is restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_config = structlog.get_config()
    output = io.StringIO()
    configure_logging("info", "json", stream=output)
    yield output
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)
    structlog.configure(**saved_config)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_with_timestamp_level_and_logger(stream: io.StringIO) -> None:
    get_logger("palaver.test").info("user.login", user_id=7)
    (line,) = lines(stream)
    assert line["event"] == "user.login"
    assert line["user_id"] == 7
    assert line["level"] == "info"
    assert line["logger"] == "palaver.test"
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None


def test_level_filters(stream: io.StringIO) -> None:
    log = get_logger("palaver.test")
    log.debug("hidden")
    logging.getLogger("some.library").debug("hidden too")
    log.warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_context_variables_are_merged(stream: io.StringIO) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-1"):
        get_logger("palaver.test").info("inside")
        logging.getLogger("sqlalchemy.engine").warning("stdlib inside")
    get_logger("palaver.test").info("outside")
    inside, stdlib_inside, outside = lines(stream)
    assert inside["request_id"] == "req-1"
    assert stdlib_inside["request_id"] == "req-1"
    assert stdlib_inside["logger"] == "sqlalchemy.engine"
    assert "request_id" not in outside


def test_secret_fields_are_redacted(stream: io.StringIO) -> None:
    get_logger("palaver.test").info(
        "register",
        username="alice",
        password=SECRET,
        accessToken=SECRET,
        refresh_token=SECRET,
        token_type="bearer",
        headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"sid={SECRET}", "Accept": "*/*"},
        raw_headers=[(b"authorization", SECRET.encode()), (b"host", b"palaver.test")],
        form={"user": {"new_password": SECRET, "client_secret": SECRET}},
    )
    output = stream.getvalue()
    assert SECRET not in output
    (line,) = lines(stream)
    assert line["password"] == "***"
    assert line["accessToken"] == "***"
    assert line["token_type"] == "bearer"
    assert line["headers"] == {"Authorization": "***", "Cookie": "***", "Accept": "*/*"}
    assert line["form"] == {"user": {"new_password": "***", "client_secret": "***"}}


def test_tokens_in_urls_are_redacted(stream: io.StringIO) -> None:
    log = get_logger("palaver.test")
    log.info("socket", url=f"wss://palaver.test/ws?token={SECRET}&room=1")
    log.info(f"GET /api/x?access_token={SECRET} done")
    log.info("db", url=f"postgresql://palaver:{SECRET}@db:5432/palaver")
    log.info("redirect", paths=[f"/a?refresh_token={SECRET}#frag"], mytoken="kept?x=1")
    log.info("upstream said", error=f"401 for 'Authorization: Bearer {SECRET}'")
    log.info("reset", path=f"/reset/{JWT}/confirm")
    output = stream.getvalue()
    assert SECRET not in output
    assert JWT not in output
    first, second, third, fourth, fifth, sixth = lines(stream)
    assert first["url"] == "wss://palaver.test/ws?token=***&room=1"
    assert second["event"] == "GET /api/x?access_token=*** done"
    assert third["url"] == "postgresql://palaver:***@db:5432/palaver"
    assert fourth["paths"] == ["/a?refresh_token=***#frag"]
    assert fifth["error"] == "401 for 'Authorization: Bearer ***'"
    assert sixth["path"] == "/reset/***/confirm"


def test_exception_tracebacks_are_redacted(stream: io.StringIO) -> None:
    password = SECRET
    try:
        raise ValueError(f"bad request /ws?token={password}")
    except ValueError:
        get_logger("palaver.test").exception("failed")
    output = stream.getvalue()
    assert SECRET not in output
    (line,) = lines(stream)
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert "token=***" in line["exception"][0]["exc_value"]


def test_uvicorn_access_lines_become_redacted_fields(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "198.51.100.4:5000", "GET", f"/ws?token={SECRET}", "1.1", 101
    )
    assert SECRET not in stream.getvalue()
    (line,) = lines(stream)
    assert line["logger"] == "uvicorn.access"
    assert line["event"] == '198.51.100.4:5000 - "GET /ws?token=*** HTTP/1.1" 101'
    assert line["path"] == "/ws?token=***"
    assert line["method"] == "GET"
    assert line["status"] == 101


def test_console_format_redacts_too() -> None:
    output = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_config = structlog.get_config()
    try:
        configure_logging("debug", "console", stream=output)
        get_logger("palaver.test").info("hello", password=SECRET, url=f"/x?token={SECRET}")
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        structlog.configure(**saved_config)
    text = output.getvalue()
    assert "hello" in text
    assert SECRET not in text


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("chatty", "json")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml")  # type: ignore[arg-type]


def test_redact_leaves_harmless_values_alone() -> None:
    value = {"count": 3, "items": ("a=b", None), "nested": {"token": None}, "n": 1.5}
    assert redact(value) == value


async def test_real_uvicorn_access_log_is_json_and_redacted(stream: io.StringIO) -> None:
    app = FastAPI()

    @app.get("/ws-ticket")
    async def ticket() -> dict[str, bool]:
        get_logger("palaver.http").info("ticket.issued")
        return {"ok": True}

    config = uvicorn.Config(
        RequestIdMiddleware(app),
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=True,
        lifespan="off",
        server_header=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"http://127.0.0.1:{port}/ws-ticket",
                params={"token": SECRET},
                headers={"X-Request-ID": "trace-42"},
            )
        assert response.status_code == 200
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    output = stream.getvalue()
    assert SECRET not in output
    records = lines(stream)
    access = [line for line in records if line["logger"] == "uvicorn.access"]
    assert len(access) == 1
    assert access[0]["path"] == "/ws-ticket?token=***"
    assert access[0]["status"] == 200
    assert access[0]["request_id"] == "trace-42"
    handler_line = next(line for line in records if line["event"] == "ticket.issued")
    assert handler_line["request_id"] == "trace-42"
