"""Evaluation figures and DVC plot tables.

Figures are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot state), so
importing this module never changes the caller's backend and nothing needs closing.
Quantities in mm/month say so on their axis or colour bar; skill scores are dimensionless.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

METRIC_LABELS = {
    "pooled_r2": "pooled R² (–)",
    "percell_r2": "per-cell mean R² (–)",
    "rmse": "RMSE (mm/month)",
    "mae": "MAE (mm/month)",
    "msess": "MSESS vs climatology (–)",
    "n": "samples",
}
BASELINE_NAMES = ("climatology", "seasonal_naive", "persistence", "damped_persistence")
# Maps whose name contains one of these are skill scores: diverging colours centred on 0.
SKILL_MAP_KEYS = ("msess", "r2", "skill")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _as_float(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _leads(results: dict[str, dict]) -> list[str]:
    first = next(iter(results.values()))
    return sorted(first["by_lead"], key=int)


def skill_by_lead_table(results: dict[str, dict], metric: str) -> list[dict]:
    """Rows ``{"lead": h, name: value, ...}`` of ``metric`` per lead, for ``dvc plots``.

    ``results`` maps a forecast name to its ``score_forecasts`` result. Undefined values
    stay ``None`` (JSON ``null``).
    """
    if not results:
        raise ValueError("results is empty")
    return [
        {"lead": int(lead), **{name: res["by_lead"][lead][metric] for name, res in results.items()}}
        for lead in _leads(results)
    ]


def skill_by_zone_table(results: dict[str, dict], metric: str) -> list[dict]:
    """Rows ``{"forecast", "zone", "label", metric}`` per forecast and zone, for ``dvc plots``."""
    return [
        {"forecast": name, "zone": zone, "label": f"{name} / {zone}", metric: rec[metric]}
        for name, res in results.items()
        for zone, rec in sorted(res["by_zone"].items())
    ]


def _line_style(name: str) -> dict:
    if name == "oracle":
        return {"color": "black", "linestyle": ":", "linewidth": 1.5}
    if name in BASELINE_NAMES or name == "ridge":
        return {"linestyle": "--", "linewidth": 1.2}
    if name.startswith("expert"):
        return {"linestyle": "-", "linewidth": 1.0, "alpha": 0.7}
    return {"linestyle": "-", "linewidth": 2.5}


SKILL_FLOOR = -0.25  # skill plots zoom on the range that separates useful forecasts


def plot_skill_by_lead(results: dict[str, dict], metric: str, path: str | Path) -> Path:
    """One line per forecast (model, experts, baselines, oracle) of ``metric`` against lead.

    For skill scores the axis stops at ``SKILL_FLOOR``: a forecast far below it (persistence
    at −5, say) would otherwise flatten every line near 0; its legend entry gives its range.
    """
    rows = skill_by_lead_table(results, metric)
    leads = [row["lead"] for row in rows]
    fig = _new_figure(7, 4.5)
    ax = fig.add_subplot()
    is_skill = metric in ("msess", "pooled_r2", "percell_r2")
    for name in results:
        values = [_as_float(row[name]) for row in rows]
        label = name
        if is_skill and np.nanmin(values) < SKILL_FLOOR:
            label = f"{name} (off scale: {np.nanmin(values):.2f}…{np.nanmax(values):.2f})"
        ax.plot(leads, values, marker="o", markersize=3, label=label, **_line_style(name))
    if is_skill:
        top = max(np.nanmax([_as_float(row[n]) for row in rows for n in results]), 0.05)
        ax.set_ylim(SKILL_FLOOR, top + 0.05)
        ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("lead (months)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_xticks(leads)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Test {METRIC_LABELS.get(metric, metric)} by lead")
    return _save(fig, path)


def _map_units(key: str) -> str:
    return "–" if any(k in key.lower() for k in SKILL_MAP_KEYS) else "mm/month"


def _map_norm(key: str, values: np.ndarray) -> TwoSlopeNorm | None:
    finite = values[np.isfinite(values)]
    if _map_units(key) != "–" or finite.size == 0:
        return None
    # Centre on 0 (no skill) even when the range is lopsided.
    return TwoSlopeNorm(vcenter=0.0, vmin=min(finite.min(), -1e-3), vmax=max(finite.max(), 1e-3))


def plot_maps(
    maps: dict[str, np.ndarray],
    lat: np.ndarray,
    lon: np.ndarray,
    path: str | Path,
    titles: dict[str, str] | None = None,
    cmaps: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
) -> Path:
    """One panel per ``[lat, lon]`` map (e.g. ``per_cell_maps`` output), NaN cells blank.

    Units default to dimensionless for skill maps (name contains msess / r2 / skill, drawn
    with a diverging map centred on 0) and mm/month otherwise.
    """
    if not maps:
        raise ValueError("maps is empty: nothing to plot")
    titles, cmaps, units = titles or {}, cmaps or {}, units or {}
    fig = _new_figure(5.0 * len(maps), 4.4)
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    for ax, (key, values) in zip(axes, maps.items(), strict=True):
        values = np.asarray(values, dtype=np.float64)
        norm = _map_norm(key, values)
        default_cmap = "RdBu" if norm is not None else "viridis"
        mesh = ax.pcolormesh(
            lon, lat, np.ma.masked_invalid(values), cmap=cmaps.get(key, default_cmap), norm=norm
        )
        fig.colorbar(mesh, ax=ax, label=f"{key} ({units.get(key, _map_units(key))})")
        ax.set_title(titles.get(key, key))
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
        ax.set_aspect("equal")
    return _save(fig, path)


def _zone_points(
    pred: np.ndarray, obs: np.ndarray, mask: np.ndarray, max_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred)[:, :, mask].ravel()
    o = np.asarray(obs)[:, :, mask].ravel()
    if p.size > max_points:
        keep = rng.choice(p.size, size=max_points, replace=False)
        p, o = p[keep], o[keep]
    return p, o


def plot_obs_vs_forecast_by_zone(
    pred: np.ndarray,
    obs: np.ndarray,
    zones: dict[str, np.ndarray],
    path: str | Path,
    max_points: int = 4000,
    seed: int = 0,
) -> Path:
    """Scatter of forecast against observation per zone (random subsample of at most
    ``max_points`` (origin, lead, cell) points per zone, fixed ``seed``), with the 1:1 line."""
    if not zones:
        raise ValueError("zones is empty: nothing to plot")
    rng = np.random.default_rng(seed)
    fig = _new_figure(4.2 * len(zones), 4.4)
    axes = fig.subplots(1, len(zones), squeeze=False)[0]
    for ax, (name, mask) in zip(axes, zones.items(), strict=True):
        p, o = _zone_points(pred, obs, np.asarray(mask, dtype=bool), max_points, rng)
        ax.scatter(o, p, s=3, alpha=0.3, linewidths=0)
        top = 1.05 * max(o.max(initial=0.0), p.max(initial=0.0))
        top = top if np.isfinite(top) and top > 0 else 1.0
        ax.plot([0, top], [0, top], color="black", linewidth=1, label="1:1")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_title(f"{name} zone ({o.size} points shown)")
        ax.set_xlabel("observed (mm/month)")
        ax.set_ylabel("forecast (mm/month)")
        ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _bar_colour(value: float, worse_sign: float) -> str:
    if not np.isfinite(value):
        return "tab:gray"
    return "tab:red" if value * worse_sign > 0 else "tab:blue"


def plot_ablation_bars(table: dict[str, dict], path: str | Path) -> Path:
    """Horizontal bars of each ablation's change vs the full model: ΔR² and ΔRMSE.

    Red bars are changes for the worse (lower R², higher RMSE), blue for the better; black
    whiskers show the bootstrap interval where the table has ``<key>_lo`` / ``<key>_hi``.
    """
    names = list(table)
    if not names:
        raise ValueError("the ablation table is empty: nothing to plot")
    # (key, axis label, sign of a change for the worse)
    panels = (
        ("delta_pooled_r2", "Δ pooled R² vs full model (–)", -1.0),
        ("delta_rmse", "Δ RMSE vs full model (mm/month)", 1.0),
    )
    fig = _new_figure(10, 0.5 * len(names) + 1.8)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (key, label, worse) in zip(axes, panels, strict=True):
        values = [_as_float(table[name].get(key)) for name in names]
        ax.barh(names, values, color=[_bar_colour(v, worse) for v in values])
        if all(f"{key}_lo" in table[name] for name in names):  # bootstrap intervals
            lo = np.array([_as_float(table[name][f"{key}_lo"]) for name in names])
            hi = np.array([_as_float(table[name][f"{key}_hi"]) for name in names])
            err = np.array([np.array(values) - lo, hi - np.array(values)])
            ax.errorbar(values, names, xerr=err, fmt="none", ecolor="black", capsize=3)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    return _save(fig, path)
