"""Where uploaded files live: a small blob interface and the local-disk backend.

Blobs are addressed by random keys that the service makes (:func:`new_key`); a client
never names a path, so no file name can reach the file system.
"""

from __future__ import annotations

import abc
import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

CHUNK = 64 * 1024
_KEY = re.compile(r"^[0-9a-f]{32}$")


def new_key() -> str:
    """A random blob key: 128 bits, so keys are neither guessable nor colliding."""
    return secrets.token_hex(16)


class BlobStorage(abc.ABC):
    """A place for upload blobs. Another backend (object storage, ...) implements these
    four methods and is passed to :class:`~palaver.services.uploads.UploadService`."""

    @abc.abstractmethod
    async def put(self, key: str, source: Path) -> None:
        """Store the file at ``source`` under ``key``; ``source`` may be moved away."""

    @abc.abstractmethod
    def read(self, key: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks; ``FileNotFoundError`` when it is gone."""

    async def read_range(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes of the blob from ``start``; backends that can seek do
        better than this reading from the beginning."""
        skip, left = start, length
        async for chunk in self.read(key):
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            piece = chunk[skip : skip + left]
            skip = 0
            left -= len(piece)
            yield piece
            if left <= 0:
                return

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""

    @abc.abstractmethod
    def scratch_dir(self) -> Path:
        """A local directory for files being received or processed."""


class LocalStorage(BlobStorage):
    """Blobs as files under ``root`` (``root/ab/abcdef...``), with mode 0600 files and
    0700 directories; ``root`` must not be served by any web server."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("malformed blob key")
        return self.root / key[:2] / key

    def scratch_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    async def put(self, key: str, source: Path) -> None:
        target = self._path(key)

        def move() -> None:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(source, 0o600)
            # The scratch directory is on the same file system, so this is a rename:
            # a blob is either absent or complete.
            os.replace(source, target)

        await asyncio.to_thread(move)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def read_range(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        path = self._path(key)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = length
            while left > 0 and (chunk := await asyncio.to_thread(handle.read, min(CHUNK, left))):
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, True)
