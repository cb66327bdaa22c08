"""Which parameters ``fit`` trains: the chosen ones, the frozen sub-modules, autograd off
for the rest while it runs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from torch import nn


def resolve_trainable(
    model: nn.Module, trainable: Iterable[nn.Parameter] | None
) -> list[tuple[str, nn.Parameter]]:
    named = list(model.named_parameters())
    if trainable is None:
        chosen = [(n, p) for n, p in named if p.requires_grad]
    else:
        wanted = {id(p) for p in trainable}
        chosen = [(n, p) for n, p in named if id(p) in wanted]
        if len(chosen) != len(wanted):
            raise ValueError("fit: `trainable` holds tensors that are not parameters of the model.")
    if not chosen:
        raise ValueError("fit: nothing to train (no trainable parameters).")
    return chosen


def frozen_modules(model: nn.Module, trainable_ids: set[int]) -> list[nn.Module]:
    """Sub-modules that own parameters of which none is trained."""
    return [
        m
        for m in model.modules()
        if next(m.parameters(), None) is not None
        and not any(id(p) in trainable_ids for p in m.parameters())
    ]


@contextmanager
def requires_grad_only(model: nn.Module, trainable_ids: set[int]) -> Iterator[None]:
    """Switch autograd off for frozen parameters (no wasted backward), restore afterwards."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(id(p) in trainable_ids)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
