"""Cross-validated skill of candidate ``linear_features`` for the experts' linear path.

Each candidate overlays ``linear_features`` in params, fits the linear path as the expert
stages do (``fit_run_linear_path``: blocked, purged folds over the pre-test origins; no test
month is read) and reports the share of climatology's MSE the best penalty explains out of
fold, per lead and as the mean over the leads, with the gain over the plain pooled ``ridge``
regressors. Usage (in a checkout whose ``prepare`` and ``masks`` have run)::

    python scripts/linear_features_cv.py [--params params.yaml]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ames.config import load_config
from ames.models.linear_path_fit import fit_run_linear_path
from ames.paths import DATASET, MASKS
from ames.run import load_run_inputs

PLAIN = {"smoothing_km": [], "smoothing_lags": 0, "loading": False, "interaction_lags": 0}
SMOOTHED = {"smoothing_km": [10, 20, 40, 80, 160, 320], "smoothing_lags": 3}
CANDIDATES: dict[str, dict[str, Any]] = {
    "plain ridge regressors": PLAIN,
    "smoothed anomaly 10-320 km": {**PLAIN, **SMOOTHED},
    "+ interactions (3 months)": {**PLAIN, **SMOOTHED, "interaction_lags": 3},
    "+ loading": {**PLAIN, **SMOOTHED, "loading": True},
    "+ interactions + loading": {**PLAIN, **SMOOTHED, "interaction_lags": 3, "loading": True},
}


def cv_skill(model) -> np.ndarray:
    """``[H]`` share of climatology's cross-validated MSE explained at the best penalty."""
    climatology = model.cv_mse[[i for i, a in enumerate(model.alphas) if np.isinf(a)][0]]
    return 1.0 - model.cv_mse.min(axis=0) / climatology


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default=str(DATASET))
    parser.add_argument("--masks", default=str(MASKS))
    args = parser.parse_args(argv)
    base = load_config(args.params)
    run = load_run_inputs(base, args.dataset, args.masks)
    plain = None
    print(f"{'candidate':28s} {'mean':>7s} {'gain':>7s}  leads 1..{run.horizon}")
    for name, overlay in CANDIDATES.items():
        skill = cv_skill(fit_run_linear_path(base.with_overlay({"linear_features": overlay}), run))
        plain = skill.mean() if plain is None else plain
        leads = " ".join(f"{v:.3f}" for v in skill)
        print(f"{name:28s} {skill.mean():7.4f} {skill.mean() - plain:+7.4f}  {leads}", flush=True)


if __name__ == "__main__":
    main()
