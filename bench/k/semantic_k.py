"""``k=semantic``: K from the meaning of the ImageNet classes an embedder's own classifier predicts.

1. Each image's top-1 ImageNet class from the embedder's classifier head (``embedding.logits``).
2. The distinct predicted classes are counted; each class name is embedded with word vectors
   (gensim ``KeyedVectors``: a local word2vec / GloVe / gensim file via ``vectors=PATH``, or a
   gensim-data name such as ``glove-wiki-gigaword-100`` when online). A multi-word name is
   looked up whole first (``great_white_shark``, as phrase models store it), else as the mean of
   its words' unit vectors (the words found; the others are reported). A name none of whose
   words is known is out of vocabulary (OOV): reported, counted and, by default
   (``oov=singleton``), a group of its own (``oov=drop`` leaves it out).
3. The label vectors are clustered hierarchically (scipy ``linkage``; ``linkage=single`` by
   default as in the original method, ``metric=cosine``) and cut at distance ``threshold``
   (default 0.5; with ``vectors=wordnet`` 1 - similarity between the predicted synsets, cut at
   0.3, as measured best on digits and Fashion-MNIST); K = the number of groups at the cut (+ the
   OOV singletons). ``min_share`` leaves out classes predicted for fewer than that fraction of
   the images (default 0: measured, it did not help at the default cut).

``[tune]`` / ``--tune`` keys: ``vectors``, ``linkage``, ``threshold``, ``metric``, ``oov``, ``similarity``,
``min_share``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from clusterbench.core.artifacts import Artifacts
from clusterbench.core.errors import UserError
from clusterbench.k.choice import KChoice

SEMANTIC_KEYS = {
    "vectors": "word vectors: a word2vec (.bin/.txt/.vec), GloVe (.txt) or gensim KeyedVectors file, or a gensim-data name",
    "linkage": "scipy linkage method for the label vectors (default single)",
    "threshold": "distance at which the label dendrogram is cut (default 0.5; 0.3 with vectors=wordnet)",
    "metric": "distance between label vectors: cosine (default) or euclidean (on unit vectors)",
    "oov": "labels without a word vector: singleton (default, one group each) or drop",
    "similarity": "with vectors=wordnet: wup (default), path or lin, between the predicted synsets",
    "min_share": "predicted classes holding less than this fraction of the images are left out (default 0)",
}
WORDNET_THRESHOLD = 0.3  # 1 - Wu-Palmer similarity: 0.5 (the word-vector default) left F-MNIST's 109 classes 1 group
LINKAGE_METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
EUCLIDEAN_ONLY = ("centroid", "median", "ward")
NEEDS_HEAD = "k=semantic needs an embedder with an ImageNet classifier head"

_VECTORS_CACHE: dict[str, object] = {}


def parse_semantic(tune: dict | None) -> dict:
    tune = dict(tune or {})
    cfg = {"vectors": tune.get("vectors"), "linkage": str(tune.get("linkage", "single")).lower(),
           "metric": str(tune.get("metric", "cosine")).lower(), "oov": str(tune.get("oov", "singleton")).lower()}
    if cfg["linkage"] not in LINKAGE_METHODS:
        raise UserError(f"tune linkage={cfg['linkage']!r}: expected one of {', '.join(LINKAGE_METHODS)}")
    if cfg["metric"] not in ("cosine", "euclidean"):
        raise UserError(f"tune metric={cfg['metric']!r}: expected cosine or euclidean")
    if cfg["linkage"] in EUCLIDEAN_ONLY:
        cfg["metric"] = "euclidean"
    if cfg["oov"] not in ("singleton", "drop"):
        raise UserError(f"tune oov={cfg['oov']!r}: expected singleton or drop")
    try:  # WordNet's default measured on digits and Fashion-MNIST (docs/choosing-k.md); 0.5 is the original's
        cfg["threshold"] = float(tune.get("threshold", WORDNET_THRESHOLD if cfg["vectors"] == "wordnet" else 0.5))
    except (TypeError, ValueError):
        raise UserError(f"tune threshold={tune.get('threshold')!r}: expected a number") from None
    if isinstance(tune.get("threshold"), bool) or not cfg["threshold"] >= 0:
        raise UserError(f"tune threshold={tune.get('threshold')!r}: expected a distance >= 0")
    if cfg["vectors"] is not None:
        cfg["vectors"] = str(cfg["vectors"])
    cfg["similarity"] = str(tune.get("similarity", "wup")).lower()
    try:
        cfg["min_share"] = float(tune.get("min_share", 0.0))
    except (TypeError, ValueError):
        cfg["min_share"] = -1.0
    if isinstance(tune.get("min_share"), bool) or not 0 <= cfg["min_share"] < 1:
        raise UserError(f"tune min_share={tune.get('min_share')!r}: expected a fraction of the images in [0, 1)")
    if cfg["vectors"] == "wordnet":
        from clusterbench.k.wordnet import SIMILARITIES

        if cfg["similarity"] not in SIMILARITIES:
            raise UserError(f"tune similarity={cfg['similarity']!r}: expected one of {', '.join(SIMILARITIES)}")
        if cfg["linkage"] in EUCLIDEAN_ONLY:
            raise UserError(f"tune linkage={cfg['linkage']}: needs vectors in a euclidean space; with vectors=wordnet "
                            "use single, complete, average or weighted")
        cfg["metric"] = f"1 - {cfg['similarity']} similarity"
    return cfg


def check_semantic_cell(cell, embedders) -> None:
    """Before anything runs: the embedder must have a classifier head, and vectors be given."""
    if not embedders.traits(cell.embedder).has_classifier:
        heads = ", ".join(n for n in embedders.list() if embedders.traits(n).has_classifier)
        raise UserError(f"{NEEDS_HEAD} ({heads}); {cell.embedder.name!r} has none")
    cfg = parse_semantic(cell.tune)
    if cfg["vectors"] is None:
        raise UserError("k=semantic needs word vectors: --tune vectors=PATH (word2vec/GloVe/gensim KeyedVectors file), "
                        "vectors=wordnet (WordNet 3.0, offline) or vectors=NAME (a gensim-data name, online only)")
    if cfg["vectors"] == "wordnet":
        from clusterbench.k.wordnet import wordnet_source

        wordnet_source()  # missing WordNet data: one line saying how to get it, before anything runs
        return
    path = Path(cfg["vectors"]).expanduser()
    if ("/" in cfg["vectors"] or path.suffix) and not path.exists():
        raise UserError(f"k=semantic: vectors={cfg['vectors']}: no such file")


# -- word vectors -----------------------------------------------------------------------------------
def load_vectors(spec: str):
    """gensim KeyedVectors from a file (format by extension, with fallbacks) or a gensim-data name."""
    if spec in _VECTORS_CACHE:
        return _VECTORS_CACHE[spec]
    from gensim.models import KeyedVectors

    path = Path(spec).expanduser()
    if path.is_file():
        name = path.name.lower()
        attempts = []
        if name.endswith((".bin", ".bin.gz")):
            attempts.append(lambda: KeyedVectors.load_word2vec_format(str(path), binary=True))
        elif name.endswith((".txt", ".vec", ".txt.gz", ".vec.gz")):
            attempts.append(lambda: KeyedVectors.load_word2vec_format(str(path), binary=False))
            attempts.append(lambda: KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True))  # GloVe
        else:
            attempts.append(lambda: KeyedVectors.load(str(path)))
            attempts.append(lambda: KeyedVectors.load_word2vec_format(str(path), binary=True))
        errors = []
        for attempt in attempts:
            try:
                kv = attempt()
                break
            except Exception as e:  # noqa: BLE001 - the next format is tried; all failures are reported
                errors.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        else:
            raise UserError(f"vectors={spec}: not a word2vec, GloVe or gensim KeyedVectors file ({'; '.join(errors)})")
    elif "/" in spec or path.suffix:
        raise UserError(f"vectors={spec}: no such file")
    else:
        kv = _gensim_data(spec)
    kv = getattr(kv, "wv", kv)  # third-party (gensim): a whole Word2Vec/FastText model saved with .save()
    _VECTORS_CACHE[spec] = kv
    return kv


def _gensim_data(name: str):
    import socket

    import gensim.downloader as api

    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        return api.load(name)
    except Exception as e:  # noqa: BLE001 - offline, unknown name: one line
        raise UserError(f"vectors={name}: not a file, and gensim-data could not load it ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); give vectors=PATH offline") from None
    finally:
        socket.setdefaulttimeout(before)


def _lookup(kv, word: str):
    for form in (word, word.lower(), word.capitalize()):
        if form in kv.key_to_index:
            return form
    return None


def label_vector(kv, label: str):
    """(unit vector or None, how it was found: 'phrase:WORD', 'words:a+b', 'partial:a (missing b)', 'oov')."""
    phrase = re.sub(r"[\s\-]+", "_", label.strip())
    found = _lookup(kv, phrase)
    if found is not None:
        v = np.asarray(kv[found], dtype=np.float64)
        return v / max(np.linalg.norm(v), 1e-12), f"phrase:{found}"
    words = [w for w in re.split(r"[\s\-_/,]+", re.sub(r"'s\b", "", label)) if w]
    words = [re.sub(r"[^\w]", "", w) for w in words]
    words = [w for w in words if w]
    hits, missing = [], []
    for w in words:
        form = _lookup(kv, w)
        (hits if form is not None else missing).append(form or w)
    if not hits:
        return None, "oov"
    vs = [np.asarray(kv[w], dtype=np.float64) for w in hits]
    mean = np.mean([v / max(np.linalg.norm(v), 1e-12) for v in vs], axis=0)
    how = ("words:" if not missing else "partial:") + "+".join(hits) + (f" (missing {'+'.join(missing)})" if missing else "")
    return mean / max(np.linalg.norm(mean), 1e-12), how


def group_labels(vectors: np.ndarray, method: str, metric: str, threshold: float):
    """Group ids (1..G) of the label vectors at the cut, and the linkage matrix (None below 2)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(vectors) == 0:
        return np.zeros(0, dtype=int), None
    if len(vectors) == 1:
        return np.ones(1, dtype=int), None
    Z = linkage(vectors, method=method, metric=metric)
    return fcluster(Z, t=threshold, criterion="distance"), Z


