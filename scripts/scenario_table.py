"""Write the README's side-by-side table of generator scenarios from their metrics files.

Each scenario is a folder holding the reports of one whole run of the pipeline:
``headline.json``, ``ablations.json`` and ``expert{1,2,3}.json`` (the default run's are
``metrics/``; another scenario's are copied into ``metrics/scenarios/<name>/`` after its run,
e.g. ``dvc exp run --temp -S data.synthetic.scenario=zoned`` or a run in another checkout).

    python scripts/scenario_table.py                       # default + every metrics/scenarios/*
    python scripts/scenario_table.py --readme README.md

The table goes between ``<!-- scenarios:start -->`` and ``<!-- scenarios:end -->``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

START, END = "<!-- scenarios:start -->", "<!-- scenarios:end -->"
ABLATIONS = ("equal_weighting", "no_physics_priors", "no_meta_learner", "single_expert")


def _load(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / name).read_text())


def _ci(value: float, lo: float, hi: float, significant: bool | None = None) -> str:
    mark = "" if significant is None else (" ✓" if significant else "")
    return f"{value:+.4f} [{lo:+.4f}, {hi:+.4f}]{mark}"


def scenario_column(folder: Path) -> dict[str, str]:
    """The rows of one scenario's column, as text."""
    head = _load(folder, "headline.json")
    ablations = _load(folder, "ablations.json")
    experts = head["experts_msess"]
    best = max(experts, key=experts.get)
    rows = {
        "AMES MSESS [90 % CI]": _ci(
            head["ames"]["msess"], head["ames"]["msess_lo"], head["ames"]["msess_hi"]
        ),
        "`ridge` MSESS": f"{head['ridge']['msess']:+.4f}",
        "experts 1 / 2 / 3 MSESS": " / ".join(f"{experts[k]:+.4f}" for k in sorted(experts)),
        "epoch kept by experts 1 / 2 / 3 (0 = linear path)": " / ".join(
            str(_load(folder, f"expert{i}.json")["best_epoch"]) for i in (1, 2, 3)
        ),
        "oracle MSESS": f"{head['oracle']['msess']:+.4f}" if "oracle" in head else "–",
        "skill captured": f"{head['skill_captured']:.3f}" if "skill_captured" in head else "–",
    }
    for other, label in (("ridge", "AMES − `ridge`"), ("best_expert", "AMES − best expert")):
        diff = head["ames_minus"][other]
        rows[label] = _ci(
            diff["delta_msess"], diff["delta_msess_lo"], diff["delta_msess_hi"], diff["significant"]
        )
    rows["AMES − best expert"] += f" ({best})"
    for name in ABLATIONS:
        row = ablations[name]
        rows[f"full − {name.replace('_', ' ')}"] = _ci(
            -row["delta_msess"], -row["delta_msess_hi"], -row["delta_msess_lo"], row["significant"]
        )
    zones = head.get("msess_by_zone", {})
    rows["AMES MSESS high / medium / low zone"] = " / ".join(
        f"{zones[z]:+.4f}" for z in ("high", "medium", "low") if z in zones
    )
    prob = head["probabilistic"]
    rows["CRPSS; 80 % coverage"] = f"{prob['crpss']:+.4f}; {prob['coverage']:.3f}"
    return rows


def table(columns: dict[str, Path]) -> str:
    parsed = {name: scenario_column(folder) for name, folder in columns.items()}
    names = list(parsed)
    lines = [
        "| test split | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for row in parsed[names[0]]:
        lines.append(f"| {row} | " + " | ".join(parsed[n].get(row, "–") for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--metrics", default="metrics")
    args = parser.parse_args()
    metrics = Path(args.metrics)
    columns = {"default": metrics}
    for folder in sorted((metrics / "scenarios").glob("*")):
        if (folder / "headline.json").exists():
            columns[folder.name] = folder
    readme = Path(args.readme)
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme}: markers {START} … {END} not found")
    block = f"{START}\n\n{table(columns)}\n\n{END}"
    readme.write_text(pattern.sub(lambda _: block, text))


if __name__ == "__main__":
    main()
