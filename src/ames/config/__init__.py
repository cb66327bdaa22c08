"""The configuration of a run: ``params.yaml`` loaded (profile applied), parsed and checked.

The lowest layer of ``ames``: it imports nothing of the package but ``ames.errors``.

- ``errors``: :class:`ConfigError`, :func:`unknown_keys`;
- ``loading``: :func:`load_params` (profile overlay), :func:`deep_merge`,
  :func:`derive_seed`, :func:`params_hash`;
- ``reader``: :class:`Reader`, the one reader of values by key path;
- ``sections`` and ``models``: the sections as frozen dataclasses (``models``: the model
  keys of the experts, the gating, the meta-learner and the loss weights);
- ``settings``: :class:`AmesConfig`, :func:`load_config`, :func:`parse_config`.
"""

from ames.config.errors import ConfigError, unknown_keys
from ames.config.loading import (
    DEFAULT_PARAMS,
    deep_merge,
    derive_seed,
    load_params,
    params_hash,
    resolve_profile,
)
from ames.config.models import (
    EXPERT_MODELS,
    GAT_IMPLS,
    GATING_MODES,
    N_EXPERTS,
    RECURRENT_CONVS,
    ConvLstmConfig,
    ExpertModel,
    GatingModel,
    GnnTatConfig,
    HybridConfig,
    LossWeights,
    MetaConfig,
    read_expert_model,
)
from ames.config.reader import Reader
from ames.config.sections import (
    DEFAULT_ARCHITECTURES,
    TERCILES,
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
from ames.config.settings import (
    EXPERT_ARCHITECTURES,
    EXPERT_IDS,
    AmesConfig,
    load_config,
    parse_config,
)

__all__ = [
    "DEFAULT_ARCHITECTURES",
    "DEFAULT_PARAMS",
    "EXPERT_ARCHITECTURES",
    "EXPERT_IDS",
    "EXPERT_MODELS",
    "GATING_MODES",
    "N_EXPERTS",
    "GAT_IMPLS",
    "RECURRENT_CONVS",
    "TERCILES",
    "AmesConfig",
    "BootstrapConfig",
    "ConfigError",
    "ConvLstmConfig",
    "DataConfig",
    "ExpertConfig",
    "ExpertModel",
    "FeaturesConfig",
    "FinetuneConfig",
    "GatingConfig",
    "GatingModel",
    "GnnTatConfig",
    "GraphConfig",
    "HybridConfig",
    "LinearFeatures",
    "LossWeights",
    "MetaConfig",
    "ProbabilisticConfig",
    "Reader",
    "SelectionConfig",
    "SplitConfig",
    "TrainConfig",
    "TrainDefaults",
    "ZoneConfig",
    "deep_merge",
    "derive_seed",
    "load_config",
    "load_params",
    "params_hash",
    "parse_config",
    "read_expert_model",
    "resolve_profile",
    "unknown_keys",
]
