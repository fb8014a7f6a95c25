"""DeepCluster: the model, the epoch loop, checkpoints and resume, the official checkpoint format,
and both faces (clusterer, embedder) end to end through the CLI into a real MLflow store.

Small on purpose: digits upsampled to 16 px, a handful of clusters, one or two epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from clusterbench.core.errors import DataWarning, UserError  # noqa: E402
from clusterbench.datasets import DATASETS  # noqa: E402
from clusterbench.methods.deepcluster import (  # noqa: E402
    DeepClusterConfig,
    build_model,
    model_from_checkpoint,
    read_checkpoint,
    run_dir,
    strip_data_parallel,
    train_deepcluster,
)
from clusterbench.methods.deepcluster import model as M  # noqa: E402
from clusterbench.methods.deepcluster import train as T  # noqa: E402

TINY = dict(k=8, batch_size=64, size=16, precision="fp32", device="cpu")
TINY_SPEC = "k=8,batch_size=64,size=16,precision=fp32,device=cpu"


@pytest.fixture(scope="module")
def digits():
    return DATASETS.create("digits:limit=200").load()


def test_alexnet_sobel_front_end_is_frozen_and_matches_the_reference_layout():
    net = build_model("alexnet", sobel=True, size=224)
    keys = list(net.state_dict())
    assert keys[:4] == ["sobel.0.weight", "sobel.0.bias", "sobel.1.weight", "sobel.1.bias"]
    assert "features.0.weight" in keys and "classifier.1.weight" in keys and "classifier.4.weight" in keys
    assert net.state_dict()["features.0.weight"].shape == (96, 2, 11, 11)
    assert not any(p.requires_grad for p in net.sobel.parameters())
    assert torch.allclose(net.sobel[1].weight[0, 0], torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]))
    # No Sobel: three input channels.
    assert build_model("alexnet", sobel=False).state_dict()["features.0.weight"].shape[1] == 3


def test_small_variant_and_backbone_embed_grayscale_batches():
    small = build_model("alexnet-small", sobel=True, size=28).eval()
    assert small.embed(torch.rand(3, 1, 28, 28)).shape == (3, small.feature_dim)
    resnet = build_model("resnet18", sobel=True, size=32).eval()
    assert resnet.embed(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    with pytest.raises(UserError, match="unknown backbone"):
        build_model("resnet19", sobel=True)
    assert M.resolve_backbone("auto", 28) == "alexnet-small" and M.resolve_backbone("auto", 256) == "alexnet"


def test_uniform_sampling_skips_empty_clusters_and_balances_the_rest():
    labels = np.array([0] * 90 + [3] * 9 + [7])  # clusters 1, 2, 4, 5, 6 are empty
    idx = T.uniform_cluster_sample(labels, 300, np.random.default_rng(0))
    assert len(idx) == 300
    counts = np.bincount(labels[idx], minlength=8)
    assert counts[[1, 2, 4, 5, 6]].sum() == 0 and min(counts[[0, 3, 7]]) >= 95
    assert T.cluster_stats(labels, 8) == {"clusters_empty": 5, "clusters_nonempty": 3,
                                         "cluster_largest": 90, "cluster_smallest": 1}


def test_config_key_names_the_training_not_the_device():
    a = DeepClusterConfig(**TINY)
    assert a.key() == DeepClusterConfig(**{**TINY, "device": "cuda"}).key()
    assert a.key() != DeepClusterConfig(**{**TINY, "k": 9}).key()
    with pytest.raises(UserError):
        DeepClusterConfig(k=1)


def test_loop_logs_every_epoch_and_the_checkpoint_round_trips(digits, tmp_path):
    logged = []
    config = DeepClusterConfig(epochs=2, **TINY)
    result = train_deepcluster(digits, config, checkpoint_dir=tmp_path, progress=False, log=None, eval_k=10,
                               log_metrics=lambda m, step: logged.append((step, m)))
    assert [step for step, _ in logged] == [0, 1]
    first, second = (m for _, m in logged)
    for key in ("loss", "nmi_labels", "nmi_labels_k10", "clusters_empty", "cluster_largest", "cluster_smallest",
                "time_features_s", "time_clustering_s", "time_training_s", "images_per_s"):
        assert np.isfinite(second[key]), key
    assert "nmi_previous" not in first and 0 <= second["nmi_previous"] <= 1
    assert result.labels.shape == (200,) and result.features.shape == (200, result.info["feature_dim"])
    assert len(np.unique(result.labels)) <= 8

    ckpt = read_checkpoint(tmp_path / T.CHECKPOINT_NAME)  # weights_only=True
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2 and ckpt["assignments"].shape == (200,)
    net, loaded_config, resolved = model_from_checkpoint(ckpt)
    assert loaded_config == config and resolved == {"backbone": "alexnet-small", "size": 16, "pca_dim": 32, "flip": False}
    again, _ = T.compute_features(net, T.prepare_images(digits, 16), device="cpu", precision="fp32",
                                  batch_size=64, progress=False)
    np.testing.assert_allclose(again, result.features, rtol=1e-4, atol=1e-4)

    # A finished training is loaded, not redone.
    done = train_deepcluster(digits, config, checkpoint_dir=tmp_path, progress=False, log=None)
    assert done.resumed_from == 2 and len(done.history) == 2


@pytest.mark.slow
def test_interrupted_training_resumes_from_its_checkpoint(digits, tmp_path):
    config = DeepClusterConfig(epochs=3, **TINY)

    def crash(epoch, metrics):
        if epoch == 0:
            raise KeyboardInterrupt("killed after epoch 1")

    with pytest.raises(KeyboardInterrupt):
        train_deepcluster(digits, config, checkpoint_dir=tmp_path / "a", progress=False, log=None, on_epoch_end=crash)
    assert read_checkpoint(tmp_path / "a" / T.CHECKPOINT_NAME)["epoch"] == 1

    steps, lines = [], []
    resumed = train_deepcluster(digits, config, checkpoint_dir=tmp_path / "a", progress=False, log=lines.append,
                                log_metrics=lambda m, step: steps.append((step, "resumed" in m)))
    assert resumed.resumed_from == 1 and len(resumed.history) == 3
    assert steps == [(0, True), (1, False), (2, False)]  # epoch 0 re-logged from the checkpoint, then 1 and 2
    assert any("resuming" in line and "after epoch 1/3" in line for line in lines)

    # Every epoch's randomness comes from (seed, epoch): the resumed run is the uninterrupted one.
    straight = train_deepcluster(digits, config, checkpoint_dir=tmp_path / "b", progress=False, log=None)
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert np.mean(straight.labels == resumed.labels) > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_last_checkpoint_is_one_warning_and_training_resumes_from_the_previous(digits, tmp_path, damage):
    import warnings

    config = DeepClusterConfig(epochs=2, **TINY)
    straight = train_deepcluster(digits, config, checkpoint_dir=tmp_path, progress=False, log=None)
    path, before = tmp_path / T.CHECKPOINT_NAME, tmp_path / T.PREVIOUS_NAME
    assert read_checkpoint(before)["epoch"] == 1 and json.loads((tmp_path / "checkpoint.pt.json").read_text())["epoch"] == 2
    sound = path.read_bytes()
    path.write_bytes(sound[: len(sound) // 2] if damage == "truncated" else b"\x00garbage" * 1000)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = train_deepcluster(digits, config, checkpoint_dir=tmp_path, progress=False, log=None)
    (warning,) = [w for w in caught if issubclass(w.category, DataWarning)]
    message = str(warning.message)
    assert "\n" not in message and str(path) in message and f"resuming from {before}" in message
    assert again.resumed_from == 1 and [h["epoch"] for h in again.history] == [0, 1]
    # the epoch redone from the previous checkpoint is the epoch the straight run did
    assert again.history[1]["loss"] == pytest.approx(straight.history[1]["loss"], rel=1e-4)
    assert np.mean(again.labels == straight.labels) > 0.95
    assert (tmp_path / "checkpoint.pt.damaged").exists()  # kept aside, out of the way
    assert read_checkpoint(path)["epoch"] == 2

    # nothing sound left: one warning, and the training starts again
    for name in (T.CHECKPOINT_NAME, T.PREVIOUS_NAME):
        (tmp_path / name).write_bytes(b"junk")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh = train_deepcluster(digits, DeepClusterConfig(epochs=1, **TINY), checkpoint_dir=tmp_path, progress=False,
                                  log=None)
    (warning,) = [w for w in caught if issubclass(w.category, DataWarning)]
    assert "from the start" in str(warning.message) and str(before) in str(warning.message)
    assert fresh.resumed_from == 0 and read_checkpoint(path)["epoch"] == 1


@pytest.mark.slow
def test_a_damaged_checkpoint_through_the_cli_is_one_warning_line_not_a_traceback(run_cli, results_dir):
    args = ("-d", "digits:limit=200", "-e", "pixels", "-c", f"deepcluster:epochs=1,{TINY_SPEC}", "--k", "10")
    assert run_cli(*args)[0] == 0
    (checkpoint,) = (results_dir / "cache" / "work" / "deepcluster").glob("*/checkpoint.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.warns(DataWarning) as caught:  # the CLI prints a DataWarning as one "warning:" line
        status, _, err, summary = run_cli(*args, "--force")
    cell = summary["cells"][0]
    assert status == 0 and cell["status"] == "ok", cell["error"]
    assert cell["metrics"]["cluster.resumed_from_epoch"] == 0.0  # the only checkpoint was damaged: trained again
    assert "Traceback" not in err
    (line,) = [str(w.message) for w in caught if "damaged" in str(w.message)]
    assert "\n" not in line and str(checkpoint) in line and "from the start" in line


_KILLED_CHILD = """
import sys, time
from clusterbench.datasets import DATASETS
from clusterbench.methods.deepcluster import DeepClusterConfig, train_deepcluster

