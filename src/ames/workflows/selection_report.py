"""``metrics/selection.json``: every decision the pipeline takes before the test split, what
it was decided on, the loss of each candidate and the winner.

Two protocols decide. The blocked cross-validation over the pre-test origins
(``ames.selection``) picks each lead's ridge penalty, for ``ridge`` and for the experts'
``linear_path: ridge``, climatology included as a candidate, the epochs every training stage
keeps (``ames.training.folds``), the leads at which one expert is published alone and the
weights toward climatology. The 48-month validation split picks the calibration's spread
scales and tercile weights (bounded by what the folds support). The report says which is
which, so a reader sees how much rests on the validation split's few origins. Everything is
copied from the stages' reports; nothing is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ames.evaluation.ridge import CLIMATOLOGY, penalty_label

FOLDS = "folds"
VALIDATION = "validation"
EXPERTS = ("expert1", "expert2", "expert3")


def penalty_decision(
    winners: Sequence[float | None],
    gain: Sequence[float] | None,
    gain_se: Sequence[float] | None,
    cv_mse_by_candidate: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """One penalty decision per lead; ``None`` in ``winners`` (JSON's infinity) is
    climatology. Winners are named as ``cv_mse_by_candidate`` names the candidates."""
    decision: dict[str, Any] = {
        "decided_on": FOLDS,
        "winner_by_lead": [penalty_label(CLIMATOLOGY if w is None else w) for w in winners],
        "cv_gain_over_climatology_by_lead": gain,
        "cv_gain_se_by_lead": gain_se,
    }
    if cv_mse_by_candidate is not None:
        decision["cv_mse_by_candidate"] = dict(cv_mse_by_candidate)
    return decision


def epoch_decision(
    val_loss_by_epoch: Sequence[float], kept: int, folds: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An epoch kept by the folds (``folds``: the stage's ``epoch_selection`` report) or, without
    one, by the validation loss (epoch 0 = the starting weights)."""
    if folds is not None:
        return {**folds, "val_loss_by_epoch": list(val_loss_by_epoch)}
    return {"decided_on": VALIDATION, "val_loss_by_epoch": list(val_loss_by_epoch), "kept": kept}


def selection_report(
    reports: Mapping[str, Mapping[str, Any]],
    val_losses: Mapping[str, Sequence[float]],
) -> dict[str, Any]:
    """The report from the stages' reports (``test``, ``expertN``, ``gating``, ``finetune``,
    ``calibration``) and each training stage's validation loss by epoch."""
    ridge = reports["test"]["ridge_selection"]
    folds = ridge["folds"]
    decisions: dict[str, Any] = {
        "ridge_penalty": penalty_decision(
            ridge["penalty_by_lead"],
            ridge["cv_gain_over_climatology_by_lead"],
            ridge["cv_gain_se_by_lead"],
            ridge["cv_mse_by_candidate"],
        )
    }
    for name in EXPERTS:
        expert = reports[name]
        if expert.get("linear_path_ridge_alpha") is not None:
            evidence = expert["linear_path_evidence"]
            decisions[f"{name}_linear_path_penalty"] = penalty_decision(
                expert["linear_path_ridge_alpha"],
                evidence["cv_gain_over_climatology_by_lead"],
                evidence["cv_gain_se_by_lead"],
            )
    for name in (*EXPERTS, "gating", "finetune"):
        report = reports[name]
        decisions[f"{name}_epoch"] = epoch_decision(
            val_losses[name], report["best_epoch"], report.get("epoch_selection")
        )
    calibration = reports["calibration"]
    for key in ("climatology_weight", "spread_scale", "tercile_weight"):
        value = calibration[key]
        decisions[f"calibration_{key}"] = {
            "decided_on": calibration.get(f"{key}_decided_on") or VALIDATION,
            "winner_by_lead": value["ames"] if isinstance(value, Mapping) else value,
        }
    blend = reports["gating"].get("climatology_blend")
    if blend:
        against = blend.get("mixture_against_experts")
        chosen = blend.get("expert_by_lead")
        if chosen is not None:
            decisions["published_forecast_by_lead"] = {
                "decided_on": FOLDS,
                "winner_by_lead": ["mixture" if k < 0 else f"expert{k + 1}" for k in chosen],
                "mixture_against_experts": against,
            }
        rest = {
            k: v for k, v in blend.items() if k not in ("mixture_against_experts", "expert_by_lead")
        }
        decisions["calibration_climatology_weight"].update(rest)
    on = [d["decided_on"] for d in decisions.values()]
    return {
        "protocols": {
            FOLDS: {
                "folds": len(folds),
                "origins": sum(f["val_origins"] for f in folds),
                "skill_margin_se": ridge["skill_margin_se"],
            },
            VALIDATION: {"origins": calibration["n_val_origins"]},
        },
        "decided_on_folds": on.count(FOLDS),
        "decided_on_validation": on.count(VALIDATION),
        "decisions": decisions,
    }
