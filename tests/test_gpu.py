"""CUDA paths: they run where a GPU is present and skip, saying so, elsewhere."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_silhouette_equals_sklearn():
    from sklearn.metrics import silhouette_score

    from clusterbench.silhouette import silhouette_exact

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 3000)
    X = (rng.normal(size=(3000, 64)) + labels[:, None] * 0.3).astype(np.float32)
    assert silhouette_exact(X, labels, device="cuda") == pytest.approx(silhouette_score(X, labels), abs=1e-6)


def test_faiss_gpu_kmeans_matches_cpu_quality():
    from sklearn.datasets import load_digits
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from clusterbench.methods.clusterers import CLUSTERERS
    from clusterbench.methods.clusterers.kmeans import faiss_gpu_available

    if not faiss_gpu_available():
        pytest.skip("faiss has no GPU support here (install the gpu extra)")
    X, y = load_digits(return_X_y=True)
    model = CLUSTERERS.create("kmeans:k=10,device=cuda")
    labels = model.fit_predict(X.astype(np.float32))
    assert model.info_["device"] == "cuda" and model.info_["engine"] == "faiss"
    assert nmi(y, labels) == pytest.approx(0.74, abs=0.04)


def test_inference_on_cuda_reports_gpu_memory_and_synchronised_throughput():
    import torchvision

    from clusterbench.datasets import DATASETS
    from clusterbench.inference import run_inference

    data = DATASETS.create("digits:limit=64").load()
    model = torchvision.models.resnet18(weights=None)
    result = run_inference(model, data, None, device="cuda", precision="auto", batch_size=16, progress=False)
    stats = result.stats
    assert stats["device"] == "cuda" and stats["precision"] in ("bf16", "fp16")
    assert stats["gpu_peak_memory_mb"] > 0 and stats["images_per_s"] > 0 and stats["gpu_name"]
    assert result.outputs[0].shape == (64, 1000)
