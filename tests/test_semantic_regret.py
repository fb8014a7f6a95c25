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
