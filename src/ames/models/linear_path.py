"""The experts' ``linear_path``: a linear forecast inside each expert, added to its output so
the network only has to learn what is not linear.

:class:`LinearPath` holds the ``ridge`` baseline's regressors (the cell's standardised
anomaly over the window, the domain-mean anomaly over the window, sin/cos of the origin
month; ``ames.evaluation.ridge``). :class:`SpatialRegressors` adds, when the
``linear_features`` params ask for them, regressors that need the grid:

* the anomaly field smoothed with a Gaussian of each ``smoothing_km`` scale over the valid
  cells (a normalised convolution), for the latest ``smoothing_lags`` months: a cell's own
  anomaly is a noisy estimate of the persistent large-scale anomaly, its neighbourhood mean
  a better one;
* ``loading``: each cell's regression slope on the domain-mean anomaly over training months
  (centred over the cells) times the domain-mean history, so the large-scale signal can
  weigh more where it is felt more (teleconnections weaken or strengthen across a range);
* ``interaction_lags``: for the latest months, the cell's anomaly times its (z-scored)
  elevation, and the domain-mean anomaly times sin and cos of the origin month and times
  the elevation. One pooled regression then has a persistence that changes with elevation
  and a large-scale signal whose weight changes with the season and the altitude, as
  teleconnections in the Andes do (strong in some months, weak in others).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ames.config import AmesConfig, LinearFeatures
from ames.run import RunInputs

_TRUNCATE = 4.0  # Gaussian kernel half-width in standard deviations (as scipy.ndimage)
_KM_PER_DEGREE = 111.32


def grid_spacing_km(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """``(dy, dx)`` in km of a regular latitude/longitude grid, at its mean latitude."""
    dy = abs(float(np.mean(np.diff(lat)))) * _KM_PER_DEGREE
    dx = abs(float(np.mean(np.diff(lon)))) * _KM_PER_DEGREE * np.cos(np.deg2rad(np.mean(lat)))
    return dy, float(dx)


def gaussian_kernel(sigma_cells: float) -> Tensor:
    """Normalised 1-D Gaussian weights over ``±round(4σ)`` cells."""
    radius = int(_TRUNCATE * sigma_cells + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (x / sigma_cells) ** 2)
    return (weights / weights.sum()).float()


def smoothing_matrix(sigma_cells: float, n: int) -> Tensor:
    """``[n, n]``: the 1-D Gaussian convolution of ``n`` cells with zeros beyond them, as a
    matrix (``out = M @ x``): one matrix product whatever the kernel's width."""
    kernel = gaussian_kernel(sigma_cells)
    radius = len(kernel) // 2
    offset = torch.arange(n)[None, :] - torch.arange(n)[:, None]  # j − i
    inside = offset.abs() <= radius
    return torch.where(inside, kernel[(offset + radius).clamp(0, len(kernel) - 1)], 0.0)


