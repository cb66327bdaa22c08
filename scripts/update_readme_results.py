"""Regenerate the results tables in README.md from the committed metrics files.

Usage: python scripts/update_readme_results.py [--wall-time "13 min 20 s"]
Replaces the text between `<!-- results:start -->` and `<!-- results:end -->`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
ROWS = ("pooled_r2", "percell_r2", "rmse", "mae", "msess")


def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if key in ("rmse", "mae") else f"{value:.3f}"


def _row(name: str, scores: dict) -> str:
    cells = [_fmt(scores["overall"][k], k) for k in ROWS]
    cells += [_fmt(scores["by_lead"][lead]["msess"], "msess") for lead in ("1", "3", "6", "12")]
    return f"| {name} | " + " | ".join(cells) + " |"


def test_table(test: dict) -> list[str]:
    lines = [
        "| forecast | pooled R² | per-cell R² | RMSE (mm/month) | MAE (mm/month) | MSESS "
        "| MSESS lead 1 | lead 3 | lead 6 | lead 12 |",
        "|---|---|---|---|---|---|---|---|---|---|",
        _row("**AMES (final model)**", test["model"]),
    ]
    lines += [_row(f"expert {name[-1]} alone", s) for name, s in test["experts"].items()]
    lines += [
        _row(f"baseline: {name.replace('_', ' ')}", s) for name, s in test["baselines"].items()
    ]
    if "oracle" in test:
        lines.append(_row("oracle (optimal forecast, synthetic data)", test["oracle"]))
    return lines


def ablation_lines(table: dict) -> list[str]:
    lines = [
        "| variant | pooled R² | RMSE (mm/month) | MSESS | ΔR² vs full "
        "| ΔRMSE vs full (mm/month) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        delta_r2 = "–" if name == "full_model" else f"{row['delta_pooled_r2']:+.4f}"
        delta_rmse = "–" if name == "full_model" else f"{row['delta_rmse']:+.2f}"
        lines.append(
            f"| {name.replace('_', ' ')} | {row['pooled_r2']:.4f} | {row['rmse']:.2f} "
            f"| {row['msess']:.4f} | {delta_r2} | {delta_rmse} |"
        )
    return lines


def results_block(wall_time: str | None) -> str:
    test = _load("metrics/test.json")
    lines = [
        START,
        "",
        f"Test split: {test['n_test_origins']} forecast origins × 12 leads × "
        "every valid cell. MSESS = 1 − MSE/MSE(climatology).",
        "",
    ]
    lines += test_table(test)
    if "skill_captured" in test:
        sc = test["skill_captured"]["overall"]
        lines += [
            "",
            f"Share of the available skill captured (vs the oracle): **{_fmt(sc, 'msess')}**.",
        ]
    beats = test["beats"]
    lines += [
        "",
        "Beats (lower test RMSE than): "
        + ", ".join(f"{k.replace('_', ' ')} {'yes' if v else 'no'}" for k, v in beats.items())
        + ".",
    ]
    if Path("metrics/ablations.json").exists():
        lines += ["", "Ablations (test split, same metric code):", ""]
        lines += ablation_lines(_load("metrics/ablations.json"))
    if wall_time:
        lines += ["", f"Wall time of the whole default `dvc repro` on a 2-core CPU: {wall_time}."]
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wall-time", default=None)
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args()
    readme = Path(args.readme)
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme}: markers {START} … {END} not found")
    readme.write_text(pattern.sub(lambda _: results_block(args.wall_time), text))


if __name__ == "__main__":
    main()
