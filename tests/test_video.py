"""Video datasets: frames sampled from video files (PyAV) and the ImageNet VID layout."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from clusterbench.core.errors import DataError, UserError
from clusterbench.datasets import DATASETS

av = pytest.importorskip("av")

SECONDS, RATE, SIDE = 3, 10, 48


def _write_video(path, shape, color, seed):
    """A moving shape (a 24 px square or a circle) on black, ``SECONDS`` s at ``RATE`` frames/s."""
    rng = np.random.default_rng(seed)
    y0 = int(rng.integers(4, 16))
    yy, xx = np.mgrid[:SIDE, :SIDE]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=RATE)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        for i in range(SECONDS * RATE):
            x = 2 + (i % 20)
            img = np.zeros((SIDE, SIDE, 3), np.uint8)
            if shape == "square":
                img[y0:y0 + 24, x:x + 24] = color
            else:
                img[(yy - y0 - 12) ** 2 + (xx - x - 12) ** 2 <= 144] = color
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for cls, shape, color in (("circle", "circle", (40, 40, 255)), ("square", "square", (255, 40, 40))):
        (root / cls).mkdir()
        for v in range(2):
            _write_video(root / cls / f"clip{v}.mp4", shape, color, seed=v)
    return root


def test_frames_are_sampled_at_fps_with_labels_and_metadata(videos):
    data = DATASETS.create(f"video:root={videos},fps=4,size=24").load()
    per_video = SECONDS * 4
    assert len(data) == 4 * per_video and data.images.shape == (4 * per_video, 24, 24, 3)
    assert data.class_names == ["circle", "square"]
    assert (np.bincount(data.labels) == 2 * per_video).all()
    assert list(data.items["video"][:per_video]) == ["circle/clip0.mp4"] * per_video
    times = data.items["time"][:per_video]
    due = np.arange(per_video) / 4  # the first frame at or after each multiple of 1/4 s
    assert np.all(times >= due - 1e-6) and np.all(times < due + 1 / RATE)
    assert data.items["frame"][:4].tolist() == [0, 3, 5, 8]


def test_every_nth_frame_and_max_frames(videos):
    data = DATASETS.create(f"video:root={videos},every=7,max_frames=3,size=16").load()
    assert len(data) == 12 and data.items["frame"][:3].tolist() == [0, 7, 14]
    assert data.images.shape[1:] == (16, 16, 3)


@pytest.mark.slow
def test_kmeans_separates_the_classes_and_scores_the_videos(run_cli, videos, results_dir, capsys):
    status, out, err, summary = run_cli("-d", f"video:root={videos},fps=4", "-e", "pixels:size=8", "-c", "kmeans")
    assert status == 0, err
    cell = summary["cells"][0]
    assert cell["status"] == "ok" and cell["params"]["n_images"] == 48
    assert cell["metrics"]["nmi"] >= 0.9
    assert 0 <= cell["metrics"]["video_nmi"] <= 1 and cell["metrics"]["video_purity"] >= 0.5
    # the group metrics under their names in the terminal table and in `clusterbench report`
    from clusterbench.cli import main
    from clusterbench.track.report import _fmt, _num

    group = [cell["metrics"][f"video_{n}"] for n in ("nmi", "purity", "consistency")]
    header = next(line for line in out.splitlines() if " NMI " in line)
    assert header.split()[-4:] == ["video_nmi", "video_purity", "video_consistency", "status"]
    row = next(line for line in out.splitlines() if line.lstrip().startswith("kmeans"))
    assert row.split()[-4:-1] == [_num(v) for v in group]
    assert main(["report", "--results", str(results_dir)]) == 0
    report = capsys.readouterr().out
    assert "| throughput_img_per_s | video_nmi | video_purity | video_consistency |" in report
    row = next(line for line in report.splitlines() if line.startswith("| video:"))
    assert row.endswith("| " + " | ".join(_fmt(v) for v in group) + " |")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results_dir / 'mlflow.db'}")
    path = client.download_artifacts(cell["mlflow_run_id"], "assignments.csv", str(results_dir.parent))
    lines = open(path).read().splitlines()
    assert lines[0] == "index,cluster,label,video,time,frame,source" and len(lines) == 49
    assert lines[1].split(",")[3:] == ["circle/clip0.mp4", "0.0", "0", "circle/clip0.mp4@0.00s"]
    assert lines[2].split(",")[-1] == "circle/clip0.mp4@0.30s"  # fps=4 at 10 frames/s: frame 3


@pytest.mark.slow
def test_deepcluster_trains_on_video_frames_end_to_end(run_cli, videos, results_dir):
    """The second reference experiment in small: DeepCluster's AlexNet trained on frames, then k-means."""
    # sobel=false: the two classes differ in colour as well as shape, and Sobel keeps only grey gradients
    embedder = "alexnet-deepcluster:epochs=2,k=4,pca_dim=8,batch_size=16,min_steps=3,size=32,precision=fp32,sobel=false"
    status, _, err, summary = run_cli("-d", f"video:root={videos},fps=4,size=32", "-e", embedder, "-c", "kmeans",
                                      "--k", "2")
    assert status == 0, err
    cell = summary["cells"][0]
    assert cell["status"] == "ok" and cell["params"]["n_images"] == 48
    assert cell["metrics"]["nmi"] >= 0.9 and 0 <= cell["metrics"]["video_nmi"] <= 1
    assert "deepcluster epoch 2/2" in err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{results_dir / 'mlflow.db'}")
    # the training's per-epoch curves went to MLflow beside the cell: NMI vs the frames' labels and loss vs ln k
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    curves = [r for r in runs if "nmi_labels_k2" in r.data.metrics]
    assert curves, [sorted(r.data.metrics) for r in runs]
    history = client.get_metric_history(curves[0].info.run_id, "loss_over_ln_k")
    assert [m.step for m in history] == [0, 1] and all(m.value > 0 for m in history)


