"""File hashing: the identity of weights and checkpoints, and the checksum of cached entries."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike, length: int | None = 16) -> str:
    """Hex SHA-256 of a file's bytes; ``length`` characters of it (16 tell weight files apart), or all."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    return digest if length is None else digest[:length]
