"""--k auto:NAME through the CLI: one cell per --k, each estimator's own study, the K-regret of every
labelled cell (JSON, MLflow, report); the UMAP reducer (NMI, cache); bad input as one line."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from clusterbench.cli import main
from clusterbench.k.estimators import K_ESTIMATORS
from clusterbench.k.estimators.base import KEstimatorBase

FIVE = ("silhouette", "gap", "prediction-strength", "stability", "silhouette-umap")


@pytest.mark.slow
def test_five_estimators_run_five_cells_each_with_its_k_error_and_regret(cli, store, results_dir, tmp_path, capsys):
    ks = [a for name in FIVE for a in ("--k", f"auto:{name}")]
    status, _, err, summary = cli("-d", "digits", "-e", "pixels", "-c", "kmeans", *ks, "--tune", "k_max=15")
    assert status == 0, err
    cells = summary["cells"]
    assert len(cells) == 5 and all(c["status"] == "ok" for c in cells)
    studies, chosen = set(), {}
    for c in cells:
        p, m = c["params"], c["metrics"]
        assert 2 <= p["k"] <= 15 and m["n_clusters"] == p["k"]
        assert m["k_error"] == p["k"] - 10 and m["k_chosen"] == p["k"]
        assert m["k_regret_nmi"] >= 0 and m["k_regret_nmi"] == pytest.approx(m["k_best_nmi_value"] - m["k_nmi_at_chosen"])
        assert m["k_nmi_at_chosen"] == pytest.approx(m["nmi"], abs=1e-6)  # the sweep's fit is the cell's fit
        curve = c["k_curve"]
        assert curve["k"] == list(range(2, 16)) and len(curve["nmi"]) == len(curve["ami"]) == 14
        assert max(curve["nmi"]) == pytest.approx(m["k_best_nmi_value"])
        studies.add(p["study_name"])
        chosen[p["k_estimator"]] = p["k"]
    assert len(studies) == 5 and set(chosen) == set(FIVE)  # auto:silhouette is today's auto: its estimator is silhouette
    assert any(abs(k - 10) <= 1 for k in chosen.values()), chosen
    assert chosen["silhouette"] in (9, 10, 11)

    client = MlflowClient(store)
    gap = next(c for c in cells if c["params"]["k_estimator"] == "gap")
    history = client.get_metric_history(gap["mlflow_run_id"], "k_curve.nmi")
    assert sorted(h.step for h in history) == list(range(2, 16))
    assert "k/estimator_vs_k.png" in {a.path for a in client.list_artifacts(gap["mlflow_run_id"], "k")}
    parent = client.get_run(gap["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
    figures = [a.path for a in client.list_artifacts(parent, "k_estimators")]
    assert any(f.endswith(".png") for f in figures), figures

    assert main(["report", "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert "K chosen per cell" in out and "K estimators: mean over cells" in out
    assert f"| gap | digits | pixels | kmeans | 0 | none | {chosen['gap']} | 10 | {chosen['gap'] - 10} |" in out


@pytest.mark.slow
def test_a_suite_file_lists_estimators_and_numbers_in_k(run_cli, tmp_path):
    suite = tmp_path / "k.toml"
    suite.write_text('datasets = ["digits:limit=400"]\nembedders = ["pixels"]\nclusterers = ["kmeans"]\n'
                     'k = ["auto:davies-bouldin", 10, "auto:elbow"]\n[tune]\nk_max = 8\n')
    status, _, err, summary = run_cli(str(suite))
    assert status == 0, err
    by = {str(c["params"]["k_source"]): c for c in summary["cells"]}
    assert set(by) == {"auto:davies-bouldin", "given", "auto:elbow"}
    assert by["given"]["params"]["k"] == 10 and "k_regret_nmi" not in by["given"]["metrics"]
    assert by["auto:elbow"]["metrics"]["k_regret_nmi"] >= 0


class _Peeks(KEstimatorBase):
    """reads the labels (for the refusal test)"""

    needs_labels = True

    def __init__(self):
        pass


@pytest.fixture
def label_reader():
    K_ESTIMATORS.register("peeks-at-labels")(_Peeks)
    yield
    K_ESTIMATORS._forget("peeks-at-labels")


@pytest.mark.parametrize(("args", "message"), [
    (("--k", "auto:gapp"), "unknown k estimator 'gapp' (did you mean 'gap'?)"),
    (("--k", "auto:"), "name a k estimator after 'auto:'"),
    (("--k", "auto:gap:refs=1"), "k estimator 'gap': refs=1 must be"),
    (("--reduce", "umap=0"), "reducer: umap=0 must be"),
    (("--reduce", "umap=10,umap_min_dist=2"), "umap_min_dist=2 must be"),
    (("--k", "auto:peeks-at-labels"), "needs the dataset's labels"),
])
def test_bad_input_is_one_line_and_exit_2(run_cli, label_reader, args, message):
    status, _, err, summary = run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans", *args)
    assert status == 2 and summary is None
    assert err.strip().count("\n") == 0 and err.startswith("clusterbench: error: ") and message in err, err


def test_an_estimator_needs_a_clusterer_that_takes_k(run_cli):
    status, _, err, _ = run_cli("-d", "digits", "-e", "pixels", "-c", "hdbscan", "--k", "auto:gap")
    assert status == 2 and "does not take the grid's K" in err and err.count("\n") == 1


@pytest.mark.slow
def test_umap_larger_than_the_features_fails_the_cell_in_one_line(run_cli):
    # the feature dimension is known only once the features exist: the cell fails (exit 1), one line
    status, _, err, summary = run_cli("-d", "digits:limit=200", "-e", "pixels", "-c", "kmeans", "--reduce", "umap=100")
    (cell,) = summary["cells"]
    assert status == 1 and cell["status"] == "failed"
    assert cell["error"] == "reducer umap=100: more than the 64 dimensions of these features"


@pytest.mark.slow
def test_umap_then_hdbscan_and_ward_on_digits_and_the_reduced_cache(run_cli, results_dir, monkeypatch):
    status, _, err, summary = run_cli("-d", "digits", "-e", "pixels", "-c", "hdbscan:min_cluster_size=50,min_samples=10",
                                      "-c", "agglomerative:linkage=ward", "--reduce", "umap=10")
    assert status == 0, err
    hdb, ward = summary["cells"]
    assert hdb["metrics"]["nmi"] >= 0.85 and hdb["metrics"]["noise_fraction"] < 0.05  # REFERENCE: 0.89-0.91
    assert ward["metrics"]["nmi"] >= 0.85 and ward["params"]["k"] == 10
    assert ward["params"]["feature_dim"] == 10 and "umap=10" in ward["params"]["reducer"]
    (entry,) = list((results_dir / "cache" / "reduced").glob("*.features.npy"))

    import clusterbench.core.reduce as reduce

    monkeypatch.setattr(reduce, "umap_embed", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    status, _, err, again = run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans", "--reduce", "umap=10", "--k", "10",
                                    json_name="again.json")
    assert status == 0, err  # served from cache/reduced: UMAP not run again
    assert again["cells"][0]["metrics"]["nmi"] >= 0.85
    assert list((results_dir / "cache" / "reduced").glob("*.features.npy")) == [entry]
