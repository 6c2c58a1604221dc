"""Several real `palaver serve` processes sharing one PostgreSQL database and one Redis
(built on :mod:`tests.deployment`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.deployment import (
    Deployment,
    Node,
    connect,
    deployment,
    make_database,
    register,
    rest,
)
from tests.realtime.conftest import Client
from tests.store.conftest import asyncpg_url, open_store

__all__ = ["Cluster", "deployment", "make_cluster", "make_database"]


@dataclass
class Cluster:
    deployment: Deployment
    nodes: list[Node]

    @property
    def database_url(self) -> str:
        return self.deployment.database_url

    async def user(self, name: str) -> tuple[int, str]:
        return await register(self.nodes[0].base, name)

    async def rest(
        self, node: Node, token: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        return await rest(node.base, token, method, path, **kwargs)

    async def connect(
        self, node: Node, token: str, *, resume: dict[int, int] | None = None
    ) -> Client:
        return await connect(node.ws_url, token, resume=resume or {})


MakeCluster = Callable[..., Coroutine[Any, Any, Cluster]]


@pytest.fixture
def make_cluster(deployment: Deployment) -> MakeCluster:
    """``await make_cluster(n, **settings)`` starts n nodes (the first alone, so it
    migrates before the others start; with ``together=True`` this process migrates the
    database and the nodes start side by side, which is quicker); settings are
    ``PALAVER_*`` names without the prefix, e.g. ``presence_ttl="2"`` or
    ``database_url=...``."""

    async def make(count: int = 2, *, together: bool = False, **settings: str) -> Cluster:
        nodes = [deployment.node(f"n{i}", LOG_LEVEL="warning", **settings) for i in range(count)]
        if together:
            # Migrated here first, the nodes have nothing to race over and start at once.
            store = open_store(asyncpg_url(deployment.database_url))
            await store.connect()
            try:
                await store.migrate()
            finally:
                await store.close()
            await asyncio.gather(*(node.start() for node in nodes))
            return Cluster(deployment, nodes)
        if nodes:
            await nodes[0].start()
        for node in nodes[1:]:
            await node.start()
        return Cluster(deployment, nodes)

    return make
