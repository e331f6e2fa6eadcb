"""Retention: ``prune`` of the run journal and the event archive, on SQLite and PostgreSQL, and
``fastpool prune`` (issue 25).

What a prune leaves is the contract here: the newest rows stay (each run's last journal
record, the archive's last frame), so numbering goes on where it was, for fastpool and for a
Rust host reading the same tables; an ``ArchiveEventBus`` subscription whose cursor stands
before a pruned frame fails, naming the cursor, instead of silently skipping frames.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from interrupts import Injector, no_transaction_left, points
from surface_workers import journal_record, template

from fastpool import (
    AgentError,
    AgentPool,
    AgentPoolMember,
    EventFilter,
    EventFrame,
    EventKind,
    InvalidInput,
    PostgresEventArchive,
    PostgresRunJournal,
    SqliteEventArchive,
    SqliteRunJournal,
    WakeCondition,
    WakeRegistrationStatus,
    open_runtime,
    wire,
)

RUNS = ("run.a", "run.b")


def record(run_id: str, seq: int) -> Any:
    return journal_record(seq).replace(run_id=run_id, record_id=f"record.{run_id}.{seq}")


FRAME = wire.decode(EventFrame, template("event_archive", "append_frame", "frame"))


def opened(kind: str, target: tuple[str, dict[str, str]]) -> Any:
    location, options = target
    classes = {"journal": (SqliteRunJournal, PostgresRunJournal), "archive": (SqliteEventArchive, PostgresEventArchive)}
    return classes[kind][bool(options)].open(location, **options)


@pytest.fixture
def journal(target: tuple[str, dict[str, str]]) -> Iterator[Any]:
    with opened("journal", target) as journal:
        for run_id in RUNS:
            for seq in range(1, 6):
                journal.append(record(run_id, seq))
        yield journal


@pytest.fixture
def archive(target: tuple[str, dict[str, str]]) -> Iterator[Any]:
    with opened("archive", target) as archive:
        for _ in range(6):
            archive.append_frame(FRAME)
        yield archive


def seqs(journal: Any, run_id: str) -> list[int]:
    return [r.journal_seq for r in journal.records_for_run(run_id)]


def positions(archive: Any) -> list[str]:
    return [frame.archive_cursor.position for frame in archive.frames_after(None)]


def test_journal_prune_before_a_seq_keeps_the_rest_and_each_run_s_newest(journal: Any) -> None:
    assert journal.prune("run.a", before_seq=3) == 2
    assert seqs(journal, "run.a") == [3, 4, 5] and seqs(journal, "run.b") == [1, 2, 3, 4, 5]
    assert journal.prune(before_seq=100) == 6  # every run: all but its newest
    assert seqs(journal, "run.a") == [5] and seqs(journal, "run.b") == [5]
    assert journal.prune(before_seq=100) == 0
    assert [r.journal_seq for r in journal.records_after("run.a", 0)] == [5]


def test_journal_prune_keep_last_keeps_that_many_per_run(journal: Any) -> None:
    assert journal.prune(keep_last=2) == 6
    assert seqs(journal, "run.a") == [4, 5] and seqs(journal, "run.b") == [4, 5]
    assert journal.prune("run.b", keep_last=1) == 1
    assert seqs(journal, "run.a") == [4, 5] and seqs(journal, "run.b") == [5]


def test_a_pruned_journal_goes_on_from_each_run_s_newest(journal: Any) -> None:
    journal.prune(before_seq=100)
    assert journal.append(record("run.a", 6)) == "journal.6"
    assert journal.append(record("run.a", 6)) == "journal.6"  # a kept id: still a repeat
    # A pruned id is no longer known: its retry fails as any sequence not above the newest does.
    with pytest.raises(AgentError, match="journal_seq must be strictly increasing"):
        journal.append(record("run.a", 2))


def test_archive_prune_keeps_the_newest_and_numbering_goes_on(archive: Any) -> None:
    assert archive.prune(before_seq=3) == 2
    assert positions(archive) == [f"archive.{n}" for n in range(3, 7)]
    assert archive.prune(keep_last=2) == 2
    assert positions(archive) == ["archive.5", "archive.6"]
    assert archive.prune(before_seq=2**63 - 1) == 1  # all but the newest
    assert archive.prune(keep_last=1) == 0
    assert archive.append_frame(FRAME).position == "archive.7"  # never a cursor given twice
    assert positions(archive) == ["archive.6", "archive.7"]


def test_an_empty_archive_or_journal_prunes_nothing(target: tuple[str, dict[str, str]]) -> None:
    with opened("archive", target) as archive, opened("journal", target) as journal:
        assert archive.prune(keep_last=1) == 0 and archive.prune(before_seq=10) == 0
        assert journal.prune(keep_last=1) == 0 and journal.prune("run.none", before_seq=10) == 0


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({}, "before_seq, keep_last: expected exactly one"),
        ({"before_seq": 1, "keep_last": 1}, "before_seq, keep_last: expected exactly one"),
        ({"keep_last": 0}, "keep_last: expected a positive int"),
        ({"keep_last": 1.0}, "keep_last: expected a positive int"),
        ({"before_seq": -1}, "before_seq: expected an int from 0"),
        ({"before_seq": 2**63}, "before_seq: expected an int from 0"),
        ({"before_seq": True}, "before_seq: expected an int from 0"),
    ],
)
def test_bad_limits_are_refused_naming_the_argument(tmp_path: Path, arguments: dict[str, Any], named: str) -> None:
    with (
        SqliteEventArchive.open(tmp_path / "a.sqlite") as archive,
        SqliteRunJournal.open(tmp_path / "a.sqlite") as journal,
    ):
        for prune in (archive.prune, journal.prune):
            with pytest.raises(InvalidInput, match=named):
                prune(**arguments)
        with pytest.raises(InvalidInput, match="run_id: expected a string or None, got int"):
            journal.prune(7, keep_last=1)


def test_a_rust_host_s_table_is_read_as_before(tmp_path: Path) -> None:
    """The tables keep their format: the crate's own statements read what is left."""
    path = tmp_path / "a.sqlite"
    with SqliteEventArchive.open(path) as archive:
        for _ in range(4):
            archive.append_frame(FRAME)
        archive.prune(keep_last=2)
    db = apsw.Connection(str(path))
    assert db.execute("SELECT seq, event_id FROM event_archive_frames ORDER BY seq").fetchall() == [
        (3, FRAME.event.envelope.event_id),
        (4, FRAME.event.envelope.event_id),
    ]
    assert db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM event_archive_frames").fetchall() == [(5,)]
    db.close()


