"""DVC stage `inference`: forecast the 12 months after the last month of a dataset.

Default (the pipeline stage): forecasts from ``data/processed/dataset.nc`` with the seed
ensemble (the mean of the ``seeds`` members' forecasts; ``--checkpoint`` picks others).
Any other file in the SPEC §2.1 schema on the training grid works too, without retraining,
e.g. ``python stages/inference.py --dataset my_new_data.nc --out predictions/my_forecast.nc``
(writes ``predictions/my_forecast_metadata.json`` and ``plots/inference/my_forecast_maps.png``
beside it unless --metadata / --plot say otherwise).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _src_path  # noqa: F401  (this checkout's src before ames)
import numpy as np
import xarray as xr

from ames.cli import stage_main
from ames.config import AmesConfig
from ames.data.netcdf import write_netcdf
from ames.evaluation.probabilistic import shrink_to_climatology
from ames.io import write_json
from ames.paths import DATASET, FORECAST, MASKS, MODELS, PREDICTIVE
from ames.plotting.probabilistic import plot_tercile_outlook
from ames.workflows.inference import (
    companion_paths,
    forecast_from_dataset,
    forecast_metadata,
    plot_forecast,
)
from ames.workflows.probabilistic import load_climatology_weights, load_predictive
from ames.workflows.probabilistic_products import add_products, forecast_products
from ames.workflows.seeds import final_checkpoints

log = logging.getLogger("ames.inference")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=str(DATASET), help="NetCDF in the SPEC §2.1 schema")
    parser.add_argument(
        "--checkpoint",
        nargs="+",
        default=None,
        help="one or more final checkpoints (several: their mean); default: the seed ensemble",
    )
    parser.add_argument("--masks", default=str(MASKS), help="masks outputs of the training run")
    parser.add_argument(
        "--models", type=Path, default=MODELS, help="the training run's checkpoints folder"
    )
    parser.add_argument("--out", default=str(FORECAST))
    parser.add_argument(
        "--metadata",
        default=None,
        help="default: predictions/metadata.json, or <out stem>_metadata.json for another --out",
    )
    parser.add_argument("--plot", default=None, help="default: plots/inference/<out stem>_maps.png")
    parser.add_argument(
        "--predictive",
        default=str(PREDICTIVE),
        help="predictive distribution of the training run (stage calibrate)",
    )
    parser.add_argument(
        "--outlook", default=None, help="default: beside --plot, <stem>_outlook.png"
    )
    parser.add_argument(
        "--outlook-months", type=int, default=3, help="target months in the tercile outlook"
    )


def outlook_path_for(plot_path: Path) -> Path:
    """``plots/inference/forecast_maps.png`` → ``plots/inference/forecast_outlook.png``."""
    stem = plot_path.stem.removesuffix("_maps")
    return plot_path.with_name(f"{stem}_outlook.png")


def shrunk_forecast(forecast: xr.Dataset, weights: np.ndarray) -> xr.Dataset:
    """``precip`` = climatology + w (model − climatology) per lead; the model's own forecast
    stays as ``precip_model``."""
    model = forecast["precip"]
    clim = forecast["climatology"].values
    shrunk = shrink_to_climatology(model.values[None], clim[None], weights)[0]
    out = forecast.assign(precip_model=model.copy())
    out["precip_model"].attrs["long_name"] = "AMES model forecast before the climatology weight"
    out["precip"] = (model.dims, shrunk, {**model.attrs, "climatology_weight_by_lead": weights})
    return out


def with_probabilities(forecast: xr.Dataset, cfg: AmesConfig, predictive_path: str) -> xr.Dataset:
    """The forecast shrunk toward climatology by the calibrated weight of each lead, with the
    quantiles and tercile probabilities of the calibrated distribution."""
    forecast = shrunk_forecast(forecast, load_climatology_weights(predictive_path))
    levels = cfg.probabilistic.quantiles
    valid = np.isfinite(forecast["climatology"].values[0])
    target_month = forecast["time"].dt.month.values - 1
    products = forecast_products(
        forecast["precip"].values, target_month, load_predictive(predictive_path), valid, levels
    )
    return add_products(forecast, products, valid, levels, ("time",))


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    checkpoints = args.checkpoint or [str(p) for p in final_checkpoints(cfg, args.models).values()]
    checkpoint = checkpoints[0] if len(checkpoints) == 1 else checkpoints
    forecast = forecast_from_dataset(cfg, args.dataset, checkpoint=checkpoint, masks_dir=args.masks)
    forecast = with_probabilities(forecast, cfg, args.predictive)
    metadata_path, plot_path = companion_paths(args.out, args.metadata, args.plot)
    write_netcdf(forecast, args.out)
    metadata = forecast_metadata(forecast, cfg, dataset_path=args.dataset, checkpoint=checkpoint)
    write_json(metadata_path, metadata)
    plot_forecast(forecast, plot_path)
    outlook_path = args.outlook or outlook_path_for(plot_path)
    months = forecast["time"].dt.strftime("%Y-%m").values[: args.outlook_months]
    plot_tercile_outlook(
        forecast["tercile_probability"].values[: len(months)],
        forecast["latitude"].values,
        forecast["longitude"].values,
        list(months),
        outlook_path,
    )
    log.info(
        "forecast %s -> %s written to %s (%s, %s)",
        metadata["target_months"][0],
        metadata["target_months"][-1],
        args.out,
        metadata_path,
        plot_path,
    )


main = stage_main(
    "inference", __doc__, add_arguments, run, params_help="the params the model was trained with"
)

if __name__ == "__main__":
    main()
