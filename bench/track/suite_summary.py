"""What a suite's parent run gets at the end: aggregate metrics per configuration (mean and std
over seeds, as short metrics such as ``nmi/kmeans on pixels`` and as a table) and ``report.html``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import html_report
from .aggregate import AGG_METRICS, CellRecord, aggregate, best_per_dataset, metric_labels, metric_name
from .pictures import recent
from .tracking import quiet_download


def records_of_results(results) -> list[CellRecord]:
    """The finished cells of this invocation (run now or earlier) as records."""
    return [CellRecord(r.cell.key, str(r.cell.dataset), str(r.cell.embedder), str(r.cell.clusterer), r.cell.seed,
                       dict(r.metrics), r.run_id, dict(r.params)) for r in results if r.status == "ok"]


def aggregates_csv(aggs) -> str:
    head = ["configuration", "dataset", "method", "n_seeds"] + [f"{m}_{s}" for m in AGG_METRICS for s in ("mean", "std")]
    lines = [",".join(head + ["metric_label"])]  # the label: what the suite run's metric names end with
    labels = metric_labels(a.config for a in aggs)
    for a in aggs:
        values = [f"{a.mean[m]:.6g},{a.std[m]:.6g}" if m in a.mean else "," for m in AGG_METRICS]
        lines.append(",".join([f'"{a.config}"', f'"{a.dataset}"', f'"{a.method}"', str(len(a.records)), *values,
                               f'"{labels[a.config]}"']))
    return "\n".join(lines) + "\n"


NOTE_TAG = "mlflow.note.content"  # the run's Description in the MLflow UI (Markdown)


def overview(aggs, labels: dict[str, str], html: bool, metric: str = "nmi") -> str:
    """The suite run's description: the best configuration per dataset and where the rest is."""
    lines = [f"Mean and std over seeds of {len(aggs)} configuration(s): metrics `{metric}/…`, `{metric}_std/…`; "
             f"the table in `aggregates.csv`{' and the page `report.html`' if html else ''} (Artifacts)."]
    best = best_per_dataset(aggs, metric)
    if best:
        by_config = {a.config: a for a in aggs}
        lines += ["", f"Best mean {metric} per dataset:", ""]
        lines += [f"- {dataset}: **{labels[config]}** {by_config[config].mean[metric]:.3f}"
                  for dataset, config in best.items()]
    return "\n".join(lines)


def log_suite_summary(tracker, parent_id: str, results, title: str, html: bool = True, log=None) -> None:
    """Never raises: a failure here is logged, the cells stand."""
    try:
        _log(tracker, parent_id, results, title, html)
    except Exception as exc:  # noqa: BLE001
        from clusterbench.core.errors import one_line_reason

        if log:
            log(f"suite summary: failed: {one_line_reason(exc)}")


def _log(tracker, parent_id: str, results, title: str, html: bool) -> None:
    records = records_of_results(results)
    if not records:
        return
    aggs = aggregate(records)
    metrics = {}
    labels = metric_labels(a.config for a in aggs)  # short names: the UI cuts long ones off
    for a in aggs:
        for m in a.mean:
            metrics[metric_name(labels[a.config], m, "mean")] = a.mean[m]
            metrics[metric_name(labels[a.config], m, "std")] = a.std[m]
        metrics[metric_name(labels[a.config], "n_seeds", "count")] = len(a.records)
    tracker.log_metrics(parent_id, metrics)
    tracker.log_text(parent_id, "aggregates.csv", aggregates_csv(aggs))
    tracker.set_tags(parent_id, {NOTE_TAG: overview(aggs, labels, html)})
    if not html:
        return
    exp = html_report.Experiment(title, tracker.experiment_id, records, aggs)
    with tempfile.TemporaryDirectory(prefix="clusterbench-report-") as tmp:

        def picture(run_id: str, name: str) -> bytes | None:
            if (png := recent(run_id, name)) is not None:
                return png
            try:
                return Path(quiet_download(tracker.client, run_id, name, tmp)).read_bytes()
            except Exception:  # noqa: BLE001 - a run without pictures
                return None

        base = tracker.uri.rstrip("/") if tracker.uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
        report = html_report.Report(f"clusterbench: {title}", [exp], "nmi", html_report.run_link(base), picture)
        tracker.log_text(parent_id, "report.html", html_report.render(report))