@pytest.mark.slow
def test_a_folder_without_videos_is_one_line(run_cli, tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    status, _, err, summary = run_cli("-d", f"video:root={tmp_path / 'empty'}", "-e", "pixels", "-c", "kmeans:k=2")
    assert status == 1 and "Traceback" not in err
    assert "no videos found" in summary["cells"][0]["error"] and "\n" not in summary["cells"][0]["error"]


def test_corrupt_and_empty_videos_are_skipped_with_a_warning_naming_each(videos, tmp_path):
    import shutil

    root = tmp_path / "v"
    shutil.copytree(videos, root)
    (root / "circle" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (root / "square" / "empty.avi").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = DATASETS.create(f"video:root={root},fps=2").load()
    text = " ".join(str(w.message) for w in caught)
    assert "broken.mp4" in text and "empty.avi" in text
    assert len(data) == 4 * SECONDS * 2 and len(data.info["skipped"]) == 2
    with pytest.raises(DataError, match="broken.mp4|empty.avi"):
        DATASETS.create(f"video:root={root},fps=2,strict=true").load()


@pytest.mark.slow
def test_strict_corrupt_video_fails_the_cell_in_one_line(run_cli, tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "bad.mkv").write_bytes(b"not a video at all" * 10)
    status, _, err, summary = run_cli("-d", f"video:root={tmp_path / 'v'},strict=true", "-e", "pixels", "-c", "kmeans:k=2")
    assert status == 1 and "Traceback" not in err
    error = summary["cells"][0]["error"]
    assert "bad.mkv" in error and "\n" not in error


@pytest.mark.parametrize("params, text", [("fps=0", "fps=0"), ("fps=-1", "fps=-1"), ("every=0", "every=0"),
                                          ("fps=2,every=3", "not both")])
def test_bad_sampling_exits_2_before_anything_runs(run_cli, videos, params, text):
    status, _, err, summary = run_cli("-d", f"video:root={videos},{params}", "-e", "pixels", "-c", "kmeans")
    assert status == 2 and summary is None
    assert text in err and "Traceback" not in err and err.strip().startswith("clusterbench: error:")
    with pytest.raises(UserError):
        DATASETS.validate(f"video:root={videos},{params}")


# --- ImageNet VID -------------------------------------------------------------------------------
def _annotation(path, objects):
    boxes = "".join(
        f"<object><trackid>{i}</trackid><name>{wnid}</name><bndbox><xmax>{x1}</xmax><xmin>{x0}</xmin>"
        f"<ymax>{y1}</ymax><ymin>{y0}</ymin></bndbox><occluded>0</occluded><generated>0</generated></object>"
        for i, (wnid, x0, y0, x1, y1) in enumerate(objects))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><folder>x</folder><filename>{path.stem}</filename><size><width>32</width>"
                    f"<height>24</height></size>{boxes}</annotation>")


ZEBRA, CAR, DOG = "n02391049", "n02958343", "n02084071"


@pytest.fixture
def vid_root(tmp_path):
    """Two train snippets (zebra; car with a small dog) and frames without objects or annotation."""
    root = tmp_path / "ILSVRC2015"
    snippets = {"ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000": [[(ZEBRA, 0, 0, 20, 20)]] * 4,
                "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00001000":
                    [[(DOG, 0, 0, 5, 5), (CAR, 2, 2, 30, 22)]] * 3 + [[]] + [None]}
    for c, (snippet, frames) in enumerate(snippets.items()):
        for i, objects in enumerate(frames):
            jpeg = root / "Data/VID/train" / snippet / f"{i:06d}.JPEG"
            jpeg.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 24), (200 * c, 30 * i, 90)).save(jpeg, "JPEG")
            if objects is not None:
                _annotation(root / "Annotations/VID/train" / snippet / f"{i:06d}.xml", objects)
    return root


