"""The one error type the data layer raises for input it cannot use.

Every message has the same shape, ``"<file>: <problem>. Fix: <fix>"``, so a user who
brought their own files always learns which file is wrong, what is wrong with it and
what to do about it (SPEC §2.3).
"""

from __future__ import annotations

from pathlib import Path

from ames.errors import UserError


class DataError(UserError, ValueError):
    """Input data that cannot be used as it is.

    ``path`` is the offending file (or another short source name such as
    ``"params.yaml (data.files)"``), ``problem`` says what is wrong and ``fix`` what to do.
    The three parts stay available as attributes for callers and tests.
    """

    def __init__(self, path: str | Path, problem: str, fix: str) -> None:
        self.path = str(path)
        self.problem = problem.strip().rstrip(".")
        self.fix = fix.strip().rstrip(".")
        super().__init__(f"{self.path}: {self.problem}. Fix: {self.fix}.")
