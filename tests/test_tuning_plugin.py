"""A clusterer with a tunable parameter of its own is tuned by ``--k auto`` with no edit to the
harness: it declares the parameter in ``search_space`` and its narrowing key in ``tune_keys``."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from clusterbench.cli import main
from clusterbench.methods.clusterers.base import (
    CLUSTERERS,
    ClustererBase,
    ClusterResult,
    Param,
    check_features,
)

NAME = "test-gamma-kmeans"


class GammaKMeans(ClustererBase):
    """k-means on signed powers of the features, sign(x) * |x| ** gamma."""

    tune_keys = {"gammas": "test-gamma-kmeans: exponents to try, joined by '+' (default 0.5+1+2)"}

    def __init__(self, k: int | None = None, gamma: float = 1.0, seed: int = 0):
        self.k, self.gamma, self.seed = k, gamma, seed

    @classmethod
    def search_space(cls, n, dim, tune) -> list[Param]:
        return [Param.categorical("gamma", [float(g) for g in str(tune.get("gammas", "0.5+1+2")).split("+")])]

    def fit(self, X, context=None) -> ClusterResult:
        from sklearn.cluster import KMeans

        X = check_features(X, self.k, NAME)
        Z = np.sign(X) * np.abs(X) ** self.gamma
        return ClusterResult(KMeans(self.k, n_init=1, max_iter=30, random_state=self.seed).fit_predict(Z).astype(np.int64))


@pytest.fixture
def gamma_kmeans():
    CLUSTERERS.register(NAME)(GammaKMeans)
    yield NAME
    CLUSTERERS._forget(NAME)


def run(tmp_path, *args: str) -> tuple[int, dict | None]:
    out = tmp_path / "summary.json"
    status = main(["run", "-d", "digits:limit=300", "-e", "pixels", *args, "--k", "auto",
                   "--results", str(tmp_path / "results"), "--no-progress", "--json", str(out)])
    return status, json.loads(out.read_text()) if out.exists() else None


@pytest.mark.slow
def test_a_plugin_clusterer_is_tuned_on_its_own_parameter(gamma_kmeans, tmp_path, capsys):
    status, summary = run(tmp_path, "-c", gamma_kmeans, "--tune", "k_max=5,gammas=0.5+2")
    assert status == 0, capsys.readouterr().err
    p = summary["cells"][0]["params"]
    assert p["search_space"] == "k=2..5; gamma in {0.5,2.0}"
    assert p["sampler"] == "grid" and p["n_trials"] == p["n_trials_complete"] == 8  # 4 K x 2 gammas
    study = optuna.load_study(study_name=p["study_name"], storage=f"sqlite:///{tmp_path / 'results' / 'optuna.db'}")
    assert sorted((t.params["k"], t.params["gamma"]) for t in study.trials) == [(k, g) for k in range(2, 6) for g in (0.5, 2.0)]
    best = next(t for t in study.trials if t.number == p["best_trial"])
    assert p["tuned.gamma"] == best.params["gamma"] and p["k"] == best.params["k"]
    assert summary["cells"][0]["metrics"]["n_clusters"] == p["k"]


def test_a_plugin_key_needs_a_clusterer_of_the_suite_that_declares_it(gamma_kmeans, tmp_path, capsys):
    status, _ = run(tmp_path, "-c", "kmeans", "--tune", "gammas=0.5")
    err = capsys.readouterr().err
    assert status == 2 and "['gammas']: no clusterer of this suite declares them" in err
    CLUSTERERS._forget(NAME)
    status, _ = run(tmp_path, "-c", "kmeans", "--tune", "gammas=0.5")
    assert status == 2 and "unknown tune key(s) ['gammas']" in capsys.readouterr().err
    CLUSTERERS.register(NAME)(GammaKMeans)  # for the fixture's teardown
