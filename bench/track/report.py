"""Tables for people: the end-of-run table and the Markdown leaderboard from MLflow."""

from __future__ import annotations

import math

from clusterbench.core.contracts import GROUP_COLUMN
from clusterbench.track.k_table import k_shown
from clusterbench.track.tracking import check_tracking_server, finished_cell_runs

TABLE_METRICS = ("nmi", "ami", "ari", "acc", "silhouette", "n_clusters", "noise_fraction", "throughput_img_per_s")
# clusters against the groups items were cut from (frames: their videos), where a dataset has them
GROUP_METRICS = tuple(f"{GROUP_COLUMN}_{name}" for name in ("nmi", "purity", "consistency"))
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


def _network_ran(metrics: dict) -> bool:
    """Whether the cell's embedder ran a network: its stats recorded a forward pass (batch size or
    FLOPs), which a pixel copy never does."""
    return any(metrics.get(k) is not None for k in ("embed_batch_size", "flops_per_image"))


def _num(value, digits: int = 3) -> str:
    if isinstance(value, str):  # a param read back from MLflow (a cell finished earlier)
        try:
            value = float(value)
        except ValueError:
            return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{int(value):,}" if abs(value) >= 10000 else str(int(value))


def print_table(results, width: int | None = None) -> None:
    """The end-of-run table (rich): one table per dataset x embedder, aligned at 100 columns,
    metrics rounded, throughput only where an embedder ran a network; failures' reasons below."""
    import shutil

    from rich import box
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    base = width or max(100, shutil.get_terminal_size((100, 24)).columns)
    console = Console(width=base, highlight=False)
    groups: dict[tuple[str, str], list] = {}
    for r in results:
        groups.setdefault((str(r.cell.dataset), str(r.cell.embedder)), []).append(r)
    for (dataset, embedder), rows in groups.items():
        throughput = any(_network_ran(r.metrics) for r in rows)
        grouped = [g for g in GROUP_METRICS if any(r.metrics.get(g) is not None for r in rows)]
        table = Table(title=f"{dataset} x {embedder}", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                      padding=(0, 1), collapse_padding=True, pad_edge=False)
        table.add_column("clusterer", overflow="fold", ratio=1)
        for name in ("seed", "K", "K by", "NMI", "ARI", "ACC", "sil.", "#cl", "noise", *grouped, *(("img/s",) if throughput else ())):
            table.add_column(name, justify="right" if name != "K by" else "left", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for r in rows:
            m = r.metrics
            status = ("earlier" if r.cached else "ok") if r.status == "ok" else r.status.upper()
            row = [str(r.cell.clusterer), str(r.cell.seed), _num(r.params.get("k")), str(r.params.get("k_source") or "-"),
                   *(_num(m.get(x)) for x in ("nmi", "ari", "acc", "silhouette")), _num(m.get("n_clusters")),
                   "-" if m.get("noise_fraction") is None else f"{m['noise_fraction']:.0%}", *(_num(m.get(g)) for g in grouped)]
            if throughput:
                row.append(_num(m.get("throughput_img_per_s"), 1) if _network_ran(m) else "-")
            table.add_row(*row, status, style=None if r.status == "ok" else "red")
        console.width = base
        if grouped:  # group metrics under their full names: wider than the console rather than cut to "vid…"
            console.width = max(base, min(Measurement.get(console, console.options.update(width=240), table).maximum, 240))
        console.print(table)
    for r in results:
        if r.status != "ok":
            console.print(f"{r.status.upper()} {r.cell.key}: {r.error}", style="red", overflow="fold")


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
        shown = [*TABLE_METRICS, *(g for g in GROUP_METRICS if any(g in r.data.metrics for r in ordered))]
        header = ["dataset", "embedder", "clusterer", "seed", "K", "K chosen by", "classes", *shown]
        rows = [[r.data.params.get("dataset"), r.data.params.get("embedder"), r.data.params.get("clusterer"),
                 r.data.params.get("seed"), k_shown(r.data.params.get("k"), r.data.params, r.data.metrics),
                 r.data.params.get("k_source"), r.data.params.get("n_classes"),
                 *(r.data.metrics.get(m) for m in shown)] for r in ordered]
        sections.append(f"## {exp.name} ({len(rows)} cells, sorted by {sort})\n\n" + markdown_table(header, rows))
        from clusterbench.track.k_table import k_tables

        tables = k_tables(ordered)  # none when no cell of the experiment estimated K
        titles = ("K chosen per cell", "K estimators: mean over cells")[: len(tables)]
        for title, (k_header, k_rows) in zip(titles, tables, strict=True):
            sections.append(f"### {exp.name}: {title}\n\n" + markdown_table(k_header, k_rows))
        from clusterbench.track.pictures import failed_rows

        if failed := failed_rows(ordered):  # which picture of which cell, and why
            sections.append(f"### {exp.name}: pictures that failed\n\n" + markdown_table(["cell", "picture", "why"], failed))
    return "\n\n".join(sections)


def _experiments(client, experiment: str | None):
    experiments = [e for e in client.search_experiments() if e.name.startswith("clusterbench/")]
    if experiment:
        experiments = [e for e in experiments if e.name in (experiment, f"clusterbench/{experiment}")]
    return experiments


def aggregate_markdown(exp, sort: str) -> str:
    """One experiment's mean ± std over seeds (n shown), the best per dataset marked, and the
    methods' average ranks across datasets."""
    from .aggregate import average_ranks, best_per_dataset, setting, short
    from .html_report import SHOWN, mean_std

    best = set(best_per_dataset(exp.aggregates, sort).values())
    header = ["dataset", "embedder", "clusterer", "K, reducer", "n", *SHOWN]
    rows = [[a.records[0].dataset, a.records[0].embedder, a.records[0].clusterer + (" ★" if a.config in best else ""),
             setting(a.config), len(a.records), *(mean_std(a, m) for m in SHOWN)] for a in exp.aggregates]
    text = f"## {exp.name}: mean ± std over seeds (★ best {sort} per dataset)\n\n" + markdown_table(header, rows)
    ranks, datasets = average_ranks(exp.aggregates, sort)
    if ranks:
        text += (f"\n\n### {exp.name}: average rank by {sort} over {len(datasets)} dataset(s)\n\n"
                 + markdown_table(["method", "average rank"], [[short(m), f"{r:.2f}"] for m, r in sorted(ranks.items(), key=lambda kv: kv[1])]))
    return text


def report(tracking_uri: str, experiment: str | None = None, sort: str = "nmi", html_path=None, ui_url=None) -> str:
    """The Markdown: per-cell leaderboards, then mean ± std and ranks per experiment; with
    ``html_path`` also the self-contained HTML page (pictures embedded)."""
    from clusterbench.core.errors import UserError

    from . import html_report

    check_tracking_server(tracking_uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = _experiments(client, experiment)
    if not experiments:
        message = f"no clusterbench results in {tracking_uri}" + (f" for experiment {experiment!r}" if experiment else "")
        if html_path:
            raise UserError(message)
        return message
    suite = experiments[0].name.split("/", 1)[1] if experiment else None
    data = html_report.from_store(client, tracking_uri, experiments, sort=sort, ui_url=ui_url)
    text = leaderboard(tracking_uri, suite=suite, sort=sort)
    text += "".join("\n\n" + aggregate_markdown(exp, sort) for exp in data.experiments)
    if html_path:
        html_report.write(data, html_path)
    elif data.tmp:
        import shutil

        shutil.rmtree(data.tmp, ignore_errors=True)
    return text
