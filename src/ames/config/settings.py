"""The typed configuration: ``params.yaml`` parsed and validated once, handed to every stage.

:func:`load_config` reads the file (profile applied by :func:`ames.config.load_params`) and
:func:`parse_config` turns each section into a frozen dataclass, the dataclasses of
``ames.config.sections`` and ``ames.config.models``, every one read by one
:class:`~ames.config.reader.Reader`. A bad value, an unknown or a missing key is one
:class:`~ames.config.ConfigError` naming the file and the key path, raised when the params
are loaded (the expert model checks included), not when a stage builds a model.
``AmesConfig.raw`` keeps the resolved mapping for what must see it as it is: parameter
hashes and fingerprints, ablation overlays, metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ames.config.loading import DEFAULT_PARAMS, deep_merge, derive_seed, load_params
from ames.config.models import (
    EXPERT_MODELS,
    GatingModel,
    LossWeights,
    MetaConfig,
    read_expert_model,
)
from ames.config.reader import Reader
from ames.config.sections import (
    DEFAULT_ARCHITECTURES,
    BootstrapConfig,
    DataConfig,
    ExpertConfig,
    FeaturesConfig,
    FinetuneConfig,
    GatingConfig,
    GraphConfig,
    LinearFeatures,
    ProbabilisticConfig,
    SelectionConfig,
    SplitConfig,
    TrainConfig,
    TrainDefaults,
    ZoneConfig,
)

EXPERT_IDS = tuple(range(1, len(DEFAULT_ARCHITECTURES) + 1))  # expert1, expert2, expert3
TARGET_TRANSFORMS = ("anomaly", "standardized_anomaly", "normalized")
DATA_SOURCES = ("synthetic", "files")
EXPERT_ARCHITECTURES = tuple(EXPERT_MODELS)


@dataclass(frozen=True)
class AmesConfig:
    """Every section stages read, parsed; ``raw`` is the resolved mapping they came from."""

    raw: Mapping[str, Any]
    source: str
    profile: str
    seed: int
    seeds: int
    data: DataConfig
    split: SplitConfig
    zones: ZoneConfig
    graph: GraphConfig
    uncertainty: BootstrapConfig
    probabilistic: ProbabilisticConfig
    selection: SelectionConfig
    features: FeaturesConfig
    linear_features: LinearFeatures
    train: TrainDefaults
    experts: tuple[ExpertConfig, ...]
    gating: GatingConfig
    meta: MetaConfig
    finetune: FinetuneConfig
    ablations: Mapping[str, Mapping[str, Any]]

    def expert(self, index: int) -> ExpertConfig:
        return self.experts[index - 1]

    def with_overlay(self, overlay: Mapping[str, Any]) -> AmesConfig:
        """The configuration with ``overlay`` deep-merged into ``raw``, parsed again."""
        return parse_config(deep_merge(self.raw, overlay), self.source)

    def with_seed(self, seed: int) -> AmesConfig:
        """The same configuration with another model seed (a seed-ensemble member)."""
        return self.with_overlay({"seed": seed})

    def ablation(self, name: str) -> AmesConfig:
        """The configuration without ``ablations``, with ablation ``name`` merged in."""
        if name not in self.ablations:
            raise KeyError(
                f"{self.source}: no ablation {name!r} under 'ablations' "
                f"(have {sorted(self.ablations)})"
            )
        base = {k: v for k, v in self.raw.items() if k != "ablations"}
        return parse_config(deep_merge(base, self.ablations[name] or {}), self.source)


def load_config(path: str | Path = DEFAULT_PARAMS) -> AmesConfig:
    """Read ``path`` (profile applied) and parse every section."""
    return parse_config(load_params(path), str(path))


def parse_config(params: Mapping[str, Any], source: str = "params.yaml") -> AmesConfig:
    """Parse a profile-resolved params mapping; a bad value raises ``ConfigError``."""
    r = Reader(source)
    seed = r.integer(params, "seed")
    train = r.section(params, "train")
    features = _features(r, r.section(params, "features"))
    return AmesConfig(
        raw=params,
        source=source,
        profile=str(params.get("profile", "default")),
        seed=seed,
        seeds=r.integer(params, "seeds", minimum=1),
        data=_data(r, r.section(params, "data")),
        split=_split(r, r.section(params, "split")),
        zones=ZoneConfig.from_params(r.section(params, "zones"), r),
        graph=r.fields(GraphConfig, r.section(params, "graph"), "graph"),
        uncertainty=BootstrapConfig.from_params(r.section(params, "uncertainty"), r),
        probabilistic=_probabilistic(r, r.section(params, "probabilistic")),
        selection=_selection(r, r.section(params, "selection")),
        features=features,
        linear_features=_linear_features(r, r.section(params, "linear_features")),
        train=_train_defaults(r, train),
        experts=tuple(_expert(r, params, seed, i, features.input_window) for i in EXPERT_IDS),
        gating=_gating(r, params, seed),
        meta=_meta(r, r.section(params, "meta")),
        finetune=_finetune(r, params, seed),
        ablations=dict(params.get("ablations") or {}),
    )


def _split(r: Reader, section: Mapping[str, Any]) -> SplitConfig:
    names = ["test_months", "val_months", "horizon"]
    r.known_keys(section, "split", names)
    return SplitConfig(**{n: r.integer(section, f"split.{n}", minimum=1) for n in names})


def _features(r: Reader, section: Mapping[str, Any]) -> FeaturesConfig:
    r.known_keys(section, "features", ["input_window", "target_transform"])
    return FeaturesConfig(
        input_window=r.integer(section, "features.input_window", minimum=1),
        target_transform=r.choice(section, "features.target_transform", TARGET_TRANSFORMS),
    )


def _linear_features(r: Reader, section: Mapping[str, Any]) -> LinearFeatures:
    r.known_keys(
        section,
        "linear_features",
        ["smoothing_km", "smoothing_lags", "loading", "interaction_lags"],
    )
    scales = r.value(section, "linear_features.smoothing_km")
    positive = isinstance(scales, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in scales
    )
    if not positive:
        raise r.fail(
            "linear_features.smoothing_km", f"expected a list of positive km, got {scales!r}"
        )
    return LinearFeatures(
        smoothing_km=tuple(float(v) for v in scales),
        smoothing_lags=r.integer(section, "linear_features.smoothing_lags", minimum=0),
        loading=r.flag(section, "linear_features.loading"),
        interaction_lags=r.integer(section, "linear_features.interaction_lags", minimum=0),
    )


def _train_defaults(r: Reader, section: Mapping[str, Any]) -> TrainDefaults:
    return TrainDefaults(
        batch_size=r.integer(section, "train.batch_size", minimum=1),
        lr=r.number(section, "train.lr"),
        device=str(r.value(section, "train.device")),
        # checked with each stage's training block (TrainConfig), which merges this one
        max_batch_cells=section.get("max_batch_cells"),
    )


def _training(
    r: Reader, params: Mapping[str, Any], seed: int, section: str, **given: Any
) -> TrainConfig:
    """Shared ``train`` defaults + the section's ``training`` keys; a seed per section."""
    path = f"{section}.training"
    block = r.section(r.section(params, section), path)
    seed = derive_seed(seed, section, "training")
    return TrainConfig.from_dict(
        {**params["train"], **block}, path=path, reader=r, seed=seed, **given
    )


