"""``PgSurfaceDb``: the surfaces on PostgreSQL, one connection, one lock, one error boundary.

Every write is one transaction that first takes a transaction-level advisory lock on the
schema's surfaces: writers on every host take turns as SQLite's ``BEGIN IMMEDIATE`` makes
them, and READ COMMITTED lets each statement after the lock see every earlier commit.
Statements are ``_pg_sql``'s, with ``_sql``'s names and ``?N`` parameters (turned into
psycopg's ``%s`` once per text). psycopg's errors leave as ``AgentError``s here and only
here: ``postgres store error: <message>``, ``RECOVERY_REPAIR_NEEDED``, retried as
``_pg_errors`` classifies the cause.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._pg_errors import retry_class
from ..enums import AgentErrorKind
from ..errors import AgentError, InvalidInput
from ..postgres import _check_schema_name, _connect, _driver, _key, _quote
from . import _pg_sql
from ._db import keep_out_of_forks

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PgSurfaceDb"]

T = TypeVar("T")
_PARAMETER = re.compile(r"\?(\d+)")


def pg_error(error: BaseException, *, login: bool = False) -> AgentError:
    """A psycopg failure as the surfaces word it (Rust's ``sqlite_error``, on PostgreSQL)."""
    text = " ".join(str(error).split())
    return AgentError(
        AgentErrorKind.RECOVERY_REPAIR_NEEDED, retry_class(error, login=login), f"postgres store error: {text}"
    )


class PgSurfaceDb:
    """A psycopg connection to one schema, the lock its users share, the write boundary."""

    sql = _pg_sql

    def __init__(
        self, connection: Connection[Any] | None, schema: str, error: type[BaseException], store: Any = None
    ) -> None:
        self._own = connection
        self._store = store  # a PostgresAgentPoolStore whose connection and lock are shared (on_store)
        self._locked: object = None  # the store's transaction (its batch) that holds the surface lock
        self._archive_next: tuple[object, int] | None = None  # (that transaction, the next frame's seq)
        self._quoted = _quote(schema)
        self._lock_key = _key("fastpool surfaces", schema)
        self._error = error
        self._texts: dict[str, tuple[str, tuple[int, ...]]] = {}
        self._created: set[str] = set()
        self._owned = True
        self._lock: Any = threading.RLock()

    @classmethod
    def open(cls, conninfo: str, *, schema: str = "public", busy_timeout: float = 5.0) -> PgSurfaceDb:
        """Connect (autocommit: each write opens its own transaction) to ``schema``, created if missing.

        A write that waits longer than ``busy_timeout`` seconds for the schema's lock fails
        ``RETRYABLE`` and writes nothing (as on SQLite).
        """
        if not isinstance(conninfo, str):
            raise InvalidInput(f"conninfo: expected a connection string, got {type(conninfo).__name__}")
        schema = _check_schema_name(schema)
        psycopg = _driver()
        try:
            options = psycopg.conninfo.conninfo_to_dict(conninfo)
            connection = _connect(psycopg, options, {"connect_timeout": "10", "application_name": "fastpool"})
            connection.execute(f"SET lock_timeout = '{max(1, round(busy_timeout * 1000))}ms'")
        except psycopg.ProgrammingError as error:
            raise InvalidInput(f"conninfo: {error}") from None
        except psycopg.Error as error:
            raise pg_error(error, login=True) from error
        db = cls(connection, schema, psycopg.Error)
        keep_out_of_forks(db)
        db.write(lambda run: run(f"CREATE SCHEMA IF NOT EXISTS {db._quoted}", ()))
        return db

    @classmethod
    def on_store(cls, store: Any) -> PgSurfaceDb:
        """The surfaces on a ``PostgresAgentPoolStore``'s connection, in its schema, under its lock: a
        write inside the store's ``transaction()`` joins it (one commit for both); closing is the store's."""
        db = cls(None, store.schema, store._error, store)
        db._owned = False
        return db

    @property
    def lock(self) -> Any:
        """The lock every user of the connection takes (the store's, when shared: a fork() child's raises)."""
        return self._lock if self._store is None else self._store._lock

    @lock.setter
    def lock(self, value: Any) -> None:
        self._lock = value

    @property
    def _connection(self) -> Connection[Any]:
        if self._store is None:
            assert self._own is not None
            return self._own
        return self._store._db().connection  # type: ignore[no-any-return]  # reconnected after a loss

    def create(self, name: str) -> None:
        """Create surface ``name``'s tables (once per connection)."""
        if name in self._created:
            return
        for statement in _pg_sql.SCHEMAS[name].split(";"):
            self.write(lambda run, statement=statement: run(statement, ()))  # type: ignore[misc]
        self._created.add(name)

    def _text(self, sql: str) -> tuple[str, tuple[int, ...]]:
        found = self._texts.get(sql)
        if found is None:
            text = sql.format(s=self._quoted)
            order = tuple(int(number) - 1 for number in _PARAMETER.findall(text))
            found = self._texts[sql] = (_PARAMETER.sub("%s", text), order)
        return found

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        text, order = self._text(sql)
        cursor = self._connection.execute(text, [params[index] for index in order])
        return cursor.fetchall() if cursor.description is not None else []

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one statement."""
        with self.lock:
            try:
                return self._run(sql, params)
            except self._error as error:
                raise pg_error(error) from error

    def write(self, body: Callable[[Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]], T]) -> T:
        """Run ``body(run)`` in one transaction holding the schema's surface lock: committed if it
        returns, rolled back if it raises."""
        with self.lock:
            try:
                connection = self._connection
                batch = None if self._store is None else self._store._batch
                if batch is not None:
                    # Inside the store's transaction(): join it (its commit or rollback takes these
                    # statements with its own). The surface lock, once taken, is held until it ends.
                    if self._locked is not batch:
                        connection.execute("SELECT pg_advisory_xact_lock(%s)", [self._lock_key])
                        self._locked = batch
                    return body(self._run)
                with connection.transaction():
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", [self._lock_key])
                    return body(self._run)
            except self._error as error:
                raise pg_error(error) from error

    def next_journal_seq(self) -> int:
        """The journal sequence's next value. Inside a store transaction that holds the surface
        lock, the archive's next ``seq`` comes in the same round trip and is kept for its next
        frame: no other writer can add a frame before the lock goes with the commit."""
        batch = None if self._store is None else self._store._batch
        if batch is None or self._locked is not batch:
            value = self.rows(_pg_sql.JOURNAL_NEXT_SEQ)[0][0]
        else:
            value, archive_next = self.rows(_pg_sql.JOURNAL_NEXT_SEQ_AND_ARCHIVE)[0]
            self._archive_next = (self._locked, archive_next)
        assert isinstance(value, int)
        return value

    def next_archive_seq(self, run: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]) -> int:
        """The archive's largest ``seq`` + 1, inside a write: kept from ``next_journal_seq`` if
        this transaction has added no frame since (``prune`` keeps the newest frame), else asked for."""
        kept, self._archive_next = self._archive_next, None
        if kept is not None and self._store is not None and kept[0] is self._store._batch is self._locked:
            value = kept[1]
        else:
            value = run(_pg_sql.ARCHIVE_NEXT, ())[0][0]
        assert isinstance(value, int)
        return value

    def lock_statement(self) -> bytes:
        """What takes the surface lock, to be sent with a store transaction's ``BEGIN``."""
        return b"; SELECT pg_advisory_xact_lock(%d)" % self._lock_key

    def hold_lock(self) -> None:
        """The store's open transaction took the surface lock (``lock_statement``): writes in it need not."""
        assert self._store is not None and self._store._batch is not None
        self._locked = self._store._batch

    @property
    def connection(self) -> Connection[Any]:
        """The psycopg connection."""
        return self._connection

    def close(self) -> None:
        """Close the connection; closing twice is harmless (and a fork() child leaves it alone)."""
        if self._owned and self._own is not None:
            with self.lock:
                self._own.close()
