"""k=semantic: K from the meaning of the ImageNet classes the embedder's own head predicts.

Offline: the classifier is a DenseNet-121 state dict saved by the test (its head rigged so the
16 images spread over 8 known classes), the word vectors a tiny KeyedVectors built here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from mlflow.tracking import MlflowClient
from scipy.cluster.hierarchy import fcluster, linkage

from clusterbench.core.errors import UserError
from clusterbench.datasets import DATASETS
from clusterbench.k.semantic_k import label_vector, load_vectors
from clusterbench.methods.embedders import EMBEDDERS

# tabby, tiger cat, Persian cat, Egyptian cat, goldfish, great white shark, tiger shark, hammerhead
CLASSES = [281, 282, 283, 285, 1, 2, 3, 4]
WORDS = {
    "cat": [1, 0, 0, 0], "tabby": [0.9, 0.15, 0, 0], "tiger": [0.5, 0, 0.85, 0], "shark": [0, 1, 0, 0.1],
    "goldfish": [0.1, 0.9, 0, 0.3], "great_white_shark": [0, 0.95, 0, 0.3], "fish": [0, 1, 0, 0],
}


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# What each class name must become under the documented rules (phrase first, else the mean of
# its known words' unit vectors; no known word: out of vocabulary).
EXPECTED_VECTORS = {
    "tabby": unit(WORDS["tabby"]),
    "tiger cat": unit(unit(WORDS["tiger"]) + unit(WORDS["cat"])),
    "Persian cat": unit(WORDS["cat"]),
    "Egyptian cat": unit(WORDS["cat"]),
    "goldfish": unit(WORDS["goldfish"]),
    "great white shark": unit(WORDS["great_white_shark"]),
    "tiger shark": unit(unit(WORDS["tiger"]) + unit(WORDS["shark"])),
    "hammerhead": None,
}


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> Path:
    kv = KeyedVectors(vector_size=4)
    kv.add_vectors(list(WORDS), np.array(list(WORDS.values()), dtype=np.float32))
    path = tmp_path_factory.mktemp("vectors") / "tiny.kv"
    kv.save(str(path))
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A DenseNet-121 state dict whose head scores 8 classes by the (centred) features of 8 of the
    16 images, so the predictions spread over them; and the logits computed here, independently."""
    from torchvision.models import densenet121

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = densenet121(weights=None)
    plain = root / "plain.pth"
    torch.save(model.state_dict(), plain)
    data = DATASETS.create("digits:limit=16").load()
    features = EMBEDDERS.create(f"densenet121:weights={plain},size=32,precision=fp32").embed(data).features.astype(np.float64)
    mu = features.mean(axis=0)
    protos = features[: len(CLASSES)] - mu
    weight = np.zeros((1000, features.shape[1]))
    bias = np.full(1000, -1e4)
    weight[CLASSES], bias[CLASSES] = protos, -(protos @ mu)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(weight))
        model.classifier.bias.copy_(torch.tensor(bias))
    path = root / "rigged.pth"
    torch.save(model.state_dict(), path)
    logits = features @ weight.T + bias
    return path, logits


def expected_k(labels: list[str], threshold: float, method: str = "single") -> int:
    known = [EXPECTED_VECTORS[label] for label in labels if EXPECTED_VECTORS[label] is not None]
    oov = sum(EXPECTED_VECTORS[label] is None for label in labels)
    groups = 1 if len(known) == 1 else len(set(fcluster(linkage(np.array(known), method, "cosine"), threshold, "distance")))
    return groups + oov


def test_label_names_become_vectors_by_the_stated_rules(vectors):
    kv = load_vectors(str(vectors))
    for label, expected in EXPECTED_VECTORS.items():
        vec, how = label_vector(kv, label)
        if expected is None:
            assert vec is None and how == "oov"
        else:
            np.testing.assert_allclose(vec, expected, atol=1e-6)
    assert label_vector(kv, "great white shark")[1] == "phrase:great_white_shark"
    assert label_vector(kv, "Egyptian cat")[1] == "partial:cat (missing Egyptian)"
    assert label_vector(kv, "tiger shark")[1] == "words:tiger+shark"


