"""The masks-stage graph over valid grid cells, and moving tensors between grid and nodes.

Node ``i`` is the valid cell with flat index ``node_index[i] = lat * n_lon + lon``.
``edge_index[:, e] = (source, target)``: messages flow from source to target (the
torch-geometric convention), so a node attends over the sources of its incoming edges.

Besides the edge list, the graph keeps a padded neighbour table (``neighbors`` [N, K],
one row per target node): column 0 is the node itself with weight 1 (self loops in the
edge list are dropped in favour of it, as GATConv's ``add_self_loops(fill_value=1)``),
then its sources; padding slots point at the node itself and are False in
``neighbor_mask``. Attention layers on this table aggregate with dense reductions instead
of scatters, which is what makes three graph-attention layers over 8 × 3965 nodes
affordable on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ames.masks_io import GRAPH_FILE

SELF_LOOP_WEIGHT = 1.0


class GridGraph(nn.Module):
    """Graph over the valid cells of a ``(n_lat, n_lon)`` grid, held as non-persistent buffers.

    The buffers move with ``.to(device)`` but stay out of ``state_dict``: checkpoints carry
    weights, the graph is always re-read from the masks stage.
    """

    node_index: Tensor
    edge_index: Tensor
    edge_weight: Tensor
    neighbors: Tensor
    neighbor_weight: Tensor
    neighbor_mask: Tensor

    def __init__(
        self,
        node_index: Tensor | np.ndarray,
        edge_index: Tensor | np.ndarray,
        edge_weight: Tensor | np.ndarray,
        grid_shape: tuple[int, int],
    ) -> None:
        super().__init__()
        self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        node_index = torch.as_tensor(np.asarray(node_index), dtype=torch.int64)
        edge_index = torch.as_tensor(np.asarray(edge_index), dtype=torch.int64)
        edge_weight = torch.as_tensor(np.asarray(edge_weight), dtype=torch.float32)
        _check_graph(node_index, edge_index, edge_weight, self.grid_shape)
        neighbors, weight, mask = _neighbor_table(edge_index, edge_weight, len(node_index))
        self.register_buffer("node_index", node_index, persistent=False)
        self.register_buffer("edge_index", edge_index, persistent=False)
        self.register_buffer("edge_weight", edge_weight, persistent=False)
        self.register_buffer("neighbors", neighbors, persistent=False)
        self.register_buffer("neighbor_weight", weight, persistent=False)
        self.register_buffer("neighbor_mask", mask, persistent=False)
        self._batched: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}

    @property
    def n_nodes(self) -> int:
        return int(self.node_index.numel())

    @property
    def n_edges(self) -> int:
        return int(self.edge_weight.numel())

    def valid_mask(self) -> Tensor:
        """Bool ``[n_lat, n_lon]``, True at the cells that are graph nodes."""
        n_lat, n_lon = self.grid_shape
        mask = torch.zeros(n_lat * n_lon, dtype=torch.bool, device=self.node_index.device)
        mask[self.node_index] = True
        return mask.view(n_lat, n_lon)

    def gather_nodes(self, grid: Tensor) -> Tensor:
        """``[B, *F, lat, lon]`` → ``[B, N, *F]`` (use ``.flatten(0, 1)`` for ``[B*N, *F]``)."""
        self._check_grid(grid)
        nodes = grid.flatten(-2).index_select(-1, self.node_index)
        return nodes.movedim(-1, 1)

    def scatter_nodes(self, nodes: Tensor) -> Tensor:
        """``[B, N, *F]`` → ``[B, *F, lat, lon]`` with zeros at cells that are not nodes."""
        if nodes.dim() < 2 or nodes.shape[1] != self.n_nodes:
            raise ValueError(f"expected [B, {self.n_nodes}, ...], got {tuple(nodes.shape)}")
        values = nodes.movedim(1, -1)
        flat = values.new_zeros(*values.shape[:-1], self.grid_shape[0] * self.grid_shape[1])
        return flat.index_copy(-1, self.node_index, values).unflatten(-1, self.grid_shape)

    def receptive_subgraph(self, cells: Tensor, hops: int) -> GridGraph:
        """The subgraph on the nodes whose messages reach a node of ``cells`` within ``hops``
        edges (``cells``: bool ``[lat, lon]``), with every edge between two of them.

        A model whose only coupling between nodes is ``hops`` message-passing layers computes
        the same values at ``cells`` on this subgraph as on the whole graph: a node ``d``
        edges away from ``cells`` is only read up to layer ``hops − d``, and every node closer
        than ``hops`` keeps all its incoming edges. Node order and the neighbour order of each
        node are kept.
        """
        if hops < 0:
            raise ValueError(f"hops must be ≥ 0, got {hops}")
        # built on the CPU (GridGraph reads its arrays through numpy), then moved
        node_index, edge_index = self.node_index.cpu(), self.edge_index.cpu()
        keep = cells.reshape(-1).cpu()[node_index]
        source, target = edge_index
        for _ in range(hops):
            keep[source[keep[target]]] = True
        new_id = torch.full_like(node_index, -1)
        new_id[keep] = torch.arange(int(keep.sum()))
        inside = keep[source] & keep[target]
        return GridGraph(
            node_index[keep],
            new_id[edge_index[:, inside]],
            self.edge_weight.cpu()[inside],
            self.grid_shape,
        ).to(self.node_index.device)

    def batched_edges(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """Block-diagonal ``edge_index [2, B*E]`` and ``edge_weight [B*E]`` for B graph copies.

        Copy ``b`` uses node ids ``b*N … b*N+N-1``, matching ``gather_nodes(x).flatten(0, 1)``.
        The edge list as stored (no self loops added), for torch-geometric layers. Cached per
        batch size and device.
        """
        key = (int(batch_size), str(self.edge_index.device))
        if key not in self._batched:
            offsets = torch.arange(batch_size, device=self.edge_index.device) * self.n_nodes
            edges = (self.edge_index[:, None, :] + offsets[None, :, None]).flatten(1)
            self._batched[key] = (edges, self.edge_weight.repeat(batch_size))
        return self._batched[key]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> GridGraph:
        self._batched = {}  # cached edges live on the old device/dtype
        return super()._apply(fn, recurse)

    def _check_grid(self, grid: Tensor) -> None:
        if tuple(grid.shape[-2:]) != self.grid_shape:
            raise ValueError(
                f"grid tensor ends in {tuple(grid.shape[-2:])}, graph grid is {self.grid_shape}"
            )


@contextmanager
def on_receptive_subgraph(model: nn.Module, cells: Tensor, hops: int) -> Iterator[GridGraph]:
    """Within the block, ``model.graph`` is its ``receptive_subgraph(cells, hops)``; the whole
    graph is put back (on the model's device) afterwards. For models whose nodes interact
    only through ``hops`` message-passing layers: their outputs at ``cells``, and the
    gradients of a loss on them, stay those of the whole graph."""
    full = model.graph
    model.graph = full.receptive_subgraph(cells, hops)
    try:
        yield model.graph
    finally:
        model.graph = full.to(model.graph.node_index.device)


def load_grid_graph(path_npz: str | Path, grid_shape: tuple[int, int]) -> GridGraph:
    """Read ``graph.npz`` from the masks stage (``node_index``, ``edge_index``, ``edge_weight``)."""
    path = Path(path_npz)
    with np.load(path) as data:
        missing = {"node_index", "edge_index", "edge_weight"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}; re-run the masks stage")
        arrays = (data["node_index"], data["edge_index"], data["edge_weight"])
    try:
        return GridGraph(*arrays, grid_shape=grid_shape)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def load_masks_graph(masks_dir: str | Path, grid_shape: tuple[int, int]) -> GridGraph:
    """The masks stage's graph (``<masks_dir>/graph.npz``) on a grid of ``grid_shape``."""
    return load_grid_graph(Path(masks_dir) / GRAPH_FILE, grid_shape)


def _check_graph(
    node_index: Tensor, edge_index: Tensor, edge_weight: Tensor, grid_shape: tuple[int, int]
) -> None:
    n_cells = grid_shape[0] * grid_shape[1]
    n_nodes = node_index.numel()
    if node_index.dim() != 1 or n_nodes == 0:
        raise ValueError("node_index must be a non-empty 1-D array")
    if node_index.min() < 0 or node_index.max() >= n_cells:
        raise ValueError(f"node_index outside the {grid_shape} grid; wrong grid or graph file")
    if not bool((node_index[1:] > node_index[:-1]).all()):
        raise ValueError("node_index must be strictly increasing (row-major valid cells)")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
    if edge_weight.shape != (edge_index.shape[1],):
        raise ValueError("edge_weight must have one value per edge")
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= n_nodes):
        raise ValueError(f"edge_index refers to nodes outside 0..{n_nodes - 1}")
    if not bool(torch.isfinite(edge_weight).all()) or not bool(
        ((edge_weight >= 0) & (edge_weight <= 1)).all()
    ):
        raise ValueError("edge_weight must be finite and in [0, 1]")


def _neighbor_table(
    edge_index: Tensor, edge_weight: Tensor, n_nodes: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Padded incoming-neighbour table: column 0 is the self loop, padding points at self."""
    not_self = edge_index[0] != edge_index[1]
    source, target = edge_index[:, not_self]
    weight = edge_weight[not_self]
    order = torch.argsort(target * n_nodes + source)  # by target, then source: deterministic
    source, target, weight = source[order], target[order], weight[order]
    degree = torch.bincount(target, minlength=n_nodes)
    width = 1 + int(degree.max()) if target.numel() else 1
    start = torch.cumsum(degree, 0) - degree
    column = 1 + torch.arange(target.numel()) - start[target]
    self_ids = torch.arange(n_nodes)
    neighbors = self_ids[:, None].repeat(1, width)
    neighbors[target, column] = source
    table_weight = torch.zeros(n_nodes, width)
    table_weight[:, 0] = SELF_LOOP_WEIGHT
    table_weight[target, column] = weight
    mask = torch.zeros(n_nodes, width, dtype=torch.bool)
    mask[:, 0] = True
    mask[target, column] = True
    return neighbors, table_weight, mask
