"""The audit trail: security and moderation events, in the store and in the log."""

from __future__ import annotations

from typing import Any

import structlog

from palaver.core.models import now_ms
from palaver.store.base import Store

log = structlog.get_logger("palaver.audit")


class Audit:
    """Records one event in the ``audit_log`` table and as a structured log line."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(
        self,
        action: str,
        *,
        actor_id: int | None = None,
        target: str | None = None,
        ip: str | None = None,
        **details: Any,
    ) -> None:
        log.info("audit", action=action, actor_id=actor_id, target=target, ip=ip, **details)
        await self._store.add_audit(
            action, at=now_ms(), actor_id=actor_id, target=target, ip=ip, details=details
        )
