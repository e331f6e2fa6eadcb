"""Run journals: where ``AgentPool`` appends one ``JournalRecord`` per transition.

``RunJournal`` is the port a host provides; ``InMemoryRunJournal`` behaves as the Rust SDK's test
journal (``FakeJournalStore``), which the Rust build's recorded flows used.

>>> from fastpool import AgentPool, AgentRuntime, AgentPoolMember, InMemoryAgentEventBus
>>> journal = InMemoryRunJournal()
>>> pool = AgentPool("pool.a", runtime=AgentRuntime(journal=journal, event_bus=InMemoryAgentEventBus()))
>>> pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
>>> [(cursor, record.payload.lifecycle_status.value) for cursor, record in journal.entries]
[('journal.1', 'created'), ('journal.2', 'run_joined')]
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError
from .model import JournalRecord

__all__ = ["RunJournal", "InMemoryRunJournal"]

#: The journal schema version the records carry (Rust ``JOURNAL_SCHEMA_VERSION``).
JOURNAL_SCHEMA_VERSION = 1


@runtime_checkable
class RunJournal(Protocol):
    """The journal port: appends a record and returns its cursor (a ``JournalCursor`` string).

    Receipts and registrations carry the cursor, so it must name the record for the host. A
    failure is an ``AgentError``; ``AgentPool`` passes it on unchanged.
    """

    def append(self, record: JournalRecord) -> str:
        """Append ``record``; return its cursor."""
        ...


class InMemoryRunJournal:
    """A journal in memory with the Rust test journal's rules; safe to share between threads.

    Cursors are ``journal.{k}``, ``k`` the number of records held after the append. A record
    whose ``journal_seq`` is not the number held + 1 is refused (``AgentError.contract_violation``
    "journal_seq must be monotonic within fake journal"), as is a schema version other than 1.
    One runtime feeds one journal: its ``next_journal_seq`` numbers the records.
    """

    def __init__(self) -> None:
        #: ``(cursor, record)`` in append order.
        self.entries: list[tuple[str, JournalRecord]] = []
        self._failure: str | None = None
        self._lock = threading.Lock()

    def append(self, record: JournalRecord) -> str:
        """Append ``record`` and return ``journal.{k}``; raise as described in the class docstring."""
        with self._lock:
            if self._failure is not None:
                message, self._failure = self._failure, None
                raise AgentError(AgentErrorKind.JOURNAL_FAILURE, RetryClassification.REPAIR_NEEDED, message)
            if record.journal_schema_version != JOURNAL_SCHEMA_VERSION:
                raise AgentError.contract_violation("journal record schema version mismatch")
            if record.journal_seq != len(self.entries) + 1:
                raise AgentError.contract_violation("journal_seq must be monotonic within fake journal")
            cursor = f"journal.{len(self.entries) + 1}"
            self.entries.append((cursor, record))
            return cursor

    def fail_next_append(self, message: str) -> None:
        """Make the next ``append`` raise ``AgentError(JOURNAL_FAILURE, REPAIR_NEEDED, message)``."""
        with self._lock:
            self._failure = message

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"InMemoryRunJournal({len(self.entries)} records)"
