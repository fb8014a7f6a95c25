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

from clusterbench.core.atomic import atomic_file, write_json
from clusterbench.core.contracts import Classes, Embedding, EmbedStats
from clusterbench.core.errors import DataWarning
from clusterbench.core.faults import faults_named
from clusterbench.core.hashing import file_sha256


def embedding_key(fingerprint: str, embedder_spec: str, weights_identity: str) -> str:
    text = "\n".join((fingerprint, embedder_spec, weights_identity))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def reduced_key(embedding_cache_key: str, reducer: str, seed: int) -> str:
    """A reduced embedding's key (UMAP output, under ``cache/reduced``): the embedding's + the reducer."""
    return hashlib.sha256(f"{embedding_cache_key}\n{reducer}\nseed={seed}".encode()).hexdigest()[:24]


class EmbeddingCache:
    """Features (and logits) as ``.npy`` files loaded memory-mapped: a large embedding is paged in
    as it is read, not copied into RAM. The JSON record, written last, holds each file's SHA-256."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[dict[str, Path], Path]:
        arrays = {"features": self.root / f"{key}.features.npy", "logits": self.root / f"{key}.logits.npy"}
        return arrays, self.root / f"{key}.json"

    def load(self, key: str) -> Embedding | None:
        """The stored embedding, or None on a miss or a damaged entry (then recomputed)."""
        arrays_paths, record_path = self._paths(key)
        if not (arrays_paths["features"].exists() and record_path.exists()):
            return None
        try:
            record = json.loads(record_path.read_text())
            loaded = {}
            for name, digest in record["sha256"].items():
                path = arrays_paths[name]
                if file_sha256(path, length=None) != digest:
                    raise ValueError(f"checksum mismatch in {path.name}")
                loaded[name] = np.load(path, mmap_mode="r", allow_pickle=False)
            features = loaded["features"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError) as e:
            warnings.warn(f"embedding cache entry {arrays_paths['features']} is damaged ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); recomputing it", DataWarning, stacklevel=2)
            return None
        classes = Classes(**record["classes"]) if record.get("classes") else None
        return Embedding(features, EmbedStats.from_dict(record["stats"]), loaded.get("logits"), classes)

    def store(self, key: str, embedding: Embedding) -> None:
        arrays_paths, record_path = self._paths(key)
        with faults_named(self.root):  # a full or read-only disk: one line naming the cache (atomic_file names each file)
            self.root.mkdir(parents=True, exist_ok=True)
        arrays = {"features": embedding.features}
        if embedding.logits is not None:
            arrays["logits"] = embedding.logits
        digests = {}
        for name, array in arrays.items():
            # np.save on a path would append .npy to the temp name; an open file keeps the rename exact.
            with atomic_file(arrays_paths[name]) as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            digests[name] = file_sha256(arrays_paths[name], length=None)
        classes = None if embedding.classes is None else {"names": embedding.classes.names,
                                                          "wnids": embedding.classes.wnids}
        # written last: its presence marks a complete entry, and its checksums a sound one
        write_json(record_path, {"sha256": digests, "stats": embedding.stats.to_dict(), "classes": classes})
