"""Content-addressed embedding cache under ``<results>/cache/embeddings``.

The key is the dataset fingerprint + canonical embedder spec + weights identity, so a new
image, a changed parameter or other weights all miss; a rerun of a suite hits and skips the
forward pass entirely.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .atomic import atomic_file, write_json


def embedding_key(fingerprint: str, embedder_spec: str, weights_identity: str) -> str:
    text = "\n".join((fingerprint, embedder_spec, weights_identity))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class EmbeddingCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npz", self.root / f"{key}.json"

    def load(self, key: str):
        """(features, logits or None, info) or None on a miss."""
        arrays_path, info_path = self._paths(key)
        if not (arrays_path.exists() and info_path.exists()):
            return None
        try:
            with np.load(arrays_path) as z:
                features = z["features"]
                logits = z["logits"] if "logits" in z.files else None
            info = json.loads(info_path.read_text())
        except (OSError, ValueError, KeyError):
            return None  # unreadable entry: recompute rather than fail the cell
        return features, logits, info

    def store(self, key: str, features: np.ndarray, logits, info: dict) -> None:
        arrays_path, info_path = self._paths(key)
        arrays = {"features": features} if logits is None else {"features": features, "logits": logits}
        # np.savez on a path would append .npz to the temp name; an open file keeps the rename exact.
        with atomic_file(arrays_path) as f:
            np.savez(f, **arrays)
        write_json(info_path, info)  # written last: its presence marks a complete entry
