"""The HTML report: one self-contained file (tables, rank plot and every picture inline as data
URIs; no scripts, fonts or images from elsewhere) that opens offline and reads on a phone.

The page is a list of sections: :data:`SECTIONS` holds builders ``f(report) -> str`` (HTML);
:func:`add_section` appends another (e.g. a K table) without touching the ones here."""

from __future__ import annotations

import html
import io
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clusterbench.explain.panels import page, png_data_uri

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
from .pictures import ARTIFACT_DIR, FILES

SHOWN = ("nmi", "ari", "acc", "silhouette", "n_clusters", "noise_fraction")
PICTURES = ("gallery", "contingency", "map", "sizes")


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


def _esc(v) -> str:
    return html.escape(str(v))


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


def _runs_links(report: Report, exp: Experiment, agg: Aggregate) -> str:
    links = []
    for r in sorted(agg.records, key=lambda r: (r.seed is None, r.seed)):
        url = report.run_url(exp.id, r.run_id) if r.run_id else None
        text = f"seed {r.seed}"
        links.append(f'<a href="{_esc(url)}">{_esc(text)}</a>' if url else _esc(text))
    return " ".join(links)


def summary_section(report: Report) -> str:
    out = ["<h2>Mean ± std over seeds</h2>",
           f"<p class=note>Sample std (ddof=1) over each configuration's seeds; n = seeds. "
           f"★ marks the best mean {_esc(report.sort)} per dataset.</p>"]
    for exp in report.experiments:
        best = set(best_per_dataset(exp.aggregates, report.sort).values())
        head = ["dataset", "embedder", "clusterer", "K, reducer", "n"] + list(SHOWN) + ["runs"]
        rows = []
        for a in exp.aggregates:
            r0 = a.records[0]
            star = " ★" if a.config in best else ""
            cells = [_esc(r0.dataset), _esc(r0.embedder), _esc(r0.clusterer) + star, _esc(setting(a.config)),
                     str(len(a.records))]
            cells += [mean_std(a, m) for m in SHOWN] + [_runs_links(report, exp, a)]
            rows.append(f"<tr{' class=best' if star else ''}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append(f"<h3>{_esc(exp.name)} ({len(exp.records)} runs, {len(exp.aggregates)} configurations)</h3>"
                   + _table(head, rows))
    return "".join(out)


def _table(head: list[str], rows: list[str]) -> str:
    return ("<div class=scroll><table><thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def ranks_section(report: Report) -> str:
    out = ["<h2>Average rank across datasets</h2>"]
    for exp in report.experiments:
        ranks, datasets = average_ranks(exp.aggregates, report.sort)
        if not ranks:
            out.append(f"<p class=note>{_esc(exp.name)}: no dataset where every method ran.</p>")
            continue
        cd = critical_difference(len(ranks), len(datasets))
        rows = [f"<tr><td>{_esc(short(m))}</td><td>{r:.2f}</td></tr>" for m, r in sorted(ranks.items(), key=lambda kv: kv[1])]
        out.append(f"<h3>{_esc(exp.name)}</h3><p class=note>By mean {_esc(report.sort)} on {len(datasets)} dataset(s): "
                   f"{_esc(', '.join(datasets))}. Rank 1 is best.</p>" + _table(["method", "average rank"], rows))
        if len(datasets) >= 3 and len(ranks) >= 2:
            out.append(f'<img class=plot alt="critical-difference view" src="{png_data_uri(cd_plot(ranks, cd))}">'
                       f"<p class=note>Nemenyi critical difference at α = 0.05: {cd:.2f} ranks; methods whose "
                       "average ranks differ by less are joined by a bar (not significantly different).</p>")
        else:
            out.append("<p class=note>A critical-difference view needs at least 3 datasets.</p>")
    return "".join(out)


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
    out = ["<h2>Pictures</h2><p class=note>Of each configuration's lowest seed: gallery (nearest the centre, "
           "random, lowest silhouette), contingency matrix, 2-D map, cluster sizes. Best per dataset open.</p>"]
    for exp in report.experiments:
        best = set(best_per_dataset(exp.aggregates, report.sort).values())
        for a in exp.aggregates:
            run = min(a.records, key=lambda r: (r.seed is None, r.seed))
            imgs = []
            for kind in PICTURES:
                png = report.picture(run.run_id, f"{ARTIFACT_DIR}/{FILES[kind]}") if run.run_id else None
                if png:
                    imgs.append(f'<figure><img alt="{_esc(kind)}" src="{png_data_uri(png)}">'
                                f"<figcaption>{_esc(kind)}</figcaption></figure>")
            body = "".join(imgs) or "<p class=note>no pictures in this run (run with pictures on).</p>"
            summary = f"{_esc(short(a.config))} — {report.sort} {mean_std(a, report.sort)}"
            out.append(f"<details{' open' if a.config in best else ''}><summary>{summary}</summary>{body}</details>")
    return "".join(out)


SECTIONS: list[Section] = [summary_section, ranks_section, pictures_section]


def add_section(builder: Section, before: Section | None = None) -> None:
    """Another section for the page (e.g. a K table); at the end, or before ``before``."""
    if builder in SECTIONS:
        return
    SECTIONS.insert(SECTIONS.index(before) if before in SECTIONS else len(SECTIONS), builder)


_STYLE = """
h2{font-size:1.1em;margin-top:1.4em;border-bottom:1px solid #ccc}h3{font-size:1em}
div.scroll{overflow-x:auto;max-width:100%}td,th{white-space:nowrap;font-variant-numeric:tabular-nums}
tr.best td{background:#fff6d5;font-weight:600}
details{margin:0.4em 0;border:1px solid #ddd;border-radius:6px;padding:0.3em 0.6em}
summary{cursor:pointer;font-size:0.9em;word-break:break-all}
figure{margin:0.5em 0}figure img,img.plot{max-width:100%;height:auto;display:block}
figcaption{font-size:0.8em;color:#666}
@media (max-width:640px){body{margin:0.4em}
  table{display:table;width:auto;font-size:0.8em}thead{display:table-header-group}tbody{display:table-row-group}
  tr{display:table-row;border:none;margin:0;padding:0}th,td{display:table-cell;width:auto;padding:3px 5px;border-bottom:1px solid #ddd}
  td:first-child,th:first-child{position:sticky;left:0;background:#fff}tr.best td:first-child{background:#fff6d5}}
"""


def render(report: Report, sections: list[Section] | None = None) -> str:
    body = [f"<h1>{_esc(report.title)}</h1><p class=note>Generated {time.strftime('%Y-%m-%d %H:%M')}; "
            f"{sum(len(e.records) for e in report.experiments)} finished cell runs.</p>"]
    body += [builder(report) for builder in (SECTIONS if sections is None else sections)]
    return page(report.title, "".join(body), _STYLE)


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
                cache[(run_id, name)] = Path(_quiet_download(client, run_id, name, tmp)).read_bytes()
            except Exception:  # noqa: BLE001 - a run without that picture
                cache[(run_id, name)] = None
        return cache[(run_id, name)]

    return Report("clusterbench report", exps, sort, lambda exp_id, run_id: f"{base}/#/experiments/{exp_id}/runs/{run_id}",
                  picture, tmp)


def _quiet_download(client, run_id: str, name: str, dst: str) -> str:
    """``download_artifacts`` without MLflow's progress bar on stderr."""
    import os

    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as bar

    before = os.environ.get(bar.name)
    os.environ[bar.name] = "false"
    try:
        return client.download_artifacts(run_id, name, dst)
    finally:
        if before is None:
            os.environ.pop(bar.name, None)
        else:
            os.environ[bar.name] = before


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
