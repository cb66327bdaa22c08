"""Stage entry points report a user error as one line (ames.cli)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ames.cli import run_stage
from ames.config import ConfigError
from ames.data.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def _fail(error: Exception):
    def main() -> None:
        raise error

    return main


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch):
    monkeypatch.delenv("AMES_DEBUG", raising=False)
    problem = DataError("data/raw/p.nc", "no time axis\n(looked for time, t)", "add one")
    with pytest.raises(SystemExit) as info:
        run_stage("prepare", _fail(problem))
    assert (
        info.value.code
        == "prepare: data/raw/p.nc: no time axis (looked for time, t). Fix: add one."
    )
    with pytest.raises(KeyError):
        run_stage("prepare", _fail(KeyError("a bug")))


def test_the_debug_switch_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("AMES_DEBUG", "1")
    with pytest.raises(ConfigError):
        run_stage("gating", _fail(ConfigError("params.yaml: bad")))


def test_a_stage_with_a_missing_params_file_prints_exactly_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("AMES_DEBUG", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "train_ames.py"), "--stage", "gating"]
        + ["--params", "missing.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "gating: missing.yaml: parameter file not found. Run from the project root."
    ]
