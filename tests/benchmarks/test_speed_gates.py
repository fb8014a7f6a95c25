"""Performance regression gates: each compares our path with the plain reference in the same
run and fails below the ratio floor in clusterbench.benchmarking.gates. ``tox -e bench`` also stores the
absolute timings (pytest-benchmark) for ``--benchmark-compare`` history."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score as nmi

from clusterbench.benchmarking import figures
from clusterbench.benchmarking.gates import RatioBelowFloor, check_at_most, check_ratio, embedding_gate

from conftest import needs_fashion


def _record(benchmark, figs):
    """Ratios go to the gate; our side is timed once more for the stored benchmark history."""
    benchmark.extra_info.update({k: v for k, v in figs.items() if isinstance(v, int | float | str)})
    benchmark.pedantic(figs["ours_fn"], rounds=1)


def _fashion_pixels(n):
    from clusterbench.datasets import DATASETS

    data = DATASETS.create(f"fashion-mnist:limit={n}").load()
    return data.images.reshape(len(data), -1).astype(np.float32) / 255.0, data.labels


def test_embedding_path_beats_plain_fp32_loop(benchmark):
    figs = figures.embedding_figures("resnet152", n_images=32, size=224, batch=16)
    _record(benchmark, figs)
    # bf16 where the CPU has it natively; elsewhere fp32, whose floor is what that path can give
    check_ratio(embedding_gate(figs["precision"]), figs["ours_img_per_s"] / figs["plain_img_per_s"])


def test_gate_fails_when_the_path_is_broken_on_purpose():
    slowed = figures.embedding_figures("resnet18", n_images=16, size=64, batch=8, slow_down=0.5)
    for gate in (embedding_gate("bf16"), embedding_gate("fp32")):  # one slowed measurement, both floors
        with pytest.raises(RatioBelowFloor, match=f"{gate}: .* below its floor"):
            check_ratio(gate, slowed["ours_img_per_s"] / slowed["plain_img_per_s"], record=False)


@needs_fashion
def test_kmeans_k1000_beats_sklearn_default_at_equal_quality(benchmark):
    X, y = _fashion_pixels(20000)
    figs = figures.kmeans_figures(X, 1000, iters=20)
    _record(benchmark, figs)
    assert abs(nmi(y, figs["ours_labels"]) - nmi(y, figs["sklearn_labels"])) <= 0.01
    check_ratio("kmeans_k1000_vs_sklearn", figs["sklearn_s"] / figs["ours_s"])


@needs_fashion
def test_kmeans_k10_never_slower_than_sklearn():
    X, _ = _fashion_pixels(20000)
    figs = figures.kmeans_figures(X, 10, iters=20, repeats=5)
    check_ratio("kmeans_k10_vs_sklearn", figs["sklearn_s"] / figs["ours_s"])


def test_exact_silhouette_twice_as_fast_as_sklearn_same_value(benchmark):
    figs = figures.silhouette_figures(20000, 256)
    _record(benchmark, figs)
    assert figs["ours"] == pytest.approx(figs["sklearn"], abs=1e-6)
    check_ratio("silhouette_vs_sklearn", figs["sklearn_s"] / figs["ours_s"])


def test_second_run_skips_the_forward_pass(run_cli, benchmark):
    args = ("-d", "digits:limit=300", "-e", "timm:model=resnet18,pretrained=false,size=64", "-c", "kmeans")
    _, _, _, first = run_cli(*args)
    _, _, _, second = run_cli(*args, "-c", "kmeans:k=12")
    fresh = first["cells"][0]["metrics"]["embed_seconds"]
    cached = second["cells"][1]["metrics"]
    assert cached["embed_cached"] == 1.0
    benchmark.extra_info.update({"first_embed_s": fresh, "cached_embed_s": cached["embed_seconds"]})
    benchmark.pedantic(run_cli, args=args, kwargs={"json_name": "third.json"}, rounds=1)
    check_at_most("cached_embedding_fraction", cached["embed_seconds"] / fresh)


def test_default_suite_end_to_end(run_cli, benchmark):
    result = benchmark.pedantic(run_cli, rounds=1)
    assert result[0] == 0


@needs_fashion
def test_umap_at_its_neighbour_graphs_speed_keeps_the_clustering():
    """The harness's UMAP (PCA first above 100 dimensions, faiss's exact kNN above 4,096 points)
    against plain umap-learn on the same pixels: faster by the floor, the same k-means NMI."""
    import time

    from sklearn.cluster import KMeans

    from clusterbench.core.reduce import umap_embed

    X, y = _fashion_pixels(6000)
    seconds, scores = {}, {}
    for fast in (False, True):
        start = time.perf_counter()
        Y = umap_embed(X, 10, 30, 0.0, "euclidean", 0, fast=fast)
        seconds[fast] = time.perf_counter() - start
        scores[fast] = nmi(y, KMeans(10, n_init=10, random_state=0).fit_predict(Y))
    assert abs(scores[True] - scores[False]) <= 0.01, scores
    check_ratio("umap_vs_umap_learn", seconds[False] / seconds[True])


@needs_fashion
def test_a_k_sweep_costs_about_one_fit_per_linkage():
    import time

    from clusterbench.core.catalog import registries
    from clusterbench.k.estimators import K_ESTIMATORS

    X, _ = _fashion_pixels(2000)
    clusterers = registries().clusterers
    start = time.perf_counter()
    clusterers.create("agglomerative:linkage=ward", k=10).fit(X)
    one_fit = time.perf_counter() - start
    start = time.perf_counter()
    at = clusterers.create("agglomerative:linkage=ward").sweep(X)
    labels = {k: at(k) for k in range(2, 51)}
    check_at_most("agglomerative_sweep_fits", (time.perf_counter() - start) / one_fit)

    gap, trees = K_ESTIMATORS.create("gap"), {}

    def fit(Z, k, seed):  # what the sweep's refit does: one tree per reference set, cut at every K
        if (id(Z), seed) not in trees:
            trees[id(Z), seed] = clusterers.create("agglomerative:linkage=ward", seed=seed).sweep(Z)
        return trees[id(Z), seed](k)

    start = time.perf_counter()
    for k in range(2, 51):
        gap.score(X, labels[k], k, fit, 0)
    check_at_most("gap_sweep_fits", (time.perf_counter() - start + one_fit) / one_fit)
