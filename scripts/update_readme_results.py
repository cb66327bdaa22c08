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


def _ci(row: dict, key: str, digits: int = 3) -> str:
    return f"[{row[key + '_lo']:+.{digits}f}, {row[key + '_hi']:+.{digits}f}]"


def _verdict(row: dict) -> str:
    """Bootstrap verdict, with the Diebold–Mariano p-value and effective sample size beside it."""
    word = "yes" if row["significant"] else "no"
    return f"{word} (DM p {row['dm_p']:.2f}, n_eff {row['n_eff']:.0f})"


def _row(name: str, scores: dict, detail: dict, key: str) -> str:
    cells = [_fmt(scores["overall"][k], k) for k in ROWS]
    cells.append(_ci(detail["scores"][key]["overall"], "msess"))
    cells += [_fmt(scores["by_lead"][lead]["msess"], "msess") for lead in ("1", "3", "6", "12")]
    vs = detail["ames_vs"].get(key, {}).get("overall")
    if vs is None:
        cells += ["–", "–"]
    else:
        cells += [f"{vs['delta_msess']:+.3f} {_ci(vs, 'delta_msess')}", _verdict(vs)]
    return f"| {name} | " + " | ".join(cells) + " |"


def _seed_row(seeds: dict) -> str:
    def cell(key: str) -> str:
        stats = seeds["mean_sd"][key]
        sd = "–" if stats["sd"] is None else _fmt(stats["sd"], key)
        return f"{_fmt(stats['mean'], key)} ± {sd}"

    cells = [cell(k) for k in ROWS] + ["–"] * 7
    return f"| AMES, one seed: mean ± sd over {seeds['n']} seeds | " + " | ".join(cells) + " |"


def test_table(test: dict, detail: dict) -> list[str]:
    n = test["seeds"]["n"]
    lines = [
        "| forecast | pooled R² | per-cell R² | RMSE (mm/month) | MAE (mm/month) | MSESS "
        "| MSESS 90 % CI | MSESS lead 1 | lead 3 | lead 6 | lead 12 "
        "| ΔMSESS AMES − row [90 % CI] | significant? |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        _row(f"**AMES (mean of {n} seeds)**", test["model"], detail, "ames"),
        _seed_row(test["seeds"]),
    ]
    lines += [
        _row(f"expert {name[-1]} alone", s, detail, name) for name, s in test["experts"].items()
    ]
    lines += [
        _row(f"baseline: {name.replace('_', ' ')}", s, detail, name)
        for name, s in test["baselines"].items()
    ]
    if "oracle" in test:
        lines.append(
            _row("oracle (optimal forecast, synthetic data)", test["oracle"], detail, "oracle")
        )
    return lines


def horizon_line(headline: dict) -> str:
    h = headline["horizon"]
    zones = ", ".join(f"{zone} {months}" for zone, months in h.items() if zone != "overall")
    return (
        "Predictability horizon (last lead, counting from lead 1, whose MSESS 90 % interval "
        f"lies above 0): **{h['overall']} months** overall; by zone {zones}."
    )


