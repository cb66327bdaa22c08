"""Forecasts as one labelled object: the model, its experts and members, every baseline, the
oracle, the observations and the climatology reference are variables of one
``xarray.Dataset`` over (origin, lead, latitude, longitude), in mm/month. The grid carries a
``zone`` label ("" outside the domain), so scores group by zone
(``ames.evaluation.metrics.score_dataset``) and each variable's ``role`` attribute
(``model``, ``member``, ``expert``, ``baseline``, ``oracle``, ``ablation``, ``truth``) says
what it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

DIMS = ("origin", "lead", "latitude", "longitude")
TRUTH = "observed"  # the observations' variable
REFERENCE = "climatology"  # the MSESS reference forecast
NO_ZONE = ""  # the label of cells outside the domain
MODEL = "ames"  # the model's variable; its seed members are ``member_name(seed)``


def member_name(seed: int) -> str:
    return f"{MODEL}_seed{seed}"


def zone_labels(zones: Mapping[str, np.ndarray], lat: np.ndarray, lon: np.ndarray) -> xr.DataArray:
    """Zone masks (name → bool ``[lat, lon]``, disjoint) as one label per grid cell."""
    if not zones:
        raise ValueError("zones is empty: pass at least one zone mask (their union = valid cells)")
    shape = (len(lat), len(lon))
    labels = np.full(shape, NO_ZONE, dtype=object)
    count = np.zeros(shape, dtype=np.int64)
    for name, mask in zones.items():
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != shape:
            raise ValueError(
                f"zone {name!r} must be a bool mask of shape {shape}, got {mask.dtype} {mask.shape}"
            )
        if not name:
            raise ValueError("a zone needs a non-empty name")
        labels[mask] = name
        count += mask
    if (count > 1).any():
        raise ValueError(
            f"zone masks overlap on {int((count > 1).sum())} cells; they must be disjoint"
        )
    if not count.any():
        raise ValueError("the zone masks select no cell")
    return xr.DataArray(
        labels.astype(str),
        dims=DIMS[2:],
        coords={"latitude": lat, "longitude": lon},
        attrs={"order": list(zones), "long_name": "elevation zone ('' = outside the domain)"},
    )


def forecast_set(
    fields: Mapping[str, np.ndarray],
    *,
    origins: Sequence | np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    zones: Mapping[str, np.ndarray],
    roles: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Arrays ``[S, H, lat, lon]`` (mm/month) as one dataset; leads are 1..H."""
    roles = roles or {}
    shapes = {name: np.shape(values) for name, values in fields.items()}
    expected = (len(origins), next(iter(shapes.values()))[1], len(lat), len(lon))
    wrong = {name: shape for name, shape in shapes.items() if shape != expected}
    if wrong:
        raise ValueError(f"forecast arrays must all be [S, H, lat, lon] = {expected}, got {wrong}")
    zone = zone_labels(zones, lat, lon)
    ds = xr.Dataset(
        {
            name: (
                DIMS,
                np.asarray(values),
                {"units": "mm/month", "role": roles.get(name, TRUTH if name == TRUTH else "")},
            )
            for name, values in fields.items()
        },
        coords={
            "origin": np.asarray(origins),
            "lead": np.arange(1, expected[1] + 1, dtype=np.int32),
            "latitude": lat,
            "longitude": lon,
            "zone": zone,
        },
    )
    return ds


def forecast_names(ds: xr.Dataset, role: str | None = None) -> list[str]:
    """The forecasts in ``ds`` (every variable but the observations), or those of one role."""
    names = [str(n) for n in ds.data_vars if ds[n].attrs.get("role") != TRUTH]
    return names if role is None else [n for n in names if ds[n].attrs.get("role") == role]


def roles_of(ds: xr.Dataset, names: Sequence[str]) -> dict[str, str]:
    return {name: ds[name].attrs.get("role", "") for name in names}


def zone_order(ds: xr.Dataset) -> list[str]:
    """The zone names in the order the masks were given."""
    return list(ds["zone"].attrs["order"])


def zone_masks(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """The zone labels back as name → bool ``[lat, lon]`` masks, in order."""
    labels = ds["zone"].transpose(*DIMS[2:]).values
    return {name: labels == name for name in zone_order(ds)}
