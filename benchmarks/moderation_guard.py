"""What moderation adds to a send: the in-memory check of mutes, blocks and the word
filter that runs before the append (no query). Prints microseconds per send.

    uv run python benchmarks/moderation_guard.py
"""

from __future__ import annotations

import time
from typing import Any

from palaver.core.models import User, now_ms
from palaver.core.wordfilter import compile_filter, normalise_words
from palaver.services.moderation import ModerationState


class _Guard:
    """The guard of :class:`ModerationService` on a bare state (no store, no broker)."""

    def __init__(self, words: list[str]) -> None:
        from palaver.services.moderation import ModerationService

        self.service: Any = object.__new__(ModerationService)
        self.service.state = ModerationState()
        self.service.server_words = normalise_words(words)
        from palaver.core.wordfilter import FilterAction

        self.service.server_action = FilterAction.MASK
        self.service._filter_audited = {}
        self.service._tasks = set()


def measure(words: list[str], text: str, rounds: int = 200_000) -> float:
    guard = _Guard(words).service
    sender = User(1, "ada", None, "Ada", "", False, True, now_ms())
    for i in range(1000):  # mutes and blocks elsewhere, as on a busy server
        guard.state.mutes[(i, i + 1)] = now_ms() + 60_000
    compile_filter(guard.server_words)
    start = time.perf_counter()
    for _ in range(rounds):
        guard.guard_send(sender, 7, text, None)
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    text = "Hello everyone, the build on main is green again, see https://ci.example/42"
    print(f"no words:          {measure([], text):6.2f} µs per send")
    print(f"100 words, clean:  {measure([f'word{i}' for i in range(100)], text):6.2f} µs per send")
    print(f"1000 words, clean: {measure([f'word{i}' for i in range(1000)], text):6.2f} µs per send")


if __name__ == "__main__":
    main()
