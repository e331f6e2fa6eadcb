"""The checkpoint store: Rust's table ``checkpoints``; ``prune`` is one transaction (Rust reads the
latest, lists, counts and deletes on its own); ``SqliteCheckpointStore`` and ``PostgresCheckpointStore``."""

from __future__ import annotations

import re

from .. import wire
from ..errors import AgentError
from ..store_model import CheckpointPrunePolicy, CheckpointPruneReport, CheckpointSaveOutcome, RunCheckpoint
from ._base import PostgresSurface, Run, SqliteSurface, Surface, integer
from ._codec import decode_stored
from ._db import to_i64

__all__ = ["CheckpointStoreSurface", "SqliteCheckpointStore", "PostgresCheckpointStore"]

# Rust's u64 parser: an optional "+", ASCII digits, nothing else.
_U64 = re.compile(r"\+?[0-9]+")


def _cursor_seq(cursor: str) -> int:
    """The seq of a journal cursor as Rust reads it: ``journal.`` stripped once, a ``u64``, 0 when
    that fails (overflow included)."""
    text = cursor.removeprefix("journal.")
    if _U64.fullmatch(text) is None or int(text) >= 2**64:
        return 0
    return int(text)


def _first(rows: list[tuple[str, ...]]) -> RunCheckpoint | None:
    return decode_stored(RunCheckpoint, rows[0][0]) if rows else None


class CheckpointStoreSurface(Surface):
    """A ``CheckpointStore`` on a database (table ``checkpoints``).

    The column ``latest_journal_seq`` holds the checkpoint's ``covers_journal_seq`` (signed: a
    seq of 2^63 or more is stored negative and sorts first, as in Rust).
    """

    NAME = "checkpoint"

    def save(self, checkpoint: RunCheckpoint, latest_journal_seq: int) -> CheckpointSaveOutcome:
        """Store ``checkpoint`` (replacing one of the same run and id).

        Raises ``AgentError`` (contract violation) if it covers more than ``latest_journal_seq``.
        """
        if checkpoint.covers_journal_seq > latest_journal_seq:
            raise AgentError.contract_violation(
                "checkpoint covers_journal_seq cannot point past latest committed journal record"
            )
        row = (checkpoint.run_id, checkpoint.checkpoint_id, to_i64(checkpoint.covers_journal_seq))
        text = wire.encode(checkpoint)
        sql = self._sql.CHECKPOINT_SAVE
        self._db.write(lambda run: run(sql, (*row, text)))
        terminal = (
            not checkpoint.pending_side_effects
            and not checkpoint.pending_approvals
            and checkpoint.loop_state == "terminal"
        )
        return CheckpointSaveOutcome(
            checkpoint_ref=checkpoint.checkpoint_id,
            covers_journal_seq=checkpoint.covers_journal_seq,
            terminal_checkpoint=terminal,
        )

    def load_latest(self, run_id: str) -> RunCheckpoint | None:
        """The run's checkpoint with the highest covered seq (on a tie, the one written last)."""
        return _first(self._db.rows(self._sql.CHECKPOINT_LATEST, (run_id,)))

    def load_at_or_before(self, run_id: str, cursor: str) -> RunCheckpoint | None:
        """The latest checkpoint covering at most ``cursor``'s seq (a cursor that does not parse: 0)."""
        return _first(self._db.rows(self._sql.CHECKPOINT_AT_OR_BEFORE, (run_id, to_i64(_cursor_seq(cursor)))))

    def prune(self, run_id: str, policy: CheckpointPrunePolicy) -> CheckpointPruneReport:
        """Delete the run's checkpoints covering less than ``policy.prune_covered_before``.

        With ``preserve_latest_terminal`` the latest checkpoint is kept, terminal or not (Rust's
        rule), and named in the report even if nothing was pruned.
        """

        sql = self._sql

        def prune(run: Run) -> CheckpointPruneReport:
            latest = _first(run(sql.CHECKPOINT_LATEST, (run_id,)))
            keep = None if latest is None else latest.checkpoint_id
            prunable = run(sql.CHECKPOINT_PRUNABLE, (run_id, to_i64(policy.prune_covered_before)))
            before = integer(run, sql.CHECKPOINT_COUNT, (run_id,))
            deleted = 0
            for (checkpoint_id,) in prunable:
                if policy.preserve_latest_terminal and checkpoint_id == keep:
                    continue
                deleted += len(run(sql.CHECKPOINT_DELETE, (run_id, checkpoint_id)))
            return CheckpointPruneReport(
                run_id=run_id,
                pruned_count=deleted,
                retained_count=max(before - deleted, 0),
                preserved_terminal_checkpoint=keep if policy.preserve_latest_terminal else None,
            )

        return self._db.write(prune)


class SqliteCheckpointStore(CheckpointStoreSurface, SqliteSurface):
    """A checkpoint store in an SQLite file, shared with Rust hosts (``CheckpointStoreSurface``)."""


class PostgresCheckpointStore(CheckpointStoreSurface, PostgresSurface):
    """A checkpoint store in a PostgreSQL schema (``CheckpointStoreSurface``; a tie on the
    covered sequence goes to the checkpoint saved last, as in SQLite)."""
