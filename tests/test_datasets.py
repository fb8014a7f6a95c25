"""Datasets: image decoding, the folder loader, Fashion-MNIST and the torchvision sets.

Every image here is a real file written with Pillow; nothing reaches the network.
"""

from __future__ import annotations

import gzip
import os
import socket
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from clusterbench.core.errors import DataError, UserError
from clusterbench.datasets import DATASETS, fashion_mnist, net
from clusterbench.datasets.folder import Folder
from clusterbench.datasets.images import IMAGE_EXTENSIONS, decode_image


def save(path, img: Image.Image, **kwargs) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, **kwargs)
    return str(path)


def mode_of(path) -> str:
    with Image.open(path) as img:
        return img.mode


def noise(size=64, seed=0) -> Image.Image:
    """Incompressible RGB content, so a file cut in half loses pixel data, not just trailers."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def solid(color, size=(4, 4)) -> Image.Image:
    return Image.new("RGB", size, color)


# --- decode_image: colour modes ---------------------------------------------------------------


def test_rgb_roundtrip_and_extensions(tmp_path):
    img = solid((10, 20, 30))
    formats = {"png": "PNG", "PNG": "PNG", "bmp": "BMP", "tif": "TIFF", "TIFF": "TIFF", "webp": "WEBP"}
    for ext, fmt in formats.items():
        kwargs = {"lossless": True} if fmt == "WEBP" else {}
        arr = decode_image(save(tmp_path / f"a_{ext}.{ext}", img, format=fmt, **kwargs))
        assert arr.dtype == np.uint8 and arr.shape == (4, 4, 3)
        assert tuple(arr[0, 0]) == (10, 20, 30)
    assert set(IMAGE_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def test_grayscale_l_becomes_three_equal_channels(tmp_path):
    path = save(tmp_path / "g.png", Image.fromarray(np.array([[0, 77], [200, 255]], dtype=np.uint8)))
    arr = decode_image(path)
    assert arr.shape == (2, 2, 3)
    assert arr[:, :, 0].tolist() == [[0, 77], [200, 255]]
    assert (arr[:, :, 0] == arr[:, :, 2]).all()


def test_jpeg_grayscale(tmp_path):
    path = save(tmp_path / "g.JPEG", Image.new("L", (8, 8), 128), quality=95)
    arr = decode_image(path)
    assert arr.shape == (8, 8, 3) and abs(int(arr[0, 0, 0]) - 128) <= 2


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_grayscale_is_scaled_not_clipped(tmp_path, ext):
    values = np.array([[0, 32768], [65535, 257]], dtype=np.uint16)
    path = save(tmp_path / f"d.{ext}", Image.fromarray(values))
    assert mode_of(path) == "I;16"
    arr = decode_image(path)
    assert arr[:, :, 0].tolist() == [[0, 128], [255, 1]]


def test_16bit_big_endian(tmp_path):
    path = save(tmp_path / "d.tif", Image.fromarray(np.array([[65535, 32768]], dtype=">u2")))
    assert mode_of(path) == "I;16B"
    assert decode_image(path)[0, :, 0].tolist() == [255, 128]


def test_32bit_mode_i(tmp_path):
    sixteen = save(tmp_path / "i16.tif", Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)))
    assert mode_of(sixteen) == "I"
    assert decode_image(sixteen)[0, :, 0].tolist() == [0, 128, 255]
    # Values beyond 16 bits can only be stretched from their own range.
    wide = save(tmp_path / "i32.tif", Image.fromarray(np.array([[-100, 0, 100_000]], dtype=np.int32)))
    assert decode_image(wide)[0, :, 0].tolist() == [0, 0, 255]


def test_float_mode_f(tmp_path):
    unit = save(tmp_path / "f.tif", Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)))
    assert mode_of(unit) == "F"
    assert decode_image(unit)[0, :, 0].tolist() == [0, 128, 255]
    wide = save(tmp_path / "w.tif", Image.fromarray(np.array([[-1.0, 0.0, 1000.0]], dtype=np.float32)))
    assert decode_image(wide)[0, :, 0].tolist() == [0, 0, 255]


def test_one_bit(tmp_path):
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    arr = decode_image(save(tmp_path / "b.png", img))
    assert arr[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_rgba_composites_on_white(tmp_path):
    img = Image.new("RGBA", (3, 1))
    img.putdata([(0, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)])
    arr = decode_image(save(tmp_path / "a.png", img))
    assert tuple(arr[0, 0]) == (255, 255, 255)  # fully transparent -> white, not black
    assert tuple(arr[0, 1]) == (255, 0, 0)
    assert all(abs(int(v) - 127) <= 1 for v in arr[0, 2])


def test_la_composites_on_white(tmp_path):
    img = Image.new("LA", (2, 1))
    img.putdata([(0, 0), (50, 255)])
    arr = decode_image(save(tmp_path / "la.png", img))
    assert arr[0].tolist() == [[255, 255, 255], [50, 50, 50]]


def test_palette(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 1])
    path = save(tmp_path / "p.png", img)
    assert mode_of(path) == "P"
    assert decode_image(path)[0].tolist() == [[255, 0, 0], [0, 0, 255]]


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 1])
    path = save(tmp_path / "pt.png", img, transparency=1)
    assert decode_image(path)[0].tolist() == [[255, 0, 0], [255, 255, 255]]


@pytest.mark.parametrize("ext", ["tif", "jpg"])
def test_cmyk_pure_cyan(tmp_path, ext):
    path = save(tmp_path / f"c.{ext}", Image.new("CMYK", (4, 4), (255, 0, 0, 0)))
    assert mode_of(path) == "CMYK"
    r, g, b = (int(v) for v in decode_image(path)[0, 0])
    assert r <= 5 and g >= 250 and b >= 250


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    path = save(tmp_path / "o.jpg", solid((0, 0, 0), size=(16, 8)), exif=exif)
    assert decode_image(path).shape == (16, 8, 3)


# --- decode_image: broken files ---------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png.*empty file"):
        decode_image(str(path))


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("just some text\n")
    with pytest.raises(DataError, match=r"notes\.jpg.*not a recognised image"):
        decode_image(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"gone\.png.*cannot read"):
        decode_image(str(tmp_path / "gone.png"))


@pytest.mark.parametrize("ext", ["png", "jpg"])
@pytest.mark.parametrize("keep", ["half", "all but 20 bytes"])
def test_truncated_file(tmp_path, ext, keep, monkeypatch):
    full = save(tmp_path / f"full.{ext}", noise())
    with open(full, "rb") as f:
        data = f.read()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2] if keep == "half" else data[:-20])
    # Even if another library relaxed Pillow globally, a truncated file stays an error.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DataError, match=rf"cut\.{ext}.*truncated or corrupt"):
        decode_image(str(cut))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


@pytest.mark.parametrize("side", [12, 40])  # above the limit (Pillow warns) and above 2x (it raises)
def test_decompression_bomb(tmp_path, monkeypatch, side):
    path = save(tmp_path / "bomb.png", solid((1, 2, 3), size=(side, side)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"bomb\.png.*pixel count exceeds Pillow's limit"):
        decode_image(path)


# --- folder -----------------------------------------------------------------------------------


def make_classes(root, counts: dict[str, int], size=(4, 4)):
    for name, n in counts.items():
        for i in range(n):
            save(root / name / f"{i:03d}.png", solid((i, len(name), 0), size=size))


def test_folder_labels_and_class_names(tmp_path):
    make_classes(tmp_path, {"dog": 2, "cat": 3})
    save(tmp_path / "cat" / "nested" / "deep.jpg", solid((5, 5, 5)))
    (tmp_path / "cat" / "README.txt").write_text("not an image")
    data = Folder(str(tmp_path)).load()
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert isinstance(data.images, np.ndarray) and data.images.shape == (6, 4, 4, 3)
    assert data.info["root"] == str(tmp_path)


def test_folder_ignores_loose_images_beside_class_folders(tmp_path):
    make_classes(tmp_path, {"a": 1, "b": 1})
    save(tmp_path / "loose.png", solid((0, 0, 0)))
    with pytest.warns(UserWarning, match="ignoring 1 image"):
        data = Folder(str(tmp_path)).load()
    assert len(data) == 2 and data.class_names == ["a", "b"]


def test_folder_unlabeled_flat(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", solid((i, i, i)))
    data = Folder(str(tmp_path)).load()
    assert data.labels is None and data.class_names is None and len(data) == 3


def test_folder_mixed_sizes_give_a_list(tmp_path):
    save(tmp_path / "a.png", solid((1, 1, 1), size=(4, 4)))
    save(tmp_path / "b.png", solid((1, 1, 1), size=(5, 3)))
    data = Folder(str(tmp_path)).load()
    assert isinstance(data.images, list)
    assert [img.shape for img in data.images] == [(4, 4, 3), (3, 5, 3)]


def test_folder_spec_and_home_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    make_classes(tmp_path / "imgs", {"a": 2, "b": 2})
    data = DATASETS.create("folder:root=~/imgs,strict=true").load()
    assert len(data) == 4 and data.info["root"] == str(tmp_path / "imgs")


def test_folder_skips_unreadable_with_warning(tmp_path):
    make_classes(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / "zero.png").write_bytes(b"")
    (tmp_path / "b" / "text.jpg").write_text("hello")
    with pytest.warns(UserWarning) as record:
        data = Folder(str(tmp_path)).load()
    messages = " ".join(str(w.message) for w in record)
    assert "zero.png" in messages and "empty file" in messages
    assert "text.jpg" in messages and "not a recognised image" in messages
    assert len(data) == 4 and data.labels.tolist() == [0, 0, 1, 1]
    assert len(data.info["skipped"]) == 2


def test_folder_strict_raises(tmp_path):
    make_classes(tmp_path, {"a": 2})
    (tmp_path / "a" / "zero.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"zero\.png.*empty file"):
        Folder(str(tmp_path), strict=True).load()


def test_folder_all_unreadable(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="none of the 1 image"):
        Folder(str(tmp_path)).load()


def test_folder_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"nope.*does not exist"):
        Folder(str(tmp_path / "nope")).load()


def test_folder_root_is_a_file(tmp_path):
    path = save(tmp_path / "a.png", solid((0, 0, 0)))
    with pytest.raises(DataError, match="is not a directory"):
        Folder(path).load()


def test_folder_without_images(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images found in .*\.jpg.*\.png") as err:
        Folder(str(tmp_path)).load()
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_folder_limit_is_stratified_and_seeded(tmp_path):
    make_classes(tmp_path, {"a": 20, "b": 10, "c": 10}, size=(2, 2))
    first = Folder(str(tmp_path), limit=20, seed=1).load()
    assert np.bincount(first.labels).tolist() == [10, 5, 5]
    again = Folder(str(tmp_path), limit=20, seed=1).load()
    assert np.array_equal(first.images, again.images) and first.fingerprint == again.fingerprint
    other = Folder(str(tmp_path), limit=20, seed=2).load()
    assert not np.array_equal(first.images, other.images)
    assert first.fingerprint != other.fingerprint


def test_folder_fingerprint_tracks_content(tmp_path):
    make_classes(tmp_path, {"a": 2, "b": 2})
    before = Folder(str(tmp_path)).load().fingerprint
    assert Folder(str(tmp_path)).load().fingerprint == before
    save(tmp_path / "a" / "000.png", solid((99, 0, 0)))
    assert Folder(str(tmp_path)).load().fingerprint != before


def test_folder_too_large_for_memory_decodes_on_read_with_the_same_content(tmp_path):
    for i in range(6):
        save(tmp_path / ("a" if i % 2 else "b") / f"{i}.jpg", noise(48, seed=i), quality=90)
    held = Folder(str(tmp_path)).load()
    lazy = Folder(str(tmp_path), keep_decoded_mb=0).load()
    assert held.info["decoded_in_memory"] and not lazy.info["decoded_in_memory"]
    assert isinstance(held.images, np.ndarray) and not isinstance(lazy.images, np.ndarray | list)
    assert len(lazy) == 6 and lazy.labels.tolist() == held.labels.tolist()
    for i in range(6):
        np.testing.assert_array_equal(lazy.image(i), held.image(i))
    assert lazy.fingerprint == held.fingerprint  # same content, same cache entries


def test_folder_decoded_on_read_still_skips_a_truncated_jpeg_at_load(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.jpg", noise(96, seed=i), quality=95)
    whole = (tmp_path / "1.jpg").read_bytes()
    (tmp_path / "1.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.warns(UserWarning, match=r"1\.jpg: truncated or corrupt"):
        data = Folder(str(tmp_path), keep_decoded_mb=0).load()
    assert len(data) == 2 and len(data.info["skipped"]) == 1


def test_folder_limit_reads_only_the_selected_files(tmp_path, monkeypatch):
    from clusterbench.datasets import folder as folder_module

    make_classes(tmp_path, {"a": 10, "b": 10}, size=(2, 2))
    opened = []
    original = folder_module.load_file
    monkeypatch.setattr(folder_module, "load_file", lambda path, **kw: opened.append(path) or original(path, **kw))
    data = Folder(str(tmp_path), limit=6, seed=0).load()
    assert len(data) == 6 and len(opened) == 6 and np.bincount(data.labels).tolist() == [3, 3]


def test_folder_negative_memory_budget_is_refused(tmp_path):
    make_classes(tmp_path, {"a": 1})
    with pytest.raises(DataError, match="keep_decoded_mb=-1 must be >= 0"):
        Folder(str(tmp_path), keep_decoded_mb=-1).load()


# --- Fashion-MNIST ----------------------------------------------------------------------------

HAVE_FASHION = fashion_mnist.locate(fashion_mnist.SYSTEM_DIR, "all") is not None
needs_fashion = pytest.mark.skipif(
    not HAVE_FASHION, reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist"
)


@pytest.fixture(scope="module")
def fashion_all():
    start = time.perf_counter()
    data = DATASETS.create("fashion-mnist").load()
    return data, time.perf_counter() - start


@needs_fashion
def test_fashion_mnist_all(fashion_all):
    data, seconds = fashion_all
    assert data.images.shape == (70000, 28, 28) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [7000] * 10
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert seconds < 2.0


@needs_fashion
def test_fashion_mnist_splits_and_limit(fashion_all):
    full, _ = fashion_all
    train = DATASETS.create("fashion-mnist:split=train").load()
    test = DATASETS.create("fashion-mnist:split=test").load()
    assert len(train) == 60000 and len(test) == 10000
    assert np.array_equal(full.images[60000:], test.images)  # all = train then test
    assert len({full.fingerprint, train.fingerprint, test.fingerprint}) == 3
    small = DATASETS.create("fashion-mnist:split=test,limit=1000,seed=3").load()
    assert np.bincount(small.labels).tolist() == [100] * 10
    assert (
        small.fingerprint == DATASETS.create("fashion-mnist:split=test,limit=1000,seed=3").load().fingerprint
    )


def write_idx(path, arr: np.ndarray, gz: bool = False) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes() + arr.tobytes()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)


def write_fake_fashion(directory, gz: bool = False) -> None:
    """A tiny set in the real file layout: 20 train and 10 test images."""
    ext = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    for part, n in (("train", 20), ("t10k", 10)):
        write_idx(f"{directory}/{part}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(f"{directory}/{part}-labels-idx1-ubyte{ext}", np.arange(n) % 10, gz)


@pytest.fixture
def no_fashion_anywhere(tmp_path, monkeypatch):
    """Every place Fashion-MNIST is looked for is empty and the download host is unreachable."""
    monkeypatch.setenv(net.DATA_ENV, str(tmp_path / "env"))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(net, "reachable", lambda *args, **kwargs: False)
    return tmp_path


def test_fashion_mnist_from_root_uncompressed(no_fashion_anywhere):
    root = no_fashion_anywhere / "mine"
    write_fake_fashion(root)
    data = DATASETS.create(f"fashion-mnist:root={root}").load()
    assert data.images.shape == (30, 28, 28) and data.info["root"] == str(root)
    assert len(DATASETS.create(f"fashion-mnist:root={root},split=test").load()) == 10


def test_fashion_mnist_from_env_and_download_cache(no_fashion_anywhere):
    write_fake_fashion(no_fashion_anywhere / "env" / "fashion-mnist", gz=True)
    assert len(DATASETS.create("fashion-mnist:split=train").load()) == 20
    # A copy torchvision downloaded earlier is found too.
    write_fake_fashion(no_fashion_anywhere / "env2" / "FashionMNIST" / "raw")
    os.environ[net.DATA_ENV] = str(no_fashion_anywhere / "env2")
    assert len(DATASETS.create("fashion-mnist:split=test").load()) == 10


def test_fashion_mnist_not_found_message(no_fashion_anywhere):
    with pytest.raises(DataError) as err:
        DATASETS.create("fashion-mnist").load()
    message = str(err.value)
    assert "\n" not in message
    for place in (no_fashion_anywhere / "env" / "fashion-mnist", no_fashion_anywhere / "system"):
        assert str(place) in message
    assert "apt-get install dataset-fashion-mnist" in message and "unreachable" in message


def test_fashion_mnist_root_is_the_only_place_looked_in(no_fashion_anywhere):
    """A root= the user names is authoritative: its missing file is named, no other copy is read."""
    write_fake_fashion(no_fashion_anywhere / "env" / "fashion-mnist")  # a sound copy elsewhere
    empty = no_fashion_anywhere / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as err:
        DATASETS.create(f"fashion-mnist:root={empty}").load()
    message = str(err.value)
    assert "\n" not in message and f"root={empty}" in message and "train-images-idx3-ubyte" in message
    assert str(no_fashion_anywhere / "env") not in message and str(no_fashion_anywhere / "system") not in message
    write_fake_fashion(empty)
    (empty / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte\.gz\) not found"):
        DATASETS.create(f"fashion-mnist:root={empty},split=test").load()
    assert len(DATASETS.create(f"fashion-mnist:root={empty},split=train").load()) == 20


def test_fashion_mnist_damaged_root_never_falls_back(tmp_path, monkeypatch):
    """A truncated gzip in root= fails naming it, even with the system copy installed."""
    monkeypatch.setattr(net, "reachable", lambda *args, **kwargs: False)
    read = []
    real_read_idx = fashion_mnist.read_idx
    monkeypatch.setattr(fashion_mnist, "read_idx", lambda path: read.append(path) or real_read_idx(path))
    root = tmp_path / "mine"
    root.mkdir()
    bad = root / "train-images-idx3-ubyte.gz"
    whole = gzip.compress(b"\x00\x00\x08\x03" + os.urandom(4000))
    bad.write_bytes(whole[: len(whole) // 2])  # a truncated gzip
    with pytest.raises(DataError) as err:
        DATASETS.create(f"fashion-mnist:root={root},split=train").load()
    assert str(bad) in str(err.value) and "unreadable" in str(err.value) and "\n" not in str(err.value)
    assert read == [str(bad)]  # nothing from /usr/share/datasets/fashion-mnist or $CLUSTERBENCH_DATA


def test_fashion_mnist_missing_root_is_refused_before_loading(tmp_path):
    with pytest.raises(UserError, match=f"dataset 'fashion-mnist': root={tmp_path / 'nope'} does not exist"):
        DATASETS.validate(f"fashion-mnist:root={tmp_path / 'nope'}")


def test_fashion_mnist_corrupt_files(no_fashion_anywhere):
    root = no_fashion_anywhere / "bad"
    write_fake_fashion(root)
    labels = root / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x12\x34" + labels.read_bytes()[2:])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: not an IDX file"):
        DATASETS.create(f"fashion-mnist:root={root},split=test").load()
    images = root / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: corrupt IDX"):
        DATASETS.create(f"fashion-mnist:root={root},split=train").load()
    gz = root / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(b"0" * 100)[:20])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: unreadable IDX"):
        fashion_mnist.read_idx(str(gz))


def test_fashion_mnist_bad_split():
    with pytest.raises(UserError, match="split=validation is not allowed; choose one of train, test, all"):
        DATASETS.create("fashion-mnist:split=validation").load()


# --- torchvision sets and the network helper --------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "stl10"])
def test_torchvision_offline_message(tmp_path, monkeypatch, name):
    monkeypatch.setattr(net, "reachable", lambda *args, **kwargs: False)
    with pytest.raises(DataError) as err:
        DATASETS.create(name, root=str(tmp_path), split="test").load()
    message = str(err.value)
    assert str(tmp_path) in message and "download" in message and "failed" in message
    assert "\n" not in message


def test_torchvision_bad_split(tmp_path):
    with pytest.raises(DataError, match="'unlabeled'.*train, test, all"):
        DATASETS.create("cifar10", root=str(tmp_path), split="unlabeled").load()
    assert "unlabeled" in DATASETS.get("stl10").splits


def test_mnist_from_files_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(net, "reachable", lambda *args, **kwargs: False)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", np.full((6, 28, 28), 7))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(6) % 3)
    write_idx(raw / "t10k-images-idx3-ubyte", np.full((4, 28, 28), 9))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(4))
    data = DATASETS.create("mnist", root=str(tmp_path)).load()
    assert data.images.shape == (10, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 3]
    assert data.class_names == [str(i) for i in range(10)]


def test_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv(net.DATA_ENV, str(tmp_path))
    assert net.data_home() == str(tmp_path)
    monkeypatch.delenv(net.DATA_ENV)
    assert net.data_home().endswith(os.path.join(".cache", "clusterbench", "data"))


def test_reachable_on_a_local_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert net.reachable(f"http://127.0.0.1:{port}/file.gz", timeout=2)
    finally:
        server.close()
    assert not net.reachable(f"http://127.0.0.1:{port}/file.gz", timeout=2)
    assert net.host_of("https://example.org/x") == ("example.org", 443)
