"""What only the SQLite store has: the file, its pragmas, locks, failures and shared caches.

The behavioural contract itself is in ``test_store_contract.py``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from helpers import FIXTURES
from store_helpers import (
    CONFIG,
    OTHER_CONFIG,
    member,
    message,
    raw_connection,
    raw_counts,
    raw_rows,
    receipt,
    wake_args,
)

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolStoreCursor,
    InMemoryAgentPoolStore,
    InvalidInput,
    MemberJoined,
    MessageStatus,
    PolicyRef,
    RetryClassification,
    RunMessage,
    SqliteAgentPoolStore,
    WakeRegistrationStatus,
    open_store,
    wire,
)
from fastpool._probe import PragmaProbe
from fastpool._sql import INSERT
from fastpool.verify import verify

POOL = "pool.sqlite"
FAILURE = "sqlite agent pool store failure: "


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "pools.sqlite"


@pytest.fixture
def store(path: Path) -> Any:
    with SqliteAgentPoolStore(path) as opened:
        yield opened


def connection_of(store: SqliteAgentPoolStore) -> apsw.Connection:
    """The store's own connection: per-connection pragmas can only be read back through it."""
    db = store._db
    assert isinstance(db, apsw.Connection)
    return db


def pragma(db: apsw.Connection, name: str) -> Any:
    return db.execute(f"PRAGMA {name}").fetchall()[0][0]


# ------------------------------------------------------------------------- the file


@pytest.mark.parametrize("synchronous, level", [("normal", 1), ("full", 2)])
def test_pragmas_are_applied(path: Path, synchronous: str, level: int) -> None:
    with SqliteAgentPoolStore(path, synchronous=synchronous) as store:
        db = connection_of(store)
        assert pragma(db, "journal_mode") == "wal"
        assert pragma(db, "synchronous") == level
    raw = raw_connection(path)
    try:
        assert pragma(raw, "journal_mode") == "wal"  # persistent in the file
    finally:
        raw.close()


def test_default_synchronous_is_normal(store: SqliteAgentPoolStore) -> None:
    assert pragma(connection_of(store), "synchronous") == 1


