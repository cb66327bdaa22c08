"""Data-parallel training: several processes started by ``torchrun``, one model replica each.

``torchrun --nproc_per_node N stages/train_expert.py ...`` starts N copies of a stage with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in their environment. ``fit`` then joins them in
one process group (:func:`init_from_env`: NCCL for CUDA tensors, gloo for CPU tensors), wraps
the model in ``DistributedDataParallel`` (:func:`data_parallel`) and gives each rank its share
of every global batch of ``batch_size`` samples (:class:`ShardedBatches`), so the gradient
step is the one a single process takes on the whole batch. Without those variables, or with
``WORLD_SIZE=1``, nothing here initialises anything: one process, exactly as before.

Rank 0 writes every file (checkpoints, training state, learning curves, metrics, plots);
the other ranks compute the same things and write nothing (:func:`on_main`). On CUDA each
rank uses ``cuda:LOCAL_RANK`` (:func:`rank_device`).
"""

from __future__ import annotations

import atexit
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, Sampler

logger = logging.getLogger(__name__)

T = TypeVar("T")


# --------------------------------------------------------------------------- the processes


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def launched() -> bool:
    """Whether this process is one of several that ``torchrun`` started (``WORLD_SIZE > 1``)."""
    return _env_int("WORLD_SIZE", 1) > 1


def initialized() -> bool:
    """Whether a process group is running (``init_from_env`` or the caller started one)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes training together (1 without a launch)."""
    return dist.get_world_size() if initialized() else _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's rank, 0 … world_size - 1 (0 without a launch)."""
    return dist.get_rank() if initialized() else _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``): the index of its GPU."""
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """Whether this process writes the files: rank 0, or the only process."""
    return rank() == 0


def backend() -> str:
    """NCCL for CUDA tensors where CUDA is available, gloo for CPU tensors (always)."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init_from_env() -> bool:
    """Join the process group ``torchrun`` describes in the environment, once.

    Returns whether training is data-parallel (a group of more than one process). Without
    a launch it does nothing and returns False. Ranks other than 0 then log only warnings
    and errors: their information lines would repeat rank 0's.
    """
    if initialized():
        return world_size() > 1
    if not launched():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed.")
    if local_rank() < torch.cuda.device_count():  # this rank's GPU, where it has one
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend())
    atexit.register(_shutdown)
    if not is_main_process():
        logging.getLogger().setLevel(logging.WARNING)
    logger.info("data-parallel: %d processes, backend %s", world_size(), backend())
    return True


def _shutdown() -> None:
    if initialized():
        dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """``cuda:LOCAL_RANK`` for a CUDA device under a launch (each rank its own GPU); any other
    device, or any device without a launch, unchanged."""
    if not (device.type == "cuda" and launched()):
        return device
    if local_rank() >= torch.cuda.device_count():
        raise RuntimeError(
            f"data-parallel: LOCAL_RANK {local_rank()} has no GPU of its own (this machine "
            f"shows {torch.cuda.device_count()}); start at most that many processes per node."
        )
    return torch.device("cuda", local_rank())


# --------------------------------------------------------------------------- collectives


def _parallel() -> bool:
    return initialized() and world_size() > 1


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if _parallel():
        # A gather of one CPU number: a barrier on gloo whatever backend CUDA tensors use.
        _gathered([0.0])


def on_main(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)`` on rank 0 only (a write), then every rank waits for it.

    Every rank must reach the call (it ends with a barrier). Returns ``fn``'s value on rank 0
    and None on the others; in one process it just calls ``fn``.
    """
    result = fn(*args, **kwargs) if is_main_process() else None
    barrier()
    return result


def _gathered(values: Sequence[float]) -> list[torch.Tensor]:
    local = torch.tensor(list(values), dtype=torch.float64)
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    return parts


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over the ranks, in float64 and rank order, so every
    rank gets bitwise the same numbers (an early-stopping decision must agree everywhere)."""
    if not _parallel():
        return [float(v) for v in values]
    parts = _gathered(values)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return [float(v) for v in total]


def most_over_ranks(value: int) -> int:
    """The largest ``value`` over the ranks, the same answer everywhere."""
    if not _parallel():
        return value
    return int(max(float(part[0]) for part in _gathered([float(value)])))


