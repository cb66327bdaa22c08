"""The ``zoned`` scenario of the synthetic generator: elevation zones that behave differently.

The default scenario (``ames.data.synthetic``) gives every cell the same linear-Gaussian
log-space dynamics, so its conditional-mean forecast is nearly linear in the inputs. This
scenario keeps its terrain, seasonal regimes and Smith & Barstad orography, and plants three
documented departures from that, each switched by a parameter of ``data.synthetic.zoned``:

* **ENSO-driven low-level wind.** The month's trade wind changes with the ENSO-like index
  ``E``: its speed by ``wind_speed_per_enso`` (a fraction per unit index) and its direction by
  ``wind_dir_per_enso_deg``. The Smith & Barstad (2004) orographic rate is computed for that
  month's wind, and the lee floor (positivity cut-off) clips it, so the climatological
  factor ``C(m, E)`` is a nonlinear function of terrain × wind: windward enhancement and lee
  drying move with ENSO. (El Niño strengthens the easterly Caribbean low-level jet and weakens
  the westerly Chocó jet: Poveda & Mesa 2000; Amador 2008.)
* **A seasonal, asymmetric teleconnection.** The log-space ENSO loading ``a(c)`` is scaled by
  ``enso_season[m]`` (Poveda et al. 2001: the ENSO signal in Colombian rainfall is strongest in
  December–February and weakest in March–May) and El Niño acts at ``el_nino_ratio`` times the
  strength of La Niña (Hoerling, Kumar & Zhong 1997: the nonlinearity of ENSO teleconnections).
* **Zone-dependent persistence and noise.** Anomaly persistence ``ρ_X`` and the white-noise
  share ``σ`` move from their low-elevation to their high-elevation values across a logistic
  step at ``zone_mid_m`` (width ``zone_width_m``): more persistent, less noisy anomalies high up,
  noisier convective lowland months (Espinoza et al. 2020 on elevation-dependent regimes). The
  values are a modelling choice, not measurements.

Model, for month ``t`` (calendar month ``m``) and cell ``c``::

    P(t, c) = C(m, E(t), c) · exp(−a(c) s_m f(E(t)) + b X(t, c) + σ(c) ε(t, c) − (b² + σ(c)²)/2)
    f(e) = e for e ≤ 0 (La Niña), el_nino_ratio · e for e > 0 (El Niño)

with ``X`` an AR(1) in time with the cell's ``ρ_X(c)`` (unit variance) and ``E``, ``ε`` as in the
default scenario (same random streams). ``C(m, e, c)`` is tabulated on ``ENSO_GRID`` and
interpolated linearly in ``e``; that interpolated function *is* the generator's ``C``.

The oracle is the conditional mean given ``(E(t), X(t))``: the ``X`` part in closed form,
``exp(b ρ_X^L X(t) − b² ρ_X^{2L} / 2)``, times the expectation over ``E(t + L) ~ N(ρ_E^L E(t),
1 − ρ_E^{2L})`` of ``C(m', E) exp(−a s_{m'} f(E))``, by Gauss–Hermite quadrature
(``QUADRATURE_NODES`` nodes; its error is checked against Monte Carlo in the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ames.config import ConfigError, derive_seed
from ames.data.synthetic_config import SyntheticConfig, monthly_values, require_exact_keys
from ames.data.synthetic_fields import climatological_mean, eastness
from ames.data.synthetic_latent import ar1_series, correlated_fields, sigma_cells

#: ENSO index values at which ``C(m, e)`` is tabulated (beyond them it is held constant).
ENSO_GRID = np.arange(-4.0, 4.0 + 1e-9, 0.5)
QUADRATURE_NODES = 121

ZONED_DEFAULTS: dict[str, Any] = {
    "wind_speed_per_enso": 0.15,
    "wind_dir_per_enso_deg": 10.0,
    "enso_season": [1.5, 1.4, 1.0, 0.5, 0.3, 0.5, 0.9, 1.1, 1.2, 1.2, 1.3, 1.5],
    "el_nino_ratio": 0.5,
    "anomaly_rho_low": 0.3,
    "anomaly_rho_high": 0.75,
    "noise_std_low": 0.22,
    "noise_std_high": 0.13,
    "zone_mid_m": 2500.0,
    "zone_width_m": 300.0,
}


@dataclass(frozen=True)
class ZonedConfig:
    """Validated ``data.synthetic.zoned`` block (see ``ZONED_DEFAULTS``)."""

    wind_speed_per_enso: float
    wind_dir_per_enso_deg: float
    enso_season: tuple[float, ...]
    el_nino_ratio: float
    anomaly_rho_low: float
    anomaly_rho_high: float
    noise_std_low: float
    noise_std_high: float
    zone_mid_m: float
    zone_width_m: float

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ZonedConfig:
        names = require_exact_keys(
            cls, cfg, "data.synthetic.zoned", "ZONED_DEFAULTS in ames.data.synthetic_zoned"
        )
        season = monthly_values(cfg["enso_season"], "data.synthetic.zoned.enso_season")
        values = {k: float(cfg[k]) for k in names if k != "enso_season"}
        config = cls(enso_season=season, **values)
        for name in ("anomaly_rho_low", "anomaly_rho_high"):
            if not 0.0 <= getattr(config, name) < 1.0:
                raise ConfigError.at(f"data.synthetic.zoned.{name}", "must lie in [0, 1)")
        for name in ("noise_std_low", "noise_std_high", "el_nino_ratio", "zone_width_m"):
            if getattr(config, name) < 0 or (name == "zone_width_m" and config.zone_width_m == 0):
                raise ConfigError.at(f"data.synthetic.zoned.{name}", "must be positive")
        if min(config.enso_season) < 0:
            raise ConfigError.at("data.synthetic.zoned.enso_season", "must be non-negative")
        return config

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ZonedState:
    enso: np.ndarray  # [T]
    anomaly: np.ndarray  # [T, lat, lon], unit variance, AR(1) with the cell's rho
    noise: np.ndarray  # [T, lat, lon], unit variance, white in time
    enso_loading: np.ndarray  # [lat, lon]
    rho: np.ndarray  # [lat, lon] anomaly persistence
    noise_std: np.ndarray  # [lat, lon]


def highness(elevation: np.ndarray, zoned: ZonedConfig) -> np.ndarray:
    """Weight in [0, 1] of the high-elevation values: a logistic step at ``zone_mid_m``."""
    z = np.nan_to_num(elevation, nan=0.0)
    return 1.0 / (1.0 + np.exp(-(z - zoned.zone_mid_m) / zoned.zone_width_m))


def enso_response(e: np.ndarray, zoned: ZonedConfig) -> np.ndarray:
    """``f(e)``: La Niña (e ≤ 0) at full strength, El Niño at ``el_nino_ratio``."""
    return np.where(e > 0, zoned.el_nino_ratio * e, e)


def clim_table(
    elevation: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    cfg: SyntheticConfig,
    zoned: ZonedConfig,
) -> np.ndarray:
    """``C(m, e)`` ``[ENSO_GRID, 12, lat, lon]``: the climatological factor for the wind of
    each month shifted by the ENSO index ``e``."""
    table = np.empty((len(ENSO_GRID), 12, *elevation.shape))
    for j, e in enumerate(ENSO_GRID):
        speed = np.maximum(
            np.asarray(cfg.wind_speed_ms) * (1.0 + zoned.wind_speed_per_enso * e), 0.5
        )
        direction = np.asarray(cfg.wind_from_deg) + zoned.wind_dir_per_enso_deg * e
        shifted = replace(cfg, wind_speed_ms=tuple(speed), wind_from_deg=tuple(direction))
        table[j] = climatological_mean(elevation, lat, lon, shifted)
    return table


def clim_at(table: np.ndarray, month: int, e: np.ndarray) -> np.ndarray:
    """``C(month, e)`` for index values ``e`` ``[n]`` → ``[n, lat, lon]`` (linear in ``e``)."""
    e = np.clip(e, ENSO_GRID[0], ENSO_GRID[-1])
    step = ENSO_GRID[1] - ENSO_GRID[0]
    position = (e - ENSO_GRID[0]) / step
    low = np.minimum(np.floor(position).astype(int), len(ENSO_GRID) - 2)
    frac = (position - low)[:, None, None]
    return (1.0 - frac) * table[low, month] + frac * table[low + 1, month]


def sample_zoned_state(
    seed: int,
    n_months: int,
    lat: np.ndarray,
    lon: np.ndarray,
    elevation: np.ndarray,
    cfg: SyntheticConfig,
    zoned: ZonedConfig,
) -> ZonedState:
    """The latent state; ``E``, the anomaly shocks and ``ε`` use the default's random streams."""
    shape = (len(lat), len(lon))
    enso = ar1_series(
        np.random.default_rng(derive_seed(seed, "synthetic", "enso")), n_months, cfg.enso_rho
    )
    shocks = correlated_fields(
        np.random.default_rng(derive_seed(seed, "synthetic", "anomaly")),
        n_months,
        shape,
        sigma_cells(cfg.anomaly_corr_length_km, lat, lon),
    )
    high = highness(elevation, zoned)
    rho = zoned.anomaly_rho_low + (zoned.anomaly_rho_high - zoned.anomaly_rho_low) * high
    anomaly = np.empty_like(shocks)
    anomaly[0] = shocks[0]
    scale = np.sqrt(1.0 - rho**2)
    for t in range(1, n_months):
        anomaly[t] = rho * anomaly[t - 1] + scale * shocks[t]
    noise = correlated_fields(
        np.random.default_rng(derive_seed(seed, "synthetic", "noise")),
        n_months,
        shape,
        sigma_cells(cfg.noise_corr_length_km, lat, lon),
    )
    noise_std = zoned.noise_std_low + (zoned.noise_std_high - zoned.noise_std_low) * high
    w_east = eastness(lat, lon, cfg)
    loading = cfg.enso_loading_west + (cfg.enso_loading_east - cfg.enso_loading_west) * w_east
    return ZonedState(enso, anomaly, noise, loading, rho, noise_std)