# -- the K chooser --------------------------------------------------------------------------------
def semantic_k(cell, data, embedding, results_dir=None, storage=None, force=False, **_) -> KChoice:
    """K from the classes ``embedding`` (its ``logits`` and their ``classes``) predicts for ``data``."""
    cfg = parse_semantic(cell.tune)
    logits = embedding.logits
    if logits is None:
        raise UserError(f"{NEEDS_HEAD}; the embedding of {cell.embedder} came without classifier scores "
                        "(computed earlier for another cell? rerun with --force)")
    classes = embedding.classes
    if classes is None or not classes.names:
        raise UserError(f"k=semantic: the classifier scores of {cell.embedder} came without the names of their "
                        "classes (an embedding cached by an older version, or a head of unknown classes? rerun with --force)")
    if cfg["vectors"] is None:
        raise UserError("k=semantic needs word vectors: --tune vectors=PATH or vectors=NAME (gensim-data, online)")
    names = list(classes.names)
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != len(names) or len(logits) != len(data):
        raise UserError(f"k=semantic: classifier scores of shape {logits.shape} do not match {len(data)} images "
                        f"x {len(names)} classes")

    predicted = logits.argmax(axis=1)
    histogram = Counter(names[i] for i in predicted)
    ranked = sorted(histogram, key=lambda n: (-histogram[n], n))
    # a class predicted for a handful of images is noise of the classifier, not a kind of image
    labels = [n for n in ranked if histogram[n] >= cfg["min_share"] * len(data)]
    if cfg["vectors"] == "wordnet":
        found, how, oov, groups, Z = _wordnet_groups(labels, classes, cfg, results_dir)
    else:
        found, how, oov, groups, Z = _vector_groups(labels, cfg)
    n_groups = int(len(np.unique(groups)))
    k = n_groups + (len(oov) if cfg["oov"] == "singleton" else 0)
    if k < 2:
        raise UserError(f"k=semantic: the {len(labels)} predicted class(es) kept ({', '.join(labels[:5])}) form {k} group(s) "
                        f"at threshold {cfg['threshold']:g}; lower the threshold or give k=N")
    k = min(k, len(data))
    grouped: dict[str, list[str]] = {}
    for (label, _), g in zip(found, groups, strict=True):
        grouped.setdefault(f"group{int(g)}", []).append(label)
    if cfg["oov"] == "singleton":
        grouped.update({f"oov:{label}": [label] for label in oov})

    params = {
        "k": k, "k_source": "semantic", "semantic.n_labels": len(ranked), "semantic.n_groups": n_groups,
        "semantic.n_oov": len(oov), "semantic.oov": cfg["oov"], "semantic.min_share": cfg["min_share"],
        "semantic.n_rare_left_out": len(ranked) - len(labels), "semantic.linkage": cfg["linkage"],
        "semantic.metric": cfg["metric"], "semantic.threshold": cfg["threshold"],
        "semantic.vectors": os.path.basename(cfg["vectors"]) if os.path.sep in cfg["vectors"] else cfg["vectors"],
    }
    if cfg["vectors"] == "wordnet":
        params["semantic.similarity"] = cfg["similarity"]
        if cfg["similarity"] == "lin":
            params["semantic.information_content"] = "intrinsic (descendants + 1; no sense-tagged corpus offline)"
    artifacts = Artifacts(
        json={"semantic/label_histogram.json": {label: int(histogram[label]) for label in ranked},
              "semantic/labels.json": {"how_embedded": how, "oov": oov, "groups": grouped, "k": k,
                                       "vectors": cfg["vectors"]}},
        text={"semantic/oov.txt": "\n".join(oov) + ("\n" if oov else "")},
        metrics={"semantic.n_labels": len(ranked), "semantic.n_oov": len(oov), "semantic.k": k},
        figures={"semantic/label_histogram.png": lambda: _histogram_figure(ranked, histogram),
                 "semantic/dendrogram.png": lambda: _dendrogram_figure(Z, [lab for lab, _ in found], oov, cfg, k)})
    return KChoice(overrides={"k": k}, params=params, artifacts=artifacts)


