"""``PostgresAgentPoolStore``: the same contract on PostgreSQL, for hosts on several machines.

The tables have the SQLite file's shape, in one schema; payloads are the exact wire text.
Every write is one transaction serialised per pool by a transaction-level advisory lock on
a hash of (schema, pool id), so writers to different pools never wait for each other. The
common write is one round trip: one pipeline segment (an implicit transaction) takes the
lock, then appends ``seq = cached cursor + 1`` only if no record lies past the cached cursor
and no pool was deleted since (checked on a snapshot taken after the lock), and NOTIFYs. A
store whose cache was behind, or whose check failed on the cached state, takes the lock in
an explicit transaction, catches up, checks again and appends (the check that raises is
always this one, made on the pool as it is).

Reads are served from the same per-pool cached replay state as SQLite's. With
``consistency="linearizable"`` (the default) each read asks for the rows past the cached
cursor: one round trip, and rows only when there are some. With ``"notified"`` a listener
thread (``LISTEN``) records the last sequence notified for each pool, and a read touches the
network only when that is past the cached cursor or the listener has reconnected since.

The hot statements go through the connection's libpq handle (``psycopg.pq``), prepared once
per connection: psycopg's cursor layer costs more than the round trip on a local network.
psycopg is imported when a store is constructed, so ``import fastpool`` never needs it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import select
import threading
import weakref
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._base import Build, Row, StoreBase, check_id
from ._cache import PoolCache
from ._pg_errors import NAME, translate
from ._point_reads import BATCH, KEY_KINDS, Untrusted, answer_of_rows
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .model import AgentPoolStoreRecord

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.pq.abc import PGconn, PGresult

    from ._pool_state import PoolState

__all__ = ["PostgresAgentPoolStore", "SCHEMA_VERSION"]

#: The table layout this fastpool writes; a schema marked with a newer one is refused.
SCHEMA_VERSION = 2  # 2: bounded_state's key index (a schema without it is version 1)
CONSISTENCY = ("linearizable", "notified")
_MAX_SEQUENCE = 2**63 - 1  # the largest bigint
_UNKNOWN = -1  # the listener epoch of a cache that no notification stream vouches for
_CONNECT_TIMEOUT = "10"  # seconds, unless the conninfo says otherwise
# The listener's only traffic is inbound: keepalives notice a peer that vanished silently.
_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "3"}

# Statements, with {s} the quoted schema. pool_id is COLLATE "C": byte order, which for
# UTF-8 is Python's str order (the contract sorts that way), and the cheapest comparison.
# delete_pool raises this counter; reads and appends carry the value they know, so that a cache
# made before a deletion is noticed (a deletion is not an append: no row past the cursor shows it).
_DROPS_TABLE = (
    "CREATE TABLE IF NOT EXISTS {s}.fastpool_drops (id int PRIMARY KEY CHECK (id = 0), count bigint NOT NULL)"
)
_DROPS = "(SELECT coalesce(max(count), 0) FROM {s}.fastpool_drops)"
_TABLES = (
    """CREATE TABLE IF NOT EXISTS {s}.agent_pool_records (
        pool_id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        kind text NOT NULL,
        payload_json text NOT NULL,
        PRIMARY KEY (pool_id, seq))""",
    """CREATE TABLE IF NOT EXISTS {s}.agent_pool_event_seq (
        pool_id text COLLATE "C" PRIMARY KEY,
        seq bigint NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS {s}.fastpool_meta (key text PRIMARY KEY, value text NOT NULL)",
    _DROPS_TABLE,
)
_PREPARED = {
    # The rows while the drops counter is $4; else one row (-1, 'fastpool_drops', the counter).
    b"fastpool_rows": "(SELECT seq, kind, payload_json FROM {s}.agent_pool_records "
    f"WHERE pool_id = $1::text AND seq > $2::bigint AND {_DROPS} = $4::bigint ORDER BY seq LIMIT $3::bigint) "
    f"UNION ALL (SELECT -1, 'fastpool_drops', {_DROPS}::text WHERE {_DROPS} <> $4::bigint)",
    # The one-round-trip append: fastpool_lock then fastpool_append in one implicit transaction
    # (one pipeline segment). The INSERT's snapshot is taken after the lock is held, so a
    # record or a deletion committed while it waited is in it: nothing is appended then.
    b"fastpool_lock": "SELECT pg_advisory_xact_lock($1::bigint)",
    b"fastpool_append": "INSERT INTO {s}.agent_pool_records (pool_id, seq, kind, payload_json) "
    "SELECT $1::text, $2::bigint, $3::text, $4::text WHERE NOT EXISTS "
    "(SELECT 1 FROM {s}.agent_pool_records WHERE pool_id = $1::text AND seq >= $2::bigint) "
    f"AND {_DROPS} = $5::bigint RETURNING seq",
    # Inside a transaction that holds the pool's lock and has caught up.
    b"fastpool_append_locked": "INSERT INTO {s}.agent_pool_records (pool_id, seq, kind, payload_json) "
    "VALUES ($1::text, $2::bigint, $3::text, $4::text)",
    b"fastpool_commit": "COMMIT",
    # The notification, in a transaction of its own right after the write's (see _Session.
    # notifying). Sent only if the record is there; synchronous_commit is off because the
    # transaction holds NOTIFY's cluster-wide lock until its commit is done.
    b"fastpool_notify": "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1::text, $2::text) "
    "FROM {s}.agent_pool_records WHERE pool_id = $3::text AND seq = $4::bigint",
    b"fastpool_next_event": "INSERT INTO {s}.agent_pool_event_seq (pool_id, seq) "
    f"SELECT $1::text, 1 WHERE {_DROPS} = $2::bigint "
    "ON CONFLICT (pool_id) DO UPDATE SET seq = {s}.agent_pool_event_seq.seq + 1 RETURNING seq",
    b"fastpool_pools": "SELECT pool_id, count(*), max(seq) FROM {s}.agent_pool_records "
    'GROUP BY pool_id ORDER BY pool_id COLLATE "C"',
    b"fastpool_tables": "SELECT tablename::text FROM pg_tables WHERE schemaname = $1::text",
    # The inspection and copy primitives (the CLI).
    b"fastpool_unopened": "SELECT pool_id FROM (SELECT DISTINCT pool_id FROM {s}.agent_pool_records) AS pools "
    "WHERE NOT EXISTS (SELECT 1 FROM {s}.agent_pool_records AS r "
    "WHERE r.pool_id = pools.pool_id AND r.kind = 'pool_opened')",
    b"fastpool_event_seq": "SELECT seq FROM {s}.agent_pool_event_seq WHERE pool_id = $1::text",
    b"fastpool_set_event_seq": "INSERT INTO {s}.agent_pool_event_seq (pool_id, seq) VALUES ($1::text, $2::bigint)",
    b"fastpool_exists": "SELECT EXISTS (SELECT 1 FROM {s}.agent_pool_records WHERE pool_id = $1::text) "
    "OR EXISTS (SELECT 1 FROM {s}.agent_pool_event_seq WHERE pool_id = $1::text)",
    b"fastpool_extent": "SELECT count(*), coalesce(max(seq), 0), "
    "(SELECT seq FROM {s}.agent_pool_event_seq WHERE pool_id = $1::text) "
    "FROM {s}.agent_pool_records WHERE pool_id = $1::text",
    b"fastpool_notify_copied": "SELECT pg_notify($1::text, $2::text)",
    b"fastpool_version": "SELECT value FROM {s}.fastpool_meta WHERE key = 'schema_version'",
    # delete_pool, under the pool's lock: what the pool held, then remove it and count the deletion.
    b"fastpool_delete_records": "DELETE FROM {s}.agent_pool_records WHERE pool_id = $1::text",
    b"fastpool_delete_event_seq": "DELETE FROM {s}.agent_pool_event_seq WHERE pool_id = $1::text RETURNING seq",
    b"fastpool_count_drop": "INSERT INTO {s}.fastpool_drops (id, count) VALUES (0, 1) "
    "ON CONFLICT (id) DO UPDATE SET count = {s}.fastpool_drops.count + 1 RETURNING count",
}
# bounded_state's key index (as SQLite's point index, kinds KEY_KINDS): per pool, the latest
# record under each key up to the pool's mark. Created by the first bounded_state store, which
# marks the schema version 2: an older fastpool's delete_pool would leave its entries behind.
_POINT_TABLES = (
    """CREATE TABLE IF NOT EXISTS {s}.fastpool_point_keys (
        pool_id text COLLATE "C" NOT NULL,
        kind smallint NOT NULL,
        key text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        PRIMARY KEY (pool_id, kind, key))""",
    """CREATE TABLE IF NOT EXISTS {s}.fastpool_point_marks (
        pool_id text COLLATE "C" PRIMARY KEY,
        seq bigint NOT NULL)""",
)
_POINT_TABLE_NAMES = {"fastpool_point_keys", "fastpool_point_marks"}
_FILL_CHUNK = 4096  # records one fill indexes at most (a long backlog is caught up over several writes)
# The index entries of pool $1's records in (m.lo, m.hi] (a CTE ``m`` gives the bounds): the
# latest record under each key, the keys read from the records' JSON.
_POINT_ENTRIES = (
    "r AS (SELECT seq, kind, payload_json::jsonb AS p FROM {s}.agent_pool_records, m "
    "WHERE pool_id = $1::text AND seq > m.lo AND seq <= m.hi AND kind IN ('run_message', 'wake')), "
    "e AS (SELECT 0 AS kind, p #>> '{{stored,message,idempotency_key}}' AS key, seq FROM r WHERE kind = 'run_message' "
    "UNION ALL SELECT 1, p #>> '{{stored,condition,idempotency_key}}', seq FROM r WHERE kind = 'wake' "
    "UNION ALL SELECT 2, p #>> '{{stored,condition,condition_id}}', seq FROM r WHERE kind = 'wake'), "
    "x AS (SELECT kind, key, max(seq) AS seq FROM e WHERE key IS NOT NULL GROUP BY kind, key)"
)
_POINT_PREPARED = {
    # Under the pool's lock (call_locked): index the records after the pool's mark, up to $2 and
    # at most _FILL_CHUNK of them, and move the mark there; the mark after, or no row if a pool
    # was deleted since the drops counter was $3.
    b"fastpool_point_fill": "WITH m AS (SELECT least($2::bigint, lo + "
    + str(_FILL_CHUNK)
    + ") AS hi, lo FROM (SELECT coalesce((SELECT seq FROM {s}.fastpool_point_marks "
    f"WHERE pool_id = $1::text), 0) AS lo) AS l WHERE {_DROPS} = $3::bigint), "
    + _POINT_ENTRIES
    + ", k AS (INSERT INTO {s}.fastpool_point_keys (pool_id, kind, key, seq) SELECT $1::text, kind, key, seq FROM x "
    "ON CONFLICT (pool_id, kind, key) DO UPDATE SET seq = greatest({s}.fastpool_point_keys.seq, excluded.seq)) "
    "INSERT INTO {s}.fastpool_point_marks (pool_id, seq) SELECT $1::text, hi FROM m "
    "ON CONFLICT (pool_id) DO UPDATE SET seq = greatest({s}.fastpool_point_marks.seq, excluded.seq) RETURNING seq",
    # The record the index names for a key: kind NULL if it names none (an index not to trust).
    b"fastpool_point_row": "SELECT k.seq, r.kind, r.payload_json FROM {s}.fastpool_point_keys AS k "
    "LEFT JOIN {s}.agent_pool_records AS r ON r.pool_id = k.pool_id AND r.seq = k.seq "
    "WHERE k.pool_id = $1::text AND k.kind = $2::smallint AND k.key = $3::text",
    b"fastpool_point_tables": "SELECT to_regclass($1::text) IS NOT NULL",
    # fastpool verify: per pool with a mark, the entries that differ from what its records up
    # to the mark give (missing, extra, or naming another record).
    b"fastpool_point_marks": "SELECT pool_id, seq FROM {s}.fastpool_point_marks ORDER BY pool_id",
    b"fastpool_point_check": "WITH m AS (SELECT 0::bigint AS lo, $2::bigint AS hi), "
    + _POINT_ENTRIES
    + ", k AS (SELECT kind::int AS kind, key, seq FROM {s}.fastpool_point_keys WHERE pool_id = $1::text) "
    "SELECT count(*) FROM ((SELECT * FROM x EXCEPT SELECT * FROM k) "
    "UNION ALL (SELECT * FROM k EXCEPT SELECT * FROM x)) AS d",
    b"fastpool_point_delete": "WITH k AS (DELETE FROM {s}.fastpool_point_keys WHERE pool_id = $1::text) "
    "DELETE FROM {s}.fastpool_point_marks WHERE pool_id = $1::text",
}
# A schema from a fastpool before delete_pool, opened by a readonly store (which creates nothing):
# no fastpool_drops, so no pool was ever deleted there. The same parameters, the counter unused.
_WITHOUT_DROPS = {
    b"fastpool_rows": "SELECT seq, kind, payload_json FROM {s}.agent_pool_records WHERE pool_id = $1::text "
    "AND seq > $2::bigint AND $4::bigint IS NOT NULL ORDER BY seq LIMIT $3::bigint",
    b"fastpool_next_event": "INSERT INTO {s}.agent_pool_event_seq (pool_id, seq) "
    "SELECT $1::text, 1 WHERE $2::bigint IS NOT NULL "
    "ON CONFLICT (pool_id) DO UPDATE SET seq = {s}.agent_pool_event_seq.seq + 1 RETURNING seq",
}


