"""A million precomputed features on one machine: N x 64 float32 from 10 Gaussian blobs as a
``features:`` dataset, clustered by k-means and agglomerative (K=10) through the real command
line in a child process, whose wall time and peak resident memory are measured.

``python -m clusterbench.benchmarking.million [--n 1000000] [--out DIR]`` prints one Markdown
row per cell; the README's figures come from it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_blobs(folder: Path, n: int, dim: int = 64, k: int = 10, seed: int = 0) -> tuple[Path, Path]:
    """Blobs written chunk by chunk into a .npy (never the whole float64 matrix in RAM)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(k, dim)).astype(np.float32)
    labels = rng.integers(0, k, size=n)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 100_000):
        block = labels[s:s + 100_000]
        X[s:s + len(block)] = centers[block] + rng.standard_normal((len(block), dim), dtype=np.float32)
    X.flush()
    del X
    np.save(folder / "y.npy", labels)
    return folder / "X.npy", folder / "y.npy"


def run(n: int, out: Path, clusterers: tuple[str, ...] = ("kmeans", "agglomerative")) -> list[dict]:
    X, y = write_blobs(out, n)
    summary = out / "summary.json"
    cmd = [sys.executable, "-m", "clusterbench.cli", "run", "-d", f"features:path={X},labels={y}", "-e", "identity",
           *[a for c in clusterers for a in ("-c", c)], "--k", "10", "--results", str(out / "results"),
           "--json", str(summary), "--no-progress"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"million: the run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kB
    rows = []
    for cell in json.loads(summary.read_text())["cells"]:
        m = cell["metrics"]
        rows.append({"clusterer": cell["clusterer"], "nmi": m["nmi"], "cluster_seconds": m["cluster_seconds"],
                     "peak_host_memory_mb": m.get("peak_host_memory_mb"), "plan": _plan(done.stderr, cell["key"])})
    rows.append({"clusterer": "whole command", "wall_seconds": wall, "peak_rss_mb": peak_mb})
    return rows


def _plan(stderr: str, key: str) -> str:
    return next((line.split(": ", 1)[1] for line in stderr.splitlines() if line.startswith(f"{key}: ")), "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterbench.benchmarking.million")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None, help="where the features and the results go (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clusterbench-million-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows = run(args.n, out)
    print("| cell | NMI | clustering s | note |\n|---|---|---|---|")
    for r in rows[:-1]:
        print(f"| {r['clusterer']} | {r['nmi']:.3f} | {r['cluster_seconds']:.1f} | {r['plan'] or 'exact'} |")
    w = rows[-1]
    print(f"\nwhole command: {w['wall_seconds']:.0f} s, peak resident memory {w['peak_rss_mb'] / 1024:.2f} GB ({args.n:,} x 64)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
