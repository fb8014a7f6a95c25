"""``k=auto``: K (and the clusterer's other free parameters) chosen per cell by an Optuna study.

The objective sees **internal criteria only** (silhouette, Calinski-Harabasz, Davies-Bouldin);
a label-based metric as objective is refused (label leakage). Labels are used after the study,
for the NMI-vs-K figure only.

Search space (parameters given in the clusterer's spec stay fixed; the others are tuned):

- K in ``k_min..k_max`` (default ``2..min(50, N/10)``) for every clusterer that takes ``k``;
- agglomerative: also its ``linkage`` (``linkages=`` narrows the candidates);
- hdbscan (finds K itself): ``min_cluster_size`` (log scale, ``min_cluster_size_min..max``) and
  ``min_samples`` (``1..min_samples_max``);
- the reducer's PCA dimension when ``pca_dims=16+32+64`` is given (0 = no PCA).

Samplers: ``grid`` (exhaustive, every point once in a seeded order; the default for an all-discrete space of at
most 100 points, so K alone) or ``tpe`` (the default for larger or mixed spaces; constant-liar
for concurrent workers), or ``random``. Everything is seeded with the cell's seed.

Studies are persistent and shared. The study name is a deterministic function of the cell
(dataset, embedder, clusterer, seed, reducer), the data's fingerprint, the search space, the
objective(s) and the sampler, so a rerun of the same cell resumes its study. ``n_trials`` is the
study's total: each requested trial is a queued (WAITING) Optuna trial, created once under a
lock, and every worker process - on this machine or on others sharing one storage URL - claims
queued trials atomically until none is left. Hence several processes complete exactly the
requested number of trials with no grid point evaluated twice, and a process killed mid-trial
leaves a RUNNING trial that the next run on this host (or, from another host, after
``stale_after`` seconds) marks FAIL and queues again.

Trials reuse the cell's cached embedding and run the clusterer only. Silhouette is exact up to
``silhouette_sample`` points (default 2000) and estimated on that many sampled points above,
the same sample for every trial. With noise (HDBSCAN) the metrics are computed on clustered
points, a trial leaving more than ``max_noise`` (default 0.5) of the points as noise or fewer
than 2 clusters is pruned, and silhouette counts noise points as 0 (``s * (1 - noise)``), so
discarding points is never rewarded.

Several objectives at once (``objective=silhouette+davies_bouldin``) make a multi-objective
study; the final point is chosen on its Pareto front by ``select``: ``rank`` (default: the
smallest sum of per-objective ranks within the front, ties to the first objective) or the name
of one objective (the front's best on it).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clusterbench.core.errors import UserError, one_line_reason
from clusterbench.k.kchoice import KChoice
from clusterbench.run.locks import pid_alive
from clusterbench.scoring import metrics as M

OBJECTIVES = {"silhouette": "maximize", "calinski_harabasz": "maximize", "davies_bouldin": "minimize"}
SAMPLERS = ("auto", "grid", "tpe", "random")
SAMPLER_ALIASES = {"bruteforce": "grid", "brute_force": "grid", "brute-force": "grid", "exhaustive": "grid"}
GRID_MAX = 100  # an all-discrete space up to this many points is searched exhaustively
DEFAULT_TPE_TRIALS = 40
DEFAULT_SILHOUETTE_SAMPLE = 2000
K_MAX_CAP = 50

# key -> what it does (validated by validate_tune, printed in errors)
TUNE_KEYS = {
    "objective": "silhouette (default), calinski_harabasz, davies_bouldin, or several joined by '+'",
    "select": "multi-objective final point: rank (default) or an objective name",
    "n_trials": "trials in the study in total (default: the grid's size, or 40 for TPE/random)",
    "timeout": "seconds this process works on a study before choosing from the trials finished",
    "k_min": "smallest K tried (default 2)",
    "k_max": "largest K tried (default min(50, N/10))",
    "sampler": "auto (default), grid (= bruteforce), tpe, random",
    "silhouette_sample": f"points silhouette is computed on in trials (default {DEFAULT_SILHOUETTE_SAMPLE})",
    "pca_dims": "PCA dimensions to try before clustering, joined by '+' (0 = none)",
    "linkages": "agglomerative linkages to try, joined by '+' (default all four)",
    "min_cluster_size_min": "hdbscan: smallest min_cluster_size tried (default 5)",
    "min_cluster_size_max": "hdbscan: largest min_cluster_size tried (default max(10, N/10) capped at 500)",
    "min_samples_max": "hdbscan: largest min_samples tried (default 50)",
    "max_noise": "noise fraction above which a trial is pruned (default 0.5)",
    "stale_after": "seconds after which another host's RUNNING trial counts as dead (default 3600)",
}

STATE_PREFIX = "clusterbench"  # user attribute on every trial: {slot, host, pid, metrics, ...}


# -- configuration ----------------------------------------------------------------------------------
def _as_list(value, key: str) -> list:
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        items = [v.strip() for v in value.replace(";", "+").split("+") if v.strip()]
    else:
        items = [value]
    if not items:
        raise UserError(f"tune {key}=: empty list")
    return items


def _int(value, key: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UserError(f"tune {key}={value!r}: expected an integer")
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except ValueError:
        raise UserError(f"tune {key}={value!r}: expected an integer") from None
    if minimum is not None and number < minimum:
        raise UserError(f"tune {key}={number}: must be at least {minimum}")
    return number


def _float(value, key: str, low: float | None = None, high: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"tune {key}={value!r}: expected a number") from None
    if isinstance(value, bool) or math.isnan(number) or (low is not None and number < low) or (high is not None and number > high):
        raise UserError(f"tune {key}={value!r}: expected a number in [{low}, {high}]")
    return number


def parse_objectives(value) -> tuple[str, ...]:
    names = [str(v).strip().lower() for v in _as_list(value, "objective")]
    for name in names:
        if name in M.LABEL_METRICS:
            raise UserError(
                f"objective={name} is a label-based metric: tuning on it would leak the dataset's labels into "
                f"the result; choose internal criteria: {', '.join(OBJECTIVES)}"
            )
        if name not in OBJECTIVES:
            raise UserError(f"objective={name!r}: unknown; valid: {', '.join(OBJECTIVES)} (or several joined by '+')")
    if len(set(names)) != len(names):
        raise UserError(f"objective={'+'.join(names)}: an objective is listed twice")
    return tuple(names)


@dataclass(frozen=True)
class TuneConfig:
    objectives: tuple[str, ...] = ("silhouette",)
    select: str = "rank"
    n_trials: int | None = None
    timeout: float | None = None
    k_min: int = 2
    k_max: int | None = None
    sampler: str = "auto"
    silhouette_sample: int = DEFAULT_SILHOUETTE_SAMPLE
    pca_dims: tuple[int, ...] | None = None
    linkages: tuple[str, ...] | None = None
    min_cluster_size_min: int = 5
    min_cluster_size_max: int | None = None
    min_samples_max: int = 50
    max_noise: float = 0.5
    stale_after: float = 3600.0

    @classmethod
    def parse(cls, tune: dict | None) -> TuneConfig:
        from clusterbench.k.semantic_k import SEMANTIC_KEYS

        tune = dict(tune or {})
        unknown = sorted(set(tune) - set(TUNE_KEYS) - set(SEMANTIC_KEYS))
        if unknown:
            valid = ", ".join(sorted(set(TUNE_KEYS) | set(SEMANTIC_KEYS)))
            raise UserError(f"unknown tune key(s) {unknown}; valid: {valid}")
        kw: dict = {}
        if "objective" in tune:
            kw["objectives"] = parse_objectives(tune["objective"])
        objectives = kw.get("objectives", cls.objectives)
        if "select" in tune:
            select = str(tune["select"]).strip().lower()
            if select != "rank" and select not in objectives:
                raise UserError(f"tune select={select!r}: expected rank or one of the objectives ({', '.join(objectives)})")
            kw["select"] = select
        if "n_trials" in tune:
            kw["n_trials"] = _int(tune["n_trials"], "n_trials", 1)
        if "timeout" in tune and tune["timeout"] is not None:
            kw["timeout"] = _float(tune["timeout"], "timeout", 0.0)
        for key in ("k_min", "k_max"):
            if key in tune and tune[key] is not None:
                kw[key] = _int(tune[key], key, 2)
        if "k_max" in kw and kw["k_max"] < kw.get("k_min", 2):
            raise UserError(f"tune k_max={kw['k_max']} is below k_min={kw.get('k_min', 2)}")
        if "sampler" in tune:
            sampler = str(tune["sampler"]).strip().lower()
            sampler = SAMPLER_ALIASES.get(sampler, sampler)
            if sampler not in SAMPLERS:
                raise UserError(f"tune sampler={tune['sampler']!r}: expected one of {', '.join(SAMPLERS)} (bruteforce = grid)")
            kw["sampler"] = sampler
        if "silhouette_sample" in tune:
            kw["silhouette_sample"] = _int(tune["silhouette_sample"], "silhouette_sample", 10)
        if "pca_dims" in tune and tune["pca_dims"] not in (None, "none"):
            dims = []
            for v in _as_list(tune["pca_dims"], "pca_dims"):
                dims.append(0 if str(v).lower() == "none" else _int(v, "pca_dims", 0))
            kw["pca_dims"] = tuple(dict.fromkeys(dims))
        if "linkages" in tune:
            from clusterbench.methods.clusterers.agglomerative import LINKAGES

            links = [str(v).lower() for v in _as_list(tune["linkages"], "linkages")]
            bad = [v for v in links if v not in LINKAGES]
            if bad:
                raise UserError(f"tune linkages: {bad} unknown; valid: {', '.join(LINKAGES)}")
            kw["linkages"] = tuple(dict.fromkeys(links))
        for key, minimum in (("min_cluster_size_min", 2), ("min_cluster_size_max", 2), ("min_samples_max", 1)):
            if key in tune and tune[key] is not None:
                kw[key] = _int(tune[key], key, minimum)
        if "max_noise" in tune:
            kw["max_noise"] = _float(tune["max_noise"], "max_noise", 0.0, 1.0)
        if "stale_after" in tune:
            kw["stale_after"] = _float(tune["stale_after"], "stale_after", 1.0)
        return cls(**kw)


def validate_tune(tune: dict | None, cells=()) -> None:
    """Refuse bad ``[tune]`` / ``--tune`` settings before anything runs (exit status 2)."""
    from clusterbench.k.semantic_k import check_semantic_cell, parse_semantic

    TuneConfig.parse(tune)
    parse_semantic(tune)
    from clusterbench.run.runner import registries

    _, embedders, clusterers = registries()
    for cell in cells:
        k = cell.requested_k
        if k not in ("auto", "semantic"):
            continue
        if k == "auto" and getattr(clusterers.get(cell.clusterer.name), "needs_context", False):
            raise UserError(f"k=auto: clusterer {cell.clusterer.name!r} trains a network per fit, so it is not tuned "
                            "by Optuna; give k=N")
        if k == "semantic":
            check_semantic_cell(cell, embedders)


# -- search space -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    choices: tuple | None = None
    low: int = 0
    high: int = 0
    log: bool = False

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        return trial.suggest_int(self.name, self.low, self.high, log=self.log)

    def values(self) -> list:
        return list(self.choices) if self.choices is not None else list(range(self.low, self.high + 1))

    @property
    def size(self) -> int:
        return len(self.choices) if self.choices is not None else self.high - self.low + 1

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {{{','.join(str(c) for c in self.choices)}}}"
        return f"{self.name}={self.low}..{self.high}" + (" (log)" if self.log else "")


def build_space(cell, cfg: TuneConfig, clusterers, n: int, dim: int) -> list[Param]:
    name = cell.clusterer.name
    fixed = {k: v for k, v in cell.clusterer.params.items() if v != "auto"}
    space: list[Param] = []
    if clusterers.accepts(name, "k") and "k" not in fixed:
        k_max = cfg.k_max if cfg.k_max is not None else max(cfg.k_min, min(K_MAX_CAP, n // 10))
        k_max = min(k_max, n - 1)
        if k_max < cfg.k_min:
            raise UserError(f"k=auto: {n} points leave no K in {cfg.k_min}..{k_max} to try")
        space.append(Param("k", low=cfg.k_min, high=k_max))
    if name == "agglomerative" and "linkage" not in fixed:
        from clusterbench.methods.clusterers.agglomerative import LINKAGES

        space.append(Param("linkage", choices=cfg.linkages or LINKAGES))
    if name == "hdbscan":
        if "min_cluster_size" not in fixed:
            high = cfg.min_cluster_size_max or max(10, min(500, n // 10))
            high = min(high, n)
            if high <= cfg.min_cluster_size_min:
                raise UserError(f"k=auto: hdbscan min_cluster_size range {cfg.min_cluster_size_min}..{high} is empty for {n} points")
            space.append(Param("min_cluster_size", low=cfg.min_cluster_size_min, high=high, log=True))
        if "min_samples" not in fixed:
            space.append(Param("min_samples", low=1, high=max(2, min(cfg.min_samples_max, n - 1)), log=True))
    if cfg.pca_dims:
        too_big = [d for d in cfg.pca_dims if d > min(n, dim)]
        if too_big:
            raise UserError(f"tune pca_dims: {too_big} exceed min(N, D) = {min(n, dim)} of these features")
        space.append(Param("pca", choices=tuple(sorted(cfg.pca_dims))))
    if not space:
        raise UserError(f"k=auto: nothing to tune for {cell.clusterer} (every tunable parameter is fixed in the spec)")
    return space


def choose_sampler(cfg: TuneConfig, space: list[Param]) -> tuple[str, int]:
    """(sampler, number of trials in the study)."""
    grid_size = math.prod(p.size for p in space)
    sampler = cfg.sampler
    if sampler == "auto":
        sampler = "grid" if grid_size <= GRID_MAX else "tpe"
    if sampler == "grid":
        if grid_size > 100_000:
            raise UserError(f"sampler=grid: the space has {grid_size} points; use sampler=tpe")
        return sampler, min(cfg.n_trials or grid_size, grid_size)
    return sampler, cfg.n_trials or DEFAULT_TPE_TRIALS


def grid_points(space: list[Param], n_slots: int, seed: int) -> list[dict]:
    """Slot i's grid point: a seeded permutation of the whole grid, so the first n slots are the
    same points whatever n is (a study grown from 5 to 14 trials adds 9 new points)."""
    grid = [dict(zip([p.name for p in space], combo, strict=True)) for combo in itertools.product(*(p.values() for p in space))]
    order = list(range(len(grid)))
    random.Random(seed).shuffle(order)
    return [grid[i] for i in order[:n_slots]]


# -- storage ---------------------------------------------------------------------------------------
def default_storage_url(results_dir) -> str:
    return f"sqlite:///{(Path(results_dir or 'results') / 'optuna.db').resolve()}"


def redact(url: str) -> str:
    """The storage URL without its password (it goes into MLflow params)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def open_storage(url: str):
    import optuna

    path = _sqlite_path(url)
    kwargs: dict = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 120}}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs = {"pool_pre_ping": True}
    last = None
    for attempt in range(5):  # two processes creating the schema of a new file at once: retry
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            if path is not None:
                _sqlite_wal(storage)
            return storage
        except ImportError as e:
            module = getattr(e.__cause__, "name", None) or e.name or "?"
            raise UserError(f"optuna storage {redact(url)}: its database driver (Python module {module!r}) is not installed; "
                            "PostgreSQL: pip install 'psycopg[binary]' (postgresql://) or psycopg2-binary "
                            "(postgresql+psycopg2://); MySQL: pip install pymysql (mysql+pymysql://)") from None
        except Exception as e:  # noqa: BLE001 - store problems of any kind get one line
            last = e
            time.sleep(0.2 * (attempt + 1))
    first = str(last).strip().splitlines()[0] if str(last).strip() else ""
    raise UserError(f"optuna storage {redact(url)}: {type(last).__name__}: {first}")


