"""The README's ablation commands, run as `dvc exp run` on a tiny configuration.

Each documented command must succeed, show up in `dvc exp show` with its switch in `dvc params
diff`, move the main chain's member (`metrics/test.json` → `seeds.by_seed`) in `dvc metrics
diff` exactly when the matching `ablation@<name>` stage moves it (a switch can be inert in a
run: the physics losses when fine-tuning keeps its starting point), and train exactly what that
stage trains.

The experiments run the README's `-S` overrides up to `evaluate`, the stage that scores the
member: every switch changes `gating`, `meta` or `finetune`, on which all five `ablation@`
stages depend, so a full run of one experiment would retrain every ablation, five times over,
with nothing to compare them against. The session's baseline run (``tiny_run``) runs those
stages and the rest of the pipeline end to end.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time

import pytest
import yaml
from pipeline_repo import ROOT, copy_tiny_run, dvc, pipeline_env, run_dvc

pytestmark = pytest.mark.slow

METRICS = ("msess", "rmse", "pooled_r2")
SCORED_BY = "evaluate"  # the stage that writes the member's scores to metrics/test.json


def readme_ablation_commands() -> dict[str, list[str]]:
    """README lines `dvc exp run --queue -n NAME -S key=value ...`: name -> their -S overrides."""
    commands = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        if not line.startswith("dvc exp run --queue -n "):
            continue
        words = shlex.split(line.split("#")[0])
        name = words[words.index("-n") + 1]
        commands[name] = [words[i + 1] for i, word in enumerate(words) if word == "-S"]
    return commands


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parsed_overrides(overrides: list[str]) -> dict[str, object]:
    return {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in overrides)}


def ablation_for(overrides: dict[str, object], table: dict[str, dict]) -> str:
    """The `ablations` entry of params.yaml that sets exactly these keys to these values."""
    for name, entry in table.items():
        if flatten(entry) == overrides:
            return name
    raise AssertionError(f"no `ablations` entry in params.yaml matches {overrides}")


def test_readme_documents_one_command_per_ablation() -> None:
    table = yaml.safe_load((ROOT / "params.yaml").read_text())["ablations"]
    commands = readme_ablation_commands()
    matched = {ablation_for(parsed_overrides(o), table) for o in commands.values()}
    assert matched == set(table)


def commit_all(repo, message: str) -> None:
    env = pipeline_env(repo)
    for cmd in (
        ["git", "add", "-A"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", message],
    ):
        subprocess.run(cmd, cwd=repo, check=True, env=env, capture_output=True)


def run_queue(repo, names, timeout_s: float = 3600, jobs: int = 2) -> str:
    """`dvc queue start -j jobs`, then wait until every experiment of ``names`` has finished
    (Success or Failed) and nothing is queued or running; the final status. A busy worker
    can list a task it has just taken in no state at all, so an absent name is not done."""
    # the queue's workers outlive the command and keep its pipes open: do not capture them
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)],
        cwd=repo,
        env=pipeline_env(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=300,
    )
    deadline = time.monotonic() + timeout_s
    status, misreads = "", 0
    while time.monotonic() < deadline:
        result = run_dvc(repo, "queue", "status", timeout=300)
        if result.returncode != 0:
            # `queue status` can read a running task's info file while the worker rewrites it
            # ("unexpected error - Expecting value", treeverse/dvc#8014): poll again, a few times
            misreads += 1
            assert misreads <= 5, f"dvc queue status failed:\n{result.stdout}\n{result.stderr}"
            time.sleep(5)
            continue
        status, misreads = result.stdout, 0
        finished = [
            name
            for name in names
            if re.search(rf"^\S+\s+{re.escape(name)}\s.*\b(Success|Failed)\s*$", status, re.M)
        ]
        if len(finished) == len(names) and not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(5)
    raise AssertionError(f"the experiment queue did not finish in {timeout_s} s:\n{status}")


def test_readme_ablation_experiments_run_and_match_the_ablation_stage(tiny_run, tmp_path) -> None:
    repo = copy_tiny_run(tiny_run, tmp_path / "repo")
    commit_all(repo, "baseline run")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    table, first_seed = params["ablations"], str(params["seed"])

    commands = readme_ablation_commands()
    for name, overrides in commands.items():
        args = [arg for override in overrides for arg in ("-S", override)]
        dvc(repo, "exp", "run", "--queue", "-n", name, *args, SCORED_BY)
    status = run_queue(repo, list(commands))
    assert status.count("Success") == len(commands), status

    shown = dvc(repo, "exp", "show", "--no-pager", "--csv").stdout
    for name in commands:
        assert re.search(rf"^{re.escape(name)},", shown, re.M), f"{name} missing:\n{shown}"

    defaults = flatten(params)
    base = json.loads((repo / "metrics/test.json").read_text())["seeds"]["by_seed"][first_seed]
    moved = {}
    for name, overrides in commands.items():
        changed_params = json.loads(dvc(repo, "params", "diff", "HEAD", name, "--json").stdout)
        changed = {key for keys in changed_params.values() for key in keys}
        switched = {k for k, v in parsed_overrides(overrides).items() if defaults[k] != v}
        assert switched and changed == switched, (name, changed, switched)
        diff = dvc(
            repo,
            "metrics",
            "diff",
            "HEAD",
            name,
            "--all",
            "--json",
            "--targets",
            "metrics/test.json",
        )
        member = {
            metric: json.loads(diff.stdout)["metrics/test.json"][
                f"seeds.by_seed.{first_seed}.{metric}"
            ]
            for metric in METRICS
        }
        # the ablation stage trains the first seed's member; so does the experiment
        stage = ablation_for(parsed_overrides(overrides), table)
        expected = json.loads((repo / f"metrics/ablations/{stage}.json").read_text())["test"]
        stage_moved = any(expected["overall"][m] != base[m] for m in METRICS)
        moved[name] = any(member[m]["diff"] != 0 for m in METRICS)
        assert moved[name] == stage_moved, (name, moved[name], stage_moved)
        for metric in METRICS:
            want = expected["overall"][metric]
            assert member[metric]["new"] == pytest.approx(want, rel=1e-9, abs=1e-12), (
                name,
                metric,
            )
    assert any(moved.values()), f"no documented ablation moved the member: {moved}"
    _check_experiments_travel_to_another_clone(repo, tmp_path, list(commands))


def _check_experiments_travel_to_another_clone(repo, tmp_path, names) -> None:
    """Another machine's view: `dvc exp push` to a shared git remote (data to the project's
    DVC remote), then in a fresh clone `dvc exp pull` and one `dvc exp show` lists them all."""
    env = pipeline_env(repo)
    shared = tmp_path / "shared.git"
    subprocess.run(["git", "init", "-q", "--bare", str(shared)], check=True, env=env)
    subprocess.run(["git", "remote", "add", "origin", str(shared)], cwd=repo, check=True, env=env)
    subprocess.run(["git", "push", "-q", "origin", "HEAD"], cwd=repo, check=True, env=env)
    dvc(repo, "exp", "push", "origin", *names)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(shared), str(clone)], check=True, env=env)
    dvc(clone, "exp", "pull", "origin", *names)
    shown = dvc(clone, "exp", "show", "--no-pager", "--csv").stdout
    for name in names:
        assert re.search(rf"^{re.escape(name)},", shown, re.M), f"{name} not pulled:\n{shown}"