@pytest.mark.parametrize(
    "options, argument",
    [
        ({"synchronous": "off"}, "synchronous"),
        ({"synchronous": "FULLY"}, "synchronous"),
        ({"synchronous": 2}, "synchronous"),
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"busy_timeout": "5"}, "busy_timeout"),
        ({"busy_timeout": None}, "busy_timeout"),
        ({"max_cached_pools": 0}, "max_cached_pools"),
        ({"max_cached_pools": -1}, "max_cached_pools"),
        ({"max_cached_pools": True}, "max_cached_pools"),
        ({"max_cached_pools": 2.0}, "max_cached_pools"),
        ({"max_cached_pools": None}, "max_cached_pools"),
    ],
)
def test_bad_options_are_invalid_input(path: Path, options: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        SqliteAgentPoolStore(path, **options)
    assert argument in raised.value.message


def test_bad_path_type_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as raised:
        SqliteAgentPoolStore(42)  # type: ignore[arg-type]
    assert "path" in raised.value.message


@pytest.mark.parametrize("name", ["a\0b.sqlite", "a\udcffb.sqlite"], ids=["nul", "lone-surrogate"])
def test_a_path_sqlite_cannot_open_is_invalid_input(tmp_path: Path, name: str) -> None:
    """Every opener, also read-only and ``verify``: ``InvalidInput`` naming ``path``, nothing created."""
    path = str(tmp_path / "dir" / name)
    openers = [
        lambda: SqliteAgentPoolStore(path),
        lambda: SqliteAgentPoolStore(Path(path), readonly=True),
        lambda: SqliteAgentPoolStore.open(path),
        lambda: open_store(path),
        lambda: verify(path),
    ]
    for opener in openers:
        with pytest.raises(InvalidInput) as raised:
            opener()
        assert raised.value.message.startswith("path: "), raised.value.message
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_option_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    for opener in (open_store, SqliteAgentPoolStore.open):
        with pytest.raises(InvalidInput) as raised:
            opener(path, bogus=1)
        assert raised.value.message == (
            "bogus: not an option of SqliteAgentPoolStore "
            "(it takes synchronous, busy_timeout, readonly, max_cached_pools, bounded_state, engine)"
        )
    with pytest.raises(InvalidInput, match="bogus: not an option of InMemoryAgentPoolStore"):
        open_store("memory:", bogus=1)
    with pytest.raises(InvalidInput, match="target: percent-escapes that are not UTF-8"):
        open_store(f"sqlite://{tmp_path}/a%FF.sqlite")
    assert not path.exists()


@pytest.mark.parametrize("engine", ["fastpool._replay_py", 42, os], ids=["module-name", "int", "other-module"])
def test_engine_must_be_a_replay_engine_module(path: Path, engine: Any) -> None:
    with pytest.raises(InvalidInput) as raised:
        SqliteAgentPoolStore(path, engine=engine)
    assert raised.value.message.startswith("engine: ")
    with pytest.raises(InvalidInput) as raised:
        InMemoryAgentPoolStore(engine=engine)
    assert raised.value.message.startswith("engine: ")
    assert not path.exists()


RUST_COLUMNS = {
    # PRAGMA table_info: (cid, name, type, notnull, dflt_value, pk)
    "agent_pool_records": [
        (0, "pool_id", "TEXT", 1, None, 1),
        (1, "seq", "INTEGER", 1, None, 2),
        (2, "kind", "TEXT", 1, None, 0),
        (3, "payload_json", "TEXT", 1, None, 0),
    ],
    "agent_pool_event_seq": [
        (0, "pool_id", "TEXT", 0, None, 1),
        (1, "seq", "INTEGER", 1, None, 0),
    ],
}


def table_info(db: apsw.Connection, table: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.execute(f"PRAGMA table_info({table})")]


def test_new_file_has_the_rust_tables_and_fastpool_meta(path: Path) -> None:
    SqliteAgentPoolStore(path).close()
    db = raw_connection(path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"agent_pool_records", "agent_pool_event_seq", "fastpool_meta"} <= tables
        assert all(name.startswith(("agent_pool_", "fastpool_")) for name in tables), tables
        for table, columns in RUST_COLUMNS.items():
            assert table_info(db, table) == columns
        assert db.execute("SELECT value FROM fastpool_meta WHERE key = 'schema_version'").fetchall() == [("1",)]
    finally:
        db.close()


def test_the_rust_fixture_file_has_the_same_columns() -> None:
    # The reference for RUST_COLUMNS: the file the Rust crate wrote.
    db = apsw.Connection(str(FIXTURES / "db" / "flow.sqlite"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        for table, columns in RUST_COLUMNS.items():
            assert table_info(db, table) == columns
    finally:
        db.close()


@pytest.fixture
def rust_file(tmp_path: Path) -> Path:
    """A writable copy of the Rust-written fixture (no fastpool tables)."""
    copy = tmp_path / "rust.sqlite"
    shutil.copyfile(FIXTURES / "db" / "flow.sqlite", copy)
    os.chmod(copy, stat.S_IRUSR | stat.S_IWUSR)
    db = raw_connection(copy)
    try:
        assert not db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'fastpool%'").fetchall()
    finally:
        db.close()
    return copy


def test_a_file_written_by_the_rust_crate_opens_and_works(rust_file: Path) -> None:
    with SqliteAgentPoolStore(rust_file) as store:
        assert store.snapshot("pool.flow").cursor == AgentPoolStoreCursor(sequence=9)
        assert store.open_pool("pool.flow", CONFIG).cursor == AgentPoolStoreCursor(sequence=9)  # equal config
        assert store.join_member("pool.flow", member("run.c")).sequence == 10
        assert store.leave_member("pool.flow", "run.a")[1].sequence == 11
        assert store.open_pool("pool.new", OTHER_CONFIG).cursor.sequence == 1
        assert store.next_event_sequence("pool.new") == 1
    with SqliteAgentPoolStore(rust_file) as store:
        assert [m.run_id for m in store.snapshot("pool.flow").members] == ["run.b", "run.c"]
        assert store.snapshot("pool.new").policy_refs == OTHER_CONFIG.policy_refs
        assert store.snapshot("pool.bulk é").cursor.sequence == 200
    db = raw_connection(rust_file)
    try:
        for table, columns in RUST_COLUMNS.items():
            assert table_info(db, table) == columns
        added = "SELECT kind FROM agent_pool_records WHERE pool_id = 'pool.flow' AND seq = 10"
        assert db.execute(added).fetchall() == [("member_joined",)]
    finally:
        db.close()


def _set_schema_version(path: Path, version: str) -> None:
    db = raw_connection(path)
    try:
        db.execute("UPDATE fastpool_meta SET value = ? WHERE key = 'schema_version'", (version,))
    finally:
        db.close()


@pytest.mark.parametrize("version", ["2", "10", "banana"])
def test_a_newer_or_unknown_schema_version_is_refused_at_open(path: Path, version: str) -> None:
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
    _set_schema_version(path, version)

    with pytest.raises(AgentError) as raised:
        SqliteAgentPoolStore(path)

    assert raised.value.kind == AgentErrorKind.HOST_CONFIGURATION_NEEDED
    assert raised.value.retry == RetryClassification.HOST_CONFIGURATION_NEEDED
    assert raised.value.message.startswith("sqlite agent pool store")
    # Refusing did not change the file: version 1 opens again.
    _set_schema_version(path, "1")
    with SqliteAgentPoolStore(path) as store:
        assert store.snapshot(POOL).cursor.sequence == 1


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "pools.sqlite"
    with SqliteAgentPoolStore(str(path)) as store:
        store.open_pool(POOL, CONFIG)
    assert path.is_file()
    assert raw_counts(path) == (1, 0)


def test_path_and_open(path: Path) -> None:
    with SqliteAgentPoolStore(str(path)) as store:
        assert store.path == path
        assert isinstance(store.path, Path)
    with SqliteAgentPoolStore.open(path, synchronous="full", busy_timeout=0.5) as store:
        assert type(store) is SqliteAgentPoolStore
        assert store.path == path
        assert pragma(connection_of(store), "synchronous") == 2


def test_not_a_database_is_repair_needed(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database, just some text " * 100)
    with pytest.raises(AgentError) as raised:
        SqliteAgentPoolStore(path)
    error = raised.value
    assert (error.kind, error.retry) == (AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.REPAIR_NEEDED)
    assert error.message.startswith(FAILURE)


def test_a_directory_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as raised:
        SqliteAgentPoolStore(tmp_path)
    error = raised.value
    assert (error.kind, error.retry) == (
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.HOST_CONFIGURATION_NEEDED,
    )
    assert error.message.startswith(FAILURE)


# ------------------------------------------------------------------------- closing

ALL_CALLS = {
    "open_pool": lambda s: s.open_pool(POOL, CONFIG),
    "snapshot": lambda s: s.snapshot(POOL),
    "record_pool_created": lambda s: s.record_pool_created(POOL),
    "join_member": lambda s: s.join_member(POOL, member("run.z")),
    "leave_member": lambda s: s.leave_member(POOL, "run.a"),
    "message_receipt": lambda s: s.message_receipt(POOL, "key.msg.1"),
    "record_message": lambda s: s.record_message(POOL, message("msg.z"), receipt("msg.z")),
    "wake_registration": lambda s: s.wake_registration(POOL, "wake-key.wake.1"),
    "wake": lambda s: s.wake(POOL, "wake.1"),
    "record_wake": lambda s: s.record_wake(POOL, *wake_args("wake.z")),
    "watch": lambda s: list(s.watch(POOL)),
    "next_event_sequence": lambda s: s.next_event_sequence(POOL),
}


def test_context_manager_closes(path: Path) -> None:
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
        assert "open" in repr(store)
    assert "closed" in repr(store)
    with pytest.raises(AgentError):
        store.snapshot(POOL)
    # The connection is really gone: the last one closing removes the WAL files.
    assert not Path(f"{path}-wal").exists()
    assert not Path(f"{path}-shm").exists()


def test_context_manager_closes_on_an_exception(path: Path) -> None:
    with pytest.raises(RuntimeError), SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
        raise RuntimeError("boom")
    with pytest.raises(AgentError):
        store.snapshot(POOL)


@pytest.mark.parametrize("method", list(ALL_CALLS))
def test_a_closed_store_raises_a_clear_agent_error(path: Path, method: str) -> None:
    store = SqliteAgentPoolStore(path)
    store.open_pool(POOL, CONFIG)
    store.join_member(POOL, member("run.a"))
    store.snapshot(POOL)  # a warm cache must not answer after close either
    store.close()
    store.close()  # closing twice is harmless

    with pytest.raises(AgentError) as raised:
        ALL_CALLS[method](store)

    error = raised.value
    assert type(error) is AgentError  # not an apsw exception, not a bare AttributeError
    assert error.kind == AgentErrorKind.INVALID_STATE_TRANSITION
    assert "closed" in error.message
    assert error.message.startswith("sqlite agent pool store")
    assert raw_counts(path) == (2, 0)


def test_close_twice_and_reopen(path: Path) -> None:
    store = SqliteAgentPoolStore(path)
    store.open_pool(POOL, CONFIG)
    store.close()
    store.close()
    with SqliteAgentPoolStore(path) as again:
        assert again.snapshot(POOL).cursor.sequence == 1


# ------------------------------------------------------------------------- locks


class WriteLock:
    """A raw connection holding the file's write lock (``BEGIN IMMEDIATE``) until released."""

    def __init__(self, path: Path) -> None:
        self.db = raw_connection(path)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if not self.db.getautocommit():
            self.db.execute("ROLLBACK")
        self.db.close()


BLOCKED_WRITES = {
    "open_pool_new": lambda s: s.open_pool("pool.new", CONFIG),
    "record_pool_created": lambda s: s.record_pool_created(POOL),
    "join_member": lambda s: s.join_member(POOL, member("run.z")),
    "leave_member": lambda s: s.leave_member(POOL, "run.a"),
    "record_message": lambda s: s.record_message(POOL, message("msg.z"), receipt("msg.z")),
    "record_wake": lambda s: s.record_wake(POOL, *wake_args("wake.z")),
    "next_event_sequence": lambda s: s.next_event_sequence(POOL),
}


@pytest.mark.parametrize("method", list(BLOCKED_WRITES))
def test_a_write_blocked_longer_than_busy_timeout_is_retryable(path: Path, method: str) -> None:
    with SqliteAgentPoolStore(path, busy_timeout=0.2) as store:
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, member("run.a"))
        before = store.snapshot(POOL)
        lock = WriteLock(path)
        try:
            started = time.monotonic()
            with pytest.raises(AgentError) as raised:
                BLOCKED_WRITES[method](store)
            waited = time.monotonic() - started

            error = raised.value
            assert type(error) is AgentError
            assert (error.kind, error.retry) == (AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.RETRYABLE)
            assert error.message.startswith(FAILURE)
            assert isinstance(error.__cause__, apsw.BusyError)
            assert 0.15 <= waited < 3.0, f"waited {waited:.3f}s for a 0.2s busy_timeout"
            # Reads are not blocked by a writer (WAL), and see nothing new.
            assert store.snapshot(POOL) == before
            assert store.message_receipt(POOL, "key.msg.z") is None
        finally:
            lock.release()

        assert raw_counts(path) == (2, 0)  # nothing written
        assert [r.cursor.sequence for r in store.watch(POOL)] == [1, 2]
        # Works again once the lock is gone.
        BLOCKED_WRITES[method](store)
        assert raw_counts(path) in ((3, 0), (2, 1))
        assert store.join_member(POOL, member("run.y")).sequence == (
            4 if method not in ("next_event_sequence", "open_pool_new") else 3
        )


def test_busy_timeout_waits_for_a_lock_released_in_time(path: Path) -> None:
    with SqliteAgentPoolStore(path, busy_timeout=3.0) as store:
        store.open_pool(POOL, CONFIG)
        lock = WriteLock(path)
        timer = threading.Timer(0.3, lock.release)
        timer.start()
        try:
            started = time.monotonic()
            cursor = store.join_member(POOL, member("run.a"))
            waited = time.monotonic() - started
        finally:
            timer.join()
        assert cursor.sequence == 2
        assert 0.25 <= waited < 2.5, f"waited {waited:.3f}s"


def test_busy_timeout_zero_fails_at_once(path: Path) -> None:
    with SqliteAgentPoolStore(path, busy_timeout=0) as store:
        store.open_pool(POOL, CONFIG)
        lock = WriteLock(path)
        try:
            started = time.monotonic()
            with pytest.raises(AgentError) as raised:
                store.record_pool_created(POOL)
            assert time.monotonic() - started < 0.15
            assert raised.value.retry == RetryClassification.RETRYABLE
        finally:
            lock.release()


class Turns:
    """A busy handler that lets the test decide when a waiting write tries the lock again."""

    def __init__(self) -> None:
        self.fail_fast = False  # as the store's own (_BusyWait) has
        self.waiting = threading.Semaphore(0)
        self.go = threading.Semaphore(0)

    def __call__(self, prior_calls: int) -> bool:
        if self.fail_fast:
            return False
        self.waiting.release()
        return self.go.acquire(timeout=10)


def test_a_write_waiting_for_the_lock_reads_other_writers_records_meanwhile(path: Path) -> None:
    """Records another connection commits while a write waits for the write lock are read
    during the wait, outside any transaction, so that the write holds the lock only for its
    own record (with four processes on one pool, that catch-up was two thirds of the time
    each held the lock)."""
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
        db = connection_of(store)
        turns = Turns()
        store._busy = turns  # type: ignore[assignment]
        db.set_busy_handler(turns)
        caught_up: list[tuple[int, bool]] = []  # (cursor after, inside a transaction)
        catch_up = store._catch_up

        def watched(connection: apsw.Connection, state: Any) -> None:
            catch_up(connection, state)
            caught_up.append((state.cursor, not connection.getautocommit()))

        store._catch_up = watched  # type: ignore[method-assign]
        other = raw_connection(path)
        result: list[int] = []
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute(INSERT, (POOL, 2, "member_joined", wire.encode(MemberJoined(member=member("run.2")))))
            writer = threading.Thread(
                target=lambda: result.append(store.record_message(POOL, message("msg.1"), receipt("msg.1")).sequence)
            )
            writer.start()
            assert turns.waiting.acquire(timeout=10)  # the write waits for the lock
            other.execute("COMMIT")
            other.execute("BEGIN IMMEDIATE")  # and takes it again at once, with one more record
            other.execute(INSERT, (POOL, 3, "member_joined", wire.encode(MemberJoined(member=member("run.3")))))
            turns.go.release()
            assert turns.waiting.acquire(timeout=10)
            other.execute("COMMIT")
            turns.go.release()
            writer.join(10)
        finally:
            other.close()
        assert result == [4]
        assert caught_up == [(2, False), (3, False)]  # both read while waiting, none inside the lock
        assert [m.run_id for m in store.members(POOL)] == ["run.2", "run.3"]


class RollbackWriter:
    """A raw connection writing (``BEGIN IMMEDIATE`` + an insert) to a file still in
    rollback-journal mode, as a Rust host or a second process creating the file does."""

    def __init__(self, path: Path) -> None:
        self.db = raw_connection(path)
        if not self.db.execute("SELECT name FROM sqlite_master WHERE name = 'other'").fetchall():
            self.db.execute("CREATE TABLE other (a)")
        assert pragma(self.db, "journal_mode") == "delete"
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO other VALUES (1)")

    def release(self) -> None:
        if not self.db.getautocommit():
            self.db.execute("COMMIT")
        self.db.close()


@pytest.mark.parametrize("existing", ["new_file", "rust_file"])
def test_opening_waits_for_a_writer_of_a_file_not_yet_in_wal_mode(
    path: Path, existing: str, request: pytest.FixtureRequest
) -> None:
    # Regression: switching to WAL failed at once with "database is locked" (SQLite skips the
    # busy handler for that lock upgrade), so two processes creating one new file at the same
    # moment could fail to open it.
    if existing == "rust_file":
        path = request.getfixturevalue("rust_file")  # journal mode "delete", as the Rust fixture is
    writer = RollbackWriter(path)
    timer = threading.Timer(0.3, writer.release)
    timer.start()
    try:
        started = time.monotonic()
        with SqliteAgentPoolStore(path, busy_timeout=3.0) as store:
            waited = time.monotonic() - started
            assert pragma(connection_of(store), "journal_mode") == "wal"
            assert store.open_pool(POOL, CONFIG).cursor.sequence == 1
    finally:
        timer.join()
    assert 0.25 <= waited < 2.5, f"waited {waited:.3f}s"


def test_opening_gives_up_on_a_writer_after_busy_timeout(path: Path) -> None:
    writer = RollbackWriter(path)
    try:
        started = time.monotonic()
        with pytest.raises(AgentError) as raised:
            SqliteAgentPoolStore(path, busy_timeout=0.2)
        waited = time.monotonic() - started
    finally:
        writer.release()
    error = raised.value
    assert (error.kind, error.retry) == (AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.RETRYABLE)
    assert error.message.startswith(FAILURE)
    assert 0.15 <= waited < 3.0, f"waited {waited:.3f}s for a 0.2s busy_timeout"
    with SqliteAgentPoolStore(path) as store:  # and opens once the writer is gone
        assert store.open_pool(POOL, CONFIG).cursor.sequence == 1


# ------------------------------------------------------------------------- stored form


def test_rows_hold_the_payload_type_and_its_wire_json_as_text(store: SqliteAgentPoolStore, path: Path) -> None:
    store.open_pool(POOL, OTHER_CONFIG)
    store.record_pool_created(POOL)
    store.join_member(POOL, member("run.é", topics=('topic "quoted"', "topic.☃")))
    store.record_message(POOL, message("msg.1", to="run.é"), receipt("msg.1", MessageStatus.DELIVERED, ("run.é",)))
    store.record_wake(POOL, *wake_args("wake.1", WakeRegistrationStatus.TRIGGERED))
    store.leave_member(POOL, "run.é")

    rows = raw_rows(path, POOL)
    records = list(store.watch(POOL))

    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row[1] for row in rows] == [
        "pool_opened",
        "pool_created",
        "member_joined",
        "run_message",
        "wake",
        "member_left",
    ]
    for (_, kind, payload_json, sql_type), record in zip(rows, records, strict=True):
        assert sql_type == "text"
        assert kind == record.payload.TYPE
        assert payload_json == wire.encode(record.payload)
        assert wire.decode(type(record.payload), payload_json) == record.payload
        assert payload_json.startswith('{"type":"' + kind + '"')
    assert "☃" in rows[2][2] and "\\u" not in rows[2][2]  # UTF-8, not \u escapes


def test_a_corrupt_row_fails_only_its_pool_naming_pool_and_sequence(store: SqliteAgentPoolStore, path: Path) -> None:
    store.open_pool(POOL, CONFIG)
    store.join_member(POOL, member("run.a"))
    store.open_pool("pool.healthy", CONFIG)
    db = raw_connection(path)
    try:
        db.execute(
            "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) "
            "VALUES (?, 3, 'member_joined', '{not json')",
            (POOL,),
        )
    finally:
        db.close()

    for _ in range(2):
        with pytest.raises(AgentError) as raised:
            store.snapshot(POOL)
        error = raised.value
        assert (error.kind, error.retry) == (AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.REPAIR_NEEDED)
        assert POOL in error.message and "3" in error.message
    assert store.join_member("pool.healthy", member("run.b")).sequence == 2
    assert store.snapshot("pool.healthy").members == (member("run.b"),)


# ------------------------------------------------------------------------- two store objects


def test_writes_through_one_object_are_seen_by_a_warm_other_at_once(path: Path) -> None:
    with SqliteAgentPoolStore(path) as a, SqliteAgentPoolStore(path) as b:
        a.open_pool(POOL, CONFIG)
        # b warms its cache, including negative answers.
        assert b.snapshot(POOL).cursor.sequence == 1
        assert b.message_receipt(POOL, "key.msg.1") is None
        assert b.wake(POOL, "wake.1") is None
        assert b.wake_registration(POOL, "wake-key.wake.1") is None
        assert b.snapshot(POOL).cursor.sequence == 1

        a.join_member(POOL, member("run.a", topics=("topic.a",)))
        assert b.snapshot(POOL).members == (member("run.a", topics=("topic.a",)),)
        assert b.snapshot(POOL).topics == ("topic.a",)

        a.record_message(POOL, message("msg.1"), receipt("msg.1"))
        assert b.message_receipt(POOL, "key.msg.1") == receipt("msg.1")
        a.record_message(POOL, message("msg.1"), receipt("msg.1", MessageStatus.DELIVERED))
        assert b.message_receipt(POOL, "key.msg.1") == receipt("msg.1", MessageStatus.DELIVERED)

        a.record_wake(POOL, *wake_args("wake.1"))
        assert b.wake(POOL, "wake.1") is not None
        assert b.wake_registration(POOL, "wake-key.wake.1").status == WakeRegistrationStatus.REGISTERED
        a.record_wake(POOL, *wake_args("wake.1", WakeRegistrationStatus.CANCELLED))
        assert b.wake_registration(POOL, "wake-key.wake.1").status == WakeRegistrationStatus.CANCELLED

        a.leave_member(POOL, "run.a")
        assert b.snapshot(POOL).members == ()
        assert b.snapshot(POOL).topics == ()
        assert b.snapshot(POOL) == a.snapshot(POOL)
        assert b.snapshot(POOL).cursor.sequence == 7
        assert [r.cursor.sequence for r in b.watch(POOL, 5)] == [6, 7]


def test_a_pool_opened_elsewhere_is_seen_by_a_store_that_saw_it_unopened(path: Path) -> None:
    with SqliteAgentPoolStore(path) as a, SqliteAgentPoolStore(path) as b:
        with pytest.raises(AgentError):
            b.snapshot(POOL)
        assert list(b.watch(POOL)) == []
        a.open_pool(POOL, OTHER_CONFIG)
        assert b.snapshot(POOL).cursor.sequence == 1
        # b's check happens under the write lock against the file, not a stale cache.
        with pytest.raises(AgentError) as raised:
            b.open_pool(POOL, CONFIG)
        assert raised.value.message == "sqlite agent pool store config conflicts with existing pool"
        assert b.open_pool(POOL, OTHER_CONFIG).cursor.sequence == 1
        assert raw_counts(path) == (1, 0)


def test_checks_inside_writes_see_the_other_objects_writes(path: Path) -> None:
    with SqliteAgentPoolStore(path) as a, SqliteAgentPoolStore(path) as b:
        a.open_pool(POOL, CONFIG)
        b.snapshot(POOL)  # warm
        a.join_member(POOL, member("run.a"))
        # b never read run.a's join, but its leave must see it.
        assert b.leave_member(POOL, "run.a") == (member("run.a"), AgentPoolStoreCursor(sequence=3))
        with pytest.raises(AgentError) as raised:
            a.leave_member(POOL, "run.a")  # a's own cache still has run.a as a member
        assert raised.value.message == "run is not a member of this agent pool"
        assert raw_counts(path) == (3, 0)


def append_raced(store: SqliteAgentPoolStore, race: Any) -> list[int]:
    """A lone ``record_message`` of ``msg.raced`` whose first check runs ``race()`` right after
    it: another writer commits between the check and the append. The cursors each check saw."""
    from fastpool.model import AgentPoolStoredMessage, MessageRecorded

    seen: list[int] = []
    payload = MessageRecorded(stored=AgentPoolStoredMessage(message=message("msg.raced"), receipt=receipt("msg.raced")))

    def build(state: Any) -> Any:
        seen.append(state.cursor)
        if len(seen) == 1:
            race()
        store._opened(state)
        return payload

    with store._lock:
        store._append(POOL, build)
    return seen


def test_a_lone_write_raced_by_another_writers_append_checks_again_and_appends_after_it(path: Path) -> None:
    with SqliteAgentPoolStore(path) as a, SqliteAgentPoolStore(path) as b:
        a.open_pool(POOL, CONFIG)
        b.snapshot(POOL)
        seen = append_raced(a, lambda: b.record_message(POOL, message("msg.b"), receipt("msg.b")))
        assert seen == [1, 2]  # the second check saw b's record
        assert [kind for _, kind, _, _ in raw_rows(path, POOL)] == ["pool_opened", "run_message", "run_message"]
        assert a.snapshot(POOL) == b.snapshot(POOL)
        assert [m.message.message_id for m in a.snapshot(POOL).messages] == ["msg.b", "msg.raced"]


def test_a_lone_write_raced_by_a_deletion_and_reopening_checks_the_new_pool(path: Path) -> None:
    """Without the drops guard the append, checked against the deleted pool's state, would land
    at sequence 3 of the new pool, which holds only its record 1."""

    def race() -> None:
        b.delete_pool(POOL)
        b.open_pool(POOL, CONFIG)

    with SqliteAgentPoolStore(path) as a, SqliteAgentPoolStore(path) as b:
        a.open_pool(POOL, CONFIG)
        a.record_message(POOL, message("msg.old"), receipt("msg.old"))
        b.snapshot(POOL)
        seen = append_raced(a, race)
        assert seen == [2, 1]  # checked again, against the new pool
        assert a.snapshot(POOL) == b.snapshot(POOL)
        assert [m.message.message_id for m in a.snapshot(POOL).messages] == ["msg.raced"]


def test_a_lone_write_while_another_connection_holds_the_write_lock_waits_for_it(path: Path) -> None:
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
        other = apsw.Connection(str(path))
        other.execute("BEGIN IMMEDIATE")
        commit = threading.Timer(0.05, lambda: other.execute("COMMIT"))
        commit.start()
        assert store.record_message(POOL, message("msg.1"), receipt("msg.1")).sequence == 2
        commit.join()  # the write may get the lock before the timer's COMMIT call has returned
        other.close()


def test_alternating_writers_interleave_cursors(path: Path) -> None:
    with SqliteAgentPoolStore(path) as a, SqliteAgentPoolStore(path) as b:
        a.open_pool(POOL, CONFIG)
        returned = []
        for n in range(20):
            writer = a if n % 2 == 0 else b
            returned.append(writer.record_message(POOL, message(f"msg.{n:02}"), receipt(f"msg.{n:02}")).sequence)
            # Right after its own write, each object sees everything so far.
            assert writer.snapshot(POOL).cursor.sequence == n + 2
            assert len(writer.snapshot(POOL).messages) == n + 1
        assert returned == list(range(2, 22))
        assert [a.next_event_sequence(POOL), b.next_event_sequence(POOL), a.next_event_sequence(POOL)] == [1, 2, 3]
        assert a.snapshot(POOL) == b.snapshot(POOL)
        assert [r.cursor.sequence for r in a.watch(POOL)] == list(range(1, 22))
        assert list(a.watch(POOL)) == list(b.watch(POOL))
        messages = a.snapshot(POOL).messages
        assert [m.message.message_id for m in messages] == [f"msg.{n:02}" for n in range(20)]


def test_other_pools_writes_do_not_disturb_a_cached_pool(path: Path) -> None:
    with SqliteAgentPoolStore(path) as a, SqliteAgentPoolStore(path) as b:
        a.open_pool(POOL, CONFIG)
        a.open_pool("pool.other", CONFIG)
        first = b.snapshot(POOL)
        for n in range(5):
            a.join_member("pool.other", member(f"run.{n}"))
        assert b.snapshot(POOL) == first
        assert b.snapshot("pool.other").cursor.sequence == 6
        a.join_member(POOL, member("run.x"))
        assert b.snapshot(POOL).cursor.sequence == 2


# ------------------------------------------------------------------------- many pools


def count_catch_ups(store: SqliteAgentPoolStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every catch-up query the store runs from now on, by pool."""
    queried: list[str] = []
    catch_up = store._catch_up

    def counted(db: apsw.Connection, state: Any) -> None:
        queried.append(state.pool_id)
        catch_up(db, state)

    monkeypatch.setattr(store, "_catch_up", counted)
    return queried


@pytest.mark.parametrize("probe", ["wal-index", "pragma"])
def test_own_writes_rotating_over_many_pools_query_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch, probe: str
) -> None:
    """A store's own commit moves the change probe, but only this store wrote: every other
    cached pool is still current, so neither writes nor reads of them query the file."""
    pools = [f"pool.{n:03}" for n in range(300)]
    with SqliteAgentPoolStore(path) as store:
        if probe == "pragma":  # the probe where there is no WAL-index to read
            store._cache.probe = PragmaProbe(connection_of(store))
        for pool_id in pools:
            store.open_pool(pool_id, CONFIG)
        queried = count_catch_ups(store, monkeypatch)
        for round_ in range(2):
            for n, pool_id in enumerate(pools):
                message_id = f"msg.{round_}.{n}"
                assert store.record_message(pool_id, message(message_id), receipt(message_id)).sequence == 2 + round_
                assert store.message_receipt(pools[n - 1], f"key.msg.{round_}.{n - 1}") is not None or n == 0
        with store.transaction():
            for pool_id in pools[:10]:
                store.join_member(pool_id, member("run.t"))
        assert store.snapshot(pools[-1]).cursor.sequence == 3
        assert store.next_event_sequence(pools[0]) == 1
        assert store.member(pools[0], "run.t") == member("run.t")
        assert queried == []


@pytest.mark.parametrize("probe", ["wal-index", "pragma"])
def test_another_writer_between_own_writes_to_many_pools_is_seen_in_every_pool(
    path: Path, monkeypatch: pytest.MonkeyPatch, probe: str
) -> None:
    """A foreign commit marks every cached pool for catch-up, once: each then reads the
    other writer's records on its next use (writes check against them too), and only the
    pools used again are queried."""
    pools = [f"pool.{n:02}" for n in range(40)]
    with SqliteAgentPoolStore(path) as store, SqliteAgentPoolStore(path) as other:
        if probe == "pragma":
            store._cache.probe = PragmaProbe(connection_of(store))
        for pool_id in pools:
            store.open_pool(pool_id, CONFIG)
        queried = count_catch_ups(store, monkeypatch)
        for n, pool_id in enumerate(pools):
            store.record_message(pool_id, message(f"msg.own.{n}"), receipt(f"msg.own.{n}"))
            if n % 7 == 3:
                # The other object writes to this pool and to one this store used long ago.
                other.join_member(pool_id, member("run.other"))
                other.record_message(pools[n // 2], message(f"msg.other.{n}"), receipt(f"msg.other.{n}"))
                assert store.member(pool_id, "run.other") == member("run.other")
                assert store.leave_member(pool_id, "run.other")[1].sequence == 4 + (n // 2 == n)
                assert store.message_receipt(pools[n // 2], f"key.msg.other.{n}") == receipt(f"msg.other.{n}")
        queried.clear()
        for pool_id in pools:
            assert store.snapshot(pool_id) == other.snapshot(pool_id)
        # The last foreign commits (at n = 38) marked every pool; 19 and 38 caught up then, 39 at its write.
        assert queried == [pool_id for n, pool_id in enumerate(pools) if n not in (19, 38, 39)]
        queried.clear()
        for pool_id in pools:
            assert store.snapshot(pool_id) == other.snapshot(pool_id)
        assert queried == []


# ------------------------------------------------------------------------- threads


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_threads_sharing_one_store_get_unique_gap_free_cursors(path: Path, kind: str) -> None:
    store: Any = SqliteAgentPoolStore(path) if kind == "sqlite" else InMemoryAgentPoolStore()
    try:
        _hammer_with_threads(store)
    finally:
        store.close()
    if kind == "sqlite":
        with SqliteAgentPoolStore(path) as fresh:
            assert len(fresh.snapshot(POOL).messages) == 400


def _hammer_with_threads(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    threads_count, per_thread = 8, 50
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            got = []
            for n in range(per_thread):
                message_id = f"msg.{worker}.{n:03}"
                got.append(store.record_message(POOL, message(message_id), receipt(message_id)).sequence)
                if n % 10 == 0:
                    store.snapshot(POOL)
                    store.message_receipt(POOL, f"key.{message_id}")
            results[worker] = got
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    everything = [cursor for got in results.values() for cursor in got]
    assert sorted(everything) == list(range(2, threads_count * per_thread + 2))
    for got in results.values():
        assert got == sorted(got)  # each thread's own writes are in order
    snapshot = store.snapshot(POOL)
    assert len(snapshot.messages) == threads_count * per_thread
    assert snapshot.cursor.sequence == threads_count * per_thread + 1
    assert [r.cursor.sequence for r in store.watch(POOL)] == list(range(1, threads_count * per_thread + 2))


# ------------------------------------------------------------------------- model-based


def random_write(rng: Any, pool_id: str) -> Any:
    """One random store write (a function of the store), over a few colliding ids."""
    run_id, n, topic = f"run.{rng.randrange(4)}", rng.randrange(5), f"topic.{rng.randrange(3)}"
    status, wake_status = rng.choice(list(MessageStatus)), rng.choice(list(WakeRegistrationStatus))
    return rng.choice(
        [
            lambda s: s.join_member(pool_id, member(run_id, topics=(topic,))),
            lambda s: s.leave_member(pool_id, run_id),
            lambda s: s.record_message(pool_id, message(f"msg.{n}", key=f"key.{n % 3}"), receipt(f"msg.{n}", status)),
            lambda s: s.record_wake(pool_id, *wake_args(f"wake.{n}", wake_status, key=f"wake-key.{n % 3}")),
            lambda s: s.record_message_once(
                pool_id, message(f"msg.{n}", key=f"key.{n % 3}"), receipt(f"msg.{n}", status)
            ),
            lambda s: s.record_wake_once(pool_id, *wake_args(f"wake.{n}", wake_status, key=f"wake-key.{n % 3}")),
            lambda s: s.next_event_sequence(pool_id),
            lambda s: s.record_pool_created(pool_id),
        ]
    )


def outcome(store: Any, call: Any) -> Any:
    """What ``call(store)`` returns or raises (messages without the "sqlite " prefix)."""
    try:
        return "ok", call(store)
    except AgentError as error:
        return "error", error.kind, error.retry, error.message.removeprefix("sqlite ")


def assert_same_reads(store: Any, reference: Any, pools: list[str]) -> None:
    for pool in pools:
        # The lookups first, so that they are what catches the cached state up.
        members, topics = store.members(pool), store.topics(pool)
        by_topic = [store.topic_members(pool, f"topic.{k}") for k in range(3)]
        by_run = [store.member(pool, f"run.{k}") for k in range(4)]
        snapshot = store.snapshot(pool)
        assert snapshot == reference.snapshot(pool)
        assert (members, topics) == (snapshot.members, snapshot.topics)
        assert by_topic == [tuple(m for m in members if f"topic.{k}" in m.topics) for k in range(3)]
        assert by_run == [reference.member(pool, f"run.{k}") for k in range(4)]
        for k in range(3):
            assert store.message_receipt(pool, f"key.{k}") == reference.message_receipt(pool, f"key.{k}")
            assert store.wake_registration(pool, f"wake-key.{k}") == reference.wake_registration(pool, f"wake-key.{k}")
        for k in range(5):
            assert store.wake(pool, f"wake.{k}") == reference.wake(pool, f"wake.{k}")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_store_objects_agree_with_the_in_memory_store(path: Path, seed: int) -> None:
    """Random writes through three store objects on one file, with checkpoints of every kind,
    foreign commits and reopened objects in between: after every step each object answers
    every read exactly as an ``InMemoryAgentPoolStore`` given the same calls."""
    rng = random.Random(seed)
    stores = [SqliteAgentPoolStore(path) for _ in range(3)]
    reference = InMemoryAgentPoolStore()
    raw = raw_connection(path)
    pools = ["pool.1", "pool.2"]
    try:
        for pool_id in pools:
            stores[0].open_pool(pool_id, CONFIG)
            reference.open_pool(pool_id, CONFIG)
        for _ in range(120):
            action = rng.randrange(10)
            if action < 7:
                call = random_write(rng, rng.choice(pools))
                assert outcome(rng.choice(stores), call) == outcome(reference, call)
            elif action == 7:
                mode = rng.choice(["PASSIVE", "FULL", "RESTART", "TRUNCATE"])
                raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            elif action == 8:  # a commit that touches no pool
                raw.execute("CREATE TABLE IF NOT EXISTS fastpool_test_noise (a)")
                raw.execute("INSERT INTO fastpool_test_noise VALUES (1)")
            else:
                index = rng.randrange(len(stores))
                stores[index].close()
                stores[index] = SqliteAgentPoolStore(path)
            for store in stores:
                assert_same_reads(store, reference, pools)
        for store in stores:
            for pool in pools:
                assert list(store.watch(pool)) == list(reference.watch(pool))
    finally:
        raw.close()
        for store in stores:
            store.close()


# ------------------------------------------------------------------------- values too large for SQLite

#: Bytes per value for the tests below: SQLite's SQLITE_LIMIT_LENGTH (1,000,000,000 by default),
#: lowered so that no test needs a gigabyte of memory.
LIMIT = 20_000


@pytest.fixture
def short_values() -> Iterator[int]:
    """Every SQLite connection opened meanwhile, the store's included, stores at most ``LIMIT`` bytes per value."""

    def lower(db: apsw.Connection) -> None:
        db.limit(apsw.SQLITE_LIMIT_LENGTH, LIMIT)

    apsw.connection_hooks.append(lower)
    try:
        yield LIMIT
    finally:
        apsw.connection_hooks.remove(lower)


def versioned_message(message_id: str, version: str) -> RunMessage:
    return message(message_id).replace(policy_refs=(PolicyRef.new("policy.a").replace(version=version),))


@pytest.mark.parametrize("char", ["v", "é"], ids=["ascii", "two-byte"])
def test_a_record_longer_than_sqlite_stores_is_invalid_input_naming_the_field(
    path: Path, short_values: int, char: str
) -> None:
    """Checked in UTF-8 bytes (the two-byte case has fewer characters than the limit), before
    anything is written; the message names the field that holds the bulk and the limit."""
    over = char * (short_values // len(char.encode()) + 10)
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
        calls = {
            "stored.message.policy_refs[0].version": lambda: store.record_message(
                POOL, versioned_message("msg.big", over), receipt("msg.big")
            ),
            "member.topics": lambda: store.join_member(
                POOL, member("run.big", topics=tuple(f"topic.{i:05}" for i in range(short_values // 10)))
            ),
        }
        for field, call in calls.items():
            with pytest.raises(InvalidInput) as raised:
                call()
            text = raised.value.message
            assert text.startswith(f"{field}: "), text
            assert f"{short_values:,} bytes" in text and "SQLITE_LIMIT_LENGTH" in text, text
        assert raw_counts(path) == (1, 0)
        # The store carries on: nothing was half-written and the next record gets cursor 2.
        assert store.message_receipt(POOL, "key.msg.big") is None
        just_under = char * ((short_values - 2_000) // len(char.encode()))
        assert store.record_message(POOL, versioned_message("msg.ok", just_under), receipt("msg.ok")).sequence == 2
    with SqliteAgentPoolStore(path) as cold:
        assert cold.snapshot(POOL).messages[0].message.policy_refs[0].version == just_under


def test_sqlite_refusing_a_value_as_too_big_is_invalid_input(store: SqliteAgentPoolStore, path: Path) -> None:
    """The backstop: a limit lowered after the store read it is still enforced by SQLite, and
    its TooBigError is bad input, not a damaged file."""
    store.open_pool(POOL, CONFIG)
    connection_of(store).limit(apsw.SQLITE_LIMIT_LENGTH, LIMIT)
    with pytest.raises(InvalidInput) as raised:
        store.record_message(POOL, versioned_message("msg.big", "v" * LIMIT), receipt("msg.big"))
    assert raised.value.message.startswith(FAILURE), raised.value.message
    assert raw_counts(path) == (1, 0)
    assert store.record_message(POOL, message("msg.ok"), receipt("msg.ok")).sequence == 2


# ------------------------------------------------------------------------- transaction()


def test_close_inside_a_transaction_rolls_back_and_raises_an_agent_error(path: Path) -> None:
    store = SqliteAgentPoolStore(path)
    store.open_pool(POOL, CONFIG)
    with pytest.raises(AgentError) as raised:
        with store.transaction():
            store.join_member(POOL, member("run.a"))
            store.close()
    assert type(raised.value) is AgentError
    assert raised.value.retry is RetryClassification.NOT_RETRYABLE
    assert "closed inside transaction()" in raised.value.message
    # A call after the close fails as on any closed store, and that error is what the block raises.
    store = SqliteAgentPoolStore(path)
    with pytest.raises(AgentError) as raised:
        with store.transaction():
            store.join_member(POOL, member("run.b"))
            store.close()
            store.join_member(POOL, member("run.c"))
    assert raised.value.message == "sqlite agent pool store is closed"
    assert raw_counts(path) == (1, 0)
    with SqliteAgentPoolStore(path) as again:
        assert again.snapshot(POOL).members == ()


# ------------------------------------------------------------------------- the bounded cache


def cached(store: SqliteAgentPoolStore) -> list[str]:
    """The pools the store holds a state for, least recently used first."""
    return list(store._cache.states)


def test_the_cache_keeps_the_most_recently_used_pools(path: Path) -> None:
    with SqliteAgentPoolStore(path, max_cached_pools=3) as store:
        for pool_id in ("pool.a", "pool.b", "pool.c"):
            store.open_pool(pool_id, CONFIG)
        assert cached(store) == ["pool.a", "pool.b", "pool.c"]
        assert store.message_receipt("pool.a", "key.x") is None  # a warm read counts as a use
        store.join_member("pool.b", member("run.b"))  # so does a write
        store.open_pool("pool.d", CONFIG)
        assert cached(store) == ["pool.a", "pool.b", "pool.d"]
        assert store.snapshot("pool.c").cursor.sequence == 1  # rebuilt from the file
        assert cached(store) == ["pool.b", "pool.d", "pool.c"]
        store.evict("pool.d")
        store.evict("pool.d")  # evicting a pool that is not cached is harmless
        store.evict("pool.unknown")
        assert cached(store) == ["pool.b", "pool.c"]
        assert store.snapshot("pool.b").members == (member("run.b"),)
        with pytest.raises(InvalidInput, match="pool_id"):
            store.evict("")
    with pytest.raises(AgentError, match="closed"):
        store.evict("pool.a")


def test_the_default_bound(path: Path) -> None:
    with SqliteAgentPoolStore(path) as store:
        with store.transaction():
            for n in range(1030):
                store.open_pool(f"pool.{n:04}", CONFIG)
        assert len(cached(store)) == 1024
        assert cached(store)[0] == "pool.0006"


def test_pools_written_in_a_transaction_may_be_evicted_before_it_ends(path: Path) -> None:
    """Inside transaction() the store's connection sees its own uncommitted rows, so a pool
    evicted (by the bound or by evict()) mid-transaction rebuilds with its uncommitted
    writes; after COMMIT every object sees them, after a rollback nobody does."""
    with SqliteAgentPoolStore(path, max_cached_pools=1) as store, SqliteAgentPoolStore(path) as other:
        for pool_id in ("pool.a", "pool.b"):
            store.open_pool(pool_id, CONFIG)
        with store.transaction():
            store.join_member("pool.a", member("run.a"))
            store.join_member("pool.b", member("run.b"))  # evicts pool.a
            assert cached(store) == ["pool.b"]
            assert store.snapshot("pool.a").members == (member("run.a"),)
            store.evict("pool.a")
            assert store.join_member("pool.a", member("run.a2")).sequence == 3
            assert other.snapshot("pool.a").members == ()
        for reader in (store, other):
            assert [m.run_id for m in reader.snapshot("pool.a").members] == ["run.a", "run.a2"]
            assert reader.snapshot("pool.b").members == (member("run.b"),)
        with pytest.raises(KeyError):
            with store.transaction():
                store.join_member("pool.a", member("run.x"))
                store.join_member("pool.b", member("run.x"))  # evicts pool.a
                raise KeyError("roll back")
        for reader in (store, other):
            assert [m.run_id for m in reader.snapshot("pool.a").members] == ["run.a", "run.a2"]
            assert reader.snapshot("pool.b").members == (member("run.b"),)
        assert raw_counts(path) == (5, 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_bounded_cache_answers_as_the_in_memory_store(path: Path, seed: int) -> None:
    """Random writes over more pools than the bound, through a bounded store and an unbounded
    one on the same file, with evictions and transactions (some rolled back): after every
    step both answer every read exactly as an ``InMemoryAgentPoolStore`` given the same calls."""
    rng = random.Random(seed)
    pools = [f"pool.{n}" for n in range(5)]
    calls: list[Any] = []  # every call the file holds, to rebuild the reference after a rollback
    reference = InMemoryAgentPoolStore()
    with SqliteAgentPoolStore(path, max_cached_pools=2) as bounded, SqliteAgentPoolStore(path) as other:
        for pool_id in pools:
            calls.append(lambda s, pool_id=pool_id: s.open_pool(pool_id, CONFIG))
            calls[-1](bounded)
            calls[-1](reference)
        for _ in range(60):
            action = rng.randrange(10)
            if action < 6:
                call = random_write(rng, rng.choice(pools))
                assert outcome(rng.choice([bounded, other]), call) == outcome(reference, call)
                calls.append(call)
            elif action < 8:
                bounded.evict(rng.choice(pools))
            else:
                batch = [random_write(rng, rng.choice(pools)) for _ in range(rng.randrange(1, 6))]
                commit = action == 8
                with contextlib.suppress(KeyError), bounded.transaction():
                    for call in batch:
                        assert outcome(bounded, call) == outcome(reference, call)
                        assert_same_reads(bounded, reference, pools)
                    if not commit:
                        raise KeyError("roll back")
                if commit:
                    calls.extend(batch)
                else:
                    reference = InMemoryAgentPoolStore()
                    for call in calls:
                        outcome(reference, call)
            for store in (bounded, other):
                assert_same_reads(store, reference, pools)
            assert len(cached(bounded)) <= 2
        for pool_id in pools:
            assert list(bounded.watch(pool_id)) == list(reference.watch(pool_id))
