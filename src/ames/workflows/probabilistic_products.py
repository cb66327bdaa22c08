"""Probabilistic products on the grid: quantiles and tercile probabilities as CF variables.

``forecast_products`` dresses one origin's point forecast with a ``Predictive``
(``ames.evaluation.predictive``); ``add_products`` puts such products, or the ones
``ames.workflows.probabilistic.score_probabilistic`` returns for the test origins, into a
forecast dataset with their coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from ames.evaluation.predictive import CATEGORIES, Predictive, ensemble_quantiles


def _on_grid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[..., N]`` values of the valid cells → ``[..., lat, lon]`` with NaN elsewhere."""
    out = np.full((*values.shape[:-1], *valid.shape), np.nan, dtype=np.float32)
    out[..., valid] = values
    return out


def product_variables(
    products: Mapping[str, np.ndarray],
    valid: np.ndarray,
    leading_dims: Sequence[str],
) -> dict[str, tuple]:
    """CF-style ``precip_quantile`` and ``tercile_probability`` variables."""
    grid = ("latitude", "longitude")
    return {
        "precip_quantile": (
            (*leading_dims, "quantile", *grid),
            _on_grid(products["quantile"], valid),
            {
                "units": "mm/month",
                "long_name": "quantile of the AMES predictive distribution "
                "of monthly precipitation",
            },
        ),
        "tercile_probability": (
            (*leading_dims, "category", *grid),
            _on_grid(products["tercile_probability"], valid),
            {
                "units": "1",
                "long_name": "probability of the training-period tercile category "
                "(below / near / above normal) of that cell and calendar month",
            },
        ),
    }


def add_products(
    ds: xr.Dataset,
    products: Mapping[str, np.ndarray],
    valid: np.ndarray,
    levels: Sequence[float],
    leading_dims: Sequence[str],
) -> xr.Dataset:
    """``ds`` with the quantiles and tercile probabilities and their coordinates."""
    out = ds.assign(product_variables(products, valid, leading_dims))
    out = out.assign_coords(
        quantile=("quantile", np.asarray(levels, dtype=np.float64)),
        category=("category", np.array(CATEGORIES, dtype=object)),
    )
    out["quantile"].attrs.update(long_name="probability level of the quantile", units="1")
    out["category"].attrs.update(long_name="tercile category of the training climatology")
    out.attrs["predictive_distribution"] = (
        "training-period climatological ensemble of the cell and calendar month, rescaled to "
        "the AMES forecast, spread scaled per lead (fitted on validation CRPS); tercile "
        "probabilities shrunk toward the ensemble's per lead (fitted on validation RPS)"
    )
    return out


def forecast_products(
    point: np.ndarray,
    target_month: np.ndarray,
    predictive: Predictive,
    valid: np.ndarray,
    levels: Sequence[float],
) -> dict[str, np.ndarray]:
    """Quantiles ``[H, Q, N]`` and tercile probabilities ``[H, 3, N]`` for one origin's
    forecast ``point`` ``[H, lat, lon]`` with target calendar months ``target_month`` ``[H]``."""
    quantiles, probabilities = [], []
    for h in range(point.shape[0]):
        members = predictive.lead_members(point[[h]], target_month[[h]], h, valid)
        quantiles.append(ensemble_quantiles(members[0], levels).T)
        probabilities.append(
            predictive.lead_probabilities(members, target_month[[h]], h, valid)[0].T
        )
    return {"quantile": np.stack(quantiles), "tercile_probability": np.stack(probabilities)}
