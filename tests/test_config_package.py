"""The model keys are parsed when params are loaded: unknown, missing and bad keys fail there,
each naming the file and the key path (the model builders no longer see raw mappings)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml
from config_helpers import ROOT, write_params

from ames.config import (
    EXPERT_MODELS,
    ConfigError,
    ConvLstmConfig,
    GatingModel,
    GnnTatConfig,
    HybridConfig,
    LossWeights,
    MetaConfig,
    Reader,
    TrainConfig,
    load_config,
)


def load_error(tmp_path: Path, overlay: dict[str, Any]) -> str:
    path = write_params(tmp_path, overlay)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message  # names the file
    return message


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        (
            {"expert1": {"model": {"gat_hiden": 16}}},
            "expert1.model: unknown key(s) 'gat_hiden' (did you mean 'gat_hidden'?)",
        ),
        (
            {"expert2": {"model": {"kernel": 3}}},
            "expert2.model: unknown key(s) 'kernel' (did you mean 'kernel_size'?)",
        ),
        (
            {"expert3": {"model": {"encoder_hiden": 32}}},
            "expert3.model: unknown key(s) 'encoder_hiden' (did you mean 'encoder_hidden'?)",
        ),
        (
            {"gating": {"hiden_sizes": [8]}},
            "gating: unknown key(s) 'hiden_sizes' (did you mean 'hidden_sizes'?)",
        ),
        (
            {"gating": {"loss": {"lambda_dv": 0.1}}},
            "gating.loss: unknown key(s) 'lambda_dv' (did you mean 'lambda_div'?)",
        ),
        (
            {"meta": {"min_slope": 0.5}},
            "meta: unknown key(s) 'min_slope' (did you mean 'min_slope_deg'?)",
        ),
        (
            {"finetune": {"loss": {"lambda_mas": 0.1}}},
            "finetune.loss: unknown key(s) 'lambda_mas' (did you mean 'lambda_mass'?)",
        ),
        (
            {"finetune": {"lr_scal": 0.1}},
            "finetune: unknown key(s) 'lr_scal' (did you mean 'lr_scale'?)",
        ),
    ],
)
def test_an_unknown_model_key_fails_at_load_with_its_path_and_the_close_key(
    tmp_path: Path, overlay: dict, expected: str
) -> None:
    assert expected in load_error(tmp_path, overlay)


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ({"expert1": {"model": {"gat_hidden": 18}}}, "expert1.model.gat_hidden: gat_hidden %"),
        (
            {"expert1": {"model": {"temporal_patch": 5}}},
            "expert1.model.temporal_patch: temporal_patch=5 must be ≥ 1 and divide the input "
            "window 12",
        ),
        (
            {"features": {"input_window": 10}},
            "expert1.model.temporal_patch: temporal_patch=6",  # the window the experts read
        ),
        ({"expert1": {"model": {"attention_heads": 0}}}, "expert1.model.attention_heads"),
        ({"expert2": {"model": {"kernel_size": 4}}}, "expert2.model.kernel_size: kernel_size"),
        ({"expert2": {"model": {"recurrent_conv": "dense"}}}, "expert2.model.recurrent_conv"),
        ({"expert2": {"model": {"tile_cells": 0}}}, "expert2.model.tile_cells: must be a number"),
        ({"train": {"max_batch_cells": 0}}, "max_batch_cells=0"),
        ({"expert3": {"model": {"recent_months": 13}}}, "expert3.model.recent_months"),
        ({"expert3": {"model": {"gat_impl": "sparse"}}}, "expert3.model.gat_impl"),
        ({"expert3": {"model": {"linear_path": "lasso"}}}, "expert3.model.linear_path"),
        (
            {"expert2": {"model": {"dropout": "none"}}},
            "expert2.model.dropout: expected a number, got 'none'",
        ),
        (
            {"expert1": {"model": {"lstm_hidden": 16.5}}},
            "expert1.model.lstm_hidden: expected an integer, got 16.5",
        ),
        ({"gating": {"alpha_init": 1.0}}, "gating.alpha_init: must be strictly between 0 and 1"),
        ({"gating": {"fixed_alpha": 2.0}}, "gating.fixed_alpha: must be in [0, 1] or null"),
        (
            {"gating": {"mode": "single", "single_expert": 4}},
            "gating.single_expert: must be 1, 2 or 3",
        ),
        ({"gating": {"hidden_sizes": [32, "x"]}}, "gating.hidden_sizes: expected a list of"),
        ({"meta": {"dropout": 1.5}}, "meta.dropout: must be in [0, 1)"),
        ({"meta": {"wind_from_deg": "west"}}, "meta.wind_from_deg: expected a number or null"),
        ({"finetune": {"loss": {"lambda_oro": -1.0}}}, "finetune.loss.lambda_oro: must be ≥ 0"),
    ],
)
def test_a_bad_model_value_fails_at_load_with_its_path(
    tmp_path: Path, overlay: dict, expected: str
) -> None:
    assert expected in load_error(tmp_path, overlay)


def test_a_missing_model_key_fails_at_load(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["expert2"]["model"]["kernel_size"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"expert2.model.kernel_size: missing key$"):
        load_config(path)


def test_the_default_params_every_ablation_and_the_paper_profile_parse(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "params.yaml")
    assert [type(e.model) for e in cfg.experts] == [GnnTatConfig, ConvLstmConfig, HybridConfig]
    assert cfg.gating.model == GatingModel(
        mode="learned", single_expert=2, hidden_sizes=(32, 32), dropout=0.2, alpha_init=0.3
    )
    assert cfg.gating.loss == LossWeights(lambda_div=0.01)
    assert cfg.finetune.loss == LossWeights(lambda_mass=0.05, lambda_oro=0.1)
    assert cfg.meta == MetaConfig(enabled=True)
    for name in cfg.ablations:
        ablated = cfg.ablation(name)
        assert ablated.experts == cfg.experts
    assert cfg.ablation("no_physics_priors").gating.model.fixed_alpha == 0.0
    assert cfg.ablation("equal_weighting").gating.mode == "equal"
    assert cfg.ablation("no_meta_learner").meta.enabled is False
    assert cfg.ablation("no_physics_loss").finetune.loss == LossWeights()
    paper = load_config(write_params(tmp_path, {"profile": "paper"}))
    assert paper.expert(2).model.hidden == (64, 64)
    assert paper.meta.hidden_sizes == (96, 64)


def test_a_model_key_left_out_takes_the_default_the_builders_had() -> None:
    assert GatingModel(mode="learned").prior_scale_m == 500.0
    assert LossWeights().lambda_div == 0.0
    gnn = {
        "lstm_hidden": 16,
        "lstm_layers": 1,
        "gat_hidden": 16,
        "gat_layers": 1,
        "gat_heads": 4,
        "attention_heads": 4,
        "temporal_patch": 1,
        "dropout": 0.0,
    }
    read = Reader().fields(GnnTatConfig, gnn, "expert1.model")
    assert (read.gat_impl, read.linear_path) == ("pyg", False)
    one_layer = Reader().fields(ConvLstmConfig, {**_convlstm(), "hidden": 16}, "expert2.model")
    assert one_layer.hidden == (16,)


def _convlstm() -> dict[str, Any]:
    return {
        "hidden": [16, 16],
        "kernel_size": 3,
        "recurrent_conv": "separable",
        "temporal_patch": 1,
        "dropout": 0.0,
    }


def test_train_config_is_read_by_the_reader() -> None:
    cfg = TrainConfig.from_dict(
        {"epochs": 2, "lr": "1e-3", "patience": None, "batch_size": 4}, path="x.training", seed=3
    )
    assert (cfg.lr, cfg.seed, cfg.grad_clip) == (1e-3, 3, 1.0)
    with pytest.raises(ConfigError, match=r"^p.yaml: x.training.grad_clip: expected a number"):
        TrainConfig.from_dict(
            {"epochs": 2, "lr": 1e-3, "patience": 1, "batch_size": 4, "grad_clip": "off"},
            path="x.training",
            reader=Reader("p.yaml"),
            seed=3,
        )


def test_the_registry_names_every_expert_architecture() -> None:
    from ames.models.experts import EXPERTS

    assert tuple(EXPERT_MODELS) == tuple(EXPERTS) == ("gnn_tat", "convlstm", "hybrid")


def test_the_config_package_imports_nothing_of_ames_but_errors() -> None:
    package = ROOT / "src" / "ames" / "config"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
                if module.startswith("ames"):
                    assert module == "ames.errors" or module.startswith("ames.config"), (
                        path.name,
                        module,
                    )