class _Dropped(Exception):
    """A read found the drops counter changed: every cached state was forgotten; start again."""


_SQLSTATE = 67  # PG_DIAG_SQLSTATE: a result's error field
_COPY_ROWS = "COPY {s}.agent_pool_records (pool_id, seq, kind, payload_json) FROM STDIN"
_PAGE = 64  # rows per query while streaming a pool: what bounds its memory at large payloads


def _driver() -> ModuleType:
    try:
        import psycopg
    except ImportError as error:
        raise AgentError.host_configuration_needed(
            "postgres agent pool store needs psycopg 3: pip install -e '.[postgres]' in a checkout"
        ) from error
    return psycopg


def _connect(psycopg: ModuleType, options: dict[str, Any], extra: dict[str, str] | None = None) -> Connection[Any]:
    if extra is not None:
        options = {**extra, **options}  # the conninfo's own settings win
    return psycopg.connect(**options, autocommit=True)  # type: ignore[no-any-return]


def _key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key (or channel suffix) for ``parts``, stable across hosts."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _check_conninfo(conninfo: str) -> None:
    # libpq takes UTF-8 C strings: a NUL would cut the text short, a lone surrogate not encode.
    try:
        conninfo.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("conninfo: not valid Unicode text (a lone surrogate)") from None
    if "\0" in conninfo:
        raise InvalidInput("conninfo: contains a NUL character")


