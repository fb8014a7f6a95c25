"""Weights helpers shared by the torch embedders: file identity, reachability, state dicts."""

from __future__ import annotations

import os

from clusterbench.core.errors import UserError
from clusterbench.core.hashing import file_sha256  # noqa: F401 - the embedders' entry point
from clusterbench.run.net import host_reachable  # noqa: F401 - the embedders' entry point

# Keys that usually wrap the real state dict in training checkpoints.
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net")


def load_state_dict(path: str | os.PathLike) -> dict:
    """A plain ``{name: tensor}`` state dict from a checkpoint file.

    Loads with ``weights_only=True`` (no code execution), unwraps common checkpoint containers
    and strips the ``module.`` prefix that DataParallel/DistributedDataParallel add.
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable or unsafe files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read weights file {path}: {first}") from None
    state = _unwrap(state)
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise UserError(f"weights file {path} does not hold a state dict of tensors")
    return _strip_prefix(state, "module.")


def _unwrap(state):
    while isinstance(state, dict):
        inner = next((state[k] for k in _CONTAINER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    return state


def _strip_prefix(state: dict, prefix: str) -> dict:
    if not all(k.startswith(prefix) for k in state):
        return dict(state)
    return {k[len(prefix) :]: v for k, v in state.items()}


def apply_state_dict(model, state: dict, source: str) -> None:
    """Load ``state`` into ``model`` exactly; any mismatch becomes one readable UserError."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
        detail = "; ".join(lines[:3]) or str(exc).splitlines()[0]
        raise UserError(f"weights {source} do not fit {type(model).__name__}: {detail}") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {_few(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected {_few(result.unexpected_keys)}")
    if problems:
        raise UserError(f"weights {source} do not fit {type(model).__name__}: {'; '.join(problems)}")


def _few(keys: list[str], n: int = 4) -> str:
    shown = ", ".join(keys[:n])
    return f"{shown} (+{len(keys) - n} more)" if len(keys) > n else shown
