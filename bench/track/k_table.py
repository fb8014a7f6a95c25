"""The K table of ``clusterbench report``: every labelled cell whose K was estimated (``k=auto``,
``k=auto:NAME``, ``k=semantic``), estimator x dataset / embedder, with the chosen K, its error against the number
of classes and its NMI regret; then each estimator's mean over its cells."""

from __future__ import annotations


def _f(value):
    return None if value is None else float(value)


def k_shown(k, params: dict, metrics: dict):
    """K as the tables show it: with its range beside it when it was the smallest or largest K the
    estimator (or study) could choose, e.g. ``11 (top of 2..11)`` - the best K may lie outside."""
    if k is None or not metrics.get("k_at_bound"):
        return k
    low, high = params.get("k_min"), params.get("k_max")
    try:
        edge = "top" if float(k) == float(high) else "bottom"
    except (TypeError, ValueError):
        return k
    return f"{int(float(k))} ({edge} of {low}..{high})"


def k_rows(runs) -> list[dict]:
    rows = []
    for r in runs:
        m, p = r.data.metrics, r.data.params
        if "k_regret_nmi" not in m:
            continue
        rows.append({"estimator": p.get("k_estimator", "silhouette"), "dataset": p.get("dataset"),
                     "embedder": p.get("embedder"), "clusterer": p.get("clusterer"), "seed": p.get("seed"),
                     "reducer": p.get("reducer", "none"), "k": k_shown(_f(m.get("k_chosen")), p, m), "classes": p.get("n_classes"),
                     "k_error": _f(m.get("k_error")), "k_best_nmi": _f(m.get("k_best_nmi")),
                     "nmi": _f(m.get("k_nmi_at_chosen")), "k_regret_nmi": _f(m.get("k_regret_nmi"))})
    return sorted(rows, key=lambda r: (r["estimator"], str(r["dataset"]), str(r["embedder"]), str(r["clusterer"])))


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def k_tables(runs) -> list[tuple[list[str], list[list]]]:
    """(header, rows) of the per-cell table and of the per-estimator means; empty when no cell
    estimated K. (The caller formats them: Markdown, HTML.)"""
    rows = k_rows(runs)
    if not rows:
        return []
    header = ["estimator", "dataset", "embedder", "clusterer", "seed", "reducer", "chosen K", "classes", "k_error",
              "best K (NMI)", "NMI at chosen", "k_regret_nmi"]
    cells = (header, [[r[h] for h in ("estimator", "dataset", "embedder", "clusterer", "seed", "reducer",
                                                    "k", "classes", "k_error", "k_best_nmi", "nmi", "k_regret_nmi")]
                      for r in rows])
    summary = []
    for name in dict.fromkeys(r["estimator"] for r in rows):
        mine = [r for r in rows if r["estimator"] == name]
        errors = [r["k_error"] for r in mine if r["k_error"] is not None]
        summary.append([name, len(mine), _mean(errors), _mean([abs(e) for e in errors]),
                        _mean([r["k_regret_nmi"] for r in mine]), _mean([r["nmi"] for r in mine])])
    means = (["estimator", "cells", "mean k_error", "mean abs k_error", "mean k_regret_nmi", "mean NMI at chosen"],
             sorted(summary, key=lambda row: (row[4] is None, row[4])))
    return [cells, means]