def test_word2vec_and_glove_text_files_load(tmp_path):
    rows = [("cat", [1.0, 0.0]), ("dog", [0.8, 0.6])]
    w2v = tmp_path / "w.txt"
    w2v.write_text("2 2\n" + "".join(f"{w} {v[0]} {v[1]}\n" for w, v in rows))
    glove = tmp_path / "g.txt"
    glove.write_text("".join(f"{w} {v[0]} {v[1]}\n" for w, v in rows))
    for path in (w2v, glove):
        kv = load_vectors(str(path))
        np.testing.assert_allclose(kv["dog"], [0.8, 0.6])
    with pytest.raises(UserError, match="no such file"):
        load_vectors(str(tmp_path / "missing.bin"))


@pytest.mark.slow
def test_k_semantic_end_to_end(run_cli, results_dir, tmp_path, classifier, vectors):
    threshold = 0.3
    weights, logits = classifier
    names = EMBEDDERS.create("densenet121:weights=none").classes().names
    histogram = Counter(names[i] for i in logits.argmax(axis=1))
    assert len(histogram) >= 4  # the rigged head spreads the 16 images over several classes

    status, _, err, summary = run_cli("-d", "digits:limit=16", "-e", f"densenet121:weights={weights},size=32,precision=fp32",
                                      "-c", "kmeans", "--k", "semantic", "--tune", f"vectors={vectors},threshold={threshold}")
    assert status == 0, err
    (cell,) = summary["cells"]
    p = cell["params"]
    k = expected_k(sorted(histogram), threshold)
    assert p["k"] == k and p["k_source"] == "semantic" and cell["metrics"]["n_clusters"] == k
    assert p["semantic.n_labels"] == len(histogram) and p["semantic.linkage"] == "single"
    assert p["semantic.n_oov"] == int("hammerhead" in histogram) and p["semantic.threshold"] == threshold

    client = MlflowClient(f"sqlite:///{results_dir / 'mlflow.db'}")
    run_id = cell["mlflow_run_id"]
    artifacts = {a.path for a in client.list_artifacts(run_id, "semantic")}
    assert {"semantic/dendrogram.png", "semantic/label_histogram.png", "semantic/label_histogram.json",
            "semantic/labels.json", "semantic/oov.txt"} <= artifacts
    logged = json.loads(Path(client.download_artifacts(run_id, "semantic/label_histogram.json", str(tmp_path))).read_text())
    assert logged == dict(histogram)
    oov = Path(client.download_artifacts(run_id, "semantic/oov.txt", str(tmp_path))).read_text().split()
    assert oov == (["hammerhead"] if "hammerhead" in histogram else [])
    run = client.get_run(run_id)
    assert run.data.params["k_source"] == "semantic" and run.data.params["k"] == str(k)


@pytest.mark.parametrize("threshold, method, oov", [(0.01, "single", "singleton"), (0.2, "average", "drop"),
                                                    (0.5, "single", "singleton"), (0.5, "complete", "drop")])
def test_k_is_the_number_of_groups_at_the_cut(classifier, vectors, threshold, method, oov):
    from clusterbench.core.registry import Spec
    from clusterbench.core.suite import Cell
    from clusterbench.k.semantic_k import semantic_k
    from clusterbench.methods.embedders.base import Classes, Embedding, EmbedStats

    _, logits = classifier
    names = EMBEDDERS.create("densenet121:weights=none").classes().names
    labels = sorted({names[i] for i in logits.argmax(axis=1)})
    tune = {"vectors": str(vectors), "threshold": threshold, "linkage": method, "oov": oov}
    cell = Cell(Spec.parse("digits"), Spec.parse("densenet121:weights=none"), Spec.parse("kmeans"), 0, "semantic", None, tune)
    embedding = Embedding(np.zeros((16, 2), np.float32), EmbedStats(), logits, Classes(names))
    expected = expected_k(labels, threshold, method) - (int("hammerhead" in labels) if oov == "drop" else 0)
    if expected < 2:
        with pytest.raises(UserError, match="group"):
            semantic_k(cell, FakeData(16), embedding)
    else:
        choice = semantic_k(cell, FakeData(16), embedding)
        assert choice.overrides == {"k": expected} and choice.params["k"] == expected


