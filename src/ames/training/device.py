"""Where training runs: device selection and float16 autocast (AMP, CUDA only)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from ames.errors import UserError
from ames.training.distributed import rank_device


class DeviceUnavailableError(UserError, RuntimeError):
    """An explicitly requested device that this machine or torch build lacks."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(preference: str = "auto") -> torch.device:
    """Resolve ``auto`` (CUDA, else MPS, else CPU) or check an explicit cpu/cuda[:N]/mps.

    Under a ``torchrun`` launch a CUDA device is each rank's own, ``cuda:LOCAL_RANK``."""
    return rank_device(_select(preference))


def _select(preference: str) -> torch.device:
    pref = str(preference).strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError as exc:
        raise ValueError(_bad_device_message(preference)) from exc
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(_bad_device_message(preference))
    _check_available(device, preference)
    return device


def _bad_device_message(preference: str) -> str:
    return f"training device '{preference}' is not supported; use auto, cpu, cuda, cuda:N or mps."


def _check_available(device: torch.device, preference: str) -> None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"training device '{preference}' requested but CUDA is not available "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}). "
                "Set the training device to 'auto' or 'cpu'."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"training device '{preference}' requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    if device.type == "mps" and not _mps_available():
        raise DeviceUnavailableError(
            f"training device '{preference}' requested but Apple MPS is not available. "
            "Set the training device to 'auto' or 'cpu'."
        )


def amp_enabled(requested: bool, device: torch.device) -> bool:
    """Whether mixed precision is used: only where requested and on CUDA."""
    return requested and device.type == "cuda"


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    """float16 autocast on ``device`` when ``enabled``, else a no-op context."""
    if enabled:
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return nullcontext()
