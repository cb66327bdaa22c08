"""Time one training step (forward + backward + AdamW) and one validation forward per expert.

Full 61 × 65 grid with every cell valid, a synthetic graph with ~12 incoming edges per
node, batch 8. Reports parameter counts, the best and median wall time per batch over
``--reps`` steps (after one warm-up step), and an epoch estimate for ``--train-samples``
training and ``--val-samples`` validation samples.

    python scripts/bench_experts.py                       # default profile
    python scripts/bench_experts.py --profile paper --reps 2
    python scripts/bench_experts.py --params params.yaml  # read the expert sections there
    python scripts/bench_experts.py --set expert1.gat_layers=2 --set window=24
    python scripts/bench_experts.py --experts 1 3 --set expert1.gat_impl=dense \
        --set expert3.gat_impl=dense                      # the dense GAT layer instead of pyg
    python scripts/bench_experts.py --profile both --count-only  # parameter counts only

The model keys come from ``--params`` when given (the profile named by ``--profile``),
otherwise from the proposal below. The machine should be otherwise idle: two torch
threads competing with another busy process on a 2-core machine time out of all
proportion. On glibc, ``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824``
stops fresh 20–30 MB buffers being page-faulted in every step (expert 1: −15–25 %).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import yaml
from bench import with_overrides  # scripts/ is on sys.path when run as a script

from ames.config import resolve_profile
from ames.models.experts import build_expert, zone_masked_mse
from ames.models.graph import synthetic_grid_graph
from ames.models.parameters import count_parameters
from ames.windows import N_CHANNELS as N_FEATURES

HORIZON = 12

PROPOSED: dict[str, dict[str, Any]] = {
    "default": {
        "window": 12,
        "expert1": {
            "lstm_hidden": 16,
            "lstm_layers": 1,
            "gat_hidden": 16,
            "gat_layers": 3,
            "gat_heads": 4,
            "gat_impl": "pyg",
            "attention_heads": 4,
            "temporal_patch": 6,
            "dropout": 0.0,
        },
        "expert2": {
            "hidden": [16, 16],
            "kernel_size": 3,
            "recurrent_conv": "separable",
            "temporal_patch": 4,
            "dropout": 0.0,
        },
        "expert3": {
            "recent_months": None,
            "encoder_hidden": 32,
            "conv_hidden": 32,
            "conv_layers": 2,
            "kernel_size": 3,
            "gat_hidden": 16,
            "gat_heads": 4,
            "gat_impl": "pyg",
            "dropout": 0.0,
        },
    },
    "paper": {
        "window": 60,
        "expert1": {
            "lstm_hidden": 64,
            "lstm_layers": 2,
            "gat_hidden": 64,
            "gat_layers": 3,
            "gat_heads": 4,
            "gat_impl": "pyg",
            "attention_heads": 4,
            "temporal_patch": 1,
            "dropout": 0.1,
        },
        "expert2": {
            "hidden": [64, 64],
            "kernel_size": 3,
            "recurrent_conv": "separable",
            "temporal_patch": 1,
            "dropout": 0.1,
        },
        "expert3": {
            "recent_months": None,
            "encoder_hidden": 144,
            "conv_hidden": 32,
            "conv_layers": 2,
            "kernel_size": 3,
            "gat_hidden": 32,
            "gat_heads": 4,
            "gat_impl": "pyg",
            "dropout": 0.1,
        },
    },
}


def _find_key(tree: Any, key: str) -> Any:
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _profile_from_params(path: str, profile: str) -> dict[str, Any]:
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    params = resolve_profile({**raw, "profile": profile}, path)
    window = _find_key(params, "input_window")
    if window is None:
        raise SystemExit(f"{path}: no 'input_window' key found; pass --set window=W")
    sections = {f"expert{i}": params[f"expert{i}"] for i in (1, 2, 3)}
    # model keys live under ``expertN.model`` (or directly in the section)
    models = {name: section.get("model", section) for name, section in sections.items()}
    return {"window": int(window), **models}


def _time(fn: Callable[[], None], reps: int) -> tuple[float, float, float]:
    """Best and median wall seconds, and mean process CPU seconds, after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), statistics.median(walls), statistics.fmean(cpus)


def bench_profile(name: str, profile: dict[str, Any], args: argparse.Namespace) -> None:
    n_lat, n_lon = args.grid
    valid = np.ones((n_lat, n_lon), dtype=bool)
    graph = synthetic_grid_graph(valid, n_neighbors=12, seed=0)
    window = int(profile["window"])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, window, N_FEATURES, n_lat, n_lon, generator=gen)
    y = torch.randn(args.batch, HORIZON, n_lat, n_lon, generator=gen)
    zone = torch.rand(n_lat, n_lon, generator=gen) < 0.5
    n_train = math.ceil(args.train_samples / args.batch)
    n_val = math.ceil(args.val_samples / args.batch)
    print(
        f"\n[{name}] W={window} batch={args.batch} grid={n_lat}x{n_lon} nodes={graph.n_nodes} "
        f"edges={graph.n_edges} threads={torch.get_num_threads()} reps={args.reps}"
    )
    columns = f" {'train best':>11} {'median':>8} {'cpu':>7} {'val best':>9} {'epoch est':>10}"
    print(f"{'expert':>7} {'params':>8}{'' if args.count_only else columns}")
    for index in args.experts:
        torch.manual_seed(0)
        model = build_expert(
            index,
            profile[f"expert{index}"],
            n_features=N_FEATURES,
            window=window,
            horizon=HORIZON,
            graph=graph,
        )
        if args.count_only:
            print(f"{index:>7} {count_parameters(model):>8,}")
            continue
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)

        def train_step(
            model: torch.nn.Module = model, opt: torch.optim.Optimizer = optimizer
        ) -> None:
            model.train()
            opt.zero_grad(set_to_none=True)
            zone_masked_mse(model(x), y, zone).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        def val_step(model: torch.nn.Module = model) -> None:
            model.eval()
            with torch.no_grad():
                model(x)

        best, median, cpu = _time(train_step, args.reps)
        val_best, _, _ = _time(val_step, args.reps)
        epoch = n_train * best + n_val * val_best
        print(
            f"{index:>7} {count_parameters(model):>8,} {best:>10.3f}s {median:>7.3f}s "
            f"{cpu:>6.3f}s {val_best:>8.3f}s {epoch:>9.1f}s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["default", "paper", "both"], default="default")
    parser.add_argument("--params", help="read window and expert sections from this params.yaml")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. expert1.gat_layers=2"
    )
    parser.add_argument("--experts", type=int, nargs="+", choices=[1, 2, 3], default=[1, 2, 3])
    parser.add_argument("--count-only", action="store_true", help="parameter counts, no timing")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--grid", type=int, nargs=2, default=(61, 65), metavar=("LAT", "LON"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--train-samples", type=int, default=340)
    parser.add_argument("--val-samples", type=int, default=40)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["default", "paper"] if args.profile == "both" else [args.profile]
    for name in names:
        profile = _profile_from_params(args.params, name) if args.params else PROPOSED[name]
        bench_profile(name, with_overrides(profile, args.set), args)


if __name__ == "__main__":
    main()