# -- the runtime's bus ----------------------------------------------------------------------------


def joined(runtime: Any, runs: int) -> AgentPool:
    pool = AgentPool("pool.a", runtime=runtime)
    for n in range(runs):
        pool.join_run(AgentPoolMember(run_id=f"run.{n}", agent_id="agent.a"))
    return pool


def test_a_subscription_from_before_the_pruned_frames_fails_naming_its_cursor(
    target: tuple[str, dict[str, str]],
) -> None:
    location, options = target
    with open_runtime(location, **options) as runtime:
        pool = joined(runtime, 5)  # frames 1 (created) and 2..6 (joined)
        frames = list(pool.subscribe(EventFilter()))
        assert [f.cursor.event_seq for f in frames] == [1, 2, 3, 4, 5, 6]
        assert runtime.event_bus.archive.prune(before_seq=4) == 3
        assert len(runtime.event_bus.frames) == 3

        assert [f.cursor.event_seq for f in pool.subscribe(EventFilter())] == [4, 5, 6]  # from the oldest kept
        assert [f.cursor.event_seq for f in pool.subscribe(EventFilter(), frames[2].cursor)] == [4, 5, 6]
        with pytest.raises(AgentError, match="event cursor 2 stands before frames that were pruned") as raised:
            pool.subscribe(EventFilter(), frames[1].cursor)
        assert raised.value.ids == {"event_seq": "2"}

        # The index the wakes look up was pruned with the frames: a wake matches only what is left.
        kinds = (EventKind.AGENT_POOL_CREATED,)
        condition = WakeCondition(
            condition_id="wake.created", run_id="run.0", filter=EventFilter(kinds=kinds), idempotency_key="k"
        )
        assert pool.suspend_until("run.0", condition).status is WakeRegistrationStatus.REGISTERED
        # Journal records of the runtime prune alike; the next sequence never goes back.
        next_seq = runtime.next_journal_seq()
        runtime.journal.prune(keep_last=1)
        assert runtime.next_journal_seq() >= next_seq  # (PostgreSQL: a sequence, each call takes one)


