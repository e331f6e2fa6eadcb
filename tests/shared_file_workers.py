"""Child processes for the shared-file safety tests (``test_shared_file_safety``).

Run as ``python -m shared_file_workers ROLE ARGS…`` with ``writer_process.child_env()``:

* ``writer PATH POOL SECONDS BUSY_TIMEOUT WORKER``: appends ``record_message`` records for
  ``SECONDS`` seconds; after each acknowledged commit prints ``ack <cursor> <message_id>``
  (flushed), after each refused one ``err <retry>``; exits 0 unless something other than an
  ``AgentError`` happened (a SIGBUS kills it with -7).
* ``once PATH POOL BUSY_TIMEOUT``: one ``record_message``; prints ``ack <cursor> <message_id>``
  or ``err <retry> <message>``.
* ``reader PATH POOL SECONDS``: opens, reads and closes the file in a loop for ``SECONDS`` seconds,
  alternating a ``readonly=True`` store and plain APSW; prints ``reads <n>``.
"""

from __future__ import annotations

import os
import sys
import time

import apsw

from fastpool import AgentError, MessageReceipt, MessageStatus, RunAddress, RunMessage, SqliteAgentPoolStore


def message(message_id: str) -> tuple[RunMessage, MessageReceipt]:
    sent = RunMessage(
        message_id=message_id,
        from_="run.a",
        to=RunAddress.run("run.b"),
        content_ref=f"content.{message_id}",
        idempotency_key=f"key.{message_id}",
    )
    return sent, MessageReceipt(message_id=message_id, status=MessageStatus.ACCEPTED)


def writer(path: str, pool_id: str, seconds: str, busy_timeout: str, worker: str) -> None:
    deadline = time.monotonic() + float(seconds)
    with SqliteAgentPoolStore(path, busy_timeout=float(busy_timeout)) as store:
        n = 0
        while time.monotonic() < deadline:
            message_id = f"msg.{worker}.{os.getpid()}.{n}"
            n += 1
            try:
                cursor = store.record_message(pool_id, *message(message_id))
            except AgentError as error:
                print("err", error.retry.value, flush=True)
                continue
            print("ack", cursor.sequence, message_id, flush=True)


def once(path: str, pool_id: str, busy_timeout: str) -> None:
    message_id = f"msg.once.{os.getpid()}"
    with SqliteAgentPoolStore(path, busy_timeout=float(busy_timeout)) as store:
        try:
            cursor = store.record_message(pool_id, *message(message_id))
        except AgentError as error:
            print("err", error.retry.value, error.message, flush=True)
            return
        print("ack", cursor.sequence, message_id, flush=True)


def reader(path: str, pool_id: str, seconds: str) -> None:
    deadline = time.monotonic() + float(seconds)
    reads = 0
    while time.monotonic() < deadline:
        if reads % 2:
            with SqliteAgentPoolStore(path, readonly=True) as store:
                store.snapshot(pool_id)
        else:
            connection = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
            connection.set_busy_timeout(5000)  # a recovery or checkpoint under way: wait, as any reader does
            connection.execute("SELECT COUNT(*) FROM agent_pool_records").fetchall()
            connection.close()
        reads += 1
    print("reads", reads, flush=True)


if __name__ == "__main__":
    role, *arguments = sys.argv[1:]
    {"writer": writer, "once": once, "reader": reader}[role](*arguments)
