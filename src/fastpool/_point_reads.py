"""Point reads on a big pool without a full replay: the ``fastpool_point_*`` index.

A new store object would replay a pool's whole log before its first answer (seconds and
about 1 GB at a million records). ``message_receipt``, ``wake_registration``, ``wake`` and
``watch`` need far less: whether the pool is open, and the latest record under one key. The
index (``_sql.POINT_TABLES``) holds, per pool, the sequence of that record for every key
among the records up to the pool's *mark*; a ``PointState`` replays only what lies after
the mark (the *tail*) and the ``pool_opened`` records, and looks each other key up once,
keeping the answer. The records stay the truth: an answer whose record does not carry the
key asked for (a damaged index) makes the store fall back to a full replay.

A damaged index must not answer ``None`` or an older status (issue 21), so building a
``PointState`` (a store object's first point read of the pool) checks what costs little, a
few B-tree look-ups and ``RECENT`` records, none of it on the warm read path; a failed check
(``Untrusted``) makes the store replay the pool instead:

* the mark is at most the pool's last sequence (past it, records appended since were never
  indexed, and no tail would hold them);
* every ``pool_opened`` entry names a ``pool_opened`` record, and where the pool's record 1
  is one (every pool fastpool writes starts so) an entry names it: without it the pool reads
  as never opened;
* every key of the last ``RECENT`` records up to the mark has an entry at its latest record
  among them (or later: a batch committed since). This finds a lost or half-written batch,
  a mark moved over records never indexed, and entries deleted or turned back to an older
  record of their key among those records.

A key whose latest record lies in the tail is answered from the tail, whatever its entry
says. Only ``fastpool verify``, which derives every entry again from every record up to the
mark, finds the rest: an entry missing for a key whose latest record lies below those
``RECENT`` records (the reader answers ``None``), an entry naming an older record of its own
key there (an older status), a later ``pool_opened`` record without its entry, and damage
done after a store object built its ``PointState`` (it is not checked again). No count is
compared: the file keeps none to compare with (the expected number of entries is known only
by reading every record), and counting a pool's entries alone took ~5 ms at 200,000 records
and ~35 ms at T10's million, over its 10 ms for the first read (the checks above add ~1 ms).

Writers keep the index up to date in batches, not per append: an extra B-tree written on
every commit costs 3-6 µs per append (measured; the append is ~17 µs), one batch every
``BATCH`` records costs ~1.5 µs per record, from keys the writer already knows. Records
appended by other writers (Rust hosts, other store objects) are indexed from their JSON by
SQLite when a batch includes them. So a tail is at most about ``BATCH`` records, plus what
other writers appended since the last fastpool writer's batch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

import apsw

from . import _sql
from ._sqlite_write import in_transaction
from .errors import AgentError, InvalidInput

__all__ = [
    "KEY_KINDS",
    "PointIndex",
    "PointState",
    "RecentRecords",
    "Untrusted",
    "answer_of_rows",
    "index_entries",
    "look_up",
    "mark_of",
]

BATCH = 512  # records between two index batches (the longest tail a fastpool writer leaves)
CHUNK = 4096  # records one batch indexes from their JSON at most (catching up on a long backlog)
LAZY_FROM = 2048  # index-covered records from which a point read skips the full replay
RECENT = 64  # records up to the mark whose entries a new PointState checks
_PENDING_POOLS = 1024  # pools whose own unindexed records a store object remembers

# The index's key kinds (the same on PostgreSQL) and the part of the stored record each answers with.
_MESSAGE_KEY, _WAKE_KEY, _CONDITION, _OPENED = 0, 1, 2, 3
KEY_KINDS = {"message_dedupe": _MESSAGE_KEY, "wake_dedupe": _WAKE_KEY, "wakes": _CONDITION}


class Untrusted(Exception):
    """The index named a record that does not carry the key asked for: replay the pool instead."""


def index_entries(payload: Any, sequence: int) -> tuple[tuple[int, str], ...]:
    """The index entries of one record: ``(kind, key)`` pairs."""
    kind = payload.TYPE
    if kind == "run_message":
        return ((_MESSAGE_KEY, payload.stored.message.idempotency_key),)
    if kind == "wake":
        condition = payload.stored.condition
        return ((_WAKE_KEY, condition.idempotency_key), (_CONDITION, condition.condition_id))
    if kind == "pool_opened":
        return ((_OPENED, str(sequence)),)
    return ()


def _answer(field: str, payload: Any, key: str) -> Any:
    """What ``field`` holds for ``key`` after ``payload``; ``Untrusted`` if the payload is not under ``key``."""
    stored = payload.stored
    if field == "message_dedupe":
        found, answer = stored.message.idempotency_key, stored.receipt
    elif field == "wake_dedupe":
        found, answer = stored.condition.idempotency_key, stored.registration
    else:
        found, answer = stored.condition.condition_id, stored
    if found != key:
        raise Untrusted(key)
    return answer


def look_up(db: apsw.Connection, engine: Any, state: Any, field: str, key: str) -> Any:
    """What ``field`` of the pool's state holds for ``key`` (``None``: nothing) as of the
    index's record for it; ``Untrusted`` if that record does not carry the key."""
    return answer_of_rows(engine, state, field, key, db.execute(_sql.POINT_ROW, (state.pool_id, KEY_KINDS[field], key)))


