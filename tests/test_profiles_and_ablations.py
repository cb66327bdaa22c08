"""The committed params.yaml: profiles resolve, paper sizes hit the SPEC budgets, ablations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from graph_fixtures import synthetic_grid_graph

from ames.config import (
    DEFAULT_ARCHITECTURES,
    ConfigError,
    Reader,
    load_config,
    load_params,
    read_expert_model,
    resolve_profile,
)
from ames.models.experts import build_expert
from ames.models.parameters import count_parameters
from ames.windows import N_CHANNELS
from ames.workflows.ablation import needs_own_stage2

ROOT = Path(__file__).resolve().parents[1]
PAPER_BUDGET = {1: 64_000, 2: 180_000, 3: 90_000}


@pytest.fixture(scope="module")
def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_profile_is_params_yaml_as_written(raw_params):
    params = load_params(ROOT / "params.yaml")
    assert params["profile"] == "default"
    assert params["features"]["input_window"] == raw_params["features"]["input_window"]
    assert "profiles" not in params


def test_stages_depend_on_the_selected_profile_only() -> None:
    """Editing the paper profile must not invalidate a default run (and vice versa)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        params = stage.get("do", stage).get("params", [])
        assert "profiles" not in params, name
        assert ("profile" in params) == ("profiles.${profile}" in params), name


def test_a_profile_overlay_applies_to_default_too(raw_params):
    raw = {**raw_params, "profiles": {"default": {"seeds": 5}}}
    assert resolve_profile(raw)["seeds"] == 5
    assert resolve_profile({**raw_params, "profiles": {"default": {}}}) == load_params(
        ROOT / "params.yaml"
    )


def test_paper_profile_sizes_match_the_spec(raw_params):
    paper = resolve_profile({**raw_params, "profile": "paper"})
    assert paper["features"]["input_window"] == 60
    assert paper["train"]["batch_size"] == 8 and paper["train"]["lr"] == 1e-3
    assert paper["expert1"]["training"] == {"epochs": 50, "patience": 15}
    assert paper["gating"]["training"] == {"epochs": 30, "patience": 10}
    graph = synthetic_grid_graph(np.ones((6, 7), bool), n_neighbors=4)
    for index, target in PAPER_BUDGET.items():
        architecture = DEFAULT_ARCHITECTURES[f"expert{index}"]
        model = paper[f"expert{index}"]["model"]
        expert = build_expert(
            architecture,
            read_expert_model(Reader(), architecture, model, f"expert{index}.model", 60),
            n_features=N_CHANNELS,
            window=60,
            horizon=12,
            graph=graph,
        )
        assert abs(count_parameters(expert) - target) <= 0.3 * target


def test_unknown_profile_is_a_clear_error(raw_params):
    with pytest.raises(ConfigError, match="profile 'huge'"):
        resolve_profile({**raw_params, "profile": "huge"})


def test_ablations_change_only_what_they_name(raw_params):
    params = load_params(ROOT / "params.yaml")
    assert set(params["ablations"]) == {
        "no_physics_priors",
        "no_meta_learner",
        "single_expert",
        "no_physics_loss",
        "equal_weighting",
    }
    cfg = load_config(ROOT / "params.yaml")

    def ablation_params(name: str) -> dict:
        return dict(cfg.ablation(name).raw)

    no_priors = ablation_params("no_physics_priors")
    assert no_priors["gating"]["fixed_alpha"] == 0.0
    assert no_priors["meta"] == params["meta"]
    no_loss = ablation_params("no_physics_loss")
    assert no_loss["finetune"]["loss"]["lambda_mass"] == 0.0
    assert no_loss["finetune"]["loss"]["lambda_oro"] == 0.0
    assert no_loss["gating"] == params["gating"]
    single = ablation_params("single_expert")
    assert single["gating"]["mode"] == "single" and single["gating"]["single_expert"] == 2
    assert single["meta"]["enabled"] is False
    assert ablation_params("equal_weighting")["gating"]["mode"] == "equal"
    assert not needs_own_stage2(params["ablations"]["no_physics_loss"])
    assert needs_own_stage2(params["ablations"]["no_meta_learner"])
    with pytest.raises(KeyError, match="no ablation"):
        ablation_params("nothing")
