"""The command line on the Rust crate's other tables (issue 26 item 5): ``export`` prints their
rows, ``verify`` decodes every row as its surface reads it, ``copy`` moves them byte for byte
between SQLite and PostgreSQL and never overwrites a row that differs.

The Rust-written ``fixtures/surfaces/bundle.sqlite`` (a pool and every surface table) is the
source; its golden ``row`` lines are what ``export`` must print, column for column.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import apsw
import pytest
from helpers import FIXTURES, Run
from store_helpers import PgTarget

from fastpool import PostgresCheckpointStore, SqliteCheckpointStore, SqliteStoreBundle, wire
from fastpool.store_model import RunCheckpoint
from fastpool.surfaces._tables import TABLES

BUNDLE = FIXTURES / "surfaces" / "bundle.sqlite"
NAMES = [table.name for table in TABLES]


def golden_rows() -> list[dict[str, Any]]:
    """The ``row`` lines of the bundle scenario that wrote ``bundle.sqlite``, surface tables only."""
    lines = [json.loads(text) for text in (FIXTURES / "surfaces" / "bundle.jsonl").read_text().splitlines()]
    start = max(i for i, line in enumerate(lines) if line["line"] == "scenario")
    rows = [line for line in lines[start:] if line["line"] == "row" and line["table"] in NAMES]
    return sorted(rows, key=lambda line: NAMES.index(line["table"]))  # stable: each table's rows keep their order


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.sqlite"
    shutil.copyfile(BUNDLE, path)
    return path


def table_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"table":')]


def sqlite_tables(path: Path, *, written: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every surface table's rows (``SELECT *`` in the order written, the rowid's; else by key,
    but checkpoints still in the order written, on which their store breaks ties), the archive's
    AUTOINCREMENT counter, and the tables' CREATE text."""
    db = apsw.Connection(str(path))
    try:
        out = {
            table.name: db.execute(
                f"SELECT * FROM {table.name} ORDER BY "
                + ("rowid" if written or table.name == "checkpoints" else ", ".join(table.key))
            ).fetchall()
            for table in TABLES
        }
        out["sqlite_sequence"] = db.execute("SELECT * FROM sqlite_sequence ORDER BY name").fetchall()
        out["sqlite_master"] = db.execute(
            f"SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ({','.join('?' * len(NAMES))}) ORDER BY name",
            NAMES,
        ).fetchall()
        return out
    finally:
        db.close()


def execute(path: Path, statement: str, params: tuple[Any, ...] = ()) -> None:
    db = apsw.Connection(str(path))
    try:
        db.execute(statement, params)
    finally:
        db.close()


# ------------------------------------------------------------------------------ export


def test_export_prints_the_pool_records_then_every_row_as_the_golden_lines(cli: Run, bundle: Path) -> None:
    code, out, err = cli("export", str(bundle))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [json.loads(line)["pool_id"] for line in lines[:3]] == ["pool.bundle"] * 3
    expected = [{"table": line["table"], "columns": line["columns"]} for line in golden_rows()]
    assert table_lines(out) == expected
    assert len(lines) == 3 + len(expected)


def test_export_of_some_tables_only(cli: Run, bundle: Path) -> None:
    code, out, _ = cli("export", str(bundle), "--table", "content", "--table", "checkpoints")
    assert code == 0
    assert [line["table"] for line in table_lines(out)] == ["checkpoints"] * 2 + ["content"] * 2
    assert len(out.splitlines()) == 4  # no pool records
    assert all(len(line["columns"]["bytes"]) % 2 == 0 for line in table_lines(out) if line["table"] == "content")


def test_export_of_a_pool_or_filtered_records_prints_no_rows(cli: Run, bundle: Path) -> None:
    for args in (("--pool", "pool.bundle"), ("--type", "member_joined"), ("--run", "run.a")):
        code, out, _ = cli("export", str(bundle), *args)
        assert code == 0 and out and table_lines(out) == []