def ablation_lines(table: dict) -> list[str]:
    lines = [
        "| variant | pooled R² | RMSE (mm/month) | MSESS | ΔMSESS vs full [90 % CI] "
        "| ΔR² vs full [90 % CI] | ΔRMSE vs full (mm/month) [90 % CI] | significant? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        if name == "full_model":
            deltas = ["–"] * 4
        else:
            deltas = [
                f"{row['delta_msess']:+.4f} {_ci(row, 'delta_msess', 4)}",
                f"{row['delta_pooled_r2']:+.4f} {_ci(row, 'delta_pooled_r2', 4)}",
                f"{row['delta_rmse']:+.2f} {_ci(row, 'delta_rmse', 2)}",
                _verdict(row),
            ]
        lines.append(
            f"| {name.replace('_', ' ')} | {row['pooled_r2']:.4f} | {row['rmse']:.2f} "
            f"| {row['msess']:.4f} | " + " | ".join(deltas) + " |"
        )
    return lines


def probabilistic_lines(prob: dict) -> list[str]:
    """Proper scores of the predictive distributions, with 90 % intervals of the skill."""
    nominal = round(100 * prob["interval_nominal"])
    lines = [
        f"| distribution | CRPS (mm/month) | CRPSS [90 % CI] | RPS (terciles) | RPSS [90 % CI] "
        f"| {nominal} % interval coverage | CRPSS lead 1 | lead 3 | lead 6 | lead 12 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    weights = _load("metrics/calibration.json")["tercile_weight"]["ames"]
    rows = {
        f"**AMES** (spread scale {min(prob['ames_spread_scale']):.2f}–"
        f"{max(prob['ames_spread_scale']):.2f}; tercile weight {weights[0]:.2f} at lead 1, "
        f"{weights[-1]:.2f} at lead {len(weights)})": (prob["ames"]["overall"], prob["ames"]),
        "damped persistence, dressed the same way": (prob["damped_persistence"], None),
        "climatological distribution (reference)": (prob["climatology"], None),
    }
    for name, (row, detail) in rows.items():
        skill = [
            f"{row[key]:.4f} {_ci(row, key, 4)}" if f"{key}_lo" in row else f"{row[key]:.4f}"
            for key in ("crpss", "rpss")
        ]
        leads = (
            [f"{detail['by_lead'][lead]['crpss']:.3f}" for lead in ("1", "3", "6", "12")]
            if detail
            else ["–"] * 4
        )
        lines.append(
            f"| {name} | {row['crps']:.2f} | {skill[0]} | {row['rps']:.4f} | {skill[1]} "
            f"| {row['coverage']:.3f} | " + " | ".join(leads) + " |"
        )
    vs = prob["ames"]["overall"]["vs"]["damped_persistence"]
    lines += [
        "",
        "AMES − dressed damped persistence: ΔCRPSS "
        f"{vs['delta_crpss']:+.4f} {_ci(vs, 'delta_crpss', 4)}, ΔRPSS "
        f"{vs['delta_rpss']:+.4f} {_ci(vs, 'delta_rpss', 4)}.",
    ]
    return lines


def results_block(wall_time: str | None) -> str:
    test = _load("metrics/test.json")
    headline = _load("metrics/significance.json")
    detail = _load("plots/significance/comparisons.json")
    lines = [
        START,
        "",
        f"Test split: {test['n_test_origins']} forecast origins × 12 leads × "
        "every valid cell. MSESS = 1 − MSE/MSE(climatology). Intervals: 90 % paired "
        f"moving-block bootstrap over origins ({headline['n_blocks']} blocks of "
        f"{headline['block_months']} months, {headline['n_boot']} resamples); "
        "significant = the interval excludes 0, with the Diebold–Mariano p-value and the "
        "effective sample size of the loss difference beside it.",
        "",
    ]
    lines += test_table(test, detail)
    lines += ["", horizon_line(headline)]
    if "skill_captured" in test:
        sc = test["skill_captured"]["overall"]
        lines += [
            "",
            f"Share of the available skill captured (vs the oracle): **{_fmt(sc, 'msess')}**.",
        ]
    beats, vs = test["beats"], headline["vs"]

    def beat(name: str, lower: bool) -> str:
        sure = "significant" if vs[name]["significant"] else "not significant"
        return f"{name.replace('_', ' ')} {'yes' if lower else 'no'} ({sure})"

    lines += [
        "",
        "Beats (lower test RMSE than): "
        + ", ".join(beat(name, lower) for name, lower in beats.items())
        + ".",
    ]
    if "probabilistic" in test:
        prob = test["probabilistic"]
        lines += [
            "",
            f"Probabilistic forecasts (same test samples; {prob['members']}-member predictive "
            "ensembles, skill against the climatological distribution of the training months; "
            "intervals: the same block bootstrap):",
            "",
        ]
        lines += probabilistic_lines(prob)
    if Path("metrics/ablations.json").exists():
        lines += [
            "",
            "Ablations (test split, same metric code; each against the full model of the same "
            "seed, from whose stage-1 experts it starts):",
            "",
        ]
        lines += ablation_lines(_load("metrics/ablations.json"))
    if wall_time:
        lines += ["", f"Wall time of the whole default `dvc repro` on a 2-core CPU: {wall_time}."]
    lines += ["", END]
    return "\n".join(lines)


def replace_block(path: Path, start: str, end: str, block: str) -> None:
    """Replace the text from marker ``start`` to marker ``end`` in ``path`` by ``block``
    (which brings its own markers); exit with a message if the markers are missing."""
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: markers {start} … {end} not found")
    path.write_text(pattern.sub(lambda _: block, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wall-time", default=None)
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args()
    replace_block(Path(args.readme), START, END, results_block(args.wall_time))


if __name__ == "__main__":
    main()
