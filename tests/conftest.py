"""Shared small synthetic fixtures, and one tiny end-to-end run for the tests that read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr


def make_small_dataset(
    n_time: int = 120, n_lat: int = 8, n_lon: int = 9, seed: int = 0
) -> xr.Dataset:
    """A tiny dataset in the SPEC §2.1 schema: a ridge, a seasonal cycle, AR(1) anomalies."""
    rng = np.random.default_rng(seed)
    lat = np.round(5.0 + 0.05 * np.arange(n_lat), 4)
    lon = np.round(-73.0 + 0.05 * np.arange(n_lon), 4)
    xx = np.linspace(-1, 1, n_lon)[None, :]
    yy = np.linspace(-1, 1, n_lat)[:, None]
    elevation = (3800 * np.exp(-(xx**2) / 0.2) + 300 + 100 * yy).astype(np.float32)
    times = pd.date_range("2000-01-01", periods=n_time, freq="MS")
    season = 1 + 0.5 * np.sin(2 * np.pi * (times.month.to_numpy() - 1) / 12)
    anom = np.zeros((n_time, n_lat, n_lon))
    for t in range(1, n_time):
        anom[t] = 0.6 * anom[t - 1] + rng.normal(0, 0.3, (n_lat, n_lon))
    base = 100 + 0.05 * elevation
    precip = (base[None] * season[:, None, None] * np.exp(anom - 0.1)).astype(np.float32)
    precip[:, 0, 0] = np.nan  # an ocean cell
    return xr.Dataset(
        {
            "precip": (("time", "latitude", "longitude"), precip, {"units": "mm/month"}),
            "elevation": (("latitude", "longitude"), elevation, {"units": "m"}),
        },
        coords={"time": times, "latitude": lat, "longitude": lon},
        attrs={"source": "tests"},
    )


@pytest.fixture
def small_dataset() -> xr.Dataset:
    return make_small_dataset()


# The modules whose tests read ``tiny_run``: pytest-xdist (``-n 2``, pyproject) sends them to
# one worker, so the session builds that run once, not once per worker.
TINY_RUN_MODULES = ("tests/test_ablation_experiments.py", "tests/test_pipeline_full.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::")[0]
        if "tiny_run" in getattr(item, "fixturenames", ()) and module not in TINY_RUN_MODULES:
            raise pytest.UsageError(
                f"{item.nodeid} reads tiny_run: add {module} to TINY_RUN_MODULES"
            )


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Every test its own work unit, but the ``TINY_RUN_MODULES`` one unit together (the
    largest, so it starts first)."""
    from xdist.scheduler import LoadScopeScheduling

    class TinyRunTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tiny_run" if nodeid.split("::")[0] in TINY_RUN_MODULES else nodeid

    return TinyRunTogether(config, log)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole pipeline run once per session on the tiny configuration (``FULL_RUN``), for
    the slow tests that read a finished run; each test works on ``copy_tiny_run`` of it."""
    from pipeline_repo import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("tiny_run") / "repo")
