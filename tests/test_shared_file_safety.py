"""Processes sharing one file never lose an acknowledged write (SPEC §6, the change probe).

Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
too; a mapping of ``-shm`` that another process truncates is SIGBUS on the next read. These
tests put real processes beside each other: store objects created and closed next to an
open transaction, a writer with readers opening and closing the file, six writers with
short-lived readers, ``fork()`` with a busy thread, and a symlink with a stray ``-shm``.
Every acknowledged cursor must be in the file with its own payload, no cursor twice.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import child_exit_code
from store_helpers import CONFIG, message, raw_connection, raw_rows, receipt
from writer_process import child_env

from fastpool import AgentError, AgentErrorKind, RetryClassification, SqliteAgentPoolStore, _probe

pytestmark = pytest.mark.slow

POOL = "pool.shared"
RETRYABLE = RetryClassification.RETRYABLE.value


def worker(*arguments: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shared_file_workers", *map(str, arguments)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=child_env(),
    )


def finish(child: subprocess.Popen[str], timeout: float = 60.0) -> list[list[str]]:
    """The child's output lines, split; it must have exited 0 (a SIGBUS is -7)."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        raise AssertionError(f"child still running after {timeout} s:\n{err}") from None
    assert child.returncode == 0, f"child died with {child.returncode}:\n{err[-2000:]}"
    return [line.split(maxsplit=3) for line in out.splitlines()]


def acknowledged(lines: list[list[str]]) -> dict[int, str]:
    acks = {}
    for line in lines:
        if line[0] == "ack":
            cursor = int(line[1])
            assert cursor not in acks, f"cursor {cursor} acknowledged twice to one writer"
            acks[cursor] = line[2]
    return acks


def assert_every_ack_present(path: Path, acks: dict[int, str], records: int) -> None:
    """Each acknowledged cursor holds that writer's own message; cursors 1..records, no gap."""
    rows = raw_rows(path, POOL)
    assert [row[0] for row in rows] == list(range(1, records + 1))
    by_cursor = {row[0]: orjson.loads(row[2]) for row in rows}
    lost = {
        cursor: message_id
        for cursor, message_id in acks.items()
        if by_cursor.get(cursor, {}).get("stored", {}).get("message", {}).get("message_id") != message_id
    }
    assert not lost, f"{len(lost)} acknowledged records lost or overwritten, e.g. {list(lost.items())[:5]}"
    connection = raw_connection(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        connection.close()


def opened_pool(path: Path) -> None:
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)


# ------------------------------------------------------------ (a) an open transaction keeps its lock


def test_another_store_object_beside_an_open_transaction_keeps_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    opened_pool(path)
    holder = SqliteAgentPoolStore(path)
    try:
        with holder.transaction():
            holder.record_message(POOL, message("msg.holder"), receipt("msg.holder"))
            # The same process creates and closes other store objects on the file ...
            SqliteAgentPoolStore(path).close()
            neighbour = SqliteAgentPoolStore(path)
            neighbour.snapshot(POOL)
            neighbour.close()
            # ... and a third process must still find the write lock taken.
            refused = finish(worker("once", path, POOL, 0))
            assert refused[0][:2] == ["err", RETRYABLE], f"the write lock was lost: {refused}"
        after = finish(worker("once", path, POOL, 5))
        assert after[0][0] == "ack"
        assert_every_ack_present(path, {2: "msg.holder", **acknowledged(after)}, 3)
    finally:
        holder.close()


# ------------------------------------------------------------ (b) the kernel's lock table


