"""Routing weights against elevation (gating and finetune stages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

EXPERT_LABELS = ("E1 GNN-TAT (high)", "E2 ConvLSTM (low)", "E3 hybrid (medium)")
COLOURS = ("#8c6d5a", "#4c9f38", "#d9a13b")


def plot_routing_vs_elevation(
    weights: np.ndarray, elevation: np.ndarray, valid: np.ndarray, path: str | Path, title: str
) -> Path:
    """Scatter of each cell's mean routing weight per expert against its elevation."""
    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    z = elevation[valid]
    order = np.argsort(z)
    for i, (label, colour) in enumerate(zip(EXPERT_LABELS, COLOURS, strict=True)):
        w = weights[i][valid]
        ax.scatter(z, w, s=3, alpha=0.25, color=colour, label=label)
        bins = np.linspace(z.min(), z.max(), 25)
        idx = np.digitize(z[order], bins)
        centres = [z[order][idx == b].mean() for b in np.unique(idx)]
        means = [w[order][idx == b].mean() for b in np.unique(idx)]
        ax.plot(centres, means, color=colour, lw=2)
    ax.set_xlabel("elevation (m)")
    ax.set_ylabel("routing weight (–)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(markerscale=4, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