def zoned_precipitation(
    table: np.ndarray,
    months: np.ndarray,
    state: ZonedState,
    cfg: SyntheticConfig,
    zoned: ZonedConfig,
) -> np.ndarray:
    """Monthly precipitation ``[T, lat, lon]`` mm/month."""
    season = np.asarray(zoned.enso_season)
    b, sigma = cfg.anomaly_std, state.noise_std
    out = np.empty(state.anomaly.shape)
    response = enso_response(state.enso, zoned)
    for t, m in enumerate(months):
        clim = clim_at(table, int(m), state.enso[[t]])[0]
        z = (
            -state.enso_loading * season[m] * response[t]
            + b * state.anomaly[t]
            + sigma * state.noise[t]
            - 0.5 * (b**2 + sigma**2)
        )
        out[t] = clim * np.exp(z)
    return out


def zoned_oracle(
    table: np.ndarray,
    months: np.ndarray,
    state: ZonedState,
    cfg: SyntheticConfig,
    zoned: ZonedConfig,
    origins: np.ndarray,
    horizon: int,
    enso_unexplained: float = 0.0,
) -> np.ndarray:
    """``E[P(t + L) | E(t), X(t)]`` ``[origins, horizon, lat, lon]`` (see the module doc).
    ``enso_unexplained`` > 0: ``state.enso`` is an estimate of the index at the origin that
    leaves this share of its variance unexplained, and the quadrature widens by it."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    weights = weights / np.sqrt(2.0 * np.pi)
    season = np.asarray(zoned.enso_season)
    b = cfg.anomaly_std
    out = np.empty((len(origins), horizon, *state.anomaly.shape[1:]))
    for i, t in enumerate(origins):
        for lead in range(1, horizon + 1):
            m = int(months[t + lead])
            re = cfg.enso_rho**lead
            e = re * state.enso[t] + np.sqrt(1.0 - re**2 * (1.0 - enso_unexplained)) * nodes
            factor = np.exp(
                -state.enso_loading[None] * season[m] * enso_response(e, zoned)[:, None, None]
            )
            enso_part = np.tensordot(weights, clim_at(table, m, e) * factor, axes=1)
            rx = state.rho**lead
            out[i, lead - 1] = enso_part * np.exp(b * rx * state.anomaly[t] - 0.5 * b**2 * rx**2)
    return out
