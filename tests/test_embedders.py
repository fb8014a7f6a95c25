"""Torch embedders: torchvision CNNs and timm models.

No pretrained weights can be downloaded here, so networks are randomly initialised or loaded
from state dicts the tests save themselves; the offline paths are checked for failing fast.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch
from PIL import Image

from clusterbench.core.contracts import EmbedRequest
from clusterbench.core.errors import UserError
from clusterbench.datasets import DATASETS
from clusterbench.methods.embedders import EMBEDDERS, weights
from clusterbench.methods.embedders.timm_model import TimmModel, _tensor_transform
from clusterbench.methods.embedders.torchvision_cnn import TorchvisionCNN


@pytest.fixture(scope="module")
def digits():
    return DATASETS.create("digits:limit=40").load()


@pytest.fixture(scope="module")
def few():
    return DATASETS.create("digits:limit=8").load()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real PNG files: grayscale and RGB, of different sizes."""
    root = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(0)
    shapes = [(20, 30), (48, 40, 3), (33, 33), (17, 64, 3), (64, 64, 3)]
    for i, shape in enumerate(shapes):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / f"img{i}.png")
    return DATASETS.create(f"folder:root={root}").load()


def embed(spec: str, data, with_logits: bool = False):
    return EMBEDDERS.create(spec).embed(data, EmbedRequest(with_logits=with_logits))


def assert_features(emb, n: int, dim: int):
    assert emb.features.dtype == np.float32
    assert emb.features.shape == (n, dim)
    assert np.isfinite(emb.features).all()
    stats = emb.stats
    assert stats.feature_dim == dim
    assert stats.device == "cpu"
    assert stats.precision in ("fp32", "bf16")
    assert stats.images_per_s > 0
    assert stats.weights
    assert isinstance(stats.details["batchnorm_folded"], int)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def reference_features(model: torch.nn.Module, head: str, embedder, data) -> np.ndarray:
    """Independent fp32 forward: the classifier head replaced by Identity gives its input."""
    parent, _, child = head.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, torch.nn.Identity())
    transform = embedder.transform()
    batch = torch.stack([transform(_chw(data.image(i))) for i in range(len(data))])
    with torch.inference_mode():
        return model.eval()(batch).numpy()


def _chw(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


def seeded(builder, seed: int):
    torch.manual_seed(seed)
    return builder()


# --- torchvision CNNs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,size,dataset,dim",
    [
        ("resnet152", 32, "few", 2048),
        ("densenet121", 32, "digits", 1024),
        ("densenet161", 32, "few", 2208),
        ("densenet201", 32, "few", 1920),
        ("alexnet", 64, "digits", 4096),
    ],
)
def test_cnn_features_have_the_penultimate_width(name, size, dataset, dim, request):
    data = request.getfixturevalue(dataset)
    emb = embed(f"{name}:weights=none,size={size}", data)
    assert_features(emb, len(data), dim)
    assert emb.stats.weights == "random:seed=0"
    assert emb.stats.model == name
    assert emb.stats.image_size == size
    assert emb.logits is None


def test_cnn_embeds_mixed_gray_and_rgb_files_of_any_size(folder):
    emb = embed("densenet121:weights=none,size=32", folder, with_logits=True)
    assert_features(emb, len(folder), 1024)
    assert emb.logits.shape == (len(folder), 1000)
    assert len(emb.classes.names) == len(emb.classes.wnids) == 1000
    assert (emb.classes.names[0], emb.classes.wnids[0]) == ("tench", "n01440764")
    assert embed("densenet121:weights=none,size=32", folder).classes is None  # no logits asked for, none given


def test_cnn_seed_decides_random_weights(digits):
    first = embed("densenet121:weights=none,size=32,seed=1", digits).features
    again = embed("densenet121:weights=none,size=32,seed=1", digits).features
    other = embed("densenet121:weights=none,size=32,seed=2", digits).features
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "container"])
def test_cnn_loads_a_saved_state_dict(tmp_path, few, wrap):
    from torchvision.models import densenet121

    model = seeded(densenet121, 7)
    state = model.state_dict()
    if wrap == "module_prefix":
        state = {f"module.{k}": v for k, v in state.items()}
    elif wrap == "container":
        state = {"epoch": 3, "state_dict": state}
    path = tmp_path / f"densenet_{wrap}.pth"
    torch.save(state, path)

    embedder = EMBEDDERS.create(f"densenet121:weights={path},size=32,precision=fp32")
    emb = embedder.embed(few)
    assert emb.stats.weights == f"file:{path.name}:{weights.file_sha256(path)}"
    expected = reference_features(model, "classifier", embedder, few)
    np.testing.assert_allclose(emb.features, expected, rtol=1e-4, atol=1e-5)
    # The same weights reached through the seed give bit-identical features.
    same = embed("densenet121:weights=none,seed=7,size=32,precision=fp32", few).features
    np.testing.assert_array_equal(emb.features, same)


