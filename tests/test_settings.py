"""The typed configuration: params.yaml parsed once; a bad value names its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from config_helpers import ROOT, committed_params, write_params

from ames.config import (
    AmesConfig,
    BootstrapConfig,
    ConfigError,
    GraphConfig,
    ZoneConfig,
    deep_merge,
    derive_seed,
    load_config,
    load_params,
    params_hash,
    parse_config,
)


def without(params: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    changed = deep_merge(params, {})
    del changed[section][key]
    return changed


@pytest.fixture(scope="module")
def cfg() -> AmesConfig:
    return load_config(ROOT / "params.yaml")


def test_typed_values_equal_the_yaml_values(cfg: AmesConfig) -> None:
    raw = load_params(ROOT / "params.yaml")
    assert cfg.raw == raw and params_hash(cfg.raw) == params_hash(raw)
    assert (cfg.seed, cfg.seeds, cfg.profile) == (raw["seed"], raw["seeds"], "default")
    assert cfg.split.test_months == raw["split"]["test_months"]
    assert cfg.split.val_months == raw["split"]["val_months"]
    assert cfg.split.horizon == raw["split"]["horizon"]
    assert cfg.selection.folds == raw["selection"]["folds"]
    assert cfg.features.input_window == raw["features"]["input_window"]
    assert cfg.features.target_transform == raw["features"]["target_transform"]
    assert cfg.train.batch_size == raw["train"]["batch_size"]
    assert cfg.train.device == raw["train"]["device"]
    assert cfg.zones == ZoneConfig.from_params(raw["zones"])
    assert cfg.graph == GraphConfig(**raw["graph"])
    assert cfg.uncertainty == BootstrapConfig.from_params(raw["uncertainty"])
    assert list(cfg.probabilistic.quantiles) == raw["probabilistic"]["quantiles"]
    assert cfg.data.source == raw["data"]["source"] and cfg.data.bbox == raw["data"]["bbox"]
    assert set(cfg.ablations) == set(raw["ablations"])
    for index in (1, 2, 3):
        section = raw[f"expert{index}"]
        expert = cfg.expert(index)
        assert expert.zone == section["zone"]
        assert {key: getattr(expert.model, key) for key in section["model"]} == {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in section["model"].items()
        }
        assert expert.training.epochs == section["training"]["epochs"]
        assert expert.training.lr == raw["train"]["lr"]
        assert expert.training.seed == derive_seed(raw["seed"], f"expert{index}", "training")
    assert cfg.gating.mode == raw["gating"]["mode"] and cfg.meta.enabled is raw["meta"]["enabled"]
    assert cfg.finetune.training.lr == raw["finetune"]["lr_scale"] * raw["train"]["lr"]


def test_expert_architecture_defaults_by_section_and_can_be_named(cfg: AmesConfig) -> None:
    assert [e.architecture for e in cfg.experts] == ["gnn_tat", "convlstm", "hybrid"]
    params = deep_merge(cfg.raw, {"expert1": {"architecture": "hybrid"}})
    params["expert1"]["model"] = dict(cfg.raw["expert3"]["model"])  # the keys of a hybrid
    swapped = parse_config(params)
    assert swapped.expert(1).architecture == "hybrid" and swapped.expert(2) == cfg.expert(2)
    assert swapped.expert(1).model == cfg.expert(3).model
    with pytest.raises(ConfigError, match="expert1.model: unknown key"):  # gnn_tat's keys
        cfg.with_overlay({"expert1": {"architecture": "hybrid"}})


def test_paper_profile_parses(tmp_path: Path) -> None:
    cfg = load_config(write_params(tmp_path, {"profile": "paper"}))
    assert cfg.profile == "paper" and cfg.seeds == 3
    assert cfg.features.input_window == 60
    assert cfg.expert(1).training.epochs == 50 and cfg.expert(1).model.lstm_hidden == 64
    assert cfg.finetune.training.lr == pytest.approx(0.1 * 1.0e-3)


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"split": {"val_months": "x"}}, "split.val_months: expected an integer >= 1, got 'x'"),
        ({"split": {"horizon": 0}}, "split.horizon: expected an integer >= 1, got 0"),
        ({"seeds": 0}, "seeds: expected an integer >= 1"),
        ({"features": {"target_transform": "log"}}, "features.target_transform: expected one"),
        ({"train": {"lr": "fast"}}, "train.lr: expected a number"),
        ({"expert2": {"training": {"epochs": 0}}}, "expert2.training: invalid value(s) epochs=0"),
        (
            {"expert2": {"training": {"epochs": "ten"}}},
            "expert2.training.epochs: expected an integer, got 'ten'",
        ),
        ({"gating": {"mode": "random"}}, "gating.mode: expected one of learned"),
        ({"meta": {"enabled": "yes"}}, "meta.enabled: expected true or false"),
        ({"uncertainty": {"block_months": 3}}, "uncertainty"),
        ({"zones": {"mode": "fancy"}}, "zones: mode is 'fancy'. Fix: use one of"),
        ({"probabilistic": {"quantiles": [0.9, 0.1]}}, "probabilistic.quantiles: expected"),
        ({"data": {"source": "s3"}}, "data.source: expected one of synthetic, files"),
        ({"expert1": {"architecture": "mlp"}}, "expert1.architecture: expected one of gnn_tat"),
    ],
)
def test_bad_value_names_the_file_and_key(tmp_path: Path, overlay: dict, message: str) -> None:
    path = write_params(tmp_path, overlay)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "params.yaml" not in str(info.value)[len(str(path)) :]  # the file named once


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("split", "val_months", "split.val_months: missing key"),
        ("features", "input_window", "features.input_window: missing key"),
        ("expert3", "zone", "expert3.zone: missing key"),
        ("finetune", "lr_scale", "finetune.lr_scale: missing key"),
        ("probabilistic", "pit_seed", "probabilistic.pit_seed: missing key"),
    ],
)
def test_missing_key_names_the_key(section: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^params.yaml: {message}"):
        parse_config(without(committed_params(), section, key))


def test_missing_section_names_it() -> None:
    params = committed_params()
    del params["graph"]
    with pytest.raises(ConfigError, match="^params.yaml: graph: missing key"):
        parse_config(params)


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"split": {"val_month": 12}}, "split: unknown key(s) 'val_month' (did you mean 'val_"),
        ({"features": {"window": 12}}, "features: unknown key(s) 'window' (did you mean"),
        ({"graph": {"k_spatal": 8}}, "graph: unknown key(s) 'k_spatal' (did you mean 'k_spa"),
        ({"expert1": {"modle": {}}}, "expert1: unknown key(s) 'modle' (did you mean 'model'?)"),
        (
            {"gating": {"training": {"epoch": 3}}},
            "gating.training: unknown key(s) 'epoch' (did you mean 'epochs'?)",
        ),
    ],
)
def test_unknown_key_suggests_a_close_match(overlay: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(deep_merge(committed_params(), overlay))
    assert message in str(info.value)


def test_ablation_overlay_parses_again(cfg: AmesConfig) -> None:
    single = cfg.ablation("single_expert")
    assert single.gating.mode == "single" and single.meta.enabled is False
    assert "ablations" not in single.raw and single.ablations == {}
    assert single.expert(1) == cfg.expert(1)  # the experts are shared with the main chain
    no_loss = cfg.ablation("no_physics_loss")
    assert no_loss.finetune.loss.lambda_mass == 0.0
    assert no_loss.finetune.training == cfg.finetune.training
    with pytest.raises(KeyError, match="no ablation 'nothing'"):
        cfg.ablation("nothing")
    with pytest.raises(ConfigError, match="gating.mode"):
        cfg.with_overlay({"gating": {"mode": "bogus"}})


def test_with_seed_rederives_every_training_seed(cfg: AmesConfig) -> None:
    member = cfg.with_seed(cfg.seed + 1)
    assert member.seed == cfg.seed + 1 and member.raw["seed"] == cfg.seed + 1
    assert member.gating.training.seed == derive_seed(cfg.seed + 1, "gating", "training")
    assert cfg.raw["seed"] == cfg.seed  # the original is untouched


def test_section_errors_carry_their_key_path() -> None:
    err = ConfigError.at("expert2.model.hidden", "expected a list of widths")
    assert str(err) == "params.yaml (expert2.model.hidden): expected a list of widths"
    assert (err.path, err.detail) == ("expert2.model.hidden", "expected a list of widths")
    with pytest.raises(ConfigError) as info:
        parse_config(deep_merge(committed_params(), {"uncertainty": {"n_boot": 10}}), "p.yaml")
    assert str(info.value) == "p.yaml: uncertainty.n_boot: 10 < 100 resamples"
    assert info.value.path == "uncertainty.n_boot"
    params = without(committed_params(), "uncertainty", "level")
    with pytest.raises(ConfigError, match="^params.yaml: uncertainty.level: missing key$"):
        parse_config(params)
