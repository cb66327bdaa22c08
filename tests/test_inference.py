"""Stage `inference`: forecasts from a dataset with a saved (untrained, tiny) AMES model."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml
from config_helpers import config_with, params_with
from conftest import make_small_dataset

from ames.climatology import target_months, training_month_mask
from ames.config import params_hash
from ames.data.dataset import load_grid_data
from ames.data.errors import DataError
from ames.data.netcdf import write_netcdf
from ames.masks import (
    GraphConfig,
    build_graph,
    context_features,
    make_split,
    training_statistics,
    zone_masks,
)
from ames.masks_io import MaskBundle, load_masks, save_masks
from ames.models.experts import build_experts
from ames.models.graph import load_masks_graph
from ames.run import load_run_inputs
from ames.training.checkpoints import save_checkpoint
from ames.windows import N_CHANNELS, WindowDataset
from ames.workflows.ames_model import assemble_model, load_ames_model
from ames.workflows.inference import (
    companion_paths,
    forecast_from_dataset,
    forecast_metadata,
    load_forecast_run,
    origin_batch,
)
from ames.workflows.probabilistic import climatological_parts, predictive_dataset

ROOT = Path(__file__).resolve().parents[1]
W, H, TEST, VAL = 6, 12, 30, 24
PARAMS = {
    "seed": 0,
    "features": {"input_window": W, "target_transform": "anomaly"},
    "train": {"device": "cpu"},
    "zones": {"high_min_m": 3000, "low_max_m": 2000},
    "probabilistic": {"quantiles": [0.1, 0.5, 0.9], "spread_scale_bounds": [0.2, 2.0]},
    "expert1": {
        "model": {
            "lstm_hidden": 4,
            "lstm_layers": 1,
            "gat_hidden": 4,
            "gat_layers": 1,
            "gat_heads": 2,
            "attention_heads": 2,
            "temporal_patch": 3,
            "dropout": 0.0,
        }
    },
    "expert2": {
        "model": {
            "hidden": [4],
            "kernel_size": 3,
            "recurrent_conv": "separable",
            "temporal_patch": 3,
            "dropout": 0.0,
        }
    },
    "expert3": {
        "model": {
            "recent_months": 3,
            "encoder_hidden": 8,
            "conv_hidden": 4,
            "conv_layers": 1,
            "kernel_size": 3,
            "gat_hidden": 4,
            "gat_heads": 2,
            "dropout": 0.0,
        }
    },
    "gating": {"mode": "learned", "hidden_sizes": [8], "dropout": 0.0, "alpha_init": 0.3},
    "meta": {"enabled": True, "hidden_sizes": [8], "dropout": 0.0},
}

CFG = config_with(PARAMS)


@dataclass(frozen=True)
class Setup:
    root: Path
    dataset: Path
    masks: Path
    checkpoint: Path
    ds: xr.Dataset


def _save_masks(dataset: Path, out: Path) -> None:
    data = load_grid_data(dataset)
    context = context_features(data.elevation, data.lat, data.lon, data.valid)
    stats = training_statistics(data.precip, data.months, data.valid, context, TEST, VAL)
    train = training_month_mask(len(data.times), TEST, VAL)
    anom = data.precip[train] - stats["clim_mean"][data.months[train]]
    cfg = GraphConfig(k_spatial=4, max_neighbors=6, corr_min=0.3, corr_radius_km=30, elev_tol_m=800)
    graph = build_graph(data.valid, data.elevation, data.lat, data.lon, anom, cfg)
    split = make_split(data.times, W, H, TEST, VAL)
    zones = zone_masks(data.elevation, data.valid, 3000, 2000)
    bundle = MaskBundle(zones, data.valid, context, graph, split, stats, lat=data.lat, lon=data.lon)
    save_masks(out, bundle)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("inference")
    ds = make_small_dataset()
    dataset, masks, checkpoint = root / "dataset.nc", root / "masks", root / "model.pt"
    ds.to_netcdf(dataset)
    _save_masks(dataset, masks)
    run = load_run_inputs(CFG, dataset, masks)
    model = assemble_model(
        CFG, run, build_experts(CFG, run, load_masks_graph(masks, run.masks.valid.shape))
    )
    save_checkpoint(checkpoint, model, {"note": "untrained, for tests"})
    return Setup(root, dataset, masks, checkpoint, ds)


def _forecast(setup: Setup, dataset: Path | None = None) -> xr.Dataset:
    return forecast_from_dataset(
        CFG, dataset or setup.dataset, checkpoint=setup.checkpoint, masks_dir=setup.masks
    )


@pytest.fixture(scope="module")
def forecast(setup: Setup) -> xr.Dataset:
    return _forecast(setup)


def _write_variant(setup: Setup, ds: xr.Dataset, name: str) -> Path:
    path = setup.root / name
    ds.to_netcdf(path)
    return path


def test_forecast_file_schema(setup: Setup, forecast: xr.Dataset, tmp_path: Path) -> None:
    write_netcdf(forecast, tmp_path / "forecast.nc")
    with xr.open_dataset(tmp_path / "forecast.nc") as ds:
        last = pd.Timestamp(setup.ds["time"].values[-1])
        expected = pd.date_range(last + pd.DateOffset(months=1), periods=H, freq="MS")
        assert pd.DatetimeIndex(ds["time"].values).equals(expected)
        for name in ("precip", "expert_spread", "climatology"):
            assert ds[name].dims == ("time", "latitude", "longitude")
            assert ds[name].attrs["units"] == "mm/month"
            assert ds[name].dtype == np.float32
        assert ds["weight"].dims == ("expert", "latitude", "longitude")
        assert ds["expert"].values.tolist() == [1, 2, 3]
        assert ds["lead"].values.tolist() == list(range(1, H + 1))
        for coord in ("latitude", "longitude"):
            assert np.all(np.diff(ds[coord].values) > 0)
            np.testing.assert_allclose(ds[coord].values, setup.ds[coord].values)
        assert ds["latitude"].attrs["units"] == "degrees_north"
        assert ds.attrs["Conventions"].startswith("CF-")
        assert ds.attrs["origin_month"] == f"{last:%Y-%m}"
        assert ds.attrs["checkpoint"] == str(setup.checkpoint)


def test_masks_static_fields_are_labelled(setup: Setup) -> None:
    bundle = load_masks(setup.masks)
    with xr.open_dataset(setup.masks / "static.nc") as static:
        np.testing.assert_allclose(static["latitude"].values, setup.ds["latitude"].values)
        np.testing.assert_allclose(static["longitude"].values, setup.ds["longitude"].values)
        for name in ("elevation_m", "slope_deg", "aspect_deg"):
            assert static[name].dims == ("latitude", "longitude")
            np.testing.assert_array_equal(static[name].values, bundle.context_field(name))
        assert static["elevation_m"].attrs["units"] == "m"
        meanings = static["zone"].attrs["flag_meanings"].split()
        for code, name in enumerate(meanings):
            np.testing.assert_array_equal(static["zone"].values == code, bundle.zones[name])
        np.testing.assert_array_equal(static["valid"].values == 1, bundle.valid)
    np.testing.assert_array_equal(bundle.elevation, bundle.context[..., 0])


def test_forecast_values_are_masked_and_physical(setup: Setup, forecast: xr.Dataset) -> None:
    valid = load_masks(setup.masks).valid
    for name in ("precip", "expert_spread", "climatology"):
        values = forecast[name].values
        np.testing.assert_array_equal(np.isnan(values), np.broadcast_to(~valid, values.shape))
        assert (values[:, valid] >= 0).all()
    weights = forecast["weight"].values
    np.testing.assert_array_equal(np.isnan(weights), np.broadcast_to(~valid, weights.shape))
    np.testing.assert_allclose(weights[:, valid].sum(axis=0), 1.0, atol=1e-5)
    assert (weights[:, valid] >= 0).all()


def test_inputs_match_the_training_window_layout(setup: Setup) -> None:
    run = load_forecast_run(CFG, setup.dataset, setup.masks)
    t = len(run.data.times) - 1 - H  # an origin whose targets are in the data
    expected = WindowDataset(run.inputs, [t], W, H, run.transform)[0]
    batch = origin_batch(run, t)
    torch.testing.assert_close(batch["x"][0], expected["x"])
    torch.testing.assert_close(batch["target_month"][0], expected["target_month"])
    assert int(batch["origin_month"][0]) == int(expected["origin_month"])
    assert origin_batch(run)["x"].shape == (1, W, N_CHANNELS, *run.masks.valid.shape)


def test_forecast_from_a_shorter_file_uses_training_statistics(setup: Setup) -> None:
    """Origin = the file's last month; the result equals the model on the full-data window."""
    n = 100
    short = _write_variant(setup, setup.ds.isel(time=slice(0, n)), "short.nc")
    forecast = _forecast(setup, short)
    run = load_run_inputs(CFG, setup.dataset, setup.masks)
    model = load_ames_model(
        CFG, run, load_masks_graph(setup.masks, run.masks.valid.shape), setup.checkpoint, "test"
    )
    with torch.no_grad():
        batch = {k: v[None] for k, v in run.windows("test", [n - 1])[0].items()}
        expected = model.eval()(batch)["pred_mm"][0].numpy()
    valid = run.masks.valid
    np.testing.assert_allclose(forecast["precip"].values[:, valid], expected[:, valid], rtol=1e-5)
    months = target_months(run.inputs.months[[n - 1]], H)[0]
    clim = run.masks.stats["clim_mean"][months]
    np.testing.assert_allclose(forecast["climatology"].values[:, valid], clim[:, valid])


