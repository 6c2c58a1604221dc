"""Full-text search latency on 1,000,000 messages, on SQLite and on PostgreSQL.

Fills a fresh database with realistic chat text (words, partial words, URLs, file
names, code identifiers, accented words) spread over many conversations, indexes it
with the server's own indexer pass, then runs a few hundred varied searches as one user
who belongs to about 20 conversations, through the search service (membership lookup,
SQL, highlights and snippets: what a request costs minus HTTP). Prints figures; asserts
nothing.

    uv run python benchmarks/search_bench.py                      # both engines
    uv run python benchmarks/search_bench.py --engine sqlite --messages 200000
    uv run python benchmarks/search_bench.py --engine postgres \\
        --postgres postgresql://postgres@127.0.0.1:5432/test

SQLite lives in a temporary directory; PostgreSQL gets a throwaway database created
next to the one named by ``--postgres`` and dropped at the end. ``--sqlite-path`` and
``--pg-database`` keep the filled database instead and reuse it on the next run
(``--reindex`` rebuilds its index):

    uv run python benchmarks/search_bench.py --sqlite-path /var/tmp/search.db \
        --pg-database palaver_search_bench
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from palaver.core.errors import PalaverError
from palaver.services.search import SearchService
from palaver.store.postgres import PostgresStore
from palaver.store.sql import SqlStore
from palaver.store.sqlite import SqliteStore

T0 = 1_763_000_000_000
USERS = 200
MEMBER_OF = 20

WORDS = [
    "the",
    "a",
    "to",
    "and",
    "of",
    "is",
    "in",
    "it",
    "you",
    "that",
    "for",
    "on",
    "this",
    "with",
    "be",
    "are",
    "have",
    "not",
    "we",
    "can",
    "deploy",
    "build",
    "release",
    "merge",
    "review",
    "test",
    "tests",
    "failing",
    "passing",
    "server",
    "client",
    "socket",
    "message",
    "search",
    "index",
    "query",
    "database",
    "postgres",
    "sqlite",
    "redis",
    "cache",
    "latency",
    "throughput",
    "meeting",
    "lunch",
    "tomorrow",
    "today",
    "yesterday",
    "weekend",
    "coffee",
    "please",
    "thanks",
    "sure",
    "maybe",
    "later",
    "issue",
    "ticket",
    "customer",
    "invoice",
    "payment",
    "report",
    "quarterly",
    "budget",
    "design",
    "mockup",
    "screenshot",
    "error",
    "exception",
    "timeout",
    "retry",
    "backoff",
    "config",
    "setting",
    "environment",
    "production",
    "staging",
    "branch",
    "commit",
    "rollback",
    "hotfix",
    "incident",
    "alert",
    "pager",
    "oncall",
    "dashboard",
    "metrics",
    "graph",
]
ACCENTED = [
    "café",
    "naïve",
    "résumé",
    "Zürich",
    "São",
    "Paulo",
    "déjà",
    "vu",
    "façade",
    "Ångström",
    "smörgåsbord",
    "jalapeño",
    "Ærø",
]
DOMAINS = ["example.com", "github.com", "docs.python.org", "intranet.acme.io", "grafana.local"]
EXTENSIONS = ["pdf", "png", "csv", "py", "md", "tar.gz", "docx"]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "te",
    "vo",
    "zi",
    "pa",
    "qu",
    "ex",
    "an",
    "or",
    "el",
    "ul",
    "ri",
    "co",
    "de",
    "fa",
]


def _pseudo_words(rng: random.Random, n: int) -> list[str]:
    """Rare words: names, jargon; most occur a few hundred times in a million messages."""
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(n)]


class TextMaker:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.rare = _pseudo_words(self.rng, 20_000)

    def identifier(self) -> str:
        rng = self.rng
        parts = [rng.choice(WORDS + self.rare[:500]) for _ in range(rng.randint(2, 3))]
        style = rng.randrange(3)
        if style == 0:
            return "_".join(parts)
        if style == 1:
            return "".join(p.capitalize() for p in parts)
        return ".".join(parts)

    def url(self) -> str:
        rng = self.rng
        path = "/".join(rng.choice(self.rare) for _ in range(rng.randint(1, 3)))
        return f"https://{rng.choice(DOMAINS)}/{path}/{rng.randint(1, 99999)}"

    def filename(self) -> str:
        rng = self.rng
        return f"{rng.choice(self.rare)}_{rng.randint(2020, 2026)}.{rng.choice(EXTENSIONS)}"

    def message(self) -> str:
        rng = self.rng
        out: list[str] = []
        for _ in range(rng.randint(4, 18)):
            roll = rng.random()
            if roll < 0.70:
                out.append(rng.choice(WORDS))
            elif roll < 0.86:
                out.append(rng.choice(self.rare))
            elif roll < 0.91:
                out.append(rng.choice(ACCENTED))
            elif roll < 0.95:
                out.append(self.identifier())
            elif roll < 0.98:
                out.append(self.url())
            else:
                out.append(self.filename())
        text = " ".join(out)
        return text[0].upper() + text[1:]


def queries(maker: TextMaker, scope: list[int], n: int) -> list[tuple[str, dict[str, Any]]]:
    """(kind, search arguments) for ``n`` varied searches."""
    rng = random.Random(11)
    out: list[tuple[str, dict[str, Any]]] = []
    kinds = ["word", "rare", "partial", "url", "identifier", "accent", "two words", "in room"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "word":
            q = rng.choice([w for w in WORDS if len(w) >= 3])
        elif kind == "rare":
            q = rng.choice(maker.rare)
        elif kind == "partial":
            word = rng.choice([w for w in WORDS + maker.rare if len(w) >= 6])
            start = rng.randint(0, len(word) - 4)
            q = word[start : start + rng.randint(3, 4)]
        elif kind == "url":
            q = f"{rng.choice(DOMAINS)}/{rng.choice(maker.rare)}"
        elif kind == "identifier":
            q = maker.identifier().lower()
        elif kind == "accent":
            q = rng.choice(["cafe", "naive", "resume", "zurich", "sao paulo", "deja", "angstrom"])
        elif kind == "two words":
            q = f"{rng.choice(WORDS[20:])} {rng.choice(maker.rare)}"
        else:
            q = rng.choice(WORDS[20:])
        args: dict[str, Any] = {"q": q}
        if kind == "in room":
            args["conversation_id"] = rng.choice(scope)
        out.append((kind, args))
    return out


def rows(messages: int, conversations: int) -> Iterator[tuple[Any, ...]]:
    maker = TextMaker()
    seqs = [0] * (conversations + 1)
    rng = random.Random(3)
    for i in range(messages):
        cid = rng.randint(1, conversations)
        seqs[cid] += 1
        yield (
            i + 1,
            cid,
            seqs[cid],
            rng.randint(1, USERS),
            "text",
            maker.message(),
            T0 + i * 1000,
        )


async def fill_sqlite(store: SqliteStore, messages: int, conversations: int) -> None:
    assert store.path is not None
    import sqlite3

    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    _fill_common(db.executemany, conversations)
    db.executemany(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, kind, content, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows(messages, conversations),
    )
    db.execute(
        "UPDATE conversations SET last_seq = (SELECT max(seq) FROM messages m "
        "WHERE m.conversation_id = conversations.id)"
    )
    db.execute("COMMIT")
    db.close()


def _fill_common(executemany: Callable[..., Any], conversations: int) -> None:
    executemany(
        "INSERT INTO users (id, username, username_norm, display_name, password_hash, "
        "is_admin, is_active, created_at) VALUES (?, ?, ?, ?, '', 0, 1, ?)",
        [(u, f"user{u}", f"user{u}", f"User {u}", T0) for u in range(1, USERS + 1)],
    )
    executemany(
        "INSERT INTO conversations (id, kind, name, name_norm, created_at, last_seq, min_seq)"
        " VALUES (?, 'room', ?, ?, ?, 0, 1)",
        [(c, f"room{c}", f"room{c}", T0) for c in range(1, conversations + 1)],
    )
    rng = random.Random(5)
    members = {(c, 1) for c in rng.sample(range(1, conversations + 1), MEMBER_OF)}
    members |= {(rng.randint(1, conversations), rng.randint(2, USERS)) for _ in range(20_000)}
    executemany(
        "INSERT INTO members (conversation_id, user_id, role, joined_at, read_seq, "
        "delivered_seq) VALUES (?, ?, 'member', ?, 0, 0)",
        [(c, u, T0) for c, u in sorted(members)],
    )


async def fill_postgres(url: str, messages: int, conversations: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await _fill_common_pg(conn, conversations)
            batch: list[tuple[Any, ...]] = []
            for row in rows(messages, conversations):
                batch.append(row)
                if len(batch) == 50_000:
                    await _copy_messages(conn, batch)
                    batch = []
            if batch:
                await _copy_messages(conn, batch)
            await conn.execute(
                "UPDATE conversations c SET last_seq = s.top FROM (SELECT conversation_id, "
                "max(seq) AS top FROM messages GROUP BY conversation_id) s "
                "WHERE s.conversation_id = c.id"
            )
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('messages', 'id'), $1)", messages
            )
        await conn.execute("VACUUM ANALYZE messages")
    finally:
        await conn.close()


async def _copy_messages(conn: Any, batch: list[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table(
        "messages",
        records=batch,
        columns=["id", "conversation_id", "seq", "sender_id", "kind", "content", "created_at"],
    )


async def _fill_common_pg(conn: Any, conversations: int) -> None:
    calls: list[tuple[str, list[tuple[Any, ...]]]] = []

    def collect(sql: str, args: Any) -> None:
        calls.append((sql, list(args)))

    _fill_common(collect, conversations)
    for sql, args in calls:
        # Same statements, PostgreSQL placeholders and booleans.
        n = 0

        def mark(_: Any) -> str:
            nonlocal n
            n += 1
            return f"${n}"

        import re

        pg_sql = re.sub(r"\?", mark, sql).replace("0, 1, $5", "false, true, $5")
        await conn.executemany(pg_sql, args)


async def index_all(store: SqlStore) -> tuple[int, float]:
    started = time.perf_counter()
    total = 0
    while True:
        progress = await store.index_pending(batch=5000, now=T0 + 10**12)
        total += progress.indexed
        if progress.watermark == progress.start:
            return total, time.perf_counter() - started


async def measure(store: SqlStore, n_queries: int) -> None:
    # What a running server's indexer does every few minutes.
    await store.refresh_search_stats()
    service = SearchService(store)
    scope = await store.user_conversation_ids(1)
    maker = TextMaker()
    planned = queries(maker, scope, n_queries)
    for _, args in planned[:40]:  # warm caches the way a running server has them
        await service.search(1, **args)
    by_kind: dict[str, list[float]] = {}
    hits = 0
    for kind, args in planned:
        started = time.perf_counter()
        try:
            page = await service.search(1, **args)
            hits += len(page.hits)
        except PalaverError as exc:
            print(f"  refused {args}: {exc.code}")
            continue
        by_kind.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
    every = sorted(t for times in by_kind.values() for t in times)
    print(f"  {len(every)} searches, {hits} results, member of {len(scope)} conversations")
    print(f"  {'kind':<12} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, times in [*by_kind.items(), ("ALL", every)]:
        times = sorted(times)
        print(
            f"  {kind:<12} {len(times):>4} {_pct(times, 50):>8.2f} {_pct(times, 99):>8.2f}"
            f" {times[-1]:>8.2f}"
        )


def _pct(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def run_sqlite(args: argparse.Namespace) -> None:
    if args.sqlite_path:
        await _sqlite_at(Path(args.sqlite_path), args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        await _sqlite_at(Path(tmp) / "bench.db", args)


async def _sqlite_at(path: Path, args: argparse.Namespace) -> None:
    """Fill ``path`` unless it already holds messages (a kept database is reused)."""
    fresh = not await asyncio.to_thread(path.exists)
    store = SqliteStore(f"sqlite:///{path}")
    await store.connect()
    try:
        await store.migrate()
        if fresh:
            started = time.perf_counter()
            await fill_sqlite(store, args.messages, args.conversations)
            print(
                f"SQLite: {args.messages:,} messages inserted in "
                f"{time.perf_counter() - started:.1f} s"
            )
        else:
            print(f"SQLite: reusing {path}")
        if args.reindex:
            await _clear_index(store)
        indexed, seconds = await index_all(store)
        if indexed:
            print(f"  indexed {indexed:,} in {seconds:.1f} s ({indexed / seconds:,.0f}/s)")
        size = (await asyncio.to_thread(path.stat)).st_size
        print(f"  database file {size / 2**20:,.0f} MiB")
        await measure(store, args.queries)
    finally:
        await store.close()


async def _clear_index(store: SqlStore) -> None:
    """Empty the index and rewind the indexer (after a change to what it stores)."""
    from sqlalchemy import text

    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM message_search"))
        await conn.execute(text("UPDATE search_state SET last_id = 0"))


async def run_postgres(args: argparse.Namespace) -> None:
    admin = await asyncpg.connect(args.postgres)
    name = args.pg_database or f"palaver_search_bench_{secrets.token_hex(4)}"
    fresh = not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    if fresh:
        await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
    try:
        store = PostgresStore(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        await store.connect()
        try:
            await store.migrate()
            if fresh:
                started = time.perf_counter()
                await fill_postgres(url, args.messages, args.conversations)
                print(
                    f"PostgreSQL: {args.messages:,} messages inserted in "
                    f"{time.perf_counter() - started:.1f} s"
                )
            else:
                print(f"PostgreSQL: reusing database {name}")
            if args.reindex:
                await _clear_index(store)
            indexed, seconds = await index_all(store)
            conn = await asyncpg.connect(url)
            if indexed:
                print(f"  indexed {indexed:,} in {seconds:.1f} s ({indexed / seconds:,.0f}/s)")
                await conn.execute("VACUUM ANALYZE message_search")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            await conn.close()
            print(f"  database size {size / 2**20:,.0f} MiB")
            await measure(store, args.queries)
        finally:
            await store.close()
    finally:
        if not args.pg_database:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--sqlite-path", help="keep the SQLite database in this file; reuse it if it exists"
    )
    parser.add_argument(
        "--pg-database", help="keep the PostgreSQL database under this name; reuse it if it exists"
    )
    parser.add_argument(
        "--reindex", action="store_true", help="rebuild the index of a reused database"
    )
    args = parser.parse_args()
    if args.engine in ("sqlite", "both"):
        asyncio.run(run_sqlite(args))
    if args.engine in ("postgres", "both"):
        asyncio.run(run_postgres(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
