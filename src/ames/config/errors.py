"""The error of a parameter file that cannot be used as it is, and the "did you mean" hint."""

from __future__ import annotations

import difflib

from ames.errors import UserError


class ConfigError(UserError, ValueError):
    """A parameter file that cannot be used as it is.

    Raised for one key, it carries that key's ``path`` (``"zones.mode"``) and the ``detail``
    apart from the text, so that a caller can tell which key without reading the message.
    """

    def __init__(self, message: str, *, path: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.path = path
        self.detail = message if detail is None else detail

    @classmethod
    def at(cls, path: str, detail: str, source: str = "params.yaml") -> ConfigError:
        """The error of key ``path``: ``"params.yaml (zones.mode): <detail>"``."""
        return cls(f"{source} ({path}): {detail}", path=path, detail=detail)


def unknown_keys(unknown: list[str], known: list[str]) -> str:
    """``'x' (did you mean 'y'?), 'z'``: the unknown keys, each with its closest known key."""
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return ", ".join(parts)
