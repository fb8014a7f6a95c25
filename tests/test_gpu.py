"""CUDA paths: they run where a GPU is present and skip, saying so, elsewhere."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_silhouette_equals_sklearn():
    from sklearn.metrics import silhouette_score

    from clusterbench.scoring.silhouette import silhouette_exact

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 3000)
    X = (rng.normal(size=(3000, 64)) + labels[:, None] * 0.3).astype(np.float32)
    assert silhouette_exact(X, labels, device="cuda") == pytest.approx(silhouette_score(X, labels), abs=1e-6)


def test_faiss_gpu_kmeans_matches_cpu_quality():
    from sklearn.datasets import load_digits
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from clusterbench.core.backends import faiss_gpu_available
    from clusterbench.methods.clusterers import CLUSTERERS

    if not faiss_gpu_available():
        pytest.skip("faiss has no GPU support here (pip install 'clusterbench[gpu]')")
    X, y = load_digits(return_X_y=True)
    model = CLUSTERERS.create("kmeans:k=10,device=cuda")
    result = model.fit(X.astype(np.float32))
    labels = result.labels
    assert result.info["device"] == "cuda" and result.info["engine"] == "faiss"
    assert nmi(y, labels) == pytest.approx(0.74, abs=0.04)


def test_inference_on_cuda_reports_gpu_memory_and_synchronised_throughput():
    import torchvision

    from clusterbench.datasets import DATASETS
    from clusterbench.infer.inference import run_inference

    data = DATASETS.create("digits:limit=64").load()
    model = torchvision.models.resnet18(weights=None)
    result = run_inference(model, data, None, device="cuda", precision="auto", batch_size=16, progress=False)
    stats = result.stats
    assert stats["device"] == "cuda" and stats["precision"] in ("bf16", "fp16")
    assert stats["gpu_peak_memory_mb"] > 0 and stats["images_per_s"] > 0 and stats["gpu_name"]
    assert stats["loader_workers"] >= 1  # the loader prepares images while the GPU computes
    assert result.outputs[0].shape == (64, 1000)


def _normalised_images(n: int, size: int):
    from torchvision.transforms import v2

    from clusterbench.benchmarking.figures import _Images

    normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    return _Images(n, size), normalize


def _cosine_rows(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_auto_batch_size_backs_off_when_cuda_memory_runs_out():
    import torchvision

    from clusterbench.infer.inference import run_inference

    data, normalize = _normalised_images(300, 224)
    model = torchvision.models.resnet50(weights=None)
    torch.cuda.empty_cache()
    # Cap this process at 512 MiB of the GPU: the first batch (256 images at 224 px) cannot fit.
    torch.cuda.set_per_process_memory_fraction(2**29 / torch.cuda.get_device_properties(0).total_memory)
    try:
        auto = run_inference(model, data, normalize, device="cuda", batch_size="auto", progress=False, count_flops=False)
        with pytest.raises(torch.cuda.OutOfMemoryError):  # a batch size the user fixed is not changed
            run_inference(model, data, normalize, device="cuda", batch_size=256, progress=False, count_flops=False)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    stats = auto.stats
    assert stats["oom_backoffs"] >= 1 and stats["batch_size"] == 256 // 2 ** stats["oom_backoffs"]
    fixed = run_inference(model, data, normalize, device="cuda", batch_size=stats["batch_size"], progress=False,
                          count_flops=False)
    # the reported peak is that of the size that ran, not of the failed tries
    assert stats["gpu_peak_memory_mb"] <= 1.1 * fixed.stats["gpu_peak_memory_mb"]
    assert auto.outputs[0].shape == (300, 1000)
    assert _cosine_rows(auto.outputs[0], fixed.outputs[0]).min() >= 0.999


def test_compiled_model_on_cuda_gives_the_eager_features():
    import torchvision

    from clusterbench.infer.inference import run_inference

    data, normalize = _normalised_images(40, 64)  # batches of 16, 16, 8: the last one padded
    model = torchvision.models.resnet18(weights=None)
    kwargs = dict(device="cuda", precision="fp32", batch_size=16, progress=False, count_flops=False)
    eager = run_inference(model, data, normalize, **kwargs)
    compiled = run_inference(model, data, normalize, compile=True, **kwargs)
    assert compiled.stats["compile"] is True and compiled.outputs[0].shape == (40, 1000)
    assert _cosine_rows(eager.outputs[0], compiled.outputs[0]).min() >= 0.9999
    assert compiled.stats["warmup_seconds"] > eager.stats["warmup_seconds"]


def _one_cell(run_cli, results_dir, embedder: str, clusterer: str):
    """Run one digits cell through the CLI; return it and an MLflow client on its store."""
    from mlflow.tracking import MlflowClient

    from clusterbench.track.tracking import default_tracking_uri

    status, _, err, summary = run_cli("-d", "digits:limit=300", "-e", embedder, "-c", clusterer, "--k", "10")
    assert status == 0, err
    cell = summary["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    return cell, MlflowClient(default_tracking_uri(results_dir))


def test_cell_on_cuda_logs_gpu_throughput_and_memory_to_mlflow(run_cli, results_dir):
    from sklearn.metrics import silhouette_score

    cell, client = _one_cell(run_cli, results_dir, "densenet121:weights=none,size=64", "kmeans")
    run = client.get_run(cell["mlflow_run_id"])
    assert run.data.tags["device"] == "cuda" and run.data.tags["gpu_name"] == torch.cuda.get_device_name(0)
    metrics = run.data.metrics
    assert metrics["gpu_peak_memory_mb"] > 0 and metrics["throughput_img_per_s"] > 0 and metrics["gflops_per_s"] > 0
    # the silhouette ran on the GPU and still equals scikit-learn's on the cell's own features
    features = np.load(next((results_dir / "cache" / "embeddings").glob("*.features.npy")))
    assignments = client.download_artifacts(run.info.run_id, "assignments.csv", str(results_dir.parent))
    labels = np.loadtxt(assignments, delimiter=",", skiprows=1, dtype=int)[:, 1]
    assert metrics["silhouette"] == pytest.approx(silhouette_score(features, labels), abs=1e-5)


def test_deepcluster_trains_on_cuda_in_reduced_precision(run_cli, results_dir):
    cell, client = _one_cell(run_cli, results_dir, "pixels", "deepcluster:epochs=2,k=10,batch_size=64,size=32,device=cuda")
    tags = client.get_run(cell["mlflow_run_id"]).data.tags
    assert tags["cluster.device"] == "cuda" and tags["cluster.precision"] in ("bf16", "fp16")
    losses = [m.value for m in client.get_metric_history(cell["mlflow_run_id"], "loss")]
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert 0 <= cell["metrics"]["nmi"] <= 1
