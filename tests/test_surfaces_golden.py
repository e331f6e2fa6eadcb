"""Every golden surface scenario (``fixtures/surfaces``) reproduced line for line.

The rule is in ``surfaces_golden.py``. CI runs this file on both engines (once with
``FASTPOOL_NO_EXTENSIONS=1``): arguments and results go through ``fastpool.wire``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from surfaces_golden import all_scenarios, run_scenario

import fastpool

CLASSES: dict[str, Any] = {
    "run_journal": fastpool.SqliteRunJournal,
    "event_archive": fastpool.SqliteEventArchive,
    "checkpoint": fastpool.SqliteCheckpointStore,
    "content": fastpool.SqliteContentStore,
    "tool_execution": fastpool.SqliteToolExecutionStore,
    "provider_arguments": fastpool.SqliteProviderArgumentStore,
    "bundle": fastpool.SqliteStoreBundle,
}
CASES = list(all_scenarios(list(CLASSES)))


@pytest.mark.parametrize(("surface", "name", "lines"), CASES, ids=[f"{s}/{n}" for s, n, _ in CASES])
def test_golden_scenario(surface: str, name: str, lines: list[dict[str, Any]], tmp_path: Path) -> None:
    checked = run_scenario(CLASSES, lines, tmp_path)
    expected = sum(line["line"] in ("result", "error", "row", "pragma") for line in lines)
    assert checked == expected
