"""The three AMES experts (SPEC §4.2): the registry :data:`EXPERTS` of their architectures
by name (an ``expertN`` section's ``architecture``, by default
``ames.config.DEFAULT_ARCHITECTURES``), :func:`build_expert` from the model keys that
``ames.config`` read and checked (``ames.config.EXPERT_MODELS``); :func:`build_experts`, a
run's three; the frozen experts' outputs that stage 2 reads.

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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ames.config import EXPERT_IDS, EXPERT_MODELS, AmesConfig, ExpertModel, derive_seed
from ames.io import SampleFile
from ames.models.expert_convlstm import ConvLstmExpert
from ames.models.expert_gnn_tat import GnnTatExpert
from ames.models.expert_hybrid import HybridExpert
from ames.models.graph import GridGraph
from ames.models.linear_path import spatial_regressors
from ames.run import RunInputs
from ames.training.losses import micro_batches
from ames.windows import N_CHANNELS, N_CONTEXT


@dataclass(frozen=True)
class ExpertKind:
    """One expert architecture: its module, and how the module is constructed from its model
    keys (``ames.config.EXPERT_MODELS``) and the run's shapes."""

    module: type[nn.Module]
    construct: Callable[..., nn.Module]  # (config, n_features, n_static, window, horizon, graph)


EXPERTS: dict[str, ExpertKind] = {
    "gnn_tat": ExpertKind(
        GnnTatExpert,
        lambda c, features, static, window, horizon, graph: GnnTatExpert(
            c, features, static, horizon, graph, window
        ),
    ),
    "convlstm": ExpertKind(
        ConvLstmExpert,
        lambda c, features, static, window, horizon, graph: ConvLstmExpert(
            c, features, static, horizon, window
        ),
    ),
    "hybrid": ExpertKind(
        HybridExpert,
        lambda c, features, static, window, horizon, graph: HybridExpert(
            c, features, static, window, horizon, graph
        ),
    ),
}
assert tuple(EXPERTS) == tuple(EXPERT_MODELS)  # the names ames.config accepts


def build_expert(
    architecture: str,
    cfg: ExpertModel,
    *,
    n_features: int,
    window: int,
    horizon: int,
    graph: GridGraph,
    n_static: int = N_CONTEXT,
    section: str | None = None,
) -> nn.Module:
    """Build an expert of ``architecture`` (a key of :data:`EXPERTS`) from its model keys,
    read and checked for this ``window`` by ``ames.config.read_expert_model``.

    ``n_static``: how many trailing input channels are constant over the window (the cell
    context, ``ames.windows.N_CONTEXT``); they enter each expert once, not once per month.
    """
    if not isinstance(cfg, EXPERT_MODELS.get(architecture, ())):
        raise TypeError(
            f"{section or architecture}: {type(cfg).__name__} is not the model "
            f"keys of expert architecture {architecture!r}"
        )
    if not 0 <= n_static < n_features:
        raise ValueError(f"n_static={n_static} must be in 0..{n_features - 1}")
    construct = EXPERTS[architecture].construct
    return construct(cfg, n_features, n_static, window, horizon, graph)


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
    """A window dataset plus the frozen experts' outputs, computed once: a tensor in memory,
    or anything indexed by sample that gives an array (``ames.io.SampleFile``, on disk).
    With ``rows``, window ``i`` reads the outputs' sample ``rows[i]`` (a subset of them)."""

    def __init__(
        self, base: Dataset, experts: Tensor | SampleFile, rows: Sequence[int] | None = None
    ) -> None:
        self.rows = list(range(len(experts))) if rows is None else [int(r) for r in rows]
        if len(self.rows) != len(base):
            raise ValueError(f"{len(self.rows)} expert forecasts for {len(base)} windows")
        self.base = base
        self.experts = experts

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = dict(self.base[index])
        item["experts"] = torch.as_tensor(self.experts[self.rows[index]])
        return item


@torch.no_grad()
def expert_output_batches(
    experts: list[nn.Module],
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    max_batch_cells: int | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """``(first sample, [B, 3, H, lat, lon])`` of frozen experts over ``dataset`` in order,
    in transformed units, on the CPU; each expert runs on micro-batches of at most
    ``max_batch_cells`` samples × grid cells (``train.max_batch_cells``)."""
    for expert in experts:
        expert.eval().to(device)
    start = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        pieces = micro_batches({"x": batch["x"]}, max_batch_cells)
        out = torch.cat(
            [
                torch.stack([e(p["x"].to(device)) for e in experts], dim=1).float().cpu()
                for p in pieces
            ]
        )
        yield start, out
        start += len(out)


def precompute_expert_outputs(
    experts: list[nn.Module],
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    max_batch_cells: int | None = None,
) -> Tensor:
    """``[S, 3, H, lat, lon]`` outputs (transformed units) of frozen experts, on the CPU."""
    outputs: Tensor | None = None  # filled in place: a list then torch.cat would hold it twice
    batches = expert_output_batches(experts, dataset, batch_size, device, max_batch_cells)
    for start, out in batches:
        if outputs is None:
            outputs = torch.empty((len(dataset), *out.shape[1:]), dtype=out.dtype)
        outputs[start : start + len(out)] = out
    if outputs is None:
        raise ValueError("no windows to forecast")
    return outputs
