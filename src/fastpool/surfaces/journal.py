"""The run journal: Rust's table ``run_journal_records``, atomic per append; ``SqliteRunJournal`` and
``PostgresRunJournal``.

>>> import tempfile, pathlib
>>> from fastpool import AgentPool, AgentRuntime, AgentPoolMember, InMemoryAgentEventBus
>>> journal = SqliteRunJournal.open(pathlib.Path(tempfile.mkdtemp()) / "host.sqlite")
>>> pool = AgentPool("pool.a", runtime=AgentRuntime(journal=journal, event_bus=InMemoryAgentEventBus()))
>>> pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
>>> [record.journal_seq for record in journal.records_for_run("run.a")]
[1, 2]
>>> journal.close()
"""

from __future__ import annotations

from .. import wire
from ..enums import AgentErrorKind, RetryClassification
from ..errors import AgentError, InvalidInput
from ..journal import JOURNAL_SCHEMA_VERSION
from ..model import JournalRecord
from ._base import PostgresSurface, Run, SqliteSurface, Surface, integer, retention
from ._codec import decode_all
from ._db import to_i64, to_u64

__all__ = ["RunJournalSurface", "SqliteRunJournal", "PostgresRunJournal"]


def _journal_error(message: str) -> AgentError:
    return AgentError(AgentErrorKind.JOURNAL_FAILURE, RetryClassification.REPAIR_NEEDED, message)


class RunJournalSurface(Surface):
    """A ``RunJournal`` (and Rust ``RunJournalReader``) on a database (table ``run_journal_records``).

    ``append`` is idempotent by ``(run_id, record_id)``: a stored id answers with its row's
    cursor and writes nothing, whatever the new record holds. Otherwise ``journal_seq`` must
    exceed the run's largest (gaps are fine). The check and the insert are one transaction.
    """

    NAME = "journal"

    def append(self, record: JournalRecord) -> str:
        """Append ``record``; return its cursor ``journal.<seq>`` (the stored row's for a known id).

        Raises ``AgentError`` ``JOURNAL_FAILURE`` for a schema version other than 1 (checked
        first) or a ``journal_seq`` not above the run's largest.
        """
        if record.journal_schema_version != JOURNAL_SCHEMA_VERSION:
            raise _journal_error("journal record schema version mismatch")
        text = wire.encode(record)

        sql = self._sql

        sequence = record.journal_seq
        params = (record.run_id, to_i64(sequence), record.record_id, text)

        def append(run: Run) -> str:
            # PostgreSQL: the common case in one round trip (a new id above the run's largest, below 2^63).
            if sql.JOURNAL_APPEND is not None and sequence < 2**63 and run(sql.JOURNAL_APPEND, params):
                return f"journal.{sequence}"
            existing, latest = run(sql.JOURNAL_CHECK, (record.run_id, record.record_id))[0]
            if existing is not None:
                return f"journal.{existing}"  # Rust prints the stored i64 as it is
            if sequence <= to_u64(latest):
                raise _journal_error("journal_seq must be strictly increasing for a run journal")
            run(sql.JOURNAL_INSERT, params)
            return f"journal.{sequence}"

        return self._db.write(append)

    def records_for_run(self, run_id: str) -> list[JournalRecord]:
        """The run's records by ``journal_seq`` as SQLite orders it (signed: 2^63 and above first)."""
        return decode_all(JournalRecord, self._db.rows(self._sql.JOURNAL_FOR_RUN, (run_id,)))

    def records_after(self, run_id: str, after_journal_seq: int) -> list[JournalRecord]:
        """The run's records with ``journal_seq > after_journal_seq``; every record of the run is
        decoded first (Rust's trait default), so a corrupt one fails the call wherever it is."""
        return [record for record in self.records_for_run(run_id) if record.journal_seq > after_journal_seq]

    def prune(self, run_id: str | None = None, *, before_seq: int | None = None, keep_last: int | None = None) -> int:
        """Delete old records of ``run_id`` (of every run for ``None``), in one transaction; return
        how many. Beyond the Rust crate, which has no delete.

        ``before_seq``: the records with ``journal_seq`` below it; ``keep_last``: all but the
        ``keep_last`` newest (as ``records_for_run`` orders them). Give exactly one. Each run's
        newest record is always kept, so its ``journal_seq`` goes on increasing (and the
        database's next sequence, ``DatabaseRuntime.next_journal_seq``, never goes back).

        Afterwards the records are simply gone, for fastpool and for a Rust host on the same
        file: ``records_for_run`` and ``records_after`` return the rest. An ``append`` of a pruned
        ``record_id`` is no longer recognised as a repeat: it fails as any ``journal_seq`` not
        above the run's newest does. Prune only what no retry will append again.
        """
        if run_id is not None and not isinstance(run_id, str):
            raise InvalidInput(f"run_id: expected a string or None, got {type(run_id).__name__}")
        keep, below = retention(before_seq, keep_last)
        sql = self._sql
        params = (run_id, keep, below)

        def prune(run: Run) -> int:
            count = integer(run, sql.JOURNAL_PRUNE_COUNT, params)
            if count:
                run(sql.JOURNAL_PRUNE, params)
            return count

        return self._db.write(prune)


class SqliteRunJournal(RunJournalSurface, SqliteSurface):
    """A run journal in an SQLite file, shared with Rust hosts (``RunJournalSurface``)."""


class PostgresRunJournal(RunJournalSurface, PostgresSurface):
    """A run journal in a PostgreSQL schema (``RunJournalSurface``)."""