def _check_schema_name(schema: Any) -> str:
    if not isinstance(schema, str) or not schema:
        raise InvalidInput(f"schema: expected a non-empty schema name, got {schema!r}")
    if len(schema.encode("utf-8", "surrogatepass")) > 63 or not schema.isprintable():
        raise InvalidInput(f"schema: expected at most 63 bytes of printable characters, got {schema!r}")
    # PostgreSQL reserves these (pg_catalog, pg_toast, ...); names are case-sensitive here.
    if schema.startswith("pg_") or schema == "information_schema":
        raise InvalidInput(f"schema: {schema!r} is a PostgreSQL system schema; name one of your own (e.g. 'fastpool')")
    return str(schema)


class _Session:
    """One connection: psycopg connects, statements run on its libpq handle."""

    __slots__ = ("connection", "pgconn", "_errors", "_statements", "_ready")

    def __init__(self, connection: Connection[Any], errors: ModuleType, statements: dict[bytes, bytes]) -> None:
        self.connection = connection
        self.pgconn: PGconn = connection.pgconn
        self._errors = errors
        self._statements = statements
        self._ready: set[bytes] = set()

    def run(self, query: bytes) -> PGresult:
        """A simple query (several statements allowed; the last one's result)."""
        return self._check(self.pgconn.exec_(query))

    def call(self, name: bytes, params: Sequence[bytes]) -> PGresult:
        """A prepared statement of ``_PREPARED`` (prepared on this connection's first use)."""
        self._prepare(name)
        return self._check(self.pgconn.exec_prepared(name, params))

    def notifying(
        self, name: bytes, params: Sequence[bytes], notify: Sequence[bytes], lock: bytes | None = None
    ) -> PGresult:
        """``call(name, params)`` (a transaction that commits a record), then ``fastpool_notify``
        in a transaction of its own, both sent at once (libpq's pipeline: one round trip). With
        ``lock``, ``fastpool_lock(lock)`` goes first in the record's implicit transaction.

        A NOTIFY in the record's own transaction would hold NOTIFY's cluster-wide lock over
        that commit's WAL flush, so that no two writers in the cluster could commit at once.
        The server runs the second statement even if this client goes away after sending;
        only a server crash could skip it, and that drops every listener's connection, so
        their caches count as unknown: no notification is lost silently. A failed
        notification does not fail the write that was already committed.
        """
        pgconn = self.pgconn
        self._prepare(b"fastpool_notify")
        self._send(name, params, lock)
        pgconn.send_query_prepared(b"fastpool_notify", notify)
        pgconn.pipeline_sync()
        written = self._until_sync()
        try:
            self._until_sync()
        except self._errors.Error:
            pass  # the record is committed; the next call notices the lost connection
        if pgconn.status == 0:
            pgconn.exit_pipeline_mode()
        return self._check(written)

    def call_locked(self, name: bytes, params: Sequence[bytes], lock: bytes) -> PGresult:
        """``call(name, params)`` after ``fastpool_lock(lock)`` in one implicit transaction, in
        one round trip: the statement's snapshot is taken once the lock is held, so it sees
        what the lock's last holder committed (a pool deleted meanwhile)."""
        self._send(name, params, lock)
        result = self._until_sync()
        if self.pgconn.status == 0:
            self.pgconn.exit_pipeline_mode()
        return self._check(result)

    def _send(self, name: bytes, params: Sequence[bytes], lock: bytes | None) -> None:
        """Enter pipeline mode and send ``fastpool_lock(lock)`` (if any), ``name`` and a sync."""
        pgconn = self.pgconn
        self._prepare(name)
        if lock is not None:
            self._prepare(b"fastpool_lock")
        # Left in pipeline mode if interrupted: settle() reads what is due, so that a commit
        # sent is done (or not) before the next call looks.
        pgconn.enter_pipeline_mode()
        if lock is not None:
            pgconn.send_query_prepared(b"fastpool_lock", [lock])
        pgconn.send_query_prepared(name, params)
        pgconn.pipeline_sync()

    def _until_sync(self) -> PGresult:
        """The first failed result of one pipeline segment, else its last (the rest read and dropped)."""
        pgconn, chosen = self.pgconn, None
        while True:
            result = self._next_result()
            if result is None:
                if pgconn.status != 0:  # lost: libpq gives no sync result any more
                    raise self._errors.OperationalError(pgconn.get_error_message())
                continue  # the end of one statement's results
            if result.status == 10:  # PIPELINE_SYNC
                assert chosen is not None
                return chosen
            if chosen is None or chosen.status in (1, 2):  # COMMAND_OK, TUPLES_OK
                chosen = result

    def _next_result(self) -> PGresult | None:
        pgconn = self.pgconn
        # psycopg's get_result holds the GIL while libpq blocks: wait in select() instead.
        while pgconn.is_busy():
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        return pgconn.get_result()

    def _prepare(self, name: bytes) -> None:
        if name not in self._ready:
            result = self.pgconn.prepare(name, self._statements[name])
            # "Already exists": prepared before an interrupt skipped the line below.
            if result.error_field(_SQLSTATE) != b"42P05":
                self._check(result)
            self._ready.add(name)

    def settle(self) -> None:
        """After an interrupted call: read the results a pipeline still has due (a COMMIT
        sent is then done) and roll back an open transaction. Raises the driver's error."""
        pgconn = self.pgconn
        for _ in range(100):  # each round reads a result; a pipeline here has a few
            if pgconn.status != 0 or pgconn.pipeline_status == 0:
                break
            try:
                pgconn.exit_pipeline_mode()
            except self._errors.OperationalError:
                self._next_result()  # not every result is read yet
        if pgconn.status == 0 and pgconn.pipeline_status == 0 and pgconn.transaction_status in (2, 3):
            self.run(b"ROLLBACK")  # INTRANS, INERROR; ACTIVE (a COPY cut off) is for the caller to drop

    def _check(self, result: PGresult) -> PGresult:
        if result.status in (1, 2):  # COMMAND_OK, TUPLES_OK
            return result
        raise self._errors.error_from_result(result, encoding="utf-8")

    @property
    def in_transaction(self) -> bool:
        """Connected, out of pipeline mode, in a transaction that has not failed."""
        pgconn = self.pgconn
        return pgconn.status == 0 and pgconn.pipeline_status == 0 and pgconn.transaction_status == 2

    @property
    def idle(self) -> bool:
        """Connected, out of pipeline mode and of any transaction: ready for a call."""
        pgconn = self.pgconn
        return pgconn.status == 0 and pgconn.pipeline_status == 0 and pgconn.transaction_status == 0

    def close(self) -> None:
        self.connection.close()