def process_locks(pid: int, path: Path) -> set[tuple[str, str, str]]:
    """This process's POSIX locks on ``path``'s inode: (kind, start, end), from /proc/locks."""
    inode = os.stat(path).st_ino
    found = set()
    with open("/proc/locks", encoding="ascii") as table:
        for line in table:
            fields = line.split()
            if "->" in fields or len(fields) < 8 or fields[1] != "POSIX":
                continue
            if int(fields[4]) == pid and int(fields[5].split(":")[2]) == inode:
                found.add((fields[3], fields[6], fields[7]))
    return found


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_sqlite_locks_survive_other_store_objects_opening_and_closing(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    opened_pool(path)
    with SqliteAgentPoolStore(path) as store:
        store.snapshot(POOL)
        shm, database = Path(f"{path}-shm"), path
        held = process_locks(os.getpid(), shm), process_locks(os.getpid(), database)
        assert ("READ", "128", "128") in held[0], f"SQLite's DMS lock on -shm is not held: {held[0]}"
        for _ in range(3):
            with SqliteAgentPoolStore(path) as other:
                other.snapshot(POOL)
            SqliteAgentPoolStore(path, readonly=True).close()
            assert (process_locks(os.getpid(), shm), process_locks(os.getpid(), database)) == held
        store.record_message(POOL, message("msg.after"), receipt("msg.after"))
        assert (process_locks(os.getpid(), shm), process_locks(os.getpid(), database)) == held


# ------------------------------------------------------------ (c) a writer, readers opening and closing


def test_writer_survives_readers_that_open_and_close_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    opened_pool(path)
    writer = worker("writer", path, POOL, 6, 5, 0)
    reader = worker("reader", path, POOL, 5)
    commands = Counter()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for command in (["inspect", path], ["export", path], ["watch", path, POOL], ["verify", path]):
            done = subprocess.run(
                [sys.executable, "-m", "fastpool", *map(str, command)], capture_output=True, env=child_env()
            )
            assert done.returncode == 0, done.stderr
            commands[command[0]] += 1
    reads = finish(reader)
    lines = finish(writer)
    acks = acknowledged(lines)
    assert acks and int(reads[0][1]) > 0 and min(commands.values()) > 0
    assert_every_ack_present(path, acks, len(acks) + 1)
    print(f"\n(c) acknowledged {len(acks)}, lost 0, reader opens {reads[0][1]}, CLI runs {dict(commands)}")


# ------------------------------------------------------------ (d) six writers, short-lived readers


def test_six_writers_with_short_lived_readers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    opened_pool(path)
    writers = [worker("writer", path, POOL, 10, 5, n) for n in range(6)]
    readers = [worker("reader", path, POOL, 9) for _ in range(2)]
    reads = sum(int(finish(reader)[0][1]) for reader in readers)
    outputs = [finish(child) for child in writers]
    acks: dict[int, str] = {}
    for lines in outputs:
        mine = acknowledged(lines)
        twice = acks.keys() & mine.keys()
        assert not twice, f"cursors handed to two processes: {sorted(twice)[:10]}"
        acks.update(mine)
    refused = sum(line[0] == "err" for lines in outputs for line in lines)
    assert len(acks) > 0
    assert_every_ack_present(path, acks, len(acks) + 1)
    print(f"\n(d) acknowledged {len(acks)}, lost 0, duplicates 0, refused {refused}, reader opens {reads}")


# ------------------------------------------------------------ (e) fork


def forked_child_answer(
    store: SqliteAgentPoolStore, path: Path, records: int, call: Callable[[SqliteAgentPoolStore], Any] | None = None
) -> int:
    """Fork; the child calls the inherited store (``snapshot`` unless ``call`` is given), then a
    store of its own, and exits with a code telling what happened (0: refused as documented,
    and the new store works)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 9
        try:
            signal.alarm(10)  # a hang kills the child with SIGALRM
            store.snapshot(POOL) if call is None else call(store)
            code = 2
        except AgentError as error:
            fork_error = error.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED and "fork" in error.message
            code = 3
            if fork_error:
                store.close()  # harmless, and leaves the parent's connection alone
                with SqliteAgentPoolStore(path) as own:
                    code = 0 if own.snapshot(POOL).cursor.sequence == records else 5
        except BaseException:
            code = 4
        os._exit(code)
    code = child_exit_code(pid)
    assert code is not None, "the forked child hung"
    return code


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_store_used_after_fork_refuses_and_the_parent_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    opened_pool(path)
    with SqliteAgentPoolStore(path) as store:
        store.record_message(POOL, message("msg.1"), receipt("msg.1"))
        inside, release = threading.Event(), threading.Event()

        def busy() -> None:
            with store.transaction():
                store.record_message(POOL, message("msg.2"), receipt("msg.2"))
                inside.set()
                release.wait(30)

        thread = threading.Thread(target=busy)
        thread.start()
        try:
            assert inside.wait(10)
            assert forked_child_answer(store, path, 2) == 0  # forked while another thread held the store's lock
        finally:
            release.set()
            thread.join()
        assert forked_child_answer(store, path, 3) == 0  # forked while idle
        assert store.record_message(POOL, message("msg.3"), receipt("msg.3")).sequence == 4
        assert store.snapshot(POOL).cursor.sequence == 4
    assert [row[0] for row in raw_rows(path, POOL)] == [1, 2, 3, 4]


def child_write(inherited: SqliteAgentPoolStore) -> Any:
    return inherited.record_message(POOL, message("msg.child"), receipt("msg.child"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_store_forked_with_a_group_commit_queued_refuses_writes_and_the_parent_commits_them(tmp_path: Path) -> None:
    """Forked while parent threads' writes wait in a group for the store's lock: a write in the
    child fails at once (it neither waits for that group nor leads it), and in the parent the
    group commits once the lock is free."""
    path = tmp_path / "pools.sqlite"
    opened_pool(path)
    with SqliteAgentPoolStore(path) as store:
        cursors: list[int] = []

        def write(n: int) -> None:
            cursors.append(store.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}")).sequence)

        writers = [threading.Thread(target=write, args=(n,)) for n in range(3)]
        with store._lock:  # as a reader or a transaction() would, while the writes queue
            for count, writer in enumerate(writers):
                writer.start()  # the first waits for the lock alone, the others queue behind it
                deadline = time.monotonic() + 10
                while not store._group._leading or len(store._group._queue) < count:
                    assert time.monotonic() < deadline, "the write did not queue"
                    time.sleep(0.001)
            assert forked_child_answer(store, path, 1, child_write) == 0
        for writer in writers:
            writer.join(10)
        assert sorted(cursors) == [2, 3, 4]
    assert [row[0] for row in raw_rows(path, POOL)] == [1, 2, 3, 4]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_store_dropped_in_a_forked_child_leaves_the_parents_connection_alone(tmp_path: Path) -> None:
    """Garbage collection closes a dropped store's connection (issue 21), but never in a child
    that inherited it: closing there would roll back the parent's open transaction."""
    path = tmp_path / "pools.sqlite"
    opened_pool(path)
    store = SqliteAgentPoolStore(path)
    block = store.transaction()
    block.__enter__()
    store.record_message(POOL, message("msg.1"), receipt("msg.1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 4
        try:
            connection = store._db
            assert connection is not None
            del block, store
            gc.collect()
            code = 0 if connection.filename else 5  # a closed connection raises here
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    refused = finish(worker("once", path, POOL, 0))
    assert refused[0][:2] == ["err", RETRYABLE], f"the write lock was lost: {refused}"
    block.__exit__(None, None, None)
    store.close()
    assert [row[0] for row in raw_rows(path, POOL)] == [1, 2]


# ------------------------------------------------------------ (f) the very -shm SQLite uses


def test_a_store_opened_through_a_symlink_sees_other_writers(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    real = tmp_path / "real" / "pools.sqlite"
    link = tmp_path / "links" / "pools.sqlite"
    link.symlink_to(real)
    with SqliteAgentPoolStore(real) as writer:
        writer.open_pool(POOL, CONFIG)
        Path(f"{link}-shm").write_bytes(bytes(32768))  # a stray -shm beside the link
        with SqliteAgentPoolStore(link) as reader:
            assert reader.snapshot(POOL).cursor.sequence == 1
            for n in range(5):
                writer.record_message(POOL, message(f"msg.{n}"), receipt(f"msg.{n}"))
            assert reader.snapshot(POOL).cursor.sequence == 6
            assert reader.message_receipt(POOL, "key.msg.4") is not None


def test_a_store_opened_by_a_relative_path_sees_other_writers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with SqliteAgentPoolStore(tmp_path / "pools.sqlite") as writer:
        writer.open_pool(POOL, CONFIG)
        with SqliteAgentPoolStore("../sub/../pools.sqlite") as reader:
            assert reader.snapshot(POOL).cursor.sequence == 1
            monkeypatch.chdir(tmp_path)  # moving away later changes nothing
            writer.record_message(POOL, message("msg.1"), receipt("msg.1"))
            assert reader.snapshot(POOL).cursor.sequence == 2


# ------------------------------------------------------------ kept descriptors do not pile up


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def deleted_shm_descriptors() -> int:
    """Descriptors of -shm files SQLite has unlinked: what a leaked store keeps."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{name}").endswith("-shm (deleted)")
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_opening_and_closing_stores_does_not_pile_up_descriptors(tmp_path: Path) -> None:
    opened_pool(tmp_path / "warm-up.sqlite")
    before = descriptors()
    for n in range(100):
        path = tmp_path / f"pools-{n % 10}.sqlite"
        with SqliteAgentPoolStore(path) as store:
            store.open_pool(POOL, CONFIG)
            with SqliteAgentPoolStore(path) as other:
                assert other.snapshot(POOL).cursor.sequence == 1
    # Each -shm SQLite unlinked at its last close gave its kept descriptors back.
    assert descriptors() - before <= 4


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks and /proc/self/fd")
def test_stores_dropped_without_close_give_their_descriptors_back(tmp_path: Path) -> None:
    """Garbage collection releases what close() releases (issue 21: 200 dropped stores took a
    process from 6 to 406 descriptors), and a live store on the same file keeps its locks."""
    shared = tmp_path / "shared.sqlite"
    opened_pool(shared)
    with SqliteAgentPoolStore(shared) as live:
        live.snapshot(POOL)
        held = process_locks(os.getpid(), Path(f"{shared}-shm")), process_locks(os.getpid(), shared)
        gc.collect()
        before, unlinked = descriptors(), deleted_shm_descriptors()
        for n in range(1000):
            # A third on the live store's file, the rest on seven files each store is alone on.
            path = shared if n % 3 == 0 else tmp_path / f"pools-{n % 7}.sqlite"
            store = SqliteAgentPoolStore(path)
            store.open_pool(f"pool.{n}", CONFIG)
            if n % 2:
                store.cycle = store  # type: ignore[attr-defined]  # freed by the collector only
            del store
        gc.collect()
        after = descriptors()
        print(f"\ndescriptors: {before} before 1,000 dropped stores, {after} after")
        # A few more are SQLite's: a database descriptor of a connection closed while another
        # connection of the process holds locks on the file is kept for reuse until the last closes.
        assert after - before <= 16 and deleted_shm_descriptors() <= unlinked
        assert (process_locks(os.getpid(), Path(f"{shared}-shm")), process_locks(os.getpid(), shared)) == held
        with SqliteAgentPoolStore(shared) as other:
            other.record_message(POOL, message("msg.other"), receipt("msg.other"))
        assert live.message_receipt(POOL, "key.msg.other") is not None  # the kept -shm mapping still shows commits
        assert [pool for pool, _, _ in live.pools()].count(POOL) == 1 and len(live.pools()) == 1 + 334
        with live.transaction():
            live.record_message(POOL, message("msg.live"), receipt("msg.live"))
            refused = finish(worker("once", shared, POOL, 0))
            assert refused[0][:2] == ["err", RETRYABLE], f"the write lock was lost: {refused}"
        assert live.snapshot(POOL).cursor.sequence == 3
    assert descriptors() < before


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_store_collected_while_the_probe_lock_is_held_is_counted_off_by_the_next_holder(tmp_path: Path) -> None:
    """The collector may run a finalizer in a thread inside _probe's lock: it must not wait for it."""
    opened_pool(tmp_path / "pools.sqlite")
    store = SqliteAgentPoolStore(tmp_path / "pools.sqlite")
    store.snapshot(POOL)
    gc.collect()
    unlinked = deleted_shm_descriptors()
    with _probe._headers_lock:
        del store
        gc.collect()
    # The connection is closed; its -shm's kept descriptor and mapping wait for the lock.
    assert deleted_shm_descriptors() == unlinked + 2
    SqliteAgentPoolStore(tmp_path / "other.sqlite").close()
    assert deleted_shm_descriptors() == unlinked
