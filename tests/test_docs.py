"""The documents a newcomer reads: every relative link in README.md and docs/*.md leads somewhere,
a file that exists and, when it names one, a heading of that file."""

import re
from pathlib import Path

import pytest

from devtools.processes import BASE_DIR

DOCUMENTS = [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
# [text](target) and ![alt](target); the target ends at the first space or closing bracket.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s[^)]*)?\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)


def prose(markdown: str) -> str:
    """`markdown` without its code blocks and code spans, where brackets are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces as hyphens."""
    seen: dict[str, int] = {}
    result = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def broken_links(document: Path) -> list[str]:
    broken = []
    for target in _LINK.findall(prose(document.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: and the like: not ours to check
            continue
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(BASE_DIR)))
def test_every_relative_link_leads_somewhere(document):
    assert broken_links(document) == []


def test_a_link_to_nowhere_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[fine](there.md#a-heading) [gone](missing.md) [wrong](there.md#elsewhere) "
        "`[in code](nowhere.md)` [web](https://example.com/nowhere)\n"
    )

    assert broken_links(page) == ["missing.md: no such file", "there.md#elsewhere: no such heading"]
