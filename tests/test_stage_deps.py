"""DVC stage dependencies equal the code each stage runs (scripts/stage_deps.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("stage_deps", ROOT / "scripts" / "stage_deps.py")
stage_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stage_deps)


def test_every_stage_lists_exactly_the_ames_modules_it_imports():
    report = stage_deps.dependency_report(ROOT)
    problems = {name: row for name, row in report.items() if row["missing"] or row["extra"]}
    assert not problems, f"run `python scripts/stage_deps.py --write`: {problems}"
    assert "src/ames/evaluation/metrics.py" in report["expert"]["needed"]


def _project_copy(tmp_path: Path, dvc_yaml: str) -> Path:
    (tmp_path / "dvc.yaml").write_text(dvc_yaml)
    (tmp_path / "src").symlink_to(ROOT / "src")
    (tmp_path / "stages").symlink_to(ROOT / "stages")
    return tmp_path


def test_a_dependency_removed_from_dvc_yaml_is_reported(tmp_path):
    text = (ROOT / "dvc.yaml").read_text()
    line = "        - src/ames/evaluation/metrics.py\n"  # in the expert stage (foreach indent)
    assert line in text
    root = _project_copy(tmp_path, text.replace(line, "", 1))
    report = stage_deps.dependency_report(root)
    assert report["expert"]["missing"] == ["src/ames/evaluation/metrics.py"]
    assert stage_deps.main(["--root", str(root)]) == 1
    stage_deps.rewrite_deps(root)
    assert not stage_deps.dependency_report(root)["expert"]["missing"]


def test_imports_inside_functions_and_parent_packages_count(tmp_path):
    package = tmp_path / "src" / "ames"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""Docstring only."""\n__version__ = "0"\n')
    (package / "sub" / "__init__.py").write_text("from ames.sub.helper import x\n")
    (package / "sub" / "helper.py").write_text("x = 1\n")
    (package / "lazy.py").write_text("def f():\n    from ames import unused_until_called\n")
    (package / "unused_until_called.py").write_text("")
    script = tmp_path / "stage.py"
    script.write_text("import ames.lazy\nfrom ames.sub import helper\n")
    closure = {
        p.relative_to(package).as_posix()
        for p in stage_deps.import_closure(script, tmp_path / "src")
    }
    assert closure == {"lazy.py", "unused_until_called.py", "sub/__init__.py", "sub/helper.py"}


def test_every_stage_command_names_its_data_inputs_and_outputs():
    """Paths are written once in dvc.yaml (``vars``) and passed to each stage on its cmd."""
    from dvc.repo import Repo

    # prepare reads its raw files from the params (data.dem_file, data.files.*)
    from_params = {"data/raw"}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            tokens = stage.cmd.split()
            paths = [str(d.def_path) for d in stage.deps] + [str(o.def_path) for o in stage.outs]
            for path in paths:
                if path.startswith(("src/", "stages/")) or path.endswith(".yaml"):
                    continue
                if path in from_params:
                    continue
                named = any(path == t or path.startswith(t.rstrip("/") + "/") for t in tokens)
                assert named, f"{stage.addressing}: {path} is not on its cmd: {stage.cmd}"
