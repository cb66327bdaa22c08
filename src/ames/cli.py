"""Stage entry points, and the ``ames`` command that runs them.

Each ``stages/<name>.py`` is the wiring of one DVC stage: its docstring, the options it adds
(``add_arguments``) and what it does with them and the config (``run``).
:func:`stage_main` supplies the rest: the parser with ``--params``, logging, the config,
glibc's allocator setting (``ames.allocator``) and the one-line report of a user error.
``AMES_DEBUG=1`` in the environment shows the full traceback instead of that line.

``ames <stage> [options]`` (``[project.scripts]``) runs ``stages/<stage>.py`` of the project
in the current directory; ``ames`` alone lists the stages.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ames.allocator import keep_freed_memory
from ames.config import load_config
from ames.errors import UserError

DEBUG_ENV = "AMES_DEBUG"
PARAMS = "params.yaml"
PARAMS_HELP = "parameter file (default: params.yaml)"
LOG_FORMAT = "%(name)s: %(message)s"
STAGES = Path("stages")  # of the project in the current directory

StageMain = Callable[[Sequence[str] | None], None]


def run_stage(name: str, main: Callable[[], object]) -> None:
    """Run ``main`` with glibc's allocator keeping freed memory (``ames.allocator``); a
    ``UserError`` exits with status 1 and ``<name>: <message>`` on stderr."""
    keep_freed_memory()
    try:
        main()
    except UserError as err:
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        sys.exit(f"{name}: {' '.join(str(err).split())}")


def stage_main(
    name: str | Callable[[argparse.Namespace], str],
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace, Any], object],
    *,
    params_help: str | None = PARAMS_HELP,
) -> StageMain:
    """The ``main(argv=None)`` of a stage script.

    It parses ``argv`` (default: the command line) with ``doc`` as the description, the
    options ``add_arguments`` adds and ``--params`` (``params_help=None``: the stage reads no
    parameter file), configures logging, loads the config and calls ``run(args, cfg)``
    (``cfg`` is None without ``--params``) under :func:`run_stage`. ``name`` starts the
    one-line error; a callable gets it from the parsed arguments (``train_ames --stage``).
    """

    def main(argv: Sequence[str] | None = None) -> None:
        parser = argparse.ArgumentParser(
            description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_arguments(parser)
        if params_help is not None:
            parser.add_argument("--params", default=PARAMS, help=params_help)
        args = parser.parse_args(argv)

        def body() -> None:
            logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
            cfg = load_config(args.params) if params_help is not None else None
            run(args, cfg)

        run_stage(name(args) if callable(name) else name, body)

    return main


# ------------------------------------------------------------------------ the ames command


def stage_scripts(folder: Path = STAGES) -> dict[str, Path]:
    """Stage name → script: every ``<folder>/<name>.py`` but helpers (``_name.py``)."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}


def summary(script: Path) -> str:
    """First line of a script's docstring ('' if it has none or does not parse)."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return ""
    return doc.strip().splitlines()[0] if doc else ""


def usage(stages: dict[str, Path]) -> str:
    lines = [
        "usage: ames <stage> [options]   (ames <stage> --help: the stage's options)",
        "",
        f"Runs stages/<stage>.py of the project in the current directory ({Path.cwd()}).",
        "A stage name may be written with dashes (train-expert).",
        "",
    ]
    if not stages:
        return "\n".join(lines + ["No stages/*.py here: run ames from the project root."])
    width = max(map(len, stages))
    return "\n".join(
        lines + ["stages:"] + [f"  {n:<{width}}  {summary(p)}".rstrip() for n, p in stages.items()]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``ames <stage> [options]``: run ``stages/<stage>.py`` in a fresh interpreter (so the
    stage imports its own checkout's ``ames``, as ``python stages/<stage>.py`` does)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stages = stage_scripts()
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(stages))
        return 0
    name = argv[0].replace("-", "_")
    if name not in stages:
        where = "stages: " + ", ".join(stages) if stages else f"no stages/*.py in {Path.cwd()}"
        print(f"ames: unknown stage {argv[0]!r} ({where}); see ames --help", file=sys.stderr)
        return 2
    process = subprocess.Popen([sys.executable, str(stages[name]), *argv[1:]])
    while True:
        try:
            code = process.wait()
        except KeyboardInterrupt:  # the stage got it too: let it stop in its own way
            continue
        return code if code >= 0 else 128 - code  # killed by a signal: the shell's status