def test_semantic_k_takes_the_class_names_from_the_embedding(classifier, vectors):
    from clusterbench.core.registry import Spec
    from clusterbench.core.suite import Cell
    from clusterbench.k.semantic_k import semantic_k
    from clusterbench.methods.embedders.base import Classes, Embedding, EmbedStats

    _, logits = classifier
    tune = {"vectors": str(vectors), "threshold": 0.01}
    cell = Cell(Spec.parse("digits"), Spec.parse("densenet121:weights=none"), Spec.parse("kmeans"), 0, "semantic", None, tune)
    with pytest.raises(UserError, match="without the names of their classes"):
        semantic_k(cell, FakeData(16), Embedding(np.zeros((16, 2), np.float32), EmbedStats(), logits))
    # other names for the same logits: each predicted class its own word, so K = the classes predicted
    words = list(WORDS)
    names = [words[i % len(words)] for i in range(1000)]
    predicted = {names[i] for i in logits.argmax(axis=1)}
    choice = semantic_k(cell, FakeData(16), Embedding(np.zeros((16, 2), np.float32), EmbedStats(), logits, Classes(names)))
    assert choice.params["semantic.n_labels"] == len(predicted)


class FakeData:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_semantic_k_refuses_an_embedder_without_a_classifier_head(run_cli, vectors):
    status, _, err, summary = run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans", "--k", "semantic",
                                      "--tune", f"vectors={vectors}")
    assert status == 2 and summary is None and err.count("\n") == 1
    assert "k=semantic needs an embedder with an ImageNet classifier head (" in err
    assert "efficientnet-lite0" in err and "resnet152" in err and "'pixels' has none" in err


def test_semantic_k_needs_word_vectors(run_cli):
    status, _, err, _ = run_cli("-d", "digits", "-e", "densenet121", "-c", "kmeans", "--k", "semantic")
    assert status == 2 and "needs word vectors" in err


@pytest.mark.slow
def test_semantic_cell_after_a_plain_cell_on_the_same_embedding(run_cli, classifier, vectors):
    # The first cell embeds without logits; the semantic cell in the same run must still get them.
    weights, logits = classifier
    names = EMBEDDERS.create("densenet121:weights=none").classes().names
    histogram = Counter(names[i] for i in logits.argmax(axis=1))
    status, _, err, summary = run_cli("-d", "digits:limit=16", "-e", f"densenet121:weights={weights},size=32,precision=fp32",
                                      "-c", "kmeans:k=3", "-c", "kmeans:k=semantic",
                                      "--tune", f"vectors={vectors},threshold=0.3")
    assert status == 0, err
    plain, semantic = summary["cells"]
    assert plain["params"]["k_source"] == "spec" and semantic["params"]["k_source"] == "semantic"
    assert semantic["params"]["k"] == expected_k(sorted(histogram), 0.3)


def test_cached_logits_keep_their_classes(tmp_path):
    from clusterbench.methods.embedders.base import Classes, Embedding, EmbedStats
    from clusterbench.run.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    classes = EMBEDDERS.create("densenet121:weights=none").classes()
    logits = np.random.default_rng(0).normal(size=(4, 1000)).astype(np.float32)
    cache.store("key", Embedding(np.ones((4, 2), np.float32), EmbedStats(weights="w", details={"layer": "x"}), logits, classes))
    hit = cache.load("key")
    assert hit.classes == classes and hit.classes.wnids[0] == "n01440764" and isinstance(hit.classes, Classes)
    assert hit.stats.weights == "w" and hit.stats.details == {"layer": "x"}
    np.testing.assert_array_equal(hit.logits, logits)
