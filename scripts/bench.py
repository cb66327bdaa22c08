"""Training speed of each expert and of fine-tuning, on the pipeline's own data.

For every training stage of the default profile (experts 1–3 with their zone-masked loss,
fine-tuning of the whole AMES model with its physics losses) and for two settings measured
in the same run, ``current`` (params.yaml, glibc's allocator keeping freed memory as the
stages do, see ``ames.allocator``) and ``previous`` (params.yaml with ``--previous``
overrides, default: torch-geometric's ``GATConv``, ``gat_impl: pyg``; experts on the whole
graph; the allocator as it comes), each stage and setting in a fresh process:

* seconds per training step (forward + backward + AdamW, data loading included) and per
  validation batch, the median of ``--steps`` after five warm-up steps;
* seconds per epoch (steps per epoch × step time + validation batches × batch time), which
  matches the ``epoch …: … Ns`` lines ``dvc repro`` logs, and samples per second;
* FLOPs per training sample (``torch.utils.flop_counter``: matrix products and convolutions,
  forward and backward; elementwise work is not counted) and the fraction of this machine's
  float32 matmul throughput (a 2048² product, measured in the same run) that the step
  achieves.

    dvc repro masks                 # the data and masks the stages read
    python scripts/bench.py         # table on stdout
    python scripts/bench.py --steps 10 --json bench.json
    python scripts/bench.py --previous expert2.model.temporal_patch=2

The machine should be otherwise idle: timings on a 2-core machine shared with another busy
process mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from ames.allocator import keep_freed_memory
from ames.config import AmesConfig, load_config, parse_config
from ames.models.experts import build_experts
from ames.models.graph import load_masks_graph
from ames.models.losses import masked_mse
from ames.paths import DATASET, MASKS
from ames.run import RunInputs, load_run_inputs
from ames.workflows.ames_model import assemble_model, loss_fn, physics_context
from ames.workflows.expert import zone_computation

STAGES = ("expert1", "expert2", "expert3", "finetune")
WARMUP_STEPS = 5  # with glibc's allocator as it comes, the first ~3 steps are up to 2.5x slower
PREVIOUS = ("expert1.model.gat_impl=pyg", "expert3.model.gat_impl=pyg")


def with_overrides(cfg: AmesConfig, overrides: list[str]) -> AmesConfig:
    """``section.key=value`` (value parsed as YAML) applied to a copy of ``cfg``, parsed again."""
    out = copy.deepcopy(dict(cfg.raw))
    for item in overrides:
        key, _, value = item.partition("=")
        *path, leaf = key.split(".")
        target = out
        for part in path:
            target = target[part]
        target[leaf] = yaml.safe_load(value)
    return parse_config(out, cfg.source)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(size: int = 2048, reps: int = 5) -> float:
    """Best float32 matmul throughput of this process (GFLOP/s)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def training_model(
    cfg: AmesConfig, run: RunInputs, stage: str
) -> tuple[torch.nn.Module, Callable[[torch.nn.Module, dict], torch.Tensor], torch.Tensor | None]:
    """The network a stage trains, its loss, freshly initialised as the stage does, and the
    cells that loss reads (None: all)."""
    experts = build_experts(cfg, run, load_masks_graph(MASKS, run.masks.valid.shape))
    if stage == "finetune":
        model = assemble_model(cfg, run, experts)
        compute = loss_fn(cfg.finetune.loss, physics_context(run))
        return model, lambda net, batch: compute(net, batch)[0], None
    index = int(stage.removeprefix("expert"))
    zone = torch.from_numpy(run.zones[cfg.expert(index).zone])
    loss = lambda net, batch: masked_mse(net(batch["x"]), batch["y"], zone)  # noqa: E731
    return experts[index - 1], loss, zone


