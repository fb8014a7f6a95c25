"""Cluster sizes, largest first (noise a grey bar of its own), against the even share N / K."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import NOISE, Cluster, save


def _purity_colour(purity: float | None):
    """Blue for a pure cluster, through to red at purity 0.5 or less."""
    blue, red = np.array([0.12, 0.47, 0.71]), np.array([0.84, 0.15, 0.16])
    t = 0.0 if purity is None else min(1.0, max(0.0, (1 - purity) * 2))
    return tuple((1 - t) * blue + t * red)


def draw(clusters: list[Cluster], n: int, path: Path, title: str = "") -> Path:
    from matplotlib.figure import Figure

    real = [c for c in clusters if c.id != NOISE]
    noise = [c for c in clusters if c.id == NOISE]
    shown = real + noise
    fig = Figure(figsize=(min(14, max(6, 0.18 * len(shown) + 3)), 3.6))
    ax = fig.subplots()
    colour = [_purity_colour(c.purity) for c in real] + ["#999999"] * len(noise)
    ax.bar(range(len(shown)), [c.size for c in shown], color=colour, width=0.85)
    if real:
        ax.axhline(sum(c.size for c in real) / len(real), color="#d62728", lw=1, ls="--", label="even share")
        ax.legend(fontsize=8, loc="upper right")
    if len(shown) <= 50:
        ax.set_xticks(range(len(shown)), ["noise" if c.id == NOISE else str(c.id) for c in shown], fontsize=7,
                      rotation=90 if len(shown) > 25 else 0)
    else:
        ax.set_xticks([])
    ax.set_xlabel("cluster (largest first)" + ("; redder: lower purity" if real and real[0].purity is not None else ""),
                  fontsize=8)
    ax.set_ylabel("items", fontsize=8)
    noise_share = sum(c.size for c in noise) / max(n, 1)
    ax.set_title((title + ": " if title else "") + f"{len(real)} clusters, {n} items"
                 + (f", noise {noise_share:.1%}" if noise else ""), fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.88)
    return save(fig, path)
