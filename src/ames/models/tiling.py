"""Spatial tiles with a halo: a grid-to-grid network run tile by tile, so that its peak
memory follows the tile, not the domain.

A network whose output at a cell reads only the inputs within ``halo`` cells of it (its
receptive radius; zero padding at the grid's edge) gives the same output when it runs on
a crop of the grid that holds the cell's tile plus ``halo`` cells on every side (clipped at
the domain's edge, where the crop's zero padding is the domain's): the values the crop's
own edge corrupts travel inward one kernel reach per convolution and stop short of the
tile. The tiles' outputs, cut to their tiles and put back together, are the whole-grid
output to float rounding (tests/test_tiling.py).

While autograd records, each tile runs under activation checkpointing: the forward keeps
only the tile's input and output, and the backward recomputes one tile's activations at a
time, so the gradients are the whole grid's with one tile's activations in memory, for
one more forward pass of compute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class Tile:
    """One tile along one axis: ``core`` (the cells it outputs) inside ``crop`` (``core``
    plus the halo, clipped to the axis); ``inner`` is ``core`` in the crop's indices."""

    core: slice
    crop: slice

    @property
    def inner(self) -> slice:
        return slice(self.core.start - self.crop.start, self.core.stop - self.crop.start)


def axis_tiles(n: int, tile: int, halo: int) -> list[Tile]:
    """Split ``n`` cells into ``ceil(n / tile)`` tiles of near-equal size, each with its
    halo of ``halo`` cells on either side (clipped to ``0 .. n``)."""
    if tile < 1 or halo < 0:
        raise ValueError(f"tile must be >= 1 and halo >= 0, got tile={tile}, halo={halo}")
    count = -(-n // tile)
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [
        Tile(slice(a, b), slice(max(0, a - halo), min(n, b + halo)))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def needs_tiles(shape: tuple[int, int], tile_cells: int | None) -> bool:
    """Whether a grid of ``shape`` (lat, lon) holds more than ``tile_cells`` cells (None:
    never)."""
    return tile_cells is not None and shape[0] * shape[1] > tile_cells


def tile_side(tile_cells: int) -> int:
    """The side of the square tiles of at most ``tile_cells`` cells."""
    return max(1, math.isqrt(tile_cells))


def tiled(network: Callable[[Tensor], Tensor], x: Tensor, tile: int, halo: int) -> Tensor:
    """``network(x)`` computed tile by tile over the last two axes of ``x`` and put back
    together; ``network`` maps ``[..., lat, lon]`` to ``[..., lat, lon]`` and reads no
    input farther than ``halo`` cells from each output cell (module doc)."""
    n_lat, n_lon = x.shape[-2:]
    record = torch.is_grad_enabled()
    rows = []
    for row in axis_tiles(n_lat, tile, halo):
        pieces = []
        for col in axis_tiles(n_lon, tile, halo):
            crop = x[..., row.crop, col.crop]
            out = checkpoint(network, crop, use_reentrant=False) if record else network(crop)
            pieces.append(out[..., row.inner, col.inner])
        rows.append(torch.cat(pieces, dim=-1))
    return torch.cat(rows, dim=-2)
