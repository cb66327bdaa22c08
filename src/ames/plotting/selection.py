"""The cross-validation curves behind the ridge penalties (stage `selection`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_cv_curves(
    cv_mse_by_candidate: Mapping[str, Sequence[float]],
    winners: Sequence[str],
    path: str | Path,
    climatology: str = "climatology",
) -> Path:
    """Per lead, the pooled out-of-fold MSE of each penalty relative to climatology's (below
    1 = better than climatology); the chosen penalty is marked, climatology drawn at 1."""
    labels = sorted((k for k in cv_mse_by_candidate if k != climatology), key=float)
    penalties = np.array([float(k) for k in labels])
    reference = np.asarray(cv_mse_by_candidate[climatology], dtype=float)
    n_leads = len(reference)
    cols = 4
    fig = Figure(figsize=(12, 2.6 * math.ceil(n_leads / cols)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(math.ceil(n_leads / cols), cols, sharex=True, squeeze=False).ravel()
    for lead, ax in enumerate(axes):
        if lead >= n_leads:
            ax.set_visible(False)
            continue
        ratio = np.array([cv_mse_by_candidate[k][lead] for k in labels]) / reference[lead]
        ax.semilogx(penalties, ratio, marker="o", markersize=2, linewidth=1)
        ax.axhline(1.0, color="grey", linewidth=0.8, label=climatology)
        if winners[lead] == climatology:
            ax.set_title(f"lead {lead + 1}: {climatology}", fontsize=9)
        else:
            best = labels.index(winners[lead])
            ax.plot(penalties[best], ratio[best], "r*", markersize=9)
            ax.set_title(f"lead {lead + 1}: penalty {winners[lead]}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("CV MSE / climatology's")
    fig.suptitle("ridge: pooled out-of-fold MSE by penalty (red star: chosen)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
