"""Measure the label-free criteria: selection regret per criterion x dataset, the naive pickers,
and the default criterion chosen leave-one-dataset-out.

    .venv/bin/python -m clusterbench.select.study [--datasets digits,fashion-mnist,video] [--json PATH]

For each held-out dataset the criterion variant (a criterion plus the shared space it scores in)
with the lowest mean NMI regret on the *other* datasets is picked, and its regret on the held-out
one is what counts. Labels are read only to score the grid afterwards (``grid.build``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from .criteria import CRITERIA, NAIVE
from .grid import DEFAULT_CACHE, Grid, Scored, build
from .recommend import recommend, selection_regret

EMBEDDERS = ("pixels", "efficientnet-lite0")
REDUCERS = (None, "pca=50", "umap=10")
SKIP = (("efficientnet-lite0", "pca=50"),)
CLUSTERERS = ("kmeans", "agglomerative:linkage=ward", "agglomerative:linkage=average")


GRIDS = ("digits", "fashion-mnist", "video")


def grids(cache_dir: str) -> dict[str, Grid]:
    from . import synthetic_video

    video_root = os.path.join(cache_dir, "videos")
    return {
        "digits": Grid("digits", "digits", EMBEDDERS, REDUCERS,
                       CLUSTERERS + ("hdbscan:min_cluster_size=15", "hdbscan:min_cluster_size=50"),
                       (5, 8, 10, 12, 15, 20), SKIP),
        "fashion-mnist": Grid("fashion-mnist", "fashion-mnist:split=test,limit=2000", EMBEDDERS, REDUCERS,
                              CLUSTERERS + ("hdbscan:min_cluster_size=15", "hdbscan:min_cluster_size=50"),
                              (5, 8, 10, 12, 15, 20), SKIP),
        # 6 classes x 6 clips x 10 frames = 360 frames; written on first use
        "video": Grid("video", f"video:root={synthetic_video.make(video_root)},every=3,size=32", EMBEDDERS,
                      REDUCERS, CLUSTERERS + ("hdbscan:min_cluster_size=5", "hdbscan:min_cluster_size=15"),
                      (3, 4, 6, 8, 10, 12), SKIP),
    }


def variants(scored: Scored) -> dict[str, tuple[str, object]]:
    """Variant name -> (criterion, shared space): each criterion as registered, the shared-space
    ones in the mean over every embedder's UMAP and in each embedder's UMAP alone."""
    out = {name: (name, scored.spaces) for name in CRITERIA}
    for embedder, space in scored.spaces.items():
        out[f"shared-silhouette[{embedder}]"] = ("shared-silhouette", space)
    return out


def evaluate(scored: Scored) -> dict:
    """Per variant: the recommended key and its regret; plus the naive random picker."""
    rows = {}
    for variant, (criterion, space) in variants(scored).items():
        start = time.perf_counter()
        rec = recommend(scored.candidates, criterion, shared_space=space)
        rows[variant] = {**selection_regret(rec, scored.nmi, scored.ami), "key": rec.key,
                         "seconds": time.perf_counter() - start}
    best_nmi, best_ami = max(scored.nmi.values()), max(scored.ami.values())
    rows["random (expected)"] = {"selection_regret_nmi": best_nmi - float(np.mean(list(scored.nmi.values()))),
                                 "selection_regret_ami": best_ami - float(np.mean(list(scored.ami.values()))),
                                 "key": "-"}
    return rows


def leave_one_out(results: dict[str, dict], pool: list[str]) -> dict[str, dict]:
    """Held-out dataset -> the variant picked on the others (lowest mean NMI regret, ties by name)
    and its regret on the held-out one."""
    out = {}
    for held in results:
        others = [d for d in results if d != held] or [held]
        pick = min(sorted(pool), key=lambda v: np.mean([results[d][v]["selection_regret_nmi"] for d in others]))
        out[held] = {"variant": pick, **{m: results[held][pick][m] for m in ("selection_regret_nmi", "selection_regret_ami")}}
    return out


def table(results: dict[str, dict], loos: dict[str, dict[str, dict]]) -> str:
    datasets = list(results)
    head = "| criterion | " + " | ".join(f"{d} NMI / AMI" for d in datasets) + " | mean NMI / AMI |"
    lines = [head, "|" + "---|" * (len(datasets) + 2)]
    for variant in results[datasets[0]]:
        cells = [results[d][variant] for d in datasets]
        mean = [np.mean([c[f"selection_regret_{m}"] for c in cells]) for m in ("nmi", "ami")]
        lines.append(f"| {variant} | " + " | ".join(
            f"{c['selection_regret_nmi']:.3f} / {c['selection_regret_ami']:.3f}" for c in cells)
            + f" | {mean[0]:.3f} / {mean[1]:.3f} |")
    for title, loo in loos.items():
        mean = [np.mean([loo[d][f"selection_regret_{m}"] for d in datasets]) for m in ("nmi", "ami")]
        lines.append(f"| **leave-one-dataset-out, {title}** | " + " | ".join(
            f"{loo[d]['selection_regret_nmi']:.3f} / {loo[d]['selection_regret_ami']:.3f} ({loo[d]['variant']})"
            for d in datasets) + f" | {mean[0]:.3f} / {mean[1]:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterbench.select.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,fashion-mnist,video", help="comma-separated, from the bundled grids")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="cache folder for embeddings and labels")
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args(argv)
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in names if d not in GRIDS]
    if unknown or not names:
        print(f"error: unknown dataset(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(GRIDS)}", file=sys.stderr)
        return 2
    known = grids(args.cache)
    results, sizes = {}, {}
    for name in names:
        print(f"{name}: building the grid (cached in {args.cache})", file=sys.stderr)
        scored = build(known[name], args.cache, log=lambda line: print(line, file=sys.stderr))
        results[name], sizes[name] = evaluate(scored), len(scored.candidates)
        best = max(scored.nmi, key=scored.nmi.get)
        print(f"{name}: {len(scored.candidates)} configurations, best NMI {scored.nmi[best]:.3f} ({best}), "
              f"mean {np.mean(list(scored.nmi.values())):.3f}", file=sys.stderr)
    # The registered criteria (what --select can name), then also each embedder's UMAP as the one judge.
    registered = [v for v in CRITERIA if v not in NAIVE]
    pool = [v for v in results[names[0]] if v not in NAIVE and v != "random (expected)"]
    loos = {"registered criteria": leave_one_out(results, registered),
            "+ one reference embedder's space": leave_one_out(results, pool)}
    overall = min(sorted(registered), key=lambda v: np.mean([results[d][v]["selection_regret_nmi"] for d in names]))
    print(table(results, loos))
    print(f"\nconfigurations per dataset: {sizes}; picked on all datasets: {overall}")
    for d in names:
        print(f"{d}: {overall} recommends {results[d][overall]['key']}; best by NMI {results[d][overall]['best_nmi_key']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "leave_one_out": loos, "picked_on_all": overall, "sizes": sizes}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
