"""Zone map of the masks stage."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402


def plot_zone_map(
    zones: dict[str, np.ndarray],
    elevation: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    path: str | Path,
    thresholds: tuple[float, float],
) -> Path:
    """Map of the low / medium / high zones with elevation contours."""
    code = np.full(elevation.shape, np.nan)
    for value, name in enumerate(("low", "medium", "high")):
        code[zones[name]] = value
    low_max, high_min = thresholds
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = ListedColormap(["#8fbf6a", "#d9b25f", "#8c6d5a"])
    mesh = ax.pcolormesh(lon, lat, code, cmap=cmap, vmin=-0.5, vmax=2.5, shading="nearest")
    contours = ax.contour(
        lon, lat, elevation, levels=[low_max, high_min], colors="k", linewidths=0.6
    )
    ax.clabel(contours, fmt="%d m", fontsize=7)
    bar = fig.colorbar(mesh, ax=ax, ticks=[0, 1, 2])
    bar.ax.set_yticklabels(
        [
            f"low < {low_max:.0f} m ({zones['low'].sum()} cells)",
            f"medium ({zones['medium'].sum()} cells)",
            f"high > {high_min:.0f} m ({zones['high'].sum()} cells)",
        ]
    )
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title("Elevation zones (expert specialisation)")
    ax.set_aspect("equal")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
