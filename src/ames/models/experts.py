"""The three AMES experts (SPEC §4.2): the registry :data:`EXPERTS` of their architectures
by name (an ``expertN`` section's ``architecture``, by default
``ames.sections.DEFAULT_ARCHITECTURES``), :func:`build_expert` and the checks on their
params; :func:`build_experts`, a run's three; the frozen experts' outputs that stage 2 reads.

Every expert maps ``x [B, W, C, lat, lon]`` to ``[B, H, lat, lon]`` in transformed target
units over the whole grid; cells outside the graph get finite values that losses mask out
(:func:`ames.models.losses.masked_mse`).

- ``gnn_tat`` (expert 1), :class:`~ames.models.expert_gnn_tat.GnnTatExpert`: per-node
  LSTM → graph attention → temporal attention.
- ``convlstm`` (expert 2), :class:`~ames.models.expert_convlstm.ConvLstmExpert`: stacked
  ConvLSTM → 1×1 head.
- ``hybrid`` (expert 3), :class:`~ames.models.expert_hybrid.HybridExpert`: flattened recent
  months → conv ‖ graph branch → 1×1 fusion.

Their shared layers (graph attention and ``gat_impl``, ``temporal_patch``, ConvLSTM layer,
``linear_path``) are in :mod:`ames.models.layers`.

The last ``n_static`` input channels (the cell context, constant over the window) enter
each expert once rather than once per month; with ``temporal_patch: 1`` this is the same
function class and parameter count as feeding them every month.

Paper-profile parameter counts (W = 60, C = 9 with 5 static, H = 12; they do not depend
on the grid or the graph), ``gat_impl: pyg`` (``dense``): expert 1 = 75,596 (75,224;
SPEC ≈ 64 K, +18 %), expert 2 = 203,404 (≈ 180 K, +13 %), expert 3 = 91,724 (91,664)
with ``encoder_hidden: 144`` (≈ 90 K, +2 %).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ames.config import ConfigError, derive_seed
from ames.models.expert_convlstm import ConvLstmConfig, ConvLstmExpert
from ames.models.expert_gnn_tat import GnnTatConfig, GnnTatExpert
from ames.models.expert_hybrid import HybridConfig, HybridExpert
from ames.models.graph import GridGraph
from ames.models.layers import GAT_IMPLS, RECURRENT_CONVS
from ames.models.linear_path import spatial_regressors
from ames.run import RunInputs
from ames.sections import EXPERT_ARCHITECTURES
from ames.settings import EXPERT_IDS, AmesConfig
from ames.windows import N_CHANNELS, N_CONTEXT

ConfigT = TypeVar("ConfigT", GnnTatConfig, ConvLstmConfig, HybridConfig)


def _read_config(kind: type[ConfigT], cfg: Mapping[str, Any], section: str) -> ConfigT:
    """Pick the model keys of ``kind`` out of a params section (other keys are ignored)."""
    required = [f.name for f in fields(kind) if f.default is MISSING]
    missing = [name for name in required if name not in cfg]
    if missing:
        detail = f"missing model keys {missing}"
        raise ConfigError(f"params.yaml: {section} is {detail}", path=section, detail=detail)
    values = {f.name: cfg[f.name] for f in fields(kind) if f.name in cfg}
    if "hidden" in values:
        hidden = values["hidden"]
        values["hidden"] = tuple(hidden) if isinstance(hidden, list | tuple) else (hidden,)
    return kind(**values)


def _require(condition: bool, section: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"params.yaml: {section}: {message}", path=section, detail=message)


def _check_sizes(
    cfg: GnnTatConfig | ConvLstmConfig | HybridConfig, section: str, at_least_one: tuple[str, ...]
) -> None:
    for name in at_least_one:
        values = getattr(cfg, name)
        values = values if isinstance(values, tuple) else (values,)
        _require(all(int(v) >= 1 for v in values), section, f"{name} must be ≥ 1")
    _require(0.0 <= cfg.dropout < 1.0, section, f"dropout must be in [0, 1), got {cfg.dropout}")
    _require(
        isinstance(cfg.linear_path, bool) or cfg.linear_path == "ridge",
        section,
        f"linear_path must be false, true or ridge, got {cfg.linear_path!r}",
    )


def _check_gat(cfg: GnnTatConfig | HybridConfig, section: str) -> None:
    _require(cfg.gat_hidden % cfg.gat_heads == 0, section, "gat_hidden % gat_heads must be 0")
    _require(
        cfg.gat_impl in GAT_IMPLS,
        section,
        f"gat_impl must be one of {GAT_IMPLS}, got {cfg.gat_impl!r}",
    )


def _check_patch(patch: int, window: int, section: str) -> None:
    _require(
        patch >= 1 and window % patch == 0,
        section,
        f"temporal_patch={patch} must be ≥ 1 and divide the input window {window}",
    )


def _check_gnn_tat(c: GnnTatConfig, window: int, section: str) -> None:
    _check_sizes(c, section, ("lstm_hidden", "lstm_layers", "gat_hidden", "gat_heads"))
    _check_patch(c.temporal_patch, window, section)
    _check_gat(c, section)
    _require(
        c.lstm_hidden % c.attention_heads == 0,
        section,
        "lstm_hidden % attention_heads must be 0",
    )


def _check_convlstm(c: ConvLstmConfig, window: int, section: str) -> None:
    _check_sizes(c, section, ("hidden", "kernel_size"))
    _check_patch(c.temporal_patch, window, section)
    _require(len(c.hidden) >= 1, section, "hidden must list at least one layer width")
    _require(c.kernel_size % 2 == 1, section, "kernel_size must be odd")
    _require(
        c.recurrent_conv in RECURRENT_CONVS,
        section,
        f"recurrent_conv must be one of {RECURRENT_CONVS}, got {c.recurrent_conv!r}",
    )


def _check_hybrid(c: HybridConfig, window: int, section: str) -> None:
    _check_sizes(c, section, ("encoder_hidden", "conv_hidden", "gat_hidden", "gat_heads"))
    _require(
        c.recent_months is None or 1 <= c.recent_months <= window,
        section,
        f"recent_months must be null or 1..{window} (the input window)",
    )
    _require(c.kernel_size % 2 == 1, section, "kernel_size must be odd")
    _check_gat(c, section)


@dataclass(frozen=True)
class ExpertKind:
    """One expert architecture: its model keys (``config``), their checks, its module, and
    how the module is constructed from the keys and the run's shapes."""

    config: type
    module: type[nn.Module]
    check: Callable[[Any, int, str], None]  # (config, window, section)
    construct: Callable[..., nn.Module]  # (config, n_features, n_static, window, horizon, graph)


