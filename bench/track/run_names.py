"""Names people read in the MLflow UI: a suite's run (which suite, when) and a cell's run (short,
yet different from every sibling cell: clusterer, K, the reducer and the seed lead it). Pure
functions of the canonical spec strings, so the local runner and a Ray worker name a cell alike."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

SEP = " · "
MAX_SPEC = 40  # a longer spec keeps its head and a digest of the whole, so siblings still differ
MAX_GRID_NAME = 60


def suite_run_name(suite_name: str, started: datetime) -> str:
    """``quick 2026-12-07 23:55``: the suite and the local time its invocation started."""
    local = started.astimezone() if started.tzinfo is not None else started  # naive: already local
    return f"{suite_name} {local:%Y-%m-%d %H:%M}"


def cell_run_name(dataset, embedder, clusterer, k, reduce, seed) -> str:
    """``kmeans:n_init=5 · k=10 · pca=50 · s0 · pixels · digits``: what tells siblings apart comes
    first, because MLflow's runs table shows a name's first ~18 characters (and the dataset in a
    column of its own). Defaults are left out (no K asked, no reducer, no seed); a K the clusterer
    spec already fixes is not repeated."""
    clusterer = str(clusterer)
    parts = [_short(clusterer)]
    if k not in (None, "", "default") and not re.search(r"[:,]k=", clusterer):
        parts.append(f"k={k}")
    if (reducer := _reducer(reduce)) is not None:
        parts.append(reducer)
    if seed not in (None, ""):
        parts.append(f"s{seed}")
    return SEP.join(parts + [_short(embedder), _short(dataset)])


def grid_suite_name(datasets, embedders, clusterers) -> str:
    """The name of a grid given on the command line, after what it runs: ``digits x pixels x
    kmeans+hdbscan`` (spec names; its experiment is ``clusterbench/<this>``)."""
    axes = [list(dict.fromkeys(str(s).split(":", 1)[0] for s in specs)) for specs in (datasets, embedders, clusterers)]
    name = " x ".join("+".join(names) for names in axes)
    if len(name) <= MAX_GRID_NAME:
        return name
    counted = zip(axes, ("datasets", "embedders", "clusterers"), strict=True)
    return " x ".join(names[0] if len(names) == 1 else f"{len(names)} {word}" for names, word in counted)


def _short(spec) -> str:
    text = str(spec)
    if len(text) <= MAX_SPEC:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:4]
    return f"{text[:MAX_SPEC - 6]}…{digest}"


def _reducer(reduce) -> str | None:
    """``pca=256,whiten=true,l2=true`` -> ``pca=256+whiten+l2``; none -> None."""
    from clusterbench.core.reduce import Reducer

    text = reduce.describe() if isinstance(reduce, Reducer) else ("" if reduce is None else str(reduce))
    if text.strip().lower() in ("", "none"):
        return None
    return _short("+".join(p[: -len("=true")] if p.endswith("=true") else p for p in text.split(",")))
