"""The suite run's aggregate metrics have short names people can read in the MLflow UI (metric
first, then the configuration by what tells it apart), never two configurations under one name."""

from __future__ import annotations

import itertools

from mlflow.utils.validation import _validate_metric_name

from clusterbench.track.aggregate import metric_labels, metric_name


def _config(dataset, embedder, clusterer, k="default", reduce="none") -> str:
    return f"{dataset}|{embedder}|{clusterer}|k={k}|reduce={reduce}"


def test_the_quick_suite_reads_metric_then_method():
    configs = [_config("digits", "pixels", c) for c in
               ("kmeans:n_init=5", "agglomerative:linkage=ward", "hdbscan:min_cluster_size=10")]
    labels = metric_labels(configs)
    assert [metric_name(labels[c], "nmi", "mean") for c in configs] == [
        "nmi/kmeans on pixels", "nmi/agglomerative on pixels", "nmi/hdbscan on pixels"]
    assert metric_name(labels[configs[0]], "silhouette", "std") == "silhouette_std/kmeans on pixels"
    assert metric_name(labels[configs[1]], "n_seeds", "count") == "n_seeds/agglomerative on pixels"


def test_datasets_and_settings_appear_only_where_the_suite_has_several():
    configs = [_config(f"digits:limit={n}", "pixels", c) for n in (200, 260) for c in ("kmeans", "agglomerative")]
    assert sorted(metric_labels(configs).values()) == [
        "agglomerative on pixels in digits:limit 200", "agglomerative on pixels in digits:limit 260",
        "kmeans on pixels in digits:limit 200", "kmeans on pixels in digits:limit 260"]
    ks = [_config("digits", "pixels", "kmeans", k, "pca=50,whiten=true") for k in (10, "auto:gap")]
    assert list(metric_labels(ks).values()) == ["kmeans on pixels k:10", "kmeans on pixels k:auto:gap"]
    reducers = [_config("digits", "pixels", "kmeans", 10, r) for r in ("none", "pca=50,whiten=true")]
    assert list(metric_labels(reducers).values()) == ["kmeans on pixels", "kmeans on pixels pca:50 whiten"]


def test_every_configuration_of_a_large_grid_has_its_own_valid_short_name():
    datasets = ["digits", "digits:limit=500", "fashion-mnist:split=test"]
    embedders = ["pixels", "resnet18", "resnet18:layer=layer3"]
    clusterers = ["kmeans", "kmeans:n_init=5", "agglomerative:linkage=ward", "hdbscan:min_cluster_size=10"]
    configs = [_config(*combo) for combo in itertools.product(datasets, embedders, clusterers, (10, "auto"),
                                                              ("none", "pca=50", "pca=50,umap=10"))]
    labels = metric_labels(configs)
    names = {metric_name(labels[c], m, s) for c in configs for m in ("nmi", "ari", "n_clusters") for s in ("mean", "std")}
    assert len(names) == len(configs) * 6
    for name in names:
        _validate_metric_name(name)  # MLflow refuses '@', '=', ',' and the like
    assert max(len(n) for n in names) <= 120  # everything varies here; the quick suite is ~20
    assert "nmi/kmeans:n_init 5 on resnet18:layer layer3 in digits:limit 500 k:auto pca:50 umap:10" in names


def test_a_very_long_spec_is_cut_with_a_digest_so_names_stay_apart():
    long_a = "alexnet-deepcluster:epochs=15,heads=3,ema=0.999,crop_min=0.25,layer=fc7"
    long_b = long_a.replace("fc7", "fc6")
    labels = metric_labels([_config("digits", e, "kmeans") for e in (long_a, long_b)])
    assert len(set(labels.values())) == 2 and all(len(v) < 70 for v in labels.values())
