"""The surfaces' tables whole, as ``fastpool export``, ``verify`` and ``copy`` handle them: each
table's rows read in key order, each row decoded as its surface decodes it, rows copied between
two databases byte for byte.

Reading is read only (``_inventory``'s connections: ``sqlite.open_readonly``, a plain psycopg
connection that creates nothing); a copy writes through the destination's surface database
(``SurfaceDb``, ``PgSurfaceDb``), which creates the tables with the surfaces' own text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import apsw

from .._sqlite_file import open_readonly
from ..errors import AgentError, InvalidInput
from ..model import EventFrame, JournalRecord
from ..postgres import _driver, _quote
from ..store_model import ContentReference, RunCheckpoint, ToolExecutionStoreRecord
from . import _pg_sql, _sql
from ._base import Database
from ._codec import decode_stored
from ._db import sqlite_error
from ._json import parse_value

__all__ = ["Table", "TABLES", "Source", "open_source", "row_problems", "copy_tables"]


@dataclass(frozen=True)
class Table:
    """A surface table: its columns in ``CREATE`` order, its key, the surface that creates it and
    the column that holds a model object's JSON (``model``: its class)."""

    name: str
    surface: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    json: str | None = None
    model: Any = None

    def shown_key(self, row: Sequence[Any]) -> str:
        """The row's key as a problem line names it: ``run_id='run.a', journal_seq=3``."""
        return ", ".join(f"{name}={row[self.columns.index(name)]!r}" for name in self.key)

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(name)] for name in self.key)


#: In ``_sql.TABLES``' order (the bundle's).
TABLES = (
    Table(
        "run_journal_records",
        "journal",
        ("run_id", "journal_seq", "record_id", "record_json"),
        ("run_id", "journal_seq"),
        "record_json",
        JournalRecord,
    ),
    Table(
        "checkpoints",
        "checkpoint",
        ("run_id", "checkpoint_id", "latest_journal_seq", "checkpoint_json"),
        ("run_id", "checkpoint_id"),
        "checkpoint_json",
        RunCheckpoint,
    ),
    Table(
        "content",
        "content",
        ("content_ref", "content_json", "bytes", "byte_len"),
        ("content_ref",),
        "content_json",
        ContentReference,
    ),
    Table("event_archive_frames", "archive", ("seq", "event_id", "frame_json"), ("seq",), "frame_json", EventFrame),
    Table(
        "provider_arguments",
        "provider_arguments",
        ("content_ref", "provider_ref", "call_id", "canonical_tool_name", "raw_arguments"),
        ("content_ref",),
    ),
    Table(
        "tool_execution_records",
        "tool_execution",
        ("run_id", "tool_call_id", "journal_seq", "idempotency_key", "effect_id", "record_json"),
        ("run_id", "tool_call_id", "journal_seq"),
        "record_json",
        ToolExecutionStoreRecord,
    ),
)
assert tuple(table.name for table in TABLES) == _sql.TABLES


# ---------------------------------------------------------------- reading


