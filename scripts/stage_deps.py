"""Keep each DVC stage's code dependencies equal to the ``src/ames`` modules it imports.

A stage's code is its script (``stages/<name>.py``, from its ``cmd``) plus every module of
the ``ames`` package that the script imports, directly or through other modules, at any
depth (imports inside functions included: they run too). ``dvc.yaml`` must list exactly
those files under each stage's ``deps``, otherwise an edit to a module does not re-run the
stages whose results it computes (``dvc repro`` then calls stale results "up to date").
Package ``__init__.py`` files count only when they hold code (not just a docstring and
constants).

    python scripts/stage_deps.py           # report what is missing or extra; exit 1 if any
    python scripts/stage_deps.py --write   # rewrite the src/ames entries of dvc.yaml deps

``tests/test_stage_deps.py`` runs the check.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

PACKAGE = "ames"


def module_file(name: str, src: Path) -> Path | None:
    """``ames.a.b`` → ``src/ames/a/b.py`` or ``src/ames/a/b/__init__.py``; None if neither."""
    base = src.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Names of the ``ames`` modules ``path`` imports (``from ames.x import y`` gives ``ames.x``
    and, when ``y`` is a submodule, ``ames.x.y``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def holds_code(init: Path) -> bool:
    """False for an ``__init__.py`` of only a docstring and constant assignments."""
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        return True
    return False


def import_closure(script: Path, src: Path) -> set[Path]:
    """Every ``src/ames`` file ``script`` runs through its imports (parent packages included)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                file = module_file(".".join(parts[:depth]), src)
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return {f for f in seen if f.name != "__init__.py" or holds_code(f)}


def expanded_stages(dvc_yaml: Path) -> dict[str, dict]:
    """Stage name → definition; a ``foreach`` stage once, with its first item substituted."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        if "foreach" in stage:
            items = stage["foreach"]
            first = items[0] if isinstance(items, list) else next(iter(items))
            text = yaml.safe_dump(stage["do"])
            text = text.replace("${item}", str(first)).replace("${key}", str(first))
            out[name] = yaml.safe_load(text)
        else:
            out[name] = stage
    return out


def stage_script(cmd: str) -> str:
    match = re.search(r"python\s+(\S+\.py)", cmd)
    if match is None:
        raise ValueError(f"cannot find the stage script in cmd {cmd!r}")
    return match.group(1)


def dependency_report(root: Path) -> dict[str, dict[str, list[str]]]:
    """Per stage, the ``src/ames`` files it imports but does not list (``missing``) and the
    ``src/ames`` deps it lists but does not import (``extra``)."""
    src = root / "src"
    report = {}
    for name, stage in expanded_stages(root / "dvc.yaml").items():
        needed = {
            f.relative_to(root).as_posix()
            for f in import_closure(root / stage_script(stage["cmd"]), src)
        }
        listed = [d for d in stage.get("deps", []) if d.startswith("src/")]
        covered = {n for n in needed if any(n == d or n.startswith(d + "/") for d in listed)}
        extra = [d for d in listed if not any(n == d or n.startswith(d + "/") for n in needed)]
        report[name] = {
            "missing": sorted(needed - covered),
            "extra": extra,
            "needed": sorted(needed),
        }
    return report


def rewrite_deps(root: Path) -> None:
    """Replace the ``src/`` entries of each stage's ``deps`` in dvc.yaml by its closure, in
    place of the first of them (or after the stage script); comments and layout stay."""
    report = dependency_report(root)
    lines = (root / "dvc.yaml").read_text().splitlines()
    out, stage, in_deps, written = [], None, False, False
    for line in lines:
        top = re.match(r"^  (\w+):", line)
        if top:
            stage, in_deps, written = top.group(1), False, False
        entry = re.match(r"^(\s+)- (\S+)", line)
        if re.match(r"^\s+deps:\s*$", line):
            in_deps = True
        elif in_deps and not entry:
            in_deps = False
        if in_deps and entry and stage in report:
            indent, path = entry.groups()
            if path.startswith("src/"):
                if not written:
                    out.extend(f"{indent}- {dep}" for dep in report[stage]["needed"])
                    written = True
                continue
            out.append(line)
            if path.startswith("stages/") and not written:
                out.extend(f"{indent}- {dep}" for dep in report[stage]["needed"])
                written = True
            continue
        out.append(line)
    (root / "dvc.yaml").write_text("\n".join(out) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml deps")
    args = parser.parse_args(argv)
    if args.write:
        rewrite_deps(args.root)
    bad = 0
    for name, row in dependency_report(args.root).items():
        for kind in ("missing", "extra"):
            if row[kind]:
                bad += 1
                print(f"{name}: {kind} {', '.join(row[kind])}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
