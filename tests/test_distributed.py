"""Data-parallel training (ames.training.distributed): two gloo processes on CPU under
``torchrun`` end with the weights one process reaches with the same global batch.

Tolerance: the two runs add the same numbers in another order. One process back-propagates
the mean loss of a batch of 6; two processes each back-propagate the mean of their 3 (or
2 and 1, weighted, in the last batch) and DDP averages the two gradients. That rounds
differently in float32 (about 1e-7 relative per step), and AdamW carries it through the 15
steps: measured, the largest weight difference is 6e-8 (1e-7 relative). The test allows
``atol=1e-6, rtol=1e-5``, and checks that a one-process run with the per-rank batch (3)
lands far outside it (by about 0.1), so the comparison can tell the batches apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ddp_worker  # tests/ddp_worker.py, also the script torchrun starts
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

from ames.training.checkpoints import STATE_FILE
from ames.training.device import select_device
from ames.training.distributed import (
    ShardedBatches,
    init_from_env,
    is_main_process,
    on_every_rank,
    on_main,
    rank,
    rank_device,
    share_sizes,
    sum_over_ranks,
    world_size,
)

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
ATOL, RTOL = 1e-6, 1e-5
LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")


@pytest.fixture
def no_launch(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("world", [None, "1"])
def test_without_a_launch_nothing_is_initialised(no_launch, monkeypatch, world):
    if world is not None:  # torchrun --nproc_per_node 1: one process, as without torchrun
        monkeypatch.setenv("WORLD_SIZE", world)
    assert init_from_env() is False
    assert not dist.is_initialized()
    assert (world_size(), rank(), is_main_process()) == (1, 0, True)
    assert on_main(lambda x: x + 1, 6) == 7
    assert sum_over_ranks([1.5, 2]) == [1.5, 2.0]
    assert on_every_rank(False) is False
    assert rank_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_share_exactly_the_one_process_batches(world, shuffle):
    n, batch = 11, 4

    def sampler():
        gen = torch.Generator().manual_seed(7)
        return RandomSampler(range(n), generator=gen) if shuffle else SequentialSampler(range(n))

    shards = [ShardedBatches(sampler(), batch, r, world) for r in range(world)]
    expected = list(BatchSampler(sampler(), batch, drop_last=False))
    by_rank = [list(s) for s in shards]
    assert all(len(s) == len(expected) for s in shards)
    for step, global_batch in enumerate(expected):
        counts = [s.count(step) for s in shards]
        joined = [i for r in range(world) for i in by_rank[r][step][: counts[r]]]
        assert joined == global_batch
        # DDP averages the ranks' weighted mean losses: with per-sample losses l_i = i that
        # average is the mean over the global batch
        means = [sum(b[step][:c]) / c if c else 0.0 for b, c in zip(by_rank, counts, strict=True)]
        averaged = sum(s.weight(step) * m for s, m in zip(shards, means, strict=True)) / world
        assert averaged == pytest.approx(sum(global_batch) / len(global_batch))


def test_an_empty_share_is_one_stand_in_sample_of_weight_0():
    shards = [ShardedBatches(SequentialSampler(range(5)), 4, r, 3) for r in range(3)]
    assert share_sizes(1, 3) == [1, 0, 0]
    assert [list(s)[1] for s in shards] == [[4], [4], [4]]  # the last batch holds sample 4 only
    assert [s.count(1) for s in shards] == [1, 0, 0]
    assert [s.weight(1) for s in shards] == [3.0, 0.0, 0.0]


def _torchrun(out: Path, processes: int, *worker_args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [
        f"--nproc_per_node={processes}",
        str(TESTS / "ddp_worker.py"),
        str(out),
        *worker_args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(processes)]


def _close(a: dict, b: dict) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=RTOL, atol=ATOL) for k in a)


def test_two_gloo_processes_match_one_process(tmp_path, no_launch):
    ranks = _torchrun(tmp_path / "ddp", 2)
    one = ddp_worker.train(tmp_path / "one")
    assert [r["world"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]
    assert one["world"] == 1
    # each global batch: rank 0's share then rank 1's, together the one-process batch
    assert [a + b for a, b in zip(ranks[0]["seen"], ranks[1]["seen"], strict=True)] == one["seen"]
    assert all(len(a) and len(b) for a, b in zip(ranks[0]["seen"], ranks[1]["seen"], strict=True))
    # the ranks hold bitwise the same weights, close to one process's
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
        torch.testing.assert_close(value, one["state"][key], rtol=RTOL, atol=ATOL)
    assert torch.equal(ranks[0]["state"]["unused"], one["state"]["unused"])  # never stepped
    assert ranks[0]["best_epoch"] == ranks[1]["best_epoch"] == one["best_epoch"]
    for key in ("val/loss", "train/loss", "train/scale"):
        ours = [row.get(key, 0.0) for row in ranks[0]["history"]]
        assert ours == [row.get(key, 0.0) for row in ranks[1]["history"]]  # the same decisions
        assert ours == pytest.approx([row.get(key, 0.0) for row in one["history"]], rel=1e-6)
    # rank 0 wrote the best weights once and removed the training state
    best = torch.load(tmp_path / "ddp" / "run" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(best[k], v) for k, v in ranks[0]["state"].items())
    assert not (tmp_path / "ddp" / "run" / "state" / STATE_FILE).exists()
    # the tolerance tells the global batch apart: one process with the per-rank batch is far
    half = ddp_worker.train(tmp_path / "half", batch_size=ddp_worker.BATCH // 2)
    assert not _close(half["state"], ranks[0]["state"])
    assert _close(one["state"], ranks[0]["state"])


def test_two_gloo_processes_in_micro_batches_match_one_process(tmp_path, no_launch):
    """Each rank cuts its share into micro-batches of 2 samples; the gradients are averaged
    over the ranks once per global batch (``no_sync`` before the last micro-batch)."""
    ranks = _torchrun(tmp_path / "ddp", 2, "2")
    one = ddp_worker.train(tmp_path / "one")
    assert max(len(b) for b in ranks[0]["seen"]) == 2  # the micro-batches the loss saw
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
        torch.testing.assert_close(value, one["state"][key], rtol=RTOL, atol=ATOL)
