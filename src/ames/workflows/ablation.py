"""Ablations (SPEC §4.6): re-run only what a switch changes, from the stage-1 experts."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ames.evaluation.error_sums import write_error_sums
from ames.evaluation.forecast_set import TRUTH
from ames.evaluation.metrics import score_dataset
from ames.paths import ABLATION_ERRORS, ABLATIONS, FINAL_CHECKPOINT, STAGE2_CHECKPOINT
from ames.training.distributed import on_main
from ames.workflows.ames_model import (
    checkpoint_epoch,
    checkpoint_expert_by_lead,
    finetune,
    train_gating,
)
from ames.workflows.context import RunContext
from ames.workflows.evaluate import ablation_forecast_set, model_test_forecasts
from ames.workflows.significance import forecast_error_sums

log = logging.getLogger("ames.ablation")

STAGE2_SECTIONS = ("gating", "meta")


def needs_own_stage2(overrides: Mapping[str, Any]) -> bool:
    """Stage 2 is re-run only when the ablation changes the gating or the meta-learner."""
    return any(section in overrides for section in STAGE2_SECTIONS)


def run_ablation(ctx: RunContext, name: str) -> dict[str, Any]:
    """Ablation ``name`` of ``ctx.cfg``: stages 2 (when it changes them) and 3 again from the
    stage-1 experts, into ``ctx.models_dir/ablations/<name>``, scored on the test split."""
    start = time.perf_counter()
    cfg, models_dir = ctx.cfg, ctx.models_dir
    ablated = ctx.with_config(cfg.ablation(name))
    p = ablated.cfg
    overrides = cfg.ablations[name] or {}
    out_dir = Path(ABLATIONS) / name
    if needs_own_stage2(overrides):
        log.info("%s: stage 2 with %s", name, overrides)
        train_gating(
            ablated,
            checkpoint_name=str(out_dir / "stage2.pt"),
            state_name=f"ablation_{name}_gating",
            epochs=checkpoint_epoch(models_dir / STAGE2_CHECKPOINT),
            expert_by_lead=checkpoint_expert_by_lead(models_dir / STAGE2_CHECKPOINT),
        )
        stage2 = models_dir / out_dir / "stage2.pt"
    else:
        stage2 = models_dir / STAGE2_CHECKPOINT
    model, summary = finetune(
        ablated,
        stage2_checkpoint=stage2,
        checkpoint_name=str(out_dir / "final.pt"),
        state_name=f"ablation_{name}_finetune",
        epochs=checkpoint_epoch(models_dir / FINAL_CHECKPOINT),
    )
    run = ablated.run
    forecasts = ablation_forecast_set(
        name,
        model_test_forecasts(
            model, run, p.train.batch_size, max_batch_cells=p.train.max_batch_cells
        ),
        run,
    )
    test = score_dataset(forecasts, [name])[name]
    on_main(
        write_error_sums,
        forecast_error_sums(forecasts[[name, TRUTH]]),
        models_dir / out_dir / ABLATION_ERRORS,
    )
    return {
        "overrides": overrides,
        "reran_stage2": needs_own_stage2(overrides),
        "alpha": summary["alpha"],
        "val": summary["val"],
        "test": test,
        "time_s": round(time.perf_counter() - start, 1),
    }


def ablation_table(
    full: Mapping[str, Any],
    ablations: Mapping[str, Mapping[str, Any]],
    significance: Mapping[str, Mapping[str, Any]],
) -> dict:
    """Each ablation against the full model of the same seed (negative Δ = the part helped).

    ``full``: the full model's overall test scores; ``significance``: per ablation, the
    paired intervals and tests of ``ames.workflows.significance.ablation_significance``.
    """
    table: dict[str, Any] = {
        "full_model": {"pooled_r2": full["pooled_r2"], "rmse": full["rmse"], "msess": full["msess"]}
    }
    for name, result in ablations.items():
        overall = result["test"]["overall"]
        table[name] = {
            "pooled_r2": overall["pooled_r2"],
            "rmse": overall["rmse"],
            "msess": overall["msess"],
            **significance[name],
        }
    return table
