"""What ``fastpool inspect`` shows of the surfaces: each of their tables present, with its rows.

Read only: an SQLite file through ``sqlite.open_readonly`` (as ``verify`` reads it), a
PostgreSQL schema over a plain connection that creates nothing.
"""

from __future__ import annotations

import apsw

from .._sqlite_file import open_readonly
from ..postgres import _driver, _quote
from . import _pg_sql, _sql
from ._db import sqlite_error

__all__ = ["table_rows"]


def table_rows(backend: str, location: str, schema: str = "public") -> list[tuple[str, int]]:
    """``(table, rows)`` of each surface table at the target (``_open.backend_of``'s reading)."""
    if backend == "postgres":
        return _postgres_rows(location, schema)
    try:
        db, _ = open_readonly(location)
        try:
            present = {row[0] for row in db.execute(_sql.SQLITE_TABLES_PRESENT)}
            tables = [table for table in _sql.TABLES if table in present]
            return [(table, int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchall()[0][0] or 0)) for table in tables]
        finally:
            db.close()
    except apsw.Error as error:
        raise sqlite_error(error) from error


def _postgres_rows(conninfo: str, schema: str) -> list[tuple[str, int]]:
    from ._pg_db import pg_error

    psycopg = _driver()
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            query = _pg_sql.PG_TABLES_PRESENT.replace("?1", "%s")
            present = {row[0] for row in connection.execute(query, [schema])}
            tables = [table for table in _sql.TABLES if table in present]
            counts = []
            for table in tables:
                row = connection.execute(f"SELECT COUNT(*) FROM {_quote(schema)}.{table}").fetchone()
                counts.append((table, int(row[0]) if row else 0))
            return counts
    except psycopg.Error as error:
        raise pg_error(error) from error
