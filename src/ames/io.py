"""Small, atomic file writers shared by the stages."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then move the file into place, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def _to_builtin(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write JSON with sorted keys and numpy scalars converted (non-finite -> null)."""
    text = json.dumps(_to_builtin(payload), indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def read_json(path: str | Path) -> dict[str, Any]:
    with Path(path).open() as fh:
        return json.load(fh)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


class SampleFile:
    """A float32 array ``[S, ...]`` in a ``.npy`` file, written and read one sample (or one
    run of consecutive samples) at a time with plain file I/O: only what is being read or
    written is in the process's memory, the rest stays on disk or in the kernel's page
    cache, which the kernel may drop (a memory map would count every page it touched as
    the process's resident memory). ``np.load(path)`` reads it whole."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as fh:
            fmt = np.lib.format
            version = fmt.read_magic(fh)
            read_header = (
                fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran or dtype != np.float32:
            raise ValueError(f"{self.path}: expected a C-ordered float32 array, got {dtype}")
        self.shape: tuple[int, ...] = tuple(shape)
        self.sample_shape = self.shape[1:]
        self.sample_size = int(np.prod(self.sample_shape))

    @classmethod
    def create(cls, path: str | Path, shape: tuple[int, ...]) -> SampleFile:
        """A new file of ``shape`` (its samples unwritten, read as zeros until written)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with Path(path).open("wb") as fh:
            header = {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_2_0(fh, header)
            fh.truncate(fh.tell() + int(np.prod(shape)) * 4)
        return cls(path)

    def __len__(self) -> int:
        return self.shape[0]

    def _seek(self, fh: Any, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.path}: sample {index} outside 0..{len(self) - 1}")
        fh.seek(self.offset + index * self.sample_size * 4)

    def write(self, index: int, samples: np.ndarray) -> None:
        """Write ``samples`` ``[n, ...]`` as samples ``index .. index + n - 1``."""
        samples = np.ascontiguousarray(samples, dtype="<f4")
        if samples.shape[1:] != self.sample_shape:
            raise ValueError(
                f"{self.path}: samples of shape {samples.shape[1:]}, expected {self.sample_shape}"
            )
        with self.path.open("r+b") as fh:
            self._seek(fh, index + len(samples) - 1)
            self._seek(fh, index)
            fh.write(samples.tobytes())

    def read(self, index: int, count: int = 1) -> np.ndarray:
        """Samples ``index .. index + count - 1`` as a new ``[count, ...]`` array."""
        with self.path.open("rb") as fh:
            self._seek(fh, index + count - 1)
            self._seek(fh, index)
            data = np.fromfile(fh, dtype="<f4", count=count * self.sample_size)
        return data.reshape(count, *self.sample_shape)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.read(int(index))[0]
