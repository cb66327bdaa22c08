"""Elevation zones that always have cells (SPEC §4.1, ``zones`` params).

Three modes place the two thresholds (low < ``low_max_m`` ≤ medium ≤ ``high_min_m`` < high):

* ``fixed``: the thresholds in params (SPEC: 2000 and 3000 m, the Boyacá default);
* ``quantile``: elevation quantiles of the valid cells (terciles unless ``zones.quantiles``);
* ``auto``: ``fixed`` when every zone then holds at least ``zones.min_cells`` cells,
  ``quantile`` otherwise.

The ``masks`` stage resolves the mode once, saves the thresholds it used with its outputs
and every later stage (the gating's elevation priors included) reads them from there. A
zone that is still empty is an error naming the counts and the fix: no expert ever trains
on zero cells.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ames.config import TERCILES, ZoneConfig
from ames.data.errors import DataError

log = logging.getLogger(__name__)

ZONES = ("high", "medium", "low")


@dataclass(frozen=True)
class ZoneThresholds:
    """The thresholds the ``masks`` stage used, and why (saved as ``zones.json``)."""

    low_max_m: float = 2000.0
    high_min_m: float = 3000.0
    mode: str = "fixed"  # the mode that placed them: fixed | quantile
    requested: str = "fixed"  # zones.mode: fixed | quantile | auto
    reason: str = "SPEC thresholds"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ZoneThresholds:
        return cls(
            low_max_m=float(values["low_max_m"]),
            high_min_m=float(values["high_min_m"]),
            mode=str(values["mode"]),
            requested=str(values["requested"]),
            reason=str(values.get("reason", "")),
        )

    def describe(self) -> str:
        return f"low < {self.low_max_m:.1f} m ≤ medium ≤ {self.high_min_m:.1f} m < high"


def classify(
    elevation: np.ndarray, valid: np.ndarray, low_max_m: float, high_min_m: float
) -> dict[str, np.ndarray]:
    """Disjoint masks covering ``valid``: high > high_min_m, low < low_max_m, medium between."""
    z = np.where(valid, elevation, np.nan)
    with np.errstate(invalid="ignore"):
        high = valid & (z > high_min_m)
        low = valid & (z < low_max_m)
    return {"high": high, "medium": valid & ~high & ~low, "low": low}


def zone_masks(
    elevation: np.ndarray, valid: np.ndarray, high_min_m: float, low_max_m: float
) -> dict[str, np.ndarray]:
    """:func:`classify` with ordered thresholds and an elevation at every valid cell."""
    if low_max_m >= high_min_m:
        raise ValueError(
            f"zones.low_max_m ({low_max_m}) must be below zones.high_min_m ({high_min_m})"
        )
    if np.isnan(elevation[valid]).any():
        raise ValueError("elevation is missing over valid precipitation cells")
    return classify(elevation, valid, low_max_m, high_min_m)


def zone_counts(
    elevation: np.ndarray, valid: np.ndarray, low_max_m: float, high_min_m: float
) -> dict[str, int]:
    masks = classify(elevation, valid, low_max_m, high_min_m)
    return {name: int(masks[name].sum()) for name in ZONES}


def quantile_thresholds(
    elevation: np.ndarray, valid: np.ndarray, quantiles: tuple[float, float] = TERCILES
) -> tuple[float, float]:
    """``(low_max_m, high_min_m)`` at the given quantiles of the valid cells' elevation."""
    low, high = np.quantile(elevation[valid].astype(np.float64), quantiles)
    return float(low), float(high)


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {counts[name]}" for name in ZONES)


def resolve_thresholds(elevation: np.ndarray, valid: np.ndarray, cfg: ZoneConfig) -> ZoneThresholds:
    """The thresholds ``cfg.mode`` gives on this grid (no check that zones are populated)."""
    fixed = (cfg.low_max_m, cfg.high_min_m)
    if cfg.mode == "fixed":
        return ZoneThresholds(*fixed, "fixed", "fixed", "zones.mode: fixed")
    quantile = quantile_thresholds(elevation, valid, cfg.quantiles)
    q_text = f"elevation quantiles {cfg.quantiles[0]:.3g} and {cfg.quantiles[1]:.3g}"
    if cfg.mode == "quantile":
        return ZoneThresholds(*quantile, "quantile", "quantile", q_text)
    counts = zone_counts(elevation, valid, *fixed)
    short = {name: n for name, n in counts.items() if n < cfg.min_cells}
    at_fixed = f"at {cfg.low_max_m:g}/{cfg.high_min_m:g} m ({_counts_text(counts)} cells)"
    if not short:
        reason = f"every zone has >= {cfg.min_cells} cells {at_fixed}"
        return ZoneThresholds(*fixed, "fixed", "auto", reason)
    reason = f"{', '.join(short)} below {cfg.min_cells} cells {at_fixed}; {q_text}"
    return ZoneThresholds(*quantile, "quantile", "auto", reason)


def require_populated(
    counts: Mapping[str, int],
    thresholds: ZoneThresholds,
    elevation: np.ndarray,
    valid: np.ndarray,
    source: str,
) -> None:
    """Raise :class:`DataError` (one line: counts, thresholds, fix) if a zone has no cell."""
    empty = [name for name in ZONES if counts[name] == 0]
    if not empty:
        return
    z = elevation[valid]
    z_min, z_max = float(np.min(z)), float(np.max(z))
    problem = (
        f"elevation zone(s) {', '.join(empty)} would have no cells, so their expert could not "
        f"train (cells per zone: {_counts_text(counts)} of {int(valid.sum())} valid; "
        f"zones.mode {thresholds.requested} -> {thresholds.mode}, {thresholds.describe()}; "
        f"valid elevations {z_min:.0f}…{z_max:.0f} m)"
    )
    if thresholds.mode == "fixed":
        fix = (
            "set zones.mode: auto (or quantile) so the thresholds follow this region's "
            f"elevations, or set zones.low_max_m and zones.high_min_m inside {z_min:.0f}…"
            f"{z_max:.0f} m"
        )
    else:
        fix = (
            f"the region is too flat for three elevation zones (range {z_max - z_min:.0f} m): "
            "enlarge the bounding box to take in more relief, or choose zones.quantiles (or "
            "zones.mode: fixed thresholds) that split the elevations into three non-empty zones"
        )
    raise DataError(source, problem, fix)


def resolve_zones(
    elevation: np.ndarray, valid: np.ndarray, cfg: ZoneConfig, source: str
) -> tuple[dict[str, np.ndarray], ZoneThresholds]:
    """Zone masks and the thresholds behind them; raises if a zone is empty, logs one line."""
    if np.isnan(elevation[valid]).any():
        raise ValueError("elevation is missing over valid precipitation cells")
    thresholds = resolve_thresholds(elevation, valid, cfg)
    masks = classify(elevation, valid, thresholds.low_max_m, thresholds.high_min_m)
    counts = {name: int(masks[name].sum()) for name in ZONES}
    require_populated(counts, thresholds, elevation, valid, source)
    log.info(
        "zones: mode %s -> %s (%s): %s; cells %s",
        thresholds.requested,
        thresholds.mode,
        thresholds.reason,
        thresholds.describe(),
        _counts_text(counts),
    )
    small = [name for name in ZONES if counts[name] < cfg.min_cells]
    if small:
        log.warning(
            "zones: %s hold fewer than zones.min_cells = %d cells (%s); their experts train "
            "on little data",
            ", ".join(small),
            cfg.min_cells,
            _counts_text(counts),
        )
    return masks, thresholds
