"""The scaling benchmark's summary line (scripts/scaling.py) says what it could not measure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the script imports its sibling scripts
_spec = importlib.util.spec_from_file_location("scaling", ROOT / "scripts" / "scaling.py")
scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling)


def _results(stages: dict) -> dict:
    return {"factors": {"x16": {"factor": 16.0, "stages": stages}}, "exponents": {}}


def test_a_stopped_or_skipped_stage_is_not_counted_as_meeting_the_memory_target():
    ok = {"status": "ok", "peak_rss_gb": 3.6}
    line = scaling.target_lines(_results({"expert@1": ok}))[0]
    assert "met by every stage;" in line and "not known" not in line
    stages = {
        "expert@1": ok,
        "gating": {"status": "stopped", "reason": "over 900 s", "peak_rss_gb": 3.4},
        "finetune": {"status": "skipped", "reason": "needs gating"},
    }
    line = scaling.target_lines(_results(stages))[0]
    assert "met by every stage that finished (not known for gating, finetune" in line
    over = {**stages, "gating": {"status": "stopped", "reason": "over 20 GB"}}
    assert "missed by gating (not known for finetune" in scaling.target_lines(_results(over))[0]
