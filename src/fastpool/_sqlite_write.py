"""The SQLite write boundary: where a store begins, commits and rolls back, and where SQLite's
errors become ``AgentError`` (``_sqlite_errors.translate``) for every write of the backend.

``Write`` is one write's transaction; ``end`` is what every owner of a transaction calls in
its ``except BaseException`` handler (an interrupt on entering ``Write.__exit__`` skips it);
``BusyWait`` is the busy handler that hands the write lock over quickly between processes.
The stores of ``fastpool.surfaces`` use the same boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import apsw

from ._sqlite_errors import translate

__all__ = ["BusyWait", "Write", "end", "in_transaction"]

T = TypeVar("T")


class BusyWait:
    """Retry a locked database quickly until ``timeout`` seconds have passed.

    SQLite's own busy timeout sleeps 1, 2, 5, 10 ... 100 ms between tries, which leaves
    the lock idle most of the time when several processes write at once; short,
    gently growing sleeps hand the lock over within tens of microseconds. While
    ``fail_fast`` is set SQLite is told at once (a write's ``BEGIN IMMEDIATE`` waits in
    ``Write``, which catches up on other writers' records meanwhile). ``waits`` counts the
    statements that found the database locked and waited (``stats()``' ``lock_waits``).
    """

    __slots__ = ("timeout", "started", "fail_fast", "waits")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = 0.0
        self.fail_fast = False
        self.waits = 0

    def __call__(self, prior_calls: int) -> bool:
        if self.fail_fast:
            return False
        now = time.monotonic()
        if prior_calls == 0:
            self.started = now
            self.waits += 1
        elif now - self.started >= self.timeout:
            return False  # give up: SQLITE_BUSY becomes a RETRYABLE AgentError
        time.sleep(min(0.0005, 0.00002 * (1 + prior_calls)))
        return True


def end(db: apsw.Connection) -> None:
    """Roll back the connection's open transaction, if any: what every handler of an exception
    inside a write does, wherever it landed (closed, closing rolled it back)."""
    try:
        if not db.getautocommit():
            db.execute("ROLLBACK")
    except apsw.ConnectionClosedError:
        pass


def in_transaction(db: apsw.Connection, readonly: bool, work: Callable[[], T]) -> T:
    """``work()`` in one write transaction of its own (see ``Write``)."""
    try:
        with Write(db, True, readonly):
            return work()
    except BaseException:
        end(db)  # an interrupt on entering the boundary's exit skips it
        raise


class Write:
    """One write's transaction boundary, the one place a store begins, commits and rolls back.

    ``BEGIN IMMEDIATE`` (``BEGIN`` for a readonly store, whose query_only connection refuses
    the former; its INSERT then fails read-only after the contract's own checks) unless
    ``begin`` is false (inside ``transaction()``, which owns the boundary); ``COMMIT`` when
    the block ends normally; ``ROLLBACK`` on any exception, a failed ``COMMIT`` included;
    SQLite's errors leave it as ``AgentError``. ``committed`` tells whether the ``COMMIT``
    went through, also when an exception (an interrupt) landed right after it.

    An exception can land wherever CPython checks for a signal: on entering a function and
    after a C call returns. So ``__enter__`` rolls back itself if one lands after its ``BEGIN``,
    and, since one landing on entering ``__exit__`` skips it whole, each caller's handler ends
    the transaction too (``end``).

    With ``catch_up``, a ``BEGIN IMMEDIATE`` that finds the write lock taken calls it
    (outside any transaction) before each new try, on ``busy``'s schedule: the records other
    writers commit meanwhile are read while waiting, not while holding the lock after them.
    """

    __slots__ = ("db", "began", "committed", "_statement", "_busy", "_catch_up")

    def __init__(
        self,
        db: apsw.Connection,
        begin: bool,
        readonly: bool,
        busy: BusyWait | None = None,
        catch_up: Callable[[], object] | None = None,
    ) -> None:
        self.db = db
        self.began = begin
        self.committed = False
        self._statement = "BEGIN" if readonly else "BEGIN IMMEDIATE"
        self._busy = busy
        self._catch_up = None if readonly else catch_up

    def __enter__(self) -> Write:
        if self.began:
            try:
                if self._catch_up is None:
                    self.db.execute(self._statement)
                else:
                    self._begin_catching_up()
            except BaseException as error:
                end(self.db)  # an interrupt right after BEGIN returned
                if isinstance(error, apsw.Error):
                    raise translate(error) from error
                raise
        return self

    def _begin_catching_up(self) -> None:
        busy, catch_up, attempts = self._busy, self._catch_up, 0
        assert busy is not None and catch_up is not None
        while True:
            busy.fail_fast = True
            try:
                self.db.execute(self._statement)
                return
            except apsw.BusyError:
                busy.fail_fast = False
                if not busy(attempts):
                    raise  # busy_timeout has passed
                attempts += 1
            finally:
                busy.fail_fast = False
            catch_up()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if self.began:
            if error is None:
                try:
                    self.db.execute("COMMIT")
                except apsw.Error as failed:
                    error = failed
                except BaseException:
                    self.committed = self.db.getautocommit()  # an interrupt once COMMIT had returned
                    end(self.db)
                    raise
                else:
                    self.committed = True
                    return
            end(self.db)
        if isinstance(error, apsw.Error):
            raise translate(error) from error
