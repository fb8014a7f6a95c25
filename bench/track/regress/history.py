"""``clusterbench history``: one offline page plotting each tracked metric of each configuration
across a suite's runs (in run order, labelled by revision), the points ``compare`` would flag
against the configuration's previous run marked in red. Speed is plotted as ``compare`` judges
it: divided by (a rate multiplied by) its run's calibration seconds."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

from clusterbench.core.errors import UserError

from . import rules
from .compare import compare
from .rules import Tolerances
from .sides import Config, Side
from .store import PARENT_TAG, REVISION_TAG, experiments, open_store, side_of_runs, suite_runs


def _points(client, experiment_id: str) -> list[tuple[object, Side]]:
    """(suite run, what it measured) for each finished suite run that measured a cell, oldest first."""
    parents = suite_runs(client, [experiment_id])
    cells = client.search_runs([experiment_id], "tags.`clusterbench.role` = 'cell' and attributes.status = 'FINISHED'",
                               max_results=50000, order_by=["attributes.start_time DESC"])
    by_parent: dict[str, list] = {}
    for run in cells:
        by_parent.setdefault(run.data.tags.get(PARENT_TAG), []).append(run)
    points = [(p, side_of_runs(p.data.tags.get(REVISION_TAG) or p.info.run_id[:8], by_parent.get(p.info.run_id, []), [p]))
              for p in parents]
    return [(p, side) for p, side in points if side.configs]


def _flags(points: list[tuple[object, Side]], tolerances: Tolerances) -> list[set[tuple[str, str]]]:
    """Per point, the (configuration, metric) pairs worse than that configuration's previous run."""
    last: dict[str, Config] = {}
    flags = []
    for _, side in points:
        flags.append({(r.config, r.metric) for r in compare(Side("previous", dict(last)), side, tolerances).regressions})
        last.update(side.configs)
    return flags


def plotted(metric: str, config: Config) -> float | None:
    stat = config.metrics.get(metric)
    if stat is None:
        return None
    if config.calibration and metric in rules.TIMES:
        return stat.mean / config.calibration
    if config.calibration and metric in rules.RATES:
        return stat.mean * config.calibration
    return stat.mean


def _axis_label(metric: str) -> str:
    if metric in rules.TIMES:
        return f"{metric} / calibration"
    if metric in rules.RATES:
        return f"{metric} x calibration"
    return metric


def _figure(metric: str, series: list[tuple[int, float, bool]], labels: list[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.4), dpi=90)
    xs, ys = [x for x, _, _ in series], [y for _, y, _ in series]
    ax.plot(xs, ys, "-o", color="#3465a4", markersize=4, linewidth=1.2)
    bad = [(x, y) for x, y, flagged in series if flagged]
    if bad:
        ax.scatter(*zip(*bad, strict=True), s=70, facecolors="none", edgecolors="#cc0000", linewidths=2, zorder=3,
                   label="regression")
        ax.legend(loc="best", fontsize=7, frameon=False)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_title(_axis_label(metric), fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _section(name: str, points, tolerances: Tolerances, metrics: list[str] | None) -> dict:
    from clusterbench.pages import png_data_uri

    flags = _flags(points, tolerances)
    labels = [side.label[:12] for _, side in points]
    configs = sorted({c for _, side in points for c in side.configs})
    blocks = []
    for config in configs:
        plots = []
        for metric in metrics or rules.TRACKED:
            series = [(i, v, (config, metric) in flags[i]) for i, (_, side) in enumerate(points)
                      if config in side.configs and (v := plotted(metric, side.configs[config])) is not None]
            if series:
                plots.append({"metric": metric, "png": png_data_uri(_figure(metric, series, labels)),
                              "flagged": sum(f for _, _, f in series)})
        blocks.append({"config": config, "plots": plots, "flagged": sum(p["flagged"] for p in plots)})
    blocks.sort(key=lambda b: not b["flagged"])  # what regressed first
    flagged = [{"revision": points[i][1].label, "config": c, "metric": m} for i, found in enumerate(flags)
               for c, m in sorted(found)]
    runs = [{"index": i, "revision": side.label, "dirty": p.data.tags.get("clusterbench.revision_dirty") == "true",
             "started": datetime.fromtimestamp(p.info.start_time / 1000).strftime("%Y-%m-%d %H:%M"),
             "calibration": side.calibration, "n_configs": len(side.configs), "flagged": len(flags[i]),
             "run_id": p.info.run_id} for i, (p, side) in enumerate(points)]
    return {"name": name, "runs": runs, "blocks": blocks, "flagged": flagged}


def write_history(results: Path, out: Path, experiment: str | None, metrics: list[str] | None,
                  tolerances: Tolerances) -> int:
    """Write the page; the number of suite runs it plots."""
    from clusterbench.core.atomic import atomic_file
    from clusterbench.pages import render

    unknown = sorted(set(metrics or ()) - set(rules.TRACKED))
    if unknown:
        raise UserError(f"--metric {', '.join(unknown)}: not a tracked metric; tracked: {', '.join(rules.TRACKED)}")
    client = open_store(results)
    sections = []
    for exp in experiments(client, results, experiment):
        points = _points(client, exp.experiment_id)
        if points:
            sections.append(_section(exp.name.removeprefix("clusterbench/"), points, tolerances, metrics))
    if not sections:
        raise UserError(f"{results}: no finished suite run with measured cells to plot")
    html = render("history.html.j2", title=f"clusterbench history: {results}", sections=sections,
                  generated=datetime.now().strftime("%Y-%m-%d %H:%M"), tolerances=tolerances.values)
    with atomic_file(out, "w") as f:
        f.write(html)
    return sum(len(s["runs"]) for s in sections)
