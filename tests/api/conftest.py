from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from palaver.config import Settings
from palaver.http.app import create_app
from palaver.services.container import Services

STRONG = "Sup3r-secret"
# The address every request of the in-process client comes from.
CLIENT_IP = "203.0.113.7"


@dataclass
class Api:
    """An in-process client of one app, with helpers for the common steps."""

    app: FastAPI
    http: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def register(self, username: str, password: str = STRONG, **extra: Any) -> Any:
        response = await self.http.post(
            "/api/auth/register", json={"username": username, "password": password, **extra}
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def login(self, login: str, password: str = STRONG) -> httpx.Response:
        return await self.http.post("/api/auth/login", json={"login": login, "password": password})

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


async def open_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Api(app=app, http=http)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async for value in open_api(settings):
        yield value