def test_alexnet_features_are_fc7_after_relu(few):
    embedder = EMBEDDERS.create("alexnet:weights=none,seed=2,size=64,precision=fp32")
    emb = embedder.embed(few)
    from torchvision.models import alexnet

    expected = reference_features(seeded(alexnet, 2), "classifier.6", embedder, few)
    np.testing.assert_allclose(emb.features, expected, rtol=1e-4, atol=1e-5)
    assert (emb.features >= 0).all()


def test_cnn_rejects_state_dicts_that_do_not_fit(tmp_path, few):
    from torchvision.models import densenet121

    state = densenet121().state_dict()
    state["head.weight"] = state.pop("classifier.weight")
    torch.save(state, tmp_path / "renamed.pth")
    spec = "densenet121:size=32,weights="
    with pytest.raises(UserError, match=r"missing classifier\.weight.*unexpected head\.weight"):
        embed(spec + str(tmp_path / "renamed.pth"), few)

    torch.save(densenet121(num_classes=10).state_dict(), tmp_path / "ten.pth")
    with pytest.raises(UserError, match="size mismatch"):
        embed(spec + str(tmp_path / "ten.pth"), few)

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read weights file"):
        embed(spec + str(tmp_path / "junk.pth"), few)

    with pytest.raises(UserError, match=r"weights=\S*absent\.pth does not exist"):  # refused by its declaration
        embed(spec + str(tmp_path / "absent.pth"), few)


def test_state_dict_loader(tmp_path):
    with pytest.raises(UserError, match="absent.pt"):
        weights.load_state_dict(tmp_path / "absent.pt")
    torch.save({"model": {"module.a": torch.ones(1)}}, tmp_path / "ok.pt")
    assert list(weights.load_state_dict(tmp_path / "ok.pt")) == ["a"]
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UserError, match="state dict"):
        weights.load_state_dict(tmp_path / "list.pt")


@pytest.mark.slow
def test_cnn_named_layer_is_pooled(few):
    emb = embed("resnet152:weights=none,size=32,layer=layer3", few)
    assert_features(emb, len(few), 1024)
    assert emb.stats.details["layer"] == "layer3"
    with pytest.raises(UserError, match="unknown layer 'layer9'.*layer3.*fc"):
        embed("resnet152:weights=none,size=32,layer=layer9", few)


def test_cnn_too_small_input_is_a_user_error(few):
    with pytest.raises(UserError, match="too small"):
        embed("alexnet:weights=none,size=32", few)


