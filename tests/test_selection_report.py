"""metrics/selection.json (ames.workflows.selection_report): each decision with its protocol,
the candidates' losses and the winner, copied from the stages' reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ames.io import read_json
from ames.workflows.selection_report import FOLDS, VALIDATION, selection_report

H = 3


def reports() -> dict:
    folds = [{"val_origins": 70}, {"val_origins": 80}]
    ridge = {
        "penalty_by_lead": [1000.0, 31622.776601683792, None],
        "cv_gain_over_climatology_by_lead": [0.1, 0.02, 0.0],
        "cv_gain_se_by_lead": [0.01, 0.01, 0.0],
        "cv_mse_by_candidate": {"1e+03": [0.8, 1.0, 1.1], "3e+04": [0.9, 0.97, 1.05]},
        "folds": folds,
        "skill_margin_se": 1.0,
    }
    ridge["cv_mse_by_candidate"]["climatology"] = [1.0, 0.99, 1.0]
    out = {"test": {"ridge_selection": ridge}}
    for i in (1, 2, 3):
        out[f"expert{i}"] = {
            "best_epoch": i - 1,
            "linear_path_ridge_alpha": [1e3, None, None] if i != 2 else None,
            "linear_path_evidence": {
                "cv_gain_over_climatology_by_lead": [0.1, 0.0, 0.0],
                "cv_gain_se_by_lead": [0.01, 0.0, 0.0],
            },
        }
    out["gating"] = {"best_epoch": 1}
    out["finetune"] = {"best_epoch": 0}
    out["calibration"] = {
        "n_val_origins": 37,
        "climatology_weight": [1.0] * H,
        "spread_scale": {"ames": [0.9, 1.0, 1.1]},
        "tercile_weight": {"ames": [0.5, 0.2, 0.0]},
    }
    return out


def losses() -> dict:
    names = ("expert1", "expert2", "expert3", "gating", "finetune")
    return {name: [1.0, 0.9, 0.95] for name in names}


def test_each_decision_names_its_protocol_and_winner():
    report = selection_report(reports(), losses())
    decisions = report["decisions"]
    ridge = decisions["ridge_penalty"]
    assert ridge["decided_on"] == FOLDS
    assert ridge["winner_by_lead"] == ["1e+03", "3e+04", "climatology"]
    # every named winner is a candidate whose CV curve the report carries
    assert set(ridge["winner_by_lead"]) <= set(ridge["cv_mse_by_candidate"])
    assert decisions["expert1_linear_path_penalty"]["winner_by_lead"] == [
        "1e+03",
        "climatology",
        "climatology",
    ]
    assert "expert2_linear_path_penalty" not in decisions  # no ridge linear path
    assert decisions["expert2_epoch"] == {
        "decided_on": VALIDATION,
        "val_loss_by_epoch": [1.0, 0.9, 0.95],
        "kept": 1,
    }
    assert decisions["calibration_spread_scale"]["winner_by_lead"] == [0.9, 1.0, 1.1]
    assert report["protocols"][FOLDS] == {"folds": 2, "origins": 150, "skill_margin_se": 1.0}
    assert report["decided_on_folds"] == 3
    assert report["decided_on_validation"] == 5 + 3


def test_the_chosen_penalty_is_the_lowest_cv_loss_where_skill_is_confirmed():
    """The committed report agrees with the rule: where the lead keeps a regression, its
    penalty has the lowest pooled CV MSE of every candidate."""
    committed = read_json(Path(__file__).resolve().parents[1] / "metrics" / "selection.json")
    ridge = committed["decisions"]["ridge_penalty"]
    table = ridge["cv_mse_by_candidate"]
    names = list(table)
    for lead, winner in enumerate(ridge["winner_by_lead"]):
        if winner != "climatology":
            assert winner == names[int(np.argmin([table[n][lead] for n in names]))]


def test_epochs_the_folds_decided_are_reported_as_such():
    """A stage that carries an ``epoch_selection`` (the folds' verdict) is a fold decision,
    its validation curve kept beside it for reading."""
    stages = reports()
    stages["gating"]["epoch_selection"] = {
        "decided_on": FOLDS,
        "kept": 2,
        "cv_mse_by_epoch": [1.0, 0.97, 0.96],
        "cv_mse_by_fold_and_epoch": [[1.0, 0.97, 0.96]],
        "fold_windows": [10],
    }
    report = selection_report(stages, losses())
    gating = report["decisions"]["gating_epoch"]
    assert gating["decided_on"] == FOLDS and gating["kept"] == 2
    assert gating["val_loss_by_epoch"] == [1.0, 0.9, 0.95]
    assert report["decided_on_folds"] == 4
    assert report["decided_on_validation"] == 4 + 3


def test_the_leads_given_to_an_expert_alone_are_a_fold_decision():
    stages = reports()
    against = {"mixture_cv_mse_ratio_by_lead": [0.9, 0.95, 0.99]}
    stages["gating"]["climatology_blend"] = {
        "weight_by_lead": [1.0, 0.8, 0.0],
        "expert_by_lead": [-1, 1, -1],
        "mixture_against_experts": against,
    }
    report = selection_report(stages, losses())
    published = report["decisions"]["published_forecast_by_lead"]
    assert published["decided_on"] == FOLDS
    assert published["winner_by_lead"] == ["mixture", "expert2", "mixture"]
    assert published["mixture_against_experts"] == against
    blend = report["decisions"]["calibration_climatology_weight"]
    assert blend["weight_by_lead"] == [1.0, 0.8, 0.0] and "expert_by_lead" not in blend
    assert report["decided_on_folds"] == 4
