"""The ``data.files`` section and the bounding box of user data mode (SPEC §2.3).

:func:`parse_files_config` applies :data:`FILES_DEFAULTS`, validates ``fill_missing`` and
resolves the file paths from the project root; :func:`parse_bbox` validates the bounding
box and wraps its longitudes to −180…180. Both raise :class:`~ames.config.ConfigError` at the
key, naming the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ames.config import ConfigError

#: Keys of ``data.files`` and their defaults (``None`` = auto-detect / read from the file).
FILES_DEFAULTS: dict[str, Any] = {
    "precip_path": None,
    "precip_var": "precip",
    "precip_units": None,
    "dem_path": None,
    "dem_var": None,
    "lat_name": None,
    "lon_name": None,
    "time_name": None,
    "fill_missing": "none",
    "negative_values": "error",
}
FILL_OPTIONS = ("none", "climatology")
NEGATIVE_OPTIONS = ("error", "clip")


@dataclass(frozen=True)
class FilesConfig:
    """The ``data.files`` section with defaults applied and paths resolved."""

    precip_path: Path
    dem_path: Path
    precip_var: str = "precip"
    precip_units: str | None = None
    dem_var: str | None = None
    lat_name: str | None = None
    lon_name: str | None = None
    time_name: str | None = None
    fill_missing: str = "none"
    negative_values: str = "error"


@dataclass(frozen=True)
class BBox:
    """Bounding box in degrees, longitudes in −180…180."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def describe(self) -> str:
        return (
            f"latitude {self.lat_min:g}…{self.lat_max:g}, "
            f"longitude {self.lon_min:g}…{self.lon_max:g}"
        )


def parse_files_config(files_cfg: Mapping[str, Any] | None, root: Path) -> FilesConfig:
    """Apply :data:`FILES_DEFAULTS` to ``data.files`` and resolve its paths from ``root``."""
    given = dict(files_cfg or {})
    unknown = sorted(set(given) - set(FILES_DEFAULTS))
    if unknown:
        raise ConfigError.at(
            "data.files",
            f"unknown key(s) {', '.join(unknown)}; use only: {', '.join(FILES_DEFAULTS)}",
        )
    merged = {**FILES_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    for key in ("precip_path", "dem_path"):
        if not merged[key]:
            raise ConfigError.at(
                f"data.files.{key}",
                "is not set; set it to your file (relative to the project root)",
            )
        path = Path(str(merged[key])).expanduser()
        merged[key] = path if path.is_absolute() else root / path
    fill = merged["fill_missing"]
    fill = "none" if fill is False else str(fill).strip().lower()
    if fill not in FILL_OPTIONS:
        raise ConfigError.at(
            "data.files.fill_missing",
            f"{merged['fill_missing']!r}; use one of: {', '.join(FILL_OPTIONS)}",
        )
    merged["fill_missing"] = fill
    negative = str(merged["negative_values"]).strip().lower()
    if negative not in NEGATIVE_OPTIONS:
        raise ConfigError.at(
            "data.files.negative_values",
            f"{merged['negative_values']!r}; use one of: {', '.join(NEGATIVE_OPTIONS)}",
        )
    merged["negative_values"] = negative
    for key in ("precip_var", "precip_units", "dem_var", "lat_name", "lon_name", "time_name"):
        if merged[key] is not None:
            merged[key] = str(merged[key])
    return FilesConfig(**merged)


def parse_bbox(bbox: Mapping[str, Any]) -> BBox:
    """Validate a ``lat_min/lat_max/lon_min/lon_max`` box; longitudes are wrapped to −180…180."""
    keys = ("lat_min", "lat_max", "lon_min", "lon_max")
    missing = [k for k in keys if k not in (bbox or {})]
    if missing:
        raise ConfigError.at(
            "data.bbox", f"missing key(s) {', '.join(missing)}; give all of {keys}"
        )
    try:
        lat_min, lat_max, lon_min, lon_max = (float(bbox[k]) for k in keys)
    except (TypeError, ValueError) as exc:
        raise ConfigError.at(
            "data.bbox", f"non-numeric value ({exc}); give degrees as numbers"
        ) from exc
    if not -90.0 <= lat_min < lat_max <= 90.0:
        raise ConfigError.at(
            "data.bbox",
            f"latitudes {lat_min:g}…{lat_max:g} are not an ascending range inside −90…90; "
            "set lat_min < lat_max, both within −90…90",
        )
    if lon_max - lon_min >= 360.0:
        return BBox(lat_min, lat_max, -180.0, 180.0)
    lon_min, lon_max = _wrap_box_lon(lon_min), _wrap_box_lon(lon_max)
    if lon_min >= lon_max:
        raise ConfigError.at(
            "data.bbox",
            f"longitudes {bbox['lon_min']}…{bbox['lon_max']} are not an ascending range "
            "(boxes crossing the antimeridian are not supported); "
            "set lon_min < lon_max in −180…180 (or 0…360)",
        )
    return BBox(lat_min, lat_max, lon_min, lon_max)


def _wrap_box_lon(value: float) -> float:
    return value - 360.0 if value > 180.0 else value
