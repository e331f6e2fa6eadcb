"""What every surface shares: the database it runs on, how it opens on each backend, closing.

A surface's logic is written once over ``Database`` (statements by name from the backend's
``sql`` module, reads, and writes as one transaction); ``SqliteSurface`` and
``PostgresSurface`` only say how ``open`` reaches a file or a schema.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, ClassVar, Protocol, TypeVar

from ..errors import InvalidInput
from ._db import SurfaceDb

__all__ = ["Database", "Run", "Surface", "SqliteSurface", "PostgresSurface", "integer", "retention"]

T = TypeVar("T")
S = TypeVar("S", bound="Surface")
#: Runs one statement inside a write transaction: ``run(sql, params) -> rows``.
Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


class Database(Protocol):
    """A backend the surfaces run on (``SurfaceDb``, ``PgSurfaceDb``)."""

    @property
    def sql(self) -> ModuleType:
        """The backend's statements, by the names of ``_sql``."""
        ...

    def create(self, name: str) -> None: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def write(self, body: Callable[[Run], T]) -> T: ...

    def next_journal_seq(self) -> int: ...

    def next_archive_seq(self, run: Run) -> int: ...

    def close(self) -> None: ...


def integer(run: Run, sql: str, params: Sequence[Any] = ()) -> int:
    """The one integer a ``COUNT``/``MAX`` statement returns."""
    value = run(sql, params)[0][0]
    assert isinstance(value, int)
    return value


def retention(before_seq: Any, keep_last: Any) -> tuple[int, int | None]:
    """A ``prune``'s arguments, checked: ``(keep, below)``, keep the ``keep`` newest rows and,
    of the older ones, delete those numbered below ``below`` (``None``: all of them)."""
    if (before_seq is None) == (keep_last is None):
        raise InvalidInput("before_seq, keep_last: expected exactly one of them")
    if keep_last is not None:
        if type(keep_last) is not int or keep_last < 1:
            raise InvalidInput(f"keep_last: expected a positive int, got {keep_last!r}")
        return keep_last, None
    if type(before_seq) is not int or not 0 <= before_seq < 2**63:
        raise InvalidInput(f"before_seq: expected an int from 0 to 2**63 - 1, got {before_seq!r}")
    return 1, before_seq


class Surface:
    """A surface over a ``Database``: the constructor shares one (a bundle's, a store's)."""

    #: Which of the backend's ``SCHEMAS`` this surface creates.
    NAME: ClassVar[str] = ""

    def __init__(self, db: Database) -> None:
        db.create(self.NAME)
        self._db = db
        self._sql = db.sql

    def close(self) -> None:
        """Close the connection (shared with every surface made on it)."""
        self._db.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SqliteSurface(Surface):
    """A surface in an SQLite file, shared with Rust hosts."""

    @classmethod
    def open(cls: type[S], path: str | os.PathLike[str]) -> S:
        """Open or create the surface's tables in the SQLite file at ``path``."""
        return cls(SurfaceDb.open(path))


class PostgresSurface(Surface):
    """A surface in a PostgreSQL schema (created if missing)."""

    @classmethod
    def open(cls: type[S], conninfo: str, *, schema: str = "public") -> S:
        """Open or create the surface's tables in ``schema`` of the database ``conninfo`` names."""
        from ._pg_db import PgSurfaceDb  # psycopg is needed only here

        return cls(PgSurfaceDb.open(conninfo, schema=schema))
