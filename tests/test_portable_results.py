"""A results folder moved (or restored from a CI cache into another checkout) keeps working: new
artifacts land inside the folder where it is now, nothing is written at the old path, and the
report, export and cache find what was there."""

from __future__ import annotations

import re
import shutil

from mlflow.tracking import MlflowClient

from clusterbench.cli import main
from clusterbench.track.tracking import default_tracking_uri

from conftest import run_cli_once


def _pictures_in_report(results, tmp_path, capsys) -> int:
    page = tmp_path / "report.html"
    assert main(["report", "--results", str(results), "--html", str(page)]) == 0
    capsys.readouterr()
    html = page.read_text()
    return len(re.findall(r'<img[^>]+src="data:image/png;base64,', html))


def _suite(tmp_path, *clusterers: str) -> str:
    """One experiment (``clusterbench/moved``) for both runs: a suite file of a fixed name."""
    path = tmp_path / f"moved-{len(clusterers)}.toml"
    path.write_text('name = "moved"\ndatasets = ["digits"]\nembedders = ["pixels"]\n'
                    f"clusterers = {list(clusterers)!r}\n".replace("'", '"'))
    return str(path)


def test_a_moved_results_folder_writes_into_itself_and_finds_its_pictures(tmp_path, capsys):
    old, new = tmp_path / "checkout-a" / "results", tmp_path / "checkout-b" / "results"
    status, _, err, _ = run_cli_once(old, _suite(tmp_path, "kmeans:n_init=1"))
    assert status == 0, err
    pictures_before = _pictures_in_report(old, tmp_path, capsys)
    assert pictures_before >= 4  # gallery, contingency, map, sizes of the one cell

    new.parent.mkdir()
    shutil.move(old, new)
    shutil.rmtree(old.parent)
    # a new cell (its embedding from the moved cache), and the finished one skipped as done
    status, _, err, summary = run_cli_once(new, _suite(tmp_path, "kmeans:n_init=1", "agglomerative:linkage=ward"),
                                           "--pictures", "false")
    assert status == 0, err
    assert not old.parent.exists()  # nothing recreated at the old path
    fresh = next(c for c in summary["cells"] if c["clusterer"].startswith("agglomerative"))
    assert not fresh["cached"] and fresh["metrics"]["embed_cached"] == 1.0
    assert next(c for c in summary["cells"] if c["clusterer"].startswith("kmeans"))["cached"]

    client = MlflowClient(default_tracking_uri(new))
    run = client.get_run(fresh["mlflow_run_id"])
    assert run.info.artifact_uri.startswith((new / "mlartifacts").as_uri() + "/")
    assert (new / "mlartifacts" / run.info.run_id / "artifacts" / "metrics.json").is_file()
    for exp in client.search_experiments(filter_string="name LIKE 'clusterbench/%'"):
        assert exp.artifact_location.startswith(new.as_uri()), exp.artifact_location
    assert _pictures_in_report(new, tmp_path, capsys) == pictures_before
    assert main(["export", "--results", str(new), "--out", str(tmp_path / "export"),
                 "--cell", "digits|pixels|kmeans:n_init=1|seed=0|k=default|reduce=none"]) == 0
    assert (tmp_path / "export" / "index.html").is_file()


def test_a_copied_results_folder_leaves_the_original_alone(tmp_path, capsys):
    """A CI cache restored beside the folder it came from: the copy writes into the copy."""
    original, copy = tmp_path / "a" / "results", tmp_path / "b" / "results"
    assert run_cli_once(original, "-d", "digits", "-e", "pixels", "-c", "kmeans:n_init=1", "--pictures", "false")[0] == 0
    shutil.copytree(original, copy)
    before = sorted(p.name for p in (original / "mlartifacts").iterdir())
    status, _, err, summary = run_cli_once(copy, "-d", "digits", "-e", "pixels", "-c", "kmeans:n_init=1", "--force",
                                           "--pictures", "false")
    assert status == 0, err
    assert sorted(p.name for p in (original / "mlartifacts").iterdir()) == before
    assert (copy / "mlartifacts" / summary["cells"][0]["mlflow_run_id"]).is_dir()
    # the original still reads its own artifacts: its store was not touched by the copy's runs
    run_id = MlflowClient(default_tracking_uri(original)).search_runs(
        [e.experiment_id for e in MlflowClient(default_tracking_uri(original)).search_experiments()])[0].info.run_id
    assert MlflowClient(default_tracking_uri(original)).get_run(run_id).info.artifact_uri.startswith(original.as_uri())


def test_the_moved_studies_and_cache_never_name_the_old_path(tmp_path):
    """The Optuna studies and the embedding cache are found through the folder: none of their
    files refers to where it used to be. (MLflow's store is re-pointed on opening; the runs' own
    records, such as the results_dir and optuna_storage params, still say where they ran.)"""
    import optuna

    from clusterbench.k.study import default_storage_url

    old, new = tmp_path / "a" / "results", tmp_path / "b" / "results"
    suite = tmp_path / "k.toml"
    suite.write_text('name = "moved-k"\ndatasets = ["digits"]\nembedders = ["pixels"]\nclusterers = ["kmeans:n_init=1"]\n'
                     'k = "auto:silhouette"\npictures = false\n[tune]\nk_max = 5\n')
    assert run_cli_once(old, str(suite))[0] == 0
    new.parent.mkdir()
    shutil.move(old, new)
    kept = [new / "optuna.db", *(new / "cache").rglob("*")]
    assert [p for p in kept if p.is_file() and str(old).encode() in p.read_bytes()] == []
    studies = optuna.get_all_study_summaries(default_storage_url(new))
    assert len(studies) == 1 and studies[0].n_trials == 4  # K = 2..5, in the moved optuna.db
    assert any((new / "cache").rglob("*.features.npy"))