EXPERTS: dict[str, ExpertKind] = {
    "gnn_tat": ExpertKind(
        GnnTatConfig,
        GnnTatExpert,
        _check_gnn_tat,
        lambda c, features, static, window, horizon, graph: GnnTatExpert(
            c, features, static, horizon, graph, window
        ),
    ),
    "convlstm": ExpertKind(
        ConvLstmConfig,
        ConvLstmExpert,
        _check_convlstm,
        lambda c, features, static, window, horizon, graph: ConvLstmExpert(
            c, features, static, horizon, window
        ),
    ),
    "hybrid": ExpertKind(
        HybridConfig,
        HybridExpert,
        _check_hybrid,
        lambda c, features, static, window, horizon, graph: HybridExpert(
            c, features, static, window, horizon, graph
        ),
    ),
}
assert tuple(EXPERTS) == EXPERT_ARCHITECTURES  # the names ames.settings accepts


def build_expert(
    architecture: str,
    cfg: Mapping[str, Any],
    *,
    n_features: int,
    window: int,
    horizon: int,
    graph: GridGraph,
    n_static: int = N_CONTEXT,
    section: str | None = None,
) -> nn.Module:
    """Build an expert of ``architecture`` (a key of :data:`EXPERTS`) from its params
    section's model keys (extra keys are ignored); errors name ``section`` (default: the
    architecture).

    ``n_static``: how many trailing input channels are constant over the window (the cell
    context, ``ames.windows.N_CONTEXT``); they enter each expert once, not once per month.
    """
    section = section or architecture
    if architecture not in EXPERTS:
        detail = f"unknown expert architecture {architecture!r}; use one of {', '.join(EXPERTS)}"
        raise ConfigError(f"params.yaml: {section}: {detail}", path=section, detail=detail)
    if not 0 <= n_static < n_features:
        raise ValueError(f"n_static={n_static} must be in 0..{n_features - 1}")
    kind = EXPERTS[architecture]
    config = _read_config(kind.config, cfg, section)
    kind.check(config, window, section)
    return kind.construct(config, n_features, n_static, window, horizon, graph)


def build_experts(cfg: AmesConfig, run: RunInputs, graph: GridGraph) -> list[nn.Module]:
    """The three experts with their params-defined architecture (untrained); a linear path
    reads the run's standardised anomalies and forecasts in the run's target units."""
    stats = run.masks.stats
    units = run.transform.standardized_anomaly_units(stats["clim_mean"], stats["clim_std"])
    experts = []
    for index in EXPERT_IDS:
        section = f"expert{index}"
        torch.manual_seed(derive_seed(cfg.seed, section, "init"))
        experts.append(
            build_expert(
                cfg.expert(index).architecture,
                cfg.expert(index).model,
                n_features=N_CHANNELS,
                window=run.window,
                horizon=run.horizon,
                graph=graph,
                section=section,
            )
        )
        if experts[-1].linear is not None:
            experts[-1].linear.set_units(*units)
            if cfg.linear_features.adds_regressors:
                experts[-1].linear.add_spatial(spatial_regressors(cfg, run))
    return experts


def expert_forecast_mm(expert: nn.Module, run: RunInputs):
    """mm/month forecast of one expert; negative amounts are clipped to 0 (precipitation ≥ 0)."""
    transform = run.transform

    def forecast(batch: dict[str, Tensor]) -> Tensor:
        return transform.to_mm(expert(batch["x"]), batch["target_month"]).clamp_min(0.0)

    return forecast


class WithExpertOutputs(Dataset):
    """A window dataset plus the frozen experts' outputs, computed once and kept in memory."""

    def __init__(self, base: Dataset, experts: Tensor) -> None:
        self.base = base
        self.experts = experts

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = dict(self.base[index])
        item["experts"] = self.experts[index]
        return item


@torch.no_grad()
def precompute_expert_outputs(
    experts: list[nn.Module], dataset: Dataset, batch_size: int, device: torch.device
) -> Tensor:
    """``[S, 3, H, lat, lon]`` outputs (transformed units) of frozen experts, on the CPU."""
    outputs = []
    for expert in experts:
        expert.eval().to(device)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x = batch["x"].to(device)
        outputs.append(torch.stack([e(x) for e in experts], dim=1).float().cpu())
    return torch.cat(outputs)
