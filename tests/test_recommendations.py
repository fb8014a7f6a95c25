"""A suite ends in a label-free recommendation per dataset: in --json, on the terminal's last lines,
on the suite's MLflow run; where labels exist its selection regret is checked arithmetic."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from clusterbench.cli import main

    root = tmp_path_factory.mktemp("recommend")
    out = root / "summary.json"
    status = main(["run", "-d", "digits:limit=400", "-e", "pixels", "-c", "kmeans", "-c", "agglomerative:linkage=ward",
                   "-c", "agglomerative:linkage=single", "--k", "10", "--pictures", "false", "--no-progress",
                   "--results", str(root / "results"), "--json", str(out)])
    return status, json.loads(out.read_text()), root


@pytest.mark.slow
def test_the_recommendation_and_its_regret_arithmetic(digits_run):
    status, summary, _ = digits_run
    assert status == 0
    (entry,) = summary["recommendations"]
    nmi = {c["key"]: c["metrics"]["nmi"] for c in summary["cells"]}
    assert entry["dataset"] == "digits:limit=400" and entry["cell_key"] in nmi
    assert entry["best_nmi"] == pytest.approx(max(nmi.values()))
    assert entry["nmi"] == pytest.approx(nmi[entry["cell_key"]])
    assert entry["selection_regret_nmi"] == pytest.approx(max(nmi.values()) - nmi[entry["cell_key"]])
    # single linkage chains digits into one giant cluster: the consensus of the others outvotes it
    assert "single" not in entry["cell_key"]


@pytest.mark.slow
def test_the_suite_run_records_the_recommendation(digits_run):
    from mlflow.tracking import MlflowClient

    from clusterbench.track.tracking import ROLE_TAG, default_tracking_uri

    _, summary, root = digits_run
    client = MlflowClient(default_tracking_uri(root / "results"))
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("clusterbench/")]
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.{ROLE_TAG} = 'suite'")
    assert summary["recommendations"][0]["cell_key"] in parent.data.tags["recommendation"]
    assert parent.data.metrics["selection_regret_nmi"] == pytest.approx(summary["recommendations"][0]["selection_regret_nmi"])


@pytest.mark.slow
def test_shuffled_labels_change_no_recommendation(tmp_path):
    """The criterion never sees the labels: the same grid over the same images with the labels
    permuted recommends the same configuration."""
    import numpy as np
    from sklearn.datasets import load_digits

    from clusterbench.cli import main

    digits = load_digits()
    X = digits.data[:300].astype(np.float32)
    picked = []
    for name, labels in (("true", digits.target[:300]), ("shuffled", np.random.default_rng(0).permutation(digits.target[:300]))):
        np.save(tmp_path / f"X_{name}.npy", X)
        np.save(tmp_path / f"y_{name}.npy", labels)
        out = tmp_path / f"{name}.json"
        assert main(["run", "-d", f"features:path={tmp_path / f'X_{name}.npy'},labels={tmp_path / f'y_{name}.npy'}",
                     "-e", "identity", "-c", "kmeans", "-c", "agglomerative:linkage=average", "-c", "agglomerative",
                     "--k", "8", "--k", "12", "--pictures", "false", "--no-progress", "--results", str(tmp_path / name),
                     "--json", str(out)]) == 0
        (entry,) = json.loads(out.read_text())["recommendations"]
        picked.append(entry["cell_key"].split("|", 1)[1])  # the configuration, without the dataset's path
    assert picked[0] == picked[1]
