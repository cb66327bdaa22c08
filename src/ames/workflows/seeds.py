"""Seed ensemble: the whole model (experts, gating, fine-tuning) trained once per model seed.

``seeds: N`` in params.yaml trains N members from the same data with model seeds
``seed, seed + 1, …, seed + N − 1``. Member 0 (``seed``) is the main chain
(``expert@1..3 → gating → finetune``, checkpoints in ``models/``); the ``seed_members``
stage trains the others into ``models/members/seed<S>/``. The forecast the pipeline
evaluates and ships (hindcast, inference) is the mean of the members' forecasts in
mm/month; each member is also scored alone, so headline scores come as mean ± sd over seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ames.config import EXPERT_IDS, AmesConfig
from ames.io import read_json, write_json
from ames.paths import (
    FINAL_CHECKPOINT,
    MEMBERS,
    MEMBERS_MANIFEST,
    MODELS,
    STAGE2_CHECKPOINT,
    expert_checkpoint,
)
from ames.run import RunInputs
from ames.training.distributed import on_main
from ames.workflows.ames_model import (
    checkpoint_epoch,
    checkpoint_expert_by_lead,
    finetune,
    load_ames_model,
    train_gating,
)
from ames.workflows.context import RunContext
from ames.workflows.evaluate import model_test_forecasts
from ames.workflows.expert import train_expert

log = logging.getLogger("ames.seeds")

SEED_SCORE_KEYS = ("pooled_r2", "percell_r2", "rmse", "mae", "msess")


def member_seeds(cfg: AmesConfig) -> list[int]:
    """Model seeds of the ensemble; the first is the main chain's ``seed``."""
    return [cfg.seed + k for k in range(cfg.seeds)]


def member_dir(seed: int, models_dir: Path = MODELS) -> Path:
    return models_dir / MEMBERS / f"seed{seed}"


def train_member(ctx: RunContext, seed: int) -> dict[str, Any]:
    """Stages 1–3 with model seed ``seed``, into ``ctx.models_dir/members/seed<S>``; training
    state stays resumable outside the output (``ctx.state_root/members/seed<S>``)."""
    start = time.perf_counter()
    member = ctx.with_config(ctx.cfg.with_seed(seed)).in_folder(
        member_dir(seed, ctx.models_dir), ctx.state_root / MEMBERS / f"seed{seed}"
    )
    experts = {}
    for index in EXPERT_IDS:
        log.info("seed %d: expert %d", seed, index)
        kept = checkpoint_epoch(expert_checkpoint(index, ctx.models_dir))  # the main chain's
        metrics = train_expert(member, index, epochs=kept)
        experts[f"expert{index}"] = {
            "best_epoch": metrics["best_epoch"],
            "val_in_zone_msess": metrics["val"]["in_zone"]["msess"],
        }
    log.info("seed %d: gating", seed)
    # the epochs of every stage and the leads given to an expert alone are the main chain's,
    # decided once by its folds
    stage2 = ctx.models_dir / STAGE2_CHECKPOINT
    _, gating = train_gating(
        member, epochs=checkpoint_epoch(stage2), expert_by_lead=checkpoint_expert_by_lead(stage2)
    )
    log.info("seed %d: finetune", seed)
    _, final = finetune(member, epochs=checkpoint_epoch(ctx.models_dir / FINAL_CHECKPOINT))
    return {
        "experts": experts,
        "gating_best_epoch": gating.get("best_epoch"),
        "finetune_best_epoch": final["best_epoch"],
        "alpha": final["alpha"],
        "val_msess": final["val"]["overall"]["msess"],
        "time_s": round(time.perf_counter() - start, 1),
    }


