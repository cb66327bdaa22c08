"""The model keys of ``params.yaml`` as frozen dataclasses, checked when the params are read.

Each ``expertN.model`` block is the dataclass of its expert's architecture
(:data:`EXPERT_MODELS`); ``gating`` (apart from ``loss`` and ``training``) is
:class:`GatingModel`; ``gating.loss`` and ``finetune.loss`` are :class:`LossWeights`;
``meta`` is :class:`MetaConfig`. ``ames.models`` builds the modules from them.

Each dataclass lists its bad values with ``problems()``, ``(key, message)`` pairs that
:meth:`ames.config.reader.Reader.check` raises at the key's path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ames.config.reader import Reader

GAT_IMPLS = ("pyg", "dense")
RECURRENT_CONVS = ("separable", "full")
GATING_MODES = ("learned", "equal", "single")
N_EXPERTS = 3

Problems = Iterator[tuple[str, str]]


def _at_least_one(cfg: Any, names: tuple[str, ...]) -> Problems:
    for name in names:
        values = getattr(cfg, name)
        if not all(v >= 1 for v in (values if isinstance(values, tuple) else (values,))):
            yield name, f"{name} must be ≥ 1"


def _shared(cfg: Any) -> Problems:
    """Dropout and linear path, which every expert has."""
    if not 0.0 <= cfg.dropout < 1.0:
        yield "dropout", f"dropout must be in [0, 1), got {cfg.dropout}"
    if not (isinstance(cfg.linear_path, bool) or cfg.linear_path == "ridge"):
        yield "linear_path", f"linear_path must be false, true or ridge, got {cfg.linear_path!r}"


def _gat(cfg: GnnTatConfig | HybridConfig) -> Problems:
    if cfg.gat_hidden % cfg.gat_heads:
        yield (
            "gat_hidden",
            f"gat_hidden % gat_heads must be 0, got {cfg.gat_hidden} % {cfg.gat_heads}",
        )
    if cfg.gat_impl not in GAT_IMPLS:
        yield "gat_impl", f"gat_impl must be one of {GAT_IMPLS}, got {cfg.gat_impl!r}"


def _patch(patch: int, window: int) -> Problems:
    if not (patch >= 1 and window % patch == 0):
        yield (
            "temporal_patch",
            (f"temporal_patch={patch} must be ≥ 1 and divide the input window {window}"),
        )


@dataclass(frozen=True)
class GnnTatConfig:
    """``gnn_tat`` model keys (expert 1). ``gat_impl`` may be left out (``pyg``)."""

    lstm_hidden: int
    lstm_layers: int
    gat_hidden: int
    gat_layers: int
    gat_heads: int
    attention_heads: int
    temporal_patch: int
    dropout: float
    gat_impl: str = "pyg"
    linear_path: bool | str = False

    def problems(self, window: int) -> Problems:
        yield from _at_least_one(
            self, ("lstm_hidden", "lstm_layers", "gat_hidden", "gat_heads", "attention_heads")
        )
        yield from _shared(self)
        yield from _patch(self.temporal_patch, window)
        yield from _gat(self)
        if self.lstm_hidden % self.attention_heads:
            yield "attention_heads", "lstm_hidden % attention_heads must be 0"


@dataclass(frozen=True)
class ConvLstmConfig:
    """``convlstm`` model keys (expert 2). ``hidden`` lists the channels of each ConvLSTM
    layer (one number: one layer).

    ``recurrent_conv: separable`` makes the hidden-to-hidden convolution depthwise 3×3 then
    pointwise 1×1; the input-to-hidden convolution is always a full ``kernel_size`` conv.
    ``full`` is the textbook cell (one dense conv on the hidden state).
    """

    hidden: tuple[int, ...]
    kernel_size: int
    recurrent_conv: str
    temporal_patch: int
    dropout: float
    linear_path: bool | str = False
    tile_cells: int | None = None  # larger grids run in tiles of this many cells (models.tiling)

    def problems(self, window: int) -> Problems:
        yield from _at_least_one(self, ("hidden", "kernel_size"))
        yield from _shared(self)
        yield from _patch(self.temporal_patch, window)
        if self.tile_cells is not None and self.tile_cells < 1:
            yield "tile_cells", f"must be a number of cells >= 1 or null, got {self.tile_cells}"
        if not self.hidden:
            yield "hidden", "hidden must list at least one layer width"
        if self.kernel_size % 2 != 1:
            yield "kernel_size", "kernel_size must be odd"
        if self.recurrent_conv not in RECURRENT_CONVS:
            yield (
                "recurrent_conv",
                (f"recurrent_conv must be one of {RECURRENT_CONVS}, got {self.recurrent_conv!r}"),
            )


@dataclass(frozen=True)
class HybridConfig:
    """``hybrid`` model keys (expert 3). ``recent_months: null`` flattens the whole window;
    ``gat_impl`` may be left out (``pyg``)."""

    recent_months: int | None
    encoder_hidden: int
    conv_hidden: int
    conv_layers: int
    kernel_size: int
    gat_hidden: int
    gat_heads: int
    dropout: float
    gat_impl: str = "pyg"
    linear_path: bool | str = False

    def problems(self, window: int) -> Problems:
        yield from _at_least_one(self, ("encoder_hidden", "conv_hidden", "gat_hidden", "gat_heads"))
        yield from _shared(self)
        if not (self.recent_months is None or 1 <= self.recent_months <= window):
            yield "recent_months", f"recent_months must be null or 1..{window} (the input window)"
        if self.kernel_size % 2 != 1:
            yield "kernel_size", "kernel_size must be odd"
        yield from _gat(self)


ExpertModel = GnnTatConfig | ConvLstmConfig | HybridConfig

# The model keys of each expert architecture, by the name an ``expertN.architecture`` gives
# (``ames.models.experts.EXPERTS`` holds the module of each).
EXPERT_MODELS: dict[str, type[ExpertModel]] = {
    "gnn_tat": GnnTatConfig,
    "convlstm": ConvLstmConfig,
    "hybrid": HybridConfig,
}


def read_expert_model(
    r: Reader, architecture: str, model: Mapping[str, Any], path: str, window: int
) -> ExpertModel:
    """The ``model`` block at ``path`` of an expert of ``architecture``, for input ``window``."""
    if architecture not in EXPERT_MODELS:
        raise r.fail(
            path,
            f"unknown expert architecture {architecture!r}; use one of {', '.join(EXPERT_MODELS)}",
        )
    cfg = r.fields(EXPERT_MODELS[architecture], model, path)
    r.check(cfg.problems(window), path)
    return cfg


@dataclass(frozen=True)
class GatingModel:
    """The ``gating`` keys of the gating network (``ames.models.gating``); ``single_expert``
    is numbered 1..3 like the experts and read in mode ``single`` only."""

    mode: str
    single_expert: int | None = None
    hidden_sizes: tuple[int, ...] = (32, 32)
    dropout: float = 0.2
    alpha_init: float = 0.3
    fixed_alpha: float | None = None  # a number freezes alpha
    prior_scale_m: float = 500.0  # width of the elevation priors

    def problems(self) -> Problems:
        if self.mode not in GATING_MODES:
            yield "mode", f"expected one of {', '.join(GATING_MODES)}, got {self.mode!r}"
        if self.mode == "single" and self.single_expert not in range(1, N_EXPERTS + 1):
            yield "single_expert", f"must be 1, 2 or 3 in mode 'single', got {self.single_expert}"
        yield from _mlp(self.hidden_sizes, self.dropout)
        if not 0.0 < self.alpha_init < 1.0:
            yield "alpha_init", f"must be strictly between 0 and 1, got {self.alpha_init}"
        if self.fixed_alpha is not None and not 0.0 <= self.fixed_alpha <= 1.0:
            yield "fixed_alpha", f"must be in [0, 1] or null, got {self.fixed_alpha}"
        if self.prior_scale_m <= 0:
            yield "prior_scale_m", f"must be > 0, got {self.prior_scale_m}"


@dataclass(frozen=True)
class MetaConfig:
    """The ``meta`` section: the meta-learner (``ames.models.meta``). ``wind_from_deg``: the
    direction the prevailing wind blows from; null takes the dataset's own."""

    enabled: bool
    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    wind_from_deg: float | None = None
    min_slope_deg: float = 0.5
    orographic_init: float = 0.0
    rain_shadow_init: float = 0.0

    def problems(self) -> Problems:
        yield from _mlp(self.hidden_sizes, self.dropout)


def _mlp(hidden_sizes: tuple[int, ...], dropout: float) -> Problems:
    if not all(size >= 1 for size in hidden_sizes):
        yield "hidden_sizes", f"every size must be ≥ 1, got {list(hidden_sizes)}"
    if not 0.0 <= dropout < 1.0:
        yield "dropout", f"must be in [0, 1), got {dropout}"


@dataclass(frozen=True)
class LossWeights:
    """``gating.loss`` / ``finetune.loss``: the weights of the terms added to the MSE
    (``ames.models.ames.ames_loss``); a weight left out is 0."""

    lambda_div: float = 0.0
    lambda_mass: float = 0.0
    lambda_oro: float = 0.0

    def problems(self) -> Problems:
        for name in ("lambda_div", "lambda_mass", "lambda_oro"):
            if getattr(self, name) < 0:
                yield name, f"must be ≥ 0, got {getattr(self, name)}"
