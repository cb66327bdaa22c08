"""Spatial tiles with a halo (ames.models.tiling): the ConvLSTM expert run in tiles gives the
whole-grid forecasts and gradients, and a halo below its receptive radius does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from graph_fixtures import synthetic_grid_graph

from ames.config import Reader, read_expert_model
from ames.models.experts import build_expert
from ames.models.tiling import axis_tiles, needs_tiles, tile_side, tiled
from ames.windows import N_CHANNELS, N_CONTEXT

WINDOW, HORIZON = 12, 4
GRID = (19, 23)


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def convlstm(tile_cells: int | None, **keys) -> torch.nn.Module:
    model = {
        "hidden": [4, 4],
        "kernel_size": 3,
        "recurrent_conv": "separable",
        "temporal_patch": 4,
        "dropout": 0.0,
        "linear_path": True,
        "tile_cells": tile_cells,
        **keys,
    }
    typed = read_expert_model(Reader(), "convlstm", model, "expert2.model", WINDOW)
    torch.manual_seed(3)
    expert = build_expert(
        "convlstm",
        typed,
        n_features=N_CHANNELS,
        window=WINDOW,
        horizon=HORIZON,
        graph=synthetic_grid_graph(np.ones(GRID, dtype=bool), n_neighbors=4, seed=1),
    )
    with torch.no_grad():  # a trained-looking expert: head and linear path away from 0
        for p in expert.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return expert


def inputs(batch: int = 2) -> torch.Tensor:
    x = torch.randn(batch, WINDOW, N_CHANNELS, *GRID, generator=torch.Generator().manual_seed(0))
    x[:, :, -N_CONTEXT:] = x[:, -1:, -N_CONTEXT:]
    return x


def same_weights(tile_cells: int | None) -> torch.nn.Module:
    whole = convlstm(None)
    expert = convlstm(tile_cells)
    expert.load_state_dict(whole.state_dict())
    return expert


@pytest.mark.parametrize("n, tile, halo", [(19, 7, 4), (23, 5, 0), (10, 10, 3), (7, 3, 9)])
def test_axis_tiles_cover_every_cell_once_and_crop_the_halo(n: int, tile: int, halo: int):
    tiles = axis_tiles(n, tile, halo)
    covered = [i for t in tiles for i in range(n)[t.core]]
    assert covered == list(range(n))
    for t in tiles:
        assert t.core.stop - t.core.start <= tile
        assert t.crop.start == max(0, t.core.start - halo)
        assert t.crop.stop == min(n, t.core.stop + halo)
        assert list(range(n)[t.crop][t.inner]) == list(range(n)[t.core])


def test_receptive_radius_counts_steps_and_layers() -> None:
    assert convlstm(None).receptive_radius == 1 * (12 // 4 + 2 - 1)
    assert convlstm(None, kernel_size=5, hidden=[4]).receptive_radius == 2 * 3


def test_tiled_forecasts_equal_the_whole_grid_forecasts() -> None:
    x = inputs()
    whole, tiles = same_weights(None).eval(), same_weights(49).eval()  # 7 x 7 tiles
    assert needs_tiles(GRID, 49) and not needs_tiles(GRID, None)
    assert not needs_tiles(GRID, 19 * 23) and needs_tiles(GRID, 19 * 23 - 1)
    assert tile_side(49) == tile_side(55) == 7 and tile_side(65536) == 256
    with torch.no_grad():
        expected, got = whole(x), tiles(x)
    assert got.shape == expected.shape == (2, HORIZON, *GRID)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_tiled_training_gradients_equal_the_whole_grid_gradients() -> None:
    x, target = inputs(), torch.randn(2, HORIZON, *GRID)
    grads = []
    for tile_cells in (None, 36):  # 6 x 6 tiles
        expert = same_weights(tile_cells).train()
        torch.nn.functional.mse_loss(expert(x), target).backward()
        grads.append({n: p.grad for n, p in expert.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 4
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_halo_below_the_receptive_radius_changes_the_forecasts() -> None:
    expert = same_weights(None).eval()
    x = inputs()
    with torch.no_grad():
        whole = expert.network(x)
        exact = tiled(expert.network, x, 7, expert.receptive_radius)
        short = tiled(expert.network, x, 7, expert.receptive_radius - 1)
    torch.testing.assert_close(exact, whole, rtol=1e-5, atol=1e-5)
    assert (short - whole).abs().max() > 1e-3
