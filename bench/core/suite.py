"""Suites: TOML files (data, never code) naming datasets x embedders x clusterers x seeds.

Each combination is a *cell*, keyed by the canonical spec strings, so a key is stable across
runs and machines and lets a rerun skip what is already finished.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from clusterbench.core.errors import UserError
from clusterbench.core.reduce import Reducer
from clusterbench.core.registry import Spec

# gate: tolerances for clusterbench compare (read there, clusterbench.track.regress.rules)
SUITE_KEYS = {"name", "description", "datasets", "embedders", "clusterers", "seeds", "k", "reduce", "tune", "pictures",
              "gate"}
K_MODES = ("auto", "semantic")


@dataclass
class Cell:
    dataset: Spec
    embedder: Spec
    clusterer: Spec
    seed: int
    k: int | str | None  # from --k / the suite; the clusterer spec's own k= wins
    reduce: Reducer | None = None
    tune: dict = field(default_factory=dict)

    @property
    def requested_k(self) -> int | str | None:
        """The K asked for: the clusterer spec's own k= wins over --k / the suite's k."""
        return self.clusterer.params.get("k", self.k)

    def seed_override(self, clusterers) -> dict:
        """The cell's seed for a clusterer that takes one and whose spec does not fix it."""
        if clusterers.traits(self.clusterer).takes_seed and "seed" not in self.clusterer.params:
            return {"seed": self.seed}
        return {}

    @property
    def key(self) -> str:
        k = self.requested_k
        k = "default" if k is None else k
        reduce = self.reduce.describe() if self.reduce else "none"
        key = f"{self.dataset}|{self.embedder}|{self.clusterer}|seed={self.seed}|k={k}|reduce={reduce}"
        if (k in K_MODES or str(k).startswith("auto:")) and self.tune:  # tuning settings change what such a cell computes
            key += "|tune=" + ",".join(f"{name}={_tune_value(v)}" for name, v in sorted(self.tune.items()))
        return key


@dataclass
class Suite:
    name: str
    datasets: list[Spec]
    embedders: list[Spec]
    clusterers: list[Spec]
    seeds: list[int] = field(default_factory=lambda: [0])
    k: int | str | list | None = None  # a list: each value makes its own cells (--k repeated)
    reduce: Reducer | None = None
    tune: dict = field(default_factory=dict)
    description: str = ""
    source: str = ""
    pictures: bool = True  # gallery, contingency, map, sizes in each cell's run (false: for huge suites)

    def cells(self) -> list[Cell]:
        # Dataset-major, then embedder: every (dataset, embedder) pair is embedded once and
        # reused by all of its clusterers and seeds.
        ks = self.k if isinstance(self.k, list) else [self.k]
        return [
            Cell(d, e, c, s, k, self.reduce, self.tune)
            for d in self.datasets
            for e in self.embedders
            for c in self.clusterers
            for k in ks
            for s in self.seeds
        ]


def _tune_value(value) -> str:
    from clusterbench.core.registry import format_value

    if isinstance(value, list | tuple):
        return "+".join(format_value(v) for v in value)
    return format_value(value)


def parse_k(value) -> int | str | list | None:
    """An integer, ``auto`` (the default K estimator), ``auto:NAME[:key=value,...]`` (a K estimator,
    checked with the tuning settings), ``semantic``; a list of these makes a cell each."""
    if isinstance(value, list | tuple):
        if not value:
            raise UserError("k = []: give at least one K")
        ks = list(dict.fromkeys(parse_k(v) for v in value))
        return ks if len(ks) > 1 else ks[0]
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in K_MODES:
        return text.lower()
    if text.lower().startswith("auto:"):
        if not text[len("auto:"):].strip():
            raise UserError(f"k={value!r}: name a k estimator after 'auto:' (e.g. auto:gap)")
        spec = Spec.parse(text[len("auto:"):])
        return f"auto:{spec}"
    try:
        return int(text)
    except ValueError:
        raise UserError(f"k={value!r}: expected an integer, 'auto' (Optuna), 'auto:NAME' (a k estimator) "
                        "or 'semantic'") from None


def default_suite_path() -> Path:
    return Path(str(resources.files("clusterbench.suites").joinpath("quick.toml")))


def resolve_suite_path(name_or_path: str) -> Path:
    """A path, or the name of a bundled suite (``quick``, ``fashion``, ``seeds``)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path.resolve()
    bundled = resources.files("clusterbench.suites").joinpath(f"{name_or_path}.toml")
    if bundled.is_file():
        return Path(str(bundled))
    raise UserError(f"suite file not found: {path.resolve()} (and no bundled suite named {name_or_path!r})")


def _spec_list(raw: dict, key: str, source: str) -> list[Spec]:
    value = raw.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UserError(f"{source}: '{key}' must be a non-empty list of spec strings")
    return [Spec.parse(v) for v in value]


def load_suite(path: str | Path) -> Suite:
    path = resolve_suite_path(str(path))
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: malformed TOML: {e}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read suite: {e.strerror}") from None
    unknown = set(raw) - SUITE_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {sorted(unknown)}; valid: {', '.join(sorted(SUITE_KEYS))}")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError(f"{path}: 'seeds' must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{path}: 'seeds' lists a seed twice: {seeds}")
    pictures = raw.get("pictures", True)
    if not isinstance(pictures, bool):
        raise UserError(f"{path}: 'pictures' must be true or false, not {pictures!r}")
    tune = raw.get("tune", {})
    if not isinstance(tune, dict):
        raise UserError(f"{path}: [tune] must be a table")
    return Suite(
        name=str(raw.get("name", path.stem)),
        description=str(raw.get("description", "")),
        datasets=_spec_list(raw, "datasets", str(path)),
        embedders=_spec_list(raw, "embedders", str(path)),
        clusterers=_spec_list(raw, "clusterers", str(path)),
        seeds=seeds,
        k=parse_k(raw.get("k")),
        reduce=Reducer.parse(raw.get("reduce")),
        tune=tune,
        source=str(path),
        pictures=pictures,
    )