def test_metadata(setup: Setup, forecast: xr.Dataset) -> None:
    meta = forecast_metadata(forecast, CFG, dataset_path=setup.dataset, checkpoint=setup.checkpoint)
    assert meta["origin_month"] == forecast.attrs["origin_month"]
    assert meta["target_months"] == [f"{t:%Y-%m}" for t in pd.DatetimeIndex(forecast["time"])]
    assert meta["data_sha256"] == hashlib.sha256(setup.dataset.read_bytes()).hexdigest()
    assert meta["checkpoint_sha256"] == hashlib.sha256(setup.checkpoint.read_bytes()).hexdigest()
    assert meta["params_sha256"] == params_hash(CFG.raw)
    assert meta["checkpoint"] == str(setup.checkpoint)
    assert meta["created_by"].startswith("ames ")


def _shifted(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign_coords(latitude=ds["latitude"].values + 0.05)


def _cropped(ds: xr.Dataset) -> xr.Dataset:
    return ds.isel(latitude=slice(0, -1))


def _other_domain(ds: xr.Dataset) -> xr.Dataset:
    precip = ds["precip"].copy()
    precip[:, 3, 4] = np.nan
    return ds.assign(precip=precip)


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (_shifted, "latitude differs from the training grid"),
        (_cropped, "grid has 7 x 9 cells"),
        (_other_domain, "valid cells differ from the training domain"),
    ],
)
def test_other_grid_is_rejected_naming_the_file(setup: Setup, variant, message: str) -> None:
    path = _write_variant(setup, variant(setup.ds), f"{variant.__name__}.nc")
    with pytest.raises(DataError, match=message) as info:
        _forecast(setup, path)
    assert info.value.path == str(path)
    assert "training grid" in info.value.fix


