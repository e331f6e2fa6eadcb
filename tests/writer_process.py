"""Another process that appends to a pool, for the follow / aio / CLI tests.

``start_writer(path, pool_id, count)`` runs this module as a real child process
(``python -m writer_process``). The child opens its own ``SqliteAgentPoolStore`` on the
file, appends ``count`` ``record_message`` records (``writer_message(n)``, Accepted) to an
already opened pool and, after each commit returns, prints ``<cursor> <time.time()>`` on its
own flushed line, so the parent knows when each record became visible.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import fastpool
from fastpool import (
    AgentPoolStoredMessage,
    MessageReceipt,
    MessageRecorded,
    MessageStatus,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
)

TESTS = Path(__file__).resolve().parent


def child_env() -> dict[str, str]:
    """The environment for a child Python: this checkout's package and the tests dir on its path.

    ``FASTPOOL_NO_EXTENSIONS`` passes through unchanged, so the child runs the parent's engine.
    """
    env = dict(os.environ)
    package_root = str(Path(fastpool.__file__).resolve().parents[1])
    paths = [package_root, str(TESTS), *[p for p in sys.path if p and os.path.isdir(p)]]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def writer_message(n: int) -> RunMessage:
    return RunMessage(
        message_id=f"msg.writer.{n:04d}",
        from_="run.writer",
        to=RunAddress.run("run.reader"),
        content_ref=f"content.writer.{n:04d} ✓",
        idempotency_key=f"key.writer.{n:04d}",
    )


def writer_receipt(n: int) -> MessageReceipt:
    return MessageReceipt(message_id=f"msg.writer.{n:04d}", status=MessageStatus.ACCEPTED)


def writer_payload(n: int) -> MessageRecorded:
    """The payload of the ``n``-th record the child appends (``n`` from 0)."""
    return MessageRecorded(stored=AgentPoolStoredMessage(message=writer_message(n), receipt=writer_receipt(n)))


def start_writer(path: Path, pool_id: str, count: int, pause: float = 0.0) -> subprocess.Popen[str]:
    """Start the child; read its ``(cursor, committed_at)`` lines with ``commits``."""
    return subprocess.Popen(
        [sys.executable, "-m", "writer_process", str(path), pool_id, str(count), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=child_env(),
    )


def commits(child: subprocess.Popen[str], timeout: float = 30.0) -> dict[int, float]:
    """Wait for the child; its cursors and commit times. A failed child fails the test."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise AssertionError(f"writer child still running after {timeout} s") from None
    assert child.returncode == 0, f"writer child failed ({child.returncode}):\n{err}"
    result = {}
    for line in out.splitlines():
        cursor, committed_at = line.split()
        result[int(cursor)] = float(committed_at)
    return result


def main(argv: list[str]) -> None:
    path, pool_id, count, pause = argv
    with SqliteAgentPoolStore(path) as store:
        for n in range(int(count)):
            cursor = store.record_message(pool_id, writer_message(n), writer_receipt(n))
            print(cursor.sequence, repr(time.time()), flush=True)
            if float(pause):
                time.sleep(float(pause))


if __name__ == "__main__":
    main(sys.argv[1:])
