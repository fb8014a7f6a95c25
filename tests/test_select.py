"""The label-free recommendation: criteria, recommend(), selection regret, and the noise rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from clusterbench.select import CRITERIA, Candidate, Recommendation, Rerun, recommend, selection_regret
from clusterbench.select.agreement import agreement_matrix
from clusterbench.select.shared_space import shared_silhouette

N = 300


def _truth() -> np.ndarray:
    return np.repeat(np.arange(6), N // 6)


def _perturbed(labels: np.ndarray, lo: int, hi: int, seed: int) -> np.ndarray:
    """``labels`` with the points lo..hi given random labels: each variant errs somewhere else."""
    out = labels.copy()
    out[lo:hi] = np.random.default_rng(seed).integers(0, 6, hi - lo)
    return out


def _consensus_set() -> dict[str, np.ndarray]:
    truth = _truth()
    parts = {"centre": (truth + 3) % 6}  # the truth under other names
    for v in range(4):
        parts[f"variant{v}"] = _perturbed(parts["centre"], 60 * v, 60 * v + 60, seed=v)
    parts["unrelated"] = np.random.default_rng(9).integers(0, 6, N)
    return parts


def test_regret_is_best_minus_recommended_by_name():
    rec = Recommendation("agglo-k8", "d", "consensus", 0.5, (("agglo-k8", 0.5), ("kmeans-k10", 0.4)))
    nmi = {"kmeans-k10": 0.91, "agglo-k8": 0.74, "hdbscan": 0.20}
    ami = {"kmeans-k10": 0.88, "agglo-k8": 0.80, "hdbscan": 0.15}
    out = selection_regret(rec, nmi, ami)
    assert out["selection_regret_nmi"] == pytest.approx(0.17)
    assert out["selection_regret_ami"] == pytest.approx(0.08)
    assert out["best_nmi_key"] == "kmeans-k10" and out["best_ami_key"] == "kmeans-k10"
    assert selection_regret(dataclasses.replace(rec, key="kmeans-k10"), nmi, ami)["selection_regret_nmi"] == 0.0
    with pytest.raises(ValueError, match="no NMI for the recommended configuration 'missing'"):
        selection_regret(dataclasses.replace(rec, key="missing"), nmi)


def test_consensus_picks_the_partition_the_others_agree_with_and_regret_follows():
    parts = _consensus_set()
    truth = _truth()
    candidates = [Candidate(name, "toy", labels) for name, labels in parts.items()]
    rec = recommend(candidates, "consensus")
    assert rec.key == "centre"
    assert rec.ranking[-1][0] == "unrelated"
    assert recommend(candidates[::-1], "consensus").key == "centre"  # the order given does not matter
    nmi = {k: normalized_mutual_info_score(truth, v) for k, v in parts.items()}
    ami = {k: adjusted_mutual_info_score(truth, v) for k, v in parts.items()}
    assert selection_regret(rec, nmi, ami)["selection_regret_nmi"] == pytest.approx(0.0, abs=1e-12)
    # a picker fooled into the unrelated partition pays the whole gap, named by key
    own = [dataclasses.replace(c, own_silhouette=0.9 if c.key == "unrelated" else 0.1) for c in candidates]
    fooled = recommend(own, "own-silhouette")
    assert fooled.key == "unrelated"
    assert selection_regret(fooled, nmi, ami)["selection_regret_nmi"] == pytest.approx(1.0 - nmi["unrelated"])


def test_consensus_within_compares_only_partitions_of_the_same_embedder():
    parts = _consensus_set()
    p, p2, q2 = parts["centre"], parts["variant0"], parts["unrelated"]
    candidates = [Candidate("e1-a", "t", p, embedder="e1"), Candidate("e1-b", "t", p2, embedder="e1"),
                  Candidate("e2-a", "t", p.copy(), embedder="e2"), Candidate("e2-b", "t", q2, embedder="e2")]
    scores = CRITERIA["consensus-within"](candidates)
    assert scores["e1-a"] == pytest.approx(normalized_mutual_info_score(p, p2))
    assert scores["e2-a"] == pytest.approx(normalized_mutual_info_score(p, q2))  # its twin in e1 does not count
    assert recommend(candidates, "consensus-within").key == "e1-a"  # ties by key: e1-a before e1-b
    anonymous = [dataclasses.replace(c, embedder=None) for c in candidates]
    assert CRITERIA["consensus-within"](anonymous) == pytest.approx(CRITERIA["consensus"](anonymous))


def test_the_default_without_features_ranks_by_consensus_within():
    from clusterbench.select import DEFAULT

    parts = _consensus_set()
    candidates = [Candidate(name, "t", labels, embedder="e") for name, labels in parts.items()]
    rec = recommend(candidates)
    assert rec.criterion == DEFAULT == "consensus-within+own-umap-silhouette"
    assert [k for k, _ in rec.ranking] == [k for k, _ in recommend(candidates, "consensus-within").ranking]
    assert rec.key == "centre"


def test_own_umap_silhouette_scores_each_candidate_in_its_embedders_space():
    truth = _truth()
    rng = np.random.default_rng(3)
    clear = rng.normal(size=(N, 2)) + np.c_[truth * 6.0, np.zeros(N)]
    blurred = rng.normal(size=(N, 2))
    candidates = [Candidate("sharp", "t", truth, embedder="good"), Candidate("vague", "t", truth, embedder="poor")]
    scores = CRITERIA["own-umap-silhouette"](candidates, shared_space={"good": clear, "poor": blurred})
    assert scores["sharp"] == pytest.approx(silhouette_score(clear, truth), rel=1e-5)
    assert scores["vague"] == pytest.approx(silhouette_score(blurred, truth), rel=1e-5)


def test_agreement_by_hand_matches_scikit_learn_noise_as_one_group():
    rng = np.random.default_rng(0)
    labels = [rng.integers(-1, 5, 200), rng.integers(0, 3, 200), np.r_[np.zeros(100, int), np.ones(100, int)]]
    grouped = [np.where(x < 0, x.max() + 1, x) for x in labels]
    candidates = [Candidate(str(i), "toy", x) for i, x in enumerate(labels)]
    nmi, ari = agreement_matrix(candidates, "nmi"), agreement_matrix(candidates, "ari")
    for i in range(3):
        for j in range(3):
            assert nmi[i, j] == pytest.approx(normalized_mutual_info_score(grouped[i], grouped[j]), abs=1e-10)
            assert ari[i, j] == pytest.approx(adjusted_rand_score(grouped[i], grouped[j]), abs=1e-10)


def test_noise_is_one_group_for_agreement_and_scores_zero_in_the_shared_space():
    truth = _truth()
    noisy = np.where(truth == 0, -1, truth)  # cluster 0 declared noise: the same grouping
    assert agreement_matrix([Candidate("a", "t", truth), Candidate("b", "t", noisy)])[0, 1] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(N, 2)) + np.c_[truth * 4.0, np.zeros(N)]
    half = truth.copy()
    half[::2] = -1
    scores = shared_silhouette([Candidate("all", "t", truth), Candidate("half", "t", half)], shared_space=Y)
    keep = half >= 0
    assert scores["half"] == pytest.approx(silhouette_score(Y[keep], half[keep]) * keep.mean(), rel=1e-5)
    assert scores["all"] == pytest.approx(silhouette_score(Y, truth), rel=1e-5)


def test_all_noise_and_one_cluster_are_never_recommended():
    truth = _truth()
    same_rerun = (Rerun(np.full(N, -1)),)
    candidates = [Candidate("all-noise", "t", np.full(N, -1), reruns=same_rerun),
                  Candidate("one-cluster", "t", np.zeros(N, int), reruns=(Rerun(np.zeros(N // 2, int), np.arange(N // 2)),)),
                  Candidate("shaky", "t", truth, reruns=(Rerun(_perturbed(truth, 0, 150, 3)),))]
    stability = recommend(candidates, "stability")
    assert stability.key == "shaky"
    assert [np.isnan(s) for _, s in stability.ranking] == [False, True, True]
    Y = np.random.default_rng(2).normal(size=(N, 3))
    assert recommend(candidates, "shared-silhouette", shared_space=Y).key == "shaky"


def test_stability_compares_reruns_on_the_points_they_labelled():
    truth = _truth()
    idx = np.arange(0, N, 2)
    steady = Candidate("steady", "t", truth, reruns=(Rerun((truth[idx] + 1) % 6, idx),))
    shaky = Candidate("shaky", "t", truth, reruns=(Rerun(np.random.default_rng(0).integers(0, 6, len(idx)), idx),))
    scores = CRITERIA["stability"]([steady, shaky])
    assert scores["steady"] == pytest.approx(1.0) and scores["shaky"] < 0.05


def test_bad_candidate_sets_are_refused_in_one_line():
    a, b = Candidate("a", "digits", np.zeros(5, int)), Candidate("b", "fashion", np.zeros(5, int))
    with pytest.raises(ValueError, match="several datasets"):
        recommend([a, b])
    with pytest.raises(ValueError, match="keys repeat: a"):
        recommend([a, dataclasses.replace(a)])
    with pytest.raises(ValueError, match="unknown selection criterion 'best'; known: consensus"):
        recommend([a], "best")


@pytest.mark.slow
def test_permuting_or_shuffling_the_truth_changes_no_recommendation(tmp_path):
    """The real pipeline (registries, digits pixels, a small grid) with the truth renamed and then
    shuffled across items: the scores against the truth move, no recommendation does."""
    from clusterbench.core.catalog import registries
    from clusterbench.select.grid import Grid, build

    grid = Grid("digits", "digits:limit=400", ("pixels",), (None,), ("kmeans", "agglomerative:linkage=ward"), (8, 10, 12))
    data = registries().datasets.create(grid.dataset).load()
    renamed, shuffled = dataclasses.replace(data), dataclasses.replace(data)
    renamed.labels = (data.labels * 7 + 3) % 10
    shuffled.labels = np.random.default_rng(0).permutation(data.labels)
    runs = [build(grid, str(tmp_path / name), data=d, log=lambda _: None)
            for name, d in (("truth", data), ("renamed", renamed), ("shuffled", shuffled))]
    assert len(runs[0].candidates) == 6
    assert runs[0].nmi == pytest.approx(runs[1].nmi)  # renaming classes is no change to NMI
    assert max(runs[2].nmi.values()) < 0.05 < min(runs[0].nmi.values())  # shuffling destroys it
    for name in CRITERIA:
        picks = {recommend(r.candidates, name, shared_space=r.spaces).key for r in runs}
        assert len(picks) == 1, f"{name}: {picks}"
