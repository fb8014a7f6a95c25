"""Plug-ins: entries that other installed packages add through entry points.

One test builds and installs real plug-in packages (pyproject.toml, entry points in the three
groups) into a temporary directory and drives the console script over them; the others load
fake entry points in-process into fresh registries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import warnings
from importlib import metadata
from pathlib import Path

import pytest

from clusterbench.core import plugins
from clusterbench.core.contracts import Clusterer, Dataset, Embedder
from clusterbench.core.registry import BUNDLED, Origin, Registry

# --- a real plug-in package, installed and run through the console script ---------------------

DEMO_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "cbdemo"
version = "0.3.1"

[project.entry-points."clusterbench.datasets"]
blobs = "cbdemo"

[project.entry-points."clusterbench.embedders"]
column-means = "cbdemo"

[project.entry-points."clusterbench.clusterers"]
farthest-first = "cbdemo.clusterer:FarthestFirst"
"""

# A module entry point: importing it registers its classes with the decorator.
DEMO_INIT = '''\
"""clusterbench plug-in: three blobs of light, and the mean of each image column."""

import numpy as np

from clusterbench.core.contracts import EmbedRequest, EmbedStats, Embedding
from clusterbench.datasets import DATASETS, ImageData
from clusterbench.datasets.base import content_hash
from clusterbench.methods.embedders.base import EMBEDDERS, EmbedderBase


@DATASETS.register("blobs")
class Blobs:
    """Three classes of 8x8 images, each lit in its own band of columns."""

    def __init__(self, n: int = 90, seed: int = 0):
        self.n, self.seed = n, seed

    def load(self) -> ImageData:
        rng = np.random.default_rng(self.seed)
        labels = np.arange(self.n) % 3
        images = rng.integers(0, 60, (self.n, 8, 8, 1)).astype(np.uint8)
        for c in range(3):
            images[labels == c, :, 3 * c:3 * c + 2] += 150
        return ImageData(images, labels, ["left", "middle", "right"], content_hash(images, labels), name="blobs")


@EMBEDDERS.register("column-means")
class ColumnMeans(EmbedderBase):
    """The mean brightness of each image column."""

    def identity(self) -> str:
        return "column-means:v1"

    def embed(self, data, request: EmbedRequest) -> Embedding:
        X = np.stack([data.image(i).mean(axis=(0, 2)) for i in range(len(data))]).astype(np.float32) / 255
        return Embedding(X, EmbedStats(model="column-means", feature_dim=X.shape[1], n_images=len(data)))
'''

# A class entry point: not decorated, so registered under the entry point's name.
DEMO_CLUSTERER = '''\
import numpy as np

from clusterbench.core.contracts import ClusterResult
from clusterbench.methods.clusterers.base import ClustererBase, check_features


class FarthestFirst(ClustererBase):
    """Lloyd iterations from farthest-first seeds."""

    def __init__(self, k: int | None = None, iters: int = 20):
        self.k, self.iters = k, iters

    def fit(self, X, context=None) -> ClusterResult:
        X = check_features(X, self.k, "farthest-first")
        centers = [X[0]]
        for _ in range(1, self.k):
            d = np.min([((X - c) ** 2).sum(1) for c in centers], axis=0)
            centers.append(X[int(d.argmax())])
        C = np.array(centers)
        for _ in range(self.iters):
            labels = ((X[:, None] - C[None]) ** 2).sum(-1).argmin(1)
            C = np.array([X[labels == j].mean(0) if (labels == j).any() else C[j] for j in range(self.k)])
        return ClusterResult(labels.astype(np.int64), info={"iters": self.iters})
'''

BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "cbbroken"
version = "1.0"

[project.entry-points."clusterbench.clusterers"]
broken = "cbbroken"
"""


def _package(root: Path, pyproject: str, files: dict[str, str]) -> Path:
    for rel, text in {"pyproject.toml": pyproject, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _install(site: Path, *packages: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                           "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), *map(str, packages)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "clusterbench"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "clusterbench"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=env)


def _origin_line(out: str, name: str) -> str:
    """The line under an entry's name in ``clusterbench list``: its doc and [package]."""
    lines = out.splitlines()
    (i,) = [i for i, line in enumerate(lines) if line.split()[:1] == [name]]
    return lines[i + 1]