def batches(run: RunInputs, split: str, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    loader = DataLoader(
        run.windows(split),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    while True:
        yield from loader


def median_seconds(fn: Callable[[], None], steps: int, warmup: int = WARMUP_STEPS) -> float:
    for _ in range(warmup):  # allocator (glibc adapts its mmap threshold), oneDNN primitives
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_stage(
    cfg: AmesConfig,
    run: RunInputs,
    stage: str,
    steps: int,
    peak_gflops: float,
    zone_only: bool,
) -> dict[str, Any]:
    """Time ``stage``; ``zone_only``: an expert computes only what its zone loss reads, as
    stage 1 does (``zone_computation``), else on the whole graph, as before that existed."""
    model, loss, zone = training_model(cfg, run, stage)
    restricted = zone_only and zone is not None
    with zone_computation(model, zone, stage) if restricted else nullcontext():
        return _time_steps(model, loss, cfg, run, steps, peak_gflops)


def _time_steps(
    model: torch.nn.Module,
    loss: Callable[[torch.nn.Module, dict], torch.Tensor],
    cfg: AmesConfig,
    run: RunInputs,
    steps: int,
    peak_gflops: float,
) -> dict[str, Any]:
    batch_size = cfg.train.batch_size
    params_trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params_trained, lr=1e-3, weight_decay=1e-4)
    train, val = batches(run, "train", batch_size), batches(run, "val", batch_size)

    def train_step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss(model, next(train)).backward()
        torch.nn.utils.clip_grad_norm_(params_trained, 1.0)
        optimizer.step()

    def val_step() -> None:
        model.eval()
        with torch.no_grad():
            loss(model, next(val))

    with FlopCounterMode(display=False) as counter:
        model.train()
        loss(model, next(train)).backward()
    flops_per_sample = counter.get_total_flops() / batch_size
    step_s = median_seconds(train_step, steps)
    val_s = median_seconds(val_step, steps)
    n_train = math.ceil(len(run.windows("train")) / batch_size)
    n_val = math.ceil(len(run.windows("val")) / batch_size)
    return {
        "parameters": sum(p.numel() for p in params_trained),
        "train_step_s": round(step_s, 4),
        "val_batch_s": round(val_s, 4),
        "epoch_s": round(n_train * step_s + n_val * val_s, 2),
        "samples_per_s": round(batch_size / step_s, 2),
        "gflop_per_sample": round(flops_per_sample / 1e9, 3),
        "matmul_fraction": round(flops_per_sample * batch_size / step_s / 1e9 / peak_gflops, 4),
    }


def bench_in_fresh_process(
    cfg: AmesConfig,
    stage: str,
    steps: int,
    peak_gflops: float,
    current: bool,
    threads: int,
) -> dict[str, Any]:
    """``bench_stage`` in a new process, so that one setting's allocator state and
    warm caches do not carry over to the next; ``current`` also keeps freed memory."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_bench_child, cfg, stage, steps, peak_gflops, current, threads).result()


def _bench_child(
    cfg: AmesConfig, stage: str, steps: int, peak_gflops: float, current: bool, threads: int
) -> dict[str, Any]:
    if current:
        keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    run = load_run_inputs(cfg, DATASET, MASKS)
    return bench_stage(cfg, run, stage, steps, peak_gflops, zone_only=current)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--previous", nargs="*", default=list(PREVIOUS), metavar="KEY=VALUE")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as is)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    current = load_config(args.params)
    # previous: the overrides, experts on the whole graph (before zone_computation), and the
    # allocator as it comes (before ames.allocator)
    settings = {
        "previous": (with_overrides(current, args.previous), False),
        "current": (current, True),
    }
    load_run_inputs(current, DATASET, MASKS)  # a missing input fails here, before any child
    peak = matmul_gflops()
    print(
        f"{cpu_name()}, {torch.get_num_threads()} torch "
        f"threads, float32 matmul {peak:.1f} GFLOP/s; previous = {' '.join(args.previous)}"
    )
    header = f"{'stage':>9} {'setting':>9} {'params':>8} {'step s':>7} {'epoch s':>8}"
    print(header + f" {'samples/s':>9} {'GFLOP/sample':>12} {'of matmul':>9} {'speed-up':>8}")
    results: dict[str, Any] = {
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "matmul_gflops": round(peak, 1),
        "previous": args.previous,
    }
    for stage in args.stages:
        rows = {
            name: bench_in_fresh_process(cfg, stage, args.steps, peak, is_current, args.threads)
            for name, (cfg, is_current) in settings.items()
        }
        speedup = rows["previous"]["epoch_s"] / rows["current"]["epoch_s"]
        results[stage] = {**rows, "epoch_speedup": round(speedup, 2)}
        for name, row in rows.items():
            print(
                f"{stage:>9} {name:>9} {row['parameters']:>8,} {row['train_step_s']:>7.3f} "
                f"{row['epoch_s']:>8.1f} {row['samples_per_s']:>9.1f} "
                f"{row['gflop_per_sample']:>12.3f} {row['matmul_fraction']:>9.1%}"
                + (f" {speedup:>7.2f}x" if name == "current" else "")
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
