"""Synthetic graph fixture: a stand-in for the masks-stage graph.

Used by the tests.
"""

from __future__ import annotations

import numpy as np

from ames.models.graph import GridGraph


def synthetic_grid_graph(valid: np.ndarray, n_neighbors: int = 12, seed: int = 0) -> GridGraph:
    """A stand-in for the masks graph, for tests.

    Each valid cell receives edges from its valid 8-neighbourhood plus random long-range
    sources up to ``n_neighbors`` in all, with random weights in [0, 1].
    """
    valid = np.asarray(valid, dtype=bool)
    n_lat, n_lon = valid.shape
    node_index = np.flatnonzero(valid)
    node_of_cell = np.full(valid.size, -1, dtype=np.int64)
    node_of_cell[node_index] = np.arange(len(node_index))
    rng = np.random.default_rng(seed)
    lat, lon = np.divmod(node_index, n_lon)
    sources, targets = [], []
    for d_lat in (-1, 0, 1):
        for d_lon in (-1, 0, 1):
            la, lo = lat + d_lat, lon + d_lon
            inside = (d_lat, d_lon) != (0, 0)
            inside &= (la >= 0) & (la < n_lat) & (lo >= 0) & (lo < n_lon)
            src = np.full(len(node_index), -1)
            src[inside] = node_of_cell[la[inside] * n_lon + lo[inside]]
            keep = src >= 0
            sources.append(src[keep])
            targets.append(np.flatnonzero(keep))
    n_local = np.bincount(np.concatenate(targets), minlength=len(node_index))
    n_far = np.clip(n_neighbors - n_local, 0, None)
    far_targets = np.repeat(np.arange(len(node_index)), n_far)
    far_sources = rng.integers(0, len(node_index), size=len(far_targets))
    keep = far_sources != far_targets
    sources.append(far_sources[keep])
    targets.append(far_targets[keep])
    edge_index = np.stack([np.concatenate(sources), np.concatenate(targets)])
    edge_weight = rng.random(edge_index.shape[1]).astype(np.float32)
    return GridGraph(node_index, edge_index, edge_weight, grid_shape=(n_lat, n_lon))
