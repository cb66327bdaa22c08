"""Probabilistic-forecast plots: PIT histogram, reliability diagram, tercile outlook maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap

from ames.plotting.evaluation import _new_figure, _save

# Outlook colours as seasonal-outlook centres draw them: browns for a dry tilt, greens for a
# wet one, nothing below the climatological 1/3 (+ a margin) so that only a tilt shows.
OUTLOOK_LEVELS = [0.4, 0.5, 0.6, 0.7, 0.8, 1.0]
OUTLOOK_CMAPS = {"below_normal": "YlOrBr", "above_normal": "Greens"}
OUTLOOK_TITLES = {"below_normal": "below normal", "above_normal": "above normal"}


def plot_pit_histograms(pit: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """One PIT histogram (relative frequency per bin) per forecast; flat = calibrated."""
    fig = _new_figure(3.2 * len(pit), 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(pit), sharey=True))
    for ax, (name, freq) in zip(axes, pit.items(), strict=True):
        freq = np.asarray(freq)
        edges = np.linspace(0.0, 1.0, len(freq) + 1)
        ax.bar(edges[:-1], freq, width=np.diff(edges), align="edge", color="0.6", edgecolor="k")
        ax.axhline(1.0 / len(freq), color="C3", lw=1, ls="--", label="calibrated")
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel("PIT")
    axes[0].set_ylabel("relative frequency")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def plot_reliability(tables: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Reliability diagram of the above-normal category, with forecast counts below."""
    fig = _new_figure(5.0, 6.0)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="perfect reliability")
    top.axhline(1 / 3, color="0.6", lw=0.8, ls=":", label="climatological frequency")
    for i, (name, rows) in enumerate(tables.items()):
        used = [r for r in rows if r["n"]]
        x = [r["forecast_probability"] for r in used]
        y = [r["observed_frequency"] for r in used]
        top.plot(x, y, marker="o", color=f"C{i}", label=name.replace("_", " "))
        centres = [(r["bin_lo"] + r["bin_hi"]) / 2 for r in rows]
        width = (rows[0]["bin_hi"] - rows[0]["bin_lo"]) / (len(tables) + 1)
        bottom.bar(
            np.asarray(centres) + (i - len(tables) / 2) * width,
            [r["n"] for r in rows],
            width=width,
            color=f"C{i}",
        )
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency of above normal")
    top.set_title("Reliability: P(above normal), all leads and cells", fontsize=10)
    top.legend(fontsize=8)
    bottom.set(xlabel="forecast probability", ylabel="forecasts", yscale="log")
    return _save(fig, path)


def plot_tercile_outlook(
    probability: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    months: Sequence[str],
    path: str | Path,
    categories: Sequence[str] = ("below_normal", "above_normal"),
) -> Path:
    """Maps of P(below normal) and P(above normal) for the first target months.

    ``probability`` ``[M, C, lat, lon]`` with the categories of ``CATEGORIES`` order
    (below, near, above); one row per category in ``categories``, one column per month.
    """
    index = {"below_normal": 0, "near_normal": 1, "above_normal": 2}
    n_months = len(months)
    fig = _new_figure(3.2 * n_months + 1.2, 3.0 * len(categories))
    axes = fig.subplots(len(categories), n_months, squeeze=False, sharex=True, sharey=True)
    for row, category in enumerate(categories):
        n_bins = len(OUTLOOK_LEVELS) - 1
        base = colormaps[OUTLOOK_CMAPS[category]]
        cmap = ListedColormap(base(np.linspace(0.25, 0.95, n_bins)))
        norm = BoundaryNorm(OUTLOOK_LEVELS, n_bins)
        for col, label in enumerate(months):
            ax = axes[row, col]
            values = np.ma.masked_less(np.ma.masked_invalid(probability[col, index[category]]), 0.4)
            mesh = ax.pcolormesh(lon, lat, values, cmap=cmap, norm=norm)
            ax.set_facecolor("0.93")
            ax.set_title(f"{label}: P({OUTLOOK_TITLES[category]})", fontsize=9)
            ax.set_aspect("equal")
        fig.colorbar(mesh, ax=axes[row], label="probability", shrink=0.85)
    fig.suptitle(
        "Tercile outlook (grey: no tilt, P < 0.4; climatology is 1/3 per category)", fontsize=10
    )
    return _save(fig, path)
