"""The HTML report: one self-contained file (tables, rank plot and every picture inline as data
URIs; no scripts, fonts or images from elsewhere) that opens offline and reads on a phone. The
markup lives in templates (``report*.html.j2`` beside the shared stylesheet); here the numbers.

The page is a list of sections: :data:`SECTIONS` holds builders ``f(report) -> str`` (HTML);
:func:`add_section` appends another (e.g. a K table) without touching the ones here."""

from __future__ import annotations

import io
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clusterbench.pages import png_data_uri
from clusterbench.pages import render as render_template

from .aggregate import (
    Aggregate,
    CellRecord,
    aggregate,
    average_ranks,
    best_per_dataset,
    critical_difference,
    setting,
    short,
)
from .pictures import ARTIFACT_DIR, FILES, failed_file_note
from .tracking import quiet_download

SHOWN = ("nmi", "ari", "acc", "silhouette", "n_clusters", "noise_fraction")
PICTURES = ("gallery", "contingency", "map", "sizes")
# The MLflow 3 UI keeps one workflow switch (GenAI / model training) for every experiment and
# reads it from the link: a run linked without it may open on the GenAI pages.
UI_QUERY = "?workflowType=machine_learning"


@dataclass
class Experiment:
    name: str
    id: str
    records: list[CellRecord]
    aggregates: list[Aggregate] = field(default_factory=list)


@dataclass
class Report:
    """What every section builder gets."""

    title: str
    experiments: list[Experiment]
    sort: str = "nmi"
    run_url: Callable[[str, str], str | None] = lambda exp_id, run_id: None
    picture: Callable[[str, str], bytes | None] = lambda run_id, name: None  # PNG bytes of a run's picture
    tmp: str | None = None  # where pictures were fetched to; removed by write()


Section = Callable[[Report], str]


def run_link(base: str) -> Callable[[str, str], str]:
    """A run's page in the MLflow UI at ``base``, opened on the model-training view."""
    return lambda exp_id, run_id: f"{base.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}{UI_QUERY}"


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.{digits}f}"


def mean_std(agg: Aggregate, metric: str) -> str:
    if metric not in agg.mean:
        return "-"
    if agg.n[metric] == 1:
        return fmt(agg.mean[metric])
    return f"{fmt(agg.mean[metric])} ± {fmt(agg.std[metric])}"


def _runs(report: Report, exp: Experiment, agg: Aggregate) -> list[tuple[str, str | None]]:
    """(text, link) per seed of a configuration."""
    records = sorted(agg.records, key=lambda r: (r.seed is None, r.seed))
    return [(f"seed {r.seed}", report.run_url(exp.id, r.run_id) if r.run_id else None) for r in records]


def summary_section(report: Report) -> str:
    experiments = []
    for exp in report.experiments:
        best = set(best_per_dataset(exp.aggregates, report.sort).values())
        rows = []
        for a in exp.aggregates:
            r0 = a.records[0]
            star = " ★" if a.config in best else ""
            cells = [r0.dataset, r0.embedder, r0.clusterer + star, setting(a.config), str(len(a.records))]
            rows.append({"best": bool(star), "cells": cells + [mean_std(a, m) for m in SHOWN],
                         "runs": _runs(report, exp, a)})
        experiments.append({"name": exp.name, "n_runs": len(exp.records), "rows": rows})
    head = ["dataset", "embedder", "clusterer", "K, reducer", "n", *SHOWN, "runs"]
    return render_template("report_summary.html.j2", experiments=experiments, head=head, sort=report.sort)


def ranks_section(report: Report) -> str:
    experiments = []
    for exp in report.experiments:
        ranks, datasets = average_ranks(exp.aggregates, report.sort)
        cd = critical_difference(len(ranks), len(datasets)) if ranks else None
        plot = png_data_uri(cd_plot(ranks, cd)) if len(datasets) >= 3 and len(ranks) >= 2 else None
        experiments.append({"name": exp.name, "datasets": datasets, "cd": cd, "plot": plot,
                            "ranks": [(short(m), r) for m, r in sorted(ranks.items(), key=lambda kv: kv[1])]})
    return render_template("report_ranks.html.j2", experiments=experiments, sort=report.sort)


