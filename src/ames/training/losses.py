"""Batches and the ``compute_loss`` contract: moving, sizing, calling and averaging.

A batch is a dict of tensors (and other values) with a leading batch dimension;
``compute_loss(model, batch)`` returns the scalar loss and named float components.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

Batch = dict[str, Tensor]
LossFn = Callable[[nn.Module, Batch], tuple[Tensor, Mapping[str, float]]]


class RunningMean:
    """Batch-size-weighted running means of the loss and its components."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, loss: float, parts: Mapping[str, Any], n: int) -> None:
        for key, value in {"loss": loss, **parts}.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n
            self.counts[key] = self.counts.get(key, 0) + n

    def means(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/{k}": self.sums[k] / self.counts[k] for k in self.sums}


def to_device(batch: Any, device: torch.device) -> Batch:
    """Move the tensors of a dict batch to ``device`` (non-blocking on CUDA)."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"fit: batches must be dicts of tensors, got {type(batch).__name__}.")
    non_blocking = device.type == "cuda"
    return {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v
        for k, v in batch.items()
    }


def count_samples(batch: Batch) -> int:
    """Number of samples: the leading size of the first tensor that has a dimension."""
    for value in batch.values():
        if isinstance(value, Tensor) and value.ndim > 0:
            return int(value.shape[0])
    raise TypeError("fit: a batch holds no tensor with a batch dimension.")


def grid_cells(batch: Batch) -> int:
    """Grid cells of one sample: the product of the last two sizes of the batch's tensor with
    the most dimensions (``x [B, W, C, lat, lon]``); 1 for a batch of vectors."""
    tensors = [v for v in batch.values() if isinstance(v, Tensor) and v.ndim > 0]
    widest = max(tensors, key=lambda t: t.ndim)
    return int(math.prod(widest.shape[-2:])) if widest.ndim >= 3 else 1


def micro_batches(batch: Batch, max_cells: int | None) -> list[Batch]:
    """``batch`` cut into consecutive micro-batches of at most ``max_cells`` samples × grid
    cells (at least one sample each); the whole batch when it fits or ``max_cells`` is None.

    A loss that is a mean over samples (every AMES loss: each sample counts the same cells)
    has the gradient of the whole batch when each micro-batch's loss is weighted by its
    share of the samples, with one micro-batch's activations in memory at a time."""
    n = count_samples(batch)
    size = n if max_cells is None else max(1, max_cells // grid_cells(batch))
    if size >= n:
        return [batch]
    return [
        {
            k: v[i : i + size] if isinstance(v, Tensor) and v.ndim > 0 else v
            for k, v in batch.items()
        }
        for i in range(0, n, size)
    ]


def call_loss(compute_loss: LossFn, model: nn.Module, batch: Batch) -> tuple[Tensor, dict]:
    """``compute_loss(model, batch)``, checked to be (scalar tensor, components)."""
    out = compute_loss(model, batch)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Tensor)):
        raise TypeError("compute_loss must return (scalar loss tensor, dict of components).")
    loss, parts = out
    if loss.ndim != 0:
        raise ValueError(f"compute_loss must return a scalar loss, got shape {list(loss.shape)}.")
    return loss, dict(parts)


@torch.no_grad()
def mean_losses(
    model: nn.Module,
    compute_loss: LossFn,
    data: Dataset,
    batch_size: int,
    device: torch.device,
    prefix: str,
) -> dict[str, float]:
    """Sample-weighted mean loss and components of ``model`` over ``data`` (no training)."""
    model.eval()
    mean = RunningMean()
    for raw in DataLoader(data, batch_size=batch_size, shuffle=False):
        batch = to_device(raw, device)
        loss, parts = call_loss(compute_loss, model, batch)
        mean.add(loss.item(), parts, count_samples(batch))
    return mean.means(prefix)