def test_dataset_shorter_than_the_window_is_rejected(setup: Setup) -> None:
    path = _write_variant(setup, setup.ds.isel(time=slice(0, W - 1)), "too_short.nc")
    with pytest.raises(DataError, match=f"input_window = {W}") as info:
        _forecast(setup, path)
    assert info.value.path == str(path)


def test_schema_errors_name_the_file(setup: Setup) -> None:
    path = _write_variant(setup, setup.ds.drop_vars("elevation"), "no_elevation.nc")
    with pytest.raises(DataError, match="'elevation' is missing"):
        _forecast(setup, path)
    with pytest.raises(DataError, match="file not found"):
        _forecast(setup, setup.root / "absent.nc")


def test_companion_paths() -> None:
    assert companion_paths("predictions/forecast.nc") == (
        Path("predictions/metadata.json"),
        Path("plots/inference/forecast_maps.png"),
    )
    assert companion_paths("predictions/my_forecast.nc") == (
        Path("predictions/my_forecast_metadata.json"),
        Path("plots/inference/my_forecast_maps.png"),
    )
    assert companion_paths("a.nc", "m.json", "p.png") == (Path("m.json"), Path("p.png"))


def test_stage_cli_writes_forecast_metadata_and_maps(setup: Setup, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("inference_stage", ROOT / "stages/inference.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(params_with(PARAMS)))
    out, plot = tmp_path / "my_forecast.nc", tmp_path / "maps.png"
    run = load_run_inputs(CFG, setup.dataset, setup.masks)
    ratios, mean, edges = climatological_parts(run)
    predictive = tmp_path / "predictive.nc"
    scales, weights = {"ames": np.ones(H)}, {"ames": np.full(H, 0.5)}
    shrink = np.linspace(0.0, 1.0, H)  # lead 1 falls back to climatology, lead H keeps AMES
    write_netcdf(predictive_dataset(ratios, mean, edges, scales, weights, shrink, run), predictive)
    stage.main(
        [
            *("--params", str(params), "--dataset", str(setup.dataset)),
            *("--checkpoint", str(setup.checkpoint), "--masks", str(setup.masks)),
            *("--out", str(out), "--plot", str(plot), "--predictive", str(predictive)),
        ]
    )
    assert (tmp_path / "maps_outlook.png").stat().st_size > 10_000
    assert stage.outlook_path_for(Path("p/forecast_maps.png")) == Path("p/forecast_outlook.png")
    meta = yaml.safe_load((tmp_path / "my_forecast_metadata.json").read_text())
    expected_keys = {"origin_month", "target_months", "checkpoint", "checkpoint_sha256"}
    assert expected_keys | {"params_sha256", "data_sha256", "created_by"} <= set(meta)
    assert len(meta["target_months"]) == H
    assert plot.stat().st_size > 10_000
    with xr.open_dataset(out) as ds:
        assert ds["precip"].shape == (H, *setup.ds["precip"].shape[1:])
        clim, model = ds["climatology"].values, ds["precip_model"].values
        expected = clim + shrink[:, None, None] * (model - clim)
        np.testing.assert_allclose(ds["precip"].values, expected, rtol=1e-5)
        np.testing.assert_allclose(ds["precip"].values[0], clim[0], rtol=1e-6)
        assert not np.allclose(model[-1][np.isfinite(model[-1])], clim[-1][np.isfinite(clim[-1])])
        probs = ds["tercile_probability"].sum("category", skipna=False).values
        np.testing.assert_allclose(probs[np.isfinite(probs)], 1.0, atol=1e-6)
        quantiles = ds["precip_quantile"].transpose("quantile", ...).values
        assert (np.nan_to_num(np.diff(quantiles, axis=0)) >= 0).all()
