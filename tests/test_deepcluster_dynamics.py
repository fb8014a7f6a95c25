"""DeepCluster on small data: enough SGD steps an epoch, empty clusters refilled, the head warm-up."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from clusterbench.core.errors import UserError  # noqa: E402
from clusterbench.datasets import DATASETS  # noqa: E402
from clusterbench.methods.deepcluster import DeepClusterConfig, train_deepcluster  # noqa: E402
from clusterbench.methods.deepcluster.steps import epoch_sample, reassign_empty  # noqa: E402


def test_the_sample_is_drawn_again_until_min_steps_batches():
    labels = np.repeat(np.arange(3), [50, 5, 5])
    out = epoch_sample(labels, 10 * 32, np.random.default_rng(0))
    assert len(out) >= 320 and len(out) % len(labels) == 0
    counts = np.bincount(labels[out])
    assert counts.min() / counts.max() > 0.9  # still uniform over clusters
    assert len(epoch_sample(labels, 0, np.random.default_rng(0))) == len(labels)


def test_empty_clusters_take_half_of_a_donor():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (40, 4)), rng.normal(8, 1, (40, 4))]).astype(np.float32)
    labels = np.zeros(80, dtype=np.int64)
    out, refilled = reassign_empty(X, labels, 3, rng)
    assert refilled == 2 and set(np.unique(out)) == {0, 1, 2} and np.bincount(out).min() >= 10


def test_min_steps_and_warmup_train_a_small_set_and_log_the_loss_against_ln_k():
    data = DATASETS.create("digits:limit=100").load()
    config = DeepClusterConfig(epochs=1, k=8, batch_size=32, size=16, precision="fp32", device="cpu",
                               min_steps=6, warmup_steps=3, top_lr=0.5)
    logged = []
    result = train_deepcluster(data, config, progress=False, log=None, log_metrics=lambda m, step: logged.append(m))
    (m,) = logged
    assert m["loss_ln_k"] == pytest.approx(np.log(8)) and m["loss_over_ln_k"] == pytest.approx(m["loss"] / np.log(8))
    assert "nmi_labels" in m and "clusters_empty_found" in m and result.features.shape[0] == 100


def test_bad_dynamics_settings_are_refused():
    with pytest.raises(UserError):
        DeepClusterConfig(min_steps=-1)
    with pytest.raises(UserError):
        DeepClusterConfig(top_lr=0.0)


def test_the_centroid_head_trains_and_bad_head_settings_are_refused():
    data = DATASETS.create("digits:limit=100").load()
    base = dict(epochs=1, k=8, batch_size=32, size=16, precision="fp32", device="cpu", min_steps=3)
    centroids = train_deepcluster(data, DeepClusterConfig(**base, head="centroids"), progress=False, log=None)
    assert np.isfinite(centroids.history[0]["loss"]) and centroids.features.shape[0] == 100
    with pytest.raises(UserError):
        DeepClusterConfig(head="linear")
    with pytest.raises(UserError):
        DeepClusterConfig(temperature=0.0)


def test_the_epoch_figure_draws_the_loss_against_ln_k():
    from clusterbench.methods.deepcluster import nmi_figure

    history = [{"epoch": e, "loss": loss, "loss_ln_k": float(np.log(30)), "nmi_labels": 0.5} for e, loss in
               enumerate([3.4, 2.5, 1.9])]
    nmi_ax, loss_ax = nmi_figure(history).axes
    curves = {line.get_label(): list(line.get_ydata()) for line in loss_ax.lines}
    assert curves["training loss"] == [3.4, 2.5, 1.9]
    assert curves["ln k (chance)"] == pytest.approx([np.log(30)] * 3)
    assert [line.get_label() for line in nmi_ax.lines] == ["NMI(pseudo-labels, labels)"]
