"""One figure per (dataset, embedder, clusterer, seed, reducer) on which several K estimators ran:
each estimator's per-K curve and choice, with NMI vs K, into the suite's parent run."""

from __future__ import annotations

import re

from clusterbench.core.artifacts import Artifacts


def comparison_groups(results) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        if r.status == "ok" and r.k_curve:
            c = r.cell
            key = (str(c.dataset), str(c.embedder), str(c.clusterer), c.seed, c.reduce.describe() if c.reduce else "none")
            groups.setdefault(key, []).append(r.k_curve)
    return {key: curves for key, curves in groups.items() if len({c["estimator"] for c in curves}) > 1}


def comparison_artifacts(results) -> Artifacts:
    """For the suite's run: each group's curves as JSON and one figure of them all."""
    from clusterbench.k.figure import k_comparison_figure

    out = Artifacts()
    for key, curves in comparison_groups(results).items():
        name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(map(str, key)))
        title = " / ".join(map(str, key)) + ": K estimators"
        out.figures[f"k_estimators/{name}.png"] = lambda curves=curves, title=title: k_comparison_figure(curves, title)
        out.json[f"k_estimators/{name}.json"] = {"cell": list(map(str, key)), "curves": curves}
    return out
