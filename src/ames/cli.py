"""Stage entry points: a user error ends the stage with one line on stderr.

``AMES_DEBUG=1`` in the environment shows the full traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from ames.allocator import keep_freed_memory
from ames.errors import UserError

DEBUG_ENV = "AMES_DEBUG"


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
