"""The one reader of parameter values: by key path, each bad value a ``ConfigError`` that
names the file and the path (``params.yaml: expert1.model.gat_heads: missing key``)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ames.config.errors import ConfigError, unknown_keys

T = TypeVar("T")

# What a field annotation accepts, in the words of an error message.
_DESCRIPTIONS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
}


class Reader:
    """Reads values by key path, raising ``ConfigError`` that names ``source`` and the path."""

    def __init__(self, source: str = "params.yaml") -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}", path=path, detail=message)

    def check(self, problems: Iterable[tuple[str, str]], path: str) -> None:
        """Raise the first ``(key, message)`` of ``problems`` at ``path.key`` (``path`` if
        ``key`` is empty)."""
        for key, message in problems:
            raise self.fail(f"{path}.{key}" if key else path, message)

    def value(self, mapping: Mapping[str, Any], path: str) -> Any:
        key = path.rsplit(".", 1)[-1]
        if key not in mapping:
            raise self.fail(path, "missing key")
        return mapping[key]

    def section(self, mapping: Mapping[str, Any], path: str) -> Mapping[str, Any]:
        value = self.value(mapping, path)
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {value!r}")
        return value

    def integer(self, mapping: Mapping[str, Any], path: str, minimum: int | None = None) -> int:
        value = self.value(mapping, path)
        too_small = minimum is not None and isinstance(value, int) and value < minimum
        if isinstance(value, bool) or not isinstance(value, int) or too_small:
            bound = "" if minimum is None else f" >= {minimum}"
            raise self.fail(path, f"expected an integer{bound}, got {value!r}")
        return value

    def number(self, mapping: Mapping[str, Any], path: str) -> float:
        return self.typed(self.value(mapping, path), float, path)

    def flag(self, mapping: Mapping[str, Any], path: str) -> bool:
        return self.typed(self.value(mapping, path), bool, path)

    def choice(self, mapping: Mapping[str, Any], path: str, options: tuple[str, ...]) -> str:
        value = self.value(mapping, path)
        if value not in options:
            raise self.fail(path, f"expected one of {', '.join(options)}, got {value!r}")
        return value

    def known_keys(self, mapping: Mapping[str, Any], path: str, known: list[str]) -> None:
        unknown = sorted(set(mapping) - set(known), key=str)
        if unknown:
            names = unknown_keys(unknown, known)
            raise self.fail(path, f"unknown key(s) {names}; valid: {', '.join(known)}")

    def fields(self, kind: type[T], mapping: Mapping[str, Any], path: str, **given: Any) -> T:
        """The dataclass ``kind`` from the keys of ``mapping``: an unknown key, a missing key
        without a default, a value of the wrong type each fail at its path. ``given`` are
        values the caller sets; they replace the mapping's."""
        names = [f.name for f in dataclasses.fields(kind)]
        self.known_keys(mapping, path, names)
        hints = typing.get_type_hints(kind)
        values = {}
        for f in dataclasses.fields(kind):
            if f.name in mapping:
                values[f.name] = self.typed(mapping[f.name], hints[f.name], f"{path}.{f.name}")
            elif f.name not in given and f.default is dataclasses.MISSING:
                raise self.fail(f"{path}.{f.name}", "missing key")
        return kind(**{**values, **given})

    def typed(self, value: Any, annotation: Any, path: str) -> Any:
        """``value`` as the annotation's type (``int``, ``float | None``, ``tuple[int, ...]``).

        A number accepts an integer, and a string that ``float()`` reads (YAML 1.1 reads
        ``1e-3`` without a dot as a string); a tuple accepts a list, or one item alone.
        """
        for option in _options(annotation):
            converted = _convert(value, option)
            if converted is not _MISMATCH:
                return converted
        raise self.fail(path, f"expected {_describe(annotation)}, got {value!r}")


_MISMATCH = object()


def _options(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` (one member of a union), or ``_MISMATCH``."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        items = value if isinstance(value, list | tuple) else [value]
        converted = [_convert(v, item) for v in items]
        return _MISMATCH if _MISMATCH in converted else tuple(converted)
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return _MISMATCH
    if isinstance(value, bool) and kind is not bool:
        return _MISMATCH
    if kind is float and isinstance(value, int | float):
        return float(value)
    if kind is type(None):
        return None if value is None else _MISMATCH
    return value if isinstance(value, kind) else _MISMATCH


def _describe(annotation: Any) -> str:
    words = []
    for option in _options(annotation):
        if typing.get_origin(option) is tuple:
            words.append(f"a list of {_describe(typing.get_args(option)[0])} values")
        else:
            words.append(_DESCRIPTIONS.get(option, getattr(option, "__name__", str(option))))
    return " or ".join(words)
