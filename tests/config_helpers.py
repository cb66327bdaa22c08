"""Typed configurations for tests: the committed params.yaml with a test's small sections."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ames.config import AmesConfig, deep_merge, load_params, parse_config

ROOT = Path(__file__).resolve().parents[1]
REPLACED = ("gating", "meta")


def committed_params() -> dict[str, Any]:
    """The committed params.yaml, default profile applied."""
    return load_params(ROOT / "params.yaml")


def write_params(tmp_path: Path, overlay: Mapping[str, Any]) -> Path:
    """``tmp_path / "params.yaml"``: the committed file (profiles kept) with ``overlay``."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(deep_merge(raw, overlay), sort_keys=False))
    return path


def params_with(partial: Mapping[str, Any]) -> dict[str, Any]:
    """The committed params with ``partial`` merged in.

    A test's expert ``model`` mapping and its ``gating`` / ``meta`` keys replace the
    committed ones rather than merge with them, so the test's small model is built exactly
    as written (the committed sections keep only what parsing needs: training, loss).
    """
    params = deep_merge(committed_params(), {k: v for k, v in partial.items()})
    for key, section in partial.items():
        if key.startswith("expert") and "model" in section:
            params[key]["model"] = dict(section["model"])
        if key in REPLACED:
            kept = {k: params[key][k] for k in ("loss", "training") if k in params[key]}
            params[key] = {**kept, **section}
    return params


def config_with(partial: Mapping[str, Any]) -> AmesConfig:
    return parse_config(params_with(partial))
