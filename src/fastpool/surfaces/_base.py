"""What every surface shares: its ``SurfaceDb``, how it opens, how it closes."""

from __future__ import annotations

import os
from typing import ClassVar, TypeVar

from ._db import SurfaceDb

__all__ = ["Surface"]

S = TypeVar("S", bound="Surface")


class Surface:
    """A surface over a ``SurfaceDb``: ``open(path)`` makes one; the constructor shares one."""

    #: The Rust crate's CREATE statements of this surface (``_sql``).
    SCHEMA: ClassVar[str] = ""

    def __init__(self, db: SurfaceDb) -> None:
        db.create(self.SCHEMA)
        self._db = db

    @classmethod
    def open(cls: type[S], path: str | os.PathLike[str]) -> S:
        """Open or create the surface's tables in the SQLite file at ``path``."""
        return cls(SurfaceDb.open(path))

    def close(self) -> None:
        """Close the connection (shared with every surface made on it)."""
        self._db.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
