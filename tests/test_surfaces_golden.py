"""Every golden surface scenario (``fixtures/surfaces``) reproduced line for line.

The rule is in ``surfaces_golden.py``. CI runs this file on both engines (once with
``FASTPOOL_NO_EXTENSIONS=1``): arguments and results go through ``fastpool.wire``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from surfaces_golden import SURFACES, SqliteTarget, all_scenarios, checked_lines, dump_table, run_scenario
from test_cli import ok

import fastpool
from fastpool import wire
from fastpool.surfaces._sql import TABLES as SURFACE_TABLES

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
    assert run_scenario(CLASSES, lines, SqliteTarget(tmp_path)) == checked_lines(lines)


RUST_TABLES = [
    "run_journal_records",
    "checkpoints",
    "content",
    "event_archive_frames",
    "sqlite_sequence",
    "provider_arguments",
    "tool_execution_records",
    "agent_pool_records",
    "agent_pool_event_seq",
    "sqlite_master",
]


@pytest.fixture
def rust_file(tmp_path: Path) -> Path:
    """A copy of the file the Rust build wrote (opening it switches it to WAL)."""
    path = tmp_path / "bundle.sqlite"
    shutil.copyfile(SURFACES / "bundle.sqlite", path)
    return path


def test_fastpool_reads_the_file_rust_wrote(rust_file: Path) -> None:
    before = {table: dump_table(rust_file, table) for table in RUST_TABLES}
    with fastpool.SqliteStoreBundle.open(rust_file) as bundle:
        for row in before["run_journal_records"]:
            columns = dict(row)
            (record,) = [
                r
                for r in bundle.journal().records_for_run(columns["run_id"])
                if r.journal_seq == columns["journal_seq"]
            ]
            assert wire.encode(record) == columns["record_json"]
        frames = bundle.event_archive().frames_after(None)
        assert [wire.encode(frame) for frame in frames] == [
            dict(row)["frame_json"] for row in before["event_archive_frames"]
        ]
        for row in before["tool_execution_records"]:
            columns = dict(row)
            records = bundle.tool_execution().records_for_run(columns["run_id"])
            assert columns["record_json"] in [wire.encode(record) for record in records]
        for row in before["checkpoints"]:
            columns = dict(row)
            loaded = bundle.checkpoints().load_at_or_before(
                columns["run_id"], f"journal.{columns['latest_journal_seq']}"
            )
            assert loaded is not None and wire.encode(loaded) == columns["checkpoint_json"]
        for row in before["provider_arguments"]:
            columns = dict(row)
            value = bundle.provider_arguments().load_provider_arguments_json(columns["content_ref"])
            assert value == json.loads(columns["raw_arguments"])
        last = {dict(row)["pool_id"]: dict(row)["seq"] for row in before["agent_pool_records"]}
        for pool_id, seq in last.items():
            assert bundle.agent_pool().snapshot(pool_id).cursor.sequence == seq
    assert {table: dump_table(rust_file, table) for table in RUST_TABLES} == before  # read, nothing changed


def test_fastpool_writes_rusts_schema_text(rust_file: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.sqlite"
    fastpool.SqliteStoreBundle.open(fresh).close()
    assert dump_table(fresh, "sqlite_master") == dump_table(rust_file, "sqlite_master")
    # Each surface alone creates exactly its part of Rust's schema, statement for statement.
    rust_sql = {dict(row)["name"]: dict(row)["sql"] for row in dump_table(rust_file, "sqlite_master")}
    for cls in CLASSES.values():
        path = tmp_path / f"{cls.__name__}.sqlite"
        cls.open(path).close()
        for row in dump_table(path, "sqlite_master"):
            assert dict(row)["sql"] == rust_sql[dict(row)["name"]]


def test_inspect_lists_the_other_tables(rust_file: Path) -> None:
    """``fastpool inspect`` lists the pools, then each other table of the crate with its rows."""
    lines = ok("inspect", str(rust_file)).splitlines()
    at = lines.index("1 pool")
    assert lines[at + 1].split() == ["table", "rows"] and lines[-1] == "6 other tables"
    shown = {table: int(rows) for table, rows in (line.split() for line in lines[at + 2 : -1])}
    assert list(shown) == list(SURFACE_TABLES)
    assert shown == {table: len(dump_table(rust_file, table)) for table in SURFACE_TABLES}
