"""``RunContext`` (``ames.workflows.context``): a stage's run, loaded once and shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from config_helpers import config_with
from conftest import make_small_dataset
from test_inference import PARAMS, _save_masks

from ames.paths import STATE
from ames.run import run_fingerprint
from ames.workflows.context import RunContext

CFG = config_with(PARAMS)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    root = tmp_path_factory.mktemp("context")
    make_small_dataset().to_netcdf(root / "dataset.nc")
    _save_masks(root / "dataset.nc", root / "masks")
    return RunContext.load(CFG, root / "dataset.nc", root / "masks", root / "models")


def test_load_reads_the_inputs_and_the_graph_of_the_masks(ctx: RunContext):
    assert ctx.state_root == ctx.models_dir / STATE
    assert ctx.graph.grid_shape == ctx.run.masks.valid.shape
    assert np.array_equal(ctx.graph.valid_mask().numpy(), ctx.run.masks.valid)
    files = ctx.models_dir / "x.pt"
    files.parent.mkdir(parents=True, exist_ok=True)
    files.write_bytes(b"x")
    expected = run_fingerprint(CFG, ["seed", "gating"], ctx.dataset, ctx.masks_dir, files)
    assert ctx.fingerprint(["seed", "gating"], files) == expected


def test_other_params_share_the_inputs_unless_their_features_differ(ctx: RunContext):
    member = ctx.with_config(CFG.with_seed(CFG.seed + 1))
    assert member.cfg.seed == CFG.seed + 1
    assert member.run is ctx.run and member.graph is ctx.graph
    other = ctx.with_config(CFG.with_overlay({"features": {"target_transform": "normalized"}}))
    assert other.run is not ctx.run and other.graph is ctx.graph
    assert (other.run.transform.kind, ctx.run.transform.kind) == ("normalized", "anomaly")


def test_in_folder_moves_checkpoints_and_state_only(ctx: RunContext, tmp_path: Path):
    moved = ctx.in_folder(tmp_path / "m", tmp_path / "s")
    assert (moved.models_dir, moved.state_root) == (tmp_path / "m", tmp_path / "s")
    assert moved.run is ctx.run and moved.cfg is ctx.cfg and moved.dataset == ctx.dataset
