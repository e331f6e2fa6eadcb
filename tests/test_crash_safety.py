"""Nothing reported is lost under ``kill -9`` (SPEC §5.1: ``synchronous`` "normal" survives
process crashes, "full" survives power loss, so both must survive a crash).

A real child process opens a ``SqliteAgentPoolStore`` on a file, opens the pool and appends
``record_message`` in a loop, printing each returned cursor and message id on its own flushed
line. The parent reads a random number of lines (20..300) and kills the child with SIGKILL
at that moment, mid-append. Then it checks the file with a fresh store object: every
cursor the child reported is there with its exact payload (the child derives each message
from its id; the parent derives the same and compares ``wire.encode`` and the stored text),
cursors are gap-free from 1, the snapshot works and agrees with a store object that stayed
open through the crash, SQLite's integrity check passes, and a new append continues the
sequence. The next child continues the same pool on the same file.

The same again with a child whose threads append at once through one store object, so that
their writes share group commits: a call returns (and its line is printed) only after the
commit that holds its record, so no printed cursor may be lost either.

Run this file as a script to be the child: ``python test_crash_safety.py PATH MODE ROUND [THREADS]``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest

import fastpool
from fastpool import (
    AgentPoolStoreConfig,
    AgentPoolStoredMessage,
    CorrelationEntry,
    EventCorrelation,
    MessageReceipt,
    MessageRecorded,
    MessageStatus,
    PolicyRef,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
    wire,
)

pytestmark = pytest.mark.slow

POOL = "pool.crash ✓"
CONFIG = AgentPoolStoreConfig(policy_refs=(PolicyRef.new("policy.crash"),))
KILLS_PER_MODE = 8
GROUP_KILLS_PER_MODE, GROUP_THREADS = 4, 8
CHILD_TIMEOUT = 30.0  # seconds before a stuck child is killed and the test fails


def expected(message_id: str) -> MessageRecorded:
    """The payload a writer records for ``message_id`` (``msg.<round>.<n>``): a pure function of it."""
    _, round_, n = message_id.split(".")
    padding = "ü" * (int(n) * 37 % 230) if n.isdigit() else ""  # records of many sizes, across pages
    message = RunMessage(
        message_id=message_id,
        from_="run.writer",
        to=RunAddress.topic("topic.crash"),
        content_ref=f"content/{message_id}/{padding}",
        idempotency_key=f"key.{message_id}",
        correlation=EventCorrelation(entries=(CorrelationEntry(key="round", value=round_),)),
        policy_refs=(PolicyRef.new("policy.crash"),),
    )
    receipt = MessageReceipt(
        message_id=message_id,
        status=MessageStatus.DELIVERED,
        delivered_to=("run.reader",),
        journal_cursor=f"journal.{message_id}",
    )
    return MessageRecorded(stored=AgentPoolStoredMessage(message=message, receipt=receipt))


def record(store: SqliteAgentPoolStore, message_id: str) -> int:
    stored = expected(message_id).stored
    return store.record_message(POOL, stored.message, stored.receipt).sequence


# -------------------------------------------------------------------- the child


def child_main(path: str, mode: str, round_: str, threads: str = "1") -> None:
    store = SqliteAgentPoolStore(path, synchronous=mode)
    start = store.open_pool(POOL, CONFIG).cursor.sequence
    out = sys.stdout
    out.write(f"ready {start} {fastpool._compat.engine.__name__}\n")
    out.flush()
    count, printing = int(threads), threading.Lock()

    def append(first: int) -> None:
        for n in range(first, 1_000_000, count):
            message_id = f"msg.{round_}.{n}"
            sequence = record(store, message_id)
            with printing:
                out.write(f"{sequence} {message_id}\n")  # only after the commit returned
                out.flush()

    writers = [threading.Thread(target=append, args=(first,)) for first in range(count)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()


# -------------------------------------------------------------------- the parent


def child_env() -> dict[str, str]:
    env = dict(os.environ)  # FASTPOOL_NO_EXTENSIONS passes through as it is
    package_root = str(Path(fastpool.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *[p for p in sys.path if p and os.path.isdir(p)]])
    return env


def run_and_kill(
    path: Path, mode: str, round_: int, target: int, rng: random.Random, threads: int = 1
) -> tuple[int, list[tuple[int, str]]]:
    """Start a writer, let it report ``target`` cursors, SIGKILL it; return its start cursor and every
    complete line it reported (including lines written between the target and the kill)."""
    command = [sys.executable, str(Path(__file__).resolve()), str(path), mode, str(round_), str(threads)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True, encoding="utf-8"
    ) as child:
        watchdog = threading.Timer(CHILD_TIMEOUT, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None and child.stderr is not None
            ready = child.stdout.readline().split()
            if not ready:
                child.wait()
                pytest.fail(f"writer died before opening the pool: {child.stderr.read()}")
            assert ready[0] == "ready", ready
            assert ready[2] == fastpool._compat.engine.__name__, "the child must run the parent's engine"
            reported: list[tuple[int, str]] = []
            while len(reported) < target:
                line = child.stdout.readline()
                if not line:
                    child.wait()
                    pytest.fail(f"writer exited early ({child.returncode}): {child.stderr.read()}")
                sequence, message_id = line.split()
                reported.append((int(sequence), message_id))
            time.sleep(rng.random() * 0.003)  # land the kill anywhere in a later append
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            rest = child.stdout.read()
            child.stderr.read()
        finally:
            watchdog.cancel()
    assert child.returncode == -signal.SIGKILL, f"the writer was not killed by SIGKILL: {child.returncode}"
    for line in rest.split("\n")[:-1]:  # the last piece may be a line cut by the kill
        sequence, message_id = line.split()
        reported.append((int(sequence), message_id))
    return int(ready[1]), reported


def check_file(path: Path, mode: str, reported: list[tuple[int, str]]) -> int:
    """Everything the writers reported is durable and exact; return the pool's last cursor."""
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored_text = dict(db.execute("SELECT seq, payload_json FROM agent_pool_records WHERE pool_id = ?", (POOL,)))
    finally:
        db.close()

    with SqliteAgentPoolStore(path, synchronous=mode) as fresh:
        records = list(fresh.watch(POOL))
        sequences = [r.cursor.sequence for r in records]
        assert sequences == list(range(1, len(records) + 1)), "cursors must be gap-free from 1"
        last = len(records)
        assert sorted(stored_text) == sequences
        by_sequence = {r.cursor.sequence: r for r in records}
        for sequence, message_id in reported:
            assert sequence in by_sequence, f"reported cursor {sequence} ({message_id}) lost (last is {last})"
            payload = by_sequence[sequence].payload
            want = wire.encode(expected(message_id))
            assert wire.encode(payload) == want, f"cursor {sequence}: payload differs from {message_id}'s"
            assert stored_text[sequence] == want, f"cursor {sequence}: stored text differs"
        # Records past the last reported one (committed, not yet printed) are whole messages too.
        for r in records[1:]:
            message_id = r.payload.stored.message.message_id
            assert wire.encode(r.payload) == wire.encode(expected(message_id)) == stored_text[r.cursor.sequence]
        snapshot = fresh.snapshot(POOL)
        assert snapshot.cursor.sequence == last
        assert len(snapshot.messages) == last - 1, "every message id was recorded once"
        assert snapshot.policy_refs == CONFIG.policy_refs
        if reported:
            sequence, message_id = reported[-1]
            assert fresh.message_receipt(POOL, f"key.{message_id}") == expected(message_id).stored.receipt
    return last


