"""The cross-validation curves behind the ridge penalties and the epochs stages 2 and 3 keep
(stage `selection`)."""

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


def plot_epoch_curves(decisions: Mapping[str, Mapping], path: str | Path) -> Path:
    """Per stage whose epochs the folds decided, the pooled held-out MSE by epoch relative to
    epoch 0's (the starting weights), each fold's curve faint; the kept epoch is marked."""
    names = [n for n, d in decisions.items() if d.get("decided_on") == "folds" and "kept" in d]
    fig = Figure(figsize=(4.2 * max(len(names), 1), 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        d = decisions[name]
        pooled = np.asarray(d["cv_mse_by_epoch"])
        for fold in d["cv_mse_by_fold_and_epoch"]:
            ax.plot(np.asarray(fold) / fold[0], color="grey", alpha=0.4, linewidth=0.8)
        ax.plot(pooled / pooled[0], marker="o", color="C0", label="pooled")
        ax.plot(d["kept"], pooled[d["kept"]] / pooled[0], "r*", markersize=10, label="kept")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_title(f"{name.removesuffix('_epoch')}: keeps epoch {d['kept']}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out MSE / epoch 0's")
    if not names:
        axes[0].set_title("no epoch decided by the folds", fontsize=9)
    fig.suptitle("epochs by the folds: pooled held-out MSE (grey: each fold)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