def answer_of_rows(engine: Any, state: Any, field: str, key: str, rows: Iterable[Any]) -> Any:
    """``look_up``'s answer from the ``(seq, kind, payload_json)`` rows the index named for
    ``key`` (a row without a record, ``kind`` ``None``, is ``Untrusted``)."""
    found = None
    for sequence, kind, text in rows:
        if kind is None:
            raise Untrusted(key)
        try:
            payload = engine.decode_row(kind, text)
        except InvalidInput as error:
            raise engine.corrupt_record(state.store_name, state.pool_id, sequence, error.message) from None
        if payload.TYPE not in ("run_message", "wake"):
            raise Untrusted(key)
        found = _answer(field, payload, key)
    return found


def _check_recent(db: apsw.Connection, engine: Any, pool_id: str, mark: int) -> None:
    """``Untrusted`` unless each key of the last ``RECENT`` records up to the mark has an entry at
    its latest record among them, or later (a batch another writer committed since)."""
    latest: dict[tuple[int, str], int] = {}
    for sequence, kind, text in db.execute(_sql.ROWS_UP_TO, (pool_id, mark, RECENT)):
        try:
            payload = engine.decode_row(kind, text)
        except InvalidInput:
            continue  # reported as corrupt when a read reaches it
        for entry in index_entries(payload, sequence):
            latest.setdefault(entry, sequence)  # newest first
    for (kind, key), sequence in latest.items():
        found = db.execute(_sql.POINT_SEQ, (pool_id, kind, key)).fetchall()
        if not found or found[0][0] < sequence:  # type: ignore[operator]
            raise Untrusted(key)


def mark_of(db: apsw.Connection, pool_id: str) -> int:
    """The last sequence the pool's index covers (0: none)."""
    rows = db.execute(_sql.POINT_MARK, (pool_id,)).fetchall()
    return int(rows[0][0]) if rows else 0  # type: ignore[arg-type]


class PointState:
    """What point reads need of one pool: a ``PoolState`` of the tail and of the ``pool_opened``
    records, into whose maps each key looked up in the index is copied once (``None`` when
    absent), so that later reads of it are plain dict look-ups and later records overwrite it."""

    __slots__ = ("tail", "mark", "token")

    def __init__(self, tail: Any, mark: int) -> None:
        self.tail = tail
        self.mark = mark
        self.token: object = None

    @property
    def cursor(self) -> int:
        return max(int(self.tail.cursor), self.mark)

    def answer(self, db: apsw.Connection, engine: Any, field: str, key: str) -> Any:
        tail = self.tail
        if tail.config is None:
            return None
        known = getattr(tail, field)
        found = known.get(key, known)
        if found is not known:
            return found
        found = known[key] = look_up(db, engine, tail, field, key)
        return found