def test_prune_of_a_runtime_s_archive_drops_the_side_table_s_rows(tmp_path: Path) -> None:
    path = tmp_path / "host.sqlite"
    with open_runtime(path) as runtime:
        joined(runtime, 3)
        runtime.event_bus.archive.prune(keep_last=1)
    db = apsw.Connection(str(path))
    assert db.execute("SELECT seq FROM fastpool_event_index").fetchall() == [(4,)]
    db.close()


# -- interrupts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["journal", "archive"])
def test_an_interrupt_anywhere_in_a_prune_leaves_all_or_nothing(tmp_path: Path, kind: str) -> None:
    template_path = tmp_path / "template.sqlite"
    with opened(kind, (str(template_path), {})) as surface:
        for seq in range(1, 6):
            if kind == "journal":
                surface.append(record("run.a", seq))
            else:
                surface.append_frame(FRAME)

    def rows(surface: Any) -> list[Any]:
        return seqs(surface, "run.a") if kind == "journal" else positions(surface)

    def prune(surface: Any) -> int:
        return surface.prune(keep_last=2) if kind == "archive" else surface.prune("run.a", keep_last=2)

    path = tmp_path / "pruned.sqlite"
    shutil.copyfile(template_path, path)
    with opened(kind, (str(path), {})) as surface:
        before = rows(surface)
        total = points(lambda: prune(surface))
        after = rows(surface)
    assert total > 10 and len(after) == 2
    for at in range(1, total + 1):
        shutil.copyfile(template_path, path)
        with opened(kind, (str(path), {})) as surface:
            injector = Injector(at)
            try:
                with injector.armed():
                    prune(surface)
            except KeyboardInterrupt:
                pass
            assert injector.fired
            no_transaction_left(path, surface._db.db)
            assert rows(surface) in (before, after), at
            prune(surface)  # a later prune goes through
            assert rows(surface) == after


# -- fastpool prune -------------------------------------------------------------------------------


def test_fastpool_prune_says_what_it_deleted(cli: Any, target: tuple[str, dict[str, str]]) -> None:
    location, options = target
    schema = ["--schema", options["schema"]] if options else []
    with opened("journal", target) as journal, opened("archive", target) as archive:
        for run_id in RUNS:
            for seq in range(1, 5):
                journal.append(record(run_id, seq))
        for _ in range(5):
            archive.append_frame(FRAME)
    code, out, err = cli("prune", location, "journal", "--run", "run.a", "--keep-last", "2", *schema)
    assert (code, err) == (0, "") and out.startswith("run_journal_records: 2 records pruned from ")
    assert out.endswith(" (each run keeps its newest)\n") and "password" not in out
    assert cli("prune", location, "journal", "--before-seq", "4", *schema)[1].startswith(
        "run_journal_records: 4 records pruned"
    )
    assert cli("prune", location, "archive", "--keep-last", "1", *schema)[1].startswith(
        "event_archive_frames: 4 frames pruned"
    )
    with opened("journal", target) as journal, opened("archive", target) as archive:
        assert seqs(journal, "run.a") == [4] and seqs(journal, "run.b") == [4]
        assert positions(archive) == ["archive.5"]


def test_fastpool_prune_refuses_what_it_cannot_do_and_creates_nothing(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    assert cli("prune", str(path), "archive", "--keep-last", "1")[1:] == (
        "",
        f"fastpool prune: error: {path}: no such database file\n",
    )
    with SqliteEventArchive.open(path) as archive:
        archive.append_frame(FRAME)
    assert cli("prune", str(path), "journal", "--keep-last", "1")[2] == (
        f"fastpool prune: error: {path}: no table run_journal_records: nothing to prune\n"
    )
    db = apsw.Connection(str(path))
    assert "run_journal_records" not in {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    code, _, err = cli("prune", str(path), "archive", "--run", "run.a", "--keep-last", "1")
    assert code == 1 and "--run: only the journal's records belong to runs" in err
    with pytest.raises(SystemExit) as usage:
        cli("prune", str(path), "archive")
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        cli("prune", str(path), "archive", "--keep-last", "0")
    assert usage.value.code == 2