def hang(epoch, metrics):  # the parent SIGKILLs us here, after epoch 1's checkpoint
    print("epoch-done", epoch, flush=True)
    time.sleep(120)

data = DATASETS.create("digits:limit=200").load()
train_deepcluster(data, DeepClusterConfig(epochs=3, **TINY), checkpoint_dir=sys.argv[1], progress=False, log=None,
                  on_epoch_end=hang)
"""


@pytest.mark.slow
def test_sigkilled_training_resumes_from_its_last_checkpoint(digits, tmp_path):
    import signal
    import subprocess
    import sys

    code = f"TINY = {TINY!r}\n" + _KILLED_CHILD
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().split() == ["epoch-done", "0"]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    assert not list(tmp_path.glob(".*.part"))  # no torn temp file left behind
    assert read_checkpoint(tmp_path / T.CHECKPOINT_NAME)["epoch"] == 1

    lines = []
    result = train_deepcluster(digits, DeepClusterConfig(epochs=3, **TINY), checkpoint_dir=tmp_path, progress=False,
                               log=lines.append)
    assert result.resumed_from == 1 and [h["epoch"] for h in result.history] == [0, 1, 2]
    assert any("resuming" in line for line in lines)
    assert read_checkpoint(tmp_path / T.CHECKPOINT_NAME)["epoch"] == 3


def _official_file(path, module_prefix: str, sobel: bool = True):
    """An AlexNet checkpoint in the reference's format: DataParallel keys, Sobel layer, top layer."""
    torch.manual_seed(0)
    net = M.alexnet(sobel=sobel)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # the reference's files predate this buffer
        if module_prefix == "features" and key.startswith("features."):
            key = "features.module." + key[len("features."):]
        elif module_prefix == "all":
            key = "module." + key
        state[key] = value.clone()
    state["top_layer.weight"] = torch.randn(20, 4096) * 0.01
    state["top_layer.bias"] = torch.zeros(20)
    torch.save({"epoch": 100, "arch": "alexnet", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}},
               path)
    return net


