"""The README and docs/*.md as a reader meets them: every Python block compiles, every block that
defines a DAG loads into a DagBag without import errors, every relative link and image resolves, and
the README stays a front door.

A block that is a fragment, not meant to run alone, is marked by ``<!-- fragment -->`` on the line
right before its fence, and is then only compiled."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import AIRFLOW_VERSION, REPOSITORY

README = REPOSITORY / "README.md"
PAGES = [README, *sorted((REPOSITORY / "docs").glob("*.md"))]
README_MAX_LINES = 250
FRAGMENT = "<!-- fragment -->"
OPENING = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
DEFINES_DAG = re.compile(r"\bDAG\(|@dag\b|\bwith DAG\b")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?(?P<target>[^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = ("http://", "https://", "mailto:")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    """The line of the block's first line of code, 1-based."""
    language: str
    source: str
    fragment: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPOSITORY)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, with their language (the info string's first word)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, index = [], 0
    while index < len(lines):
        opening = OPENING.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((at for at in range(index + 1, len(lines)) if closing.match(lines[at])), len(lines))
        body = [
            line[indent:] if line[:indent].strip() == "" else line.lstrip() for line in lines[index + 1 : end]
        ]
        fragment = index > 0 and lines[index - 1].strip() == FRAGMENT
        language = (opening["info"].split() or [""])[0].lower()
        found.append(Block(page, index + 2, language, "\n".join(body) + "\n", fragment))
        index = end + 1
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """The targets of ``page``'s links and images outside code (blocks and inline), with their line.
    A link's text may wrap onto the next line, as Markdown allows."""
    lines = page.read_text(encoding="utf-8").splitlines()
    for block in blocks(page):  # the block's lines and its fences blanked, so the numbering holds
        first, last = block.line - 1, block.line + len(block.source.splitlines())
        lines[first - 1 : last] = [""] * len(lines[first - 1 : last])
    text = "\n".join(INLINE_CODE.sub("", line) for line in lines)
    return [(text.count("\n", 0, link.start()) + 1, link["target"]) for link in LINK.finditer(text)]


PYTHON_BLOCKS = [block for page in PAGES for block in blocks(page) if block.language in ("python", "py")]
DAG_BLOCKS = [block for block in PYTHON_BLOCKS if not block.fragment and DEFINES_DAG.search(block.source)]


def test_the_docs_have_python_blocks_and_dags():
    """The parametrized tests below would pass on nothing: make sure they have something to check."""
    assert PYTHON_BLOCKS, "no ```python block found in README.md or docs/*.md"
    assert DAG_BLOCKS, "no Python block in README.md or docs/*.md defines a DAG"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.where)
def test_python_block_compiles(block):
    try:
        compile(block.source, block.where, "exec")
    except SyntaxError as err:
        line = block.line + (err.lineno or 1) - 1
        where = f"{block.page.relative_to(REPOSITORY)}:{line}"
        pytest.fail(f"{where}: the Python block starting at line {block.line} does not compile: {err.msg}")


def dag_bag(folder: Path):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # before Airflow 3.1
        from airflow.models.dagbag import DagBag

    # Airflow 3.3's DagBag has no include_examples: AIRFLOW__CORE__LOAD_EXAMPLES (conftest) is False.
    options = (
        {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    )
    return DagBag(dag_folder=str(folder), safe_mode=False, **options)


@pytest.mark.parametrize("block", DAG_BLOCKS, ids=lambda block: block.where)
def test_dag_block_loads_into_a_dag_bag(block, tmp_path):
    if AIRFLOW_VERSION < (3, 0) and re.search(r"^\s*from airflow\.sdk import", block.source, re.MULTILINE):
        pytest.skip("the block imports airflow.sdk, which Airflow 2 lacks: the docs name the compat import")
    dag_file = tmp_path / f"{block.page.stem.lower()}_line_{block.line}.py"
    dag_file.write_text(block.source, encoding="utf-8")
    bag = dag_bag(tmp_path)
    errors = "\n".join(str(error) for error in bag.import_errors.values())
    assert not bag.import_errors, f"{block.where}: the DAG block does not import:\n{errors}"
    assert bag.dags, f"{block.where}: the block defines no DAG that a DagBag finds"


def broken_links(page: Path) -> list[str]:
    broken = []
    for number, target in links(page):
        if not target or target.startswith("#") or target.lower().startswith(EXTERNAL):
            continue
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not (page.parent / path).exists():
            broken.append(f"{page.relative_to(REPOSITORY)}:{number}: {target}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPOSITORY)))
def test_relative_links_resolve(page):
    broken = broken_links(page)
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / unquote(target.split("#", 1)[0])).resolve()
        for _, target in links(README)
        if target and not target.lower().startswith(EXTERNAL)
    }
    missing = [str(page.relative_to(REPOSITORY)) for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_readme_is_a_front_door():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES}"
