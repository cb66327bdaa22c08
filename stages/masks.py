"""DVC stage `masks`: zones, context features, graph, split and training statistics."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

# Run the ames package of this checkout (a queued `dvc exp run` executes a copy of the
# repository), not whichever checkout an editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ames.cli import run_stage
from ames.climatology import training_month_mask
from ames.data.dataset import load_grid_data
from ames.io import write_json
from ames.masks import (
    ZONES,
    build_graph,
    context_features,
    make_split,
    training_statistics,
)
from ames.masks_io import MaskBundle, save_masks
from ames.plotting.masks import plot_zone_map
from ames.settings import load_config
from ames.zones import resolve_zones

log = logging.getLogger("ames.masks")


def masks_metrics(bundle: MaskBundle, elapsed_s: float) -> dict:
    n_valid = int(bundle.valid.sum())
    in_degree = np.bincount(
        bundle.graph["edge_index"][1], minlength=bundle.graph["node_index"].size
    )
    return {
        "zones": {
            name: {
                "cells": int(bundle.zones[name].sum()),
                "fraction": round(float(bundle.zones[name].sum()) / n_valid, 4),
            }
            for name in ZONES
        },
        "thresholds": bundle.thresholds.to_dict(),
        "n_valid_cells": n_valid,
        "graph": {
            "n_nodes": int(bundle.graph["node_index"].size),
            "n_edges": int(bundle.graph["edge_index"].shape[1]),
            "max_degree": int(in_degree.max()),
            "mean_degree": round(float(in_degree.mean()), 2),
        },
        "split": {name: len(bundle.split[name]) for name in ("train", "val", "test")},
        "time_s": round(elapsed_s, 2),
    }


def main() -> None:
    run_stage("masks", run)  # a bad file or setting: one line naming it, the problem, the fix


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default="data/processed/dataset.nc")
    parser.add_argument("--out", default="data/processed/masks")
    parser.add_argument("--metrics", default="metrics/masks.json")
    parser.add_argument("--plot", default="plots/masks/zones.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    start = time.perf_counter()

    cfg = load_config(args.params)
    split_cfg = cfg.split
    data = load_grid_data(args.dataset)
    months = data.months

    zones, thresholds = resolve_zones(data.elevation, data.valid, cfg.zones, args.dataset)
    context = context_features(data.elevation, data.lat, data.lon, data.valid)
    stats = training_statistics(
        data.precip,
        months,
        data.valid,
        context,
        split_cfg.test_months,
        split_cfg.val_months,
    )
    train = training_month_mask(len(data.times), split_cfg.test_months, split_cfg.val_months)
    train_anom = data.precip[train] - stats["clim_mean"][months[train]]
    log.info("building graph over %d cells", int(data.valid.sum()))
    graph = build_graph(data.valid, data.elevation, data.lat, data.lon, train_anom, cfg.graph)
    split = make_split(
        data.times,
        cfg.features.input_window,
        split_cfg.horizon,
        split_cfg.test_months,
        split_cfg.val_months,
    )
    bundle = MaskBundle(
        zones, data.valid, context, graph, split, stats, thresholds, lat=data.lat, lon=data.lon
    )
    save_masks(args.out, bundle)
    plot_zone_map(
        zones,
        data.elevation,
        data.lat,
        data.lon,
        args.plot,
        (thresholds.low_max_m, thresholds.high_min_m),
    )
    metrics = masks_metrics(bundle, time.perf_counter() - start)
    write_json(args.metrics, metrics)
    log.info("zones %s, graph %s, split %s", metrics["zones"], metrics["graph"], metrics["split"])


if __name__ == "__main__":
    main()
