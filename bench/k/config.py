"""``[tune]`` / ``--tune`` for ``k=auto``: the harness' keys, parsed and checked. A clusterer's own
keys (its ``tune_keys``) are read by its ``search_space``; here they need only be declared."""

from __future__ import annotations

import math
from dataclasses import dataclass

from clusterbench.core.errors import UserError
from clusterbench.scoring import metrics as M

OBJECTIVES = {"silhouette": "maximize", "calinski_harabasz": "maximize", "davies_bouldin": "minimize"}
SAMPLERS = ("auto", "grid", "tpe", "random")
SAMPLER_ALIASES = {"bruteforce": "grid", "brute_force": "grid", "brute-force": "grid", "exhaustive": "grid"}
TUNE_KEYS = {  # key -> what it does (printed in errors)
    "objective": "silhouette (default), calinski_harabasz, davies_bouldin, or several joined by '+'",
    "select": "multi-objective final point: rank (default) or an objective name",
    "n_trials": "trials in the study in total (default: the grid's size, or 40 for TPE/random)",
    "timeout": "seconds this process works on a study before choosing from the trials finished",
    "k_min": "smallest K tried (default 2)",
    "k_max": "largest K tried (default min(50, N/10))",
    "sampler": "auto (default), grid (= bruteforce), tpe, random",
    "silhouette_sample": "points silhouette is computed on in trials (default 2000)",
    "pca_dims": "PCA dimensions to try before clustering, joined by '+' (0 = none)",
    "max_noise": "noise fraction above which a trial is pruned (default 0.5)",
    "heartbeat": "database storages: seconds between a running trial's heartbeats (default 10; 3 missed = dead)",
    "stale_after": "journal-file storages (no heartbeat): seconds after which a RUNNING trial is dead (default 3600)",
}
NUMBERS = {"n_trials": (int, 1, None), "timeout": (float, 0, None), "k_min": (int, 2, None), "k_max": (int, 2, None),
           "silhouette_sample": (int, 10, None), "max_noise": (float, 0, 1), "heartbeat": (int, 1, None),
           "stale_after": (float, 1, None)}


def _number(value, key: str, cast=int, low=None, high=None):
    try:
        number = cast(value) if cast is float else int(value)
        bad = isinstance(value, bool) or math.isnan(float(value)) or number != float(value)
    except (TypeError, ValueError):
        bad = True
    if bad or (low is not None and number < low) or (high is not None and number > high):
        raise UserError(f"tune {key}={value!r}: expected {'an integer' if cast is int else 'a number'}"
                        + (f" in [{low}, {high if high is not None else 'inf'}]" if low is not None else ""))
    return number


def parse_objectives(value) -> tuple[str, ...]:
    names = [str(v).strip().lower() for v in (value if isinstance(value, list | tuple) else str(value).split("+"))]
    for name in names:
        if name in M.LABEL_METRICS:
            raise UserError(f"objective={name} is a label-based metric: tuning on it would leak the dataset's labels "
                            f"into the result; choose internal criteria: {', '.join(OBJECTIVES)}")
        if name not in OBJECTIVES:
            raise UserError(f"objective={name!r}: unknown; valid: {', '.join(OBJECTIVES)} (or several joined by '+')")
    if len(set(names)) != len(names):
        raise UserError(f"objective={'+'.join(names)}: an objective is listed twice")
    return tuple(names)


def method_keys(clusterers) -> set[str]:
    return {k for name in clusterers.list() for k in clusterers.traits(name).tune_keys}


