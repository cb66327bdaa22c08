"""Stacking (``ames.workflows.stacking``): stage 2 learns from held-out expert forecasts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from config_helpers import config_with
from conftest import make_small_dataset
from test_inference import PARAMS, _save_masks

from ames.evaluation.ridge import run_folds
from ames.io import SampleFile
from ames.models.experts import build_experts, expert_forecast_mm, precompute_expert_outputs
from ames.models.graph import load_masks_graph
from ames.models.linear_path import spatial_regressors
from ames.models.linear_path_fit import fit_run_linear_path, refit_at_penalties
from ames.paths import expert_checkpoint
from ames.run import RunInputs, collect_forecasts, load_run_inputs
from ames.selection import blocked_year_folds
from ames.training.checkpoints import save_checkpoint
from ames.workflows.blocks import block_runs, fold_blocks, held_out_blocks
from ames.workflows.context import RunContext
from ames.workflows.expert import FOLD_STATES, LINEAR_ALPHA
from ames.workflows.stacking import HeldOutOnDemand, held_out_expert_outputs, kept_by_stage1

W, H = 6, 12


def _expert(index: int) -> dict:
    section = PARAMS[f"expert{index}"]
    return {
        "model": {**section["model"], "linear_path": "ridge"},
        "training": {"epochs": 2, "patience": 1},
    }


CFG = config_with(
    {
        **PARAMS,
        **{f"expert{i}": _expert(i) for i in (1, 2, 3)},
        "selection": {"folds": 3},
        "linear_features": {"smoothing_km": [10], "smoothing_lags": 1, "loading": False},
    }
)


def test_every_training_origin_is_forecast_once_by_copies_fitted_clear_of_its_targets():
    origins = np.arange(11, 200)
    train = origins[origins < 160]
    folds = blocked_year_folds(origins, 1990 + origins // 12, 5, W, H)
    blocks = held_out_blocks(train, folds, H)
    forecast = np.concatenate([b.forecast for b in blocks])
    assert np.array_equal(np.sort(forecast), train)  # each once
    for block in blocks:
        assert np.isin(block.fit, train).all() and not np.isin(block.fit, block.forecast).any()
        first, last = block.forecast.min() + 1, block.forecast.max() + H  # their targets
        window_start, window_end = block.fit - W + 1, block.fit + H
        assert ((window_end < first) | (window_start > last)).all()
    # the last fold holds validation origins only: no block, and none of them is fitted on
    assert len(blocks) == 4
    assert all(b.fit.max() < 160 for b in blocks)


def test_held_out_blocks_refuse_a_fold_with_nothing_left_to_fit():
    origins = np.arange(11, 60)
    folds = blocked_year_folds(origins, 1990 + origins // 12, 2, W, H)
    with pytest.raises(ValueError, match="no training origin left"):
        held_out_blocks(origins[origins < 30], folds, H)


def test_refit_on_all_training_origins_is_the_selected_fit(tmp_path: Path):
    run = _run(tmp_path)
    selected = fit_run_linear_path(CFG, run)
    train = np.asarray(run.masks.split["train"])
    coef, intercept, _ = refit_at_penalties(
        run.inputs, run.masks.valid, [train], W, H, spatial_regressors(CFG, run), selected.alpha
    )[0]
    np.testing.assert_allclose(coef, selected.coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(intercept, selected.intercept, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kept", [0, 1])
def test_a_held_out_forecast_ignores_its_own_target_months(tmp_path: Path, kept: int):
    """Changing the months an origin forecasts leaves its stacking forecast unchanged (the
    copies that make it never read those months; the penalties are stage 1's), while the
    stage-1 fit at those penalties moves."""
    run = _run(tmp_path)
    models = _trained_experts(run, tmp_path / "models", kept)
    train = np.asarray(run.masks.split["train"])
    block = held_out_blocks(train, run_folds(run, CFG.selection.folds), H)[1]
    origin = int(block.forecast.max())  # its targets are no input of its block
    row = int(np.flatnonzero(train == origin)[0])
    changed = _with_changed_months(run, np.arange(origin + 1, origin + H + 1))

    before = _held_out(run, models, tmp_path / "state_a")
    after = _held_out(changed, models, tmp_path / "state_b")

    assert torch.equal(before[row], after[row])
    assert not torch.equal(before, after)  # other origins read those months
    alpha = kept_by_stage1(models)[1].linear_alpha
    regressors = spatial_regressors(CFG, run)
    stage1 = [
        refit_at_penalties(r.inputs, r.masks.valid, [train], W, H, regressors, alpha)[0][0]
        for r in (run, changed)
    ]
    assert np.abs(stage1[0] - stage1[1]).max() > 1e-4


def test_held_out_forecasts_differ_from_in_sample_ones(tmp_path: Path):
    run = _run(tmp_path)
    models = _trained_experts(run, tmp_path / "models", 0)
    held_out = _held_out(run, models, tmp_path / "state")
    experts = _loaded_experts(run, models)
    in_sample = precompute_expert_outputs(experts, run.windows("train"), 8, torch.device("cpu"))
    assert held_out.shape == in_sample.shape
    assert torch.isfinite(held_out).all()
    assert (held_out - in_sample).abs().max() > 1e-3


def test_the_cache_serves_the_same_experts_and_data_only(tmp_path: Path, monkeypatch):
    from ames.workflows import stacking

    run = _run(tmp_path)
    models = _trained_experts(run, tmp_path / "models", 0)
    ctx = RunContext.load(CFG, tmp_path / "dataset.nc", MASKS, models)
    experts = _loaded_experts(run, models)
    calls = []
    compute = stacking.held_out_expert_outputs
    monkeypatch.setattr(
        stacking, "held_out_expert_outputs", lambda *a, **k: calls.append(1) or compute(*a, **k)
    )

    def cached() -> np.ndarray:
        stored = stacking.cached_held_out_outputs(
            ctx, experts, batch_size=8, device=torch.device("cpu"), cache_dir=tmp_path / "cache"
        )
        return np.load(stored.path)

    first, second = cached(), cached()
    assert len(calls) == 1 and np.array_equal(first, second)
    _trained_experts(run, models, 1)  # other stage-1 checkpoints: recomputed, old set removed
    cached()
    assert len(calls) == 2
    assert [p.suffix for p in (tmp_path / "cache").iterdir() if p.is_file()] == [".npy"]


def test_copies_stage_1_folds_trained_are_read_not_trained_again(tmp_path: Path, monkeypatch):
    """An expert whose folds kept a trained epoch stores its fold copies at that epoch;
    stacking loads them (the same blocks, start and standardisation) and trains nothing."""
    from ames.workflows import stacking

    run = _run(tmp_path)
    models = _trained_experts(run, tmp_path / "models", 1)
    trained: dict[int, list] = {1: [], 2: [], 3: []}
    train_copy = stacking.train_block_copy

    def recording(cfg, brun, index, copy, block, epochs, state_dir):
        train_copy(cfg, brun, index, copy, block, epochs, state_dir)
        trained[index].append({k: v.clone() for k, v in copy.state_dict().items()})

    monkeypatch.setattr(stacking, "train_block_copy", recording)
    by_training = _held_out(run, models, tmp_path / "state_a")
    for index in (1, 2, 3):
        stored = torch.load(expert_checkpoint(index, models), weights_only=True)
        stored["meta"]["extra"][FOLD_STATES] = trained[index]
        torch.save(stored, expert_checkpoint(index, models))

    def refuse(*args, **kwargs):
        raise AssertionError("a copy stage 1's folds trained was trained again")

    monkeypatch.setattr(stacking, "train_block_copy", refuse)
    assert all(len(k.fold_states) == 3 for k in kept_by_stage1(models).values())
    assert torch.equal(_held_out(run, models, tmp_path / "state_b"), by_training)


def test_held_out_forecasts_on_demand_are_made_once_and_only_when_read():
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(12.0).reshape(4, 3)

    outputs = HeldOutOnDemand(compute, 4)
    assert len(outputs) == 4 and not calls
    assert outputs[2].tolist() == [6.0, 7.0, 8.0] and outputs[0][0] == 0.0
    assert len(calls) == 1
    with pytest.raises(ValueError, match="4 held-out expert forecasts for 5 windows"):
        HeldOutOnDemand(compute, 5)[0]


# --------------------------------------------------------------------------- helpers


MASKS = Path()  # set by _run


def _run(root: Path) -> RunInputs:
    global MASKS
    dataset, MASKS = root / "dataset.nc", root / "masks"
    make_small_dataset(n_time=168).to_netcdf(dataset)
    _save_masks(dataset, MASKS)
    return load_run_inputs(CFG, dataset, MASKS)


def _trained_experts(run: RunInputs, models: Path, kept: int) -> Path:
    """Stage-1 checkpoints: the selected linear path and starting weights, each marked as
    having kept epoch ``kept`` (what stacking repeats per block)."""
    models.mkdir(parents=True, exist_ok=True)
    path = fit_run_linear_path(CFG, run)
    for index, expert in enumerate(
        build_experts(CFG, run, load_masks_graph(MASKS, run.masks.valid.shape)), start=1
    ):
        expert.linear.set_weights(path.coef, path.intercept, path.loading)
        meta = {"epoch": kept, "extra": {LINEAR_ALPHA: path.alpha.tolist()}}
        save_checkpoint(expert_checkpoint(index, models), expert, meta)
    assert {i: k.epoch for i, k in kept_by_stage1(models).items()} == {1: kept, 2: kept, 3: kept}
    return models


def _loaded_experts(run: RunInputs, models: Path) -> list[torch.nn.Module]:
    experts = build_experts(CFG, run, load_masks_graph(MASKS, run.masks.valid.shape))
    for index, expert in enumerate(experts, start=1):
        expert.load_state_dict(torch.load(expert_checkpoint(index, models))["model"])
    return experts


def _held_out(run: RunInputs, models: Path, state: Path) -> torch.Tensor:
    graph = load_masks_graph(MASKS, run.masks.valid.shape)
    experts = _loaded_experts(run, models)
    stored = held_out_expert_outputs(
        CFG, run, graph, experts, kept_by_stage1(models), 8, torch.device("cpu"), state,
        state / "held_out.npy",
    )  # fmt: skip
    return torch.from_numpy(np.load(stored.path))


def _with_changed_months(run: RunInputs, months: np.ndarray) -> RunInputs:
    """The run with the standardised anomaly of ``months`` raised by 1.5 everywhere valid."""
    inputs = run.inputs
    valid = run.masks.valid
    anomaly = inputs.anomaly.copy()
    anomaly[months] += 1.5 * valid
    std = run.masks.stats["clim_std"][inputs.months[months]]
    precip = inputs.precip_mm.copy()
    precip[months] += np.where(valid, 1.5 * std, 0.0).astype(np.float32)
    domain = inputs.domain_anomaly.copy()
    domain[months] += 1.5
    changed = dataclasses.replace(inputs, anomaly=anomaly, precip_mm=precip, domain_anomaly=domain)
    raw = run.data.precip.copy()  # what a block's own standardisation reads
    raw[months] += np.where(valid, 1.5 * std, 0.0).astype(raw.dtype)
    data = dataclasses.replace(run.data, precip=raw)
    return dataclasses.replace(run, data=data, inputs=changed)


def test_the_linear_path_is_fitted_once_per_run_and_refitted_when_its_params_change(
    tmp_path: Path, monkeypatch
):
    """``cached_linear_path``: the first stage fits and writes, later ones read the same fit
    back; other ``linear_features`` are another key, so they are fitted anew."""
    from ames.workflows import linear_path_cache

    _run(tmp_path)
    ctx = RunContext.load(CFG, tmp_path / "dataset.nc", MASKS, tmp_path / "models")
    fits = []
    real_fit = linear_path_cache.fit_run_linear_path

    def counting_fit(cfg, run):
        fits.append(cfg.linear_features)
        return real_fit(cfg, run)

    monkeypatch.setattr(linear_path_cache, "fit_run_linear_path", counting_fit)
    first = linear_path_cache.cached_linear_path(ctx)
    again = linear_path_cache.cached_linear_path(ctx)
    assert len(fits) == 1
    for name in ("coef", "intercept", "alpha", "cv_mse", "loading", "gain", "gain_se"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert again.alphas == first.alphas and again.window == first.window
    other = ctx.with_config(CFG.with_overlay({"linear_features": {"smoothing_lags": 2}}))
    linear_path_cache.cached_linear_path(other)
    assert len(fits) == 2 and fits[1].smoothing_lags == 2
    assert len(list((ctx.state_root / "linear_path").glob("*.npz"))) == 1  # the newest only


def test_the_block_refits_of_the_linear_path_are_made_once_and_read_back_bit_for_bit(
    tmp_path: Path, monkeypatch
):
    """``cached_block_linear_paths``: the expert stages, stacking and fine-tuning refit the
    same paths on the same blocks; the first call refits and writes, the next reads the same
    arrays back; other penalties are another key."""
    from ames.workflows import linear_path_cache

    _run(tmp_path)
    ctx = RunContext.load(CFG, tmp_path / "dataset.nc", MASKS, tmp_path / "models")
    blocks = fold_blocks(CFG, ctx.run)
    runs = block_runs(ctx.run, blocks)
    alpha = linear_path_cache.cached_linear_path(ctx).alpha
    refits = []
    real = linear_path_cache.blocks_module.block_linear_paths

    def counting(cfg, bruns, bblocks, a):
        refits.append(a)
        return real(cfg, bruns, bblocks, a)

    monkeypatch.setattr(linear_path_cache.blocks_module, "block_linear_paths", counting)
    first = linear_path_cache.cached_block_linear_paths(ctx, runs, blocks, alpha)
    again = linear_path_cache.cached_block_linear_paths(ctx, runs, blocks, alpha)
    assert len(refits) == 1 and len(again) == len(blocks)
    direct = real(CFG, runs, blocks, alpha)
    for got, want in zip(again, direct, strict=True):
        for a, b in zip(got, want, strict=True):
            assert (a is None and b is None) or np.array_equal(a, b)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    linear_path_cache.cached_block_linear_paths(ctx, runs, blocks, alpha * 10)
    assert len(refits) == 2
    assert len(list((ctx.state_root / "block_linear_paths").glob("*.npz"))) == 1


def test_a_sample_file_reads_back_what_was_written_in_any_order(tmp_path: Path):
    values = np.random.default_rng(0).normal(size=(6, 3, 2, 4)).astype(np.float32)
    stored = SampleFile.create(tmp_path / "s.npy", values.shape)
    for index in (4, 0, 5, 2, 1, 3):
        stored.write(index, values[index : index + 1])
    assert np.array_equal(np.load(stored.path), values)
    assert np.array_equal(SampleFile(stored.path).read(1, 3), values[1:4])
    assert np.array_equal(stored[5], values[5])
    with pytest.raises(IndexError, match="sample 6 outside 0..5"):
        stored.write(5, values[:2])
    with pytest.raises(ValueError, match="expected"):
        stored.write(0, values[:1, :2])


def test_forecasts_in_micro_batches_are_the_whole_batches(tmp_path: Path):
    """``collect_forecasts`` with ``max_batch_cells`` (evaluation, calibration, validation
    scores) forecasts pieces of at most that many samples x cells and gives the whole
    batches' forecasts, in the same order."""
    run = _run(tmp_path)
    expert = build_experts(CFG, run, load_masks_graph(MASKS, run.masks.valid.shape))[1].eval()
    sizes: list[int] = []

    def forecast(batch: dict) -> torch.Tensor:
        sizes.append(len(batch["x"]))
        return expert_forecast_mm(expert, run)(batch)

    clim, cells = run.masks.stats["clim_mean"], int(run.masks.valid.size)
    cpu = torch.device("cpu")
    whole = collect_forecasts(forecast, run.windows("val"), clim, 8, cpu)
    whole_sizes, sizes[:] = list(sizes), []
    pieces = collect_forecasts(forecast, run.windows("val"), clim, 8, cpu, 3 * cells)
    assert max(whole_sizes) > 3 and max(sizes) <= 3 and sum(sizes) == len(whole["origin"])
    for key in ("pred", "obs", "clim", "origin"):
        np.testing.assert_allclose(pieces[key], whole[key], rtol=1e-6, atol=1e-4)