def _sqlite_wal(storage) -> None:
    """Write-ahead log, synced at checkpoints: a trial's few commits cost well under a
    millisecond instead of an fsync each, and readers never wait for a writer."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened while creating the schema get the settings too


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    with open(f"{path}.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class StudyHandle:
    """One study in one storage, with the locking that makes concurrent workers safe.

    On sqlite the setup and every claim of a queued trial run under an fcntl lock next to the
    database file (sqlite's deferred transactions would let two processes claim one trial). On
    a server database the setup runs under a lock study (``NAME#lock``, created atomically by
    its unique name) and claims rely on Optuna's ``SELECT ... FOR UPDATE``.
    """

    LOCK_STALE = 120.0

    def __init__(self, url: str, name: str):
        self.url, self.name = url, name
        self.storage = open_storage(url)
        self.sqlite_path = _sqlite_path(url)
        self.host, self.pid = socket.gethostname(), os.getpid()

    @contextlib.contextmanager
    def setup_lock(self):
        if self.sqlite_path is not None:
            with _file_lock(self.sqlite_path):
                yield
            return
        if self.url.startswith("sqlite"):
            yield
            return
        yield from self._study_lock()

    def _study_lock(self):
        import optuna

        lock_name, first_seen, deadline = f"{self.name}#lock", {}, time.monotonic() + 10 * self.LOCK_STALE
        while True:
            try:
                lock_id = self.storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], lock_name)
                self.storage.set_study_user_attr(lock_id, "holder", {"host": self.host, "pid": self.pid, "time": time.time()})
                break
            except optuna.exceptions.DuplicatedStudyError:
                with contextlib.suppress(KeyError):
                    held = self.storage.get_study_id_from_name(lock_name)
                    holder = self.storage.get_study_user_attrs(held).get("holder")
                    seen = first_seen.setdefault(held, time.time())
                    age = time.time() - (holder["time"] if holder else seen)
                    dead = holder and holder["host"] == self.host and not pid_alive(int(holder["pid"]))
                    if dead or age > self.LOCK_STALE:
                        with contextlib.suppress(Exception):
                            self.storage.delete_study(held)
                        continue
                if time.monotonic() > deadline:
                    raise UserError(f"optuna study {self.name}: its setup lock stayed taken; delete study {lock_name}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.storage.delete_study(lock_id)

    def claim_lock(self):
        return _file_lock(self.sqlite_path) if self.sqlite_path is not None else contextlib.nullcontext()


# -- the tuner -------------------------------------------------------------------------------------
class _Infeasible(Exception):
    """A trial whose result cannot be scored (pruned, with the reason recorded)."""


def _trial_state(trial) -> dict:
    return dict(trial.user_attrs.get(STATE_PREFIX, {}))


def _trial_k(trial) -> int | None:
    if "k" in trial.params:
        return int(trial.params["k"])
    found = _trial_state(trial).get("n_clusters")
    return None if found is None else int(found)


@contextlib.contextmanager
def _quiet_optuna():
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            yield
        finally:
            optuna.logging.set_verbosity(before)


class Tuner:
    """Tunes one cell: builds the space, prepares the shared study, works on it, chooses."""

    def __init__(self, cell, data, X, clusterers, storage_url: str, log=None):
        self.cell, self.data, self.clusterers = cell, data, clusterers
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.cfg = TuneConfig.parse(cell.tune)
        if getattr(clusterers.get(cell.clusterer.name), "needs_context", False):
            raise UserError(f"k=auto: clusterer {cell.clusterer.name!r} trains a network per fit, so it is not tuned "
                            "by Optuna; give k=N")
        n, dim = self.X.shape
        if n < 3:
            raise UserError(f"k=auto: {n} points are too few to choose K")
        self.space = build_space(cell, self.cfg, clusterers, n, dim)
        self.sampler_kind, self.n_slots = choose_sampler(self.cfg, self.space)
        self.directions = [OBJECTIVES[o] for o in self.cfg.objectives]
        self.url = storage_url
        self.study_name = self._study_name()
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.labels: dict[int, np.ndarray] = {}  # trial number -> assignment, for the figure
        self._reduced: dict[int, np.ndarray] = {}
        self.run_here: list[int] = []

    # identity ---------------------------------------------------------------------------------
    def _study_name(self) -> str:
        c = self.cell
        reduce = c.reduce.describe() if c.reduce else "none"
        ident = json.dumps({
            "dataset": str(c.dataset), "embedder": str(c.embedder), "clusterer": str(c.clusterer), "seed": c.seed,
            "reduce": reduce, "data": getattr(self.data, "fingerprint", None), "shape": list(self.X.shape),
            "space": [p.describe() for p in self.space], "objectives": list(self.cfg.objectives),
            "sampler": self.sampler_kind, "silhouette_sample": self.cfg.silhouette_sample, "max_noise": self.cfg.max_noise,
        }, sort_keys=True)
        digest = hashlib.sha256(ident.encode()).hexdigest()[:10]
        return (f"clusterbench|{c.dataset}|{c.embedder}|{c.clusterer}|seed={c.seed}|reduce={reduce}"
                f"|{'+'.join(self.cfg.objectives)}|{self.sampler_kind}|{digest}")

    def _sampler(self, slot: int = 0):
        import optuna

        seed = int(self.cell.seed) * 100_003 + slot  # per slot: concurrent workers do not propose alike
        if self.sampler_kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        return optuna.samplers.RandomSampler(seed=seed)  # grid slots carry all their parameters

    # study setup ------------------------------------------------------------------------------
    def prepare(self, force: bool = False):
        import optuna

        self.handle = StudyHandle(self.url, self.study_name)
        storage = self.handle.storage
        with self.handle.setup_lock():
            if force:
                with contextlib.suppress(KeyError):
                    optuna.delete_study(study_name=self.study_name, storage=storage)
            try:
                self.study = optuna.create_study(storage=storage, study_name=self.study_name,
                                                 directions=self.directions, sampler=self._sampler())
                self.study.set_metric_names(list(self.cfg.objectives))
                for key, value in {"cell": self.cell.key, "objectives": list(self.cfg.objectives),
                                   "sampler": self.sampler_kind, "search_space": [p.describe() for p in self.space],
                                   "silhouette_sample": self.cfg.silhouette_sample, "max_noise": self.cfg.max_noise,
                                   "n_points": int(self.X.shape[0])}.items():
                    self.study.set_user_attr(key, value)
                created = True
            except optuna.exceptions.DuplicatedStudyError:
                self.study = optuna.load_study(study_name=self.study_name, storage=storage, sampler=self._sampler())
                created = False
            self.study_id = storage.get_study_id_from_name(self.study_name)
            self._recover_orphans()
            added = self._top_up()
        done = len(self.finished_trials())
        verb = "new study" if created else "resuming study"
        self.log(f"tuning {self.cell.key}: {verb} {self.study_name!r} ({self.sampler_kind}, {self.n_slots} trials, "
                 f"{done} finished earlier, {added} queued now)")

    def _orphans(self):
        import optuna

        now = time.time()
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            state = _trial_state(t)
            if state.get("host") == self.handle.host:
                if state.get("pid") is not None and int(state["pid"]) != self.handle.pid and not pid_alive(int(state["pid"])):
                    yield t, f"worker process {state['pid']} on {state['host']} died"
            elif t.datetime_start is not None and now - t.datetime_start.timestamp() > self.cfg.stale_after:
                yield t, f"running for more than stale_after={self.cfg.stale_after:g} s on {state.get('host', '?')}"

    def _recover_orphans(self) -> int:
        """RUNNING trials whose worker is gone become FAIL and their slot is queued again."""
        import optuna

        count = 0
        storage = self.handle.storage
        for t, why in list(self._orphans()):
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number)
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                storage.set_trial_user_attr(trial_id, STATE_PREFIX, {**_trial_state(t), "orphaned": why})
                storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
                self._requeue(t)
                count += 1
        if count:
            self.log(f"tuning: {count} trial(s) left RUNNING by a dead worker marked FAIL and queued again")
        return count

    def _requeue(self, t) -> None:
        names = {p.name for p in self.space}
        params = dict(t.params) if set(t.params) == names else dict(t.system_attrs.get("fixed_params", {}))
        self.study.enqueue_trial(params, user_attrs={STATE_PREFIX: {"slot": _trial_state(t).get("slot"), "retry_of": t.number}})

    def _top_up(self) -> int:
        """Queue the slots not yet in the study (all of them for a new study)."""
        slots = {_trial_state(t).get("slot") for t in self.study.get_trials(deepcopy=False)}
        missing = [i for i in range(self.n_slots) if i not in slots]
        if not missing:
            return 0
        points = grid_points(self.space, self.n_slots, self.cell.seed) if self.sampler_kind == "grid" else None
        for i in missing:
            self.study.enqueue_trial(points[i] if points else {}, user_attrs={STATE_PREFIX: {"slot": i}})
        return len(missing)

    # working ------------------------------------------------------------------------------------
    def _claim(self) -> int | None:
        import optuna

        storage = self.handle.storage
        for attempt in range(50):
            try:
                with self.handle.claim_lock():
                    waiting = storage.get_all_trials(self.study_id, deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
                    for t in sorted(waiting, key=lambda t: t.number):
                        trial_id = storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number)
                        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                            if storage.set_trial_state_values(trial_id, optuna.trial.TrialState.RUNNING):
                                return trial_id
                    return None
            except optuna.exceptions.StorageInternalError:
                time.sleep(0.05 * (attempt + 1))  # a busy database: try again
        raise UserError(f"optuna storage {redact(self.url)}: could not claim a trial (database busy)")

    def work(self, timeout: float | None = None) -> None:
        import optuna

        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            trial_id = self._claim()
            if trial_id is None:
                if self._wait_for_others(deadline):
                    continue
                return
            frozen = self.handle.storage.get_trial(trial_id)
            self.study.sampler = self._sampler(_trial_state(frozen).get("slot") or 0)
            trial = optuna.Trial(self.study, trial_id)
            state = {**_trial_state(frozen), "host": self.handle.host, "pid": self.handle.pid}
            trial.set_user_attr(STATE_PREFIX, state)
            try:
                params = {p.name: p.suggest(trial) for p in self.space}
                values, extra = self._evaluate(trial.number, params)
            except KeyboardInterrupt:
                self._finish(trial, {**state, "error": "interrupted"}, optuna.trial.TrialState.FAIL)
                self._requeue(self.handle.storage.get_trial(trial_id))
                raise
            except _Infeasible as e:
                self._finish(trial, {**state, "reason": str(e)}, optuna.trial.TrialState.PRUNED)
            except Exception as e:  # noqa: BLE001 - a failing trial is recorded as FAIL; the study goes on
                self._finish(trial, {**state, "error": one_line_reason(e)}, optuna.trial.TrialState.FAIL)
            else:
                self._finish(trial, {**state, **extra}, optuna.trial.TrialState.COMPLETE, values)
            self.run_here.append(trial.number)

    def _finish(self, trial, state: dict, outcome, values=None) -> None:
        import optuna

        try:
            trial.set_user_attr(STATE_PREFIX, state)
            if outcome == optuna.trial.TrialState.COMPLETE:
                self.study.tell(trial, values)
            else:
                self.study.tell(trial, state=outcome)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
            if isinstance(e, ValueError) and "Cannot tell" not in str(e):
                raise
            self.log(f"tuning: trial {trial.number} was meanwhile declared dead by another worker; its result is dropped")

    def _wait_for_others(self, deadline) -> bool:
        """No queued trial is left: wait while other workers still run trials of this study.
        True when trials were queued again (a dead worker's), so there is more to do."""
        import optuna

        announced = False
        while deadline is None or time.monotonic() < deadline:
            running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if not running:
                return False
            if any(True for _ in self._orphans()):
                with self.handle.setup_lock():
                    if self._recover_orphans():
                        return True
            if not announced:
                self.log(f"tuning: waiting for {len(running)} trial(s) running in other workers")
                announced = True
            time.sleep(0.25)
        return False

    def _features(self, pca: int | None) -> np.ndarray:
        if not pca:
            return self.X
        if pca not in self._reduced:
            from clusterbench.scoring.reduce import Reducer

            self._reduced[pca] = Reducer(pca=pca, seed=self.cell.seed).fit_transform(self.X)
        return self._reduced[pca]

    def _evaluate(self, number: int, params: dict) -> tuple[list[float], dict]:
        X = self._features(params.get("pca"))
        overrides = {k: v for k, v in params.items() if k != "pca"}
        if self.clusterers.accepts(self.cell.clusterer.name, "seed") and "seed" not in self.cell.clusterer.params:
            overrides["seed"] = self.cell.seed
        start = time.perf_counter()
        labels = np.asarray(self.clusterers.create(self.cell.clusterer, **overrides).fit_predict(X))
        seconds = time.perf_counter() - start
        stats = M.cluster_stats(labels)
        extra = {"n_clusters": stats["n_clusters"], "noise_fraction": stats["noise_fraction"], "seconds": seconds}
        if len(labels) * max(1, len(self.labels) + 1) <= 50_000_000:
            self.labels[number] = labels
        if stats["n_clusters"] < 2:
            raise _Infeasible(f"{stats['n_clusters']} cluster(s) found")
        if stats["noise_fraction"] > self.cfg.max_noise:
            raise _Infeasible(f"noise fraction {stats['noise_fraction']:.2f} > max_noise={self.cfg.max_noise}")
        keep = labels >= 0
        internal = M.internal_metrics(X[keep], labels[keep], sample_size=self.cfg.silhouette_sample, seed=self.cell.seed)
        if internal["silhouette"] is None:
            raise _Infeasible("internal metrics undefined (as many clusters as points)")
        internal["silhouette"] = internal["silhouette"] * (1.0 - stats["noise_fraction"])  # noise scores 0
        extra.update({k: internal[k] for k in (*OBJECTIVES, "silhouette_sample_size")})
        return [float(internal[o]) for o in self.cfg.objectives], extra

    # choosing ---------------------------------------------------------------------------------
    def finished_trials(self):
        return [t for t in self.study.get_trials(deepcopy=False) if t.state.is_finished() and "orphaned" not in _trial_state(t)]

    def choose(self):
        import optuna

        trials = self.study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            failed = [t for t in trials if t.state.is_finished()]
            why = next((_trial_state(t).get("error") or _trial_state(t).get("reason") for t in failed
                        if _trial_state(t).get("error") or _trial_state(t).get("reason")), "none finished")
            raise UserError(f"k=auto: no trial of study {self.study_name!r} completed "
                            f"({len(failed)} failed or pruned; first reason: {why})")
        sign = [1.0 if d == "maximize" else -1.0 for d in self.directions]

        def tie(t):
            return (_trial_k(t) or 0, t.number)

        if len(self.directions) == 1:
            return min(complete, key=lambda t: (-sign[0] * t.values[0], *tie(t)))
        front = [t for t in complete if not any(
            all(s * o.values[i] >= s * t.values[i] for i, s in enumerate(sign))
            and any(s * o.values[i] > s * t.values[i] for i, s in enumerate(sign)) for o in complete)]
        if self.cfg.select != "rank":
            i = self.cfg.objectives.index(self.cfg.select)
            return min(front, key=lambda t: (-sign[i] * t.values[i], *tie(t)))
        ranks = {t.number: 0 for t in front}
        for i, s in enumerate(sign):
            for r, t in enumerate(sorted(front, key=lambda t: -s * t.values[i])):
                ranks[t.number] += r
        return min(front, key=lambda t: (ranks[t.number], -sign[0] * t.values[0], *tie(t)))

    def counts(self) -> dict:
        import optuna

        finished = self.finished_trials()
        by = {s: sum(t.state == s for t in finished) for s in (optuna.trial.TrialState.COMPLETE,
                                                                 optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)}
        return {"n_trials": len(finished), "n_trials_complete": by[optuna.trial.TrialState.COMPLETE],
                "n_trials_failed": by[optuna.trial.TrialState.FAIL], "n_trials_pruned": by[optuna.trial.TrialState.PRUNED]}

    # history ----------------------------------------------------------------------------------
    def history(self) -> list[dict]:
        rows = []
        for t in sorted(self.finished_trials(), key=lambda t: t.number):
            state = _trial_state(t)
            rows.append({"number": t.number, "state": t.state.name, "params": dict(t.params), "k": _trial_k(t),
                         "values": list(t.values) if t.values else None,
                         **{k: state.get(k) for k in ("slot", "host", "pid", "n_clusters", "noise_fraction", "seconds",
                                                      *OBJECTIVES, "error", "reason") if state.get(k) is not None}})
        return rows

    def posthoc_nmi(self, rows: list[dict]) -> dict[int, float]:
        """NMI vs the labels for each completed trial, after the study and for the figure only.
        Assignments come from this process' trials, or are recomputed for trials run elsewhere."""
        truth = getattr(self.data, "labels", None)
        if truth is None:
            return {}
        from sklearn.metrics import normalized_mutual_info_score

        out = {}
        for row in rows:
            if row["state"] != "COMPLETE":
                continue
            labels = self.labels.get(row["number"])
            if labels is None:
                try:
                    params = row["params"]
                    overrides = {k: v for k, v in params.items() if k != "pca"}
                    if self.clusterers.accepts(self.cell.clusterer.name, "seed") and "seed" not in self.cell.clusterer.params:
                        overrides["seed"] = self.cell.seed
                    labels = self.clusterers.create(self.cell.clusterer, **overrides).fit_predict(self._features(params.get("pca")))
                except Exception:  # noqa: BLE001 - the figure does without this point
                    continue
            labels = np.asarray(labels)
            grouped = np.where(labels < 0, labels.max(initial=-1) + 1, labels)
            out[row["number"]] = float(normalized_mutual_info_score(truth, grouped, average_method=M.NMI_AVERAGE))
        return out

    def figure(self, rows: list[dict], nmi: dict[int, float], best_number: int):
        from matplotlib.figure import Figure

        objectives = self.cfg.objectives
        fig = Figure(figsize=(7, 3.6 * len(objectives)), constrained_layout=True)
        axes = fig.subplots(len(objectives), 1, squeeze=False)[:, 0]
        complete = [r for r in rows if r["state"] == "COMPLETE" and r["k"] is not None]
        best = next((r for r in complete if r["number"] == best_number), None)
        groups = sorted({tuple((k, v) for k, v in r["params"].items() if k not in ("k", "min_cluster_size", "min_samples"))
                         for r in complete})
        for i, (ax, name) in enumerate(zip(axes, objectives, strict=True)):
            for group in groups:
                pts = sorted((r["k"], r["values"][i]) for r in complete
                             if tuple((k, v) for k, v in r["params"].items() if k not in ("k", "min_cluster_size", "min_samples")) == group)
                label = ", ".join(f"{k}={v}" for k, v in group) or name
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, "o-" if len(groups) == 1 and "k" in complete[0]["params"] else "o", ms=4, label=label)
            if best is not None:
                ax.axvline(best["k"], color="k", ls="--", lw=1, label=f"chosen K={best['k']}")
            xlabel = "K" if complete and "k" in complete[0]["params"] else "K found (clusters)"
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{name} ({OBJECTIVES[name]}d)" + (" × (1 − noise)" if name == "silhouette" and self.cell.clusterer.name == "hdbscan" else ""))
            if nmi:
                pts = sorted((r["k"], nmi[r["number"]]) for r in complete if r["number"] in nmi)
                other = ax.twinx()  # same panel and K axis, its own scale
                xs, ys = zip(*pts, strict=True)
                line = len(groups) == 1 and "k" in complete[0]["params"]  # one point per K: join them
                other.plot(xs, ys, "s:" if line else "s", color="tab:red", ms=3, alpha=0.8,
                           label="NMI vs labels (after the fact; not used)")
                other.set_ylabel("NMI (labels, figure only)", color="tab:red")
                other.legend(loc="lower right", fontsize=7)
            ax.legend(loc="best", fontsize=7)
            ax.grid(alpha=0.3)
        axes[0].set_title(f"{self.cell.dataset} / {self.cell.embedder} / {self.cell.clusterer}: {self.sampler_kind}, "
                          f"{len(rows)} trials", fontsize=9)
        return fig


def tune_cell(cell, data, X, clusterers, tracker=None, run_id=None, results_dir=None, storage=None,
              force: bool = False, log=None, **_) -> KChoice:
    """Run (or resume, or join) the cell's study and return the chosen parameters."""
    with _quiet_optuna():
        tuner = Tuner(cell, data, X, clusterers, storage or default_storage_url(results_dir), log=log)
        tuner.prepare(force=force)
        tuner.work(timeout=tuner.cfg.timeout)
        best = tuner.choose()
        counts = tuner.counts()
        rows = tuner.history()

    k = _trial_k(best)
    tuned = {k_: v for k_, v in best.params.items() if k_ not in ("k", "pca")}
    overrides = {k_: v for k_, v in best.params.items() if k_ != "pca"}
    params = {
        "k": k, "k_source": "optuna", "objective": "+".join(tuner.cfg.objectives), "sampler": tuner.sampler_kind,
        **counts, "n_trials_requested": tuner.n_slots, "n_trials_run_now": len(tuner.run_here),
        "study_name": tuner.study_name, "optuna_storage": redact(tuner.url), "best_trial": best.number,
        "search_space": "; ".join(p.describe() for p in tuner.space), "silhouette_sample": tuner.cfg.silhouette_sample,
        **{f"tuned.{k_}": v for k_, v in tuned.items()},
    }
    if len(tuner.cfg.objectives) > 1:
        params["select"] = tuner.cfg.select
    for name, value in zip(tuner.cfg.objectives, best.values, strict=True):
        params[f"best_{name}"] = round(float(value), 6)
    reduce = None
    if best.params.get("pca"):
        from clusterbench.scoring.reduce import Reducer

        reduce = Reducer(pca=int(best.params["pca"]), seed=cell.seed)
        params["tuned.pca"] = params["feature_dim"] = int(best.params["pca"])
        params["reducer"] = (f"{cell.reduce.describe()} then " if cell.reduce else "") + f"pca={best.params['pca']} (tuned)"
    tuner.log(f"tuning: chose k={k}" + "".join(f" {n}={v}" for n, v in tuned.items()) + " with "
              + ", ".join(f"{n}={v:.4f}" for n, v in zip(tuner.cfg.objectives, best.values, strict=True))
              + f" ({counts['n_trials']} trials: {counts['n_trials_failed']} failed, {counts['n_trials_pruned']} pruned; "
              f"{len(tuner.run_here)} run now)")

    if tracker is not None and run_id is not None:
        _log_to_tracker(tracker, run_id, tuner, rows, best)
    return KChoice(overrides=overrides, params=params, reduce=reduce)


def _log_to_tracker(tracker, run_id, tuner: Tuner, rows: list[dict], best) -> None:
    steps = []
    for row in rows:
        metrics = {"trial.failed": float(row["state"] == "FAIL"), "trial.pruned": float(row["state"] == "PRUNED")}
        for key in ("k", "n_clusters", "noise_fraction", "seconds", *OBJECTIVES):
            if row.get(key) is not None:
                metrics[f"trial.{key}"] = row[key]
        if row["values"]:
            metrics.update({f"trial.objective.{n}": v for n, v in zip(tuner.cfg.objectives, row["values"], strict=True)})
        steps.append((row["number"], metrics))
    tracker.log_metric_steps(run_id, steps)
    tracker.log_metrics(run_id, {f"tune.best_{n}": v for n, v in zip(tuner.cfg.objectives, best.values, strict=True)})
    nmi = tuner.posthoc_nmi(rows)
    for row in rows:
        if row["number"] in nmi:
            row["nmi_after_the_fact"] = nmi[row["number"]]
    tracker.log_json(run_id, "tuning/trials.json", {
        "study_name": tuner.study_name, "storage": redact(tuner.url), "sampler": tuner.sampler_kind,
        "objectives": list(tuner.cfg.objectives), "directions": tuner.directions,
        "search_space": [p.describe() for p in tuner.space], "best_trial": best.number, "trials": rows,
        "note": "nmi_after_the_fact uses the labels after the study, for the figure only; the objective never saw them",
    })
    try:
        fig = tuner.figure(rows, nmi, best.number)
    except Exception as e:  # noqa: BLE001 - a figure is never worth a failed cell
        tracker.log_text(run_id, "tuning/figure_error.txt", one_line_reason(e))
        return
    tracker.log_figure(run_id, fig, "tuning/objective_vs_k.png")
