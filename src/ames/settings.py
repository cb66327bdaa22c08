"""The typed configuration: ``params.yaml`` parsed and validated once, handed to every stage.

:func:`load_config` reads the file (profile applied by :func:`ames.config.load_params`) and
:func:`parse_config` turns each section into a frozen dataclass, the dataclasses of
``ames.sections`` (with ``TrainConfig`` for each training block).
A bad value is one :class:`~ames.config.ConfigError` naming the file and the key path.
``AmesConfig.raw`` keeps the resolved mapping for what must see it as it is: parameter
hashes and fingerprints, ablation overlays, metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ames.config import (
    DEFAULT_PARAMS,
    ConfigError,
    deep_merge,
    derive_seed,
    load_params,
    unknown_keys,
)
from ames.sections import (
    DEFAULT_ARCHITECTURES,
    EXPERT_ARCHITECTURES,
    BootstrapConfig,
    DataConfig,
    ExpertConfig,
    FeaturesConfig,
    FinetuneConfig,
    GatingConfig,
    GraphConfig,
    LinearFeatures,
    MetaConfig,
    ProbabilisticConfig,
    SplitConfig,
    TrainDefaults,
    ZoneConfig,
)
from ames.selection import SelectionConfig
from ames.training.config import TrainConfig

EXPERT_IDS = tuple(range(1, len(DEFAULT_ARCHITECTURES) + 1))  # expert1, expert2, expert3
TARGET_TRANSFORMS = ("anomaly", "standardized_anomaly", "normalized")
DATA_SOURCES = ("synthetic", "files")
GATING_MODES = ("learned", "equal", "single")


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
    r = _Reader(source)
    seed = r.integer(params, "seed")
    train = r.section(params, "train")
    return AmesConfig(
        raw=params,
        source=source,
        profile=str(params.get("profile", "default")),
        seed=seed,
        seeds=r.integer(params, "seeds", minimum=1),
        data=_data(r, r.section(params, "data")),
        split=_split(r, r.section(params, "split")),
        zones=r.wrapped("zones", lambda: ZoneConfig.from_params(r.section(params, "zones"))),
        graph=_graph(r, r.section(params, "graph")),
        uncertainty=r.wrapped(
            "uncertainty", lambda: BootstrapConfig.from_params(r.section(params, "uncertainty"))
        ),
        probabilistic=_probabilistic(r, r.section(params, "probabilistic")),
        selection=_selection(r, r.section(params, "selection")),
        features=_features(r, r.section(params, "features")),
        linear_features=_linear_features(r, r.section(params, "linear_features")),
        train=_train_defaults(r, train),
        experts=tuple(_expert(r, params, seed, i) for i in EXPERT_IDS),
        gating=_gating(r, params, seed),
        meta=_meta(r, r.section(params, "meta")),
        finetune=_finetune(r, params, seed),
        ablations=dict(params.get("ablations") or {}),
    )


class _Reader:
    """Reads values by key path, raising ``ConfigError`` that names ``source`` and the path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}", path=path, detail=message)

    def value(self, mapping: Mapping[str, Any], path: str) -> Any:
        key = path.rsplit(".", 1)[-1]
        if key not in mapping:
            raise self.fail(path, "missing key")
        return mapping[key]

    def section(self, mapping: Mapping[str, Any], path: str) -> Mapping[str, Any]:
        value = self.value(mapping, path)
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {value!r}")
        return value

    def integer(self, mapping: Mapping[str, Any], path: str, minimum: int | None = None) -> int:
        value = self.value(mapping, path)
        too_small = minimum is not None and isinstance(value, int) and value < minimum
        if isinstance(value, bool) or not isinstance(value, int) or too_small:
            bound = "" if minimum is None else f" >= {minimum}"
            raise self.fail(path, f"expected an integer{bound}, got {value!r}")
        return value

    def number(self, mapping: Mapping[str, Any], path: str) -> float:
        value = self.value(mapping, path)
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise self.fail(path, f"expected a number, got {value!r}") from None

    def choice(self, mapping: Mapping[str, Any], path: str, options: tuple[str, ...]) -> str:
        value = self.value(mapping, path)
        if value not in options:
            raise self.fail(path, f"expected one of {', '.join(options)}, got {value!r}")
        return value

    def known_keys(self, mapping: Mapping[str, Any], path: str, known: list[str]) -> None:
        unknown = sorted(set(mapping) - set(known), key=str)
        if unknown:
            names = unknown_keys(unknown, known)
            raise self.fail(path, f"unknown key(s) {names}; valid: {', '.join(known)}")

    def wrapped(self, path: str, parse: Any) -> Any:
        """Run a section parser; its ``ConfigError`` is re-labelled with this file and the
        key path it carries, any other value or type error with ``path``."""
        try:
            return parse()
        except ConfigError as exc:
            raise self.fail(exc.path or path, exc.detail) from None
        except (ValueError, TypeError) as exc:
            raise self.fail(path, str(exc)) from None
        except KeyError as exc:
            raise self.fail(f"{path}.{exc.args[0]}", "missing key") from None


def _split(r: _Reader, section: Mapping[str, Any]) -> SplitConfig:
    names = ["test_months", "val_months", "horizon"]
    r.known_keys(section, "split", names)
    return SplitConfig(**{n: r.integer(section, f"split.{n}", minimum=1) for n in names})