@pytest.mark.slow
@pytest.mark.parametrize("prefix", ["features", "all"])
def test_official_checkpoint_loads_with_module_keys_and_sobel(digits, tmp_path, prefix):
    from clusterbench.methods.embedders import EMBEDDERS

    path = tmp_path / "checkpoint.pth.tar"
    original = _official_file(path, prefix).eval()
    assert strip_data_parallel("features.module.0.weight") == "features.0.weight"

    net, meta = M.load_official_checkpoint(read_checkpoint(path))
    assert meta["sobel"] is True and net.sobel is not None
    for key, value in original.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(net.state_dict()[key], value), key

    embedder = EMBEDDERS.create(f"alexnet-deepcluster:checkpoint={path},size=64,precision=fp32,device=cpu,l2=false")
    assert embedder.identity().startswith("file:checkpoint.pth.tar:")
    small = DATASETS.create("digits:limit=20").load()
    embedding = embedder.embed(small)
    assert embedding.features.shape == (20, 4096) and embedding.stats.details["checkpoint_format"] == "official"
    images = T.prepare_images(small, 64)
    with torch.no_grad():
        expected = original.embed(torch.stack([T.Normalize(1)(img) for img in images]))
    np.testing.assert_allclose(embedding.features, expected.numpy(), rtol=1e-3, atol=1e-4)


