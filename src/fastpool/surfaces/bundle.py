"""The store bundles: every surface and the agent pool store on one SQLite file or one
PostgreSQL schema, and ``open_bundle(target)`` that picks the backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from .._open import backend_of
from ..errors import InvalidInput
from ..postgres import PostgresAgentPoolStore
from ..sqlite import SqliteAgentPoolStore
from ._base import Database
from ._db import SurfaceDb
from .archive import EventArchiveSurface, PostgresEventArchive, SqliteEventArchive
from .checkpoint import CheckpointStoreSurface, PostgresCheckpointStore, SqliteCheckpointStore
from .content import ContentStoreSurface, PostgresContentStore, SqliteContentStore
from .journal import PostgresRunJournal, RunJournalSurface, SqliteRunJournal
from .provider_arguments import (
    PostgresProviderArgumentStore,
    ProviderArgumentStoreSurface,
    SqliteProviderArgumentStore,
)
from .tool_execution import PostgresToolExecutionStore, SqliteToolExecutionStore, ToolExecutionStoreSurface

__all__ = ["StoreBundle", "SqliteStoreBundle", "PostgresStoreBundle", "open_bundle"]


class StoreBundle:
    """The crate's stores on one database, as Rust's bundle opens them.

    Opening creates the tables in Rust's order (journal, checkpoints, content, event archive,
    provider arguments, tool execution, agent pool). Each accessor returns a new adapter on
    the bundle's one connection (Rust: on its one file); ``agent_pool()`` the bundle's store.
    """

    _journal: ClassVar[type[RunJournalSurface]]
    _checkpoints: ClassVar[type[CheckpointStoreSurface]]
    _content: ClassVar[type[ContentStoreSurface]]
    _event_archive: ClassVar[type[EventArchiveSurface]]
    _provider_arguments: ClassVar[type[ProviderArgumentStoreSurface]]
    _tool_execution: ClassVar[type[ToolExecutionStoreSurface]]

    def __init__(self, db: Database, open_agent_pool: Any) -> None:
        self._db = db
        try:
            for accessor in (
                self.journal,
                self.checkpoints,
                self.content,
                self.event_archive,
                self.provider_arguments,
                self.tool_execution,
            ):
                accessor()
            self._agent_pool: SqliteAgentPoolStore | PostgresAgentPoolStore = open_agent_pool()
        except BaseException:
            db.close()
            raise

    def journal(self) -> RunJournalSurface:
        """A run journal on the bundle's database."""
        return self._journal(self._db)

    def checkpoints(self) -> CheckpointStoreSurface:
        """A checkpoint store on the bundle's database."""
        return self._checkpoints(self._db)

    def content(self) -> ContentStoreSurface:
        """A content store on the bundle's database."""
        return self._content(self._db)

    def event_archive(self) -> EventArchiveSurface:
        """An event archive on the bundle's database."""
        return self._event_archive(self._db)

    def provider_arguments(self) -> ProviderArgumentStoreSurface:
        """A provider argument store on the bundle's database."""
        return self._provider_arguments(self._db)

    def tool_execution(self) -> ToolExecutionStoreSurface:
        """A tool-execution projection store on the bundle's database."""
        return self._tool_execution(self._db)

    def agent_pool(self) -> SqliteAgentPoolStore | PostgresAgentPoolStore:
        """The bundle's agent pool store."""
        return self._agent_pool

    def close(self) -> None:
        """Close the bundle's connections (every adapter it gave out)."""
        self._agent_pool.close()
        self._db.close()

    def __enter__(self) -> StoreBundle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SqliteStoreBundle(StoreBundle):
    """Every store on one SQLite file, which reads as one Rust's bundle wrote.

    The agent pool tables are created with the Rust crate's text before fastpool's pool store
    opens the file, which then adds nothing of its own: ``sqlite_master`` is Rust's.

    >>> import tempfile, pathlib
    >>> with SqliteStoreBundle.open(pathlib.Path(tempfile.mkdtemp()) / "host.sqlite") as bundle:
    ...     bundle.provider_arguments().store_provider_arguments("provider.a", "call.1", "tool", "{}")
    'content.provider_arguments.44136fa355b3678a1146ad16'
    """

    _journal = SqliteRunJournal
    _checkpoints = SqliteCheckpointStore
    _content = SqliteContentStore
    _event_archive = SqliteEventArchive
    _provider_arguments = SqliteProviderArgumentStore
    _tool_execution = SqliteToolExecutionStore

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        db = SurfaceDb.open(self._path)

        def open_agent_pool() -> SqliteAgentPoolStore:
            db.create("agent_pool")
            return SqliteAgentPoolStore(self._path)

        super().__init__(db, open_agent_pool)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SqliteStoreBundle:
        """Open or create every store's tables in the SQLite file at ``path``."""
        return cls(path)

    def path(self) -> Path:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"SqliteStoreBundle({str(self._path)!r})"


class PostgresStoreBundle(StoreBundle):
    """Every store in one PostgreSQL schema (created if missing)."""

    _journal = PostgresRunJournal
    _checkpoints = PostgresCheckpointStore
    _content = PostgresContentStore
    _event_archive = PostgresEventArchive
    _provider_arguments = PostgresProviderArgumentStore
    _tool_execution = PostgresToolExecutionStore

    def __init__(self, conninfo: str, *, schema: str = "public") -> None:
        from ._pg_db import PgSurfaceDb  # psycopg is needed only here

        self._schema = schema
        super().__init__(
            PgSurfaceDb.open(conninfo, schema=schema), lambda: PostgresAgentPoolStore(conninfo, schema=schema)
        )

    @classmethod
    def open(cls, conninfo: str, *, schema: str = "public") -> PostgresStoreBundle:
        """Open or create every store's tables in ``schema`` of the database ``conninfo`` names."""
        return cls(conninfo, schema=schema)

    def __repr__(self) -> str:
        return f"PostgresStoreBundle(schema={self._schema!r})"


def open_bundle(target: str | os.PathLike[str], **options: Any) -> StoreBundle:
    """The bundle of every store at ``target``, named as for ``open_store``: a path or
    ``sqlite:///…`` (``SqliteStoreBundle``), ``postgresql://…`` (``PostgresStoreBundle``;
    ``schema=`` as an option)."""
    backend, location = backend_of(target)
    if backend == "postgres":
        return PostgresStoreBundle(location, **options)
    if backend == "memory":
        raise InvalidInput("target: the store bundle is durable; memory: has no bundle")
    return SqliteStoreBundle(location, **options)
