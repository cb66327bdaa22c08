"""Expert 1, GNN-TAT (high zone): per-node LSTM → graph attention → temporal attention.

Paper-profile parameter count (W = 60, C = 9 with 5 static, H = 12; independent of the grid
and the graph): 75,596 with ``gat_impl: pyg``, 75,224 with ``dense`` (SPEC ≈ 64 K, +18 %).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ames.config import GnnTatConfig
from ames.models.graph import GridGraph, on_receptive_subgraph
from ames.models.layers import TemporalAttention, graph_attention, patch_months, split_static
from ames.models.linear_path import (
    forecasts_linear_path_only,
    linear_path,
    start_as_linear_path,
)


class GnnTatExpert(nn.Module):
    """Expert 1, GNN-TAT (high zone).

    Per node: LSTM over the window (dynamic channels of each step, plus the static context)
    → ``gat_layers`` residual GAT layers over the masks graph, starting from the last LSTM
    state → multi-head temporal attention with the GAT output as query over the LSTM
    sequence → linear head on [GAT output, attention context] → H.
    """

    def __init__(
        self,
        cfg: GnnTatConfig,
        n_features: int,
        n_static: int,
        horizon: int,
        graph: GridGraph,
        window: int,
    ) -> None:
        super().__init__()
        self.graph = graph
        self.linear = linear_path(cfg.linear_path, window, horizon)
        self.patch = cfg.temporal_patch
        self.n_static = n_static
        self.lstm = nn.LSTM(
            (n_features - n_static) * cfg.temporal_patch + n_static,
            cfg.lstm_hidden,
            cfg.lstm_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,
        )
        widths = [cfg.lstm_hidden] + [cfg.gat_hidden] * cfg.gat_layers
        self.gat = nn.ModuleList(
            graph_attention(cfg.gat_impl, w_in, w_out, cfg.gat_heads)
            for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.attention = TemporalAttention(widths[-1], cfg.lstm_hidden, cfg.attention_heads)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(widths[-1] + cfg.lstm_hidden, horizon)
        start_as_linear_path(self.head, self.linear)

    def computing_for(self, cells: Tensor) -> AbstractContextManager[GridGraph]:
        """Within the block, compute only on the nodes whose messages reach ``cells`` (bool
        ``[lat, lon]``) through the GAT layers (the context yields that subgraph).

        Nodes interact only in the GAT layers, so the outputs at ``cells`` and the gradients
        of any loss on them are those of the whole graph; other nodes' outputs are the
        linear path alone. Stage 1 trains on the zone this way (the high zone's 315 cells
        are reached from 1,315 of Boyacá's 3,965 nodes).
        """
        return on_receptive_subgraph(self, cells, len(self.gat))

    def _lstm_inputs(self, x: Tensor) -> Tensor:
        """``[B, W, C, lat, lon]`` → node-major ``[N·B, S, features]``."""
        dynamic, static = split_static(x, self.n_static)
        steps = self.graph.gather_nodes(patch_months(dynamic, self.patch))  # [B, N, S, p·Cd]
        static = self.graph.gather_nodes(static).unsqueeze(2)  # [B, N, 1, Cs]
        steps = torch.cat([steps, static.expand(-1, -1, steps.shape[2], -1)], dim=-1)
        return steps.transpose(0, 1).flatten(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        if forecasts_linear_path_only(self, self.head):
            return self.linear(x)
        b = x.shape[0]
        sequence, _ = self.lstm(self._lstm_inputs(x))  # [N·B, S, hidden]
        node = sequence[:, -1].unflatten(0, (-1, b))  # [N, B, hidden]
        for layer in self.gat:
            update = F.elu(layer(node, self.graph))
            node = self.dropout(update + node if update.shape == node.shape else update)
        query = node.flatten(0, 1)
        context = self.attention(query, sequence)
        out = self.head(self.dropout(torch.cat([query, context], dim=-1)))  # [N·B, H]
        out = self.graph.scatter_nodes(out.unflatten(0, (-1, b)).transpose(0, 1))
        return out if self.linear is None else out + self.linear(x)
