"""The three AMES experts (SPEC §4.2) and the zone-masked loss they train with.

Every expert maps ``x [B, W, C, lat, lon]`` to ``[B, H, lat, lon]`` in transformed target
units over the whole grid; cells outside the graph get finite values that losses mask out.

- Expert 1, :class:`GnnTatExpert`: per-node LSTM → graph attention → temporal attention.
- Expert 2, :class:`ConvLstmExpert`: stacked ConvLSTM → 1×1 head.
- Expert 3, :class:`HybridExpert`: flattened recent months → conv ‖ graph branch → 1×1 fusion.

The last ``n_static`` input channels (the cell context, constant over the window) enter
each expert once rather than once per month; with ``temporal_patch: 1`` this is the same
function class and parameter count as feeding them every month.

``temporal_patch`` (experts 1 and 2) turns ``p`` consecutive months into one recurrent
step with ``p`` times the dynamic channels. It is 1 in the paper profile; the CPU profile
uses it because recurrent steps over 8 × 3965 cells dominate the cost of an epoch.

``gat_impl`` (experts 1 and 3) picks the graph-attention layer: ``pyg`` is
``torch_geometric.nn.GATConv`` over the graph's batched edge list, ``dense`` the same
function on the padded neighbour table (:class:`GraphAttention`), faster on CPU. Their
weights are laid out differently, so a checkpoint only loads into the ``gat_impl`` it was
trained with.

Paper-profile parameter counts (W = 60, C = 9 with 5 static, H = 12; they do not depend
on the grid or the graph), ``gat_impl: pyg`` (``dense``): expert 1 = 75,596 (75,224;
SPEC ≈ 64 K, +18 %), expert 2 = 203,404 (≈ 180 K, +13 %), expert 3 = 91,724 (91,664)
with ``encoder_hidden: 144`` (≈ 90 K, +2 %). GATConv projects the scalar edge weight to
``heads × head_dim`` features and dots them with ``att_edge``; the dense layer holds the
product, one coefficient per head.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ames.config import ConfigError
from ames.models.graph import SELF_LOOP_WEIGHT, GridGraph
from ames.windows import N_CONTEXT

# ----------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class GnnTatConfig:
    """``expert1`` model keys. ``gat_impl`` may be left out (``pyg``)."""

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


@dataclass(frozen=True)
class ConvLstmConfig:
    """``expert2`` model keys. ``hidden`` lists the channels of each ConvLSTM layer.

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


@dataclass(frozen=True)
class HybridConfig:
    """``expert3`` model keys. ``recent_months: null`` flattens the whole window.

    ``gat_impl`` may be left out (``pyg``).
    """

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


RECURRENT_CONVS = ("separable", "full")
GAT_IMPLS = ("pyg", "dense")
ConfigT = TypeVar("ConfigT", GnnTatConfig, ConvLstmConfig, HybridConfig)


def _read_config(kind: type[ConfigT], cfg: dict[str, Any], section: str) -> ConfigT:
    """Pick the model keys of ``kind`` out of a params section (other keys are ignored)."""
    required = [f.name for f in fields(kind) if f.default is MISSING]
    missing = [name for name in required if name not in cfg]
    if missing:
        raise ConfigError(f"params.yaml: {section} is missing model keys {missing}")
    values = {f.name: cfg[f.name] for f in fields(kind) if f.name in cfg}
    if "hidden" in values:
        hidden = values["hidden"]
        values["hidden"] = tuple(hidden) if isinstance(hidden, list | tuple) else (hidden,)
    return kind(**values)


def _require(condition: bool, section: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"params.yaml: {section}: {message}")


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


# ----------------------------------------------------------------------------------- layers


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


