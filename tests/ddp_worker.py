"""One process of the data-parallel test (tests/test_distributed.py): a tiny model through
``fit``, the real engine; each rank saves what it ended with to ``OUT/rank<R>.pt``.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT

Run without ``torchrun`` (or through :func:`train` in-process) it is the one-process run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ames.config import TrainConfig
from ames.training.distributed import rank, world_size
from ames.training.engine import fit

# 27 training samples in global batches of 6: 6, 6, 6, 6, 3, so two ranks share 3 + 3 and
# then 2 + 1 (unequal shares, weighted); 11 validation samples: 6, 5 (3 + 3, 3 + 2).
N_TRAIN, N_VAL, BATCH, EPOCHS = 27, 11, 6, 3


class Indexed(Dataset):
    """y = a fixed nonlinear function of x plus noise; each sample carries its index."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = torch.sin(self.x.sum(1, keepdim=True)) + 0.1 * torch.randn(n, 1, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.x[i], "y": self.y[i], "index": torch.tensor(i)}


class TinyNet(nn.Module):
    """A frozen input layer, a trained head, a scale the loss reads, a parameter never used."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.frozen = nn.Linear(4, 4)
            self.head = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
            self.scale = nn.Parameter(torch.ones(()))
            self.unused = nn.Parameter(torch.ones(3))  # no gradient: AdamW must skip it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.frozen(x))) * self.scale


SEEN: list[list[int]] = []  # the training batches this process computed, in order


def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]):
    if model.training:
        SEEN.append(batch["index"].tolist())
    err = model(batch["x"]) - batch["y"]
    # model.scale through the DDP wrapper, as the AMES loss reads model.gating.alpha
    return err.pow(2).mean(), {"scale": model.scale.item()}


def train(
    root: Path, batch_size: int = BATCH, max_batch_cells: int | None = None
) -> dict[str, Any]:
    """Train TinyNet (all but ``frozen``) into ``root``; return what this process ended with.
    ``max_batch_cells``: samples per micro-batch (the samples are vectors: one cell each)."""
    SEEN.clear()
    model = TinyNet()
    cfg = TrainConfig(
        epochs=EPOCHS,
        lr=0.05,
        patience=None,
        batch_size=batch_size,
        seed=5,
        grad_clip=0.5,
        max_batch_cells=max_batch_cells,
    )
    trainable = [p for name, p in model.named_parameters() if not name.startswith("frozen")]
    result = fit(
        model,
        loss_fn,
        Indexed(N_TRAIN, 1),
        Indexed(N_VAL, 2),
        cfg,
        best_path=root / "best.pt",
        state_dir=root / "state",
        trainable=trainable,
        desc="ddp-test",
    )
    return {
        "world": world_size(),
        "rank": rank(),
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "history": result.history,
        "best_epoch": result.best_epoch,
        "seen": [list(batch) for batch in SEEN],
    }


def main(out: Path, max_batch_cells: int | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.save(train(out / "run", max_batch_cells=max_batch_cells), out / f"rank{rank()}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
