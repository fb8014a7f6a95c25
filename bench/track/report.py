"""Tables for people: the end-of-run table and the Markdown leaderboard from MLflow."""

from __future__ import annotations

import math

from clusterbench.track.tracking import check_tracking_server, finished_cell_runs

TABLE_METRICS = ("nmi", "ami", "ari", "acc", "silhouette", "n_clusters", "noise_fraction", "throughput_img_per_s")
LOWER_IS_BETTER = {"davies_bouldin", "noise_fraction", "cluster_seconds", "embed_seconds"}


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(results) -> None:
    header = ["dataset", "embedder", "clusterer", "seed", "k", "k_source", *TABLE_METRICS, "status"]
    rows = []
    for r in results:
        if r.status == "ok":
            status = "ok (earlier)" if r.cached else "ok"
        else:
            status = f"{r.status.upper()}: {r.error}"
        rows.append([str(r.cell.dataset), str(r.cell.embedder), str(r.cell.clusterer), r.cell.seed,
                     r.params.get("k"), r.params.get("k_source"), *(r.metrics.get(m) for m in TABLE_METRICS), status])
    print(markdown_table(header, rows))


def leaderboard(tracking_uri: str, suite: str | None = None, sort: str = "nmi") -> str:
    """Latest finished run of every cell, best first by ``sort``, one table per experiment."""
    check_tracking_server(tracking_uri)  # an unreachable server: one line in seconds

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e for e in client.search_experiments() if e.name.startswith("clusterbench/")]
    if suite:
        experiments = [e for e in experiments if e.name == f"clusterbench/{suite}"]
    if not experiments:
        return f"no clusterbench results in {tracking_uri}" + (f" for suite {suite!r}" if suite else "")
    sections = []
    for exp in experiments:
        latest = finished_cell_runs(client, exp.experiment_id)
        reverse = sort not in LOWER_IS_BETTER
        missing = -math.inf if reverse else math.inf
        ordered = sorted(latest.values(), key=lambda r: r.data.metrics.get(sort, missing), reverse=reverse)
        header = ["dataset", "embedder", "clusterer", "seed", "K", "K chosen by", "classes", *TABLE_METRICS]
        rows = [[r.data.params.get("dataset"), r.data.params.get("embedder"), r.data.params.get("clusterer"),
                 r.data.params.get("seed"), r.data.params.get("k"), r.data.params.get("k_source"),
                 r.data.params.get("n_classes"), *(r.data.metrics.get(m) for m in TABLE_METRICS)] for r in ordered]
        sections.append(f"## {exp.name} ({len(rows)} cells, sorted by {sort})\n\n" + markdown_table(header, rows))
    return "\n\n".join(sections)