class _Notices:
    """What the listener thread has heard; the store reads it without taking its own lock.

    ``heads`` maps a pool to the highest sequence notified for it. ``epoch`` changes each
    time the listener connects or loses its connection, so a cache synced under another
    epoch counts as unknown; ``count`` rises with every notification (follow()'s token).
    """

    __slots__ = ("changed", "heads", "epoch", "listening", "count")

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.heads: dict[str, int] = {}
        self.epoch = 0
        self.listening = False
        self.count = 0

    def set_listening(self, listening: bool) -> None:
        with self.changed:
            if self.listening != listening:
                self.listening = listening
                self.epoch += 1
            self.changed.notify_all()

    def heard(self, payloads: list[bytes]) -> None:
        with self.changed:
            heads = self.heads
            for payload in payloads:
                sequence, _, pool_id = payload.decode("utf-8").partition(":")
                if sequence == "drop":
                    self.epoch += 1  # a pool was deleted: no cache is vouched for any more
                elif sequence.isdigit() and int(sequence) > heads.get(pool_id, 0):
                    heads[pool_id] = int(sequence)
            self.count += len(payloads)
            self.changed.notify_all()


class _Listener:
    """A thread with its own connection that LISTENs on the schema's channel, reconnecting
    after any failure until ``stop``; it holds no reference to the store."""

    def __init__(self, connect: Any, errors: ModuleType, channel: str, notices: _Notices) -> None:
        self._connect = connect
        self._pid = os.getpid()
        self._error: type[BaseException] = errors.Error
        self._listen = f"LISTEN {channel}".encode()
        self._notices = notices
        self._wake_read, self._wake_write = os.pipe()
        self._stopped = False
        self.tried = threading.Event()  # set after the first attempt to listen, good or bad
        self._thread = threading.Thread(target=self._run, name="fastpool-pg-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        # A forked child shares the wake pipe: writing to it would stop the parent's thread.
        if not self._stopped and os.getpid() == self._pid:
            self._stopped = True
            # The write end is this side's: the thread may already have left its loop (it saw
            # _stopped), and must not close a descriptor that is still to be written to.
            try:
                os.write(self._wake_write, b"x")
            except BrokenPipeError:
                pass  # the thread has gone already, closing its read end
            os.close(self._wake_write)

    def _sleep(self, seconds: float) -> None:
        select.select([self._wake_read], [], [], seconds)

    def _run(self) -> None:
        delay = 0.05
        try:
            while not self._stopped:
                try:
                    connection = self._connect(_KEEPALIVES)
                except self._error:
                    self.tried.set()
                    self._sleep(delay)
                    delay = min(1.0, delay * 2)
                    continue
                try:
                    pgconn = connection.pgconn
                    if pgconn.exec_(self._listen).status != 1:
                        raise ConnectionError(pgconn.get_error_message())
                    self._notices.set_listening(True)
                    self.tried.set()
                    delay = 0.05
                    self._pump(pgconn)
                except (self._error, ConnectionError, OSError):
                    pass  # reconnect; readers meanwhile count their caches as unknown
                finally:
                    self._notices.set_listening(False)
                    connection.close()
        finally:
            os.close(self._wake_read)

    def _pump(self, pgconn: PGconn) -> None:
        while not self._stopped:
            readable, _, _ = select.select([pgconn.socket, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            pgconn.consume_input()
            if pgconn.status != 0:
                raise ConnectionError("listener connection lost")
            payloads = []
            while (notify := pgconn.notifies()) is not None:
                payloads.append(notify.extra)
            if payloads:
                self._notices.heard(payloads)


class _Cached:
    """A pool's state; ``epoch``: the listener epoch it was synced under; ``contended``:
    other writers appended lately, so writes take the lock before reading."""

    __slots__ = ("state", "epoch", "contended")

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.epoch = _UNKNOWN
        self.contended = False


class PostgresAgentPoolStore(StoreBase):
    """An ``AgentPoolStore`` in a PostgreSQL schema, shared by any number of hosts.

    ``conninfo`` is a libpq connection string or URL. ``schema`` (created with the tables if
    missing) lets independent stores share one database. ``consistency="linearizable"``: a
    read that starts after another host's write was acknowledged sees it (one round trip
    per read); ``"notified"``: warm reads trust the LISTEN stream and cost no round trip,
    but may lag another host's acknowledged write by the notification's delivery time.
    Writes always catch up under the pool's lock. A lock wait longer than ``busy_timeout``
    seconds, a serialization failure or a lost connection fails with a ``RETRYABLE`` error
    and writes nothing; the next call reconnects. ``readonly`` refuses every write with
    ``HOST_CONFIGURATION_NEEDED`` and never creates anything. ``engine`` picks the replay
    engine module, as for ``SqliteAgentPoolStore``. ``max_cached_pools`` bounds the pools whose
    state is kept in memory (least recently used first out, a use being a catch-up or a
    write: a warm read of the notified mode does not count; ``evict`` drops one).
    ``bounded_state=True`` keeps a pool's memory flat as it grows, as SQLite's does: every
    512 records this store object writes to a pool, it indexes their keys in the schema
    (``fastpool_point_keys``; the first such store creates it and marks the schema version 2,
    which older fastpools refuse) and its cached state forgets their messages and wakes. A key
    it may have forgotten costs one round trip, then is kept until the next index fill;
    ``snapshot`` replays the pool first. ``open_runtime`` turns it on.
    """

    _name = NAME

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        consistency: str = "linearizable",
        readonly: bool = False,
        busy_timeout: float = 5.0,
        max_cached_pools: int = 1024,
        bounded_state: bool = False,
        engine: ModuleType | None = None,
    ) -> None:
        super().__init__(engine)
        if not isinstance(conninfo, str):
            raise InvalidInput(f"conninfo: expected a connection string, got {type(conninfo).__name__}")
        _check_conninfo(conninfo)
        schema = _check_schema_name(schema)
        if consistency not in CONSISTENCY:
            raise InvalidInput(f"consistency: expected 'linearizable' or 'notified', got {consistency!r}")
        if type(readonly) is not bool:
            raise InvalidInput(f"readonly: expected a bool, got {type(readonly).__name__}")
        if type(busy_timeout) not in (int, float) or not 0 <= busy_timeout < 2**31 / 1000:
            raise InvalidInput(f"busy_timeout: expected seconds as a non-negative number, got {busy_timeout!r}")
        if type(max_cached_pools) is not int or max_cached_pools < 1:
            raise InvalidInput(f"max_cached_pools: expected a positive int, got {max_cached_pools!r}")
        if type(bounded_state) is not bool:
            raise InvalidInput(f"bounded_state: expected a bool, got {type(bounded_state).__name__}")
        self._psycopg = _driver()
        self._errors: ModuleType = self._psycopg.errors
        self._error: type[BaseException] = self._psycopg.Error
        try:
            options = self._psycopg.conninfo.conninfo_to_dict(conninfo)
        except self._psycopg.ProgrammingError as error:
            raise InvalidInput(f"conninfo: {error}") from None
        options.setdefault("connect_timeout", _CONNECT_TIMEOUT)
        options.setdefault("application_name", "fastpool")  # what pg_stat_activity shows
        self._options = options
        self._schema = schema
        self._notified = consistency == "notified"
        self._readonly = readonly
        self._bounded = bounded_state and not readonly  # trim states after index fills (_trim)
        quoted = _quote(schema)
        statements = {**_PREPARED, **_POINT_PREPARED}
        self._statements = {name: text.format(s=quoted).encode() for name, text in statements.items()}
        self._tables = [text.format(s=quoted) for text in _TABLES]
        self._copy_rows = _COPY_ROWS.format(s=quoted).encode()
        self._quoted = quoted
        self._channel = f"fastpool_{_key(schema) & (2**64 - 1):016x}"
        self._channel_param = self._channel.encode()
        # lock_timeout 0 would mean "wait forever"; busy_timeout 0 means "do not wait".
        setup = [f"SET lock_timeout = '{max(1, round(busy_timeout * 1000))}ms'"]
        if readonly:
            setup.append("SET default_transaction_read_only = on")
        self._setup = "; ".join(setup).encode()
        self._cache: PoolCache[_Cached] = PoolCache(max_cached_pools)  # least recently used first out
        self._lock_waits = 0  # appends that took the pool's lock (stats())
        self._drops = 0  # fastpool_drops' counter as this store last read it (_configure reads it)
        self._session: _Session | None = None
        # Inside transaction(): each pool written, with the notification of its last record.
        self._batch: dict[str, list[bytes] | None] | None = None
        self._notices = _Notices()
        self._listener: _Listener | None = None
        try:
            self._configure(self._db())
            if self._notified:
                self._start_listener()
        except BaseException:
            self.close()
            raise

    @property
    def schema(self) -> str:
        """The schema holding this store's tables."""
        return self._schema

    @property
    def consistency(self) -> str:
        """``"linearizable"`` (each read confirms freshness) or ``"notified"`` (reads trust LISTEN)."""
        return "notified" if self._notified else "linearizable"

    def close(self) -> None:
        """Close the connections and stop the listener; later calls raise. Closing twice is harmless."""
        self._closed.set()
        if self._inherited:
            return  # the parent's connections: psycopg never closes them from a forked child
        if self._listener is not None:
            self._listener.stop()
        with self._notices.changed:
            self._notices.changed.notify_all()  # wakes follow() loops
        with self._lock:
            self._drop_session()

    def evict(self, pool_id: str) -> None:
        """Drop the pool's cached state (if any); its next use reads it from the database again."""
        pool_id = check_id(pool_id, "pool_id")
        with self._lock:
            if self._closed.is_set():
                self._db()  # raises: the store is closed
            self._cache.states.pop(pool_id, None)

    def _point_index_differences(self) -> list[tuple[str, int, int | str]]:
        """``fastpool verify``: per pool the key index covers, ``(pool_id, mark, entries that
        differ from the records up to the mark)``, or the error that stopped the check there
        (a record whose JSON does not parse, reported by the replay too)."""
        differences: list[tuple[str, int, int | str]] = []
        with self._lock:
            points = f"{self._quoted}.fastpool_point_marks".encode()
            if self._call(b"fastpool_point_tables", [points]).get_value(0, 0) != b"t":
                return differences
            marks = self._call(b"fastpool_point_marks", ())
            for i in range(marks.ntuples):
                pool_id, mark = _text(marks.get_value(i, 0)), _int(marks.get_value(i, 1))
                try:
                    wrong: int | str = _int(
                        self._call(b"fastpool_point_check", [pool_id.encode(), str(mark).encode()]).get_value(0, 0)
                    )
                except AgentError as error:
                    wrong = error.message
                if wrong:
                    differences.append((pool_id, mark, wrong))
        return differences

    def pools(self) -> list[tuple[str, int, int]]:
        """Every pool with records in the schema: ``(pool_id, record count, last sequence)``, sorted."""
        with self._lock:
            result = self._call(b"fastpool_pools", ())
        get = result.get_value
        return [(_text(get(i, 0)), _int(get(i, 1)), _int(get(i, 2))) for i in range(result.ntuples)]

    # -- inspection and copy (the CLI shows every record, where reads show none of a pool never opened)

    def _unopened_pools(self) -> set[str]:
        with self._lock:
            result = self._call(b"fastpool_unopened", ())
        return {_text(value) for value in _column(result)}

    def _stream_rows(self, pool_id: str, after: int = 0) -> Generator[Row, None, None]:
        """A page of rows per query, by sequence (records are only appended, so the pages join
        up); the store's lock is held only while a page is read."""
        while True:
            with self._lock:
                session = self._db()
                try:
                    page = self._rows_again(session, pool_id, after, _PAGE)
                except self._error as error:
                    raise self._failed(error) from error
            for sequence, kind, text in page:
                yield sequence, kind, text.decode("utf-8")
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def _event_sequence(self, pool_id: str) -> int | None:
        with self._lock:
            rows = _column(self._call(b"fastpool_event_seq", [pool_id.encode()]))
        return _int(rows[0]) if rows else None

    def _append_rows(
        self, pool_id: str, rows: Iterable[Row], event_sequence: int | None
    ) -> tuple[int, int, int | None]:
        pool = pool_id.encode()
        last = 0
        with self._lock:
            session = self._db()
            try:
                # The pool's lock, as a write takes it: no record can be appended to it meanwhile.
                session.run(b"BEGIN; SELECT pg_advisory_xact_lock(%d)" % _key(self._schema, pool_id))
                if session.call(b"fastpool_exists", [pool]).get_value(0, 0) == b"t":
                    raise self._pool_exists(pool_id)
                # COPY streams the rows to the server: no round trip per row, none held here.
                with session.connection.cursor() as cursor, cursor.copy(self._copy_rows) as copy:
                    for last, kind, text in rows:
                        copy.write_row((pool_id, last, kind, text))
                if event_sequence is not None:
                    session.call(b"fastpool_set_event_seq", [pool, str(event_sequence).encode()])
                # Delivered at the commit: followers and notified readers see the pool at once.
                session.call(b"fastpool_notify_copied", self._notice(pool, str(last).encode())[:2])
                session.run(b"COMMIT")
            except self._error as error:
                raise self._failed(error) from error
            except BaseException:
                self._reset()  # the pool exists, the source failed, or an interrupt: nothing written
                raise
            self._cache.states.pop(pool_id, None)
            extent = self._call(b"fastpool_extent", [pool])
        events = extent.get_value(0, 2)
        return _int(extent.get_value(0, 0)), _int(extent.get_value(0, 1)), None if events is None else _int(events)

    def __enter__(self) -> PostgresAgentPoolStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open"
        host = self._options.get("host", "")
        return f"PostgresAgentPoolStore(host={host!r}, schema={self._schema!r}, {self.consistency}, {state})"

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[PostgresAgentPoolStore]:
        """Group several writes into one transaction: one commit, all or nothing (as SQLite's).

        Inside the block the first read or write of each pool takes the pool's lock and
        catches up, in one round trip; until the block ends no other writer appends to that
        pool, so later reads and writes of it ask the server nothing more (a write appends in
        one round trip, never with the one-statement append, whose conflict would abort the
        transaction). Reads see the block's writes; other threads using this store object
        wait until it ends. The
        commit and the first pool's notification go in one round trip (each further pool's
        notification is one more). An exception rolls every
        write back and propagates; so does a statement that fails inside the block (the
        block's next call raises RETRYABLE: PostgreSQL ended the transaction).
        """
        with self._transaction():
            yield self

    @contextmanager
    def _transaction(self, first: bytes = b"") -> Iterator[None]:
        """``transaction()``; ``first``, statements sent with its ``BEGIN`` (one round trip:
        the runtime's surface lock)."""
        with self._lock:
            if self._batch is not None:
                raise InvalidInput("transaction: this store object already has a transaction open")
            session = self._db()
            touched: dict[str, list[bytes] | None] = {}
            try:
                session.run(b"BEGIN" + first)
                self._batch = touched
                try:
                    yield
                finally:
                    self._batch = None
                notices = [notice for notice in touched.values() if notice is not None]
                if notices:
                    session.notifying(b"fastpool_commit", (), notices[0])
                    for notice in notices[1:]:
                        session.call(b"fastpool_notify", notice)
                else:
                    session.run(b"COMMIT")
            except BaseException as error:
                for pool_id in touched:
                    self._cache.states.pop(pool_id, None)
                self._reset()  # rolls back what is still open
                if isinstance(error, self._error):
                    raise translate(error) from error
                raise
            for pool_id in touched:
                self._trim(pool_id)

    # -- connections -------------------------------------------------------------------------

    def _db(self) -> _Session:
        """The connection, opened again after a loss."""
        if self._closed.is_set():
            raise AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.NOT_RETRYABLE,
                "postgres agent pool store is closed",
            )
        session = self._session
        if self._batch is not None:
            if session is not None and session.in_transaction:
                return session
            raise AgentError(
                AgentErrorKind.INVALID_STATE_TRANSITION,
                RetryClassification.RETRYABLE,
                f"{NAME} store error: the transaction() ended early (a statement failed or the connection "
                "was lost): nothing of it was committed; retry it",
            )
        if session is not None:
            if session.idle:
                return session
            self._reset()  # an interrupted call left it mid-pipeline or in a transaction
            if self._session is not None:
                return self._session
        try:
            connection = _connect(self._psycopg, self._options)
        except self._error as error:
            raise translate(error, login=True) from error
        try:
            session = _Session(connection, self._errors, self._statements)
            session.run(self._setup)
        except BaseException as error:
            connection.close()  # a failed setup or an interrupt: never left for the collector
            if isinstance(error, self._error):
                raise translate(error) from error
            raise
        self._session = session
        return session

    def _drop_session(self) -> None:
        session = self._session
        if session is not None:
            session.close()  # first: an interrupt before it leaves the session to the next reset
            self._session = None

    def _failed(self, error: BaseException) -> AgentError:
        """The error to raise for a driver failure, after ``_reset``."""
        self._reset()
        return translate(error)

    def _reset(self) -> None:
        """Leave the connection idle (see ``_Session.settle``) or, if it is lost or will not
        settle, drop it for the next call."""
        session = self._session
        if session is not None and not session.idle:
            try:
                session.settle()
            except self._error:
                pass
            if not session.idle:
                self._drop_session()

    def _interrupted(self, pool_id: str) -> None:
        """After an exception that no check of fastpool raised (an interrupt, whatever a signal
        handler raises) in a call on ``pool_id``: the pool's cached state may be half applied
        or behind a commit, so the next read replays it; the connection is settled."""
        self._cache.states.pop(pool_id, None)
        self._reset()

    def _call(self, name: bytes, params: Sequence[bytes]) -> PGresult:
        session = self._db()
        try:
            return session.call(name, params)
        except self._error as error:
            raise self._failed(error) from error

    def _configure(self, session: _Session) -> None:
        try:
            tables = {_text(row) for row in _column(session.call(b"fastpool_tables", [self._schema.encode()]))}
            if not {"agent_pool_records", "agent_pool_event_seq"} <= tables:
                if self._readonly:
                    raise AgentError.host_configuration_needed(
                        f"postgres agent pool store schema {self._schema!r} has no agent pool tables"
                    )
                # One creator at a time: concurrent CREATE ... IF NOT EXISTS can still collide.
                statements = [
                    "BEGIN",
                    f"SELECT pg_advisory_xact_lock({_key('fastpool schema', self._schema)})",
                    f"CREATE SCHEMA IF NOT EXISTS {self._quoted}",
                    *self._tables,
                    f"INSERT INTO {self._quoted}.fastpool_meta (key, value) "
                    "VALUES ('schema_version', '1') ON CONFLICT DO NOTHING",  # 2 once bounded_state indexes
                    "COMMIT",
                ]
                session.run("; ".join(statements).encode())
                tables.add("fastpool_drops")
            elif "fastpool_meta" in tables:
                rows = _column(session.call(b"fastpool_version", ()))
                version = _text(rows[0]) if rows else str(SCHEMA_VERSION)
                if not version.isdigit() or int(version) > SCHEMA_VERSION:
                    raise AgentError.host_configuration_needed(
                        f"postgres agent pool store schema has fastpool schema version {version!r}; "
                        f"this fastpool reads version {SCHEMA_VERSION}: upgrade fastpool"
                    )
            if "fastpool_drops" not in tables and not self._readonly:
                # A schema from before delete_pool; one creator at a time, as for a new schema.
                lock = f"SELECT pg_advisory_xact_lock({_key('fastpool schema', self._schema)})"
                session.run(f"BEGIN; {lock}; {_DROPS_TABLE.format(s=self._quoted)}; COMMIT".encode())
                tables.add("fastpool_drops")
            if self._bounded and not _POINT_TABLE_NAMES <= tables:
                lock = f"SELECT pg_advisory_xact_lock({_key('fastpool schema', self._schema)})"
                create = "; ".join(text.format(s=self._quoted) for text in (_TABLES[2], *_POINT_TABLES))
                version = (
                    f"INSERT INTO {self._quoted}.fastpool_meta (key, value) VALUES ('schema_version', "
                    f"'{SCHEMA_VERSION}') ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                )
                session.run(f"BEGIN; {lock}; {create}; {version}; COMMIT".encode())
                tables |= _POINT_TABLE_NAMES
            if "fastpool_drops" in tables:
                self._drops = _int(session.run(f"SELECT {_DROPS}".format(s=self._quoted).encode()).get_value(0, 0))
            else:
                self._statements.update(
                    (name, text.format(s=self._quoted).encode()) for name, text in _WITHOUT_DROPS.items()
                )
        except self._error as error:
            raise self._failed(error) from error

    def _start_listener(self) -> None:
        if self._listener is None and not self._closed.is_set():
            options = {**self._options, "application_name": f"{self._options['application_name']} listener"}
            connect = functools.partial(_connect, self._psycopg, options)  # no reference to self
            self._listener = _Listener(connect, self._errors, self._channel, self._notices)
            weakref.finalize(self, self._listener.stop)  # a store dropped without close() stops it too
            self._listener.tried.wait(float(self._options["connect_timeout"]) or None)

    # -- reading -------------------------------------------------------------------------------

    def _rows_again(self, session: _Session, pool_id: str, after: int, limit: int = -1) -> list[tuple[int, str, bytes]]:
        """``_rows`` for a caller that keeps no state: after a deletion, asked again."""
        try:
            return self._rows(session, pool_id, after, limit)
        except _Dropped:
            return self._rows(session, pool_id, after, limit)

    def _rows(
        self, session: _Session, pool_id: str, after: int, limit: int = -1, lock: bytes | None = None
    ) -> list[tuple[int, str, bytes]]:
        """The pool's rows after ``after`` (``_Dropped`` if a pool was deleted since this store
        last looked); with ``lock``, after taking that advisory lock, in the same round trip."""
        params = [
            pool_id.encode(),
            str(min(after, _MAX_SEQUENCE)).encode(),
            str(_MAX_SEQUENCE if limit < 0 else limit).encode(),
            str(self._drops).encode(),
        ]
        result = (
            session.call(b"fastpool_rows", params)
            if lock is None
            else session.call_locked(b"fastpool_rows", params, lock)
        )
        get = result.get_value
        if result.ntuples and get(0, 0) == b"-1":
            self._drops = _int(get(0, 2))
            self._cache.states.clear()  # a pool was deleted since: any cached state may hold records gone
            raise _Dropped
        # Inline, not _int/_text: a cold read decodes every row of the pool here.
        return [(int(get(i, 0)), get(i, 1).decode(), get(i, 2)) for i in range(result.ntuples)]  # type: ignore[arg-type,union-attr,misc]

    # -- backend primitives (called with self._lock held) ----------------------------------

    def _read_state(self, pool_id: str) -> PoolState:
        batch = self._batch
        if batch is not None:
            try:
                return self._batch_state(self._db(), pool_id, batch)
            except self._error as error:
                raise self._failed(error) from error
            except BaseException:
                self._cache.states.pop(pool_id, None)  # maybe half applied; the block's owner rolls back
                raise
        cached = self._cache.states.get(pool_id)
        # The hot path of the notified mode: no notification past the cache, same listener epoch.
        # It leaves the pool's place in the cache as it is (one lookup, as fast as before the
        # bound): here a pool's use is its last catch-up or write.
        if (
            cached is not None
            and cached.epoch == self._notices.epoch
            and cached.state.cursor >= self._notices.heads.get(pool_id, 0)
        ):
            self._cache.hits += 1
            return cached.state
        return self._synced_state(pool_id, cached)

    def _synced_state(self, pool_id: str, cached: _Cached | None) -> PoolState:
        session = self._db()
        notices = self._notices
        # Read before the query: a notification that arrives during it makes the cache stale.
        epoch = notices.epoch if self._notified and notices.listening else _UNKNOWN
        if cached is None:
            cached = _Cached(self._new_state(pool_id))
            self._cache.misses += 1
        try:
            try:
                rows = self._rows(session, pool_id, cached.state.cursor)
            except _Dropped:
                cached = _Cached(self._new_state(pool_id))
                rows = self._rows(session, pool_id, 0)
            self._caught_up(rows)
            self._engine.replay_rows(cached.state, rows)
        except self._error as error:
            raise self._failed(error) from error
        except AgentError:
            # Progress made before a corrupt row is kept, so a later call resumes after it.
            if cached.state.cursor:
                self._cache.keep(pool_id, cached)
            raise
        except BaseException:
            self._interrupted(pool_id)
            raise
        if cached.state.cursor:
            self._cache.keep(pool_id, cached)
        cached.epoch = epoch
        return cached.state

    # -- bounded states (``bounded_state``): trimmed after index fills, keys looked up -------

    def _trim(self, pool_id: str) -> None:
        """After a commit, under ``bounded_state``: once the pool's state holds ``BATCH`` records
        past its last trim, index their keys (``fastpool_point_fill``, under the pool's lock)
        and, once the index covers the state's cursor, forget its messages and wakes
        (``PoolState.trim``). A long backlog (another writer's records, a pool this store
        object never trimmed) is indexed ``_FILL_CHUNK`` records a write. The write is
        committed whatever happens here: a failure only leaves the state whole."""
        cached = self._cache.states.get(pool_id)
        if not self._bounded or cached is None or cached.state.cursor - cached.state.trimmed_to < BATCH:
            return
        state, session = cached.state, self._db()
        cursor = state.cursor
        params = [pool_id.encode(), str(cursor).encode(), str(self._drops).encode()]
        try:
            result = session.call_locked(b"fastpool_point_fill", params, str(_key(self._schema, pool_id)).encode())
        except self._error as error:
            self._bounded = not isinstance(error, self._errors.UndefinedTable)  # its tables dropped: stop
            self._reset()  # the state stays whole; the next write tries again
            return
        except BaseException:
            self._interrupted(pool_id)
            raise
        if result.ntuples and _int(result.get_value(0, 0)) == cursor:
            state.trim(cursor)  # else: deleted since, a backlog still to index, or the state behind the mark

    def _look_up(self, state: PoolState, field: str, key: str) -> Any:
        """A trimmed state's answer for a key it may have forgotten: the record the index names
        for it, kept in the state; where the index cannot be trusted, the state is restored."""
        if self._bounded:
            session = self._db()
            params = [state.pool_id.encode(), str(KEY_KINDS[field]).encode(), key.encode()]
            try:
                result = session.call(b"fastpool_point_row", params)
                rows = [(_int(result.get_value(i, 0)), _text_or_none(result.get_value(i, 1)), result.get_value(i, 2))
                        for i in range(result.ntuples)]  # fmt: skip
                found = answer_of_rows(self._engine, state, field, key, rows)
            except Untrusted:
                pass  # the records answer
            except self._errors.UndefinedTable:
                self._bounded = False  # its tables were dropped: the records answer from here on
                self._reset()  # the statement ended the call's transaction, if any: the caller retries
                raise AgentError(
                    AgentErrorKind.INVALID_STATE_TRANSITION,
                    RetryClassification.RETRYABLE,
                    f"{NAME}: the key index (fastpool_point_keys) is gone; retry: the records answer",
                ) from None
            except self._error as error:
                raise self._failed(error) from error
            else:
                getattr(state, field)[key] = found
                return found
        self._restore(state)
        return getattr(state, field).get(key)

    def _restore(self, state: PoolState) -> None:
        """Replay the pool up to a trimmed state's cursor and give the state every message and wake back."""
        full = self._new_state(state.pool_id)
        try:
            rows = self._rows(self._db(), state.pool_id, 0, state.cursor)
            self._engine.replay_rows(full, rows)
        except self._error as error:
            raise self._failed(error) from error
        except _Dropped:
            pass  # a pool was deleted: every cached state is forgotten, and this one is stale
        if full.cursor != state.cursor:
            self._cache.states.pop(state.pool_id, None)
            raise self._changed_while_read(state.pool_id)
        state.restore(full)

    def _append(self, pool_id: str, build: Build) -> tuple[Any, int]:
        try:
            return self._append_any(pool_id, build)
        except AgentError:
            raise  # a failed check or a driver error: the connection is reset, the cache true
        except BaseException:
            self._interrupted(pool_id)
            raise

    def _append_any(self, pool_id: str, build: Build) -> tuple[Any, int]:
        session = self._db()
        cached = self._cache.states.get(pool_id)
        # Inside transaction() a conflict must not abort the transaction: lock, catch up, then append.
        if self._batch is None and (cached is None or not cached.contended):
            state = self._new_state(pool_id) if cached is None else cached.state
            try:
                payload = build(state)
            except AgentError:
                payload = build  # the check failed on the cached state: decide it under the lock
            if payload is None:
                return None, state.cursor  # nothing to append (an equal config: final once set)
            if payload is not build and self._append_fast(session, pool_id, state, payload):
                self._remember(pool_id, state)
                self._trim(pool_id)
                return payload, state.cursor
        return self._append_locked(session, pool_id, build)

    def _append_fast(self, session: _Session, pool_id: str, state: PoolState, payload: Any) -> bool:
        """Append at the cached cursor + 1 in one statement; False if another writer was first."""
        sequence = state.cursor + 1
        pool = pool_id.encode()
        number = str(sequence).encode()
        params = [
            pool,
            number,
            payload.TYPE.encode(),
            self._engine.dumps(payload).encode(),
            str(self._drops).encode(),  # a pool deleted since this cache was made: no append here
        ]
        lock = str(_key(self._schema, pool_id)).encode()
        try:
            appended = session.notifying(b"fastpool_append", params, self._notice(pool, number), lock).ntuples == 1
        except self._errors.UniqueViolation:
            appended = False
        except self._error as error:
            raise self._failed(error) from error
        if appended:
            state.apply(payload, sequence)
            self._appends += 1
        return appended

    def _append_locked(self, session: _Session, pool_id: str, build: Build) -> tuple[Any, int]:
        """Lock the pool, catch up, check and append: a transaction of its own, or a step of
        ``transaction()``'s (which commits, and notifies, at its end)."""
        batch = self._batch
        try:
            if batch is None:
                cached = self._cache.states.get(pool_id)
                state = self._new_state(pool_id) if cached is None else cached.state
                session.run(b"BEGIN; SELECT pg_advisory_xact_lock(%d)" % _key(self._schema, pool_id))
                self._lock_waits += 1
                state = self._catch_up_locked(session, pool_id, state)
            else:
                state = self._batch_state(session, pool_id, batch)
            payload = build(state)
            if payload is not None:
                sequence = state.cursor + 1
                pool = pool_id.encode()
                number = str(sequence).encode()
                text = self._engine.dumps(payload).encode()
                session.call(b"fastpool_append_locked", [pool, number, payload.TYPE.encode(), text])
                if batch is None:
                    session.notifying(b"fastpool_commit", (), self._notice(pool, number))
                else:
                    batch[pool_id] = self._notice(pool, number)  # sent with the commit
            elif batch is None:
                session.run(b"COMMIT")
        except self._error as error:
            raise self._failed(error) from error
        except BaseException:
            if batch is None:
                self._reset()  # a contract error from build, or an interrupt: nothing was appended
            raise  # inside transaction(): a contract error leaves it going; its owner ends it on anything else
        if payload is None:
            return None, state.cursor
        state.apply(payload, sequence)
        self._appends += 1
        self._remember(pool_id, state)
        if batch is None:
            self._trim(pool_id)
        return payload, sequence

    def _batch_state(self, session: _Session, pool_id: str, batch: dict[str, list[bytes] | None]) -> PoolState:
        """The pool's state inside ``transaction()``: the first call on a pool takes its lock and
        catches up in one round trip; from then on nothing else appends to it until the block
        ends, so the state is current without asking."""
        cached = self._cache.states.get(pool_id)
        if cached is not None and pool_id in batch:
            self._cache.hits += 1
            return cached.state
        state = self._new_state(pool_id) if cached is None else cached.state
        lock = None
        if pool_id not in batch:
            batch[pool_id] = None  # a rollback forgets the pool's state
            lock = str(_key(self._schema, pool_id)).encode()
            self._lock_waits += 1
        return self._catch_up_locked(session, pool_id, state, lock)

    def _catch_up_locked(
        self, session: _Session, pool_id: str, state: PoolState, lock: bytes | None = None
    ) -> PoolState:
        """Catch ``state`` up with the pool's lock held (taken first, in the same round trip, with
        ``lock``); a state made before a deletion is replaced by the pool as it is."""
        try:
            rows = self._rows(session, pool_id, state.cursor, lock=lock)
        except _Dropped:
            state = self._new_state(pool_id)
            rows = self._rows(session, pool_id, 0)
        self._caught_up(rows)
        try:
            self._engine.replay_rows(state, rows)
        finally:
            if state.cursor:
                # Others appended since this cache last looked: take the lock first next time.
                self._remember(pool_id, state).contended = bool(rows)
        return state

    def _caught_up(self, rows: list[tuple[int, str, bytes]]) -> None:
        self._cache.catch_ups += 1
        self._cache.records_read += len(rows)

    def _counts(self) -> dict[str, int]:
        return {"appends": self._appends, **self._cache.counts(), "lock_waits": self._lock_waits}

    def _notice(self, pool: bytes, number: bytes) -> list[bytes]:
        """``fastpool_notify``'s parameters: the payload is ``"<seq>:<pool id>"``."""
        return [self._channel_param, number + b":" + pool, pool, number]

    def _remember(self, pool_id: str, state: PoolState) -> _Cached:
        cached = self._cache.states.get(pool_id)
        if cached is None:
            cached = _Cached(state)
            self._cache.keep(pool_id, cached)
        return cached

    def _records_after(self, pool_id: str, after: int, limit: int = -1) -> list[AgentPoolStoreRecord]:
        session = self._db()
        try:
            rows = self._rows_again(session, pool_id, after, limit)
        except self._error as error:
            raise self._failed(error) from error
        return list(self._decode_records(pool_id, rows))

    def _allocate_event_sequence(self, pool_id: str) -> int:
        cached = self._cache.states.get(pool_id)
        # A cached open needs no round trip: the statement allocates nothing if a pool was deleted since.
        if cached is None or cached.state.config is None:
            self._opened(self._read_state(pool_id))
        lock = str(_key(self._schema, pool_id)).encode()  # as an append: no sequence for a pool being deleted
        while True:
            session = self._db()
            try:
                result = session.call_locked(
                    b"fastpool_next_event", [pool_id.encode(), str(self._drops).encode()], lock
                )
            except self._error as error:
                raise self._failed(error) from error
            if result.ntuples:
                return _int(result.get_value(0, 0))
            self._opened(self._synced_state(pool_id, None))  # reads the new counter, forgets the caches

    def _delete_pool(self, pool_id: str) -> tuple[int, int, int | None]:
        pool = pool_id.encode()
        session = self._db()
        try:
            # The pool's lock, as a write takes it: no record is appended to it meanwhile.
            session.run(b"BEGIN; SELECT pg_advisory_xact_lock(%d)" % _key(self._schema, pool_id))
            extent = session.call(b"fastpool_extent", [pool])
            count, last, events = _int(extent.get_value(0, 0)), _int(extent.get_value(0, 1)), extent.get_value(0, 2)
            drops = None
            if count or events is not None:
                session.call(b"fastpool_delete_records", [pool])
                session.call(b"fastpool_delete_event_seq", [pool])
                # The key index, if a bounded_state store made one (maybe another process).
                points = f"{self._quoted}.fastpool_point_marks".encode()
                if session.call(b"fastpool_point_tables", [points]).get_value(0, 0) == b"t":
                    session.call(b"fastpool_point_delete", [pool])
                drops = _int(session.call(b"fastpool_count_drop", ()).get_value(0, 0))
                # Delivered at the commit: notified readers stop trusting their caches.
                session.call(b"fastpool_notify_copied", [self._channel_param, b"drop:" + pool])
            session.run(b"COMMIT")
        except self._error as error:
            raise self._failed(error) from error
        except BaseException:
            self._reset()
            raise
        if drops is not None:
            self._drops = drops
            self._cache.states.clear()
        return count, last, None if events is None else _int(events)

    def _change_token(self) -> object:
        self._db()
        self._start_listener()
        notices = self._notices
        if not notices.listening:
            return object()  # nothing vouches for the tables: follow() reads them every time
        return (notices.epoch, notices.count)

    def _wait_for_change(self, seen: object, timeout: float) -> None:
        notices = self._notices
        with notices.changed:
            if not notices.listening:
                notices.changed.wait(timeout)  # polling until the listener is back
                return
            notices.changed.wait_for(lambda: self._closed.is_set() or (notices.epoch, notices.count) != seen, timeout)


def _text_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _text(value: bytes | None) -> str:
    assert value is not None  # every column read is NOT NULL
    return value.decode("utf-8")


def _int(value: bytes | None) -> int:
    assert value is not None
    return int(value)


def _column(result: PGresult) -> list[bytes | None]:
    return [result.get_value(i, 0) for i in range(result.ntuples)]
