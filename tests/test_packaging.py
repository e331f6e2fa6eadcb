"""What an install ships: every package under ``src/fastpool`` is listed in pyproject.toml, so an
installed (not editable) ``fastpool bench`` finds ``fastpool.benchmarking``."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_shipped() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT / "src").parts)
        for init in (ROOT / "src" / "fastpool").rglob("__init__.py")
    }
    assert listed == found
