"""Published baselines a correct harness reproduces (REFERENCE figures), via the CLI."""

import numpy as np
import pytest

from conftest import needs_fashion


@needs_fashion
@pytest.mark.slow
def test_fashion_mnist_pixels_kmeans_nmi_is_the_published_051(run_cli):
    status, _, err, summary = run_cli("-d", "fashion-mnist", "-e", "pixels", "-c", "kmeans", "--k", "10",
                                      "--seed", "0", "--seed", "1", "--seed", "2")
    assert status == 0, err
    nmis = [c["metrics"]["nmi"] for c in summary["cells"]]
    assert all(c["params"]["n_images"] == 70000 for c in summary["cells"])
    assert np.mean(nmis) == pytest.approx(0.51, abs=0.015)
    assert min(nmis) > 0.48
    # one forward pass serves every seed: the cells report the same embedding time
    assert len({c["metrics"]["embed_seconds"] for c in summary["cells"]}) == 1
    assert summary["cells"][0]["metrics"]["silhouette_sample_size"] == 10000


@pytest.mark.slow
def test_digits_pixels_kmeans_nmi_is_074(run_cli):
    status, _, _, summary = run_cli("-d", "digits", "-e", "pixels", "-c", "kmeans", "--seed", "0", "--seed", "1", "--seed", "2")
    assert status == 0
    assert np.mean([c["metrics"]["nmi"] for c in summary["cells"]]) == pytest.approx(0.74, abs=0.02)