class Source(AbstractContextManager["Source"]):
    """A database's surface tables, read only: which are present, and their rows in key order."""

    def __init__(self, backend: str, location: str, schema: str = "public") -> None:
        self._backend = backend
        self._schema = schema
        if backend == "postgres":
            self._psycopg = _driver()
            try:
                self._pg = self._psycopg.connect(location, autocommit=True)
            except self._psycopg.Error as error:
                raise _pg_error(error) from error
        else:
            try:
                self._db, _ = open_readonly(location)
            except apsw.Error as error:
                raise sqlite_error(error) from error

    def tables(self) -> list[Table]:
        """The surface tables the database has, in ``TABLES`` order."""
        if self._backend == "postgres":
            query = _pg_sql.PG_TABLES_PRESENT.replace("?1", "%s")
            present = {row[0] for row in self._pg_rows(query, [self._schema])}
        else:
            present = {row[0] for row in self._sqlite_rows(_sql.SQLITE_TABLES_PRESENT)}
        return [table for table in TABLES if table.name in present]

    def rows(self, table: Table, *, written: bool = False) -> Iterator[tuple[Any, ...]]:
        """The table's rows, every column in ``CREATE`` order, by key (text keys by their bytes,
        as SQLite orders them); a BLOB (``bytea``) as ``bytes``. ``written``: in the order they
        were written instead (SQLite's rowid, PostgreSQL's ``written`` of a checkpoint), the order
        a copy keeps, since a checkpoint store breaks ties on it."""
        columns = ", ".join(table.columns)
        if self._backend == "postgres":
            order = ", ".join(f'{name} COLLATE "C"' if name not in _INTEGERS else name for name in table.key)
            if written and table.name == "checkpoints":
                order = "written"
            query = f"SELECT {columns} FROM {_quote(self._schema)}.{table.name} ORDER BY {order}"
            for row in self._pg_rows(query, []):
                yield tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)
        else:
            order = "rowid" if written else ", ".join(table.key)
            yield from self._sqlite_rows(f"SELECT {columns} FROM {table.name} ORDER BY {order}")

    def _sqlite_rows(self, query: str) -> Iterator[tuple[Any, ...]]:
        try:
            yield from self._db.execute(query)
        except apsw.Error as error:
            raise sqlite_error(error) from error

    def _pg_rows(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return list(self._pg.execute(query, params))
        except self._psycopg.Error as error:
            raise _pg_error(error) from error

    def close(self) -> None:
        if self._backend == "postgres":
            self._pg.close()
        else:
            self._db.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# The integer columns: ordered as numbers on PostgreSQL (no collation).
_INTEGERS = frozenset({"journal_seq", "latest_journal_seq", "seq", "byte_len"})


def _pg_error(error: BaseException) -> AgentError:
    from ._pg_db import pg_error

    return pg_error(error)


def open_source(backend: str, location: str, schema: str = "public") -> Source:
    """``Source`` of the target ``_open.backend_of`` read (``location``: a path or a conninfo)."""
    return Source(backend, location, schema)


# ---------------------------------------------------------------- verifying


def row_problems(table: Table, row: Sequence[Any]) -> list[str]:
    """What is wrong with a row, as its surface would find it on reading: JSON that its decoder
    refuses (Rust's error text), provider arguments that are not JSON, content bytes that are
    not a BLOB of ``byte_len`` bytes. Empty for a good row."""
    problems = []
    if table.json is not None:
        try:
            decode_stored(table.model, row[table.columns.index(table.json)])
        except AgentError as error:
            problems.append(f"{table.json}: {error.message}")
    if table.name == "provider_arguments":
        raw = row[table.columns.index("raw_arguments")]
        try:
            if not isinstance(raw, str):
                raise ValueError(f"expected text, got {type(raw).__name__}")
            parse_value(raw)
        except ValueError as error:
            problems.append(f"raw_arguments: not valid JSON: {error}")
    if table.name == "content":
        data, size = row[table.columns.index("bytes")], row[table.columns.index("byte_len")]
        if not isinstance(data, bytes):
            problems.append(f"bytes: expected a BLOB, got {type(data).__name__}")
        elif size != len(data):
            problems.append(f"byte_len: {size!r}, but bytes holds {len(data)}")
    return problems


# ---------------------------------------------------------------- copying


def _insert(table: Table, backend: str) -> str:
    into = f"{{s}}.{table.name}" if backend == "postgres" else table.name
    values = ", ".join(f"?{index}" for index in range(1, len(table.columns) + 1))
    return f"INSERT INTO {into} ({', '.join(table.columns)}) VALUES ({values})"


def _select(table: Table, backend: str) -> str:
    into = f"{{s}}.{table.name}" if backend == "postgres" else table.name
    where = " AND ".join(f"{name} = ?{index}" for index, name in enumerate(table.key, 1))
    return f"SELECT {', '.join(table.columns)} FROM {into} WHERE {where}"


def copy_tables(
    source: Source,
    target: Database,
    backend: str,
    source_name: str,
    target_name: str,
    *,
    write: bool = True,
    progress: Callable[[Table, int, int], None] | None = None,
) -> list[tuple[Table, int, int]]:
    """Copy every surface table of ``source`` into ``target`` (``backend`` is the target's), each
    row byte for byte, in one transaction; return ``(table, copied, already there)`` per table.

    A row whose key the target already has is skipped if it is equal and refused if it differs
    (``InvalidInput``; nothing is written). ``write=False`` only checks, writing nothing.
    """
    tables = [(table, list(source.rows(table, written=True))) for table in source.tables()]

    def copy(run: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]) -> list[tuple[Table, int, int]]:
        done = []
        for table, rows in tables:
            select, insert, missing = _select(table, backend), _insert(table, backend), []
            for row in rows:
                found = run(select, table.key_of(row))
                if not found:
                    missing.append(row)
                elif tuple(bytes(v) if isinstance(v, memoryview) else v for v in found[0]) != tuple(row):
                    raise InvalidInput(
                        f"{target_name} already has a row of {table.name} ({table.shown_key(row)}) and it differs "
                        f"from {source_name}'s: copy never overwrites a row; nothing was copied"
                    )
            if write:
                for count, row in enumerate(missing, 1):
                    run(insert, row)
                    if progress is not None:
                        progress(table, count, len(missing))
            done.append((table, len(missing), len(rows) - len(missing)))
        return done

    for table, _ in tables:
        target.create(table.surface)
    return target.write(copy)
