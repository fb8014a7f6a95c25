"""Objective vs K from what the study recorded (the trials' parameters, values, user attributes): a
series per combination of categorical parameters, and NMI vs labels (computed after the study, for
the figure only) on a second axis."""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution

from clusterbench.k.study import trial_k


def objective_figure(trials, objectives, directions, nmi: dict[int, float], best_number: int, title: str):
    from matplotlib.figure import Figure

    done = [t for t in trials if t.state.name == "COMPLETE" and trial_k(t) is not None]
    grouping = sorted({n for t in done for n, d in t.distributions.items() if isinstance(d, CategoricalDistribution)})
    groups: dict[tuple, list] = {}
    for t in done:
        groups.setdefault(tuple((n, t.params.get(n)) for n in grouping), []).append(t)
    tuned_k, best = any("k" in t.params for t in done), next((t for t in done if t.number == best_number), None)
    noisy = any((t.user_attrs.get("noise_fraction") or 0) > 0 for t in done)

    def points(members, value):  # joined by a line when each K appears once
        xs, ys = zip(*sorted((trial_k(t), value(t)) for t in members), strict=True)
        return xs, ys, tuned_k and len(set(xs)) == len(xs)

    fig = Figure(figsize=(7, 3.6 * len(objectives)), constrained_layout=True)
    for i, ax in enumerate(fig.subplots(len(objectives), 1, squeeze=False)[:, 0]):
        for group, members in groups.items():
            xs, ys, line = points(members, lambda t, i=i: t.values[i])
            ax.plot(xs, ys, "o-" if line else "o", ms=4, label=", ".join(f"{n}={v}" for n, v in group) or objectives[i])
        if best is not None:
            ax.axvline(trial_k(best), color="k", ls="--", lw=1, label=f"chosen K={trial_k(best)}")
        ax.set_xlabel("K" if tuned_k else "K found (clusters)")
        ax.set_ylabel(f"{objectives[i]} ({directions[i]}d)" + (" × (1 − noise)" if objectives[i] == "silhouette" and noisy else ""))
        if any(t.number in nmi for t in done):
            other = ax.twinx()  # same panel and K axis, its own scale
            xs, ys, line = points([t for t in done if t.number in nmi], lambda t: nmi[t.number])
            other.plot(xs, ys, "s:" if line else "s", color="tab:red", ms=3, alpha=0.8, label="NMI vs labels (after the fact; not used)")
            other.set_ylabel("NMI (labels, figure only)", color="tab:red")
            other.legend(loc="lower right", fontsize=7)
        ax.legend(loc="best", fontsize=7)
        ax.grid(alpha=0.3)
        ax.set_title(title if i == 0 else "", fontsize=9)
    return fig


def _curve_panel(ax, curve: dict, label: str) -> None:
    if "score" in curve:  # k=semantic has no per-K score: its panel holds its choice and NMI vs K
        ax.plot(curve["k"], curve["score"], "o-", ms=3, label=label)
    ax.axvline(curve["chosen_k"], color="k", ls="--", lw=1, label=f"chosen K={curve['chosen_k']}")
    if curve.get("n_classes"):
        ax.axvline(curve["n_classes"], color="tab:green", ls=":", lw=1, label=f"classes={curve['n_classes']}")
    if "nmi" in curve:
        other = ax.twinx()
        other.plot(curve["k"], curve["nmi"], "s:", color="tab:red", ms=2, alpha=0.8, label="NMI (after the fact)")
        other.set_ylabel("NMI (labels, not used)", color="tab:red", fontsize=7)
    ax.set_xlabel("K")
    ax.legend(loc="best", fontsize=7)
    ax.grid(alpha=0.3)


def k_curve_figure(curve: dict, title: str):
    """One estimator's per-K score, its chosen K, the number of classes and NMI vs K."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6), constrained_layout=True)
    ax = fig.subplots()
    _curve_panel(ax, curve, curve["estimator"])
    ax.set_ylabel(curve["estimator"])
    ax.set_title(title, fontsize=9)
    return fig


def k_comparison_figure(curves: list[dict], title: str):
    """Every estimator that ran on the same data: one panel each (own scale), same K axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.4 * len(curves)), constrained_layout=True)
    axes = fig.subplots(len(curves), 1, squeeze=False, sharex=True)[:, 0]
    for ax, curve in zip(axes, curves, strict=True):
        _curve_panel(ax, curve, curve["estimator"])
        ax.set_ylabel(curve["estimator"], fontsize=8)
    axes[0].set_title(title, fontsize=9)
    return fig
