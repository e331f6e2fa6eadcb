"""Several processes at once on each surface whose Rust call reads then writes (README of
fixtures/surfaces: "Not transactional"). fastpool runs each such call in one transaction, so
no call fails on a race, nothing is duplicated, lost or skipped.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import surface_workers
from test_multiprocess import run_workers

import fastpool

pytestmark = pytest.mark.slow

WORKERS, COUNT = 4, 60


def run_job(path: Path, job: str, surface: Any) -> list[list[Any]]:
    """Create the surface's tables, run ``job`` in ``WORKERS`` processes at once; each one's answers."""
    surface.open(path).close()
    reports = run_workers(
        surface_workers.mp_surface_job, [(str(path), job, worker, COUNT) for worker in range(WORKERS)]
    )
    assert [report["errors"] for report in reports] == [[]] * WORKERS
    return [report["answers"] for report in reports]


def test_journal_appends_of_the_same_records_all_succeed_once(tmp_path: Path) -> None:
    """Every process appends records 1..COUNT of one run: each gets every record's cursor (a
    stored id answers with its row), none is refused or hits the unique index, and the run
    holds each record once."""
    path = tmp_path / "journal.sqlite"
    answers = run_job(path, "journal", fastpool.SqliteRunJournal)
    assert answers == [[f"journal.{seq}" for seq in range(1, COUNT + 1)]] * WORKERS
    with fastpool.SqliteRunJournal.open(path) as journal:
        records = journal.records_for_run(surface_workers.RUN)
    assert [record.journal_seq for record in records] == list(range(1, COUNT + 1))


def test_archive_positions_are_unique_and_gap_free(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    answers = run_job(path, "archive", fastpool.SqliteEventArchive)
    seqs = [int(position.removeprefix("archive.")) for positions in answers for position in positions]
    assert sorted(seqs) == list(range(1, WORKERS * COUNT + 1))
    for positions in answers:
        assert positions == sorted(positions, key=lambda p: int(p.removeprefix("archive.")))
    with fastpool.SqliteEventArchive.open(path) as archive:
        frames = archive.frames_after(None)
    assert [frame.archive_cursor.position for frame in frames] == [
        f"archive.{n}" for n in range(1, WORKERS * COUNT + 1)
    ]


def test_checkpoint_prune_keeps_exactly_the_latest(tmp_path: Path) -> None:
    """Each process saves a checkpoint and prunes all but the latest: every prune sees one
    retained, every saved checkpoint is pruned once or is still there, and the highest
    covered one survives (Rust's separate statements could delete a checkpoint saved after
    it read the latest)."""
    path = tmp_path / "checkpoints.sqlite"
    answers = run_job(path, "checkpoint", fastpool.SqliteCheckpointStore)
    reports = [report for worker in answers for report in worker]
    assert {retained for _, _, retained in reports} == {1}
    with fastpool.SqliteCheckpointStore.open(path) as store:
        latest = store.load_latest(surface_workers.RUN)
        assert latest is not None
        assert latest.covers_journal_seq == max(covers for covers, _, _ in reports)
        remaining = store.prune(
            surface_workers.RUN, fastpool.CheckpointPrunePolicy(prune_covered_before=0, preserve_latest_terminal=False)
        )
    assert sum(pruned for _, pruned, _ in reports) + remaining.retained_count == WORKERS * COUNT


def test_content_replaced_at_once_resolves_whole(tmp_path: Path) -> None:
    """Processes replace one content id and resolve it (hash required): every answer is a
    version some process wrote, never bytes of one with the ref of another."""
    path = tmp_path / "content.sqlite"
    answers = run_job(path, "content", fastpool.SqliteContentStore)
    written = {f"worker {worker} version {n}" for worker in range(WORKERS) for n in range(COUNT)}
    assert {text for worker in answers for text in worker} <= written


def test_tool_execution_sequences_count_every_put_once(tmp_path: Path) -> None:
    """A put and the run's row count are one transaction: the cursors across processes are
    1..WORKERS*COUNT, each once (Rust's separate COUNT could repeat one)."""
    path = tmp_path / "tools.sqlite"
    answers = run_job(path, "tool_execution", fastpool.SqliteToolExecutionStore)
    assert sorted(sequence for worker in answers for sequence in worker) == list(range(1, WORKERS * COUNT + 1))
    with fastpool.SqliteToolExecutionStore.open(path) as store:
        assert len(store.records_for_run(surface_workers.RUN)) == WORKERS * COUNT


def test_provider_argument_upserts_keep_one_row_per_text(tmp_path: Path) -> None:
    path = tmp_path / "arguments.sqlite"
    answers = run_job(path, "provider_arguments", fastpool.SqliteProviderArgumentStore)
    shared = [worker[:-1] for worker in answers]
    assert all(refs == shared[0] for refs in shared)
    refs = Counter(ref for worker in answers for ref in worker)
    assert len(refs) == COUNT + WORKERS
    with fastpool.SqliteProviderArgumentStore.open(path) as store:
        for worker, refs_of_worker in enumerate(answers):
            assert store.load_provider_arguments_json(refs_of_worker[-1]) == {"worker": worker}
            assert [store.load_provider_arguments_json(ref) for ref in refs_of_worker[:-1]] == [
                {"n": n} for n in range(COUNT)
            ]
