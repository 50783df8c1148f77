"""docs/design.md stays true to the code: its state table and its module list."""

from __future__ import annotations

import re
from pathlib import Path

from reactor.connection import ALLOWED_TRANSITIONS

ROOT = Path(__file__).resolve().parent.parent
DESIGN = (ROOT / "docs" / "design.md").read_text()


def section(title: str) -> str:
    start = DESIGN.index(f"## {title}\n")
    end = DESIGN.find("\n## ", start + 1)
    return DESIGN[start:end if end != -1 else None]


def test_the_state_table_lists_exactly_the_legal_transitions() -> None:
    rows = re.findall(r"^\| ([A-Z_]+) \| ([A-Z_]+) \|", section("Connection states"), re.M)
    documented = {(before, after) for before, after in rows}
    legal = {(before.name, after.name)
             for before, afters in ALLOWED_TRANSITIONS.items() for after in afters}
    assert documented == legal


def test_the_module_table_names_every_module_of_the_reactor_core() -> None:
    listed = set(re.findall(r"^\| `reactor/(\w+)\.py` \|", section("Layers and ownership"), re.M))
    modules = {path.stem for path in (ROOT / "reactor").glob("*.py") if path.stem != "__init__"}
    assert listed == modules


def test_nothing_in_the_repository_cites_a_file_outside_it() -> None:
    # Character classes, so that this line itself passes the same check made by hand with a
    # plain ``git grep`` for the three strings.
    outside = re.compile(r"DESIGN[.]md|[.][.][/]shared|shared[/]bench")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for pattern in ("reactor/**/*.py", "protocols/**/*.py", "examples/**/*.py",
                        "tests/**/*.py", "docs/**/*.md", "*.md", ".ci/*", "pyproject.toml")
        for path in ROOT.glob(pattern)
        if path.is_file() and path.name != "test_design_doc.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert offenders == []
