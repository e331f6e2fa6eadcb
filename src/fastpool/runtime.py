"""``open_runtime``: a host runtime whose store, run journal and event bus live on one database.

The journal is the Rust crate's ``run_journal_records`` table, the bus its
``event_archive_frames`` (``ArchiveEventBus``), both beside the pool store's tables, so every
host and process on the database shares them: journal sequences and record ids are unique per
database, polls and subscriptions see every host's events, and nothing grows in memory.

The three share the store's connection, and each ``AgentPool`` call that writes is one
transaction (``store.transaction()``, on SQLite and PostgreSQL): a send's records, event
sequences, journal records and frames commit together or not at all.

>>> import tempfile, pathlib
>>> from fastpool import AgentPool, AgentPoolMember
>>> with open_runtime(pathlib.Path(tempfile.mkdtemp()) / "host.sqlite") as runtime:
...     pool = AgentPool("pool.a", runtime=runtime)
...     pool.join_run(AgentPoolMember(run_id="run.a", agent_id="agent.a"))
...     [frame.event.envelope.event_kind.value for frame in runtime.event_bus.frames]
['agent_pool_created', 'agent_pool_run_joined']
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ._open import backend_of, open_store
from .coordinator import AgentRuntime
from .events import InMemoryAgentEventBus
from .journal import InMemoryRunJournal
from .postgres import PostgresAgentPoolStore
from .sqlite import SqliteAgentPoolStore
from .surfaces._base import Database
from .surfaces._db import SurfaceDb
from .surfaces._pg_db import PgSurfaceDb
from .surfaces.archive import PostgresEventArchive, SqliteEventArchive
from .surfaces.event_bus import ArchiveEventBus
from .surfaces.journal import PostgresRunJournal, SqliteRunJournal

__all__ = ["open_runtime", "DatabaseRuntime"]


def open_runtime(target: str | os.PathLike[str], **options: Any) -> AgentRuntime:
    """Open the runtime ``target`` names, as ``open_store`` names stores; ``options`` go to the store.

    * a path or ``sqlite:///…``: a ``DatabaseRuntime`` on that file (one commit per call);
    * ``postgresql://…``: a ``DatabaseRuntime`` in the store's schema (``schema=``);
    * ``memory:``: an ``AgentRuntime`` with a new in-memory store, journal and bus (for tests).

    ``AgentPool(pool_id, runtime=rt)`` uses ``rt.store``. Closing the runtime (or leaving its
    ``with`` block) closes the store, the journal and the bus. The store's ``bounded_state``
    is on unless ``options`` say otherwise: a long-running host's memory stays flat however
    many messages its pools hold.
    """
    backend, _ = backend_of(target)
    if backend != "memory" and not options.get("readonly", False):
        options = {"bounded_state": True, **options}
    store = open_store(target, **options)
    if backend == "memory":
        return AgentRuntime(journal=InMemoryRunJournal(), event_bus=InMemoryAgentEventBus(), store=store)
    try:
        if isinstance(store, SqliteAgentPoolStore):
            return DatabaseRuntime.on_store(store)
        assert isinstance(store, PostgresAgentPoolStore)
        return DatabaseRuntime.on_store(store)
    except BaseException:
        store.close()
        raise


class DatabaseRuntime(AgentRuntime):
    """An ``AgentRuntime`` whose store, journal (``SqliteRunJournal``/``PostgresRunJournal``) and
    bus (``ArchiveEventBus``) share one database; made by ``open_runtime``.

    ``next_journal_seq`` is the database's: on SQLite the journal's largest sequence + 1, read
    inside the call's transaction; on PostgreSQL a sequence. For one host on a new database
    both give 1, 2, 3 ... as the in-memory runtime does. The three share the store's
    connection and lock, and each ``AgentPool`` call that writes is one transaction of the
    store (``transaction()``) on both backends.
    """

    def __init__(
        self,
        store: SqliteAgentPoolStore | PostgresAgentPoolStore,
        db: Database,
        journal: SqliteRunJournal | PostgresRunJournal,
        archive: SqliteEventArchive | PostgresEventArchive,
    ) -> None:
        super().__init__(journal=journal, event_bus=ArchiveEventBus(archive), store=store)
        self._db = db
        self.atomic = True

    @classmethod
    def on_store(cls, store: SqliteAgentPoolStore | PostgresAgentPoolStore) -> DatabaseRuntime:
        """A runtime on an open store's database, sharing its connection and lock (closing the
        runtime closes the store)."""
        # A surface call inside store.transaction() joins it: one commit for the three.
        if isinstance(store, SqliteAgentPoolStore):
            db = SurfaceDb(store._connection(), store._lock)
            return cls(store, db, SqliteRunJournal(db), SqliteEventArchive(db))
        shared = PgSurfaceDb.on_store(store)
        return cls(store, shared, PostgresRunJournal(shared), PostgresEventArchive(shared))

    def next_journal_seq(self) -> int:
        """The database's next journal sequence (see the class docstring)."""
        return self._db.next_journal_seq()

    def transaction(self) -> AbstractContextManager[object]:
        """The store's ``transaction()`` (joined when this thread is in one already)."""
        return self._joined()

    @contextmanager
    def _joined(self) -> Iterator[object]:
        store = self.store
        assert isinstance(store, (SqliteAgentPoolStore, PostgresAgentPoolStore))
        with store._lock:
            # Holding the lock, an open transaction is this thread's.
            if isinstance(store, SqliteAgentPoolStore):
                joined = not store._connection().getautocommit()
            else:
                joined = store._batch is not None
            if joined:
                yield store
                return
            if isinstance(store, SqliteAgentPoolStore):
                with store.transaction():
                    yield store
                return
            # The surfaces' lock first, with the BEGIN: every runtime transaction takes its locks in one order.
            db = self._db
            assert isinstance(db, PgSurfaceDb)
            with store._transaction(db.lock_statement()):
                db.hold_lock()
                yield store
