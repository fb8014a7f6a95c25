"""Semantic K offline through WordNet 3.0: distances between the predicted classes' synsets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from clusterbench.k.wordnet import SYSTEM_WORDNET, distance_matrix, synsets_of, wordnet_reader

pytestmark = pytest.mark.skipif(not (SYSTEM_WORDNET / "data.noun").is_file(),
                                reason="WordNet 3.0 is not installed (apt-get install wordnet-base)")
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    return wordnet_reader(tmp_path_factory.mktemp("wordnet"))


def test_imagenet_wnids_are_wordnet_30_noun_synsets(reader):
    tabby, tiger_cat, tench = synsets_of(reader, ["n02123045", "n02123159", "n01440764"])
    assert (tabby.name(), tiger_cat.name(), tench.name()) == ("tabby.n.01", "tiger_cat.n.02", "tench.n.01")


# lin needs information content counted over the whole noun hierarchy first (tens of seconds)
@pytest.mark.parametrize("similarity", ["wup", "path", pytest.param("lin", marks=pytest.mark.slow)])
def test_two_cats_are_closer_than_a_cat_and_a_fish(reader, similarity):
    D = distance_matrix(reader, synsets_of(reader, ["n02123045", "n02123159", "n01440764"]), similarity)
    assert D.shape == (3, 3) and np.allclose(D, D.T) and np.allclose(np.diag(D), 0)
    assert D[0, 1] < D[0, 2] and D[0, 1] < D[1, 2]


@pytest.mark.parametrize(("similarity", "published"), [("wup", 0.857), ("path", 0.2)])
def test_dog_and_cat_as_the_nltk_wordnet_howto_prints_them(reader, similarity, published):
    D = distance_matrix(reader, synsets_of(reader, ["n02084071", "n02121620"]), similarity)  # dog.n.01, cat.n.01
    assert 1 - D[0, 1] == pytest.approx(published, abs=1e-3)


def test_a_bad_wnid_is_one_line(reader):
    from clusterbench.core.errors import UserError

    with pytest.raises(UserError, match="'tabby' is not a WordNet noun id"):
        synsets_of(reader, ["tabby"])


def test_missing_wordnet_data_is_refused_before_anything_runs(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSTERBENCH_WORDNET", str(tmp_path / "nowhere"))
    status, _, err, summary = run_cli("-d", "digits:limit=40", "-e", "efficientnet-lite0", "-c", "kmeans",
                                      "--k", "semantic", "--tune", "vectors=wordnet")
    assert status == 2 and summary is None and err.count("\n") == 1
    assert "WordNet 3.0 not found" in err and "apt-get install wordnet-base" in err


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_semantic_k_through_wordnet_on_fashion_mnist_with_the_pretrained_network(run_cli, results_dir, tmp_path):
    status, _, err, summary = run_cli("-d", "fashion-mnist:split=test,limit=300", "-e", "efficientnet-lite0", "-c", "kmeans",
                                      "--k", "semantic", "--tune", "vectors=wordnet,similarity=wup,threshold=0.5")
    assert status == 0, err
    (cell,) = summary["cells"]
    p = cell["params"]
    assert p["k_source"] == "semantic" and p["semantic.vectors"] == "wordnet" and p["semantic.similarity"] == "wup"
    assert 2 <= p["k"] <= p["semantic.n_labels"] and p["semantic.n_oov"] == 0 and cell["metrics"]["n_clusters"] == p["k"]
    client = MlflowClient(f"sqlite:///{results_dir / 'mlflow.db'}")
    run_id = cell["mlflow_run_id"]
    artifacts = {a.path for a in client.list_artifacts(run_id, "semantic")}
    assert {"semantic/dendrogram.png", "semantic/label_histogram.png", "semantic/label_histogram.json"} <= artifacts
    histogram = json.loads(Path(client.download_artifacts(run_id, "semantic/label_histogram.json", str(tmp_path))).read_text())
    assert sum(histogram.values()) == 300 and len(histogram) == p["semantic.n_labels"]
    # the pretrained network sees clothes among other things: T-shirts as jerseys, pullovers as sweatshirts
    assert {"jersey", "sweatshirt", "trench coat"} & {name for name, _ in Counter(histogram).most_common(10)}
