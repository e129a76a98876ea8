"""The README stays a short page for users, and no link of the README or the site points nowhere.

`mkdocs build --strict` (make docs-build, run by CI) checks the site's links and anchors as well;
these checks need no MkDocs and no network, and also cover the README, which the site does not
build.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 300
REPOSITORY = "https://github.com/keras-preact/keras-preact/blob/main/"
"""Links into the repository that the site uses for files outside docs/."""

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_links(text: str) -> list[str]:
    """The targets of the inline links and images of a Markdown text, outside code and comments."""
    for pattern in (_FENCE, _COMMENT, _CODE_SPAN):
        text = pattern.sub("", text)
    return _LINK.findall(text)


def broken_links(page: Path) -> list[str]:
    """The links of ``page`` to files of the checkout that do not exist."""
    broken = []
    for target in markdown_links(page.read_text(encoding="utf-8")):
        if target.startswith(REPOSITORY):
            path = ROOT / target[len(REPOSITORY) :].split("#")[0]
        elif re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # another site, mailto:, or an anchor of the same page
        else:
            path = page.parent / target.split("#")[0]
        if not path.exists():
            broken.append(target)
    return broken


PAGES = [
    ROOT / "README.md",
    *sorted(DOCS.glob("*.md")),
    *sorted(
        path
        for pattern in ("*/README.md", "*/*/README.md")
        for path in ROOT.glob(pattern)
        if not any(
            part.startswith(".") or part in ("site", "runs")
            for part in path.relative_to(ROOT).parts[:-1]
        )
    ),
]


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_keeps_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^make demo +#", readme, re.MULTILINE)
    assert re.search(r"^make test +#", readme, re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "make test" in ci
    assert "make docs-build" in ci


def test_readme_links_each_job_to_its_page():
    links = set(markdown_links((ROOT / "README.md").read_text(encoding="utf-8")))
    pages = ("models", "weights", "convert", "training", "images", "experiments", "export")
    assert {f"docs/{page}.md" for page in (*pages, "benchmarks", "api")} <= links


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_to_files(page):
    assert broken_links(page) == []


def test_every_page_is_in_the_site_navigation():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s*- (?:[^:\n]+: )?([\w./-]+\.md)\s*$", config, re.MULTILINE))
    assert listed == {page.name for page in DOCS.glob("*.md")}


def test_broken_links_are_found(tmp_path):
    (tmp_path / "there.md").write_text("# there\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#a) ![missing](gone.png) [web](https://example.org/x.md)\n"
        "`[code](not-a-link.md)`\n```\n[fenced](not-a-link.md)\n```\n"
        f"[repository]({REPOSITORY}no/such/file.md) [anchor](#top)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["gone.png", f"{REPOSITORY}no/such/file.md"]
