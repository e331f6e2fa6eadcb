"""The Rust crate's other SQLite surfaces, byte-compatible with it, one module per surface.

Each class has ``open(path)``, Rust's method and parameter names, and model classes for
arguments and results; a Rust host and fastpool share one file both ways (same tables, same
JSON). Unlike Rust, a call that reads then writes is one transaction.
"""

from __future__ import annotations

from ._db import SurfaceDb
from .archive import SqliteEventArchive
from .bundle import SqliteStoreBundle
from .checkpoint import SqliteCheckpointStore
from .content import SqliteContentStore
from .journal import SqliteRunJournal
from .provider_arguments import SqliteProviderArgumentStore
from .tool_execution import SqliteToolExecutionStore

__all__ = [
    "SqliteCheckpointStore",
    "SqliteContentStore",
    "SqliteEventArchive",
    "SqliteProviderArgumentStore",
    "SqliteRunJournal",
    "SqliteStoreBundle",
    "SqliteToolExecutionStore",
    "SurfaceDb",
]
