"""The headline metrics file: small, and every number copied from the detailed reports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ames.workflows.headline import best_expert, headline_metrics, stage_times

ROOT = Path(__file__).resolve().parents[1]


def _scores(msess: float) -> dict:
    return {"msess": msess, "pooled_r2": 0.7 + msess, "rmse": 70 - msess, "mae": 45 - msess}


def _detail(msess: float) -> dict:
    zones = {z: _scores(msess / (i + 1)) for i, z in enumerate(("high", "medium", "low"))}
    return {"overall": _scores(msess), "by_zone": zones}


def _delta(value: float) -> dict:
    return {
        "delta_msess": value,
        "delta_msess_lo": value - 0.01,
        "delta_msess_hi": value + 0.01,
        "significant": False,
        "dm_p": 0.5,
    }


@pytest.fixture
def reports() -> dict:
    names = ("climatology", "damped_persistence", "ridge")
    test = {
        "model": _detail(0.04),
        "experts": {"expert1": _detail(0.02), "expert2": _detail(0.035), "expert3": _detail(0.03)},
        "baselines": {name: _detail(m) for name, m in zip(names, (0.0, 0.01, 0.03), strict=True)},
        "oracle": _detail(0.11),
        "seeds": {"by_seed": {"43": _scores(0.05), "42": _scores(0.033)}},
        "probabilistic": {"ames": {"overall": {"crpss": 0.01, "rpss": 0.02, "coverage": 0.79}}},
        "skill_captured": {"overall": 0.35},
    }
    comparisons = {
        "ames_vs": {
            n: {"overall": _delta(0.001 * i)}
            for i, n in enumerate(("damped_persistence", "ridge", "expert1", "expert2", "expert3"))
        }
    }
    significance = {"ames": {"msess_lo": 0.0, "msess_hi": 0.07}, "horizon": {"overall": 4}}
    return {"test": test, "comparisons": comparisons, "significance": significance}


def _times() -> dict:
    reports = {n: {"time_s": 1.0} for n in ("data", "masks", "gating", "finetune", "seed_members")}
    reports.update({n: {"time_s": 2.0} for n in ("expert1", "expert2", "calibration", "test")})
    reports.update({"ablations/a": {"time_s": 3.0}, "ablations/b": {"time_s": 4.0}})
    return reports


def _count(tree) -> int:
    if isinstance(tree, dict):
        return sum(_count(v) for v in tree.values())
    return int(isinstance(tree, int | float))


def test_stage_times_sum_experts_and_ablations() -> None:
    times = stage_times(_times())
    assert times["experts"] == 4.0 and times["ablations"] == 7.0 and times["evaluate"] == 2.0


def test_headline_copies_its_numbers_and_stays_small(reports) -> None:
    head = headline_metrics(**reports, alpha=0.3, stage_times=stage_times(_times()))
    assert _count(head) <= 60
    assert head["ames"]["msess"] == 0.04 and head["ames"]["msess_hi"] == 0.07
    assert head["ridge"]["rmse"] == reports["test"]["baselines"]["ridge"]["overall"]["rmse"]
    assert head["ames_first_seed"]["msess"] == 0.033  # seed 42 is the main chain
    assert best_expert(reports["test"]) == "expert2"
    assert head["ames_minus"]["best_expert"]["delta_msess"] == pytest.approx(0.003)
    assert head["ames_minus"]["ridge"]["delta_msess"] == pytest.approx(0.001)
    assert head["time_s"]["total"] == pytest.approx(20.0)


def test_only_the_headline_is_declared_a_metric() -> None:
    declared = []
    for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values():
        body = stage.get("do", stage)
        declared += [next(iter(m)) if isinstance(m, dict) else m for m in body.get("metrics", [])]
    assert declared == ["metrics/headline.json"]