class SpatialRegressors(nn.Module):
    """The grid-aware regressors above, ``[B, F, lat, lon]`` from the expert's input window;
    ``F = len(smoothing_km) · smoothing_lags + 4 · interaction_lags (+ W with loading)``, in
    that order (scale-major, months oldest first; interactions as :meth:`interactions`).
    ``loading`` is a saved buffer, set when the path is fitted."""

    def __init__(
        self,
        features: LinearFeatures,
        window: int,
        valid: np.ndarray,
        spacing_km: tuple[float, float],
    ) -> None:
        super().__init__()
        scales = tuple(features.smoothing_km) if features.smoothing_lags else ()
        for key in ("smoothing_lags", "interaction_lags"):
            if getattr(features, key) > window:
                raise ValueError(
                    f"linear_features.{key}={getattr(features, key)} exceeds the "
                    f"input window ({window})"
                )
        self.lags = features.smoothing_lags if scales else 0
        self.interaction_lags = features.interaction_lags
        self.window = window
        self.use_loading = features.loading
        mask = torch.as_tensor(np.asarray(valid), dtype=torch.float32)
        self.register_buffer("valid", mask, persistent=False)
        n_lat, n_lon = mask.shape
        self.kernels: list[tuple[Tensor, Tensor]] = [
            (
                smoothing_matrix(km / spacing_km[0], n_lat),
                smoothing_matrix(km / spacing_km[1], n_lon),
            )
            for km in scales
        ]
        weights = [self._convolve(mask[None], k)[0] for k in self.kernels]
        weight = torch.stack(weights) if weights else mask[None, :0]
        self.register_buffer("weight", weight.clamp_min(1e-6), persistent=False)
        self.register_buffer("loading", torch.zeros_like(mask))

    @property
    def n_features(self) -> int:
        smoothed = len(self.kernels) * self.lags
        return smoothed + 4 * self.interaction_lags + (self.window if self.use_loading else 0)

    @staticmethod
    def _convolve(fields: Tensor, kernel: tuple[Tensor, Tensor]) -> Tensor:
        """Separable Gaussian of ``[N, lat, lon]`` with zeros beyond the grid."""
        ky, kx = (k.to(fields) for k in kernel)
        return ky @ fields @ kx.T

    def smoothed(self, anomaly: Tensor) -> Tensor:
        """``[B, len(scales) · lags, lat, lon]``: the latest ``lags`` months of ``anomaly
        [B, W, lat, lon]`` (0 outside the valid cells), smoothed at each scale."""
        recent = anomaly[:, anomaly.shape[1] - self.lags :].flatten(0, 1)
        parts = [
            (self._convolve(recent, k) / self.weight[i] * self.valid).unflatten(0, (-1, self.lags))
            for i, k in enumerate(self.kernels)
        ]
        return torch.cat(parts, dim=1) if parts else anomaly[:, :0]

    def interactions(
        self, anomaly: Tensor, domain: Tensor, season: Tensor, elevation: Tensor
    ) -> Tensor:
        """``[B, 4 · k, lat, lon]`` for the latest ``k = interaction_lags`` months of
        ``anomaly`` and ``domain`` ``[B, W, lat, lon]``, with ``season`` ``[B, 2, lat, lon]``
        (sin, cos of the origin month) and ``elevation`` ``[B, lat, lon]`` (z-scored):
        anomaly × elevation, domain × sin, domain × cos, domain × elevation."""
        k = self.interaction_lags
        recent, large = anomaly[:, anomaly.shape[1] - k :], domain[:, domain.shape[1] - k :]
        height = elevation[:, None]
        parts = [recent * height, large * season[:, :1], large * season[:, 1:2], large * height]
        return torch.cat(parts, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, W, C, lat, lon]``, the expert's input window (``window_inputs``)."""
        anomaly, domain = x[:, :, 0], x[:, :, 1]
        parts = [self.smoothed(anomaly)]
        if self.interaction_lags:
            parts.append(self.interactions(anomaly, domain, x[:, -1, 2:4], x[:, -1, 4]))
        if self.use_loading:
            parts.append(self.loading * domain)
        return torch.cat(parts, dim=1)


def spatial_regressors(cfg: AmesConfig, run: RunInputs) -> SpatialRegressors:
    """The run's ``linear_features`` regressors on its grid (loading not yet fitted)."""
    spacing = grid_spacing_km(run.data.lat, run.data.lon)
    return SpatialRegressors(cfg.linear_features, run.window, run.masks.valid, spacing)


