"""A cell's search space: K (``k_min..k_max``) for a clusterer taking the grid's ``k``, what the
clusterer's ``search_space`` declares, the PCA dimension (``pca_dims``); what the spec fixes stays."""

from __future__ import annotations

import itertools
import math
import random

from clusterbench.core.errors import UserError
from clusterbench.core.space import Param

GRID_MAX = 100  # an all-discrete space up to this many points is searched exhaustively
DEFAULT_TPE_TRIALS = 40
K_MAX_CAP = 50


def build_space(cell, cfg, clusterers, n: int, dim: int) -> list[Param]:
    cls = clusterers.resolve(cell.clusterer)
    fixed = {k for k, v in cell.clusterer.params.items() if v != "auto"}
    space: list[Param] = []
    if clusterers.traits(cell.clusterer).takes_k and "k" not in fixed:
        k_max = min(cfg.k_max if cfg.k_max is not None else max(cfg.k_min, min(K_MAX_CAP, n // 10)), n - 1)
        if k_max < cfg.k_min:
            raise UserError(f"k=auto: {n} points leave no K in {cfg.k_min}..{k_max} to try")
        space.append(Param.integer("k", cfg.k_min, k_max))
    space += [p for p in cls.search_space(n, dim, dict(cell.tune or {})) if p.name not in fixed and p.name != "k"]
    if cfg.pca_dims:
        too_big = [d for d in cfg.pca_dims if d > min(n, dim)]
        if too_big:
            raise UserError(f"tune pca_dims: {too_big} exceed min(N, D) = {min(n, dim)} of these features")
        space.append(Param.categorical("pca", sorted(cfg.pca_dims)))
    if not space:
        raise UserError(f"k=auto: nothing to tune for {cell.clusterer} (every tunable parameter is fixed in the spec)")
    return space


def choose_sampler(cfg, space: list[Param]) -> tuple[str, int]:
    """(sampler, number of trials in the study)."""
    grid_size = math.prod(p.size for p in space)
    sampler = cfg.sampler if cfg.sampler != "auto" else ("grid" if grid_size <= GRID_MAX else "tpe")
    if sampler != "grid":
        return sampler, cfg.n_trials or DEFAULT_TPE_TRIALS
    if grid_size > 100_000:
        raise UserError(f"sampler=grid: the space has {grid_size} points; use sampler=tpe")
    return sampler, min(cfg.n_trials or grid_size, grid_size)


def grid_points(space: list[Param], n_slots: int, seed: int) -> list[dict]:
    """Slot i's grid point: a seeded permutation of the whole grid, so the first n slots are the
    same points whatever n is (a study grown from 5 to 14 trials adds 9 new points)."""
    names = [p.name for p in space]
    grid = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(p.values() for p in space))]
    order = list(range(len(grid)))
    random.Random(seed).shuffle(order)
    return [grid[i] for i in order[:n_slots]]


def suggest(trial, param: Param):
    if param.choices is not None:
        return trial.suggest_categorical(param.name, list(param.choices))
    return trial.suggest_int(param.name, param.low, param.high, log=param.log)
