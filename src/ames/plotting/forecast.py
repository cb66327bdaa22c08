"""Forecast maps (stage `inference`).

Drawn on a ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot state), like the
other plotting modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

N_COLUMNS = 4
PANEL_INCHES = 3.2


def _colour_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 1.0
    return 0.0, max(top, 1e-3)


def plot_forecast_maps(
    precip: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    titles: Sequence[str],
    path: str | Path,
    suptitle: str | None = None,
    cmap: str = "YlGnBu",
) -> Path:
    """One map per target month of ``precip`` ``[H, lat, lon]`` (mm/month), 4 per row.

    All panels share one colour scale (0 to the largest value) and one colour bar; NaN
    cells (outside the domain) stay blank. ``titles`` has one entry per map.
    """
    precip = np.asarray(precip, dtype=np.float64)
    if precip.ndim != 3 or not precip.shape[0] or len(titles) != precip.shape[0]:
        raise ValueError(
            f"expected precip [H, lat, lon] and H titles, got {precip.shape} and {len(titles)}"
        )
    n_rows = math.ceil(precip.shape[0] / N_COLUMNS)
    fig = Figure(
        figsize=(N_COLUMNS * PANEL_INCHES + 1.0, n_rows * PANEL_INCHES), layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, N_COLUMNS, squeeze=False, sharex=True, sharey=True).ravel()
    vmin, vmax = _colour_range(precip)
    for ax, values, title in zip(axes, precip, titles, strict=False):
        mesh = ax.pcolormesh(
            lon, lat, np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax
        )
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
    for ax in axes[precip.shape[0] :]:
        ax.set_visible(False)
    for ax in axes[::N_COLUMNS]:
        ax.set_ylabel("latitude (°N)")
    for ax in axes[(n_rows - 1) * N_COLUMNS :]:
        ax.set_xlabel("longitude (°E)")
    fig.colorbar(mesh, ax=axes.tolist(), shrink=0.8, label="precipitation (mm/month)")
    if suptitle:
        fig.suptitle(suptitle)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