class LinearPath(nn.Module):
    """``linear_path``: per cell, the same weights everywhere (a 1×1 convolution) from the
    ``ridge`` regressors (input channels 0, 1, 2–3; see ``ames.windows.window_inputs``) and
    any :class:`SpatialRegressors` (:meth:`add_spatial`) → the standardised anomaly ``z`` of
    each of the H target months. ``set_units`` maps ``z`` to the expert's target units,
    ``shift[m] + gain[m] · z`` for target calendar month ``m`` (identity until set).
    ``linear_path: true`` starts the weights at zero and trains them with the rest of the
    expert; ``linear_path: ridge`` fixes them to a cross-validated ridge regression
    (``set_weights``), so the network learns its residual. Either way the expert's output
    layer starts at zero (:func:`start_as_linear_path`): an untrained expert forecasts its
    path.
    """

    def __init__(self, window: int, horizon: int, frozen: bool = False) -> None:
        super().__init__()
        self.frozen = frozen
        self.horizon = horizon
        self.proj = nn.Conv2d(2 * window + 2, horizon, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.proj.requires_grad_(not frozen)
        self.spatial: SpatialRegressors | None = None
        self.spatial_weight: nn.Parameter | None = None
        # derived from the run's training statistics whenever the expert is built: not saved
        self.register_buffer("shift", torch.zeros(12, 1, 1), persistent=False)
        self.register_buffer("gain", torch.ones(12, 1, 1), persistent=False)
        angle = 2 * torch.pi * torch.arange(12) / 12.0
        self.register_buffer("month_code", torch.stack([angle.sin(), angle.cos()]), False)
        self.register_buffer("leads", torch.arange(1, horizon + 1), persistent=False)

    @property
    def n_features(self) -> int:
        extra = 0 if self.spatial is None else self.spatial.n_features
        return self.proj.in_channels + extra

    def add_spatial(self, spatial: SpatialRegressors) -> None:
        """Add the grid-aware regressors (weights start at zero; no random draws)."""
        self.spatial = spatial
        weight = torch.zeros(self.horizon, spatial.n_features)
        self.spatial_weight = nn.Parameter(weight, requires_grad=not self.frozen)

    @torch.no_grad()
    def set_weights(
        self, coef: np.ndarray, intercept: np.ndarray, loading: np.ndarray | None = None
    ) -> None:
        """``coef`` ``[H, F]`` and ``intercept`` ``[H]`` in the order of ``ridge_features``
        then the spatial regressors; ``loading`` ``[lat, lon]`` when they use it."""
        coef = torch.as_tensor(coef, dtype=torch.float32)
        if coef.shape[1] != self.n_features:
            raise ValueError(f"coef has {coef.shape[1]} regressors, the path {self.n_features}")
        n_plain = self.proj.in_channels
        self.proj.weight.copy_(coef[:, :n_plain, None, None])
        self.proj.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))
        if self.spatial is not None:
            self.spatial_weight.copy_(coef[:, n_plain:])
            if loading is not None:
                self.spatial.loading.copy_(torch.as_tensor(loading, dtype=torch.float32))

    def set_units(self, shift: Tensor, gain: Tensor) -> None:
        """``[12, lat, lon]`` each: target units = ``shift[m] + gain[m] · z``."""
        self.shift = shift.to(self.shift)
        self.gain = gain.to(self.gain)

    def origin_month(self, x: Tensor) -> Tensor:
        """``[B]`` calendar month 0..11 of the last input month, from its sin/cos channels."""
        code = x[:, -1, 2:4].mean(dim=(-2, -1)).float()  # [B, 2], the same in every cell
        return (code @ self.month_code).argmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, W, C, lat, lon]`` → ``[B, H, lat, lon]`` in the expert's target units."""
        regressors = torch.cat([x[:, :, 0], x[:, :, 1], x[:, -1, 2:4]], dim=1)
        z = self.proj(regressors)
        if self.spatial is not None:
            extra = self.spatial(x)
            z = z + torch.einsum("hf,bfyx->bhyx", self.spatial_weight, extra)
        month = (self.origin_month(x)[:, None] + self.leads) % 12  # [B, H]
        return self.shift[month] + self.gain[month] * z


def linear_path(mode: bool | str, window: int, horizon: int) -> LinearPath | None:
    """The ``linear_path`` of an expert: None when off, frozen for ``ridge``."""
    if not mode:
        return None
    if window < 1:
        raise ValueError(f"linear_path needs the input window, got window={window}")
    return LinearPath(window, horizon, frozen=mode == "ridge")


def start_as_linear_path(head: nn.Module, path: LinearPath | None) -> None:
    """Zero the weight and bias of ``head``, the layer that maps to the H leads, when the
    expert has a linear ``path``: the expert then starts as exactly its linear forecast and
    training learns the nonlinear residual. Zeroing draws no random numbers, so an expert
    without a path, or any module built after the head, initialises as before."""
    if path is None:
        return
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)


def forecasts_linear_path_only(expert: nn.Module, head: nn.Module) -> bool:
    """Whether ``expert`` (with a linear path, evaluated without gradients) can skip its
    network: with ``head`` still at zero (an expert that kept epoch 0) the network adds
    exactly 0 to the path, so its forecast is the path's, bit for bit, at a fraction of the
    cost (stacking, calibration, evaluation and inference read many such forecasts)."""
    if getattr(expert, "linear", None) is None or expert.training or torch.is_grad_enabled():
        return False
    return not head.weight.any() and (head.bias is None or not head.bias.any())
