"""Parameters of the synthetic precipitation generator (``ames.data.synthetic``).

``DEFAULT_SYNTHETIC_CONFIG`` holds the reference values (``params.yaml`` ``data.synthetic``
mirrors them); ``SyntheticConfig.from_dict`` checks a params block against it: every key
present, monthly keys with 12 values, numbers in their ranges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ames.config import ConfigError

# Reference defaults; params.yaml `data.synthetic` mirrors these.
DEFAULT_SYNTHETIC_CONFIG: dict[str, Any] = {
    "background_mm_month": 208.0,
    "background_scale_height_m": 5000.0,
    "regime_bimodal": [0.3, 0.45, 0.9, 1.55, 1.5, 0.8, 0.6, 0.65, 0.95, 1.65, 1.5, 0.65],
    "regime_unimodal": [0.15, 0.3, 0.65, 1.35, 1.75, 1.85, 1.75, 1.5, 1.3, 1.15, 0.8, 0.35],
    "regime_axis_lat": 5.8,
    "regime_axis_lon": -73.0,
    "regime_axis_azimuth_deg": 38.0,
    "regime_offset_km": 0.0,
    "regime_transition_km": 20.0,
    "wind_from_deg": [65.0, 65.0, 70.0, 80.0, 90.0, 100.0, 100.0, 100.0, 95.0, 85.0, 75.0, 70.0],
    "wind_speed_ms": [8.0, 8.0, 7.5, 6.5, 7.0, 8.5, 9.5, 9.0, 7.5, 6.5, 6.5, 7.5],
    "oro_active_fraction": [
        0.016,
        0.02,
        0.032,
        0.052,
        0.06,
        0.064,
        0.064,
        0.06,
        0.052,
        0.044,
        0.036,
        0.02,
    ],
    "sb_conv_time_s": 1000.0,
    "sb_fall_time_s": 1000.0,
    "sb_moist_stability_per_s": 0.005,
    "sb_vapour_scale_height_m": 3400.0,
    "sb_uplift_sensitivity_kg_m3": 0.013,
    "lee_floor_fraction": 0.75,
    "enso_rho": 0.9,
    "enso_loading_west": 0.13,
    "enso_loading_east": 0.07,
    "anomaly_rho": 0.45,
    "anomaly_std": 0.2,
    "anomaly_corr_length_km": 60.0,
    "noise_std": 0.21,
    "noise_corr_length_km": 15.0,
}


MONTHLY_KEYS = frozenset(
    {"regime_bimodal", "regime_unimodal", "wind_from_deg", "wind_speed_ms", "oro_active_fraction"}
)


def require_exact_keys(
    kind: type, cfg: Mapping[str, Any], section: str, reference: str
) -> list[str]:
    """The field names of dataclass ``kind``; raises unless ``cfg`` has exactly those keys."""
    names = [f.name for f in fields(kind)]
    missing = sorted(set(names) - set(cfg))
    unknown = sorted(set(cfg) - set(names))
    if missing or unknown:
        raise ConfigError.at(
            section,
            f"missing keys {missing}, unknown keys {unknown}; see {reference} for the full set",
        )
    return names


def monthly_values(value: Any, path: str) -> tuple[float, ...]:
    """Twelve numbers, January to December; raises naming ``path`` otherwise."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError.at(path, "needs a list of 12 monthly values")
    if len(value) != 12:
        raise ConfigError.at(path, "needs 12 monthly values")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class SyntheticConfig:
    """Validated generator parameters (see ``DEFAULT_SYNTHETIC_CONFIG`` for values)."""

    background_mm_month: float
    background_scale_height_m: float
    regime_bimodal: tuple[float, ...]
    regime_unimodal: tuple[float, ...]
    regime_axis_lat: float
    regime_axis_lon: float
    regime_axis_azimuth_deg: float
    regime_offset_km: float
    regime_transition_km: float
    wind_from_deg: tuple[float, ...]
    wind_speed_ms: tuple[float, ...]
    oro_active_fraction: tuple[float, ...]
    sb_conv_time_s: float
    sb_fall_time_s: float
    sb_moist_stability_per_s: float
    sb_vapour_scale_height_m: float
    sb_uplift_sensitivity_kg_m3: float
    lee_floor_fraction: float
    enso_rho: float
    enso_loading_west: float
    enso_loading_east: float
    anomaly_rho: float
    anomaly_std: float
    anomaly_corr_length_km: float
    noise_std: float
    noise_corr_length_km: float

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> SyntheticConfig:
        names = require_exact_keys(
            cls, cfg, "data.synthetic", "DEFAULT_SYNTHETIC_CONFIG in ames.data.synthetic_config"
        )
        values: dict[str, Any] = {}
        for name in names:
            value = cfg[name]
            if name in MONTHLY_KEYS:
                values[name] = monthly_values(value, f"data.synthetic.{name}")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = float(value)
            else:
                raise ConfigError.at(f"data.synthetic.{name}", f"needs a number, got {value!r}")
        config = cls(**values)
        config._check_ranges()
        return config

    def _check_ranges(self) -> None:
        for name in ("enso_rho", "anomaly_rho"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError.at(f"data.synthetic.{name}", "must lie in [0, 1)")
        if not 0.0 <= self.lee_floor_fraction <= 1.0:
            raise ConfigError.at("data.synthetic.lee_floor_fraction", "must lie in [0, 1]")
        positive = (
            "background_scale_height_m",
            "regime_transition_km",
            "anomaly_corr_length_km",
            "noise_corr_length_km",
            "sb_vapour_scale_height_m",
        )
        non_negative = (
            "background_mm_month",
            "regime_bimodal",
            "regime_unimodal",
            "wind_speed_ms",
            "oro_active_fraction",
            "enso_loading_west",
            "enso_loading_east",
            "anomaly_std",
            "noise_std",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError.at(f"data.synthetic.{name}", "must be positive")
        for name in non_negative:
            if np.min(getattr(self, name)) < 0:
                raise ConfigError.at(f"data.synthetic.{name}", "must be non-negative")
        for name in ("regime_bimodal", "regime_unimodal"):
            if sum(getattr(self, name)) <= 0:
                raise ConfigError.at(f"data.synthetic.{name}", "needs a positive month")

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