def cd_plot(ranks: dict[str, float], cd: float | None) -> bytes:
    """Average ranks on a line (best left), a CD ruler, bars over groups closer than CD."""
    from matplotlib.figure import Figure

    items = sorted(((short(m), r) for m, r in ranks.items()), key=lambda kv: kv[1])
    k = len(items)
    fig = Figure(figsize=(7, 1.2 + 0.28 * k))
    ax = fig.subplots()
    ax.set_xlim(0.5, max(k, 2) + 0.5)
    ax.set_ylim(-(k + 1), 2)
    ax.axhline(0, color="black", lw=1)
    for x in range(1, k + 1):
        ax.plot([x, x], [0, 0.15], color="black", lw=1)
        ax.text(x, 0.3, str(x), ha="center", fontsize=8)
    for i, (name, r) in enumerate(items):
        y = -(i + 1)
        ax.plot([r, r, 0.55 if i < (k + 1) // 2 else k + 0.45], [0, y, y], color="#1f77b4", lw=1)
        left = i < (k + 1) // 2
        ax.text(0.6 if left else k + 0.4, y + 0.12, f"{name} ({r:.2f})", ha="left" if left else "right", fontsize=7)
    if cd is not None:
        ax.plot([1, 1 + cd], [1.2, 1.2], color="#d62728", lw=2)
        ax.text(1 + cd / 2, 1.4, f"CD {cd:.2f}", ha="center", fontsize=8, color="#d62728")
        level = 0
        for i in range(k):
            j = max(j for j in range(i, k) if items[j][1] - items[i][1] < cd)
            if j > i and (i == 0 or items[j][1] - items[i - 1][1] >= cd):
                ax.plot([items[i][1], items[j][1]], [-0.35 - 0.2 * level, -0.35 - 0.2 * level], color="black", lw=3)
                level += 1
    ax.axis("off")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.95, bottom=0.02)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def pictures_section(report: Report) -> str:
    items = []
    for exp in report.experiments:
        best = set(best_per_dataset(exp.aggregates, report.sort).values())
        for a in exp.aggregates:
            run = min(a.records, key=lambda r: (r.seed is None, r.seed))
            pictures = []
            for kind in PICTURES:
                png = report.picture(run.run_id, f"{ARTIFACT_DIR}/{FILES[kind]}") if run.run_id else None
                if png:
                    pictures.append((kind, png_data_uri(png)))
            # which picture failed and why, when one did (pictures/failed.json of the run)
            failed = failed_file_note(report.picture(run.run_id, f"{ARTIFACT_DIR}/failed.json")) if run.run_id else None
            items.append({"best": a.config in best, "pictures": pictures, "failed": failed,
                          "summary": f"{short(a.config)} — {report.sort} {mean_std(a, report.sort)}"})
    return render_template("report_pictures.html.j2", items=items)


SECTIONS: list[Section] = [summary_section, ranks_section, pictures_section]


def add_section(builder: Section, before: Section | None = None) -> None:
    """Another section for the page (e.g. a K table); at the end, or before ``before``."""
    if builder in SECTIONS:
        return
    SECTIONS.insert(SECTIONS.index(before) if before in SECTIONS else len(SECTIONS), builder)


def render(report: Report, sections: list[Section] | None = None) -> str:
    """The page: report.html.j2 around each section's HTML, in order."""
    html = [builder(report) for builder in (SECTIONS if sections is None else sections)]
    return render_template("report.html.j2", title=report.title, generated=time.strftime("%Y-%m-%d %H:%M"),
                           n_runs=sum(len(e.records) for e in report.experiments), sections=html)


# -- from an MLflow store ---------------------------------------------------------------------------
def records_of(runs) -> list[CellRecord]:
    from .tracking import CELL_KEY_TAG

    out = []
    for run in runs:
        p = run.data.params
        seed = p.get("seed")
        out.append(CellRecord(run.data.tags.get(CELL_KEY_TAG, run.info.run_id), p.get("dataset", "?"),
                              p.get("embedder", "?"), p.get("clusterer", "?"),
                              int(seed) if seed not in (None, "") else None, dict(run.data.metrics), run.info.run_id, dict(p)))
    return sorted(out, key=lambda r: (r.dataset, r.embedder, r.clusterer, r.key))


def from_store(client, uri: str, experiments, sort: str = "nmi", ui_url: str | None = None) -> Report:
    """The report of the given MLflow experiments (the newest finished run of every cell)."""
    from .tracking import finished_cell_runs

    exps = []
    for e in experiments:
        records = records_of(finished_cell_runs(client, e.experiment_id).values())
        exps.append(Experiment(e.name, e.experiment_id, records, aggregate(records)))
    base = ui_url or (uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000")
    tmp = tempfile.mkdtemp(prefix="clusterbench-report-")
    cache: dict[tuple[str, str], bytes | None] = {}

    def picture(run_id: str, name: str) -> bytes | None:
        if (run_id, name) not in cache:
            try:
                cache[(run_id, name)] = Path(quiet_download(client, run_id, name, tmp)).read_bytes()
            except Exception:  # noqa: BLE001 - a run without that picture
                cache[(run_id, name)] = None
        return cache[(run_id, name)]

    return Report("clusterbench report", exps, sort, run_link(base), picture, tmp)


def write(report: Report, path: str | Path) -> Path:
    import shutil

    from clusterbench.core.atomic import atomic_file

    try:
        text = render(report)
    finally:
        if report.tmp:
            shutil.rmtree(report.tmp, ignore_errors=True)
    with atomic_file(path, "w") as f:
        f.write(text)
    return Path(path)
