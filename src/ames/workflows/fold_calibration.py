"""The spread scales and tercile weights of AMES's predictive distribution, decided on the folds.

The gating stage's fold copies forecast every training origin out of fold (``ames.training.
folds``, each block standardised without its targets: ``ames.workflows.blocks``). At the kept
epoch, with the leads given to an expert alone and the weights toward climatology applied,
those forecasts are what AMES would have published for a block it never saw. They are dressed
as ``calibrate`` dresses the test forecasts (``ames.evaluation.predictive``), each block with
the climatological ensemble and tercile edges of the training months outside its targets, and
the spread scale per lead (lowest mean CRPS, at or above the floors the folds support) and
then the tercile weight per lead (lowest mean RPS) are fitted on them, as ``calibrate`` fitted
them on the 37 validation origins before. ``probabilistic.calibration_origins`` evenly spaced
training origins are used (all of them when fewer), on at most ``probabilistic.calibration_cells``
valid cells (every n-th, row-major; all of them on Boyacá): the cost and memory stay those of the
default run on a long record or a large domain.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ames.climatology import target_months
from ames.config import ProbabilisticConfig
from ames.evaluation.predictive import (
    Predictive,
    climatological_ensemble,
    ratio_ensemble,
    tercile_edges,
)
from ames.evaluation.probabilistic import fit_spread_scales, spread_floors
from ames.models.ames import AMESModel
from ames.run import RunInputs
from ames.training.folds import FoldRun
from ames.training.losses import micro_batches, to_device
from ames.workflows.blocks import HeldOutBlock, block_training_months
from ames.workflows.probabilistic import (
    add_reference_crps,
    fit_tercile_weights,
    tercile_weight_caps,
)

log = logging.getLogger("ames.fold_calibration")


def calibration_rows(blocks: list[HeldOutBlock], n_origins: int) -> list[np.ndarray]:
    """Per block, the positions (in its forecast origins) of ``n_origins`` training origins
    evenly spaced over all blocks (every origin when there are fewer)."""
    origins = np.concatenate([b.forecast for b in blocks])
    chosen = origins
    if n_origins < len(origins):
        chosen = origins[np.unique(np.linspace(0, len(origins) - 1, n_origins).round().astype(int))]
    return [np.flatnonzero(np.isin(b.forecast, chosen)) for b in blocks]


def calibration_cells(valid: np.ndarray, budget: int | None) -> np.ndarray:
    """Flat indices (row-major) of the valid cells the calibration reads: all of them, or,
    where there are more than ``budget``, every ``ceil(count / budget)``-th. Neighbouring
    cells' errors are strongly correlated, so a large domain loses little."""
    cells = np.flatnonzero(np.asarray(valid, dtype=bool))
    if budget is None or cells.size <= budget:
        return cells
    return cells[:: math.ceil(cells.size / budget)]