@pytest.mark.parametrize("mode", ["normal", "full"])
def test_kill_9_loses_no_reported_record(tmp_path: Path, mode: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    path = tmp_path / f"crash-{mode}.sqlite"
    with SqliteAgentPoolStore(path, synchronous=mode) as setup:
        assert setup.open_pool(POOL, CONFIG).cursor.sequence == 1
    last = 1
    kills = 0
    for round_ in range(KILLS_PER_MODE):
        # Every other round a store object stays open through the crash (its cache must catch up);
        # in the others the crashed writer was the only connection (the next opener recovers the WAL).
        observer = SqliteAgentPoolStore(path, synchronous=mode) if round_ % 2 == 0 else None
        try:
            if observer is not None:
                assert observer.snapshot(POOL).cursor.sequence == last
            target = rng.randint(20, 300)
            start, reported = run_and_kill(path, mode, round_, target, rng)
            kills += 1
            context = f"seed {seed}, round {round_}, target {target}"
            assert start == last, f"{context}: the writer must continue the pool"
            assert [s for s, _ in reported] == list(range(last + 1, last + 1 + len(reported))), context
            assert len(reported) >= target

            new_last = check_file(path, mode, reported)
            assert new_last >= reported[-1][0], context
            if observer is not None:
                with SqliteAgentPoolStore(path, synchronous=mode) as fresh:
                    assert observer.snapshot(POOL) == fresh.snapshot(POOL), f"{context}: warm cache missed records"

            # The pool goes on: a new append takes the next cursor.
            with SqliteAgentPoolStore(path, synchronous=mode) as writer:
                assert record(writer, f"msg.parent{round_}.0") == new_last + 1, context
            last = new_last + 1
            if observer is not None:
                assert observer.snapshot(POOL).cursor.sequence == last
        finally:
            if observer is not None:
                observer.close()
    assert kills == KILLS_PER_MODE
    print(f"\n{mode}: {kills} kills survived, {last} records, seed {seed}")


@pytest.mark.parametrize("mode", ["normal", "full"])
def test_kill_9_during_group_commits_loses_no_reported_record(tmp_path: Path, mode: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    path = tmp_path / f"crash-group-{mode}.sqlite"
    with SqliteAgentPoolStore(path, synchronous=mode) as setup:
        setup.open_pool(POOL, CONFIG)
    last = 1
    for round_ in range(GROUP_KILLS_PER_MODE):
        target = rng.randint(50, 400)
        start, reported = run_and_kill(path, mode, round_, target, rng, threads=GROUP_THREADS)
        context = f"seed {seed}, round {round_}, target {target}"
        assert start == last, context
        sequences = sorted(sequence for sequence, _ in reported)
        assert len(set(sequences)) == len(sequences) and sequences[0] > last, context
        last = check_file(path, mode, reported)
        assert last >= sequences[-1], context
    print(f"\n{mode}: {GROUP_KILLS_PER_MODE} kills of {GROUP_THREADS} threads survived, {last} records, seed {seed}")


if __name__ == "__main__":
    child_main(*sys.argv[1:5])
