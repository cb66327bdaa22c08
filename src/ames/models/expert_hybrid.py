"""Expert 3, hybrid (medium zone): recent months → conv ‖ graph branch → 1×1 fusion.

Paper-profile parameter count (W = 60, C = 9 with 5 static, H = 12, ``encoder_hidden:
144``; independent of the grid and the graph): 91,724 with ``gat_impl: pyg``, 91,664 with
``dense`` (SPEC ≈ 90 K, +2 %).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ames.config import HybridConfig
from ames.models.graph import GridGraph, on_receptive_subgraph
from ames.models.layers import graph_attention, split_static
from ames.models.linear_path import (
    forecasts_linear_path_only,
    linear_path,
    start_as_linear_path,
)


class HybridExpert(nn.Module):
    """Expert 3, hybrid (medium zone).

    The dynamic channels of the last ``recent_months`` months are flattened per cell with
    the static context and encoded by a 1×1 conv (the temporal encoder); a conv branch
    (``conv_layers`` × k×k conv) and a graph branch (one GAT layer) read the encoding; a
    1×1 conv over both fuses them to H. SPEC §4.2 fixes the branches (hidden 32) but not
    how time enters; in the paper profile the encoder reads all 60 months into 144
    channels, which is what brings the expert to ≈ 90 K parameters.
    """

    def __init__(
        self,
        cfg: HybridConfig,
        n_features: int,
        n_static: int,
        window: int,
        horizon: int,
        graph: GridGraph,
    ) -> None:
        super().__init__()
        self.graph = graph
        self.linear = linear_path(cfg.linear_path, window, horizon)
        self.n_static = n_static
        self.months = window if cfg.recent_months is None else cfg.recent_months
        encoder_in = self.months * (n_features - n_static) + n_static
        self.encoder = nn.Sequential(nn.Conv2d(encoder_in, cfg.encoder_hidden, 1), nn.GELU())
        convs: list[nn.Module] = []
        width = cfg.encoder_hidden
        for _ in range(cfg.conv_layers):
            pad = cfg.kernel_size // 2
            convs += [nn.Conv2d(width, cfg.conv_hidden, cfg.kernel_size, padding=pad), nn.GELU()]
            width = cfg.conv_hidden
        self.conv_branch = nn.Sequential(*convs)
        self.gat = graph_attention(cfg.gat_impl, cfg.encoder_hidden, cfg.gat_hidden, cfg.gat_heads)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fusion = nn.Conv2d(width + cfg.gat_hidden, horizon, 1)
        start_as_linear_path(self.fusion, self.linear)

    def computing_for(self, cells: Tensor) -> AbstractContextManager[GridGraph]:
        """Within the block, the graph branch runs only on ``cells`` (bool ``[lat, lon]``)
        and their sources (one GAT layer; the context yields that subgraph). The outputs at
        ``cells`` and the gradients of a loss on them are those of the whole graph; elsewhere
        the graph features are 0. Stage 1 trains on the zone this way."""
        return on_receptive_subgraph(self, cells, 1)

    def forward(self, x: Tensor) -> Tensor:
        if forecasts_linear_path_only(self, self.fusion):
            return self.linear(x)
        dynamic, static = split_static(x[:, -self.months :], self.n_static)
        encoded = self.encoder(torch.cat([dynamic.flatten(1, 2), static], dim=1))
        spatial = self.conv_branch(encoded)  # [B, conv_hidden, lat, lon]
        nodes = self.graph.gather_nodes(encoded).transpose(0, 1)  # [N, B, enc]
        nodes = F.elu(self.gat(nodes, self.graph)).transpose(0, 1)
        graph_features = self.graph.scatter_nodes(nodes)  # [B, gat_hidden, lat, lon]
        out = self.fusion(self.dropout(torch.cat([spatial, graph_features], dim=1)))
        return out if self.linear is None else out + self.linear(x)
