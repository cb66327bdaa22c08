"""The README stays a short front door, and its links and the docs pages' links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def link_targets(text: str) -> list[str]:
    """Targets of the markdown links of ``text``, outside fenced code and code spans."""
    targets, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        prose = CODE_SPAN.sub("", line)
        targets += INLINE_LINK.findall(prose)
        targets += REFERENCE_DEF.findall(prose)
    return targets


def relative_file(target: str) -> str | None:
    """The file part of a relative link; None for external links and same-page anchors."""
    if EXTERNAL.match(target) or target.startswith("#"):
        return None
    return target.split("#", 1)[0] or None


def test_link_targets_parse_inline_and_reference_links_outside_code() -> None:
    text = (
        'See [a](docs/a.md#x), ![img](plots/b.png "t") and [web](https://dvc.org).\n'
        "`[not](a-link.md)` [top](#anchor)\n"
        "```\n[inside](fence.md)\n```\n"
        "[ref]: docs/c.md\n"
    )
    assert link_targets(text) == [
        "docs/a.md#x",
        "plots/b.png",
        "https://dvc.org",
        "#anchor",
        "docs/c.md",
    ]
    assert [relative_file(t) for t in link_targets(text)] == [
        "docs/a.md",
        "plots/b.png",
        None,
        None,
        "docs/c.md",
    ]


def test_readme_is_at_most_250_lines() -> None:
    n_lines = len(README.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_README_LINES, (
        f"README.md has {n_lines} lines (at most {MAX_README_LINES}): move detail to docs/"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page: Path) -> None:
    targets = link_targets(page.read_text(encoding="utf-8"))
    missing = [
        target
        for target in targets
        if (path := relative_file(target)) is not None and not (page.parent / path).exists()
    ]
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"
    if page == README:
        assert any(relative_file(t) for t in targets), "README.md links to no docs page"