def on_every_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank, the same answer everywhere: a branch on a file
    that one rank may write (a cache) must be taken by all ranks or by none."""
    if not _parallel():
        return flag
    return all(float(part[0]) > 0 for part in _gathered([float(flag)]))


def require_same(value: float, what: str) -> None:
    """Raise ``RuntimeError`` unless every rank holds the same ``value`` (e.g. the epoch a
    training resumes after: ranks that read different states cannot train together)."""
    if not _parallel():
        return
    seen = [float(part[0]) for part in _gathered([value])]
    if len(set(seen)) > 1:
        raise RuntimeError(
            f"data-parallel: the ranks disagree on {what} ({seen}); every rank must see the "
            "same files (run the ranks on one machine or on a shared file system)."
        )


def broadcast_module(module: nn.Module) -> None:
    """Give every rank rank 0's floating-point parameters and buffers (in place; the
    integer and boolean buffers of these models are constants every rank builds alike)."""
    if not _parallel():
        return
    for tensor in module.state_dict().values():  # detached tensors sharing the storage
        if tensor.is_floating_point():
            dist.broadcast(tensor, src=0)


# --------------------------------------------------------------------------- model and data


class _DataParallel(DistributedDataParallel):
    """DDP that lends the wrapped model's attributes, so a loss function may read them
    (``model.gating.alpha``) as it does on the bare model."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel``: gradients averaged over the ranks in backward.

    Only parameters with requires_grad at this call are synchronised (``fit`` switches the
    frozen ones off first). ``static_graph``: every step uses the same parameters (true
    of these models within one ``fit``), so a trained parameter that the forward leaves out
    (a switched-off part) keeps no gradient, None as in one process, without the per-step
    graph traversal of ``find_unused_parameters``. Buffers are not re-broadcast at every
    forward: no model here changes one in training (no batch norm), and all ranks build
    them identically.
    """
    return _DataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        static_graph=True,
        **_no_buffer_sync_at_forward(),
    )


def _no_buffer_sync_at_forward() -> dict[str, bool]:
    # torch 2.13 renamed broadcast_buffers (now deprecated) to forward_sync_buffers.
    options = inspect.signature(DistributedDataParallel.__init__).parameters
    name = "forward_sync_buffers" if "forward_sync_buffers" in options else "broadcast_buffers"
    return {name: False}


def share_sizes(total: int, world: int) -> list[int]:
    """How ``total`` samples of one global batch split over ``world`` ranks (sizes differ by
    at most one; the first ranks take the remainder)."""
    base, extra = divmod(total, world)
    return [base + (r < extra) for r in range(world)]


class ShardedBatches(Sampler[list[int]]):
    """This rank's share of each global batch that ``BatchSampler(sampler, batch_size)``
    yields, so the ranks together see exactly the batches one process would.

    The share is a contiguous slice (:func:`share_sizes`). A rank whose share of a small last
    batch is empty gets that batch's first sample instead, with weight 0 (:meth:`weight`):
    every rank must run forward and backward for the gradient all-reduce.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, rank: int, world: int) -> None:
        self.batches = BatchSampler(sampler, batch_size, drop_last=False)
        self.n = len(sampler)  # type: ignore[arg-type]
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        # Lazy, like BatchSampler: DataLoader draws its base seed from the shuffling
        # generator before the first batch, and the permutation must come after that draw.
        for batch in self.batches:
            yield self.share(batch)

    def share(self, batch: list[int]) -> list[int]:
        sizes = share_sizes(len(batch), self.world)
        start = sum(sizes[: self.rank])
        return batch[start : start + sizes[self.rank]] or batch[:1]

    def global_size(self, step: int) -> int:
        """Samples in global batch ``step`` (0-based)."""
        return min(self.batch_size, self.n - step * self.batch_size)

    def count(self, step: int) -> int:
        """This rank's real samples in global batch ``step`` (0 for a stand-in sample)."""
        return share_sizes(self.global_size(step), self.world)[self.rank]

    def weight(self, step: int) -> float:
        """Factor on this rank's mean loss so that DDP's average over the ranks is the mean
        over the global batch: ``count × world / global size`` (1 for equal shares)."""
        return self.count(step) * self.world / self.global_size(step)
