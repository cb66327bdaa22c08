"""The experts' ``linear_path: ridge``, fitted once per run and read back where it is needed,
and its refits on the selection folds' blocks (:func:`cached_block_linear_paths`).

The fit depends only on the data, the masks, the ``features``, ``linear_features`` and
``selection`` params and the fitting code, not on the expert or the model seed, yet every
expert stage, the seed members and ``calibrate`` need it; each fit standardises the run once
per selection fold (``ames.evaluation.ridge.fold_inputs``). :func:`cached_linear_path` keeps
the last fit under the run's training-state folder (``models/state/linear_path/``,
git-ignored, not a DVC output), keyed by a hash of all of those, the source of the fitting
modules included, so that a change to the code is never answered from an old fit.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from ames import climatology, selection, windows
from ames.evaluation import ridge
from ames.evaluation.ridge import RidgeBaseline
from ames.io import atomic_write
from ames.models import linear_path, linear_path_fit
from ames.models.linear_path_fit import fit_run_linear_path
from ames.run import RunInputs
from ames.training.distributed import on_every_rank, on_main
from ames.workflows import blocks as blocks_module
from ames.workflows.blocks import HeldOutBlock
from ames.workflows.context import RunContext

log = logging.getLogger("ames.linear_path")

SECTIONS = ["features", "linear_features", "selection"]
FITTING_MODULES = (climatology, selection, windows, ridge, linear_path, linear_path_fit)
OPTIONAL = ("loading", "gain", "gain_se")


def fitting_code_digest() -> str:
    """A hash of the source of every module the fit runs through."""
    digest = hashlib.sha256()
    for module in FITTING_MODULES:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def save_linear_path(path: Path, fit: RidgeBaseline) -> None:
    arrays = {
        "coef": fit.coef,
        "intercept": fit.intercept,
        "alpha": fit.alpha,
        "cv_mse": fit.cv_mse,
        "alphas": np.asarray(fit.alphas),
        "window": np.asarray(fit.window),
    }
    arrays |= {name: getattr(fit, name) for name in OPTIONAL if getattr(fit, name) is not None}

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def load_linear_path(path: Path) -> RidgeBaseline:
    with np.load(path) as saved:
        optional = {name: saved[name] if name in saved else None for name in OPTIONAL}
        return RidgeBaseline(
            coef=saved["coef"],
            intercept=saved["intercept"],
            alpha=saved["alpha"],
            cv_mse=saved["cv_mse"],
            alphas=tuple(float(a) for a in saved["alphas"]),
            window=int(saved["window"]),
            **optional,
        )


def cached_linear_path(ctx: RunContext) -> RidgeBaseline:
    """``fit_run_linear_path`` of the run, read from ``ctx.state_root/linear_path`` when a fit
    of the same data, params and code is there; otherwise fitted and written there
    (replacing any older fit)."""
    key = hashlib.sha256((ctx.fingerprint(SECTIONS) + fitting_code_digest()).encode()).hexdigest()[
        :16
    ]
    folder = ctx.state_root / "linear_path"
    path = folder / f"{key}.npz"
    if on_every_rank(path.is_file()):  # data-parallel: rank 0 writes it below
        log.info("linear path: read from %s", path)
        return load_linear_path(path)
    fit = fit_run_linear_path(ctx.cfg, ctx.run)
    on_main(_replace, folder, path, partial(save_linear_path, path, fit), "linear path: fit")
    return fit


BlockPath = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # coef, intercept, loading


def cached_block_linear_paths(
    ctx: RunContext, runs: list[RunInputs], blocks: list[HeldOutBlock], alpha: np.ndarray
) -> list[BlockPath]:
    """:func:`ames.workflows.blocks.block_linear_paths` at the penalties ``alpha``, read from
    ``ctx.state_root/block_linear_paths`` when the same refits (data, params, code, penalties)
    are there: the three expert stages, stacking and fine-tuning refit the same paths on the
    same blocks (12 s each on a 108-year record)."""
    digest = hashlib.sha256(ctx.fingerprint(SECTIONS).encode())
    digest.update((fitting_code_digest() + inspect.getsource(blocks_module)).encode())
    digest.update(np.ascontiguousarray(alpha, dtype=np.float64).tobytes())
    folder = ctx.state_root / "block_linear_paths"
    path = folder / f"{digest.hexdigest()[:16]}.npz"
    if on_every_rank(path.is_file()):
        log.info("linear path: block refits read from %s", path)
        return load_block_paths(path, len(blocks))
    paths = blocks_module.block_linear_paths(ctx.cfg, runs, blocks, alpha)
    save = partial(save_block_paths, path, paths)
    on_main(_replace, folder, path, save, "linear path: block refits")
    return paths


def save_block_paths(path: Path, paths: list[BlockPath]) -> None:
    arrays = {}
    for b, (coef, intercept, loading) in enumerate(paths):
        arrays |= {f"coef{b}": coef, f"intercept{b}": intercept}
        if loading is not None:
            arrays[f"loading{b}"] = loading

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def load_block_paths(path: Path, n_blocks: int) -> list[BlockPath]:
    with np.load(path) as saved:
        return [
            (saved[f"coef{b}"], saved[f"intercept{b}"], saved.get(f"loading{b}"))
            for b in range(n_blocks)
        ]


def _replace(folder: Path, path: Path, save: Callable[[], None], what: str) -> None:
    """Write ``path`` with ``save()`` in place of every older fit in ``folder``."""
    for old in folder.glob("*.npz"):
        old.unlink()
    save()
    log.info("%s written to %s", what, path)
