"""MSESS by lead with its bootstrap band (stage `significance`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_msess_band(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], level: float, path: str | Path
) -> Path:
    """One line per forecast with its shaded interval; ``rows`` from ``band_rows``."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    leads = [row["lead"] for row in rows]
    for name in names:
        values = np.array([row[name] for row in rows], dtype=float)
        lo = np.array([row[f"{name}_lo"] for row in rows], dtype=float)
        hi = np.array([row[f"{name}_hi"] for row in rows], dtype=float)
        (line,) = ax.plot(leads, values, marker="o", markersize=3, label=name)
        ax.fill_between(leads, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("lead (months)")
    ax.set_ylabel("MSESS vs climatology (–)")
    ax.set_xticks(leads)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Test MSESS by lead, {level:.0%} block-bootstrap intervals over origins")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
