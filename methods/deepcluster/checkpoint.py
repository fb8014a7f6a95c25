"""DeepCluster checkpoints: written atomically after every epoch, read with ``weights_only=True``,
checked before a resume.

Beside ``checkpoint.pt`` a sidecar ``checkpoint.pt.json`` records the file's SHA-256 at write
time, and the epoch before's checkpoint is kept as ``checkpoint.prev.pt`` (with its sidecar).
A checkpoint whose bytes no longer match (truncated, overwritten) or that cannot be read is
reported in one warning line, moved aside to ``<name>.damaged`` and the training resumes from
the previous sound checkpoint, or starts again when there is none.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from clusterbench.core.errors import DataWarning, UserError
from clusterbench.core.hashing import file_sha256

from . import model as M
from .config import DeepClusterConfig

CHECKPOINT_FORMAT = "clusterbench-deepcluster"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"  # the epoch before's, kept for when the latest is damaged


def sidecar(path: str | Path) -> Path:
    """Where the SHA-256 of checkpoint ``path`` is recorded."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def previous(path: str | Path) -> Path:
    return Path(path).with_name(PREVIOUS_NAME)


def _state(net) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items() if not k.startswith("top_layer.")}


def save_checkpoint(path: Path, net, optimizer, config: DeepClusterConfig, resolved: dict, epoch: int,
                    assignments: np.ndarray | None, history: list[dict], fingerprint: str | None,
                    online=None) -> None:
    """``net`` is the network that embeds (the weight average where there is one, its training
    network then ``online``, kept to resume from)."""
    import torch

    from clusterbench.core.atomic import atomic_file, write_json

    state = _state(net)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "resolved": dict(resolved),
        "epoch": int(epoch),  # epochs completed
        "model": state,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "assignments": None if assignments is None else torch.from_numpy(np.asarray(assignments, dtype=np.int64)),
        "history": [dict(h) for h in history],
        "fingerprint": fingerprint,
        "online": None if online is None else _state(online),
    }
    path = Path(path)
    if path.exists() and sidecar(path).exists():  # a complete one of ours: it becomes the previous
        os.replace(path, previous(path))
        os.replace(sidecar(path), sidecar(previous(path)))
    with atomic_file(path) as f:
        torch.save(payload, f)
    write_json(sidecar(path), {"sha256": file_sha256(path, length=None), "epoch": int(epoch),
                               "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION})


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint (ours or the official format) with ``weights_only=True``."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"deepcluster: checkpoint {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors of every kind: one line
        raise UserError(f"deepcluster: cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None


def _damage(path: Path) -> tuple[dict | None, str | None]:
    """(the checkpoint, None) when sound, else (None, what is wrong). A file without a sidecar
    (written before sidecars, or killed between the two writes) is sound if it loads."""
    import torch

    record = sidecar(path)
    if record.exists():
        try:
            expected = json.loads(record.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            expected = None  # a damaged sidecar: the checkpoint itself may be fine, loading tells
        if expected is not None and file_sha256(path, length=None) != expected:
            return None, "its SHA-256 differs from the one recorded when it was written"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors of every kind: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"it cannot be read ({type(exc).__name__}{': ' + first if first else ''})"
    if is_our_checkpoint(obj) and not all(key in obj for key in ("config", "resolved", "epoch", "model")):
        return None, "it lacks the model, epoch or configuration"
    return obj, None


def load_for_resume(path: str | Path) -> tuple[dict | None, Path | None]:
    """(the latest sound checkpoint of a training, its file): ``path``, else the previous one;
    (None, None) when neither is there and sound.

    Damaged ones are moved aside to ``<name>.damaged`` and reported in ONE DataWarning line
    naming them and saying what happens instead; never an exception for damage (a checkpoint of
    another configuration is the caller's to refuse)."""
    path = Path(path)
    damaged: list[str] = []
    for candidate in (path, previous(path)):
        if not candidate.exists():
            continue
        obj, problem = _damage(candidate)
        if problem is None:
            if damaged:
                epoch = obj.get("epoch", "?") if isinstance(obj, dict) else "?"
                _warn_damaged(damaged, f"resuming from {candidate} (after epoch {epoch})")
            return obj, candidate
        aside = candidate.with_name(candidate.name + ".damaged")
        os.replace(candidate, aside)
        sidecar(candidate).unlink(missing_ok=True)
        damaged.append(f"{candidate} ({problem}; moved to {aside.name})")
    if damaged:
        _warn_damaged(damaged, "training from the start")
    return None, None


def _warn_damaged(damaged: list[str], then: str) -> None:
    what = "checkpoint " + damaged[0] + " is" if len(damaged) == 1 else "checkpoints " + "; ".join(damaged) + " are"
    warnings.warn(f"deepcluster: {what} damaged; {then}", DataWarning, stacklevel=3)


def is_our_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def model_from_checkpoint(obj: dict):
    """(network, config, resolved) from one of our checkpoints."""
    config = DeepClusterConfig.from_dict(obj["config"])
    resolved = obj["resolved"]
    net = M.build_model(resolved["backbone"], config.sobel, resolved["size"])
    M.load_state(net, obj["model"], "deepcluster checkpoint")
    return net, config, resolved
