"""The services of one Palaver process, built from its settings and closed together."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from palaver.broker import create_broker
from palaver.broker.base import Broker
from palaver.config import Settings
from palaver.metrics import Metrics
from palaver.services.audit import Audit
from palaver.services.auth import AuthService
from palaver.services.conversations import ConversationService
from palaver.services.export import ExportService
from palaver.services.mail import Mailer
from palaver.services.messaging import MessagingService
from palaver.services.moderation import ModerationService
from palaver.services.quotas import Quotas
from palaver.services.retention import RetentionJob
from palaver.services.rich import RichMessagingService
from palaver.services.search import SearchIndexer, SearchService
from palaver.services.storage import LocalStorage
from palaver.services.tokens import TokenService
from palaver.services.upload_expiry import UploadExpiryJob
from palaver.services.uploads import UploadService
from palaver.services.users import UserCache
from palaver.store import create_store
from palaver.store.base import Store


@dataclass
class Services:
    """Everything a transport needs; one instance per process, never a module global."""

    settings: Settings
    store: Store
    broker: Broker
    tokens: TokenService
    audit: Audit
    mailer: Mailer
    auth: AuthService
    users: UserCache
    messaging: MessagingService
    conversations: ConversationService
    moderation: ModerationService
    retention: RetentionJob
    metrics: Metrics
    uploads: UploadService
    exports: ExportService
    rich: RichMessagingService
    search: SearchService
    indexer: SearchIndexer
    upload_expiry: UploadExpiryJob
    started_at: float = field(default_factory=time.monotonic)

    @property
    def node_id(self) -> str:
        return self.broker.node_id

    async def start(self) -> None:
        """Connect to the database and the broker."""
        await self.store.connect()
        await self.broker.start()

    async def close(self) -> None:
        await self.retention.stop()
        await self.upload_expiry.stop()
        await self.moderation.close()
        await self.messaging.close()
        await self.indexer.stop()
        await self.broker.close()
        await self.store.close()


def build_services(settings: Settings, *, metrics: Metrics | None = None) -> Services:
    """Wire the services for ``settings`` (the secret key must already be set)."""
    store = create_store(settings.effective_database_url, pool_size=settings.database_pool_size)
    broker = create_broker(settings.redis_url, namespace=settings.redis_namespace)
    tokens = TokenService(
        settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
    )
    audit = Audit(store)
    mailer = Mailer(settings)
    auth = AuthService(settings, store, broker, tokens, audit, mailer)
    metrics = metrics or Metrics()
    users = UserCache(store)
    indexer = SearchIndexer(store)

    def committed(size: int, seconds: float) -> None:
        metrics.group_commit.observe(seconds)
        indexer.wake()

    messaging = MessagingService(
        settings,
        store,
        broker,
        users,
        on_batch=committed,
        on_rate_limited=lambda scope: metrics.rate_limited.labels(scope=scope).inc(),
    )
    conversations = ConversationService(store, broker, messaging, audit)
    quotas = Quotas(broker, lambda scope: metrics.rate_limited.labels(scope=scope).inc())
    uploads = UploadService(
        settings, store, broker, LocalStorage(settings.effective_upload_dir), quotas
    )
    rich = RichMessagingService(settings, store, messaging)
    messaging.resolve_extras = rich.send_extras
    rich.discard_blobs = uploads.discard_blobs
    auth.remove_files = uploads.remove_owned
    auth.account_deleted = conversations.account_deleted
    return Services(
        settings=settings,
        store=store,
        broker=broker,
        tokens=tokens,
        audit=audit,
        mailer=mailer,
        auth=auth,
        users=users,
        messaging=messaging,
        conversations=conversations,
        moderation=ModerationService(settings, store, broker, messaging, conversations, audit),
        retention=RetentionJob(store, settings.history_retention_days),
        metrics=metrics,
        uploads=uploads,
        exports=ExportService(uploads, broker, audit),
        rich=rich,
        search=SearchService(store, quotas),
        indexer=indexer,
        upload_expiry=UploadExpiryJob(uploads),
    )