def test_a_checkpoint_that_does_not_fit_is_one_line(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"arch": "alexnet", "state_dict": {"features.module.0.weight": torch.zeros(96, 5, 11, 11)}}, path)
    with pytest.raises(UserError, match="first conv takes 5 channels"):
        M.load_official_checkpoint(read_checkpoint(path))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "junk.pth")


def _metric_steps(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.slow
def test_clusterer_end_to_end_logs_epochs_and_reports_both_label_sets(tmp_path):
    from mlflow.tracking import MlflowClient

    from clusterbench.cli import main
    from clusterbench.track.tracking import default_tracking_uri

    results, summary_path = tmp_path / "results", tmp_path / "summary.json"
    status = main(["run", "-d", "digits:limit=200", "-e", "pixels", "-c", f"deepcluster:epochs=2,{TINY_SPEC}",
                   "--k", "10", "--results", str(results), "--json", str(summary_path), "--no-progress"])
    assert status == 0
    cell = json.loads(summary_path.read_text())["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    metrics = cell["metrics"]
    assert metrics["n_clusters"] <= 8 and 0 <= metrics["nmi"] <= 1  # the final pseudo-labels at k=8
    assert metrics["kmeans_k10.n_clusters"] == 10 and 0 <= metrics["kmeans_k10.nmi"] <= 1  # k-means at the grid's K
    assert cell["params"]["k"] == 8

    client = MlflowClient(default_tracking_uri(results))
    run_id = cell["mlflow_run_id"]
    for key in ("loss", "nmi_labels", "time_features_s", "time_clustering_s", "time_training_s", "images_per_s",
                "clusters_empty", "cluster_largest", "cluster_smallest"):
        assert [s for s, _ in _metric_steps(client, run_id, key)] == [0, 1], key
    assert [s for s, _ in _metric_steps(client, run_id, "nmi_previous")] == [1]
    assert "deepcluster_nmi.png" in {a.path for a in client.list_artifacts(run_id)}
    checkpoints = list((results / "cache" / "work" / "deepcluster").glob("*/checkpoint.pt"))
    assert len(checkpoints) == 1 and read_checkpoint(checkpoints[0])["epoch"] == 2


@pytest.mark.slow
def test_embedder_end_to_end_trains_once_and_shares_the_clusterers_training(tmp_path):
    from mlflow.tracking import MlflowClient

    from clusterbench.cli import main
    from clusterbench.track.tracking import default_tracking_uri

    results, summary_path = tmp_path / "results", tmp_path / "summary.json"
    spec = f"alexnet-deepcluster:epochs=1,{TINY_SPEC}"
    status = main(["run", "-d", "digits:limit=200", "-e", spec, "-c", "kmeans", "-c", "kmeans:k=12", "--k", "10",
                   "--results", str(results), "--json", str(summary_path), "--no-progress"])
    assert status == 0
    first, second = json.loads(summary_path.read_text())["cells"]
    assert first["status"] == second["status"] == "ok"
    assert first["params"]["weights"].startswith("deepcluster:") and first["metrics"]["embed_cached"] == 0.0
    client = MlflowClient(default_tracking_uri(results))
    assert [s for s, _ in _metric_steps(client, first["mlflow_run_id"], "loss")] == [0]
    assert _metric_steps(client, second["mlflow_run_id"], "loss") == []  # trained once, in the first cell

    # The same training config as a clusterer finds the finished checkpoint and does not train again.
    digits = DATASETS.create("digits:limit=200").load()
    config = DeepClusterConfig(epochs=1, **TINY)
    assert (run_dir(results / "cache" / "work", config, digits.fingerprint) / "checkpoint.pt").exists()
    status = main(["run", "-d", "digits:limit=200", "-e", "pixels", "-c", f"deepcluster:epochs=1,{TINY_SPEC}",
                   "--k", "10", "--results", str(results), "--json", str(summary_path), "--no-progress"])
    cell = json.loads(summary_path.read_text())["cells"][0]
    assert status == 0 and cell["metrics"]["cluster.resumed_from_epoch"] == 1.0


@pytest.mark.slow
def test_grid_k_does_not_replace_the_overclustering_k(run_cli):
    status, _, err, summary = run_cli("-d", "digits:limit=200", "-e", "pixels", "-c",
                                      "deepcluster:epochs=1,batch_size=64,size=16,precision=fp32,device=cpu", "--k", "5")
    cell = summary["cells"][0]
    assert status == 0, err
    assert cell["params"]["k"] == 30 and cell["params"]["k_source"] == "default"
    assert 5 < cell["metrics"]["n_clusters"] <= 30
    assert cell["metrics"]["kmeans_k5.n_clusters"] == 5 and cell["metrics"]["kmeans_k5.nmi"] is not None


def test_prepare_images_reads_each_image_once_and_widens_grey_to_colour():
    from clusterbench.datasets.base import ImageData

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 30, 1), dtype=np.uint8)
    colour = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    reads = []

    class Counted(ImageData):  # stands for a folder that decodes from disk on every read
        def image(self, i):
            reads.append(i)
            return super().image(i)

    images = T.prepare_images(Counted([grey, colour], None, None, "x"), 16)
    assert sorted(reads) == [0, 1]
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images[0][0], images[0][1]) and torch.equal(images[0][1], images[0][2])
    expected = torch.nn.functional.interpolate(torch.from_numpy(colour).permute(2, 0, 1)[None].float(), size=(16, 16),
                                               mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(images[1], expected.round().clamp(0, 255).to(torch.uint8)[0])


def test_output_layers_are_fc7_before_relu_fc6_after_relu_and_the_body():
    net = build_model("alexnet-small", sobel=True, size=28).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        body = net.body(x)
        fc6 = torch.relu(net.classifier[1](body))
        fc7 = net.classifier[4](fc6)
        assert torch.allclose(net.output(x, "conv"), body)
        assert torch.allclose(net.output(x, "fc6"), fc6) and bool((fc6 >= 0).all()) and bool((fc6 == 0).any())
        assert torch.allclose(net.output(x, "fc7"), fc7) and torch.allclose(net.embed(x), fc7)
        assert bool((fc7 < 0).any())  # before the final ReLU
    with pytest.raises(UserError, match="layer=fc6 needs an AlexNet backbone"):
        build_model("resnet18", sobel=True, size=32).eval().output(torch.rand(2, 3, 32, 32), "fc6")


def test_embedder_layer_reads_the_same_training_at_another_layer(tmp_path):
    from clusterbench.core.contracts import Context, EmbedRequest
    from clusterbench.methods.embedders import EMBEDDERS

    data = DATASETS.create("digits:limit=120").load()
    request = EmbedRequest(context=Context(work_dir=str(tmp_path)))
    spec = f"alexnet-deepcluster:epochs=1,{TINY_SPEC},l2=false"
    fc7 = EMBEDDERS.create(spec).embed(data, request)
    [checkpoint] = (tmp_path / "deepcluster").glob("*/checkpoint.pt")
    mtime = checkpoint.stat().st_mtime_ns
    fc6 = EMBEDDERS.create(f"{spec},layer=fc6").embed(data, request)
    conv = EMBEDDERS.create(f"{spec},layer=conv").embed(data, request)
    assert checkpoint.stat().st_mtime_ns == mtime  # the finished training is read, not repeated
    assert fc6.stats.details["layer"] == "fc6" and fc7.stats.details["layer"] == "fc7"
    assert fc6.features.shape == fc7.features.shape == (120, 1024) and conv.features.shape[1] != 1024
    assert fc6.features.min() >= 0 > fc7.features.min()

    net, _, resolved = model_from_checkpoint(read_checkpoint(checkpoint))
    images = T.prepare_images(data, resolved["size"])
    with torch.no_grad():
        expected = net.eval().output(torch.stack([T.Normalize(1)(img) for img in images]), "fc6")
    np.testing.assert_allclose(fc6.features, expected.numpy(), rtol=1e-3, atol=1e-4)
    from_file = EMBEDDERS.create(f"alexnet-deepcluster:checkpoint={checkpoint},layer=fc6,precision=fp32,device=cpu,l2=false")
    np.testing.assert_allclose(from_file.embed(data).features, expected.numpy(), rtol=1e-3, atol=1e-4)

    with pytest.raises(UserError, match="layer=fc6 needs an AlexNet backbone; resnet18"):
        EMBEDDERS.create(f"{spec},backbone=resnet18,layer=fc6").embed(data, request)
