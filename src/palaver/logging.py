"""Structured logs: one JSON object per line on stderr, secrets redacted.

Call :func:`configure_logging` once at start-up, before the server starts. Both
structlog loggers and the standard library's (uvicorn, SQLAlchemy, asyncio) go through
the same processors, so every line has the same shape and the same redaction::

    configure_logging(settings.log_level, settings.log_format)
    log = get_logger(__name__)
    log.info("user.login", user_id=user.id)

Run uvicorn with ``log_config=None`` so it keeps the handlers installed here instead
of installing its own.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import IO, Any, Literal

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "announce_migrations",
    "configure_logging",
    "get_logger",
    "redact",
    "redact_secrets",
]

REDACTED = "***"

# Keys are compared with case, "_" and "-" removed, so "Set-Cookie", "set_cookie" and
# "accessToken" match alike; any key ending in password, passwd, token or secret counts.
_SECRET_KEYS = frozenset(
    {"authorization", "proxyauthorization", "cookie", "setcookie", "apikey", "xapikey", "secretkey"}
)
_SECRET_SUFFIXES = ("password", "passwd", "token", "secret")

# Query parameters carrying credentials: WebSocket clients that cannot set headers
# pass their token as ?token=..., and uvicorn's access log prints the query string.
_QUERY_SECRET = re.compile(
    r"(?i)(?<![A-Za-z0-9_])"
    r"((?:access_token|refresh_token|id_token|token|password|secret|api_key)=)"
    r"[^&\s\"'#]+"
)
# The password in scheme://user:password@host (database and Redis URLs).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
# Credentials that turn up inside text, such as an exception quoting a header: bearer
# tokens, and JWTs anywhere (their header and payload both start with base64 "{").
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/-]+=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_MAX_DEPTH = 8


def _is_secret_key(key: object) -> bool:
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    name = key.lower().replace("_", "").replace("-", "")
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def _redact_string(value: str) -> str:
    # The cheap membership tests skip the regular expressions for most strings.
    if "=" in value:
        value = _QUERY_SECRET.sub(rf"\1{REDACTED}", value)
    if "@" in value:
        value = _URL_PASSWORD.sub(rf"\1{REDACTED}@", value)
    if "eyJ" in value:
        value = _JWT.sub(REDACTED, value)
    if "earer" in value or "EARER" in value:
        value = _BEARER.sub(rf"\1{REDACTED}", value)
    return value


def redact(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` with secrets replaced by ``"***"``, recursing into containers.

    Mapping entries whose key names a secret are hidden whole; strings keep their text
    but lose credential query parameters and URL passwords. Other values pass through.
    """
    if isinstance(value, str):
        return _redact_string(value)
    if _depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _is_secret_key(k) and v is not None else redact(v, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [redact(item, _depth + 1) for item in value]
        # Header lists arrive as (name, value) pairs: hide the value of secret names.
        if len(items) == 2 and _is_secret_key(items[0]):
            items[1] = REDACTED
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: hide secrets anywhere in the event dict (see :func:`redact`)."""
    redacted: EventDict = {}
    for key, value in event_dict.items():
        if _is_secret_key(key) and value is not None:
            redacted[key] = REDACTED
        elif key.startswith("_"):
            # structlog's own bookkeeping (the LogRecord), never rendered.
            redacted[key] = value
        else:
            redacted[key] = redact(value)
    return redacted


def _uvicorn_access_fields(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    # uvicorn logs access lines as '%s - "%s %s HTTP/%s" %d' with the parts in args;
    # lifting them into fields lets log queries filter on status without parsing text.
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if (
        record is not None
        and record.name == "uvicorn.access"
        and isinstance(args, tuple)
        and len(args) == 5
    ):
        client, method, path, http_version, status = args
        event_dict.update(
            client=client, method=method, path=path, http_version=http_version, status=status
        )
    return event_dict


def _orjson_dumps(obj: Any, **kwargs: Any) -> str:
    # ProcessorFormatter must return str; orjson is still several times faster than
    # json.dumps even with the decode.
    return orjson.dumps(obj, default=kwargs.get("default"), option=orjson.OPT_NON_STR_KEYS).decode()


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(
    level: str = "info",
    fmt: Literal["json", "console"] = "json",
    *,
    stream: IO[str] | None = None,
) -> None:
    """Route structlog and the standard library's logging to ``stream`` (stderr).

    ``level`` is a level name (``debug``, ``info``, ``warning``, ``error``); ``fmt``
    is ``json`` for one object per line or ``console`` for coloured text in a terminal.
    Calling it again replaces the previous configuration, which tests rely on.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; accepted values: json, console")
    output = stream if stream is not None else sys.stderr

    renderer: Processor
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        # Tracebacks become data before redaction so it covers their messages too.
        # Locals stay out: a frame's locals are where passwords live.
        final += [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            redact_secrets,
        ]
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        # ConsoleRenderer formats exc_info itself and warns when it is pre-formatted.
        final.append(redact_secrets)
        renderer = structlog.dev.ConsoleRenderer(colors=output.isatty())
    final.append(renderer)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), _uvicorn_access_fields],
        processors=final,
        pass_foreign_args=True,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn installs its own handlers when given a log_config; drop them so its
    # records propagate to the JSON handler above instead of printing plain text.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        for old in uvicorn_logger.handlers[:]:
            uvicorn_logger.removeHandler(old)
        uvicorn_logger.setLevel(logging.NOTSET)
        uvicorn_logger.propagate = True
    # Alembic speaks at INFO each time the schema is checked ("Context impl SQLiteImpl.",
    # its plugins): noise on every command and start. `palaver migrate` turns it back
    # on with announce_migrations().
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` (use ``__name__``)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def announce_migrations() -> None:
    """Let Alembic say what it runs ("Running upgrade ..."), for ``palaver migrate``;
    only its announcement of each plugin stays quiet."""
    logging.getLogger("alembic").setLevel(logging.INFO)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
