"""Several processes at once on each surface whose Rust call reads then writes (README of
fixtures/surfaces: "Not transactional"), on an SQLite file and on a PostgreSQL schema.
fastpool runs each such call in one transaction, so no call fails on a race, and nothing is
duplicated, lost or skipped. (With each statement on its own, as Rust runs them, the journal,
archive, checkpoint and tool-execution tests fail: a refused append, a UNIQUE violation, a
prune that kept none, a repeated count.)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import surface_workers
from surface_workers import RUN, open_surface
from test_multiprocess import run_workers

import fastpool

pytestmark = pytest.mark.slow

WORKERS, COUNT = 4, 60


@pytest.fixture(params=["file", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """An SQLite file path, or ``(conninfo, schema)`` of a fresh PostgreSQL schema."""
    if request.param == "file":
        return str(tmp_path / "surfaces.sqlite")
    server = request.getfixturevalue("pg_server")
    return (server.conninfo, request.getfixturevalue("pg_schema"))


def run_job(target: Any, job: str, kind: str) -> list[list[Any]]:
    """Create the surface's tables, run ``job`` in ``WORKERS`` processes at once; each one's answers."""
    open_surface(kind, target).close()
    reports = run_workers(surface_workers.mp_surface_job, [(target, job, worker, COUNT) for worker in range(WORKERS)])
    assert [report["errors"] for report in reports] == [[]] * WORKERS
    return [report["answers"] for report in reports]


def test_journal_appends_of_the_same_records_all_succeed_once(target: Any) -> None:
    """Every process appends records 1..COUNT of one run: each gets every record's cursor (a
    stored id answers with its row), none is refused or hits the unique index, and the run
    holds each record once."""
    answers = run_job(target, "journal", "RunJournal")
    assert answers == [[f"journal.{seq}" for seq in range(1, COUNT + 1)]] * WORKERS
    with open_surface("RunJournal", target) as journal:
        records = journal.records_for_run(RUN)
    assert [record.journal_seq for record in records] == list(range(1, COUNT + 1))


def test_archive_positions_are_unique_and_gap_free(target: Any) -> None:
    answers = run_job(target, "archive", "EventArchive")
    seqs = [int(position.removeprefix("archive.")) for positions in answers for position in positions]
    assert sorted(seqs) == list(range(1, WORKERS * COUNT + 1))
    for positions in answers:
        assert positions == sorted(positions, key=lambda p: int(p.removeprefix("archive.")))
    with open_surface("EventArchive", target) as archive:
        frames = archive.frames_after(None)
    positions = [frame.archive_cursor.position for frame in frames]
    assert positions == [f"archive.{n}" for n in range(1, WORKERS * COUNT + 1)]


def test_checkpoint_prune_keeps_exactly_the_latest(target: Any) -> None:
    """Each process saves a checkpoint and prunes all but the latest: every prune sees one
    retained, every saved checkpoint is pruned once or is still there, and the highest
    covered one survives (Rust's separate statements could delete a checkpoint saved after
    it read the latest)."""
    answers = run_job(target, "checkpoint", "CheckpointStore")
    reports = [report for worker in answers for report in worker]
    assert {retained for _, _, retained in reports} == {1}
    everything = fastpool.CheckpointPrunePolicy(prune_covered_before=0, preserve_latest_terminal=False)
    with open_surface("CheckpointStore", target) as store:
        latest = store.load_latest(RUN)
        assert latest is not None
        assert latest.covers_journal_seq == max(covers for covers, _, _ in reports)
        remaining = store.prune(RUN, everything)
    assert sum(pruned for _, pruned, _ in reports) + remaining.retained_count == WORKERS * COUNT


def test_content_replaced_at_once_resolves_whole(target: Any) -> None:
    """Processes replace one content id and resolve it (hash required): every answer is a
    version some process wrote, never bytes of one with the ref of another."""
    answers = run_job(target, "content", "ContentStore")
    written = {f"worker {worker} version {n}" for worker in range(WORKERS) for n in range(COUNT)}
    assert {text for worker in answers for text in worker} <= written


def test_tool_execution_sequences_count_every_put_once(target: Any) -> None:
    """A put and the run's row count are one transaction: the cursors across processes are
    1..WORKERS*COUNT, each once (Rust's separate COUNT could repeat one)."""
    answers = run_job(target, "tool_execution", "ToolExecutionStore")
    assert sorted(sequence for worker in answers for sequence in worker) == list(range(1, WORKERS * COUNT + 1))
    with open_surface("ToolExecutionStore", target) as store:
        assert len(store.records_for_run(RUN)) == WORKERS * COUNT


def test_provider_argument_upserts_keep_one_row_per_text(target: Any) -> None:
    answers = run_job(target, "provider_arguments", "ProviderArgumentStore")
    shared = [worker[:-1] for worker in answers]
    assert all(refs == shared[0] for refs in shared)
    assert len(Counter(ref for worker in answers for ref in worker)) == COUNT + WORKERS
    with open_surface("ProviderArgumentStore", target) as store:
        for worker, refs in enumerate(answers):
            assert store.load_provider_arguments_json(refs[-1]) == {"worker": worker}
            assert [store.load_provider_arguments_json(ref) for ref in refs[:-1]] == [{"n": n} for n in range(COUNT)]