def train_members(ctx: RunContext) -> dict[str, Any]:
    """Train every member but the first; write the manifest ``evaluate`` checks against."""
    start = time.perf_counter()
    seeds = member_seeds(ctx.cfg)
    root = ctx.models_dir / MEMBERS
    root.mkdir(parents=True, exist_ok=True)
    members = {str(seed): train_member(ctx, seed) for seed in seeds[1:]}
    on_main(write_json, root / MEMBERS_MANIFEST, {"base_seed": seeds[0], "seeds": seeds[1:]})
    return {
        "seeds": seeds,
        "members": members,
        "time_s": round(time.perf_counter() - start, 1),
    }


def final_checkpoints(cfg: AmesConfig, models_dir: Path = MODELS) -> dict[int, Path]:
    """Final checkpoint of every member, by seed; refuses members of other params."""
    seeds = member_seeds(cfg)
    paths = {seeds[0]: models_dir / FINAL_CHECKPOINT}
    if len(seeds) == 1:
        return paths
    manifest_path = models_dir / MEMBERS / MEMBERS_MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{manifest_path} not found: seeds = {len(seeds)} needs the other members; "
            "run `dvc repro seed_members`"
        )
    manifest = read_json(manifest_path)
    if manifest["base_seed"] != seeds[0] or manifest["seeds"] != seeds[1:]:
        raise ValueError(
            f"{manifest_path}: members were trained for seeds {manifest['seeds']} "
            f"(base {manifest['base_seed']}), params ask for {seeds[1:]} (base {seeds[0]}); "
            "run `dvc repro seed_members`"
        )
    paths.update({seed: member_dir(seed, models_dir) / FINAL_CHECKPOINT for seed in seeds[1:]})
    return paths


def load_members(ctx: RunContext, device: torch.device) -> dict[int, torch.nn.Module]:
    """Every member's final model (checkpoints in ``ctx.models_dir``), on ``device``."""
    cfg, run, graph = ctx.cfg, ctx.run, ctx.graph
    return {
        seed: load_ames_model(cfg.with_seed(seed), run, graph, path, stage="finetune").to(device)
        for seed, path in final_checkpoints(cfg, ctx.models_dir).items()
    }


def ensemble_test_forecasts(
    members: Mapping[int, torch.nn.Module],
    run: RunInputs,
    batch_size: int,
    split: str = "test",
    max_batch_cells: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[int, np.ndarray]]:
    """Seed-ensemble forecasts for the origins of ``split`` (the members' mean, model and
    each expert) and each member's own model forecast, in mm/month."""
    ensemble: dict[str, np.ndarray] = {}
    by_seed: dict[int, np.ndarray] = {}
    for seed, model in members.items():
        forecasts = model_test_forecasts(model, run, batch_size, split, max_batch_cells)
        by_seed[seed] = forecasts["pred"]
        if len(members) == 1:  # the mean of one member is that member: no float64 copies
            return forecasts, by_seed
        if not ensemble:
            ensemble = dict(forecasts)  # obs, clim and origin are shared, not copied
            for key in ("pred", "experts"):
                ensemble[key] = forecasts[key].astype(np.float64)
            continue
        if not np.array_equal(forecasts["origin"], ensemble["origin"]):
            raise ValueError(f"seed {seed}: {split} origins differ from the first member's")
        for key in ("pred", "experts"):
            ensemble[key] += forecasts[key]
    for key in ("pred", "experts"):
        ensemble[key] /= len(members)
        ensemble[key] = ensemble[key].astype(np.float32)
    return ensemble, by_seed


def seed_summary(scores_by_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Overall test scores of each member alone, and their mean ± sd (sd: ddof 1)."""
    by_seed = {
        str(seed): {key: scores["overall"][key] for key in SEED_SCORE_KEYS}
        for seed, scores in scores_by_seed.items()
    }
    summary = {}
    for key in SEED_SCORE_KEYS:
        values = np.array([row[key] for row in by_seed.values()], dtype=np.float64)
        summary[key] = {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
        }
    return {"n": len(by_seed), "by_seed": by_seed, "mean_sd": summary}