@pytest.mark.slow
def test_an_installed_plug_in_package_adds_a_dataset_an_embedder_and_a_clusterer(tmp_path):
    demo = _package(tmp_path / "cbdemo", DEMO_PYPROJECT,
                    {"src/cbdemo/__init__.py": DEMO_INIT, "src/cbdemo/clusterer.py": DEMO_CLUSTERER})
    site = tmp_path / "site"
    _install(site, demo)

    listed = _cli(site, "list")
    assert listed.returncode == 0 and not listed.stderr, listed.stderr
    for name in ("blobs", "column-means", "farthest-first"):
        assert _origin_line(listed.stdout, name).endswith("[cbdemo 0.3.1]"), listed.stdout
    assert _origin_line(listed.stdout, "digits").endswith("[clusterbench]")
    assert "farthest-first       k=None, iters=20" in listed.stdout

    out = tmp_path / "out.json"
    ran = _cli(site, "run", "-d", "blobs", "-e", "column-means", "-c", "farthest-first", "--k", "3",
               "--results", str(tmp_path / "r"), "--json", str(out), "--no-progress")
    assert ran.returncode == 0, ran.stderr
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["metrics"]["nmi"] > 0.9 and cell["metrics"]["n_clusters"] == 3

    # A second plug-in that raises on import: one warning line naming it; the rest stands.
    broken = _package(tmp_path / "cbbroken", BROKEN_PYPROJECT,
                      {"src/cbbroken/__init__.py": "raise RuntimeError('broken on purpose')\n"})
    _install(site, broken)
    listed = _cli(site, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines() == [
        "clusterbench: warning: plug-in 'broken' from cbbroken: failed to import cbbroken: "
        "RuntimeError: broken on purpose; skipped"]
    assert _origin_line(listed.stdout, "farthest-first").endswith("[cbdemo 0.3.1]")


# --- in-process: fake entry points into fresh registries ---------------------------------------

GOOD = '''
from clusterbench.methods.clusterers.base import ClustererBase
from {regs} import CLUSTERERS, DATASETS


@DATASETS.register("tiny")
class Tiny:
    def load(self):
        return None


@CLUSTERERS.register("one-cluster")
class OneCluster(ClustererBase):
    def fit(self, X, context=None):
        return None
'''


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """Three fresh registries, importable by plug-in modules as ``{regs}``; modules go in tmp_path."""
    regs = types.ModuleType(f"regs_{tmp_path.name}")
    regs.DATASETS = Registry("dataset", group="t.datasets", contract=Dataset)
    regs.EMBEDDERS = Registry("embedder", group="t.embedders", contract=Embedder)
    regs.CLUSTERERS = Registry("clusterer", group="t.clusterers", contract=Clusterer)
    monkeypatch.setitem(sys.modules, regs.__name__, regs)
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(modules: dict[str, str], entries: list[tuple[str, str, str]]) -> list[str]:
        """Write the modules, load the entry points (name, value, group); the warnings given."""
        for name, source in modules.items():
            (tmp_path / f"{name}.py").write_text(source.replace("{regs}", regs.__name__))
        points = [metadata.EntryPoint(name, value, group) for name, value, group in entries]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plugins.load_entry_points([regs.DATASETS, regs.EMBEDDERS, regs.CLUSTERERS],
                                      lambda group: [p for p in points if p.group == group])
        assert all(issubclass(w.category, plugins.PluginWarning) for w in caught)
        return [str(w.message) for w in caught]

    regs.load = load
    return regs


def _mod(tmp_path, stem: str) -> str:
    return f"{stem}_{abs(hash(str(tmp_path))) % 10**8}"  # a module name no other test imported


def test_a_module_plug_in_registers_its_classes_credited_to_it(fresh, tmp_path):
    mod = _mod(tmp_path, "good")
    assert fresh.load({mod: GOOD}, [("tiny", mod, "t.datasets"), ("one-cluster", mod, "t.clusterers")]) == []
    assert fresh.DATASETS.list() == ["tiny"] and fresh.CLUSTERERS.list() == ["one-cluster"]
    assert fresh.CLUSTERERS.origin("one-cluster") == Origin(mod)  # no distribution: the module


def test_a_class_plug_in_is_registered_under_its_entry_point_name(fresh, tmp_path):
    mod = _mod(tmp_path, "cls")
    source = "from clusterbench.methods.clusterers.base import ClustererBase\n\n\n" \
             "class Mine(ClustererBase):\n    def fit(self, X, context=None):\n        return None\n"
    assert fresh.load({mod: source}, [("mine", f"{mod}:Mine", "t.clusterers")]) == []
    assert fresh.CLUSTERERS.list() == ["mine"] and fresh.CLUSTERERS.get("mine").registry_name == "mine"


@pytest.mark.parametrize(("source", "value", "reason"), [
    ("class NoFit:\n    needs = frozenset()\n", "{mod}:NoFit",
     "clusterer 'bad' (NoFit) breaks the clusterer contract: no 'fit', no 'owns_k', no 'plan', no 'search_space', "
     "no 'tunable', no 'tune_keys'"),
    ("from clusterbench.methods.clusterers.base import ClustererBase\n\n\n"
     "class Greedy(ClustererBase):\n    needs = frozenset({'images'})\n\n    def fit(self, X, context=None):\n        pass\n",
     "{mod}:Greedy", "'needs' has unknown key(s) 'images'"),
    ("raise ImportError('no module named torch_extra')\n", "{mod}", "failed to import {mod}: ImportError: no module named torch_extra"),
    ("VALUE = 3\n", "{mod}:VALUE", "{mod}:VALUE is int, not a module or a class"),
])
def test_a_broken_plug_in_is_one_warning_and_skipped(fresh, tmp_path, source, value, reason):
    mod = _mod(tmp_path, "bad")
    (message,) = fresh.load({mod: source}, [("bad", value.format(mod=mod), "t.clusterers")])
    assert message.startswith(f"plug-in 'bad' from {mod}: ") and message.endswith("; skipped")
    assert reason.format(mod=mod) in message
    assert fresh.CLUSTERERS.list() == []


def test_a_plug_in_taking_a_name_is_skipped_as_a_whole(fresh, tmp_path):
    @fresh.DATASETS.register("tiny")
    class Bundled:
        def load(self):
            return None

    mod = _mod(tmp_path, "dup")
    (message,) = fresh.load({mod: GOOD}, [("dup", mod, "t.clusterers")])
    assert "dataset 'tiny' registered twice (already from " in message
    assert fresh.DATASETS.get("tiny") is Bundled
    assert fresh.CLUSTERERS.list() == []  # its other, valid entry goes with it


def test_a_plug_in_failing_half_way_leaves_nothing_registered(fresh, tmp_path):
    mod = _mod(tmp_path, "half")
    (message,) = fresh.load({mod: GOOD + "\nraise ValueError('late')\n"},
                            [("half", mod, "t.datasets"), ("half-again", mod, "t.clusterers")])
    assert "ValueError: late" in message  # one warning for the module, not one per entry point
    assert fresh.DATASETS.list() == [] and fresh.CLUSTERERS.list() == []


def test_a_bundled_entry_that_breaks_its_contract_is_an_error_at_import():
    reg = Registry("embedder", contract=Embedder)
    with pytest.raises(TypeError, match=r"embedder 'half' \(Half\) breaks the embedder contract: no 'cache_features', no 'embed', "
                                         r"no 'has_classifier', no 'needs'"):
        reg.register("half")(type("Half", (), {"identity": lambda self: "x"}))
    reg.register("full")(_full_embedder())
    with pytest.raises(ValueError, match="embedder 'full' registered twice"):
        reg.register("full")(_full_embedder())


def _full_embedder() -> type:
    from clusterbench.methods.embedders.base import EmbedderBase

    return type("Full", (EmbedderBase,), {})


def test_bundled_entries_are_credited_to_clusterbench_and_plug_ins_load_once(monkeypatch):
    from clusterbench.core.catalog import registries

    datasets, embedders, clusterers = registries()
    assert {datasets.origin(n) for n in datasets.list()} | {embedders.origin(n) for n in embedders.list()} \
        | {clusterers.origin(n) for n in clusterers.list()} == {BUNDLED}
    calls = []
    monkeypatch.setattr(plugins, "_LOADED", False)
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: calls.append(group) or [])
    registries()
    registries()
    assert calls == ["clusterbench.datasets", "clusterbench.embedders", "clusterbench.clusterers"]
