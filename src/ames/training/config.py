"""``TrainConfig``: the hyper-parameters of one training run, checked on construction."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ames.config import ConfigError, unknown_keys


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (one ``training`` block of params.yaml)."""

    epochs: int
    lr: float
    patience: int | None  # None: never stop early
    batch_size: int
    seed: int
    weight_decay: float = 1e-4
    grad_clip: float | None = 1.0  # global L2 norm; None disables clipping
    min_delta: float = 0.0  # an epoch improves iff val_loss < best - min_delta
    amp: bool = False  # float16 autocast + GradScaler, effective on CUDA only
    device: str = "auto"
    num_workers: int = 0
    live: bool = True  # DVCLive learning curves when fit() gets a live_dir
    keep_last: bool = False  # keep the last epoch's weights, not the best validated ones

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), f.type))
        self._validate()

    def _validate(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr > 0,
            "patience": self.patience is None or self.patience >= 1,
            "batch_size": self.batch_size >= 1,
            "weight_decay": self.weight_decay >= 0,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "min_delta": self.min_delta >= 0,
            "num_workers": self.num_workers >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(
                f"TrainConfig: invalid value(s) {values}. Expected epochs, batch_size, "
                "patience >= 1 (patience may be null), lr > 0, grad_clip > 0 or null, "
                "weight_decay, min_delta, num_workers >= 0."
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, path: str = "training") -> TrainConfig:
        """Build from a params mapping; an unknown or missing key is a ``ConfigError`` at the
        key path ``path`` (a bad value is the ``ValueError``/``TypeError`` of construction)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError.at(
                path,
                f"unknown training option(s) {unknown_keys(unknown, names)}. "
                f"Valid options: {', '.join(names)}.",
            )
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.name not in values
        ]
        if required:
            raise ConfigError.at(path, f"missing training option(s) {', '.join(required)}.")
        return cls(**dict(values))


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Check one field against its annotation ("int", "float | None", ...)."""
    base, _, rest = annotation.partition("|")
    base = base.strip()
    if value is None and "None" in rest:
        return None
    if base == "float" and isinstance(value, str):
        # YAML 1.1 reads `1e-3` (no dot) as a string; accept what float() accepts.
        try:
            return float(value)
        except ValueError:
            pass
    is_bool = isinstance(value, bool)
    if base == "float" and isinstance(value, (int, float)) and not is_bool:
        return float(value)
    if base == "int" and isinstance(value, int) and not is_bool:
        return value
    if (base == "bool" and is_bool) or (base == "str" and isinstance(value, str)):
        return value
    raise TypeError(f"TrainConfig.{name}: expected {annotation}, got {value!r}.")
