"""Content-addressed embedding cache under ``<results>/cache/embeddings`` (and, keyed by an
embedding's key plus a reducer, reduced embeddings under ``<results>/cache/reduced``).

The key is the dataset fingerprint + canonical embedder spec + weights identity, so a new
image, a changed parameter or other weights all miss; a rerun of a suite hits and skips the
forward pass entirely. Each entry's JSON records the SHA-256 of its arrays file, written at
store time: a damaged entry is reported in one warning line and recomputed, never half-read.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from clusterbench.core.contracts import Classes, Embedding, EmbedStats
from clusterbench.core.errors import DataWarning
from clusterbench.core.hashing import file_sha256
from clusterbench.run.atomic import atomic_file, write_json


def embedding_key(fingerprint: str, embedder_spec: str, weights_identity: str) -> str:
    text = "\n".join((fingerprint, embedder_spec, weights_identity))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def reduced_key(embedding_cache_key: str, reducer: str, seed: int) -> str:
    """A reduced embedding's key (UMAP output, under ``cache/reduced``): the embedding's + the reducer."""
    return hashlib.sha256(f"{embedding_cache_key}\n{reducer}\nseed={seed}".encode()).hexdigest()[:24]


class EmbeddingCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npz", self.root / f"{key}.json"

    def load(self, key: str) -> Embedding | None:
        """The stored embedding, or None on a miss or a damaged entry (then recomputed)."""
        arrays_path, record_path = self._paths(key)
        if not (arrays_path.exists() and record_path.exists()):
            return None
        try:
            record = json.loads(record_path.read_text())
            if file_sha256(arrays_path, length=None) != record["sha256"]:
                raise ValueError("checksum mismatch")
            with np.load(arrays_path, allow_pickle=False) as z:
                features = z["features"]
                logits = z["logits"] if "logits" in z.files else None
        except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
            warnings.warn(f"embedding cache entry {arrays_path} is damaged ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); recomputing it", DataWarning, stacklevel=2)
            return None
        classes = Classes(**record["classes"]) if record.get("classes") else None
        return Embedding(features, EmbedStats.from_dict(record["stats"]), logits, classes)

    def store(self, key: str, embedding: Embedding) -> None:
        arrays_path, record_path = self._paths(key)
        arrays = {"features": embedding.features}
        if embedding.logits is not None:
            arrays["logits"] = embedding.logits
        # np.savez on a path would append .npz to the temp name; an open file keeps the rename exact.
        with atomic_file(arrays_path) as f:
            np.savez(f, **arrays)
        classes = None if embedding.classes is None else {"names": embedding.classes.names,
                                                          "wnids": embedding.classes.wnids}
        # written last: its presence marks a complete entry, and its checksum a sound one
        write_json(record_path, {"sha256": file_sha256(arrays_path, length=None), "stats": embedding.stats.to_dict(),
                                 "classes": classes})