def _features(r: _Reader, section: Mapping[str, Any]) -> FeaturesConfig:
    r.known_keys(section, "features", ["input_window", "target_transform"])
    return FeaturesConfig(
        input_window=r.integer(section, "features.input_window", minimum=1),
        target_transform=r.choice(section, "features.target_transform", TARGET_TRANSFORMS),
    )


def _linear_features(r: _Reader, section: Mapping[str, Any]) -> LinearFeatures:
    r.known_keys(section, "linear_features", ["smoothing_km", "smoothing_lags", "loading"])
    scales = r.value(section, "linear_features.smoothing_km")
    positive = isinstance(scales, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in scales
    )
    if not positive:
        raise r.fail(
            "linear_features.smoothing_km", f"expected a list of positive km, got {scales!r}"
        )
    loading = r.value(section, "linear_features.loading")
    if not isinstance(loading, bool):
        raise r.fail("linear_features.loading", f"expected true or false, got {loading!r}")
    return LinearFeatures(
        smoothing_km=tuple(float(v) for v in scales),
        smoothing_lags=r.integer(section, "linear_features.smoothing_lags", minimum=0),
        loading=loading,
    )


def _graph(r: _Reader, section: Mapping[str, Any]) -> GraphConfig:
    r.known_keys(section, "graph", [f.name for f in dataclasses.fields(GraphConfig)])
    return GraphConfig(**section)


def _train_defaults(r: _Reader, section: Mapping[str, Any]) -> TrainDefaults:
    return TrainDefaults(
        batch_size=r.integer(section, "train.batch_size", minimum=1),
        lr=r.number(section, "train.lr"),
        device=str(r.value(section, "train.device")),
    )


def _training(
    r: _Reader, params: Mapping[str, Any], seed: int, section: str, **overrides: Any
) -> TrainConfig:
    """Shared ``train`` defaults + the section's ``training`` keys; a seed per section."""
    path = f"{section}.training"
    block = r.section(r.section(params, section), path)
    values = {**params["train"], **block, **overrides}
    values["seed"] = derive_seed(seed, section, "training")
    return r.wrapped(path, lambda: TrainConfig.from_dict(values, path=path))


def _expert(r: _Reader, params: Mapping[str, Any], seed: int, index: int) -> ExpertConfig:
    name = f"expert{index}"
    section = r.section(params, name)
    r.known_keys(section, name, ["zone", "architecture", "model", "training"])
    default = {"architecture": DEFAULT_ARCHITECTURES[name]}
    return ExpertConfig(
        zone=str(r.value(section, f"{name}.zone")),
        model=r.section(section, f"{name}.model"),
        training=_training(r, params, seed, name),
        architecture=r.choice({**default, **section}, f"{name}.architecture", EXPERT_ARCHITECTURES),
    )


def _gating(r: _Reader, params: Mapping[str, Any], seed: int) -> GatingConfig:
    section = r.section(params, "gating")
    return GatingConfig(
        mode=r.choice(section, "gating.mode", GATING_MODES),
        loss=r.section(section, "gating.loss"),
        training=_training(r, params, seed, "gating"),
        model=section,
    )


def _meta(r: _Reader, section: Mapping[str, Any]) -> MetaConfig:
    enabled = r.value(section, "meta.enabled")
    if not isinstance(enabled, bool):
        raise r.fail("meta.enabled", f"expected true or false, got {enabled!r}")
    return MetaConfig(enabled=enabled, model=section)


def _finetune(r: _Reader, params: Mapping[str, Any], seed: int) -> FinetuneConfig:
    section = r.section(params, "finetune")
    lr_scale = r.number(section, "finetune.lr_scale")
    lr = lr_scale * r.number(r.section(params, "train"), "train.lr")
    return FinetuneConfig(
        lr_scale=lr_scale,
        loss=r.section(section, "finetune.loss"),
        training=_training(r, params, seed, "finetune", lr=lr),
    )


def _selection(r: _Reader, section: Mapping[str, Any]) -> SelectionConfig:
    margin = r.number(section, "selection.skill_margin_se")
    if margin < 0:
        raise r.fail("selection.skill_margin_se", f"expected a number >= 0, got {margin!r}")
    return SelectionConfig(
        folds=r.integer(section, "selection.folds", minimum=1), skill_margin_se=margin
    )


def _probabilistic(r: _Reader, section: Mapping[str, Any]) -> ProbabilisticConfig:
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
    switches = {}
    for key in ("shrink_to_climatology", "spread_floor"):
        switches[key] = r.value(section, f"{path}.{key}")
        if not isinstance(switches[key], bool):
            raise r.fail(f"{path}.{key}", f"expected true or false, got {switches[key]!r}")
    return ProbabilisticConfig(
        quantiles=levels,
        spread_scale_bounds=(lo, hi),
        **switches,
        pit_bins=r.integer(section, f"{path}.pit_bins", minimum=1),
        reliability_bins=r.integer(section, f"{path}.reliability_bins", minimum=1),
        pit_seed=r.integer(section, f"{path}.pit_seed"),
    )


def _data(r: _Reader, section: Mapping[str, Any]) -> DataConfig:
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