@torch.no_grad()
def published_held_out(
    model: AMESModel,
    run: FoldRun,
    rows: np.ndarray,
    climatology_weights: np.ndarray,
    batch_size: int,
    device: torch.device,
    max_cells: int | None,
    cells: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(forecast, truth)`` mm/month ``[S, H, C]`` on the grid ``cells`` (flat indices) of a
    fold copy's held-out windows ``rows``: the published forecast (the leads given to an
    expert alone are the model's), shrunk toward the block's climatology by
    ``climatology_weights``."""
    model.eval().to(device)
    weights = torch.as_tensor(climatology_weights, dtype=torch.float32, device=device)
    forecasts, truths = [], []
    for raw in DataLoader(Subset(run.held_out, rows.tolist()), batch_size=batch_size):
        for piece in micro_batches(to_device(raw, device), max_cells):
            shrunk = model(piece)["pred"] * weights[None, :, None, None]
            mm = model.transform.to_mm(shrunk, piece["target_month"]).clamp_min(0.0)
            forecasts.append(on_cells(mm.cpu().numpy(), cells))
            truths.append(on_cells(piece["y_mm"].cpu().numpy(), cells))
    return np.concatenate(forecasts), np.concatenate(truths)


def on_cells(values: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``values`` ``[..., lat, lon]`` on the grid ``cells`` (flat indices): ``[..., C]``."""
    return values.reshape(*values.shape[:-2], -1)[..., cells]


def block_climatology(run: RunInputs, blocks: list[HeldOutBlock], cells: np.ndarray):
    """The climatological ensembles' ratios and means and the tercile edges of each block's
    training months on the grid ``cells``, stacked ``[blocks · 12, ..., C]`` (row
    ``b · 12 + month``), with one member count (the smallest over blocks)."""
    uses = [block_training_months(run, block) for block in blocks]
    precip, months = on_cells(np.asarray(run.data.precip), cells), run.data.months
    members = min(climatological_ensemble(precip, months, use).shape[1] for use in uses)
    ratios, means, edges = [], [], []
    for use in uses:
        r, mean = ratio_ensemble(climatological_ensemble(precip, months, use, members))
        ratios.append(r.astype(np.float32))
        means.append(mean)
        edges.append(tercile_edges(precip, months, use))
    return np.concatenate(ratios), np.concatenate(means), np.concatenate(edges)


def calibrate_on_folds(
    run: RunInputs,
    blocks: list[HeldOutBlock],
    fold_models: list[AMESModel],
    fold_runs: list[FoldRun],
    climatology_weights: np.ndarray,
    cv_floors: np.ndarray,
    options: ProbabilisticConfig,
    batch_size: int,
    device: torch.device,
    max_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Spread scale and tercile weight per lead fitted on the out-of-fold published forecasts
    of ``fold_models`` (each at the kept epoch), and a report. ``cv_floors`` ``[H]``: the
    least spread the folds support (``calibrate`` keeps the scales at or above them, as does
    the fit here; with ``options.spread_floor`` also at or above the forecasts' own
    ``spread_floors``); a lead whose floor is 1 gets tercile weight 0. Fitted on
    ``options.calibration_origins`` origins (:func:`calibration_rows`) and at most
    ``options.calibration_cells`` valid cells (:func:`calibration_cells`)."""
    cells = calibration_cells(run.masks.valid, options.calibration_cells)
    block_rows = calibration_rows(blocks, options.calibration_origins)
    points, truths, codes, climate = [], [], [], []
    members = zip(blocks, fold_models, fold_runs, block_rows, strict=True)
    for b, (block, model, fold, rows) in enumerate(members):
        if rows.size == 0:
            continue
        point, obs = published_held_out(
            model, fold, rows, climatology_weights, batch_size, device, max_cells, cells
        )
        month = target_months(run.inputs.months[block.forecast[rows]], run.horizon)
        offset = on_cells(model.transform.offset.cpu().numpy(), cells)  # the block's climatology
        points.append(point)
        truths.append(obs)
        codes.append(b * 12 + month)
        climate.append(offset[month])
    point, obs, code, clim = (np.concatenate(a) for a in (points, truths, codes, climate))
    ratios, means, edges = block_climatology(run, blocks, cells)
    valid = np.ones(cells.size, dtype=bool)  # the arrays hold the chosen cells only
    floors = np.asarray(cv_floors, dtype=np.float64)
    if options.spread_floor:
        floors = np.maximum(floors, spread_floors(point, obs, clim, valid))
    scales, rows = fit_spread_scales(
        point, obs, code, ratios, valid, options.spread_scale_bounds, floors
    )
    report: dict[str, Any] = {"by_lead": rows}
    dressed = Predictive(ratios, edges, scales, means)
    caps = tercile_weight_caps(cv_floors)
    weights = fit_tercile_weights(dressed, point, obs, code, valid, report, caps)
    add_reference_crps({"ames": report}, obs, code, ratios, means, valid)
    report.update(
        decided_on="folds",
        n_origins=int(len(point)),
        n_cells=int(cells.size),
        members=int(ratios.shape[1]),
        spread_scale_by_lead=scales.tolist(),
        tercile_weight_by_lead=weights.tolist(),
    )
    log.info(
        "folds: spread scale by lead %s, tercile weight by lead %s (%d out-of-fold origins)",
        np.round(scales, 2).tolist(), np.round(weights, 2).tolist(), len(point),
    )  # fmt: skip
    return scales, weights, report
