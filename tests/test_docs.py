"""The user documentation stays true to the tree: the README stays a short
user's page, every link into docs/ (from the README, the docs, the package's
docstrings) names a file and a heading that exist, and no page reads like an
issue tracker."""

import glob
import os
import re

import pytest

from tests.helpers import ROOT

#: Files whose text may link into docs/.
SOURCES = ["README.md", "CHANGELOG.md", "recipes/OpenSLR54/README.md", *sorted(
    os.path.relpath(p, ROOT) for pattern in ("docs/*.md", "speechbrain_w2vbert/**/*.py", "recipes/OpenSLR54/*.py",
                                             "hparams/*.yaml", "bench/*.py")
    for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))]
LINK = re.compile(r"(?:\.\./)?(docs/[\w.-]+\.md)(?:#([\w-]+))?")


def anchors(path):
    """GitHub's anchors of a Markdown file's headings."""
    with open(path, encoding="utf-8") as f:
        headings = [line.lstrip("#").strip() for line in f if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_a_short_users_page():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= 250, len(lines)


@pytest.mark.parametrize("source", SOURCES)
def test_links_into_docs_resolve(source):
    with open(os.path.join(ROOT, source), encoding="utf-8") as f:
        text = f.read()
    for match in LINK.finditer(text):
        target, anchor = match.group(1), match.group(2)
        path = os.path.join(ROOT, target)
        assert os.path.isfile(path), f"{source}: {target} does not exist"
        if anchor:
            assert anchor in anchors(path), f"{source}: {target} has no heading #{anchor}"


@pytest.mark.parametrize("page", ["README.md", "recipes/OpenSLR54/README.md",
                                  *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))])
def test_no_page_reads_like_an_issue_tracker(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read().lower()
    for phrase in ("the issue", "issue's", "not met", "target met", ": met", "(issue "):
        assert phrase not in text, f"{page}: {phrase!r}"


def test_the_service_page_names_every_serve_option():
    """docs/service.md names each option of ``w2vbert-asr serve``, and its
    options table names no option the command lacks."""
    from speechbrain_w2vbert.cli import build_parser

    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]
    options = {o for a in serve._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
    with open(os.path.join(ROOT, "docs", "service.md"), encoding="utf-8") as f:
        page = f.read()
    table = page[page.index("| option | default |"):page.index("\n\n", page.index("| option | default |"))]
    named = set(re.findall(r"--[a-z0-9][a-z0-9-]*", page))
    assert options <= named, options - named
    assert set(re.findall(r"`(--[a-z0-9][a-z0-9-]*)", table)) <= options
