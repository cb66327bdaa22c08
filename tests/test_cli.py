"""Stage entry points (ames.cli): the shared runner, the one-line user error and ``ames``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ames import cli
from ames.cli import run_stage, stage_main
from ames.config import ConfigError, load_config
from ames.data.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
STAGES = sorted(p for p in (ROOT / "stages").glob("*.py") if not p.name.startswith("_"))


def _fail(error: Exception):
    def main() -> None:
        raise error

    return main


@pytest.fixture(autouse=True)
def _no_allocator_change(monkeypatch):
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: None)  # the test process's malloc


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


# ------------------------------------------------------------------------ the stage runner


def _add_out(parser) -> None:
    parser.add_argument("--out", default="x.json")


def test_the_runner_parses_params_and_calls_run_with_the_loaded_config(tmp_path):
    calls = []
    main = stage_main("demo", "A demo stage.", _add_out, lambda a, c: calls.append((a, c)))
    params = ROOT / "params.yaml"
    main(["--params", str(params), "--out", "y.json"])
    (args, cfg), *rest = calls
    assert not rest and args.out == "y.json" and args.params == str(params)
    assert cfg == load_config(params)


def test_the_runner_reads_params_yaml_by_default_and_none_without_params(monkeypatch):
    monkeypatch.chdir(ROOT)
    calls = []
    stage_main("demo", None, _add_out, lambda a, c: calls.append(c))([])
    assert calls == [load_config("params.yaml")]
    no_params = stage_main("demo", None, _add_out, lambda a, c: calls.append(c), params_help=None)
    no_params([])
    assert calls[-1] is None
    with pytest.raises(SystemExit):  # argparse: no such option
        no_params(["--params", "params.yaml"])


def test_a_user_error_in_a_stage_is_one_line_named_after_the_stage(monkeypatch, tmp_path):
    monkeypatch.delenv("AMES_DEBUG", raising=False)

    def run(args, cfg):
        raise DataError("in.nc", "two\nlines", "fix it")

    params = str(ROOT / "params.yaml")
    with pytest.raises(SystemExit) as info:
        stage_main("demo", None, _add_out, run)(["--params", params])
    assert info.value.code == "demo: in.nc: two lines. Fix: fix it."
    by_args = stage_main(lambda a: f"stage-{a.out}", None, _add_out, run)  # train_ames --stage
    with pytest.raises(SystemExit) as info:
        by_args(["--params", params, "--out", "gating"])
    assert str(info.value.code).startswith("stage-gating: in.nc")
    with pytest.raises(SystemExit) as info:
        by_args(["--params", str(tmp_path / "missing.yaml")])
    assert info.value.code.splitlines() == [
        f"stage-x.json: {tmp_path / 'missing.yaml'}: parameter file not found. "
        "Run from the project root."
    ]


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


# ------------------------------------------------------------------ one preamble, not twelve


@pytest.mark.parametrize("script", STAGES, ids=[p.name for p in STAGES])
def test_a_stage_script_is_only_its_wiring(script):
    text = script.read_text()
    for repeated in ("sys.path.insert", "logging.basicConfig", "argparse.ArgumentParser("):
        assert repeated not in text, f"{script.name}: {repeated} belongs to ames.cli/_src_path"
    names = [
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.parse(text).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    first_ames = next(i for i, n in enumerate(names) if n.split(".")[0] == "ames")
    assert "_src_path" in names[:first_ames], f"{script.name}: import _src_path before ames"
    assert "main = stage_main(" in text and 'if __name__ == "__main__":\n    main()' in text


# ------------------------------------------------------------------------ the ames command


def test_ames_alone_lists_every_stage_with_its_summary(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert cli.main([]) == 0
    listing = capsys.readouterr().out
    for script in STAGES:
        line = next(x for x in listing.splitlines() if x.startswith(f"  {script.stem} "))
        assert cli.summary(script) in line and cli.summary(script)
    assert "_src_path" not in listing
    assert cli.main(["--help"]) == 0 and capsys.readouterr().out == listing


def test_an_unknown_stage_is_one_clear_line(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(ROOT)
    assert cli.main(["trian_expert", "--expert", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ames: unknown stage 'trian_expert' (stages: ")
    assert "train_expert" in err[0]
    monkeypatch.chdir(tmp_path)  # not a project: says so
    assert cli.main(["prepare"]) == 2
    assert "no stages/*.py in" in capsys.readouterr().err


def test_ames_runs_the_stage_script_with_its_options(monkeypatch):
    monkeypatch.chdir(ROOT)
    commands = []

    class Process:
        def __init__(self, cmd):
            commands.append(cmd)

        def wait(self):
            return 3

    monkeypatch.setattr(cli.subprocess, "Popen", Process)
    assert cli.main(["train-expert", "--expert", "2"]) == 3  # dashes work, the status passes
    assert commands == [[sys.executable, str(Path("stages/train_expert.py")), "--expert", "2"]]


def test_ames_help_of_a_stage_runs_the_script(monkeypatch, capfd):
    monkeypatch.chdir(ROOT)
    assert cli.main(["headline", "--help"]) == 0
    out = capfd.readouterr().out
    assert "DVC stage `headline`" in out and "--reports" in out and "--params" not in out
