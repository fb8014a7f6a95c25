"""``clusterbench explain DATASET -e EMBEDDER`` and the panel of ``run --explain N``.

Every argument is checked before data is read or a network built: an embedder without a
classifier head, ``--n`` below 1 or above the dataset's size, an unknown ``--method`` are one
line (exit status 2).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from clusterbench.core.errors import UserError

from .cam import METHODS, Explained, check_explainable, explain_images, sample_indices

_METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")
    if len(slug) > 80:
        import hashlib

        slug = f"{slug[:60]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return slug or "x"


def default_out(results_dir: Path, dataset: str, embedder: str) -> Path:
    return Path(results_dir) / "explain" / f"{_slug(dataset)}-{_slug(embedder)}"


def _check_args(n: int, topk: int, method: str) -> None:
    if n < 1:
        raise UserError(f"explain: --n {n}: give at least 1 image")
    if topk < 1:
        raise UserError(f"explain: --topk {topk}: give at least 1 class")
    if method not in METHODS:
        raise UserError(f"explain: --method {method!r}: expected one of {', '.join(METHODS)}")


def _check_dir_writable(path: Path, what: str) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UserError(f"{what} {path}: {probe} is not a writable directory")


def record(item: Explained, file: str | None) -> dict:
    """One image of the ``--json`` summary, named by its source (the user's file) and its index."""
    return {
        "source": item.source,
        "index": item.index,
        "file": file,
        "label": item.label,
        "top1": item.top1,
        "prob": round(item.prob, 6),
        "wnid": item.wnid,
        "topk": [{"class": name, "prob": round(p, 6)} for name, p in item.top],
        "cam_peak": [round(item.peak[0], 4), round(item.peak[1], 4)],
    }


def explain(dataset: str, embedder: str, *, n: int = 8, topk: int = 5, method: str = "gradcam",
            out: str | Path | None = None, json_path: str | Path | None = None, seed: int = 0,
            results_dir: str | Path = "results", log=None) -> dict:
    """Explain ``n`` images of ``dataset`` with ``embedder``'s classifier: a PNG per image and
    index.html under ``out``; returns (and with ``json_path`` writes) the summary."""
    from clusterbench.core.catalog import registries
    from clusterbench.core.registry import Spec

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    _check_args(n, topk, method)
    datasets, embedders, _ = registries()
    dspec, espec = datasets.validate(Spec.parse(dataset)), embedders.validate(Spec.parse(embedder))
    check_explainable(embedders, espec)
    out = Path(out).expanduser() if out else default_out(Path(results_dir), str(dspec), str(espec))
    _check_dir_writable(out, "--out")
    if json_path is not None:
        json_path = Path(json_path).expanduser()
        parent = json_path.resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise UserError(f"--json {json_path}: directory {parent} does not exist or is not writable")

    data = datasets.create(dspec).load()
    if len(data) < n:
        raise UserError(f"explain: --n {n}: dataset {dspec} has only {len(data)} image(s)")
    model = embedders.create(espec)
    indices = sample_indices(data, n, seed)
    log(f"explain: {len(indices)} image(s) of {dspec} with {espec} ({_METHOD_TITLES[method]} + guided backprop)")
    items = explain_images(model, data, indices, topk=topk, method=method)
    summary = write_outputs(items, out, title=f"{espec} on {dspec}", method=method, per_image=True)
    if json_path is not None:
        from clusterbench.core.atomic import write_json

        write_json(json_path, summary)
    log(f"explain: wrote {len(items)} panel(s) and {out / 'index.html'}")
    return summary


def write_outputs(items: list[Explained], out: Path, *, title: str, method: str = "gradcam",
                  per_image: bool = True, grid: bool = False) -> dict:
    """PNGs (one per image, and/or one grid) and index.html under ``out``; the JSON summary."""
    from .panels import grid_figure, index_html, panel_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shown = _METHOD_TITLES.get(method, method)
    images = []
    for item in items:
        file = None
        if per_image:
            file = str(panel_png(item, out / f"explain-{item.index:06d}.png", method=shown).resolve())
        images.append(record(item, file))
    if grid:
        fig = grid_figure(items, method=shown)
        fig.savefig(out / "grid.png", format="png")
    note = (f"{shown} of the top-1 class on the network's input (the embedder's own resize, crop and "
            "normalisation), its peak marked +; guided backprop of the same class. Probabilities: softmax.")
    (out / "index.html").write_text(index_html(items, title, note=note, method=shown), encoding="utf-8")
    return {"method": method, "images": images}


def explain_artifacts(embedder, data, n: int, out: Path, *, seed: int = 0, title: str = "",
                      method: str = "gradcam", topk: int = 5) -> list[Path]:
    """The panel of ``run --explain N`` for one cell: grid.png, index.html and explain.json under
    ``out`` (at most ``n`` images, stratified); returns the files for the cell's MLflow run."""
    indices = sample_indices(data, min(int(n), len(data)), seed)
    items = explain_images(embedder, data, indices, topk=topk, method=method)
    summary = write_outputs(items, out, title=title, method=method, per_image=False, grid=True)
    (Path(out) / "explain.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return [Path(out) / name for name in ("grid.png", "index.html", "explain.json")]


def run_command(args) -> int:
    """The CLI's ``explain``: arguments as parsed by :mod:`clusterbench.cli`."""
    results = Path(args.results or os.environ.get("CLUSTERBENCH_RESULTS", "results")).expanduser().resolve()
    explain(args.dataset, args.embedder, n=args.n, topk=args.topk, method=args.method, out=args.out,
            json_path=args.json, seed=args.seed, results_dir=results)
    return 0
