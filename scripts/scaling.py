"""Scaling benchmark: the training stages on domains of 1, 4 and 16 times the default's cells.

For every factor f of ``--factors`` the script builds a domain with the default box's centre
and its sides scaled by √f on the same grid (about f × 3,965 cells; the same number of rows
and columns on either side of the centre), extracts its DEM from pvlib's global altitude grid
with ``scripts/extract_dem.py``, and writes into ``<workdir>/x<f>/`` a ``params.yaml``: the
given parameters (profile applied) with that box and DEM, ``--epochs`` training epochs for
every training stage (patience at most that) and ``seeds: 1``. There it runs prepare, masks,
expert@1–3, gating and finetune, each in a fresh process, with the command ``dvc.yaml`` gives
the stage (so every path lands in that folder), and records per stage and factor:

* **wall seconds**, process start to exit (imports, data loading and the stage's other work
  included);
* **seconds per epoch**: the mean time of the training epochs the engine logs
  (``… epoch N/M: … 12.3s``: one training pass and one validation pass; epoch 0, the
  starting weights' validation, apart; a stage that logs several fits, e.g. seed_members,
  reports its last). Gating's wall time also holds its held-out expert forecasts (fold
  copies of the experts trained for as many epochs as stage 1 kept, without epoch lines);
* **peak RSS**: the kernel's high-water mark of the stage process (``ru_maxrss`` from
  ``wait4``, taken by the small process ``scripts/_measure.py`` that starts the stage, so
  that the benchmark's own memory does not count), nothing between two samples missed;

and per stage the exponent b of time ∝ cells^b, the least-squares slope of log time against
log valid (land) cells over the factors that completed. The machine description (CPU, cores,
RAM, torch threads, float32 matmul rate from ``scripts/bench.py``) heads the output.

Memory guard: every 0.1 s ``scripts/_measure.py`` reads the stage's resident memory
(``/proc/<pid>/status``) and kills the stage with SIGKILL once it exceeds ``--max-rss-gb``;
the stage is recorded as "over N GB", the stages that read its outputs are skipped, and so is
the same stage at every larger factor. (An address-space limit, ``RLIMIT_AS``, does not
serve: torch reserves about 1 GB of virtual memory more than it touches, see ``peak_vm_gb``
in the JSON.) ``--stage-timeout`` stops a stage the same way after that many seconds.

    python scripts/scaling.py --json scaling.json --readme docs/speed.md --whole 4
    python scripts/scaling.py --factors 0.25 1 --workdir /tmp/scaling      # a quick check

``--whole F`` then runs every stage of ``dvc.yaml``, in its order, at factor F in
``<workdir>/whole-x<F>/`` with the parameters' own epochs and seeds (the default pipeline,
only the domain changed; ``--whole-epochs`` applies ``--epochs`` and ``seeds: 1`` there too).
Unless ``--keep``, each folder keeps only its params, logs and metrics once done (the
datasets and the held-out forecast cache at ×16 take GBs). The machine should be otherwise
idle: timings on a machine shared with other work say little.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from bench import cpu_name, matmul_gflops
from extract_dem import altitude_file, extract
from update_readme_results import replace_block

from ames.config import deep_merge, load_params
from ames.data.netcdf import write_netcdf

ROOT = Path(__file__).resolve().parents[1]
TRAINING_STAGES = ("prepare", "masks", "expert@1", "expert@2", "expert@3", "gating", "finetune")
TRAINING_SECTIONS = ("expert1", "expert2", "expert3", "gating", "finetune")
START, END = "<!-- scaling:start -->", "<!-- scaling:end -->"
DEM_FILE = "data/raw/dem.nc"  # in each factor's folder
LOGS = "logs"
KEEP = ("params.yaml", LOGS, "metrics")  # what a finished folder keeps without --keep
MEASURE = Path(__file__).with_name("_measure.py")  # runs each stage: guard, wall, peak RSS
GB = 1e9
# the engine's epoch line (ames.training.engine._Engine.log_epoch)
EPOCH_LINE = re.compile(r"^[\w.]+: (?P<desc>.*?) ?epoch (?P<n>\d+)/\d+: .* (?P<s>\d+(?:\.\d+)?)s$")
TARGET_RSS_GB, TARGET_EXPONENT = 4.0, 1.1  # issue 31: at x16, per stage


# ------------------------------------------------------------------------------- the domain


def scaled_axis(start: float, stop: float, resolution: float, factor: float) -> tuple[float, float]:
    """Ends of an axis with the same centre and about √factor times the cells; the count
    keeps its parity, so the centre stays where it was (on a cell centre or an edge)."""
    n = round((stop - start) / resolution) + 1
    n_new = max(1, n + 2 * math.floor((n * math.sqrt(factor) - n) / 2 + 0.5))
    centre = (start + stop) / 2
    half = (n_new - 1) / 2 * resolution
    return round(centre - half, 10), round(centre + half, 10)


def scaled_bbox(bbox: Mapping[str, float], resolution: float, factor: float) -> dict[str, float]:
    lat = scaled_axis(bbox["lat_min"], bbox["lat_max"], resolution, factor)
    lon = scaled_axis(bbox["lon_min"], bbox["lon_max"], resolution, factor)
    return {"lat_min": lat[0], "lat_max": lat[1], "lon_min": lon[0], "lon_max": lon[1]}


def factor_params(
    base: Mapping[str, Any], factor: float, epochs: int | None, seeds: int | None
) -> dict[str, Any]:
    """``base`` (profile applied) with the scaled box and its DEM; ``epochs``: every
    training stage's epochs (patience at most that); ``seeds``: the ensemble size."""
    data = base["data"]
    over: dict[str, Any] = {
        "data": {
            "bbox": scaled_bbox(data["bbox"], data["resolution"], factor),
            "dem_file": DEM_FILE,
        }
    }
    if epochs is not None:
        for section in TRAINING_SECTIONS:
            patience = base[section]["training"].get("patience")
            training = {"epochs": epochs}
            if patience:
                training["patience"] = min(patience, epochs)
            over[section] = {"training": training}
    if seeds is not None:
        over["seeds"] = seeds
    params = deep_merge(base, over)
    # load_params dropped the profiles table; keep the profile's name valid and empty
    params["profiles"] = {str(params.get("profile", "default")): {}}
    return params


