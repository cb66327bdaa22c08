"""The sections of ``params.yaml`` as frozen dataclasses: what ``ames.config.settings``
parses into (the model keys are in ``ames.config.models``).

Kept apart from the code that uses them, so that a stage importing the configuration
depends on these definitions only (DVC code dependencies), not on the bootstrap, graph or
zone code that reads a section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ames.config.models import ExpertModel, GatingModel, LossWeights
from ames.config.reader import Reader

MIN_BLOCK_MONTHS = 12
ZONE_MODES = ("fixed", "quantile", "auto")
DEFAULT_MIN_CELLS = 25
TERCILES = (1.0 / 3.0, 2.0 / 3.0)


def _zones_problem(problem: str, fix: str) -> tuple[str, str]:
    """A bad ``zones`` value: ``params.yaml: zones: <problem>. Fix: <fix>.``"""
    return "", f"{problem}. Fix: {fix}."


@dataclass(frozen=True)
class ZoneConfig:
    """The ``zones`` params, validated. Without ``mode`` the SPEC's fixed thresholds apply."""

    mode: str = "fixed"
    high_min_m: float = 3000.0
    low_max_m: float = 2000.0
    min_cells: int = DEFAULT_MIN_CELLS
    quantiles: tuple[float, float] = TERCILES

    @classmethod
    def from_params(cls, zones: Mapping[str, Any], reader: Reader | None = None) -> ZoneConfig:
        r = reader or Reader()
        r.known_keys(zones, "zones", [f.name for f in dataclasses.fields(cls)])
        others = {k: v for k, v in zones.items() if k != "quantiles"}
        pair = _quantile_pair(r, zones.get("quantiles"))
        cfg = r.fields(cls, others, "zones", quantiles=pair)
        r.check(cfg.problems(), "zones")
        return cfg

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.mode not in ZONE_MODES:
            yield _zones_problem(f"mode is {self.mode!r}", f"use one of {', '.join(ZONE_MODES)}")
        if not self.low_max_m < self.high_min_m:
            yield _zones_problem(
                f"low_max_m ({self.low_max_m:g}) is not below high_min_m ({self.high_min_m:g})",
                "set zones.low_max_m < zones.high_min_m",
            )
        if self.min_cells < 1:
            yield _zones_problem(f"min_cells is {self.min_cells}", "use 1 or more")
        low_q, high_q = self.quantiles
        if not 0.0 < low_q < high_q < 1.0:
            yield _zones_problem(
                f"quantiles {list(self.quantiles)} are not 0 < q_low < q_high < 1",
                "give two increasing fractions, e.g. [0.333, 0.667], or null for terciles",
            )


def _quantile_pair(r: Reader, value: Any) -> tuple[float, float]:
    if value is None:
        return TERCILES
    try:
        low_q, high_q = (float(v) for v in value)
    except (TypeError, ValueError):
        raise r.fail(
            "zones",
            f"quantiles is {value!r}. Fix: give two fractions [q_low, q_high], or null for "
            "terciles.",
        ) from None
    return low_q, high_q


@dataclass(frozen=True)
class BootstrapConfig:
    """The ``uncertainty`` section of params.yaml."""

    block_months: int = 12
    n_boot: int = 2000
    level: float = 0.9
    seed: int = 20240611

    @classmethod
    def from_params(
        cls, section: Mapping[str, Any], reader: Reader | None = None
    ) -> BootstrapConfig:
        r = reader or Reader()
        path = "uncertainty"
        r.known_keys(section, path, ["block_months", "n_boot", "level", "bootstrap_seed"])
        cfg = cls(
            block_months=r.integer(section, f"{path}.block_months"),
            n_boot=r.integer(section, f"{path}.n_boot"),
            level=r.number(section, f"{path}.level"),
            seed=r.integer(section, f"{path}.bootstrap_seed"),
        )
        r.check(cfg.problems(), path)
        return cfg

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.block_months < MIN_BLOCK_MONTHS:
            yield (
                "block_months",
                (
                    f"{self.block_months} < {MIN_BLOCK_MONTHS}; blocks shorter than a year split "
                    "the overlap of 12-lead forecasts and the annual cycle of their errors"
                ),
            )
        if not 0.5 <= self.level < 1.0:
            yield "level", f"{self.level} is not in [0.5, 1)"
        if self.n_boot < 100:
            yield "n_boot", f"{self.n_boot} < 100 resamples"


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
    interaction_lags: int = 0

    @property
    def adds_regressors(self) -> bool:
        return (
            bool(self.smoothing_km and self.smoothing_lags)
            or self.loading
            or bool(self.interaction_lags)
        )


