"""Forecast windows over the dataset, built lazily, and the target transform.

A sample is one forecast origin ``t``: inputs are months ``t-W+1 … t``, targets months
``t+1 … t+H``. Only the ``[T, lat, lon]`` arrays are held in memory; each window is sliced
when it is requested, never materialised for all origins at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ames.climatology import target_months

N_CONTEXT = 5
# anomaly, domain-mean anomaly, month sin, month cos, static context
N_CHANNELS = 4 + N_CONTEXT
TARGET_KINDS = ("anomaly", "standardized_anomaly", "normalized")


class TargetTransform(nn.Module):
    """Maps precipitation in mm/month to the units the networks predict, and back.

    kinds:
      - ``anomaly``: ``(P − clim_mean[m]) / anom_std``; zero is climatology (default).
      - ``standardized_anomaly``: ``(P − clim_mean[m]) / clim_std[m]``; zero is climatology.
      - ``normalized``: ``(P − precip_mean) / precip_std``; zero is the training mean.
    All statistics are training-month statistics from the ``masks`` stage.
    """

    def __init__(
        self,
        kind: str,
        clim_mean: np.ndarray,
        clim_std: np.ndarray,
        anom_std: float,
        precip_mean: float,
        precip_std: float,
    ) -> None:
        super().__init__()
        if kind not in TARGET_KINDS:
            raise ValueError(
                f"features.target_transform must be one of {TARGET_KINDS}, got {kind!r}"
            )
        self.kind = kind
        mean = np.nan_to_num(np.asarray(clim_mean, dtype=np.float32))
        std = np.nan_to_num(np.asarray(clim_std, dtype=np.float32), nan=1.0)
        if kind == "anomaly":
            offset, scale = mean, np.full_like(mean, float(anom_std))
        elif kind == "standardized_anomaly":
            offset, scale = mean, std
        else:
            offset = np.full_like(mean, float(precip_mean))
            scale = np.full_like(mean, float(precip_std))
        self.register_buffer("offset", torch.from_numpy(offset))  # [12, lat, lon]
        self.register_buffer("scale", torch.from_numpy(scale))

    def _per_target(self, table: Tensor, target_month: Tensor) -> Tensor:
        return table[target_month]  # [B, H] -> [B, H, lat, lon]

    def to_mm(self, y: Tensor, target_month: Tensor) -> Tensor:
        """Transformed units ``[B, H, lat, lon]`` → mm/month."""
        return self._per_target(self.offset, target_month) + y * self._per_target(
            self.scale, target_month
        )

    def from_mm(self, p_mm: Tensor, target_month: Tensor) -> Tensor:
        """mm/month ``[B, H, lat, lon]`` → transformed units."""
        return (p_mm - self._per_target(self.offset, target_month)) / self._per_target(
            self.scale, target_month
        )

    def standardized_anomaly_units(
        self, clim_mean: np.ndarray, clim_std: np.ndarray
    ) -> tuple[Tensor, Tensor]:
        """``(shift, gain)`` ``[12, lat, lon]``: a standardised anomaly ``z`` of target month
        ``m`` is ``shift[m] + gain[m] · z`` in these units (the value of
        ``clim_mean + z · clim_std`` mm/month)."""
        mean = torch.from_numpy(np.nan_to_num(np.asarray(clim_mean, dtype=np.float32)))
        std = torch.from_numpy(np.nan_to_num(np.asarray(clim_std, dtype=np.float32), nan=1.0))
        return (mean - self.offset) / self.scale, std / self.scale

    @classmethod
    def from_stats(cls, kind: str, stats: dict[str, np.ndarray]) -> TargetTransform:
        return cls(
            kind,
            stats["clim_mean"],
            stats["clim_std"],
            float(stats["anom_std"]),
            float(stats["precip_mean"]),
            float(stats["precip_std"]),
        )


@dataclass(frozen=True)
class GridInputs:
    """Everything a window needs, prepared once from the dataset and training statistics."""

    anomaly: np.ndarray  # [T, lat, lon] standardised anomaly, 0 at invalid cells
    domain_anomaly: np.ndarray  # [T] mean standardised anomaly over the valid cells
    precip_mm: np.ndarray  # [T, lat, lon] mm/month, NaN at invalid cells
    months: np.ndarray  # [T] calendar month 0..11
    context: np.ndarray  # [5, lat, lon] z-scored context, 0 at invalid cells


def build_grid_inputs(
    precip_mm: np.ndarray,
    months: np.ndarray,
    context_features: np.ndarray,
    valid: np.ndarray,
    stats: dict[str, np.ndarray],
) -> GridInputs:
    """Normalise precipitation and context with training statistics (no NaN left in inputs)."""
    months = np.asarray(months, dtype=np.int64)
    clim_mean, clim_std = stats["clim_mean"], stats["clim_std"]
    anomaly = (precip_mm - clim_mean[months]) / clim_std[months]
    anomaly = np.where(valid[None], anomaly, 0.0).astype(np.float32)
    if not np.isfinite(anomaly).all():
        raise ValueError(
            "non-finite precipitation inside valid cells; prepare should have caught it"
        )
    ctx = (context_features - stats["context_mean"]) / stats["context_std"]
    ctx = np.where(valid[..., None], ctx, 0.0).astype(np.float32)
    return GridInputs(
        anomaly=anomaly,
        domain_anomaly=anomaly[:, valid].mean(axis=1).astype(np.float32),
        precip_mm=np.where(valid[None], precip_mm, np.nan).astype(np.float32),
        months=months,
        context=np.moveaxis(ctx, -1, 0).copy(),
    )


def window_inputs(inputs: GridInputs, t: int, window: int) -> np.ndarray:
    """Input tensor ``[W, C, lat, lon]`` of forecast origin ``t`` (months ``t-W+1 … t``).

    Channels: 0 standardised anomaly; 1 its mean over the domain (a large-scale index such
    as ENSO shows up there, beyond any local receptive field); 2–3 sin/cos of the month;
    4–8 static context.
    """
    if t - window + 1 < 0 or t >= inputs.anomaly.shape[0]:
        raise ValueError(f"origin {t} needs months {t - window + 1}..{t}, outside the record")
    n_lat, n_lon = inputs.anomaly.shape[1:]
    steps = slice(t - window + 1, t + 1)
    angle = 2 * np.pi * inputs.months[steps] / 12.0
    x = np.empty((window, N_CHANNELS, n_lat, n_lon), dtype=np.float32)
    x[:, 0] = inputs.anomaly[steps]
    x[:, 1] = inputs.domain_anomaly[steps, None, None]
    x[:, 2] = np.sin(angle)[:, None, None]
    x[:, 3] = np.cos(angle)[:, None, None]
    x[:, 4:] = inputs.context[None]
    return x


class WindowDataset(Dataset):
    """Samples for a list of forecast origins; each item is a dict of tensors (see docs)."""

    def __init__(
        self,
        inputs: GridInputs,
        origins: list[int] | np.ndarray,
        window: int,
        horizon: int,
        transform: TargetTransform,
    ) -> None:
        self.inputs = inputs
        self.origins = np.asarray(origins, dtype=np.int64)
        self.window = int(window)
        self.horizon = int(horizon)
        n_time = inputs.anomaly.shape[0]
        if len(self.origins) and (
            self.origins.min() - window + 1 < 0 or self.origins.max() + horizon >= n_time
        ):
            raise ValueError("an origin's window or targets fall outside the time axis")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.origins)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        t = int(self.origins[index])
        origin_month = self.inputs.months[t]
        tgt_months = torch.from_numpy(target_months(np.array([origin_month]), self.horizon)[0])
        y_mm = torch.from_numpy(self.inputs.precip_mm[t + 1 : t + 1 + self.horizon])
        with torch.no_grad():
            y = self.transform.from_mm(y_mm[None], tgt_months[None])[0]
        return {
            "x": torch.from_numpy(window_inputs(self.inputs, t, self.window)),
            "y": y,
            "y_mm": y_mm,
            "target_month": tgt_months,
            "origin_month": torch.tensor(origin_month, dtype=torch.int64),
            "origin": torch.tensor(t, dtype=torch.int64),
        }