def _expert(
    r: Reader, params: Mapping[str, Any], seed: int, index: int, window: int
) -> ExpertConfig:
    name = f"expert{index}"
    section = r.section(params, name)
    r.known_keys(section, name, ["zone", "architecture", "model", "training"])
    default = {"architecture": DEFAULT_ARCHITECTURES[name]}
    architecture = r.choice({**default, **section}, f"{name}.architecture", EXPERT_ARCHITECTURES)
    model = r.section(section, f"{name}.model")
    return ExpertConfig(
        zone=str(r.value(section, f"{name}.zone")),
        model=read_expert_model(r, architecture, model, f"{name}.model", window),
        training=_training(r, params, seed, name),
        architecture=architecture,
    )


def _loss(r: Reader, section: Mapping[str, Any], path: str) -> LossWeights:
    weights = r.fields(LossWeights, r.section(section, path), path)
    r.check(weights.problems(), path)
    return weights


def _gating(r: Reader, params: Mapping[str, Any], seed: int) -> GatingConfig:
    section = r.section(params, "gating")
    network = [f.name for f in dataclasses.fields(GatingModel)]
    r.known_keys(section, "gating", [*network, "loss", "training"])
    model = r.fields(GatingModel, {k: section[k] for k in network if k in section}, "gating")
    r.check(model.problems(), "gating")
    return GatingConfig(
        model=model,
        loss=_loss(r, section, "gating.loss"),
        training=_training(r, params, seed, "gating"),
    )