@dataclass(frozen=True)
class TrainDefaults:
    """The shared ``train`` block; each stage's ``TrainConfig`` merges its own keys over it."""

    batch_size: int
    lr: float
    device: str
    max_batch_cells: int | None = None  # forecasting loops micro-batch as training does


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (one ``training`` block of params.yaml)."""

    epochs: int
    lr: float
    patience: int | None  # None: never stop early
    batch_size: int
    seed: int
    weight_decay: float = 1e-4
    grad_clip: float | None = 1.0  # global L2 norm; None disables clipping
    min_delta: float = 0.0  # an epoch improves iff val_loss < best - min_delta
    amp: bool = False  # float16 autocast + GradScaler, effective on CUDA only
    device: str = "auto"
    num_workers: int = 0
    live: bool = True  # DVCLive learning curves when fit() gets a live_dir
    keep_last: bool = False  # keep the last epoch's weights, not the best validated ones
    max_batch_cells: int | None = None  # samples x grid cells per forward/backward (micro-batches)
    max_epoch_windows: int | None = None  # training windows drawn per epoch; None: all

    @classmethod
    def from_dict(
        cls,
        values: Mapping[str, Any],
        *,
        path: str = "training",
        reader: Reader | None = None,
        **given: Any,
    ) -> TrainConfig:
        """Read a params mapping; an unknown, missing or bad key fails at its path under
        ``path``. ``given`` are values the caller sets (the derived seed)."""
        r = reader or Reader()
        cfg = r.fields(cls, values, path, **given)
        r.check(cfg.problems(), path)
        return cfg

    def problems(self) -> Iterator[tuple[str, str]]:
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr > 0,
            "patience": self.patience is None or self.patience >= 1,
            "batch_size": self.batch_size >= 1,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "min_delta": self.min_delta >= 0,
            "num_workers": self.num_workers >= 0,
            "max_batch_cells": self.max_batch_cells is None or self.max_batch_cells >= 1,
            "max_epoch_windows": self.max_epoch_windows is None or self.max_epoch_windows >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            yield (
                "",
                (
                    f"invalid value(s) {values}. Expected epochs, batch_size, patience >= 1 "
                    "(patience may be null), lr > 0, grad_clip > 0 or null, weight_decay, "
                    "min_delta, num_workers >= 0, max_batch_cells and max_epoch_windows >= 1 "
                    "or null."
                ),
            )


@dataclass(frozen=True)
class SelectionConfig:
    """``selection`` in params.yaml: how many folds (``ames.selection``), and how sure a fit
    must be to beat climatology (``ames.evaluation.ridge.choose_penalties``)."""

    folds: int
    skill_margin_se: float


# The expert architecture each ``expertN`` section has unless it names another with an
# ``architecture`` key (a key of ``ames.config.models.EXPERT_MODELS``).
DEFAULT_ARCHITECTURES = {"expert1": "gnn_tat", "expert2": "convlstm", "expert3": "hybrid"}


@dataclass(frozen=True)
class ExpertConfig:
    """One ``expertN`` section; ``model`` holds the model keys of its ``architecture``."""

    zone: str
    model: ExpertModel
    training: TrainConfig
    architecture: str

    @property
    def ridge_linear_path(self) -> bool:
        return self.model.linear_path == "ridge"


@dataclass(frozen=True)
class GatingConfig:
    """The ``gating`` section: the gating network's keys (``model``), ``loss``, ``training``."""

    model: GatingModel
    loss: LossWeights
    training: TrainConfig

    @property
    def mode(self) -> str:
        return self.model.mode


@dataclass(frozen=True)
class FinetuneConfig:
    """The ``finetune`` section; ``training.lr`` is already ``lr_scale × train.lr``."""

    lr_scale: float
    loss: LossWeights
    training: TrainConfig


@dataclass(frozen=True)
class ProbabilisticConfig:
    quantiles: tuple[float, ...]
    spread_scale_bounds: tuple[float, float]
    pit_bins: int
    reliability_bins: int
    pit_seed: int
    shrink_to_climatology: bool = True
    spread_floor: bool = True
    calibration_origins: int = 120
    calibration_cells: int | None = 4096  # None: every valid cell


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