def _vector_groups(labels: list[str], cfg: dict):
    """Each label's word vector (or OOV), grouped by the dendrogram cut."""
    kv = load_vectors(cfg["vectors"])
    found, how, oov = [], {}, []
    for label in labels:
        vec, method = label_vector(kv, label)
        how[label] = method
        if vec is None:
            oov.append(label)
        else:
            found.append((label, vec))
    vectors = np.array([v for _, v in found]) if found else np.zeros((0, 1))
    groups, Z = group_labels(vectors, cfg["linkage"], cfg["metric"], cfg["threshold"])
    return found, how, oov, groups, Z


def _wordnet_groups(labels: list[str], classes, cfg: dict, results_dir):
    """Each label's WordNet synset (from its wnid), grouped by the cut of the dendrogram over
    ``1 - similarity`` between synsets."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    from clusterbench.k.wordnet import distance_matrix, synsets_of, wordnet_reader

    if not classes.wnids:
        raise UserError("k=semantic with vectors=wordnet needs the WordNet ids of the classifier's classes, "
                        "and this embedder's head does not give them")
    wnid = dict(zip(classes.names, classes.wnids, strict=True))
    reader = wordnet_reader(Path(results_dir or "results") / "cache")
    synsets = synsets_of(reader, [wnid[label] for label in labels])
    found = [(label, None) for label in labels]
    how = {label: f"wordnet:{s.name()}" for label, s in zip(labels, synsets, strict=True)}
    if len(labels) < 2:
        return found, how, [], np.ones(len(labels), dtype=int), None
    D = distance_matrix(reader, synsets, cfg["similarity"])
    Z = linkage(squareform(D, checks=False), method=cfg["linkage"])
    return found, how, [], fcluster(Z, t=cfg["threshold"], criterion="distance"), Z


def _histogram_figure(labels, histogram, top: int = 40):
    from matplotlib.figure import Figure

    shown = labels[:top]
    fig = Figure(figsize=(8, 0.25 * len(shown) + 1.2), constrained_layout=True)
    ax = fig.subplots()
    ax.barh(range(len(shown)), [histogram[label] for label in shown])
    ax.set_yticks(range(len(shown)), shown, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    more = f" (top {top} of {len(labels)})" if len(labels) > top else ""
    ax.set_title(f"predicted ImageNet classes{more}", fontsize=9)
    return fig


def _dendrogram_figure(Z, names, oov, cfg, k):
    from matplotlib.figure import Figure
    from scipy.cluster.hierarchy import dendrogram

    fig = Figure(figsize=(8, 0.22 * max(len(names), 4) + 1.5), constrained_layout=True)
    ax = fig.subplots()
    if Z is not None:
        dendrogram(Z, labels=names, orientation="left", color_threshold=cfg["threshold"], ax=ax, leaf_font_size=7)
        ax.set_xlim(max(max(ax.get_xlim()), cfg["threshold"] * 1.05), 0)  # the cut stays in view
        ax.axvline(cfg["threshold"], color="k", ls="--", lw=1)
    else:
        ax.text(0.5, 0.5, f"{len(names)} label(s) with vectors: nothing to link", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"{cfg['metric']} distance ({cfg['linkage']} linkage); cut at {cfg['threshold']:g}")
    title = f"K = {k}"
    if oov:
        title += f"; {len(oov)} OOV ({cfg['oov']}): " + ", ".join(oov[:6]) + ("…" if len(oov) > 6 else "")
    ax.set_title(title, fontsize=9)
    return fig
