"""The sections of ``params.yaml`` as frozen dataclasses: what ``ames.settings`` parses into.

Kept apart from the code that uses them, so that a stage importing the configuration
depends on these definitions only (DVC code dependencies), not on the bootstrap, graph or
zone code that reads a section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ames.config import ConfigError
from ames.training.config import TrainConfig

MIN_BLOCK_MONTHS = 12
ZONE_MODES = ("fixed", "quantile", "auto")
DEFAULT_MIN_CELLS = 25
TERCILES = (1.0 / 3.0, 2.0 / 3.0)


def _zones_error(problem: str, fix: str) -> ConfigError:
    """A bad ``zones`` value: ``params.yaml (zones): <problem>. Fix: <fix>.``"""
    return ConfigError.at("zones", f"{problem}. Fix: {fix}.")


@dataclass(frozen=True)
class ZoneConfig:
    """The ``zones`` params, validated. Without ``mode`` the SPEC's fixed thresholds apply."""

    mode: str = "fixed"
    high_min_m: float = 3000.0
    low_max_m: float = 2000.0
    min_cells: int = DEFAULT_MIN_CELLS
    quantiles: tuple[float, float] = TERCILES

    @classmethod
    def from_params(cls, zones: Mapping[str, Any]) -> ZoneConfig:
        known = {"mode", "high_min_m", "low_max_m", "min_cells", "quantiles"}
        unknown = sorted(set(zones) - known)
        if unknown:
            raise _zones_error(f"unknown key(s) {', '.join(unknown)}", f"use only {sorted(known)}")
        cfg = cls(
            mode=str(zones.get("mode", "fixed")),
            high_min_m=float(zones.get("high_min_m", 3000.0)),
            low_max_m=float(zones.get("low_max_m", 2000.0)),
            min_cells=int(zones.get("min_cells", DEFAULT_MIN_CELLS)),
            quantiles=_quantile_pair(zones.get("quantiles")),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.mode not in ZONE_MODES:
            raise _zones_error(f"mode is {self.mode!r}", f"use one of {', '.join(ZONE_MODES)}")
        if not self.low_max_m < self.high_min_m:
            raise _zones_error(
                f"low_max_m ({self.low_max_m:g}) is not below high_min_m ({self.high_min_m:g})",
                "set zones.low_max_m < zones.high_min_m",
            )
        if self.min_cells < 1:
            raise _zones_error(f"min_cells is {self.min_cells}", "use 1 or more")
        low_q, high_q = self.quantiles
        if not 0.0 < low_q < high_q < 1.0:
            raise _zones_error(
                f"quantiles {list(self.quantiles)} are not 0 < q_low < q_high < 1",
                "give two increasing fractions, e.g. [0.333, 0.667], or null for terciles",
            )


def _quantile_pair(value: Any) -> tuple[float, float]:
    if value is None:
        return TERCILES
    try:
        low_q, high_q = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise _zones_error(
            f"quantiles is {value!r}",
            "give two fractions [q_low, q_high], or null for terciles",
        ) from exc
    return low_q, high_q


@dataclass(frozen=True)
class BootstrapConfig:
    """The ``uncertainty`` section of params.yaml."""

    block_months: int = 12
    n_boot: int = 2000
    level: float = 0.9
    seed: int = 20240611

    @classmethod
    def from_params(cls, section: Mapping[str, Any]) -> BootstrapConfig:
        cfg = cls(
            block_months=int(section["block_months"]),
            n_boot=int(section["n_boot"]),
            level=float(section["level"]),
            seed=int(section["bootstrap_seed"]),
        )
        if cfg.block_months < MIN_BLOCK_MONTHS:
            raise ConfigError.at(
                "uncertainty.block_months",
                f"{cfg.block_months} < {MIN_BLOCK_MONTHS}; blocks shorter than a year split "
                "the overlap of 12-lead forecasts and the annual cycle of their errors",
            )
        if not 0.5 <= cfg.level < 1.0:
            raise ConfigError.at("uncertainty.level", f"{cfg.level} is not in [0.5, 1)")
        if cfg.n_boot < 100:
            raise ConfigError.at("uncertainty.n_boot", f"{cfg.n_boot} < 100 resamples")
        return cfg


@dataclass(frozen=True)
class GraphConfig:
    k_spatial: int = 8
    max_neighbors: int = 12
    corr_min: float = 0.7
    corr_radius_km: float = 40.0
    elev_tol_m: float = 500.0
    length_scale_km: float = 10.0


@dataclass(frozen=True)
class SplitConfig:
    test_months: int
    val_months: int
    horizon: int


@dataclass(frozen=True)
class FeaturesConfig:
    input_window: int
    target_transform: str


@dataclass(frozen=True)
class LinearFeatures:
    """The ``linear_features`` section: regressors of the experts' linear path beyond the
    ``ridge`` baseline's (``ames.models.linear_path``). The defaults add none."""

    smoothing_km: tuple[float, ...] = ()
    smoothing_lags: int = 0
    loading: bool = False

    @property
    def adds_regressors(self) -> bool:
        return bool(self.smoothing_km and self.smoothing_lags) or self.loading


@dataclass(frozen=True)
class TrainDefaults:
    """The shared ``train`` block; each stage's ``TrainConfig`` merges its own keys over it."""

    batch_size: int
    lr: float
    device: str


# The expert architectures ``ames.models.experts.EXPERTS`` builds, by name, and the one each
# ``expertN`` section has unless it names another with an ``architecture`` key.
EXPERT_ARCHITECTURES = ("gnn_tat", "convlstm", "hybrid")
DEFAULT_ARCHITECTURES = {"expert1": "gnn_tat", "expert2": "convlstm", "expert3": "hybrid"}


@dataclass(frozen=True)
class ExpertConfig:
    """One ``expertN`` section; ``model`` is the mapping ``build_expert`` checks for the
    expert ``architecture`` (a key of ``ames.models.experts.EXPERTS``)."""

    zone: str
    model: Mapping[str, Any]
    training: TrainConfig
    architecture: str

    @property
    def ridge_linear_path(self) -> bool:
        return self.model.get("linear_path") == "ridge"


@dataclass(frozen=True)
class GatingConfig:
    """The ``gating`` section; ``model`` is the mapping ``build_gating`` picks its keys from."""

    mode: str
    loss: Mapping[str, Any]
    training: TrainConfig
    model: Mapping[str, Any]


@dataclass(frozen=True)
class MetaConfig:
    enabled: bool
    model: Mapping[str, Any]


@dataclass(frozen=True)
class FinetuneConfig:
    """The ``finetune`` section; ``training.lr`` is already ``lr_scale × train.lr``."""

    lr_scale: float
    loss: Mapping[str, Any]
    training: TrainConfig


@dataclass(frozen=True)
class ProbabilisticConfig:
    quantiles: tuple[float, ...]
    spread_scale_bounds: tuple[float, float]
    pit_bins: int
    reliability_bins: int
    pit_seed: int
    shrink_to_climatology: bool = False
    spread_floor: bool = True


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section; ``synthetic`` and ``files`` are checked where they are used."""

    source: str
    dem_file: str
    bbox: Mapping[str, Any]
    resolution: float
    start: str
    n_months: int
    synthetic: Mapping[str, Any]
    files: Mapping[str, Any] | None
