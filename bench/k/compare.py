"""One figure per (dataset, embedder, clusterer, seed, reducer) on which several K estimators ran:
each estimator's per-K curve and choice, with NMI vs K, into the suite's parent run."""

from __future__ import annotations

import re

from clusterbench.core.errors import one_line_reason


def comparison_groups(results) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        if r.status == "ok" and r.k_curve:
            c = r.cell
            key = (str(c.dataset), str(c.embedder), str(c.clusterer), c.seed, c.reduce.describe() if c.reduce else "none")
            groups.setdefault(key, []).append(r.k_curve)
    return {key: curves for key, curves in groups.items() if len({c["estimator"] for c in curves}) > 1}


def log_comparison(tracker, run_id, results) -> None:
    from clusterbench.k.figure import k_comparison_figure

    for key, curves in comparison_groups(results).items():
        name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(map(str, key)))
        try:
            fig = k_comparison_figure(curves, " / ".join(map(str, key)) + ": K estimators")
            tracker.log_figure(run_id, fig, f"k_estimators/{name}.png")
            tracker.log_json(run_id, f"k_estimators/{name}.json", {"cell": list(map(str, key)), "curves": curves})
        except Exception as e:  # noqa: BLE001 - a figure is never worth a failed suite
            tracker.log_text(run_id, f"k_estimators/{name}_error.txt", one_line_reason(e))
