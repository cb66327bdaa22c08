"""Stage `inference`: the 12 months after the last month of a dataset, from a trained model.

Nothing is retrained or re-estimated. Normalisation statistics, climatology, context
features and the graph all come from the training run's ``masks`` outputs; the dataset only
supplies the last ``input_window`` months of precipitation before the forecast origin (its
last month). The dataset must follow SPEC §2.1 and lie on the training grid: the same
latitudes and longitudes and the same valid (not always-NaN) cells.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor

from ames import __version__
from ames.climatology import target_months
from ames.config import AmesConfig, params_hash
from ames.data.dataset import GridData, load_grid_data
from ames.data.errors import DataError
from ames.data.schema import first_location, month_label, validate_dataset
from ames.io import sha256_file
from ames.masks_io import MaskBundle, load_masks
from ames.models.ames import AMESModel
from ames.models.graph import load_masks_graph
from ames.paths import CHECKPOINT, FORECAST, INFERENCE_PLOTS, MASKS, METADATA
from ames.plotting.forecast import plot_forecast_maps
from ames.run import RunInputs, build_run_inputs, check_input_window
from ames.training.device import select_device
from ames.windows import window_inputs
from ames.workflows.ames_model import load_ames_model

log = logging.getLogger("ames.inference")

CREATED_BY = f"ames {__version__} (stages/inference.py)"
COORD_ATOL_DEG = 1e-4  # masks store cell coordinates as float32
ELEVATION_TOL_M = 1.0
EXPERT_LONG_NAME = "expert: 1 = GNN-TAT (high zone), 2 = ConvLSTM (low zone), 3 = hybrid (medium)"
_REGRID_FIX = (
    "put the data on the training grid (same bounding box, resolution and no-data cells as "
    "the dataset the model was trained on), or retrain on this grid with `dvc repro`"
)


# ----------------------------------------------------------------------------- inputs


def load_checked_dataset(path: str | Path) -> GridData:
    """Read a dataset after checking it against SPEC §2.1 (``DataError`` naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", "pass an existing NetCDF file with --dataset")
    with xr.open_dataset(path) as ds:
        validate_dataset(ds, str(path))
    return load_grid_data(path)


def check_same_grid(data: GridData, masks: MaskBundle, source: str | Path) -> None:
    """Raise ``DataError`` unless ``data`` has the training grid and valid cells."""
    shape = masks.valid.shape
    if data.valid.shape != shape:
        raise DataError(
            source,
            f"the grid has {data.valid.shape[0]} x {data.valid.shape[1]} cells (latitude x "
            f"longitude) but the model was trained on {shape[0]} x {shape[1]}",
            _REGRID_FIX,
        )
    lat, lon = np.meshgrid(data.lat, data.lon, indexing="ij")
    for name, new, trained in (
        ("latitude", lat, masks.context_field("latitude")),
        ("longitude", lon, masks.context_field("longitude")),
    ):
        off = masks.valid & ~np.isclose(new, trained, rtol=0.0, atol=COORD_ATOL_DEG)
        if off.any():
            i = tuple(np.argwhere(off)[0])
            raise DataError(
                source,
                f"{name} differs from the training grid at {int(off.sum())} cells "
                f"(first: {new[i]:.4f} here, {trained[i]:.4f} in training)",
                _REGRID_FIX,
            )
    _check_same_valid(data, masks.valid, source)


def _check_same_valid(data: GridData, valid: np.ndarray, source: str | Path) -> None:
    differs = data.valid != valid
    if differs.any():
        raise DataError(
            source,
            f"the valid cells differ from the training domain: {int((valid & ~data.valid).sum())}"
            f" training cells are NaN at every time here and {int((data.valid & ~valid).sum())}"
            " cells outside it have data (first at "
            f"{first_location(differs, latitude=data.lat, longitude=data.lon)})",
            _REGRID_FIX,
        )


def check_history(data: GridData, window: int, source: str | Path) -> None:
    """Raise ``DataError`` if fewer than ``window`` months precede (and include) the origin."""
    if len(data.times) < window:
        raise DataError(
            source,
            f"it holds {len(data.times)} months but the model needs input_window = {window} "
            "months of history up to the forecast origin",
            f"supply at least {window} consecutive months ending at the month to forecast from",
        )


def _warn_if_other_terrain(data: GridData, masks: MaskBundle, source: str | Path) -> None:
    trained = masks.elevation
    gap = np.abs(data.elevation - trained)[masks.valid]
    if gap.size and np.nanmax(gap) > ELEVATION_TOL_M:
        log.warning(
            "%s: elevation differs from the training DEM by up to %.0f m; the model uses the "
            "training terrain",
            source,
            float(np.nanmax(gap)),
        )


def load_forecast_run(
    cfg: AmesConfig, dataset_path: str | Path, masks_dir: str | Path = MASKS
) -> RunInputs:
    """Dataset + the training run's masks outputs, checked and normalised (training stats)."""
    data = load_checked_dataset(dataset_path)
    masks = load_masks(masks_dir)
    fix = "use the params the model was trained with"
    window = check_input_window(cfg, masks, masks_dir, fix)
    check_same_grid(data, masks, dataset_path)
    check_history(data, window, dataset_path)
    _warn_if_other_terrain(data, masks, dataset_path)
    return build_run_inputs(cfg, data, masks, window)


def origin_batch(run: RunInputs, origin: int | None = None) -> dict[str, Tensor]:
    """The model batch (size 1) for forecast origin ``origin`` (default: the last month).

    ``x`` comes from ``ames.windows.window_inputs``, the function ``WindowDataset`` uses, so
    the channel layout is the one the model was trained on; ``target_month`` covers the
    ``run.horizon`` months after the origin, which need not be in the data.
    """
    t = len(run.data.times) - 1 if origin is None else int(origin)
    x = window_inputs(run.inputs, t, run.window)
    return {
        "x": torch.from_numpy(x)[None],
        "target_month": torch.from_numpy(target_months(run.inputs.months[[t]], run.horizon)),
        "origin_month": torch.as_tensor(run.inputs.months[[t]], dtype=torch.int64),
    }


# ----------------------------------------------------------------------------- forecast


@torch.no_grad()
def predict(model: AMESModel, batch: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """One origin: ``pred`` ``[H, lat, lon]``, ``experts`` ``[3, H, lat, lon]`` (mm/month,
    clipped at 0) and routing ``weights`` ``[3, lat, lon]``."""
    model.eval()
    device = next(model.parameters()).device
    out = model({k: v.to(device) for k, v in batch.items()})
    return {
        "pred": out["pred_mm"][0].float().cpu().numpy(),
        "experts": out["experts_mm"][0].clamp_min(0.0).float().cpu().numpy(),
        "weights": out["weights"][0].float().cpu().numpy(),
    }


def predict_ensemble(models: Sequence[AMESModel], batch: Mapping[str, Tensor]) -> dict:
    """``predict`` averaged over the members of a seed ensemble (forecast, experts, weights)."""
    outputs = [predict(model, batch) for model in models]
    return {key: np.mean([out[key] for out in outputs], axis=0) for key in outputs[0]}


def _data_vars(
    outputs: Mapping[str, np.ndarray], clim: np.ndarray, valid: np.ndarray
) -> dict[str, tuple]:
    """Forecast variables as ``(dims, float32 values NaN outside valid, attrs)``."""
    grid, mm = ("time", "latitude", "longitude"), "mm/month"
    specs = {
        "precip": (grid, outputs["pred"], "AMES forecast of monthly precipitation", mm),
        "expert_spread": (
            grid,
            outputs["experts"].std(axis=0),
            "standard deviation across the three experts' forecasts (uncertainty)",
            mm,
        ),
        "climatology": (grid, clim, "training-period climatology of the target month", mm),
        "weight": (
            ("expert", "latitude", "longitude"),
            outputs["weights"],
            "routing weight of each expert (depends on the origin month only)",
            "1",
        ),
    }
    return {
        name: (
            dims,
            np.where(valid, values, np.nan).astype(np.float32),
            {"units": units, "long_name": long_name},
        )
        for name, (dims, values, long_name, units) in specs.items()
    }


def forecast_dataset(
    outputs: Mapping[str, np.ndarray], run: RunInputs, attrs: Mapping[str, Any]
) -> xr.Dataset:
    """CF-style forecast of the ``run.horizon`` months after the data's last month."""
    origin = run.data.times[-1]
    times = pd.date_range(origin + pd.DateOffset(months=1), periods=run.horizon, freq="MS")
    clim = run.masks.stats["clim_mean"][target_months(run.inputs.months[[-1]], run.horizon)[0]]
    ds = xr.Dataset(
        _data_vars(outputs, clim, run.masks.valid),
        coords={
            "time": times,
            "lead": ("time", np.arange(1, run.horizon + 1, dtype=np.int32)),
            "expert": np.arange(1, outputs["weights"].shape[0] + 1, dtype=np.int32),
            "latitude": run.data.lat,
            "longitude": run.data.lon,
        },
        attrs={"Conventions": "CF-1.8", **attrs},
    )
    _coordinate_attrs(ds)
    return ds


def _coordinate_attrs(ds: xr.Dataset) -> None:
    ds["time"].attrs.update(standard_name="time", long_name="target month (month start)", axis="T")
    ds["lead"].attrs.update(units="months", long_name="forecast lead (target = origin + lead)")
    ds["expert"].attrs.update(long_name=EXPERT_LONG_NAME)
    ds["latitude"].attrs.update(
        standard_name="latitude", long_name="latitude", units="degrees_north", axis="Y"
    )
    ds["longitude"].attrs.update(
        standard_name="longitude", long_name="longitude", units="degrees_east", axis="X"
    )


def forecast_from_dataset(
    cfg: AmesConfig,
    dataset_path: str | Path,
    *,
    checkpoint: str | Path | Sequence[str | Path] = CHECKPOINT,
    masks_dir: str | Path = MASKS,
) -> xr.Dataset:
    """Forecast the ``horizon`` months after the last month of ``dataset_path``.

    ``cfg`` must be the params the checkpoint was trained with; ``masks_dir`` holds that
    training run's ``masks`` outputs (statistics, climatology, context, graph). Several
    checkpoints (a seed ensemble) give the mean of their forecasts, experts and weights.
    """
    run = load_forecast_run(cfg, dataset_path, masks_dir)
    graph = load_masks_graph(masks_dir, run.masks.valid.shape)
    paths = [checkpoint] if isinstance(checkpoint, str | Path) else list(checkpoint)
    device = select_device(cfg.train.device)
    models = [
        load_ames_model(cfg, run, graph, Path(path), stage="finetune").to(device) for path in paths
    ]
    origin = month_label(run.data.times[-1].to_datetime64())
    log.info("forecasting %d months after %s from %s", run.horizon, origin, dataset_path)
    attrs = {
        "title": "AMES monthly precipitation forecast",
        "source": "AMES inference stage",
        "origin_month": origin,
        "checkpoint": ", ".join(map(str, paths)),
        "seed_ensemble_members": len(paths),
        "dataset": str(dataset_path),
        "masks_dir": str(masks_dir),
        "climatology_period": " to ".join(run.masks.split["train_months"]),
        "input_window": run.window,
        "horizon": run.horizon,
    }
    return forecast_dataset(predict_ensemble(models, origin_batch(run)), run, attrs)


# ----------------------------------------------------------------------------- reports


def target_month_labels(ds: xr.Dataset) -> list[str]:
    return [month_label(t) for t in ds["time"].values]


def forecast_metadata(
    ds: xr.Dataset,
    cfg: AmesConfig,
    *,
    dataset_path: str | Path,
    checkpoint: str | Path | Sequence[str | Path],
) -> dict[str, Any]:
    """Provenance of a forecast: origin, targets, and checkpoint / params / data hashes.

    ``params_sha256`` is ``ames.config.params_hash`` of the effective params (profile applied).
    A seed ensemble lists its checkpoints and their hashes in member order.
    """
    if isinstance(checkpoint, str | Path):
        path, digest = str(checkpoint), sha256_file(checkpoint)
    else:
        path, digest = [str(p) for p in checkpoint], [sha256_file(p) for p in checkpoint]
    return {
        "origin_month": ds.attrs["origin_month"],
        "target_months": target_month_labels(ds),
        "checkpoint": path,
        "checkpoint_sha256": digest,
        "params_sha256": params_hash(cfg.raw),
        "dataset": str(dataset_path),
        "data_sha256": sha256_file(dataset_path),
        "masks_dir": ds.attrs["masks_dir"],
        "created_by": CREATED_BY,
    }


def companion_paths(
    out: str | Path, metadata: str | Path | None = None, plot: str | Path | None = None
) -> tuple[Path, Path]:
    """Metadata and plot paths of a forecast file, where not given explicitly.

    The default forecast gets ``predictions/metadata.json`` and
    ``plots/inference/forecast_maps.png``; any other ``out`` gets names derived from its own
    (``<stem>_metadata.json`` beside it, ``plots/inference/<stem>_maps.png``), so a forecast
    from another dataset never overwrites the pipeline's outputs.
    """
    out = Path(out)
    if metadata is None:
        metadata = METADATA if out == FORECAST else out.with_name(f"{out.stem}_metadata.json")
    if plot is None:
        plot = INFERENCE_PLOTS / f"{out.stem}_maps.png"
    return Path(metadata), Path(plot)


def plot_forecast(ds: xr.Dataset, path: str | Path) -> Path:
    """The forecast maps (one panel per target month, shared mm/month colour bar)."""
    titles = [
        f"{label} (lead {lead})"
        for label, lead in zip(target_month_labels(ds), ds["lead"].values, strict=True)
    ]
    return plot_forecast_maps(
        ds["precip"].values,
        ds["latitude"].values,
        ds["longitude"].values,
        titles,
        path,
        suptitle=f"AMES forecast from {ds.attrs['origin_month']} (mm/month)",
    )
