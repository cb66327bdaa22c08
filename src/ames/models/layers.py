"""Building blocks shared by the AMES experts (:mod:`ames.models.experts`).

- :func:`split_static` / :func:`patch_months`: the input window's static context and
  ``temporal_patch`` (experts 1 and 2), which turns ``p`` consecutive months into one
  recurrent step with ``p`` times the dynamic channels. It is 1 in the paper profile; the
  CPU profile uses it because recurrent steps over 8 × 3965 cells dominate an epoch.
- Graph attention, picked by ``gat_impl`` (experts 1 and 3): ``pyg`` is
  ``torch_geometric.nn.GATConv`` over the graph's batched edge list
  (:class:`PygGraphAttention`), ``dense`` the same function on the padded neighbour table
  (:class:`GraphAttention`), faster on CPU. Their weights are laid out differently, so a
  checkpoint only loads into the ``gat_impl`` it was trained with. GATConv projects the
  scalar edge weight to ``heads × head_dim`` features and dots them with ``att_edge``; the
  dense layer holds the product, one coefficient per head.
- :class:`TemporalAttention` (expert 1) and :class:`ConvLstmLayer` (expert 2); the
  experts' ``linear_path`` is in :mod:`ames.models.linear_path`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ames.config import GAT_IMPLS
from ames.models.graph import SELF_LOOP_WEIGHT, GridGraph


def split_static(x: Tensor, n_static: int) -> tuple[Tensor, Tensor]:
    """``x [B, W, C, …]`` → dynamic ``[B, W, C−n_static, …]`` and static ``[B, n_static, …]``.

    The last ``n_static`` channels (the cell context) are the same in every month, so the
    experts read them once, from the last month, instead of once per month.
    """
    return x[:, :, : x.shape[2] - n_static], x[:, -1, x.shape[2] - n_static :]


def patch_months(x: Tensor, patch: int) -> Tensor:
    """``[B, W, C, …]`` → ``[B, W/p, p·C, …]``: p consecutive months become one step."""
    if patch == 1:
        return x
    b, w, c = x.shape[:3]
    return x.reshape(b, w // patch, patch * c, *x.shape[3:])


class PygGraphAttention(nn.Module):
    """``gat_impl: pyg``: torch-geometric's GATConv with the edge weight as edge attribute.

    ``heads`` concatenated heads of ``out_features // heads`` channels. GATConv drops the
    self loops of the edge list and adds one per node with weight ``SELF_LOOP_WEIGHT``, as
    the padded neighbour table of :class:`GraphAttention` does.
    """

    def __init__(
        self, in_features: int, out_features: int, heads: int, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        if out_features % heads:
            raise ValueError(f"out_features={out_features} must be divisible by heads={heads}")
        from torch_geometric.nn import GATConv  # 2 s of import, only for gat_impl: pyg

        self.conv = GATConv(
            in_features,
            out_features // heads,
            heads,
            negative_slope=negative_slope,
            edge_dim=1,
            fill_value=SELF_LOOP_WEIGHT,
        )

    def forward(self, x: Tensor, graph: GridGraph) -> Tensor:
        """Node-major ``x [N, B, in]`` → ``[N, B, out]``."""
        n, b, f = x.shape
        edges, weight = graph.batched_edges(b)  # node ids b·N + n
        out = self.conv(x.transpose(0, 1).reshape(b * n, f), edges, weight.unsqueeze(-1))
        return out.view(b, n, -1).transpose(0, 1)


class _ContiguousGradient(torch.autograd.Function):
    """Identity whose backward hands on its gradient contiguous (same values)."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


class GraphAttention(nn.Module):
    """``gat_impl: dense``: graph attention (GAT) with the edge weight as edge attribute.

    Computes the same function as ``torch_geometric.nn.GATConv(in, out // heads, heads,
    edge_dim=1)`` on the graph with unit-weight self loops (checked in the tests), but
    node-major on the graph's padded neighbour table: a dense softmax and sum over the K
    neighbour slots instead of scatters over B·E edges, ~2–3× faster on CPU. GATConv
    projects the scalar edge attribute to ``heads·C`` features and dots them with its
    ``att_edge``; that collapses to the one coefficient per head held in ``att_edge`` here.
    """

    def __init__(
        self, in_features: int, out_features: int, heads: int, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        if out_features % heads:
            raise ValueError(f"out_features={out_features} must be divisible by heads={heads}")
        self.heads = heads
        self.head_dim = out_features // heads
        self.negative_slope = negative_slope
        self.lin = nn.Linear(in_features, out_features, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, self.head_dim))
        self.att_dst = nn.Parameter(torch.empty(heads, self.head_dim))
        self.att_edge = nn.Parameter(torch.zeros(heads))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)

    def forward(self, x: Tensor, graph: GridGraph) -> Tensor:
        """Node-major ``x [N, B, in]`` → ``[N, B, out]``."""
        n, b, _ = x.shape
        k = graph.neighbors.shape[1]
        neighbors = graph.neighbors.reshape(-1)
        # <lin(x), att> per head == x @ (lin.weight folded with att): no reduce over channels
        weight = self.lin.weight.view(self.heads, self.head_dim, -1)
        score_src = x @ torch.einsum("hcf,hc->fh", weight, self.att_src)  # [N, B, heads]
        score_dst = x @ torch.einsum("hcf,hc->fh", weight, self.att_dst)
        padding = torch.zeros_like(graph.neighbor_weight).masked_fill(
            ~graph.neighbor_mask, float("-inf")
        )
        edge = graph.neighbor_weight.unsqueeze(-1) * self.att_edge + padding.unsqueeze(-1)
        logits = score_src.index_select(0, neighbors).view(n, k, b, self.heads)
        logits = logits + (score_dst.unsqueeze(1) + edge.unsqueeze(2))
        alpha = torch.softmax(F.leaky_relu(logits, self.negative_slope), dim=1)  # [N, K, B, h]
        # channels ahead of (batch, head) keeps the innermost axis long in the big products
        h = self.lin(x).view(n, b, self.heads, self.head_dim).permute(0, 3, 1, 2).contiguous()
        messages = h.index_select(0, neighbors).view(n, k, self.head_dim, b, self.heads)
        out = (alpha.unsqueeze(2) * messages).sum(1)  # [N, C, B, heads]
        # the permute below would hand the neighbour sum's backward a gradient in
        # [N, B, heads, C] memory order, on which its broadcast products run ~2x slower
        out = _ContiguousGradient.apply(out)
        return out.permute(0, 2, 3, 1).reshape(n, b, -1) + self.bias


