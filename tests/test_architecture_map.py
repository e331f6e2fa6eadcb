"""docs/architecture.md is the map of the package: it names every module, so a module added
without its line on the map fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "fastpool"
MAP = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
SOURCES = sorted(
    path.relative_to(PACKAGE).as_posix()
    for pattern in ("*.py", "*.pyx", "*.pxi", "*.pxd", "*.h")
    for path in PACKAGE.rglob(pattern)
    if "__pycache__" not in path.parts
)


def test_the_package_has_sources() -> None:
    assert "sqlite.py" in SOURCES and "surfaces/_db.py" in SOURCES


@pytest.mark.parametrize("module", SOURCES)
def test_the_map_names_every_module(module: str) -> None:
    # A top-level module by its file name, one of a subpackage by its path (surfaces/_db.py);
    # journal.py is not named by surfaces/journal.py.
    assert re.search(rf"(?<![\w/]){re.escape(module)}", MAP), f"docs/architecture.md does not name {module}"
