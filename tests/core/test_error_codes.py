"""Every error code is documented where clients look for it: the socket's in
docs/protocol.md's table and in the AsyncAPI enum, every one in the README's REST list."""

from __future__ import annotations

import re
from pathlib import Path

from palaver.core.errors import HTTP_STATUS, NOT_ON_SOCKET, SOCKET_CODES, ErrorCode
from palaver.http.asyncapi import document

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r"`([A-Z][A-Z_]+[A-Z])`")


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_asyncapi_error_code_is_the_enum_of_socket_codes() -> None:
    messages = document()["channels"]["ws"]["messages"]
    code = messages["server.error"]["payload"]["properties"]["code"]
    assert code == {"enum": [c.value for c in SOCKET_CODES]}
    assert set(SOCKET_CODES) | NOT_ON_SOCKET == set(ErrorCode)
    assert not set(SOCKET_CODES) & NOT_ON_SOCKET
    gap = messages["server.gap"]["payload"]["properties"]["code"]
    assert gap == {"const": ErrorCode.HISTORY_GAP.value}


def test_protocol_md_error_table_lists_the_socket_codes() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    errors = _section(text, "### Errors", "### Close codes")
    table = "\n".join(line for line in errors.splitlines() if line.startswith("| `"))
    rows = {code for line in table.splitlines() for code in CODE.findall(line.split("|")[1])}
    assert rows == {c.value for c in SOCKET_CODES}
    # The codes the socket never sends are named in the same section, for HTTP.
    after = errors[errors.index(table) + len(table) :]
    assert {c.value for c in NOT_ON_SOCKET} <= set(CODE.findall(after))


def test_readme_lists_every_code_over_rest() -> None:
    text = (ROOT / "README.md").read_text()
    errors = _section(text, "Every error is", "## Delivery guarantees")
    assert set(CODE.findall(errors)) >= {c.value for c in ErrorCode}
    # Each table row's codes answer with the statuses it names.
    for line in errors.splitlines():
        if not re.match(r"\| \d", line):
            continue
        statuses = {int(s) for s in re.findall(r"\d{3}", line.split("|")[1])}
        for code in CODE.findall(line.split("|")[2]):
            assert HTTP_STATUS[ErrorCode(code)] in statuses, (code, line)