def graph_attention(impl: str, in_features: int, out_features: int, heads: int) -> nn.Module:
    """The ``gat_impl`` layer: ``forward(x [N, B, in], graph) → [N, B, out]``."""
    if impl == "pyg":
        return PygGraphAttention(in_features, out_features, heads)
    if impl == "dense":
        return GraphAttention(in_features, out_features, heads)
    raise ValueError(f"gat_impl must be one of {GAT_IMPLS}, got {impl!r}")


class TemporalAttention(nn.Module):
    """Multi-head attention of one query per node over that node's sequence of states.

    Values are the sequence states themselves, split into heads (no value projection), so
    the context has the sequence's width.
    """

    def __init__(self, query_features: int, sequence_features: int, heads: int) -> None:
        super().__init__()
        if sequence_features % heads:
            raise ValueError(f"sequence width {sequence_features} not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = sequence_features // heads
        self.query = nn.Linear(query_features, sequence_features)
        self.key = nn.Linear(sequence_features, sequence_features)

    def forward(self, query: Tensor, sequence: Tensor) -> Tensor:
        """``query [M, Fq]``, ``sequence [M, S, F]`` → context ``[M, F]``."""
        m, s, f = sequence.shape
        q = self.query(query).view(m, 1, self.heads, self.head_dim)
        k = self.key(sequence).view(m, s, self.heads, self.head_dim)
        v = sequence.view(m, s, self.heads, self.head_dim)
        weights = torch.softmax((q * k).sum(-1) / math.sqrt(self.head_dim), dim=1)
        return (weights.unsqueeze(-1) * v).sum(1).reshape(m, f)


class ConvLstmLayer(nn.Module):
    """One ConvLSTM layer over ``[B, S, C, lat, lon]``, returning every step's hidden state.

    The input convolution runs once over all steps, and the time-invariant ``static``
    input once in all; only the recurrent convolution is sequential.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        kernel_size: int,
        recurrent: str,
        static_channels: int = 0,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.hidden = hidden
        self.input_conv = nn.Conv2d(in_channels, 4 * hidden, kernel_size, padding=pad)
        self.static_conv = (
            nn.Conv2d(static_channels, 4 * hidden, kernel_size, padding=pad, bias=False)
            if static_channels
            else None
        )
        if recurrent == "separable":
            self.recurrent_conv: nn.Module = nn.Sequential(
                nn.Conv2d(hidden, hidden, kernel_size, padding=pad, groups=hidden, bias=False),
                nn.Conv2d(hidden, 4 * hidden, 1, bias=False),
            )
        else:
            self.recurrent_conv = nn.Conv2d(
                hidden, 4 * hidden, kernel_size, padding=pad, bias=False
            )
        with torch.no_grad():  # start with the forget gate open (gate order i, f, o, g)
            self.input_conv.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(self, sequence: Tensor, static: Tensor | None = None) -> Tensor:
        b, s = sequence.shape[:2]
        gates_in = self.input_conv(sequence.flatten(0, 1)).unflatten(0, (b, s))
        if self.static_conv is not None and static is not None:
            gates_in = gates_in + self.static_conv(static).unsqueeze(1)
        states: list[Tensor] = []
        cell: Tensor | None = None
        for gates in gates_in.unbind(1):
            if states:  # the state is zero before the first step
                gates = gates + self.recurrent_conv(states[-1])
            ifo, g = gates.split([3 * self.hidden, self.hidden], dim=1)
            i, f, o = torch.sigmoid(ifo).chunk(3, dim=1)
            cell = i * torch.tanh(g) if cell is None else f * cell + i * torch.tanh(g)
            states.append(o * torch.tanh(cell))
        return torch.stack(states, dim=1)
