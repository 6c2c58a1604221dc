"""The REST API as one person, beside their browser: to check what the page asked the
server to do, or to set up more than a test should type."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.browser.people import Person


class Rest:
    """A session of its own for ``person`` (signed in with their password)."""

    def __init__(self, base_url: str, person: Person) -> None:
        self.base_url = base_url
        self.token = ""
        signed_in = self.call(
            "POST", "/api/auth/login", {"username": person.username, "password": person.password}
        )
        self.token = signed_in["access_token"]
        self.user_id: int = signed_in["user"]["id"]

    def conversation_id(self, name: str) -> int:
        """The id of this person's room or group called ``name`` (exactly one)."""
        [found] = [c["id"] for c in self.call("GET", "/api/conversations") if c["name"] == name]
        return int(found)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer (None for an empty one); an error status raises."""
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None
