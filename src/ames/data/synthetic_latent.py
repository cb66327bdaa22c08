"""Latent state of the synthetic generator: ENSO-like index, anomaly field and noise.

* ``E``: an ENSO-like stationary AR(1) index (unit variance; positive = El Niño = dry),
  loaded by ``a(c)``, which weakens from the Andes toward the Llanos (``eastness``).
* ``X``: spatially correlated unit-variance Gaussian fields with AR(1) persistence in time.
* ``ε``: spatially correlated, temporally white unit-variance noise.

Each component draws from its own stream, ``derive_seed(seed, "synthetic", <name>)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ames.config import derive_seed
from ames.data.synthetic_config import SyntheticConfig
from ames.data.synthetic_fields import eastness, grid_spacing_m

_TRUNCATE = 4.0  # gaussian kernel half-width in standard deviations


def ar1_series(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Stationary unit-variance AR(1) series of length ``n``."""
    shocks = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = shocks[0]
    scale = np.sqrt(1.0 - rho**2)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + scale * shocks[t]
    return out


def correlated_fields(
    rng: np.random.Generator, n: int, shape: tuple[int, int], sigma_cells: tuple[float, float]
) -> np.ndarray:
    """``n`` independent unit-variance Gaussian fields with a Gaussian correlation shape.

    White noise on a padded grid is smoothed with a Gaussian kernel of standard deviation
    ``sigma_cells`` and divided by the kernel's L2 norm, so every interior cell has exactly
    unit variance; the padding keeps the boundary cells statistically like the interior.
    """
    pad = [int(np.ceil(_TRUNCATE * s)) + 1 for s in sigma_cells]
    big = (shape[0] + 2 * pad[0], shape[1] + 2 * pad[1])
    noise = rng.standard_normal((n, *big))
    smooth = gaussian_filter(noise, sigma=(0.0, *sigma_cells), mode="constant", truncate=_TRUNCATE)
    delta = np.zeros(big)
    delta[pad[0], pad[1]] = 1.0
    kernel = gaussian_filter(delta, sigma=sigma_cells, mode="constant", truncate=_TRUNCATE)
    norm = np.sqrt(np.sum(kernel**2))
    return smooth[:, pad[0] : pad[0] + shape[0], pad[1] : pad[1] + shape[1]] / norm


def ar1_fields(shocks: np.ndarray, rho: float) -> np.ndarray:
    """Turn independent unit-variance fields ``[T, ...]`` into a stationary AR(1) in time."""
    out = np.empty_like(shocks)
    out[0] = shocks[0]
    scale = np.sqrt(1.0 - rho**2)
    for t in range(1, len(shocks)):
        out[t] = rho * out[t - 1] + scale * shocks[t]
    return out


def sigma_cells(corr_length_km: float, lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    # Smoothing white noise with a Gaussian of std s gives correlation exp(-r²/4s²); the
    # correlation length L (where it falls to 1/e) is therefore 2s.
    dy, dx = grid_spacing_m(lat, lon)
    s_m = corr_length_km * 1000.0 / 2.0
    return s_m / dy, s_m / dx


@dataclass(frozen=True)
class LatentState:
    enso: np.ndarray  # [T], positive = El Niño
    anomaly: np.ndarray  # [T, lat, lon], unit variance AR(1) field
    noise: np.ndarray  # [T, lat, lon], unit variance, white in time
    enso_loading: np.ndarray  # [lat, lon], a(c) >= 0 (La Niña wet)


def sample_latent(
    seed: int, n_months: int, lat: np.ndarray, lon: np.ndarray, cfg: SyntheticConfig
) -> LatentState:
    """Draw the latent state; each component has its own stream derived from ``seed``."""
    shape = (len(lat), len(lon))
    enso = ar1_series(
        np.random.default_rng(derive_seed(seed, "synthetic", "enso")), n_months, cfg.enso_rho
    )
    anomaly_rng = np.random.default_rng(derive_seed(seed, "synthetic", "anomaly"))
    anomaly = ar1_fields(
        correlated_fields(
            anomaly_rng, n_months, shape, sigma_cells(cfg.anomaly_corr_length_km, lat, lon)
        ),
        cfg.anomaly_rho,
    )
    noise_rng = np.random.default_rng(derive_seed(seed, "synthetic", "noise"))
    noise = correlated_fields(
        noise_rng, n_months, shape, sigma_cells(cfg.noise_corr_length_km, lat, lon)
    )
    w_east = eastness(lat, lon, cfg)
    loading = cfg.enso_loading_west + (cfg.enso_loading_east - cfg.enso_loading_west) * w_east
    return LatentState(enso, anomaly, noise, loading)
