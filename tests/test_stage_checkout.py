"""Stage scripts run the ``ames`` code of their own checkout, not an installed copy.

``dvc exp run --queue`` executes every experiment in a copy of the repository under
``.dvc/tmp/exps``; with an editable install, ``import ames`` would otherwise load the
workspace's ``src`` — code that may have changed since the experiment was queued, and not
the files whose hashes DVC records for it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


STAGES = sorted(p.name for p in (ROOT / "stages").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", STAGES)
def test_a_stage_script_imports_ames_from_its_own_checkout(tmp_path, script):
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "stages", copy / "stages")
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "src/ames/__init__.py").write_text('raise SystemExit("ames of the copy")\n')
    result = subprocess.run(
        [sys.executable, str(copy / "stages" / script), "--help"],
        cwd=tmp_path,  # neither checkout's root
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "ames of the copy" in result.stderr
