"""S1: each surface operation against the raw SQL statements it needs, side by side (issue 26:
within 1.5x). The raw side runs the same statements through APSW in one transaction, its JSON
encoded outside the timed body; fastpool encodes inside it. Values are the golden fixtures'.
"""

from __future__ import annotations

import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

import apsw
import pytest
from support import tag

import fastpool
from fastpool import wire
from fastpool.model import ArchiveCursor, EventFrame, JournalRecord
from fastpool.store_model import RunCheckpoint, ToolExecutionStoreRecord
from fastpool.surfaces import _sql

ROUNDS = 2000
SYSTEMS = ["fastpool", "raw"]
SURFACES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "surfaces"


@cache
def template(surface: str, method: str, argument: str) -> str:
    """The JSON of ``argument`` in the first golden call of ``surface``'s ``method``."""
    with (SURFACES / f"{surface}.jsonl").open(encoding="utf-8") as handle:
        for text in handle:
            line = json.loads(text)
            if line["line"] == "call" and line["method"] == method:
                return json.dumps(json.loads(line["args_json"])[argument])
    raise LookupError((surface, method, argument))


def journal_record(seq: int) -> JournalRecord:
    """A new record ``seq`` of one run."""
    record = wire.decode(JournalRecord, template("run_journal", "append", "record"))
    return record.replace(journal_seq=seq, record_id=f"journal.record.bench.{seq}")


def raw_db(path: Path, schema: str) -> apsw.Connection:
    """An APSW connection as a store keeps one (WAL, synchronous=NORMAL), the tables created."""
    db = apsw.Connection(str(path))
    db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(schema)
    return db


def transaction(db: apsw.Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    for sql, params in statements:
        db.execute(sql, params).fetchall()
    db.execute("COMMIT")


@pytest.mark.parametrize("system", SYSTEMS)
def test_journal_append(benchmark: Any, system: str, tmp_path: Path) -> None:
    """S1: SqliteRunJournal.append of a new record (lookup, MAX, insert)."""
    tag(benchmark, "S1", "journal.append", system)
    seqs = itertools.count(1)
    if system == "fastpool":
        journal = fastpool.SqliteRunJournal.open(tmp_path / "j.sqlite")
        benchmark.pedantic(journal.append, setup=lambda: ((journal_record(next(seqs)),), {}), rounds=ROUNDS)
        return
    db = raw_db(tmp_path / "raw.sqlite", _sql.JOURNAL_SCHEMA)

    def statements() -> tuple[tuple[Any, ...], dict[str, Any]]:
        r = journal_record(next(seqs))
        return (
            db,
            [
                (_sql.JOURNAL_EXISTING, (r.run_id, r.record_id)),
                (_sql.JOURNAL_LATEST, (r.run_id,)),
                (_sql.JOURNAL_INSERT, (r.run_id, r.journal_seq, r.record_id, wire.encode(r))),
            ],
        ), {}

    benchmark.pedantic(transaction, setup=statements, rounds=ROUNDS)


@pytest.mark.parametrize("system", SYSTEMS)
def test_archive_append_frame(benchmark: Any, system: str, tmp_path: Path) -> None:
    """S1: SqliteEventArchive.append_frame of a frame without a cursor (MAX(seq)+1, insert)."""
    tag(benchmark, "S1", "archive.append_frame", system)
    frame = wire.decode(EventFrame, template("event_archive", "append_frame", "frame"))
    if system == "fastpool":
        archive = fastpool.SqliteEventArchive.open(tmp_path / "a.sqlite")
        benchmark.pedantic(archive.append_frame, args=(frame,), rounds=ROUNDS)
        return
    db = raw_db(tmp_path / "raw.sqlite", _sql.ARCHIVE_SCHEMA)
    cursor = ArchiveCursor(archive_id="archive.sqlite.default", position="archive.1", event_id="e")
    text = wire.encode(frame.replace(archive_cursor=cursor))

    def append() -> None:
        db.execute("BEGIN IMMEDIATE")
        seq = db.execute(_sql.ARCHIVE_NEXT).fetchall()[0][0]
        db.execute(_sql.ARCHIVE_INSERT, (seq, "e", text))
        db.execute("COMMIT")

    benchmark.pedantic(append, rounds=ROUNDS)


@pytest.mark.parametrize("system", SYSTEMS)
def test_checkpoint_save(benchmark: Any, system: str, tmp_path: Path) -> None:
    """S1: SqliteCheckpointStore.save (one upsert)."""
    tag(benchmark, "S1", "checkpoint.save", system)
    checkpoint = wire.decode(RunCheckpoint, template("checkpoint", "save", "checkpoint"))
    if system == "fastpool":
        store = fastpool.SqliteCheckpointStore.open(tmp_path / "c.sqlite")
        benchmark.pedantic(store.save, args=(checkpoint, 10), rounds=ROUNDS)
        return
    db = raw_db(tmp_path / "raw.sqlite", _sql.CHECKPOINT_SCHEMA)
    row = (checkpoint.run_id, checkpoint.checkpoint_id, checkpoint.covers_journal_seq, wire.encode(checkpoint))
    benchmark.pedantic(transaction, args=(db, [(_sql.CHECKPOINT_SAVE, row)]), rounds=ROUNDS)


@pytest.mark.parametrize("system", SYSTEMS)
def test_tool_execution_put(benchmark: Any, system: str, tmp_path: Path) -> None:
    """S1: SqliteToolExecutionStore.put_tool_execution_record (upsert, count)."""
    tag(benchmark, "S1", "tool_execution.put", system)
    record = wire.decode(ToolExecutionStoreRecord, template("tool_execution", "put_tool_execution_record", "record"))
    if system == "fastpool":
        store = fastpool.SqliteToolExecutionStore.open(tmp_path / "t.sqlite")
        benchmark.pedantic(store.put_tool_execution_record, args=(record,), rounds=ROUNDS)
        return
    db = raw_db(tmp_path / "raw.sqlite", _sql.TOOL_SCHEMA)
    row = (record.run_id, record.tool_call_id, record.journal_seq, record.idempotency_key, None, wire.encode(record))
    statements = [(_sql.TOOL_PUT, row), (_sql.TOOL_COUNT, (record.run_id,))]
    benchmark.pedantic(transaction, args=(db, statements), rounds=ROUNDS)


@pytest.mark.parametrize("system", SYSTEMS)
def test_journal_records_for_run(benchmark: Any, system: str, tmp_path: Path) -> None:
    """S1: SqliteRunJournal.records_for_run of 1,000 records (the raw side does not decode)."""
    tag(benchmark, "S1", "journal.records_for_run N=1000", system)
    journal = fastpool.SqliteRunJournal.open(tmp_path / "j.sqlite")
    for seq in range(1, 1001):
        journal.append(journal_record(seq))
    run_id = journal_record(1).run_id
    if system == "fastpool":
        assert len(benchmark(journal.records_for_run, run_id)) == 1000
        return
    db = apsw.Connection(str(tmp_path / "j.sqlite"))
    assert len(benchmark(lambda: db.execute(_sql.JOURNAL_FOR_RUN, (run_id,)).fetchall())) == 1000