class PointIndex:
    """A store object's side of the index: whether the file's index may be used, the records
    this object appended since the last batch, and building ``PointState``s."""

    __slots__ = ("usable", "writable", "_pending", "_marks")

    @staticmethod
    def version_of(db: apsw.Connection, tables: set[str]) -> object:
        """The index version the file is marked with; ``None`` if it has no complete index of its own."""
        if "fastpool_meta" not in tables:
            return None  # a file the Rust crate created: used as it is
        rows = db.execute(_sql.POINT_INDEX_OF_FILE).fetchall()
        version = rows[0][0] if rows else None
        if version == _sql.POINT_INDEX_VERSION and not {"fastpool_point_keys", "fastpool_point_marks"} <= tables:
            return None  # this version's index with a table gone: start it anew
        return version

    def __init__(self, version: object, readonly: bool) -> None:
        # Another version's index (a newer fastpool's) is neither read nor written.
        self.usable = version == _sql.POINT_INDEX_VERSION
        self.writable = not readonly
        self._pending: OrderedDict[str, list[tuple[int, Any]]] = OrderedDict()
        self._marks: dict[str, int] = {}  # the last mark seen per pool (a hint; the file's is read before use)

    def clear(self) -> None:
        self._pending.clear()
        self._marks.clear()

    # -- the write side ------------------------------------------------------------------------

    def appended(self, pool_id: str, payload: Any, sequence: int) -> None:
        """This store object committed ``payload`` at ``sequence``: remember its entries for the next batch."""
        if not (self.usable and self.writable):
            return
        pending = self._pending.get(pool_id)
        if pending is None:
            pending = self._pending[pool_id] = []
            if len(self._pending) > _PENDING_POOLS:
                self._pending.popitem(last=False)
        pending.append((sequence, payload))  # its entries are worked out at the batch

    def mark_seen(self, pool_id: str) -> int:
        """The pool's mark as this object last read or wrote it (0: none; the file's may be further)."""
        return self._marks.get(pool_id, 0)

    def due(self, pool_id: str, last: int) -> bool:
        """Whether ``BATCH`` of the pool's records up to ``last`` may wait past the last mark seen."""
        return self.usable and self.writable and last - self._marks.get(pool_id, 0) >= BATCH

    def batch(self, db: apsw.Connection, pool_id: str, last: int) -> None:
        """Inside a write transaction: index the pool's records up to ``last`` once ``BATCH`` wait."""
        if not self.due(pool_id, last):
            return
        try:
            self._batch(db, pool_id, last)
        except apsw.SQLError:
            # Its tables were dropped (as ``fastpool verify`` advises for a damaged index): the
            # records are the truth, so writes go on without it, and reads replay.
            self.usable = False

    def _batch(self, db: apsw.Connection, pool_id: str, last: int) -> None:
        mark = self._marks[pool_id] = mark_of(db, pool_id)
        if last - mark < BATCH:
            return
        end = min(last, mark + CHUNK)
        pending = self._pending.get(pool_id, [])
        own = [(sequence, payload) for sequence, payload in pending if mark < sequence <= end]
        if len(own) == end - mark:
            # Every record in the range is this object's own: its keys are known, no JSON is read;
            # a key recorded twice in the range (a status transition) is written once, at its last.
            latest = {entry: sequence for sequence, payload in own for entry in index_entries(payload, sequence)}
            db.executemany(_sql.PUT_POINT_KEY, ((pool_id, kind, key, seq) for (kind, key), seq in latest.items()))
        else:
            db.execute(_sql.FILL_POINT_KEYS, (pool_id, mark, end))
        db.execute(_sql.SET_POINT_MARK, (pool_id, end))
        self._marks[pool_id] = end
        if pending:
            pending[:] = [item for item in pending if item[0] > end]

    def keys_of_replay(self, cursor: int) -> dict[tuple[int, str], int] | None:
        """Where a writer replays a pool from ``cursor`` 0 (no transaction open): a map for each
        key's last sequence (``seen``), to index the pool from afterwards (``index_replayed``)."""
        return {} if cursor == 0 and self.usable and self.writable else None

    @staticmethod
    def seen(keys: dict[tuple[int, str], int]) -> Any:
        """``replay_rows``' ``seen``: keeps each key's last sequence in ``keys``."""

        def seen(payload: Any, sequence: int) -> None:
            for entry in index_entries(payload, sequence):
                keys[entry] = sequence

        return seen

    def index_replayed(
        self,
        db: apsw.Connection,
        pool_id: str,
        keys: dict[tuple[int, str], int],
        last: int,
        unchanged: Callable[[apsw.Connection], bool],
    ) -> None:
        """After a full replay of the pool up to ``last`` (no transaction open): if the index
        leaves ``LAZY_FROM`` or more of those records out (a Rust host appended them), write
        their entries from the ``keys`` the replay found, so that the next store object reads
        the pool's keys without a replay. ``CHUNK`` records per transaction, so that other
        writers never wait long, each only while ``unchanged(db)`` (no pool deleted since the
        replay). Best effort: a failure leaves the rest to the writers' batches."""
        try:
            if last - mark_of(db, pool_id) < LAZY_FROM:
                return
            ordered = sorted((sequence, kind, key) for (kind, key), sequence in keys.items())
            done = 0  # how many of ordered the chunks so far covered
            for end in range(min(CHUNK, last), last + CHUNK, CHUNK):
                end, first = min(end, last), done
                while done < len(ordered) and ordered[done][0] <= end:
                    done += 1
                chunk = ordered[first:done]
                if not in_transaction(db, False, lambda: self._put_chunk(db, pool_id, chunk, end, unchanged)):
                    return  # a pool was deleted meanwhile: these keys may name records gone
                self._marks[pool_id] = end
        except apsw.SQLError:
            self.usable = False  # its tables were dropped meanwhile
        except (apsw.Error, AgentError):
            pass  # the write lock not had in time, the disk full...: the writers' batches go on

    @staticmethod
    def _put_chunk(
        db: apsw.Connection,
        pool_id: str,
        chunk: list[tuple[int, int, str]],
        end: int,
        unchanged: Callable[[apsw.Connection], bool],
    ) -> bool:
        """Inside a write transaction: the entries of ``chunk`` past the pool's mark, then the
        mark ``end``; False if no pool may be written (one was deleted since the replay)."""
        mark = mark_of(db, pool_id)
        if mark >= end:
            return True  # another writer indexed these records meanwhile
        if not unchanged(db):
            return False
        db.executemany(_sql.PUT_POINT_KEY, ((pool_id, kind, key, seq) for seq, kind, key in chunk if seq > mark))
        db.execute(_sql.SET_POINT_MARK, (pool_id, end))
        return True

    def build(self, db: apsw.Connection) -> int:
        """Inside a write transaction: index every pool's records past its mark; how many records that covered."""
        if not (self.usable and self.writable):
            return 0
        covered = 0
        for pool_id, last in db.execute(_sql.POOL_LASTS).fetchall():
            mark = mark_of(db, str(pool_id))
            if int(last) > mark:  # type: ignore[arg-type]
                db.execute(_sql.FILL_POINT_KEYS, (pool_id, mark, last))
                db.execute(_sql.SET_POINT_MARK, (pool_id, last))
                covered += int(last) - mark  # type: ignore[arg-type]
        self.clear()
        return covered

    # -- the read side -------------------------------------------------------------------------

    def state(self, db: apsw.Connection, engine: Any, store_name: str, pool_id: str) -> PointState | None:
        """A ``PointState`` of the pool, or ``None`` where a full replay is the way (no usable
        index, or it covers fewer than ``LAZY_FROM`` records of the pool); ``Untrusted`` if the
        index fails one of the checks in the module doc."""
        if not self.usable:
            return None
        mark = mark_of(db, pool_id)
        if mark < LAZY_FROM:
            return None
        last, first = db.execute(_sql.POINT_EXTENT, (pool_id,)).fetchall()[0]
        if last is None or mark > last:  # type: ignore[operator]
            raise Untrusted(f"mark {mark} past the pool's last record {last}")
        opens = db.execute(_sql.POINT_OPENS, (pool_id, _OPENED, mark)).fetchall()
        named = [sequence for sequence, _, _ in opens]
        # Entries only of pool_opened records, and record 1's among them where it is one.
        if any(kind != "pool_opened" for _, kind, _ in opens) or (first == "pool_opened" and named[:1] != [1]):
            raise Untrusted("pool_opened entries")
        _check_recent(db, engine, pool_id, mark)
        tail = engine.PoolState(pool_id, store_name)
        after = db.cursor()
        try:
            # The pool_opened records up to the mark, then every record after it: in sequence order.
            engine.replay_rows(tail, chain(opens, after.execute(_sql.ROWS_AFTER, (pool_id, mark))))
        finally:
            after.close(True)
        return PointState(tail, mark)

    def catch_up(self, db: apsw.Connection, engine: Any, state: PointState) -> None:
        """Apply the records appended after the state's cursor."""
        rows = db.cursor()
        try:
            engine.replay_rows(state.tail, rows.execute(_sql.ROWS_AFTER, (state.tail.pool_id, state.cursor)))
        finally:
            rows.close(True)