def test_cnn_imagenet_weights_fail_fast_offline(monkeypatch, tmp_path, few):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(weights, "host_reachable", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        embed("resnet152:size=32", few)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message
    assert "resnet152" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet152-f82ba261.pth") in message
    assert "weights=PATH" in message


def test_cnn_uses_cached_imagenet_weights_offline(monkeypatch, tmp_path, few):
    from torchvision.models import densenet121

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(weights, "host_reachable", lambda *a, **k: False)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(seeded(densenet121, 11).state_dict(), checkpoints / "densenet121-a639ec97.pth")
    emb = embed("densenet121:size=32,precision=fp32", few)
    assert emb.stats.weights == "DenseNet121_Weights.IMAGENET1K_V1"
    same = embed("densenet121:weights=none,seed=11,size=32,precision=fp32", few)
    np.testing.assert_array_equal(emb.features, same.features)


def test_cnn_weights_identity_and_classes():
    assert EMBEDDERS.create("resnet152").identity() == "ResNet152_Weights.IMAGENET1K_V2"
    assert EMBEDDERS.create("resnet152:weights=imagenet1k_v1").identity() == "ResNet152_Weights.IMAGENET1K_V1"
    assert EMBEDDERS.create("densenet121:weights=none,seed=3").identity() == "random:seed=3"
    classes = EMBEDDERS.create("alexnet:weights=none").classes()
    assert len(classes.names) == 1000 and classes.names[0] == "tench"
    assert classes.wnids[0] == "n01440764" and classes.wnids[-1] == "n15075141"  # toilet tissue
    with pytest.raises(UserError, match="IMAGENET1K_V2"):
        EMBEDDERS.create("resnet152:weights=imagenet9").identity()


def test_every_cnn_is_registered_with_the_shared_parameters():
    for name in ("resnet152", "densenet121", "densenet161", "densenet201", "alexnet"):
        assert issubclass(EMBEDDERS.get(name), TorchvisionCNN)
        assert EMBEDDERS.parameters(name)["weights"] == "imagenet"


@pytest.mark.slow
def test_bf16_agrees_with_fp32(few):
    fp32 = embed("resnet152:weights=none,size=32,precision=fp32", few)
    bf16 = embed("resnet152:weights=none,size=32,precision=bf16", few)
    assert (fp32.stats.precision, bf16.stats.precision) == ("fp32", "bf16")
    assert cosine_rows(fp32.features, bf16.features).min() >= 0.99


# --- timm ----------------------------------------------------------------------------------


def test_timm_random_model_embeds_digits_and_files(digits, folder):
    emb = embed("timm:model=resnet18,pretrained=false,size=32", digits)
    assert_features(emb, len(digits), 512)
    assert emb.stats.weights == "random:seed=0"
    assert_features(embed("timm:model=resnet18,pretrained=false,size=32", folder), len(folder), 512)


def test_timm_loads_a_saved_state_dict(tmp_path, few):
    import timm

    model = seeded(lambda: timm.create_model("resnet18", num_classes=10), 5)
    path = tmp_path / "resnet18.pth"
    torch.save({"model": model.state_dict()}, path)

    embedder = EMBEDDERS.create(f"timm:model=resnet18,pretrained={path},size=32,precision=fp32")
    emb = embedder.embed(few)
    assert_features(emb, len(few), 512)
    assert emb.stats.weights == f"file:resnet18.pth:{weights.file_sha256(path)}"
    batch = torch.stack([embedder.transform()(_chw(few.image(i))) for i in range(len(few))])
    with torch.inference_mode():
        expected = model.eval().forward_head(model.forward_features(batch), pre_logits=True).numpy()
    np.testing.assert_allclose(emb.features, expected, rtol=1e-4, atol=1e-5)

    broken = {k: v for k, v in model.state_dict().items() if not k.startswith("layer4")}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(UserError, match="missing layer4"):
        embed(f"timm:model=resnet18,pretrained={tmp_path / 'broken.pth'}", few)


def test_timm_pretrained_fails_fast_offline(monkeypatch, tmp_path, few):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "host_reachable", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        embed("timm:model=resnet18,size=32", few)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "resnet18" in message and str(tmp_path / "hub") in message and "pretrained=PATH" in message
    assert hf.HF_HUB_OFFLINE is False  # offline mode only for the creation call


def test_timm_names_are_checked():
    with pytest.raises(UserError, match="resnet18"):
        EMBEDDERS.create("timm:model=resnt18").identity()
    with pytest.raises(UserError, match="a1_in1k"):
        EMBEDDERS.create("timm:model=resnet18.bogus").identity()
    assert EMBEDDERS.create("timm:model=resnet18").identity() == "timm:resnet18.a1_in1k:pretrained"
    assert EMBEDDERS.create("timm:model=resnet18,pretrained=false,seed=4").identity() == "random:seed=4"
    classes = TimmModel("resnet18").classes()
    assert (classes.names[0], classes.wnids[0]) == ("tench", "n01440764") and len(classes.wnids) == 1000
    assert TimmModel("resnet18", pretrained=False).classes() is None


def test_timm_logits_of_a_headless_network_are_one_line(few):
    with pytest.raises(UserError) as err:
        embed("timm:model=resnet18,pretrained=false,size=32", few, with_logits=True)
    assert "\n" not in str(err.value) and "no classifier head" in str(err.value)


def test_timm_transform_takes_uint8_tensors():
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    out = TimmModel("resnet18", pretrained=False).transform()(image)
    assert out.dtype == torch.float32 and out.shape == (3, 224, 224)
    out = TimmModel("resnet18", pretrained=False, size=48).transform()(image)
    assert out.shape == (3, 48, 48)


def test_timm_border_crop_pads_with_the_mean_colour():
    config = {
        "input_size": (3, 32, 32),
        "interpolation": "bilinear",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "crop_pct": 1.0,
        "crop_mode": "border",
    }
    white = torch.full((3, 10, 40), 255, dtype=torch.uint8)
    out = _tensor_transform(config)(white)
    assert out.shape == (3, 32, 32)
    assert out[:, 0].abs().max() == 0  # padding: the mean colour, normalised
    assert torch.allclose(out[:, 16], torch.full((3, 32), 2.0))  # the image: white, normalised


# --- reachability ---------------------------------------------------------------------------


def test_host_reachable_is_bounded_by_its_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert weights.host_reachable("127.0.0.1", server.getsockname()[1], timeout=2.0)
    start = time.perf_counter()
    assert not weights.host_reachable("unreachable.invalid", timeout=1.0)
    assert time.perf_counter() - start < 2


@pytest.mark.slow
def test_compiled_model_gives_the_eager_features_and_keeps_warm_up_out_of_the_rate(digits):
    # 40 images in batches of 16: the short last batch is padded, so it reuses the compiled graph
    spec = "timm:model=resnet18,pretrained=false,size=32,precision=fp32,batch_size=16"
    eager = embed(spec, digits)
    compiled = embed(spec + ",compile=true", digits)
    assert compiled.stats.compile is True and eager.stats.compile is False
    assert compiled.features.shape == eager.features.shape
    np.testing.assert_allclose(compiled.features, eager.features, rtol=1e-3, atol=1e-4)
    # compilation happens in the first batch, which the rate leaves out
    assert compiled.stats.warmup_seconds > 5 * eager.stats.warmup_seconds
    assert compiled.stats.images_per_s > 0


def test_cuda_loader_workers_use_spare_cores_but_not_more_than_half_the_batches(monkeypatch):
    import os

    from clusterbench.infer.inference import cuda_loader_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert [cuda_loader_workers(n) for n in (1, 2, 8, 24, 1000)] == [1, 1, 4, 12, 15]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cuda_loader_workers(1000) == 1