class LinearPath(nn.Module):
    """``linear_path: true``: a linear forecast on the ridge baseline's regressors, added to
    the expert's output so the network only has to learn what is not linear.

    Per cell, the same weights everywhere (a 1×1 convolution): the cell's standardised
    anomaly over the window, the domain-mean anomaly over the window and the sin/cos of the
    origin month (input channels 0, 1, 2–3; see ``ames.windows.window_inputs``) → H leads.
    ``linear_path: true`` starts it at zero and trains it with the rest of the expert;
    ``linear_path: ridge`` fixes it to the ridge regression the expert stage fits on the
    training origins of the expert's zone (``set_weights``), so the network learns the
    residual of the validated linear forecast.
    """

    def __init__(self, window: int, horizon: int, frozen: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(2 * window + 2, horizon, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.proj.requires_grad_(not frozen)

    @torch.no_grad()
    def set_weights(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        """``coef`` ``[H, 2W + 2]`` and ``intercept`` ``[H]`` in ``ridge_features`` order."""
        self.proj.weight.copy_(torch.as_tensor(coef, dtype=torch.float32)[..., None, None])
        self.proj.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, W, C, lat, lon]`` → ``[B, H, lat, lon]``."""
        regressors = torch.cat([x[:, :, 0], x[:, :, 1], x[:, -1, 2:4]], dim=1)
        return self.proj(regressors)


def linear_path(mode: bool | str, window: int, horizon: int) -> LinearPath | None:
    if not mode:
        return None
    if window < 1:
        raise ValueError(f"linear_path needs the input window, got window={window}")
    return LinearPath(window, horizon, frozen=mode == "ridge")


# ---------------------------------------------------------------------------------- experts


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
        window: int = 0,
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

    def _lstm_inputs(self, x: Tensor) -> Tensor:
        """``[B, W, C, lat, lon]`` → node-major ``[N·B, S, features]``."""
        dynamic, static = split_static(x, self.n_static)
        steps = self.graph.gather_nodes(patch_months(dynamic, self.patch))  # [B, N, S, p·Cd]
        static = self.graph.gather_nodes(static).unsqueeze(2)  # [B, N, 1, Cs]
        steps = torch.cat([steps, static.expand(-1, -1, steps.shape[2], -1)], dim=-1)
        return steps.transpose(0, 1).flatten(0, 1)

    def forward(self, x: Tensor) -> Tensor:
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


class ConvLstmExpert(nn.Module):
    """Expert 2, ConvLSTM (low zone): stacked ConvLSTM layers → 1×1 conv head to H channels.

    Paper profile: 2 layers, hidden 64, 3×3 kernels, as in SPEC §4.2. A textbook cell
    (one dense 3×3 conv on ``[input, hidden]`` per layer) has ≈ 464 K parameters; with the
    hidden-to-hidden conv depthwise-separable (``recurrent_conv: separable``, depthwise 3×3
    then 1×1 to the four gates) the expert has ≈ 203 K, inside the ±30 % band of the
    paper's ≈ 180 K. The spatial receptive field per step is unchanged (3×3 on the input
    and on the state). ``recurrent_conv: full`` with ``hidden: [40, 40]`` (≈ 187 K) is the
    textbook alternative.
    """

    def __init__(
        self, cfg: ConvLstmConfig, n_features: int, n_static: int, horizon: int, window: int = 0
    ) -> None:
        super().__init__()
        self.linear = linear_path(cfg.linear_path, window, horizon)
        self.patch = cfg.temporal_patch
        self.n_static = n_static
        widths = [(n_features - n_static) * cfg.temporal_patch, *cfg.hidden]
        self.layers = nn.ModuleList(
            ConvLstmLayer(
                w_in, w_out, cfg.kernel_size, cfg.recurrent_conv, n_static if i == 0 else 0
            )
            for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Conv2d(widths[-1], horizon, 1)

    def forward(self, x: Tensor) -> Tensor:
        dynamic, static = split_static(x, self.n_static)
        sequence = patch_months(dynamic, self.patch)
        for i, layer in enumerate(self.layers):
            sequence = layer(sequence, static if i == 0 else None)
        out = self.head(self.dropout(sequence[:, -1]))
        return out if self.linear is None else out + self.linear(x)


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

    def forward(self, x: Tensor) -> Tensor:
        dynamic, static = split_static(x[:, -self.months :], self.n_static)
        encoded = self.encoder(torch.cat([dynamic.flatten(1, 2), static], dim=1))
        spatial = self.conv_branch(encoded)  # [B, conv_hidden, lat, lon]
        nodes = self.graph.gather_nodes(encoded).transpose(0, 1)  # [N, B, enc]
        nodes = F.elu(self.gat(nodes, self.graph)).transpose(0, 1)
        graph_features = self.graph.scatter_nodes(nodes)  # [B, gat_hidden, lat, lon]
        out = self.fusion(self.dropout(torch.cat([spatial, graph_features], dim=1)))
        return out if self.linear is None else out + self.linear(x)


# ---------------------------------------------------------------------------------- factory


def build_expert(
    index: int,
    cfg: dict[str, Any],
    *,
    n_features: int,
    window: int,
    horizon: int,
    graph: GridGraph,
    n_static: int = N_CONTEXT,
) -> nn.Module:
    """Build expert ``index`` (1, 2 or 3) from its params section (extra keys are ignored).

    ``n_static``: how many trailing input channels are constant over the window (the cell
    context, ``ames.windows.N_CONTEXT``); they enter each expert once, not once per month.
    """
    section = f"expert{index}"
    if not 0 <= n_static < n_features:
        raise ValueError(f"n_static={n_static} must be in 0..{n_features - 1}")
    if index == 1:
        c1 = _read_config(GnnTatConfig, cfg, section)
        _check_sizes(c1, section, ("lstm_hidden", "lstm_layers", "gat_hidden", "gat_heads"))
        _check_patch(c1.temporal_patch, window, section)
        _check_gat(c1, section)
        _require(
            c1.lstm_hidden % c1.attention_heads == 0,
            section,
            "lstm_hidden % attention_heads must be 0",
        )
        return GnnTatExpert(c1, n_features, n_static, horizon, graph, window)
    if index == 2:
        c2 = _read_config(ConvLstmConfig, cfg, section)
        _check_sizes(c2, section, ("hidden", "kernel_size"))
        _check_patch(c2.temporal_patch, window, section)
        _require(len(c2.hidden) >= 1, section, "hidden must list at least one layer width")
        _require(c2.kernel_size % 2 == 1, section, "kernel_size must be odd")
        _require(
            c2.recurrent_conv in RECURRENT_CONVS,
            section,
            f"recurrent_conv must be one of {RECURRENT_CONVS}, got {c2.recurrent_conv!r}",
        )
        return ConvLstmExpert(c2, n_features, n_static, horizon, window)
    if index == 3:
        c3 = _read_config(HybridConfig, cfg, section)
        _check_sizes(c3, section, ("encoder_hidden", "conv_hidden", "gat_hidden", "gat_heads"))
        _require(
            c3.recent_months is None or 1 <= c3.recent_months <= window,
            section,
            f"recent_months must be null or 1..{window} (the input window)",
        )
        _require(c3.kernel_size % 2 == 1, section, "kernel_size must be odd")
        _check_gat(c3, section)
        return HybridExpert(c3, n_features, n_static, window, horizon, graph)
    raise ValueError(f"expert index must be 1, 2 or 3, got {index}")


# ------------------------------------------------------------------------------------- loss


def zone_masked_mse(pred: Tensor, target: Tensor, zone_mask: Tensor) -> Tensor:
    """MSE over cells that are in ``zone_mask`` and have a finite target.

    ``zone_mask`` is a bool tensor broadcastable to ``pred`` (e.g. ``[lat, lon]``). Excluded
    cells contribute exactly zero loss and zero gradient, NaN targets included. Computed in
    float32 (safe under autocast); 0 when no cell counts.
    """
    use = torch.isfinite(target) & zone_mask.to(device=target.device, dtype=torch.bool)
    error = torch.where(use, pred.float() - torch.nan_to_num(target.float()), 0.0)
    return error.square().sum() / use.sum().clamp(min=1)
