"""The tool-execution projection: Rust's table ``tool_execution_records``, a put and its row count
in one transaction; ``SqliteToolExecutionStore`` and ``PostgresToolExecutionStore``."""

from __future__ import annotations

from .. import wire
from ..errors import AgentError
from ..store_model import ToolExecutionStoreCursor, ToolExecutionStoreRecord
from ._base import PostgresSurface, Run, SqliteSurface, Surface, integer
from ._codec import decode_all, decode_stored
from ._db import to_i64

__all__ = [
    "ToolExecutionStoreSurface",
    "SqliteToolExecutionStore",
    "PostgresToolExecutionStore",
    "journal_sequence_for_cursor",
]

_UNSUPPORTED = "tool execution cursor range uses an unsupported journal cursor"


def journal_sequence_for_cursor(cursor: str) -> int | None:
    """Rust ``ToolExecutionStoreRecord::journal_sequence_for_cursor``: the text after the last
    ``.`` as a ``u64`` (``+`` allowed), ``None`` without a dot or for anything else."""
    head, dot, tail = cursor.rpartition(".")
    if not dot or not tail.removeprefix("+").isascii() or not tail.removeprefix("+").isdigit():
        return None
    value = int(tail)
    return value if value < 2**64 else None


def _bound(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    seq = journal_sequence_for_cursor(cursor)
    if seq is None:
        raise AgentError.contract_violation(_UNSUPPORTED)
    return to_i64(seq)


class ToolExecutionStoreSurface(Surface):
    """A ``ToolExecutionStore`` on a database (table ``tool_execution_records``).

    Sequences are bound as Rust's ``i64`` (``u64::MAX`` is -1; a stored seq of 2^63 or more is
    negative, sorts first and is never "after").
    """

    NAME = "tool_execution"

    def put_tool_execution_record(self, record: ToolExecutionStoreRecord) -> ToolExecutionStoreCursor:
        """Store ``record`` (replacing one of the same run, tool call and seq); return the run's
        row count after the write as the cursor's ``sequence``."""
        row = (
            record.run_id,
            record.tool_call_id,
            to_i64(record.journal_seq),
            record.idempotency_key,
            record.effect_id,
            wire.encode(record),
        )

        sql = self._sql

        def put(run: Run) -> ToolExecutionStoreCursor:
            run(sql.TOOL_PUT, row)
            return ToolExecutionStoreCursor(sequence=integer(run, sql.TOOL_COUNT, (record.run_id,)))

        return self._db.write(put)

    def records_for_run(self, run_id: str) -> list[ToolExecutionStoreRecord]:
        """The run's records by journal seq."""
        return decode_all(ToolExecutionStoreRecord, self._db.rows(self._sql.TOOL_FOR_RUN, (run_id,)))

    def record_for_tool_call(self, run_id: str, tool_call_id: str) -> ToolExecutionStoreRecord | None:
        """The tool call's record with the highest journal seq."""
        rows = self._db.rows(self._sql.TOOL_FOR_CALL, (run_id, tool_call_id))
        return decode_stored(ToolExecutionStoreRecord, rows[0][0]) if rows else None

    def records_for_idempotency_key(self, idempotency_key: str) -> list[ToolExecutionStoreRecord]:
        """The records with this key, across runs (by run id, then journal seq)."""
        return decode_all(ToolExecutionStoreRecord, self._db.rows(self._sql.TOOL_FOR_KEY, (idempotency_key,)))

    def records_for_effect_id(self, effect_id: str) -> list[ToolExecutionStoreRecord]:
        """The records of this effect, across runs (by run id, then journal seq)."""
        return decode_all(ToolExecutionStoreRecord, self._db.rows(self._sql.TOOL_FOR_EFFECT, (effect_id,)))

    def records_after_journal_seq(self, run_id: str, journal_seq: int) -> list[ToolExecutionStoreRecord]:
        """The run's records after ``journal_seq`` (compared as ``i64``)."""
        return decode_all(ToolExecutionStoreRecord, self._db.rows(self._sql.TOOL_AFTER, (run_id, to_i64(journal_seq))))

    def records_in_journal_cursor_range(
        self, run_id: str, after: str | None, through: str | None
    ) -> list[ToolExecutionStoreRecord]:
        """The run's records after ``after`` (exclusive) through ``through`` (inclusive).

        Raises ``AgentError`` (contract violation) if a cursor's text after its last ``.`` is not
        a ``u64``.
        """
        bounds = (run_id, _bound(after), _bound(through))
        return decode_all(ToolExecutionStoreRecord, self._db.rows(self._sql.TOOL_RANGE, bounds))


class SqliteToolExecutionStore(ToolExecutionStoreSurface, SqliteSurface):
    """A tool-execution store in an SQLite file, shared with Rust hosts (``ToolExecutionStoreSurface``)."""


class PostgresToolExecutionStore(ToolExecutionStoreSurface, PostgresSurface):
    """A tool-execution store in a PostgreSQL schema (``ToolExecutionStoreSurface``)."""