def _meta(r: Reader, section: Mapping[str, Any]) -> MetaConfig:
    meta = r.fields(MetaConfig, section, "meta")
    r.check(meta.problems(), "meta")
    return meta


def _finetune(r: Reader, params: Mapping[str, Any], seed: int) -> FinetuneConfig:
    section = r.section(params, "finetune")
    r.known_keys(section, "finetune", ["lr_scale", "loss", "training"])
    lr_scale = r.number(section, "finetune.lr_scale")
    lr = lr_scale * r.number(r.section(params, "train"), "train.lr")
    return FinetuneConfig(
        lr_scale=lr_scale,
        loss=_loss(r, section, "finetune.loss"),
        training=_training(r, params, seed, "finetune", lr=lr),
    )


def _selection(r: Reader, section: Mapping[str, Any]) -> SelectionConfig:
    margin = r.number(section, "selection.skill_margin_se")
    if margin < 0:
        raise r.fail("selection.skill_margin_se", f"expected a number >= 0, got {margin!r}")
    return SelectionConfig(
        folds=r.integer(section, "selection.folds", minimum=1), skill_margin_se=margin
    )


def _probabilistic(r: Reader, section: Mapping[str, Any]) -> ProbabilisticConfig:
    path = "probabilistic"
    quantiles = r.value(section, f"{path}.quantiles")
    try:
        levels = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        levels = ()
    if sorted(levels) != list(levels) or not all(0.0 < q < 1.0 for q in levels) or len(levels) < 2:
        raise r.fail(
            f"{path}.quantiles",
            f"expected increasing levels in (0, 1), at least two, got {quantiles}",
        )
    bounds = r.value(section, f"{path}.spread_scale_bounds")
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        lo = hi = 0.0
    if not 0.0 < lo < hi:
        raise r.fail(f"{path}.spread_scale_bounds", f"expected 0 < low < high, got {bounds}")
    switches = {
        key: r.flag(section, f"{path}.{key}") for key in ("shrink_to_climatology", "spread_floor")
    }
    return ProbabilisticConfig(
        quantiles=levels,
        spread_scale_bounds=(lo, hi),
        **switches,
        pit_bins=r.integer(section, f"{path}.pit_bins", minimum=1),
        reliability_bins=r.integer(section, f"{path}.reliability_bins", minimum=1),
        pit_seed=r.integer(section, f"{path}.pit_seed"),
        calibration_origins=r.integer(section, f"{path}.calibration_origins", minimum=12),
        calibration_cells=(
            None
            if r.value(section, f"{path}.calibration_cells") is None
            else r.integer(section, f"{path}.calibration_cells", minimum=1)
        ),
    )


def _data(r: Reader, section: Mapping[str, Any]) -> DataConfig:
    files = section.get("files")
    if files is not None and not isinstance(files, Mapping):
        raise r.fail("data.files", f"expected a mapping, got {files!r}")
    return DataConfig(
        source=r.choice(section, "data.source", DATA_SOURCES),
        dem_file=str(r.value(section, "data.dem_file")),
        bbox=r.section(section, "data.bbox"),
        resolution=r.number(section, "data.resolution"),
        start=str(r.value(section, "data.start")),
        n_months=r.integer(section, "data.n_months", minimum=1),
        synthetic=r.section(section, "data.synthetic"),
        files=files,
    )
