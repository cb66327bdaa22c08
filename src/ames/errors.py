"""The base of every error that is the user's to fix (a bad file, a bad setting).

A stage run from the command line reports such an error as one line on stderr, without a
traceback (``ames.cli.run_stage``); every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Input or configuration the user has to change; the message names what and how."""
