"""k=semantic competes with the K estimators: its chosen K against the number of classes and its
NMI regret, in --json, MLflow and the report's K table. The pretrained EfficientNet-Lite0 and
WordNet 3.0, offline, on 300 Fashion-MNIST test images."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from clusterbench.cli import main

from conftest import needs_fashion


@needs_fashion
def test_semantic_k_gets_an_error_and_a_regret_beside_an_estimator(cli, store, capsys):
    status, _, err, summary = cli("-d", "fashion-mnist:split=test,limit=300", "-e", "efficientnet-lite0", "-c", "kmeans",
                                  "--k", "semantic", "--k", "auto:elbow", "--tune", "vectors=wordnet,k_max=12")
    assert status == 0, err
    semantic, elbow = summary["cells"]
    p, m = semantic["params"], semantic["metrics"]
    assert p["k_source"] == "semantic" and p["k_estimator"] == "semantic"
    assert m["k_error"] == p["k"] - 10 and m["k_chosen"] == p["k"]
    curve = semantic["k_curve"]
    assert curve["k"] == sorted({*range(2, 13), p["k"]}) and curve["estimator"] == "semantic" and "score" not in curve
    assert m["k_regret_nmi"] == pytest.approx(max(curve["nmi"]) - curve["nmi"][curve["k"].index(p["k"])])
    assert m["k_nmi_at_chosen"] == pytest.approx(m["nmi"], abs=1e-6)  # the sweep's fit at K is the cell's fit
    assert elbow["metrics"]["k_regret_nmi"] >= 0

    client = MlflowClient(store)
    assert sorted(h.step for h in client.get_metric_history(semantic["mlflow_run_id"], "k_curve.nmi")) == curve["k"]
    parent = client.get_run(semantic["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
    assert any(a.path.endswith(".png") for a in client.list_artifacts(parent, "k_estimators"))  # semantic beside elbow

    assert main(["report", "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    row = f"| semantic | fashion-mnist:limit=300,split=test | efficientnet-lite0 | kmeans | 0 | none | {p['k']} | 10 |"
    assert row in out
    means = [line for line in out.splitlines() if line.startswith("| semantic | 1 |")]
    assert len(means) == 1  # the estimators' means: semantic is one of them


def test_rarely_predicted_classes_are_left_out_with_min_share(results_dir):
    """16 images: 7 tabby cats, 7 goldfish, one pedestal, one can opener (ImageNet classes, WordNet
    3.0 distances). Kept, the two one-off predictions are groups of their own; min_share drops them."""
    import numpy as np

    from clusterbench.core.registry import Spec
    from clusterbench.core.suite import Cell
    from clusterbench.k.semantic_k import WORDNET_THRESHOLD, semantic_k
    from clusterbench.methods.embedders import EMBEDDERS
    from clusterbench.methods.embedders.base import Embedding, EmbedStats

    classes = EMBEDDERS.create("efficientnet-lite0").classes()
    index = {name: i for i, name in enumerate(classes.names)}
    predicted = ["tabby"] * 7 + ["goldfish"] * 7 + ["pedestal", "can opener"]
    logits = np.zeros((16, len(classes.names)), np.float32)
    logits[np.arange(16), [index[name] for name in predicted]] = 1.0
    embedding = Embedding(np.zeros((16, 2), np.float32), EmbedStats(), logits, classes)

    def k_of(**tune):
        cell = Cell(Spec.parse("digits"), Spec.parse("efficientnet-lite0"), Spec.parse("kmeans"), 0, "semantic", None,
                    {"vectors": "wordnet", **tune})
        return semantic_k(cell, list(range(16)), embedding, results_dir=results_dir).params

    every = k_of()
    assert every["semantic.threshold"] == WORDNET_THRESHOLD == 0.3 and every["semantic.n_labels"] == 4
    assert every["k"] == 4 and every["semantic.n_rare_left_out"] == 0  # cat, fish, pedestal, can opener apart
    common = k_of(min_share=0.1)  # 1/16 of the images each: below a tenth
    assert common["k"] == 2 and common["semantic.n_rare_left_out"] == 2 and common["semantic.n_labels"] == 4


def test_a_bad_min_share_is_one_line_before_anything_runs(run_cli):
    status, _, err, summary = run_cli("-d", "digits", "-e", "efficientnet-lite0", "-c", "kmeans", "--k", "semantic",
                                      "--tune", "vectors=wordnet,min_share=2")
    assert status == 2 and summary is None and err.count("\n") == 1
    assert "tune min_share=2: expected a fraction of the images in [0, 1)" in err
