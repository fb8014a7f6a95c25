"""Bring your own features: ``features:path=...`` (.npy / .npz / .parquet) with the ``identity``
embedder, memory-mapped; bad files refused in one line; clusterers that say what they do at scale."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from clusterbench.datasets import DATASETS
from clusterbench.datasets.matrix_files import open_matrix


@pytest.fixture
def blobs(tmp_path):
    X, y = make_blobs(n_samples=3000, n_features=16, centers=10, cluster_std=1.0, random_state=0)
    X = X.astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "names.txt").write_text("".join(f"item-{i}\n" for i in range(len(X))))
    return tmp_path, X, y


@pytest.mark.slow
def test_npy_features_are_memory_mapped_and_clustered_with_identity(blobs, cli, store, results_dir):
    folder, X, y = blobs
    data = DATASETS.create(f"features:path={folder / 'X.npy'},labels={folder / 'y.npy'}").load()
    assert isinstance(data.features, np.memmap) and data.features.shape == X.shape and not data.has_images
    assert (data.labels == y).all() and data.n_classes == 10

    spec = f"features:path={folder / 'X.npy'},labels={folder / 'y.npy'},names={folder / 'names.txt'}"
    status, _, err, summary = cli("-d", spec, "-e", "identity", "-c", "kmeans", "-c", "agglomerative", "--k", "10",
                                  "--explain", "2")
    assert status == 0, err
    for cell in summary["cells"]:
        assert cell["status"] == "ok" and cell["metrics"]["nmi"] >= 0.95 and cell["params"]["feature_dim"] == 16
    # the file is its own cache: nothing copied under cache/embeddings
    assert not list((results_dir / "cache" / "embeddings").glob("*.npy"))
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    run_id = summary["cells"][0]["mlflow_run_id"]
    with open(client.download_artifacts(run_id, "assignments.csv", str(folder))) as f:
        rows = list(csv.DictReader(f))
    assert rows[5]["name"] == "item-5" and len(rows) == len(X)
    with open(client.download_artifacts(run_id, "pictures/notes.txt", str(folder))) as f:
        assert "no gallery" in f.read()
    with open(client.download_artifacts(run_id, "explain/skipped.txt", str(folder))) as f:
        assert "precomputed features" in f.read()


def test_npz_members_are_mapped_in_place_and_compressed_ones_through_a_scratch_file(tmp_path):
    X = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.savez(tmp_path / "plain.npz", features=X, labels=np.arange(20) % 2)
    np.savez_compressed(tmp_path / "small.npz", embeddings=X)
    plain, how = open_matrix(str(tmp_path / "plain.npz"))
    assert isinstance(plain, np.memmap) and how == "memory-mapped" and (np.asarray(plain) == X).all()
    packed, how = open_matrix(str(tmp_path / "small.npz"))
    assert "compressed" in how and (np.asarray(packed) == X).all()
    data = DATASETS.create(f"features:path={tmp_path / 'plain.npz'}").load()
    assert (data.labels == np.arange(20) % 2).all()  # the .npz's own labels array


def test_parquet_features_from_a_list_column_or_numeric_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    labels = np.array(["cat", "dog"] * 25)
    pq.write_table(pa.table({"embedding": list(X), "label": labels}), tmp_path / "list.parquet", row_group_size=16)
    pq.write_table(pa.table({f"f{i}": X[:, i] for i in range(4)}), tmp_path / "wide.parquet")
    a = DATASETS.create(f"features:path={tmp_path / 'list.parquet'}").load()
    b = DATASETS.create(f"features:path={tmp_path / 'wide.parquet'}").load()
    assert np.allclose(a.features, X) and np.allclose(b.features, X) and isinstance(a.features, np.memmap)
    assert a.class_names == ["cat", "dog"] and (a.labels == (labels == "dog")).all() and b.labels is None


@pytest.mark.parametrize("case, expected", [
    ("nan", "1 row(s) with NaN"),
    ("labels", "has 2999 values for the 3000 rows"),
    ("3d", "it must be 2-D"),
    ("pixels", "reads images, but dataset features"),
    ("identity-on-images", "reads features, but dataset digits holds images"),
])
def test_bad_feature_files_are_one_line_and_exit_2(blobs, run_cli, case, expected):
    folder, X, y = blobs
    path, labels, embedder, dataset = folder / "X.npy", folder / "y.npy", "identity", None
    if case == "nan":
        X = X.copy()
        X[17, 3] = np.nan
        np.save(path := folder / "nan.npy", X)
    elif case == "labels":
        np.save(labels := folder / "short.npy", y[:-1])
    elif case == "3d":
        np.save(path := folder / "cube.npy", X.reshape(3000, 4, 4))
    elif case == "pixels":
        embedder = "pixels"
    else:
        dataset = "digits"
    dataset = dataset or f"features:path={path},labels={labels}"
    status, _, err, summary = run_cli("-d", dataset, "-e", embedder, "-c", "kmeans", "--k", "10")
    assert status == 2 and summary is None
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_clusterers_say_up_front_what_they_do_above_their_size(blobs, cli, store):
    folder, X, y = blobs
    spec = f"features:path={folder / 'X.npy'},labels={folder / 'y.npy'}"
    status, _, err, summary = cli("-d", spec, "-e", "identity", "-c", "agglomerative:max_points=1000,n_micro=300,k=10",
                                  "-c", "hdbscan:max_points=1000,min_cluster_size=50")
    assert status == 0, err
    agglo, hdb = summary["cells"]
    assert "agglomerative: 3,000 points > max_points=1,000" in err and "300 k-means micro-clusters" in err
    assert "hdbscan: 3,000 points > max_points=1,000" in err and "approximate_predict" in err
    assert agglo["metrics"]["nmi"] >= 0.95 and hdb["metrics"]["nmi"] >= 0.9
    import mlflow

    tags = mlflow.tracking.MlflowClient(tracking_uri=store).get_run(hdb["mlflow_run_id"]).data.tags
    assert tags["cluster.method"] == "sample:1000+approximate_predict" and "approximate_predict" in tags["cluster.plan"]


def test_the_embedding_cache_memory_maps_what_it_loads(tmp_path):
    from clusterbench.core.contracts import Embedding, EmbedStats
    from clusterbench.run.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    X = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    cache.store("k1", Embedding(X, EmbedStats(model="m"), logits=X[:, :3]))
    hit = cache.load("k1")
    assert isinstance(hit.features, np.memmap) and (np.asarray(hit.features) == X).all()
    assert hit.logits.shape == (100, 3) and hit.stats.model == "m"


@pytest.mark.slow
def test_a_clusterer_declining_a_cell_is_reported_before_anything_runs(blobs, run_cli, capsys):
    """DeepCluster declares it trains on images: crossed with a features dataset its cells are
    skipped, said before the first cell runs and recorded with the reason; the others run."""
    folder = blobs[0]
    spec = f"features:path={folder / 'X.npy'},labels={folder / 'y.npy'}"
    status, _, err, summary = run_cli("-d", spec, "-e", "identity", "-c", "kmeans", "-c", "deepcluster:epochs=1",
                                      "--k", "10", "--pictures", "false")
    assert status == 0, err
    by_clusterer = {c["clusterer"].split(":")[0]: c for c in summary["cells"]}
    assert by_clusterer["kmeans"]["status"] == "ok" and by_clusterer["kmeans"]["metrics"]["nmi"] > 0.9
    skipped = by_clusterer["deepcluster"]
    assert skipped["status"] == "skipped"
    assert skipped["error"] == "clusterer 'deepcluster': trains on images, and dataset 'features' holds precomputed features"
    lines = err.splitlines()
    said = next(i for i, line in enumerate(lines) if line.startswith("skipped ") and "deepcluster" in line)
    first_cell = next(i for i, line in enumerate(lines) if line.startswith("[1/"))
    assert said < first_cell