def test_vid_frames_labels_and_class_names(vid_root):
    data = DATASETS.create(f"imagenet-vid:root={vid_root},split=train").load()
    assert len(data) == 7 and data.images.shape == (7, 24, 32, 3)
    assert data.class_names == ["car", "zebra"]  # the table's order; the dog's box is smaller than the car's
    assert data.labels.tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert data.items["video"][0].endswith("ILSVRC2015_train_00000000") and len(set(data.items["video"])) == 2
    assert data.items["frame"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert data.info["dropped_no_object"] == 1 and data.info["dropped_no_annotation"] == 1


def test_vid_every_and_max_per_snippet(vid_root):
    data = DATASETS.create(f"imagenet-vid:root={vid_root},split=train,every=2,max_per_snippet=1").load()
    assert data.items["frame"].tolist() == [0, 0]


@pytest.mark.slow
def test_vid_through_the_cli_and_env_root(run_cli, vid_root, monkeypatch):
    monkeypatch.setenv("CLUSTERBENCH_DATA", str(vid_root.parent))
    status, _, err, summary = run_cli("-d", "imagenet-vid:split=train", "-e", "pixels", "-c", "kmeans")
    assert status == 0, err
    cell = summary["cells"][0]
    assert cell["params"]["n_images"] == 7 and cell["params"]["n_classes"] == 2 and "video_nmi" in cell["metrics"]


@pytest.mark.slow
def test_vid_root_without_annotations_is_one_line(run_cli, vid_root):
    import shutil

    shutil.rmtree(vid_root / "Annotations")
    status, _, err, summary = run_cli("-d", f"imagenet-vid:root={vid_root},split=train", "-e", "pixels", "-c", "kmeans:k=2")
    assert status == 1 and "Traceback" not in err
    error = summary["cells"][0]["error"]
    assert "Annotations/VID/train" in error and "\n" not in error


def test_vid_bad_split_exits_2(run_cli, vid_root):
    status, _, err, _ = run_cli("-d", f"imagenet-vid:root={vid_root},split=test", "-e", "pixels", "-c", "kmeans")
    assert status == 2 and "split" in err and "Traceback" not in err


def test_vid_suite_is_bundled_and_valid():
    from clusterbench.core.suite import load_suite, resolve_suite_path
    from clusterbench.core.validate import validate_suite

    suite = load_suite(resolve_suite_path("vid"))
    cells = validate_suite(suite).cells
    assert {str(c.embedder).split(":")[0] for c in cells} == {"alexnet-deepcluster", "efficientnet-lite0", "pixels"}
    assert all(c.dataset.name == "imagenet-vid" for c in cells)