def prepare_folder(folder: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """Write the folder's params.yaml and DEM; return the domain's description."""
    (folder / LOGS).mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(dict(params), sort_keys=False))
    data = params["data"]
    dem = extract(altitude_file(), data["bbox"], data["resolution"])
    write_netcdf(dem, folder / DEM_FILE)
    z = dem["elevation"].values
    return {
        "bbox": data["bbox"],
        "grid": list(z.shape),
        "grid_cells": int(z.size),
        "land_cells_in_dem": int(np.isfinite(z).sum()),
    }


# ----------------------------------------------------------------------- dvc.yaml's commands


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        out[name] = value
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
    return out


def _paths(entries: Sequence[Any] | None) -> list[str]:
    """deps/outs entries: a path, or ``{path: options}``."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]


def pipeline(dvc_yaml: Path, params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Stage name (``expert@1``) → ``cmd`` (argv), ``deps``, ``outs`` and ``needs`` (the
    earlier stages whose outputs it reads), in dvc.yaml's order, ``foreach`` expanded and
    ``${…}`` filled in from its ``vars`` and ``params``."""
    doc = yaml.safe_load(dvc_yaml.read_text())
    known = _flatten(params)
    for entry in doc.get("vars", []):
        if isinstance(entry, Mapping):
            known.update(_flatten(entry))

    def fill(text: str, local: Mapping[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if name in known and not isinstance(known[name], Mapping | list):
                return str(known[name])
            raise KeyError(f"{dvc_yaml}: cannot fill ${{{name}}}")

        return re.sub(r"\$\{([^}]+)\}", value, text)

    stages: dict[str, dict[str, Any]] = {}
    for name, stage in doc["stages"].items():
        if "foreach" in stage:
            items = stage["foreach"]
            if isinstance(items, str):
                items = known[items.strip()[2:-1]]
            pairs = (
                [(k, {"key": k, "item": v}) for k, v in items.items()]
                if isinstance(items, Mapping)
                else [(i, {"item": i}) for i in items]
            )
            body = stage["do"]
        else:
            pairs, body = [(None, {})], stage
        for key, local in pairs:
            argv = shlex.split(fill(" ".join(body["cmd"].split()), local))
            if argv[0] == "python":  # the venv's python, the script of this checkout
                argv = [sys.executable, str(ROOT / argv[1]), *argv[2:]]
            stages[name if key is None else f"{name}@{key}"] = {
                "cmd": argv,
                "deps": [fill(d, local) for d in _paths(body.get("deps"))],
                "outs": [fill(o, local) for o in _paths(body.get("outs"))],
            }
    for name, stage in stages.items():
        stage["needs"] = [
            other
            for other, prior in stages.items()
            if other != name and any(_overlap(d, o) for d in stage["deps"] for o in prior["outs"])
        ]
        order = list(stages)
        late = [n for n in stage["needs"] if order.index(n) > order.index(name)]
        if late:
            raise ValueError(f"{dvc_yaml}: {name} reads outputs of later stages {late}")
    return stages


def _overlap(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


# ------------------------------------------------------------------------- running a stage


def run_stage(
    argv: list[str], cwd: Path, log_path: Path, max_rss_gb: float, timeout_s: float | None
) -> dict[str, Any]:
    """Run ``argv`` in a fresh process through ``scripts/_measure.py`` (the memory guard,
    wall time, peak RSS); add the epoch times its log shows, and a status."""
    result_path = log_path.with_suffix(".json")
    wrapper = [sys.executable, str(MEASURE), str(result_path), f"{max_rss_gb:g}"]
    wrapper += [f"{timeout_s or 0:g}", "--", *argv]
    env = {**os.environ, "TQDM_DISABLE": "1"}  # no progress bars in the log
    with log_path.open("w") as log:
        subprocess.run(wrapper, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, check=True)
    measured = json.loads(result_path.read_text())
    result: dict[str, Any] = {
        k: measured[k] for k in ("wall_s", "peak_rss_gb", "peak_vm_gb", "returncode")
    }
    result["log"] = str(log_path)
    text = log_path.read_text(errors="replace")
    result.update(epoch_times(text))
    if measured["stopped"]:
        result.update(status="stopped", reason=measured["stopped"])
    elif measured["returncode"] != 0:
        tail = text.strip().splitlines()[-1:] or [""]
        result.update(status="failed", reason=f"exit {measured['returncode']}: {tail[0][:200]}")
    else:
        result["status"] = "ok"
    return result


def epoch_times(log: str) -> dict[str, Any]:
    """The engine's epoch times per fit (``desc``); ``epoch_s``: the mean of the last fit's
    training epochs (epoch 0 validates the starting weights only)."""
    fits: dict[str, dict[int, float]] = {}
    for line in log.splitlines():
        match = EPOCH_LINE.match(line.strip())
        if match:
            fits.setdefault(match["desc"], {})[int(match["n"])] = float(match["s"])
    if not fits:
        return {}
    last = fits[list(fits)[-1]]
    trained = [s for n, s in last.items() if n > 0]
    out: dict[str, Any] = {"epoch_times": {d: list(e.values()) for d, e in fits.items()}}
    if trained:
        out.update(epoch_s=round(sum(trained) / len(trained), 2), epochs=len(trained))
    return out


# ------------------------------------------------------------------------------ a factor


def run_factor(
    folder: Path,
    params: Mapping[str, Any],
    names: Sequence[str],
    args: argparse.Namespace,
    over_memory: dict[str, str],
    save: Any,
) -> dict[str, Any]:
    """Run ``names`` in ``folder`` in order; a stage whose inputs failed, or that went over
    the memory limit at a smaller factor (``over_memory``), is skipped."""
    record: dict[str, Any] = prepare_folder(folder, params)
    record["stages"] = stages_out = {}
    save()
    stages = pipeline(ROOT / "dvc.yaml", params)
    for name in names:
        stage = stages[name]
        broken = [n for n in stage["needs"] if stages_out.get(n, {}).get("status") != "ok"]
        if broken:
            stages_out[name] = {"status": "skipped", "reason": f"needs {', '.join(broken)}"}
        elif name in over_memory:
            stages_out[name] = {"status": "skipped", "reason": over_memory[name]}
        else:
            log = folder / LOGS / f"{name.replace('@', '_')}.log"
            result = run_stage(stage["cmd"], folder, log, args.max_rss_gb, args.stage_timeout)
            stages_out[name] = result
            if result.get("reason", "").startswith("over") and "GB" in result["reason"]:
                over_memory[name] = f"{result['reason']} at {folder.name}"
        if name == "prepare" and stages_out[name]["status"] == "ok":
            grid = json.loads((folder / "metrics" / "data.json").read_text())["grid"]
            record["valid_cells"] = grid["n_valid_cells"]
        print(f"{folder.name} {name}: {summary(stages_out[name])}", file=sys.stderr, flush=True)
        save()
    if not args.keep:
        for path in folder.iterdir():
            if path.name not in KEEP:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return record


def summary(row: Mapping[str, Any]) -> str:
    if row["status"] == "skipped":
        return f"skipped ({row['reason']})"
    text = f"{row['wall_s']:.1f} s, peak RSS {row['peak_rss_gb']:.2f} GB"
    if "epoch_s" in row:
        text += f", {row['epoch_s']:.1f} s/epoch"
    return text + (f" — {row['status']}: {row['reason']}" if row["status"] != "ok" else "")


def exponent(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of log y on log x; None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return round(float(np.polyfit(x, y, 1)[0]), 2)


def exponents(factors: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    out = {}
    for name in TRAINING_STAGES:
        done = [
            (rec["valid_cells"], rec["stages"][name])
            for rec in factors.values()
            if rec.get("stages", {}).get(name, {}).get("status") == "ok" and "valid_cells" in rec
        ]
        out[name] = {
            "epoch_s": exponent([(c, r["epoch_s"]) for c, r in done if "epoch_s" in r]),
            "wall_s": exponent([(c, r["wall_s"]) for c, r in done]),
        }
    return out


# ------------------------------------------------------------------------------- output


def machine() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb * 1024 / GB, 1),
        "torch_threads": torch.get_num_threads(),
        "matmul_gflops": round(matmul_gflops(), 1),
        "commit": commit,
    }


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _cells(row: Mapping[str, Any]) -> list[str]:
    """s/epoch, wall s, peak RSS GB of one stage at one factor."""
    if not row:
        return ["", "", ""]
    if row["status"] == "skipped":
        return ["–", "–", row["reason"]]
    if row["status"] == "stopped":
        return ["–", "–", row["reason"]] if "GB" in row["reason"] else ["–", row["reason"], "–"]
    if row["status"] == "failed":
        return ["–", "failed", _num(row["peak_rss_gb"], 2)]
    return [_num(row.get("epoch_s")), _num(row["wall_s"]), _num(row["peak_rss_gb"], 2)]


def machine_line(results: Mapping[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['ram_gb']:g} GB RAM, {m['torch_threads']} torch "
        f"threads, float32 matmul {m['matmul_gflops']:g} GFLOP/s; commit {m['commit']}. "
        f"Training stages {s['epochs']} epoch(s) each, memory guard {s['max_rss_gb']:g} GB."
    )


def scaling_table(results: Mapping[str, Any]) -> list[str]:
    factors = results["factors"]
    head, rule = ["stage"], ["---"]
    cells = ["valid cells (grid)"]
    for label, rec in factors.items():
        head += [f"{label} s/epoch", f"{label} wall s", f"{label} peak RSS GB"]
        valid = _num(rec.get("valid_cells"), 0) if "valid_cells" in rec else "–"
        cells += [f"{valid} ({rec['grid'][0]}×{rec['grid'][1]})", "", ""]
    head += ["b, s/epoch", "b, wall"]
    rule = ["---"] * len(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    lines.append("| " + " | ".join(cells + ["", ""]) + " |")
    for name in [
        n for n in TRAINING_STAGES if any(n in r.get("stages", {}) for r in factors.values())
    ]:
        row = [name]
        for rec in factors.values():
            row += _cells(rec.get("stages", {}).get(name, {}))
        b = results["exponents"].get(name, {})
        row += [_num(b.get("epoch_s"), 2), _num(b.get("wall_s"), 2)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def target_lines(results: Mapping[str, Any]) -> list[str]:
    """The issue's targets at the largest factor run: peak RSS, time-per-epoch exponent."""
    factors = results["factors"]
    if not factors:
        return []
    label = max(factors, key=lambda k: results["factors"][k]["factor"])
    stages = factors[label].get("stages", {})
    rss_miss = [
        n
        for n, r in stages.items()
        if (r.get("status") == "stopped" and "GB" in r.get("reason", ""))
        or r.get("peak_rss_gb", 0) > TARGET_RSS_GB
    ]
    unknown = [n for n, r in stages.items() if r.get("status") != "ok" and n not in rss_miss]
    slow = [n for n, b in results["exponents"].items() if (b["epoch_s"] or 0) > TARGET_EXPONENT]
    finished = "met by every stage that finished" if unknown else "met by every stage"
    return [
        f"Targets: peak RSS ≤ {TARGET_RSS_GB:g} GB per stage at {label}: "
        + (f"missed by {', '.join(rss_miss)}" if rss_miss else finished)
        + (f" (not known for {', '.join(unknown)}: stopped or skipped)" if unknown else "")
        + f"; time per epoch ∝ cells^b with b ≤ {TARGET_EXPONENT:g}: "
        + (f"missed by {', '.join(slow)}." if slow else "met where measured.")
    ]


def whole_table(whole: Mapping[str, Any]) -> list[str]:
    lines = [
        f"Whole pipeline at {whole['label']} ({_num(whole.get('valid_cells'), 0)} valid cells, "
        f"{whole['grid'][0]}×{whole['grid'][1]} grid), every stage of dvc.yaml in order, "
        f"{whole['epochs']}:",
        "",
        "| stage | s/epoch | wall s | peak RSS GB |",
        "|---|---|---|---|",
    ]
    done = [r for r in whole["stages"].values() if "wall_s" in r]
    for name, row in whole["stages"].items():
        lines.append(f"| {name} | " + " | ".join(_cells(row)) + " |")
    total = sum(r["wall_s"] for r in done)
    peak = max((r["peak_rss_gb"] for r in done), default=0.0)
    lines.append(f"| **all stages** | | **{total:,.0f}** ({total / 60:.1f} min) | **{peak:.2f}** |")
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    lines = [machine_line(results), ""]
    if results["factors"]:
        lines += scaling_table(results) + [""] + target_lines(results)
    if results.get("whole"):
        lines += [""] + whole_table(results["whole"])
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- main


def factor_label(factor: float) -> str:
    return f"x{factor:g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="See the module docstring (python -m pydoc scripts/scaling.py) for the method.",
    )
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--factors", type=float, nargs="*", default=[1.0, 4.0, 16.0])
    parser.add_argument("--epochs", type=int, default=1, help="per training stage")
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=TRAINING_STAGES,
        default=list(TRAINING_STAGES),
        help="a subset (with the stages they read), e.g. prepare masks expert@2",
    )
    parser.add_argument("--whole", type=float, help="also the whole pipeline at this factor")
    parser.add_argument(
        "--whole-epochs", action="store_true", help="--epochs and seeds: 1 for --whole too"
    )
    parser.add_argument("--max-rss-gb", type=float, default=None, help="default: min(20, 80%% RAM)")
    parser.add_argument("--stage-timeout", type=float, default=None, help="seconds per stage")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep data and models of each run")
    parser.add_argument("--json", type=Path, help="write the results here (after every stage)")
    parser.add_argument("--readme", type=Path, help=f"replace {START} … {END} in this file")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    base = load_params(args.params)
    if base["data"]["source"] != "synthetic":
        parser.error(f"{args.params}: data.source must be synthetic (larger boxes are generated)")
    info = machine()
    if args.max_rss_gb is None:
        args.max_rss_gb = float(min(20, math.floor(0.8 * info["ram_gb"])))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ames-scaling-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {workdir}", file=sys.stderr)
    results: dict[str, Any] = {
        "machine": info,
        "settings": {
            "params": str(args.params),
            "epochs": args.epochs,
            "seeds": 1,
            "max_rss_gb": args.max_rss_gb,
            "stage_timeout_s": args.stage_timeout,
            "workdir": str(workdir),
        },
        "factors": {},
        "exponents": {},
    }

    def save() -> None:
        results["exponents"] = exponents(results["factors"])
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    over_memory: dict[str, str] = {}
    for factor in sorted(set(args.factors)):
        label = factor_label(factor)
        params = factor_params(base, factor, args.epochs, seeds=1)
        record = results["factors"][label] = {"factor": factor}
        record.update(run_factor(workdir / label, params, args.stages, args, over_memory, save))
        save()
    if args.whole is not None:
        label = factor_label(args.whole)
        quick = args.whole_epochs
        params = factor_params(
            base, args.whole, args.epochs if quick else None, 1 if quick else None
        )
        names = list(pipeline(ROOT / "dvc.yaml", params))
        record = results["whole"] = {
            "factor": args.whole,
            "label": label,
            "epochs": f"{args.epochs} epoch(s) per training stage, 1 seed"
            if quick
            else "the parameters' own epochs and seeds",
        }
        record.update(run_factor(workdir / f"whole-{label}", params, names, args, {}, save))
        save()
    save()
    text = markdown(results)
    print(text)
    if args.readme:
        replace_block(args.readme, START, END, f"{START}\n{text}\n{END}")


if __name__ == "__main__":
    main()