def test_export_of_a_table_the_file_lacks(cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "only.sqlite"
    code, out, err = cli("demo", str(path), "--agents", "1", "--messages", "0")
    assert code == 0
    code, out, err = cli("export", str(path), "--table", "content")
    assert (code, out) == (1, "")
    assert err == f"fastpool export: error: {path}: no table 'content'\n"


# ------------------------------------------------------------------------------ verify


def test_verify_decodes_every_row(cli: Run, bundle: Path) -> None:
    code, out, _ = cli("verify", str(bundle))
    assert code == 0
    assert out.splitlines()[-1] == "6 other tables, 25 rows: clean"


def test_verify_lists_each_bad_row(cli: Run, bundle: Path) -> None:
    execute(bundle, "UPDATE checkpoints SET checkpoint_json = '{' WHERE checkpoint_id = 'ck.flow.1'")
    execute(
        bundle,
        "UPDATE event_archive_frames SET frame_json = replace(frame_json, ?, ?) WHERE seq = 2",
        ('"scope":"all"', '"scope":"none"'),
    )
    execute(bundle, "UPDATE provider_arguments SET raw_arguments = 'not json' WHERE rowid = 1")
    execute(bundle, "UPDATE content SET byte_len = byte_len + 1 WHERE content_ref = 'content.flow.bin'")
    code, out, _ = cli("verify", str(bundle))
    assert code == 1
    lines = out.splitlines()
    bad = [line for line in lines if line.startswith("table ")]
    assert len(bad) == 4
    assert bad[0].startswith(
        "table checkpoints (run_id='run.a', checkpoint_id='ck.flow.1'): checkpoint_json: sqlite store JSON error: "
    )
    assert bad[1].startswith("table content (content_ref='content.flow.bin'): byte_len: ")
    assert bad[2].startswith("table event_archive_frames (seq=2): frame_json: sqlite store JSON error: ")
    assert "unknown variant" in bad[2] and "'none'" in bad[2]
    assert bad[3].startswith("table provider_arguments (content_ref=") and "raw_arguments: not valid JSON" in bad[3]
    assert lines[-1] == "6 other tables, 25 rows: 4 problems"
    assert lines[0] == "1 pool, 3 records: clean"


# ------------------------------------------------------------------------------ copy


def test_copy_sqlite_to_sqlite_is_byte_for_byte(cli: Run, bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.sqlite"
    code, out, err = cli("copy", str(bundle), str(target))
    assert (code, err) == (0, "")
    assert "table event_archive_frames: 8 rows copied (0 already there)" in out.splitlines()
    assert sqlite_tables(target) == sqlite_tables(bundle)
    code, again, _ = cli("copy", str(bundle), str(target), "--resume")
    assert code == 0 and "table checkpoints: 0 rows copied (2 already there)" in again.splitlines()
    assert sqlite_tables(target) == sqlite_tables(bundle)


def test_copy_refuses_a_row_that_differs_and_writes_nothing(cli: Run, bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.sqlite"
    shutil.copyfile(bundle, target)
    execute(target, "DELETE FROM agent_pool_records")
    execute(target, "DELETE FROM agent_pool_event_seq")
    execute(target, "DELETE FROM run_journal_records WHERE run_id = 'run.b'")
    execute(target, "UPDATE content SET bytes = x'00' WHERE content_ref = 'content.flow.bin'")
    before = sqlite_tables(target)
    code, out, err = cli("copy", str(bundle), str(target))
    assert (code, out) == (1, "")
    assert err == (
        f"fastpool copy: error: {target} already has a row of content "
        f"(content_ref='content.flow.bin') and it differs from {bundle}'s: copy never overwrites a row; "
        "nothing was copied\n"
    )
    assert sqlite_tables(target) == before
    with apsw.Connection(str(target)) as db:
        assert db.execute("SELECT COUNT(*) FROM agent_pool_records").fetchall() == [(0,)]


def test_copy_of_one_pool_copies_no_table(cli: Run, bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.sqlite"
    code, out, _ = cli("copy", str(bundle), str(target), "--pool", "pool.bundle")
    assert code == 0 and "table " not in out
    db = apsw.Connection(str(target))
    try:
        assert {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} & set(
            NAMES
        ) == set()
    finally:
        db.close()


def test_round_trip_sqlite_postgres_sqlite(cli: Run, bundle: Path, pg: PgTarget, tmp_path: Path) -> None:
    code, out, err = cli("copy", str(bundle), pg.conninfo, "--dst-schema", pg.schema)
    assert (code, err) == (0, "")
    assert "table tool_execution_records: 3 rows copied (0 already there)" in out.splitlines()
    assert pg.query("SELECT bytes FROM content ORDER BY content_ref") == [
        (bytes.fromhex(line["columns"]["bytes"]),) for line in golden_rows() if line["table"] == "content"
    ]
    # What the read commands print of the tables is what they print of the file's.
    assert table_lines(cli("export", pg.conninfo, "--schema", pg.schema)[1]) == table_lines(
        cli("export", str(bundle))[1]
    )
    assert cli("verify", pg.conninfo, "--schema", pg.schema)[1].splitlines()[-1] == "6 other tables, 25 rows: clean"
    back = tmp_path / "back.sqlite"
    code, out, err = cli("copy", pg.conninfo, str(back), "--src-schema", pg.schema)
    assert (code, err) == (0, "")
    # PostgreSQL keeps no write order but a checkpoint's: the rest comes back in key order.
    assert sqlite_tables(back, written=False) == sqlite_tables(bundle, written=False)


def test_copy_into_postgres_refuses_a_row_that_differs(cli: Run, bundle: Path, pg: PgTarget) -> None:
    assert cli("copy", str(bundle), pg.conninfo, "--dst-schema", pg.schema)[0] == 0
    pg.query(
        "UPDATE checkpoints SET checkpoint_json = checkpoint_json || ' ' WHERE checkpoint_id = 'ck.flow.2' RETURNING 1"
    )
    before = pg.query("SELECT * FROM checkpoints ORDER BY checkpoint_id")
    code, out, err = cli("copy", str(bundle), pg.conninfo, "--dst-schema", pg.schema, "--resume")
    assert (code, out) == (1, "")
    assert "already has a row of checkpoints (run_id='run.a', checkpoint_id='ck.flow.2') and it differs" in err
    assert pg.query("SELECT * FROM checkpoints ORDER BY checkpoint_id") == before


def test_a_copy_keeps_which_checkpoint_wins_a_tie(cli: Run, pg: PgTarget, tmp_path: Path) -> None:
    """Two checkpoints covering the same sequence: the one saved last is the latest, on SQLite
    by rowid, on PostgreSQL by its ``written`` column; a copy each way keeps the order."""
    line = next(
        json.loads(text)
        for text in (FIXTURES / "surfaces" / "checkpoint.jsonl").read_text().splitlines()
        if '"method":"save"' in text and '"line":"call"' in text
    )
    checkpoint = wire.decode(RunCheckpoint, json.dumps(json.loads(line["args_json"])["checkpoint"]))
    path = tmp_path / "ties.sqlite"
    with SqliteStoreBundle.open(path) as bundle:  # the pool store's tables too: copy reads them
        for checkpoint_id in ("ck.z", "ck.a"):  # saved last, first in key order
            bundle.checkpoints().save(checkpoint.replace(checkpoint_id=checkpoint_id, covers_journal_seq=3), 3)
        assert bundle.checkpoints().load_latest(checkpoint.run_id).checkpoint_id == "ck.a"
    assert cli("copy", str(path), pg.conninfo, "--dst-schema", pg.schema)[0] == 0
    with PostgresCheckpointStore.open(pg.conninfo, schema=pg.schema) as store:
        assert store.load_latest(checkpoint.run_id).checkpoint_id == "ck.a"
    back = tmp_path / "back.sqlite"
    assert cli("copy", pg.conninfo, str(back), "--src-schema", pg.schema)[0] == 0
    with SqliteCheckpointStore.open(back) as store:
        assert store.load_latest(checkpoint.run_id).checkpoint_id == "ck.a"
