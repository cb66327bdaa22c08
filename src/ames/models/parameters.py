"""Parameter counts, the one helper every model and report uses."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module``, optionally only those with requires_grad."""
    return count_elements(module.parameters(), trainable_only)


def count_elements(parameters: Iterable[nn.Parameter], trainable_only: bool = False) -> int:
    """Number of elements of ``parameters``, optionally only those with requires_grad."""
    return sum(p.numel() for p in parameters if p.requires_grad or not trainable_only)
