"""Shared by the store suites: value builders, the store arrangements, raw-file inspection.

The contract suite runs one set of tests against several *arrangements* of stores
(``make_case``); each hands the test an object with the ``AgentPoolStore`` methods:

* ``memory``: ``InMemoryAgentPoolStore``;
* ``file``: one ``SqliteAgentPoolStore``;
* ``two_objects``: two store objects on one file, every write through the first and
  every read through the second (``SplitStore``);
* ``reopened``: writes through one store object, which is closed before the next read;
  a new object on the same file does the reads (``ReopeningStore``);
* ``postgres``: one ``PostgresAgentPoolStore`` (default, linearizable reads), in a schema of
  its own; ``postgres_notified``: the same with ``consistency="notified"``;
  ``postgres_two_objects``: writes through one store object, reads through another (two
  connections: a read after another object's acknowledged write must see it).

The multi-process workers live here too: ``spawn`` children import them by module name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
from helpers import FIXTURES

from fastpool import (
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolStoreConfig,
    AgentPoolWakePolicy,
    EventCorrelation,
    EventFamily,
    EventFilter,
    EventKind,
    InMemoryAgentPoolStore,
    MessageReceipt,
    MessageStatus,
    PolicyRef,
    PostgresAgentPoolStore,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
    WakeCondition,
    WakeRegistration,
    WakeRegistrationStatus,
)
from fastpool.benchmarking import workload

__all__ = ["FIXTURES"]

# -------------------------------------------------------------------- value builders

#: The default config (what the Rust ``AgentPool`` builder opens with).
CONFIG = AgentPoolStoreConfig()
#: A config that differs from ``CONFIG`` in every field.
OTHER_CONFIG = AgentPoolStoreConfig(
    message_policy=AgentPoolMessagePolicy(
        required_policy_refs=(PolicyRef.new("policy.required"),), include_sender_in_pool_broadcast=True
    ),
    wake_policy=AgentPoolWakePolicy(envelope_only=False),
    policy_refs=(PolicyRef.new("policy.pool"), PolicyRef.with_kind("privacy", "privacy.pool")),
)


def member(run_id: str, agent_id: str = "agent.a", topics: tuple[str, ...] = (), **fields: Any) -> AgentPoolMember:
    return AgentPoolMember(run_id=run_id, agent_id=agent_id, topics=topics, **fields)


def message(message_id: str, key: str | None = None, sender: str = "run.a", to: str = "run.b") -> RunMessage:
    return RunMessage(
        message_id=message_id,
        from_=sender,
        to=RunAddress.run(to),
        content_ref=f"content.{message_id}",
        idempotency_key=key if key is not None else f"key.{message_id}",
        correlation=EventCorrelation(),
    )


def receipt(
    message_id: str, status: MessageStatus = MessageStatus.ACCEPTED, delivered_to: tuple[str, ...] = ()
) -> MessageReceipt:
    return MessageReceipt(message_id=message_id, status=status, delivered_to=delivered_to)


def condition(condition_id: str, key: str | None = None, run_id: str = "run.b") -> WakeCondition:
    return WakeCondition(
        condition_id=condition_id,
        run_id=run_id,
        filter=EventFilter(
            run_ids=("run.a",), families=(EventFamily.AGENT_POOL,), kinds=(EventKind.RUN_MESSAGE_DELIVERED,)
        ),
        idempotency_key=key if key is not None else f"wake-key.{condition_id}",
    )


def wake_args(
    condition_id: str, status: WakeRegistrationStatus = WakeRegistrationStatus.REGISTERED, key: str | None = None
) -> tuple[WakeCondition, Any, WakeRegistration]:
    """``(condition, compiled_filter, registration)`` for ``record_wake``."""
    cond = condition(condition_id, key)
    registration = WakeRegistration(condition_id=condition_id, run_id=cond.run_id, status=status)
    return cond, cond.compile_envelope_filter(), registration


# -------------------------------------------------------------------- store arrangements

#: The write methods of ``AgentPoolStore`` (open_pool and next_event_sequence write too).
WRITES = frozenset(
    {
        "open_pool",
        "record_pool_created",
        "delete_pool",
        "join_member",
        "leave_member",
        "record_message",
        "record_message_once",
        "record_wake",
        "record_wake_once",
        "next_event_sequence",
    }
)
#: The read methods.
READS = frozenset(
    {
        "snapshot",
        "members",
        "member",
        "topics",
        "topic_members",
        "message_receipt",
        "wake_registration",
        "wake",
        "watch",
    }
)


class SplitStore:
    """Two store objects on one file: every write goes to ``writer``, every read to ``reader``."""

    def __init__(self, writer: SqliteAgentPoolStore, reader: SqliteAgentPoolStore) -> None:
        self.writer = writer
        self.reader = reader

    def __getattr__(self, name: str) -> Any:
        if name in WRITES:
            return getattr(self.writer, name)
        if name in READS:
            return getattr(self.reader, name)
        raise AttributeError(name)

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


class ReopeningStore:
    """Writes through one store object; the first read after a write closes it, and a new
    object on the same file serves the reads (until the next write closes that one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: SqliteAgentPoolStore | None = None
        self._reader: SqliteAgentPoolStore | None = None
        #: How many store objects were opened (a test checks the reopening really happens).
        self.opened = 0

    def _open(self) -> SqliteAgentPoolStore:
        self.opened += 1
        return SqliteAgentPoolStore(self.path)

    def _for_write(self) -> SqliteAgentPoolStore:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    def _for_read(self) -> SqliteAgentPoolStore:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is None:
            self._reader = self._open()
        return self._reader

    def __getattr__(self, name: str) -> Any:
        if name in WRITES:
            return getattr(self._for_write(), name)
        if name == "watch":
            # Materialized, so the records come from this reader before it may be closed.
            def watch(*args: Any, **kwargs: Any) -> Iterator[Any]:
                return iter(list(self._for_read().watch(*args, **kwargs)))

            return watch
        if name in READS:
            return getattr(self._for_read(), name)
        raise AttributeError(name)

    def close(self) -> None:
        for store in (self._writer, self._reader):
            if store is not None:
                store.close()
        self._writer = self._reader = None


class StoreCase:
    """One arrangement under test: ``store`` is what the test calls."""

    def __init__(self, name: str, store: Any, path: Path | None, pg: PgTarget | None = None) -> None:
        self.name = name
        self.store = store
        self.path = path
        self.pg = pg
        #: The in-memory store words its errors without the leading "sqlite ".
        self.prefix = "postgres " if pg is not None else "" if path is None else "sqlite "

    @property
    def sqlite(self) -> bool:
        return self.path is not None

    @property
    def durable(self) -> bool:
        """The store keeps tables that ``raw_counts`` can read (SQLite or PostgreSQL)."""
        return self.path is not None or self.pg is not None

    def message(self, text: str) -> str:
        """``text`` ("agent pool store ...") as this store words it."""
        return self.prefix + text

    def raw_counts(self) -> tuple[int, int] | None:
        """Rows in ``agent_pool_records`` and ``agent_pool_event_seq`` (None for memory)."""
        if self.pg is not None:
            return pg_raw_counts(self.pg)
        return None if self.path is None else raw_counts(self.path)

    def close(self) -> None:
        close = getattr(self.store, "close", None)  # the in-memory store has nothing to close
        if close is not None:
            close()
        if self.pg is not None:
            self.pg.close()


STORE_KINDS = ("memory", "file", "two_objects", "reopened", "postgres", "postgres_notified", "postgres_two_objects")


class PgTarget:
    """A PostgreSQL database and the schema one test uses in it, with a plain psycopg
    connection (not a store, opened on first use) for looking at the raw tables."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self._connection: Any = None

    def store(self, **options: Any) -> PostgresAgentPoolStore:
        return PostgresAgentPoolStore(self.conninfo, schema=self.schema, **options)

    def query(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of ``query`` (``?`` placeholders, as for SQLite) in this schema."""
        if self._connection is None:
            import psycopg

            self._connection = psycopg.connect(self.conninfo, autocommit=True)
            self._connection.execute(f'SET search_path TO "{self.schema}"')
        return list(self._connection.execute(query.replace("?", "%s"), params).fetchall())

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def make_case(kind: str, directory: Path, pg: PgTarget | None = None) -> StoreCase:
    path = directory / "pools.sqlite"
    if kind.startswith("postgres"):
        assert pg is not None, "PostgreSQL arrangements need a server (the pg_server fixture)"
        if kind == "postgres":
            return StoreCase(kind, pg.store(), None, pg)
        if kind == "postgres_notified":
            return StoreCase(kind, pg.store(consistency="notified"), None, pg)
        if kind == "postgres_two_objects":
            return StoreCase(kind, SplitStore(pg.store(), pg.store()), None, pg)
    if kind == "memory":
        return StoreCase(kind, InMemoryAgentPoolStore(), None)
    if kind == "file":
        return StoreCase(kind, SqliteAgentPoolStore(path), path)
    if kind == "two_objects":
        return StoreCase(kind, SplitStore(SqliteAgentPoolStore(path), SqliteAgentPoolStore(path)), path)
    if kind == "reopened":
        return StoreCase(kind, ReopeningStore(path), path)
    raise ValueError(kind)


# -------------------------------------------------------------------- raw file access


def lookups(info: workload.PoolInfo) -> list[tuple[str, str]]:
    """The point lookups of a ``workload`` pool: every key it has, and a few it has not."""
    keys = [("message_receipt", workload.message_key(i)) for i in range(info.messages + 3)]
    keys += [("wake_registration", workload.wake_key(i)) for i in range(info.wakes + 3)]
    return keys + [("wake", workload.condition_id(i)) for i in range(info.wakes + 3)]


def raw_connection(path: Path) -> apsw.Connection:
    """A plain APSW connection to ``path``, not a store (the caller closes it)."""
    return apsw.Connection(str(path))


def raw_counts(path: Path) -> tuple[int, int]:
    db = raw_connection(path)
    try:
        records = db.execute("SELECT count(*) FROM agent_pool_records").fetchall()[0][0]
        sequences = db.execute("SELECT count(*) FROM agent_pool_event_seq").fetchall()[0][0]
        return records, sequences
    finally:
        db.close()


def raw_rows(path: Path, pool_id: str) -> list[tuple[int, str, Any, str]]:
    """``(seq, kind, payload_json, typeof(payload_json))`` of a pool, in order."""
    db = raw_connection(path)
    try:
        return [
            tuple(row)  # type: ignore[misc]
            for row in db.execute(
                "SELECT seq, kind, payload_json, typeof(payload_json) FROM agent_pool_records "
                "WHERE pool_id = ? ORDER BY seq",
                (pool_id,),
            )
        ]
    finally:
        db.close()


def pg_raw_counts(pg: PgTarget) -> tuple[int, int]:
    (counts,) = pg.query(
        "SELECT (SELECT count(*) FROM agent_pool_records), (SELECT count(*) FROM agent_pool_event_seq)"
    )
    return int(counts[0]), int(counts[1])


# -------------------------------------------------------------------- multi-process workers
# Run in "spawn" children (test_multiprocess.py): they import this module by name, so the
# child imports fastpool exactly as the parent did (same sys.path, same environment).
# Each reports plain data through ``results``; errors are reported, never raised. ``target``
# is a file path, or ``(conninfo, schema)`` for PostgreSQL.

CONFIGS = {"default": CONFIG, "other": OTHER_CONFIG}


def worker_store(target: Any) -> Any:
    """The store a worker process opens on ``target``."""
    if isinstance(target, tuple):
        conninfo, schema = target
        return PostgresAgentPoolStore(conninfo, schema=schema)
    return SqliteAgentPoolStore(target)


def _identity() -> dict[str, Any]:
    import fastpool

    return {"pid": os.getpid(), "fastpool": fastpool.__file__, "extensions": fastpool.USE_EXTENSIONS}


def _error_data(error: BaseException) -> dict[str, Any]:
    from fastpool import AgentError

    if isinstance(error, AgentError):
        return {
            "type": type(error).__name__,
            "kind": error.kind.value,
            "retry": error.retry.value,
            "message": error.message,
        }
    return {"type": type(error).__name__, "message": repr(error)}


def mp_record_messages(path: Any, pool_id: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """``count`` record_message calls with ids ``msg.<worker>.<n>``; reports the cursors."""
    report = _identity() | {"worker": worker, "cursors": [], "errors": []}
    try:
        with worker_store(path) as store:
            barrier.wait(timeout=30)
            for n in range(count):
                message_id = f"msg.{worker}.{n:04}"
                cursor = store.record_message(pool_id, message(message_id), receipt(message_id))
                report["cursors"].append(cursor.sequence)
    except BaseException as error:
        barrier.abort()  # the other workers stop waiting for this one
        report["errors"].append(_error_data(error))
    results.put(report)


def mp_record_messages_from_threads(
    path: Any, pool_id: str, worker: int, threads: int, count: int, barrier: Any, results: Any
) -> None:
    """``threads`` threads sharing one store object (so their writes share group commits), each
    making ``count`` record_message calls with ids ``msg.<worker>.<thread>.<n>``; reports each
    thread's cursors."""
    import threading

    report = _identity() | {"worker": worker, "cursors": {}, "errors": []}
    try:
        with worker_store(path) as store:
            barrier.wait(timeout=30)

            def append(thread: int) -> None:
                cursors = report["cursors"][thread] = []
                try:
                    for n in range(count):
                        message_id = f"msg.{worker}.{thread}.{n:04}"
                        cursors.append(store.record_message(pool_id, message(message_id), receipt(message_id)).sequence)
                except BaseException as error:
                    report["errors"].append(_error_data(error))

            running = [threading.Thread(target=append, args=(thread,)) for thread in range(threads)]
            for thread in running:
                thread.start()
            for thread in running:
                thread.join()
    except BaseException as error:
        barrier.abort()  # the other workers stop waiting for this one
        report["errors"].append(_error_data(error))
    results.put(report)


def mp_next_event_sequence(path: Any, pool_id: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """``count`` next_event_sequence calls; reports the values."""
    report = _identity() | {"worker": worker, "values": [], "errors": []}
    try:
        with worker_store(path) as store:
            barrier.wait(timeout=30)
            for _ in range(count):
                report["values"].append(store.next_event_sequence(pool_id))
    except BaseException as error:
        barrier.abort()  # the other workers stop waiting for this one
        report["errors"].append(_error_data(error))
    results.put(report)


def mp_open_pools(path: Any, pool_ids: list[str], config_name: str, worker: int, barrier: Any, results: Any) -> None:
    """Open each pool right after a barrier shared with the other worker (the first barrier
    also lines up creating the store, so a new file is created by both at once)."""
    report = _identity() | {"worker": worker, "outcomes": [], "errors": []}
    try:
        barrier.wait(timeout=30)
        with worker_store(path) as store:
            for pool_id in pool_ids:
                barrier.wait(timeout=30)
                try:
                    snapshot = store.open_pool(pool_id, CONFIGS[config_name])
                    report["outcomes"].append({"ok": True, "cursor": snapshot.cursor.sequence})
                except BaseException as error:
                    report["outcomes"].append({"ok": False} | _error_data(error))
    except BaseException as error:
        barrier.abort()  # the other workers stop waiting for this one
        report["errors"].append(_error_data(error))
    results.put(report)


def mp_record_once(path: str, pool_id: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """For n < ``count``, ``record_message_once`` and ``record_wake_once`` under keys every worker
    shares (the same message and condition; a receipt naming this worker); reports the n each
    call appended and the receipts and registrations in effect that the others returned.
    Even workers go up from 0, odd ones down from ``count - 1``: pairs race on the same key at
    once, and the two directions meet, so more than one worker wins keys whatever the timing."""
    report = _identity() | {"worker": worker, "messages": [], "wakes": [], "in_effect": {}, "errors": []}
    order = range(count) if worker % 2 == 0 else range(count - 1, -1, -1)
    try:
        with SqliteAgentPoolStore(path) as store:
            barrier.wait(timeout=30)
            for n in order:
                message_id, condition_id = f"msg.shared.{n:04}", f"wake.shared.{n:04}"
                mine = receipt(message_id, delivered_to=(f"run.w{worker}",))
                found, cursor = store.record_message_once(pool_id, message(message_id), mine)
                if cursor is not None:
                    report["messages"].append(n)
                else:
                    report["in_effect"][message_id] = list(found.delivered_to)
                cond, compiled, registration = wake_args(condition_id)
                registration = registration.replace(run_id=f"run.w{worker}")
                found, cursor = store.record_wake_once(pool_id, cond, compiled, registration)
                if cursor is not None:
                    report["wakes"].append(n)
                else:
                    report["in_effect"][condition_id] = found.run_id
    except BaseException as error:
        barrier.abort()  # the other workers stop waiting for this one
        report["errors"].append(_error_data(error))
    results.put(report)
