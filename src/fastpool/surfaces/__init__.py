"""The Rust crate's other stores, byte-compatible with it, one module per surface.

Each surface's logic is written once (``RunJournalSurface`` …) over a database; its SQLite
class (``SqliteRunJournal`` …) shares files with Rust hosts both ways (same tables, same
JSON), its PostgreSQL twin (``PostgresRunJournal`` …) keeps the same contract in a schema.
Unlike Rust, a call that reads then writes is one transaction.
"""

from __future__ import annotations

from ._db import SurfaceDb
from .archive import EventArchiveSurface, PostgresEventArchive, SqliteEventArchive
from .bundle import PostgresStoreBundle, SqliteStoreBundle, StoreBundle, open_bundle
from .checkpoint import CheckpointStoreSurface, PostgresCheckpointStore, SqliteCheckpointStore
from .content import ContentStoreSurface, PostgresContentStore, SqliteContentStore
from .event_bus import ArchiveEventBus
from .journal import PostgresRunJournal, RunJournalSurface, SqliteRunJournal
from .provider_arguments import (
    PostgresProviderArgumentStore,
    ProviderArgumentStoreSurface,
    SqliteProviderArgumentStore,
)
from .tool_execution import PostgresToolExecutionStore, SqliteToolExecutionStore, ToolExecutionStoreSurface

__all__ = [
    "ArchiveEventBus",
    "CheckpointStoreSurface",
    "ContentStoreSurface",
    "EventArchiveSurface",
    "PostgresCheckpointStore",
    "PostgresContentStore",
    "PostgresEventArchive",
    "PostgresProviderArgumentStore",
    "PostgresRunJournal",
    "PostgresStoreBundle",
    "PostgresToolExecutionStore",
    "ProviderArgumentStoreSurface",
    "RunJournalSurface",
    "SqliteCheckpointStore",
    "SqliteContentStore",
    "SqliteEventArchive",
    "SqliteProviderArgumentStore",
    "SqliteRunJournal",
    "SqliteStoreBundle",
    "SqliteToolExecutionStore",
    "StoreBundle",
    "SurfaceDb",
    "ToolExecutionStoreSurface",
    "open_bundle",
]
