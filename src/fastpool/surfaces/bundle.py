"""``SqliteStoreBundle``: every surface and the agent pool store on one SQLite file."""

from __future__ import annotations

import os
from pathlib import Path

from ..sqlite import SqliteAgentPoolStore
from . import _sql
from ._db import SurfaceDb
from .archive import SqliteEventArchive
from .checkpoint import SqliteCheckpointStore
from .content import SqliteContentStore
from .journal import SqliteRunJournal
from .provider_arguments import SqliteProviderArgumentStore
from .tool_execution import SqliteToolExecutionStore

__all__ = ["SqliteStoreBundle"]


class SqliteStoreBundle:
    """The crate's stores on one file, as Rust's bundle opens them.

    ``open`` creates the tables in Rust's order (journal, checkpoints, content, event archive,
    provider arguments, tool execution, agent pool), so ``sqlite_master`` reads as Rust's. Each
    accessor returns a new adapter on the bundle's one connection (Rust: on its one file);
    ``agent_pool()`` the bundle's ``SqliteAgentPoolStore``.

    >>> import tempfile, pathlib
    >>> with SqliteStoreBundle.open(pathlib.Path(tempfile.mkdtemp()) / "host.sqlite") as bundle:
    ...     bundle.provider_arguments().store_provider_arguments("provider.a", "call.1", "tool", "{}")
    'content.provider_arguments.44136fa355b3678a1146ad16'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._db = SurfaceDb.open(self._path)
        try:
            for surface in (self.journal, self.checkpoints, self.content, self.event_archive):
                surface()
            self.provider_arguments()
            self.tool_execution()
            self._db.create(_sql.AGENT_POOL_SCHEMA)  # Rust's text first: the pool store then adds nothing
            self._agent_pool = SqliteAgentPoolStore(self._path)
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SqliteStoreBundle:
        """Open or create every store's tables in the SQLite file at ``path``."""
        return cls(path)

    def path(self) -> Path:
        """The database file."""
        return self._path

    def journal(self) -> SqliteRunJournal:
        """A run journal on the bundle's file."""
        return SqliteRunJournal(self._db)

    def checkpoints(self) -> SqliteCheckpointStore:
        """A checkpoint store on the bundle's file."""
        return SqliteCheckpointStore(self._db)

    def content(self) -> SqliteContentStore:
        """A content store on the bundle's file."""
        return SqliteContentStore(self._db)

    def event_archive(self) -> SqliteEventArchive:
        """An event archive on the bundle's file."""
        return SqliteEventArchive(self._db)

    def provider_arguments(self) -> SqliteProviderArgumentStore:
        """A provider argument store on the bundle's file."""
        return SqliteProviderArgumentStore(self._db)

    def tool_execution(self) -> SqliteToolExecutionStore:
        """A tool-execution projection store on the bundle's file."""
        return SqliteToolExecutionStore(self._db)

    def agent_pool(self) -> SqliteAgentPoolStore:
        """The bundle's agent pool store."""
        return self._agent_pool

    def close(self) -> None:
        """Close the bundle's connections (every adapter it gave out)."""
        self._agent_pool.close()
        self._db.close()

    def __enter__(self) -> SqliteStoreBundle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStoreBundle({str(self._path)!r})"
