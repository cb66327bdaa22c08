"""The headline metrics: the few numbers `dvc metrics show/diff` and `dvc exp show` read.

Everything here is copied from the stages' detailed reports (the other JSON files under
``metrics/``, declared as plain outputs); nothing is computed anew, so the headline cannot
disagree with the detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCORES = ("msess", "pooled_r2", "rmse", "mae")
REFERENCES = ("ridge", "damped_persistence")
EXPERTS = ("expert1", "expert2", "expert3")
STAGE_TIMES = (
    "prepare",
    "masks",
    "experts",
    "gating",
    "finetune",
    "seed_members",
    "calibrate",
    "evaluate",
    "ablations",
)


def _pick(record: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    return {k: record[k] for k in keys}


def _delta(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("delta_msess", "delta_msess_lo", "delta_msess_hi", "significant")
    return _pick(record, keys)


def best_expert(test: Mapping[str, Any]) -> str:
    """The expert with the highest test MSESS: the hardest single-expert bar to clear."""
    experts = test["experts"]
    return max(experts, key=lambda name: experts[name]["overall"]["msess"])


def headline_metrics(
    test: Mapping[str, Any],
    comparisons: Mapping[str, Any],
    significance: Mapping[str, Any],
    alpha: float,
    stage_times: Mapping[str, float],
) -> dict[str, Any]:
    """About 55 numbers: scores of AMES (and of its first seed alone) and its references,
    AMES minus each, probabilistic skill, skill captured, alpha, per-zone MSESS, stage times.

    ``test``: the evaluate report; ``comparisons``: the significance stage's per-scope detail;
    ``significance``: its headline (AMES interval and horizon).
    """
    model = test["model"]["overall"]
    ames = _pick(model, SCORES)
    ames["msess_lo"] = significance["ames"]["msess_lo"]
    ames["msess_hi"] = significance["ames"]["msess_hi"]
    baselines = test["baselines"]
    best = best_expert(test)
    probabilistic = test["probabilistic"]["ames"]["overall"]
    by_seed = test["seeds"]["by_seed"]
    first_seed = by_seed[min(by_seed, key=int)]
    return {
        "ames": ames,
        # the main chain's member alone: what the ablations are compared with
        "ames_first_seed": _pick(first_seed, ("msess", "pooled_r2", "rmse")),
        "ridge": _pick(baselines["ridge"]["overall"], SCORES),
        "damped_persistence": _pick(baselines["damped_persistence"]["overall"], SCORES),
        "climatology": _pick(baselines["climatology"]["overall"], ("pooled_r2", "rmse", "mae")),
        "oracle": _pick(test["oracle"]["overall"], ("msess", "rmse")),
        "experts_msess": {name: test["experts"][name]["overall"]["msess"] for name in EXPERTS},
        "ames_minus": {
            **{ref: _delta(comparisons["ames_vs"][ref]["overall"]) for ref in REFERENCES},
            "best_expert": _delta(comparisons["ames_vs"][best]["overall"]),
        },
        "msess_by_zone": {z: rec["msess"] for z, rec in sorted(test["model"]["by_zone"].items())},
        "probabilistic": _pick(probabilistic, ("crpss", "rpss", "coverage")),
        "skill_captured": test["skill_captured"]["overall"],
        "horizon_months": significance["horizon"]["overall"],
        "alpha": alpha,
        "time_s": {
            **{k: round(stage_times[k], 1) for k in STAGE_TIMES},
            "total": round(sum(stage_times[k] for k in STAGE_TIMES), 1),
        },
    }


def stage_times(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Seconds per stage from each detail report's ``time_s``; experts and ablations summed.

    ``reports`` maps a report name (``expert1``, ``ablations/equal_weighting``, ``test``, ...)
    to its contents.
    """

    def total(prefix: str) -> float:
        return sum(float(r["time_s"]) for n, r in reports.items() if n.startswith(prefix))

    return {
        "prepare": float(reports["data"]["time_s"]),
        "masks": float(reports["masks"]["time_s"]),
        "experts": total("expert"),
        "gating": float(reports["gating"]["time_s"]),
        "finetune": float(reports["finetune"]["time_s"]),
        "seed_members": float(reports["seed_members"]["time_s"]),
        "calibrate": float(reports["calibration"]["time_s"]),
        "evaluate": float(reports["test"]["time_s"]),
        "ablations": total("ablations/"),
    }
