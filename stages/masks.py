"""DVC stage `masks`: zones, context features, graph, split and training statistics."""

from __future__ import annotations

import argparse
import logging
import time

import _src_path  # noqa: F401  (this checkout's src before ames)
import numpy as np

from ames.cli import stage_main
from ames.climatology import training_month_mask
from ames.config import AmesConfig
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
from ames.paths import DATASET, MASKS, METRICS, PLOTS
from ames.plotting.masks import plot_zone_map
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=str(DATASET))
    parser.add_argument("--out", default=str(MASKS))
    parser.add_argument("--metrics", default=str(METRICS / "masks.json"))
    parser.add_argument("--plot", default=str(PLOTS / "masks" / "zones.png"))


def run(args: argparse.Namespace, cfg: AmesConfig) -> None:
    start = time.perf_counter()
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


# a bad file or setting: one line naming it, the problem, the fix
main = stage_main("masks", __doc__, add_arguments, run)

if __name__ == "__main__":
    main()