class RecentRecords:
    """The last few decoded records of the pools watched most recently, so that a short watch
    tail (``watch(pool, last - 10)``, polled again and again) is not decoded again each time:
    a committed record never changes, so a decoded one stays right (a rolled-back
    ``transaction()`` forgets them all, since the connection saw its uncommitted records)."""

    __slots__ = ("_runs",)

    KEEP = 64  # records per pool
    POOLS = 64

    def __init__(self) -> None:
        # Per pool a run of records with consecutive sequences, ending at the last one read.
        self._runs: OrderedDict[str, list[Any]] = OrderedDict()

    def after(self, pool_id: str, after: int) -> tuple[list[Any], int]:
        """The records kept of those after ``after``, and the sequence after which to read on."""
        run = self._runs.get(pool_id)
        if not run:
            return [], after
        start, end = run[0].cursor.sequence, run[-1].cursor.sequence
        if not start <= after + 1 <= end:
            return [], after
        self._runs.move_to_end(pool_id)
        return run[after + 1 - start :], end

    def keep(self, pool_id: str, records: list[Any]) -> None:
        """Keep records just read (consecutive sequences) as the pool's newest run."""
        if not records or records[-1].cursor.sequence - records[0].cursor.sequence != len(records) - 1:
            return
        run = self._runs.get(pool_id)
        if run and run[-1].cursor.sequence + 1 == records[0].cursor.sequence:
            run.extend(records)
        else:
            run = self._runs[pool_id] = list(records)
        del run[: -self.KEEP]
        self._runs.move_to_end(pool_id)
        if len(self._runs) > self.POOLS:
            self._runs.popitem(last=False)

    def forget(self, pool_id: str | None = None) -> None:
        """Drop one pool's records (``None``: every pool's)."""
        if pool_id is None:
            self._runs.clear()
        else:
            self._runs.pop(pool_id, None)