@dataclass(frozen=True)
class TuneConfig:
    objectives: tuple[str, ...] = ("silhouette",)
    select: str = "rank"
    n_trials: int | None = None
    timeout: float | None = None
    k_min: int = 2
    k_max: int | None = None
    sampler: str = "auto"
    silhouette_sample: int = 2000
    pca_dims: tuple[int, ...] | None = None
    max_noise: float = 0.5
    heartbeat: int = 10
    stale_after: float = 3600.0

    @classmethod
    def parse(cls, tune: dict | None, clusterers) -> TuneConfig:
        from clusterbench.k.semantic_k import SEMANTIC_KEYS

        tune, valid = dict(tune or {}), set(TUNE_KEYS) | set(SEMANTIC_KEYS) | method_keys(clusterers)
        if set(tune) - valid:
            raise UserError(f"unknown tune key(s) {sorted(set(tune) - valid)}; valid: {', '.join(sorted(valid))}")
        kw = {key: _number(tune[key], key, *NUMBERS[key]) for key in NUMBERS if tune.get(key) is not None}
        if "objective" in tune:
            kw["objectives"] = parse_objectives(tune["objective"])
        if "select" in tune:
            kw["select"] = str(tune["select"]).strip().lower()
            if kw["select"] != "rank" and kw["select"] not in kw.get("objectives", cls.objectives):
                raise UserError(f"tune select={kw['select']!r}: expected rank or one of the objectives")
        if kw.get("k_max", math.inf) < kw.get("k_min", 2):
            raise UserError(f"tune k_max={kw['k_max']} is below k_min={kw.get('k_min', 2)}")
        if "sampler" in tune:
            kw["sampler"] = SAMPLER_ALIASES.get(str(tune["sampler"]).strip().lower(), str(tune["sampler"]).strip().lower())
            if kw["sampler"] not in SAMPLERS:
                raise UserError(f"tune sampler={tune['sampler']!r}: expected one of {', '.join(SAMPLERS)} (bruteforce = grid)")
        if tune.get("pca_dims") not in (None, "none"):
            dims = tune["pca_dims"] if isinstance(tune["pca_dims"], list | tuple) else str(tune["pca_dims"]).split("+")
            kw["pca_dims"] = tuple(dict.fromkeys(0 if str(d).lower() == "none" else _number(d, "pca_dims", int, 0) for d in dims))
        return cls(**kw)


def validate_tune(tune: dict | None, cells=()) -> None:
    """Refuse bad ``[tune]`` / ``--tune`` settings before anything runs (exit status 2)."""
    from clusterbench.core.catalog import registries
    from clusterbench.k.semantic_k import check_semantic_cell, parse_semantic

    _, embedders, clusterers = registries()
    TuneConfig.parse(tune, clusterers)
    parse_semantic(tune)
    cells = list(cells)
    declared = {k for c in cells for k in clusterers.traits(c.clusterer).tune_keys}
    if cells and set(tune or {}) & method_keys(clusterers) - declared:
        raise UserError(f"tune key(s) {sorted(set(tune) & method_keys(clusterers) - declared)}: "
                        "no clusterer of this suite declares them")
    for cell in cells:
        check_k_fits_clusterer(cell, clusterers)
        if str(cell.requested_k).startswith("auto:"):
            from clusterbench.k.estimator_spec import check_estimator_cell
            from clusterbench.k.estimators import K_ESTIMATORS

            check_tunable(clusterers, cell.clusterer)
            check_estimator_cell(cell, clusterers, K_ESTIMATORS)
        if cell.requested_k == "auto":
            check_tunable(clusterers, cell.clusterer)
            clusterers.resolve(cell.clusterer).search_space(10**6, 10**4, dict(cell.tune or {}))  # its keys' values
        if cell.requested_k == "semantic":
            check_semantic_cell(cell, embedders)


def check_k_fits_clusterer(cell, clusterers) -> None:
    """A K the cell's clusterer cannot use is refused before anything runs: a clusterer that finds
    its own K (a density clusterer) takes neither a given K nor a semantic one."""
    traits, k, name = clusterers.traits(cell.clusterer), cell.requested_k, cell.clusterer.name
    if k == "semantic" and not traits.takes_k:
        raise UserError(f"k=semantic: clusterer {name!r} finds its own K and takes none, so a semantic K would not be "
                        "used; drop --k semantic for it or use a clusterer that takes K")
    if isinstance(k, int) and not isinstance(k, bool) and not (traits.takes_k or traits.owns_k):
        raise UserError(f"k={k}: clusterer {name!r} finds its own K and takes none; drop --k {k} for it, or run it "
                        "in a command of its own")


def check_tunable(clusterers, spec) -> None:
    if not clusterers.traits(spec).tunable:
        raise UserError(f"k=auto: clusterer {spec.name!r} is not tunable (not refitted per Optuna trial, e.g. it trains "
                        "a network per fit); give k=N")
