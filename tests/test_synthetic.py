"""The embedded synthetic generator, its oracle, the NetCDF writer and the calibration report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ames.climatology import split_month_bounds
from ames.config import ConfigError
from ames.data.netcdf import write_netcdf
from ames.data.synthetic import generate_synthetic
from ames.data.synthetic_config import DEFAULT_SYNTHETIC_CONFIG, SyntheticConfig
from ames.data.synthetic_fields import climatological_mean
from ames.data.synthetic_latent import correlated_fields
from ames.data.synthetic_zoned import (
    ENSO_GRID,
    ZONED_DEFAULTS,
    ZonedConfig,
    clim_at,
    clim_table,
    enso_response,
    sample_zoned_state,
)
from ames.evaluation.data_calibration import calibration_report

DEM_FILE = Path(__file__).resolve().parents[1] / "data" / "raw" / "dem_boyaca.nc"
BANDS = {
    "mean_mm": (170.0, 205.0),
    "clim_pooled_r2": (0.70, 0.78),
    "seasonal_naive_pooled_r2": (0.45, 0.60),
    "clim_percell_r2": (0.55, 0.70),
}


def ridge_dem(n_lat: int = 24, n_lon: int = 32, nan_corner: bool = False) -> xr.DataArray:
    """A north–south ridge (3000 m) in the middle of a 0.05° grid."""
    lat = np.round(5.0 + 0.05 * np.arange(n_lat), 4)
    lon = np.round(-73.5 + 0.05 * np.arange(n_lon), 4)
    x = np.arange(n_lon) - (n_lon - 1) / 2
    z = np.tile(200.0 + 3000.0 * np.exp(-((x / 4.0) ** 2)), (n_lat, 1)).astype(np.float32)
    if nan_corner:
        z[0, 0] = np.nan
    return xr.DataArray(
        z,
        dims=("latitude", "longitude"),
        coords={"latitude": lat, "longitude": lon},
        attrs={"units": "m", "source": "idealised ridge"},
    )


def small(seed: int = 0, **overrides) -> tuple[xr.Dataset, xr.Dataset]:
    kwargs = dict(n_months=96, start="2000-01", test_months=24, val_months=24, horizon=12)
    kwargs.update(overrides)
    return generate_synthetic(ridge_dem(nan_corner=True), DEFAULT_SYNTHETIC_CONFIG, seed, **kwargs)


@pytest.fixture(scope="module")
def small_pair() -> tuple[xr.Dataset, xr.Dataset]:
    return small(seed=3)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    for name, ds in zip(("a", "b"), (small(seed=5), small(seed=5)), strict=True):
        write_netcdf(ds[0], tmp_path / f"{name}.nc")
        write_netcdf(ds[1], tmp_path / f"{name}_oracle.nc")
    assert (tmp_path / "a.nc").read_bytes() == (tmp_path / "b.nc").read_bytes()
    assert (tmp_path / "a_oracle.nc").read_bytes() == (tmp_path / "b_oracle.nc").read_bytes()


def test_rewriting_a_file_read_back_is_byte_identical(tmp_path: Path, small_pair) -> None:
    write_netcdf(small_pair[0], tmp_path / "a.nc")
    with xr.open_dataset(tmp_path / "a.nc") as back:
        write_netcdf(back.load(), tmp_path / "b.nc")
    assert (tmp_path / "a.nc").read_bytes() == (tmp_path / "b.nc").read_bytes()


def test_different_seed_gives_different_precipitation(small_pair) -> None:
    other, _ = small(seed=4)
    assert not np.allclose(small_pair[0]["precip"].values, other["precip"].values, equal_nan=True)


def test_precipitation_non_negative_and_right_skewed(small_pair) -> None:
    precip = small_pair[0]["precip"].values
    valid = precip[:, ~np.isnan(precip).all(axis=0)]
    assert np.all(valid >= 0)
    ratio = valid / valid.mean(axis=0)  # remove the spatial pattern (seasonality stays)
    centred = ratio - ratio.mean()
    assert np.mean(centred**3) > 0


def test_dataset_schema(tmp_path: Path, small_pair) -> None:
    write_netcdf(small_pair[0], tmp_path / "d.nc")
    with xr.open_dataset(tmp_path / "d.nc") as ds:
        assert ds["precip"].dims == ("time", "latitude", "longitude")
        assert ds["precip"].dtype == np.float32
        assert ds["precip"].attrs["units"] == "mm/month"
        assert ds["elevation"].dims == ("latitude", "longitude")
        assert ds["elevation"].attrs["units"] == "m"
        for dim in ("latitude", "longitude"):
            assert np.all(np.diff(ds[dim].values) > 0)
        times = pd.DatetimeIndex(ds["time"].values)
        expected = pd.date_range("2000-01-01", periods=96, freq="MS")
        assert times.equals(expected)
        assert ds["time"].encoding["units"] == "days since 1970-01-01"
        assert np.isnan(ds["precip"].values[:, 0, 0]).all()  # no-data DEM cell masked
        assert not np.isnan(ds["precip"].values[:, 1:, 1:]).any()
        assert "synthetic" in ds.attrs["source"]
        assert (
            json.loads(ds.attrs["generator_params"])
            == SyntheticConfig.from_dict(DEFAULT_SYNTHETIC_CONFIG).as_dict()
        )
        assert ds.attrs["dem_source"] == "idealised ridge"
        # the easterly trades of the default, weighted by their monthly speed
        assert ds.attrs["prevailing_wind_from_deg"] == pytest.approx(83.62, abs=0.01)


def test_oracle_covers_every_validation_and_test_origin(small_pair) -> None:
    ds, oracle = small_pair
    n_time, horizon = ds.sizes["time"], 12
    val_start, _ = split_month_bounds(n_time, test_months=24, val_months=24)
    assert oracle["precip"].dims == ("origin", "lead", "latitude", "longitude")
    assert oracle["precip"].dtype == np.float32
    assert oracle["lead"].values.tolist() == list(range(1, horizon + 1))
    origin_index = np.searchsorted(ds["time"].values, oracle["origin"].values)
    assert origin_index.tolist() == list(range(val_start - 1, n_time - horizon))
    np.testing.assert_array_equal(oracle["latitude"], ds["latitude"])
    np.testing.assert_array_equal(oracle["longitude"], ds["longitude"])
    values = oracle["precip"].values
    assert np.isnan(values[..., 0, 0]).all()
    assert np.all(values[..., 1:, 1:] > 0)


def test_oracle_is_the_conditional_mean() -> None:
    """A conditional mean is unbiased, its errors are uncorrelated with it (regression slope
    of the truth on it ≈ 1), and it beats the true climatology more at short than long leads.
    Everything is relative to the climatology C so that cells and months weigh alike."""
    dem = ridge_dem(n_lat=6, n_lon=8)
    ds, oracle = generate_synthetic(
        dem, DEFAULT_SYNTHETIC_CONFIG, 11, 3000, "1800-01", 1500, 1400, 12
    )
    cfg = SyntheticConfig.from_dict(DEFAULT_SYNTHETIC_CONFIG)
    clim = climatological_mean(
        dem.values.astype(float), dem.latitude.values, dem.longitude.values, cfg
    )
    precip = ds["precip"].values.astype(np.float64)
    months = ds["time"].dt.month.values - 1
    origins = np.searchsorted(ds["time"].values, oracle["origin"].values)
    skill = []
    for lead in (1, 12):
        c = clim[months[origins + lead]]
        truth = precip[origins + lead] / c
        forecast = oracle["precip"].values[:, lead - 1].astype(np.float64) / c
        error = truth - forecast
        assert abs(error.mean()) < 0.01
        assert abs(np.corrcoef(error.ravel(), forecast.ravel())[0, 1]) < 0.05
        if lead == 1:
            fc = forecast - forecast.mean()
            slope = np.sum(fc * (truth - truth.mean())) / np.sum(fc**2)
            assert slope == pytest.approx(1.0, abs=0.1)
        skill.append(1 - np.mean(error**2) / np.mean((truth - 1) ** 2))
    assert skill[0] > 0.1
    assert skill[0] > skill[1] > -0.01


def test_correlated_fields_have_unit_variance() -> None:
    fields = correlated_fields(np.random.default_rng(0), 400, (10, 12), (3.0, 3.0))
    assert fields.shape == (400, 10, 12)
    assert abs(fields.var() - 1) < 0.05
    assert abs(fields[:, 0, 0].var() - 1) < 0.2  # edge cells like interior cells
    neighbour = np.corrcoef(fields[:, 5, 5], fields[:, 5, 6])[0, 1]
    assert neighbour > 0.9


def test_windward_east_slope_wetter_than_leeward_west_slope() -> None:
    cfg = dict(DEFAULT_SYNTHETIC_CONFIG)
    cfg["wind_from_deg"] = [90.0] * 12  # easterly all year
    dem = ridge_dem()
    ds, _ = generate_synthetic(dem, cfg, 1, 48, "2000-01", 12, 12, 12)
    mean = ds["precip"].mean("time").values
    crest = int(np.argmax(dem.values[5]))
    east_slope = mean[:, crest + 2 : crest + 5].mean()
    west_slope = mean[:, crest - 4 : crest - 1].mean()
    assert east_slope > 1.5 * west_slope


def test_config_must_be_complete() -> None:
    cfg = dict(DEFAULT_SYNTHETIC_CONFIG)
    del cfg["enso_rho"]
    cfg["typo_key"] = 1
    with pytest.raises(ConfigError, match="enso_rho.*typo_key") as info:
        SyntheticConfig.from_dict(cfg)
    assert info.value.path == "data.synthetic"


def test_a_bad_generator_value_names_its_key() -> None:
    cfg = {**DEFAULT_SYNTHETIC_CONFIG, "anomaly_rho": 1.2}
    with pytest.raises(ConfigError) as info:
        SyntheticConfig.from_dict(cfg)
    assert info.value.path == "data.synthetic.anomaly_rho" and "[0, 1)" in info.value.detail


def test_calibration_report_hand_example() -> None:
    # Two valid cells and one ocean cell; 24 months before the test, 2 test months.
    n_time = 26
    months = np.arange(n_time) % 12
    precip = np.full((n_time, 1, 3), np.nan)
    precip[:12, 0, 0], precip[12:24, 0, 0], precip[24:, 0, 0] = 10, 20, [30, 10]
    precip[:12, 0, 1], precip[12:24, 0, 1], precip[24:, 0, 1] = 0, 40, [20, 40]
    report = calibration_report(precip, months, test_months=2)
    # climatology 15 and 20; test targets 30, 10, 20, 40 (pooled mean 25, SST 500)
    assert report["mean_mm"] == pytest.approx(940 / 52)
    assert report["clim_pooled_r2"] == pytest.approx(1 - 650 / 500)
    assert report["seasonal_naive_pooled_r2"] == pytest.approx(1 - 600 / 500)
    assert report["clim_percell_r2"] == pytest.approx(((1 - 250 / 200) + (1 - 400 / 200)) / 2)


def test_calibration_bands_on_the_real_dem() -> None:
    with xr.open_dataset(DEM_FILE) as dem_ds:
        dem = dem_ds["elevation"].load()
    ds, oracle = generate_synthetic(dem, DEFAULT_SYNTHETIC_CONFIG, 42, 518, "1981-01", 110, 48, 12)
    months = ds["time"].dt.month.values - 1
    report = calibration_report(ds["precip"].values, months, test_months=110)
    for key, (lo, hi) in BANDS.items():
        assert lo <= report[key] <= hi, f"{key} = {report[key]:.3f} outside [{lo}, {hi}]"
    assert oracle.sizes["origin"] == 518 - 12 - (518 - 110 - 48) + 1


def test_data_plots_are_written(tmp_path: Path, small_pair) -> None:
    from ames.plotting.data import plot_mean_annual_precip, plot_seasonal_cycle_by_zone

    plot_mean_annual_precip(small_pair[0], tmp_path / "map.png")
    plot_seasonal_cycle_by_zone(small_pair[0], tmp_path / "cycle.png")
    for name in ("map.png", "cycle.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ the zoned scenario

ZONED = {**DEFAULT_SYNTHETIC_CONFIG, "scenario": "zoned", "zoned": dict(ZONED_DEFAULTS)}


def test_the_default_scenario_is_unchanged_by_the_scenario_keys(tmp_path: Path) -> None:
    with_keys = {**DEFAULT_SYNTHETIC_CONFIG, "scenario": "default", "zoned": dict(ZONED_DEFAULTS)}
    for name, cfg in (("plain", DEFAULT_SYNTHETIC_CONFIG), ("keys", with_keys)):
        ds, oracle = generate_synthetic(
            ridge_dem(nan_corner=True), cfg, 5, 96, "2000-01", 24, 24, 12
        )
        write_netcdf(ds, tmp_path / f"{name}.nc")
        write_netcdf(oracle, tmp_path / f"{name}_oracle.nc")
    for suffix in (".nc", "_oracle.nc"):
        a, b = (tmp_path / f"{n}{suffix}" for n in ("plain", "keys"))
        assert a.read_bytes() == b.read_bytes()


def test_an_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(ValueError, match="scenario is 'alpine'.*default, zoned"):
        generate_synthetic(
            ridge_dem(), {**ZONED, "scenario": "alpine"}, 1, 96, "2000-01", 24, 24, 12
        )


def test_zoned_wind_moves_the_orographic_rain_with_enso() -> None:
    """C(m, e) is nonlinear in e on the slopes (wind x terrain, lee floor) and flat far away."""
    dem = ridge_dem(n_lat=8, n_lon=32)
    cfg = SyntheticConfig.from_dict(DEFAULT_SYNTHETIC_CONFIG)
    zoned = ZonedConfig.from_dict(ZONED_DEFAULTS)
    table = clim_table(
        dem.values.astype(float), dem.latitude.values, dem.longitude.values, cfg, zoned
    )
    july = table[:, 6, 4]  # [e, lon] on a middle row
    e = ENSO_GRID
    windward = july[:, 17:21].mean(axis=1)  # the ridge's east slope faces the easterlies
    assert windward[e == 2.0] > windward[e == 0.0] > windward[e == -2.0]  # El Nino: stronger
    curvature = windward[e == 2.0] + windward[e == -2.0] - 2 * windward[e == 0.0]
    assert abs(curvature[0]) > 1e-3 * windward[e == 0.0][0]


def test_zoned_persistence_and_noise_follow_elevation() -> None:
    dem = ridge_dem(n_lat=6, n_lon=32)
    cfg = SyntheticConfig.from_dict(DEFAULT_SYNTHETIC_CONFIG)
    zoned = ZonedConfig.from_dict(ZONED_DEFAULTS)
    z = dem.values.astype(float)
    state = sample_zoned_state(3, 2000, dem.latitude.values, dem.longitude.values, z, cfg, zoned)
    top, foot = np.unravel_index(np.argmax(z), z.shape), (0, 0)
    for cell, rho in ((top, zoned.anomaly_rho_high), (foot, zoned.anomaly_rho_low)):
        x = state.anomaly[:, cell[0], cell[1]]
        assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(rho, abs=0.06)
        assert x.var() == pytest.approx(1.0, abs=0.15)
    assert state.noise_std[top] == pytest.approx(zoned.noise_std_high, abs=0.01)
    assert state.noise_std[foot] == pytest.approx(zoned.noise_std_low, abs=0.01)


def test_zoned_oracle_is_the_monte_carlo_conditional_mean() -> None:
    """For a few origins, the quadrature oracle equals the mean of many simulated futures."""
    dem = ridge_dem(n_lat=4, n_lon=16)
    ds, oracle = generate_synthetic(dem, ZONED, 8, 240, "2000-01", 60, 48, 12)
    cfg = SyntheticConfig.from_dict(DEFAULT_SYNTHETIC_CONFIG)
    zoned = ZonedConfig.from_dict(ZONED_DEFAULTS)
    lat, lon, z = dem.latitude.values, dem.longitude.values, dem.values.astype(float)
    table = clim_table(z, lat, lon, cfg, zoned)
    state = sample_zoned_state(8, 240, lat, lon, z, cfg, zoned)
    months = ds["time"].dt.month.values - 1
    origins = np.searchsorted(ds["time"].values, oracle["origin"].values)
    rng = np.random.default_rng(0)
    n, b = 200_000, cfg.anomaly_std
    season = np.asarray(zoned.enso_season)
    for i in (0, len(origins) // 2):
        t = origins[i]
        for lead in (1, 6):
            m = months[t + lead]
            re, rx = cfg.enso_rho**lead, state.rho**lead
            e = re * state.enso[t] + np.sqrt(1 - re**2) * rng.standard_normal(n)
            enso_part = np.mean(
                clim_at(table, m, e)
                * np.exp(-state.enso_loading * season[m] * enso_response(e, zoned)[:, None, None]),
                axis=0,
            )
            expected = enso_part * np.exp(b * rx * state.anomaly[t] - 0.5 * b**2 * rx**2)
            got = oracle["precip"].values[i, lead - 1]
            np.testing.assert_allclose(got, expected, rtol=3e-3)
