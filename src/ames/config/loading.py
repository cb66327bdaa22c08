"""Loading ``params.yaml`` with its profile overlay, and per-purpose seeds.

``params.yaml`` holds the default profile. ``profile: paper`` (set with
``dvc exp run -S profile=paper``) deep-merges ``profiles.paper`` on top of it, so one
file stays the single source of truth and ``dvc params diff`` shows the switch.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ames.config.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overlay`` merged in recursively (overlay wins)."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_profile(raw: Mapping[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Apply the selected profile overlay and drop the ``profiles`` table."""
    params = {k: v for k, v in raw.items() if k != "profiles"}
    profile = params.get("profile", "default")
    profiles = raw.get("profiles") or {}
    if profile in (None, "default") and "default" not in profiles:
        return params
    if profile not in profiles:
        known = ", ".join(["default", *sorted(profiles)])
        raise ConfigError(
            f"{source}: profile '{profile}' is not defined under 'profiles'. Use one of: {known}."
        )
    return deep_merge(params, profiles[profile] or {})


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read a params file and return the effective parameters of its profile."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: parameter file not found. Run from the project root.")
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level.")
    return resolve_profile(raw, str(path))


def derive_seed(base_seed: int, *purpose: str | int) -> int:
    """A stable 31-bit seed for one purpose (e.g. ``("expert", 1, "init")``).

    Hashing the purpose keeps streams independent: changing how many numbers one
    component draws never shifts another component's randomness.
    """
    text = "/".join([str(base_seed), *map(str, purpose)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def params_hash(params: Mapping[str, Any]) -> str:
    """Short, order-independent hash of a parameter mapping."""
    text = yaml.safe_dump(dict(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
